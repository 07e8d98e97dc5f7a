// Compiles the shared continuous-convolution math (include/geomops/cconv_math.h) with nvcc
// into a real kernel, so that header stays usable by the CUDA backend. The kernel is the
// per-neighbor body the CUDA port will launch: one thread per neighbor entry -> its taps.
#include <cuda_runtime.h>

#include "geomops/cconv_math.h"

extern "C" __global__ void gm_cconv_taps_kernel(gm_cconv_geometry geom, const double* rel, const double* inv,
                                                int n, int* cells, double* weights, int* counts) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    counts[t] = gm_cconv_filter_taps(&geom, rel + 3 * t, inv + 3 * t, cells + 8 * t, weights + 8 * t);
}
