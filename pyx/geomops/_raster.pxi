# Bindings for the raster kernels (cpu/raster.c). Filled in by its issue.
