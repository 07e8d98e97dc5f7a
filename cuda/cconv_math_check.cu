// Compiles the shared continuous-convolution math (include/geomops/cconv_math.h) with nvcc
// into real kernels, so that header stays usable by the CUDA backend.
#include "gm_cuda.cuh"

#include "geomops/cconv_math.h"

// The per-neighbor body the CUDA port will launch: one thread per neighbor entry -> its taps.
extern "C" __global__ void gm_cconv_taps_kernel(gm_cconv_geometry geom, const double* rel, const double* inv,
                                                int n, int* cells, double* weights, int* counts) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    counts[t] = gm_cconv_filter_taps(&geom, rel + 3 * t, inv + 3 * t, cells + 8 * t, weights + 8 * t);
}

// The per-entry and per-row helpers of both float types on device arrays: one thread per output
// row sums its entries' tap weights times their scalar weights, scaled like an output row, and
// writes its normaliser's divisor and zero flag.
extern "C" __global__ void gm_cconv_entry_math_kernel(gm_cconv_params p, double* out) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= p.num_out) return;
    gm_cconv_geometry geom;
    gm_cconv_geometry_init(&geom, &p);
    const bool f32 = p.dtype == GM_FLOAT32;
    int cell[8];
    double w[8], acc = 0.0;
    for (int64_t n = p.neighbors_row_splits[i]; n < p.neighbors_row_splits[i + 1]; ++n) {
        int64_t j;
        const int taps = f32 ? gm_cconv_entry_taps_f32(&p, &geom, i, n, &j, cell, w)
                             : gm_cconv_entry_taps_f64(&p, &geom, i, n, &j, cell, w);
        const double a = f32 ? gm_cconv_entry_weight_f32(&p, n, j) : gm_cconv_entry_weight_f64(&p, n, j);
        for (int t = 0; t < taps; ++t) acc += a * w[t] * (cell[t] + 1);
    }
    const double v = f32 ? gm_cconv_normalizer_f32(&p, i) : gm_cconv_normalizer_f64(&p, i);
    out[3 * i] = acc * (f32 ? gm_cconv_row_scale_f32(&p, i) : gm_cconv_row_scale_f64(&p, i));
    out[3 * i + 1] = gm_cconv_divisor(v);
    out[3 * i + 2] = gm_cconv_normalizer_is_zero(v);
}
