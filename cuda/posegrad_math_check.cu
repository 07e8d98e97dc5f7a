// Compile check: include/geomops/posegrad_math.h builds as CUDA device code. A tiny kernel calls
// every shared per-pixel function once; the CUDA port of the pose gradients will use them.
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
    GmPgObject o;
    gm_pg_object_setup(T, P, 3, &o);
    double den = gm_pg_contribution(&o, 0.1, 0.2, 0.3, 1.0, 2.0, out) + gm_pg_denominator(&o, 0.1, 0.2, 0.3);
    out[6] = d + v + n + den + lo + hi;
}
