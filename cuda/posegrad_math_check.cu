// Compile check: include/geomops/posegrad_math.h builds as CUDA device code. A tiny kernel calls
// every shared per-pixel function once; the CUDA port of the pose gradients will use them.
#include "gm_cuda.cuh"

#include "geomops/posegrad_math.h"

__global__ void gm_posegrad_math_check_kernel(const int16_t* inst, const float* depth, const uint8_t* valid,
                                              const double* T, const double* P, int h, int w, double* out) {
    int r = 0, c = 0, lo, hi;
    int16_t ids[9];
    ptrdiff_t src[9];
    gm_pg_diff_setup(c, w, GM_PG_BORDER_ZERO, &lo, &hi);
    float d = gm_pg_neg_diff(gm_pg_weight(w), gm_pg_unit_u8(10), gm_pg_unit_u8(20));
    int v = gm_pg_pixel_valid(inst, depth, h, w, r, c, GM_PG_SEM_CUDA);
    int n = gm_pg_dilate_candidates(inst, valid, 0, h, w, r, c, GM_PG_SEM_CUDA, ids, src);
    gm_pg_object o;
    gm_pg_object_setup(T, P, 3, &o);
    double den = gm_pg_contribution(&o, 0.1, 0.2, 0.3, 1.0, 2.0, out) + gm_pg_denominator(&o, 0.1, 0.2, 0.3);
    out[6] = d + v + n + den + lo + hi;
}

// The image-border differences and the valid-mask test, one pixel per thread (what the CUDA
// image-gradient kernel will do for every pixel).
__global__ void gm_posegrad_border_check_kernel(const uint8_t* rgb, const int16_t* inst, const float* depth,
                                                int h, int w, float* grad_x, float* grad_y, uint8_t* valid) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= h * w) return;
    const int r = i / w, c = i % w;
    gm_pg_image im;
    im.height = h;
    im.width = w;
    im.rgb_u8 = rgb;
    im.rgb_f32 = NULL;
    im.rgb_channels = 4;
    im.border = GM_PG_BORDER_REPLICATE;
    im.semantics = GM_PG_SEM_CUDA;
    im.instance = inst;
    im.depth = depth;
    im.num_threads = 1;
    const int ok = gm_pg_valid(0, inst, depth, h, w, r, c, im.semantics);
    float gx[3], gy[3];
    gm_pg_axis_diffs(&im, gm_pg_weight(w), r, c, 0, gx);
    gm_pg_axis_diffs(&im, gm_pg_weight(h), r, c, 1, gy);
    for (int ch = 0; ch < 3; ++ch) {
        grad_x[(ptrdiff_t)ch * h * w + i] = ok ? gx[ch] : 0.0f;
        grad_y[(ptrdiff_t)ch * h * w + i] = ok ? gy[ch] : 0.0f;
    }
    valid[i] = (uint8_t)ok;
}
