# Bindings for the cconv kernels (cpu/cconv.c). Filled in by its issue.
