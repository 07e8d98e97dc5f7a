# Bindings for the search kernels (cpu/search.c). Filled in by its issue.
