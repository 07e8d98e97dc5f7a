# Bindings for the posegrad kernels (cpu/posegrad.c). Filled in by its issue.
