/* Per-pixel math of the pose gradients, shared by the OpenMP loops (cpu/posegrad.c) and CUDA
 * (cuda/posegrad_math_check.cu compiles it with nvcc). C11 and CUDA C++: GM_HD functions only.
 * Semantics: spec/pose_gradient.md sections 3-5 and 10 (stillleben.diff). */
#ifndef GEOMOPS_POSEGRAD_MATH_H
#define GEOMOPS_POSEGRAD_MATH_H

#include "geomops/common.h"
#include "geomops/posegrad.h"

/* stillleben's intensity: float(v) / 255 as a correctly rounded float32 division. */
GM_HD float gm_pg_unit_u8(uint8_t v) { return (float)v / 255.0f; }

/* stillleben's weight 1 / fl32(4 / n): 4/n in double, rounded to float32, inverted in float32. */
GM_HD float gm_pg_weight(int n) { return 1.0f / (float)(4.0 / (double)n); }

/* Negated central difference, products rounded before the subtraction (as conv2d does):
 * w*prev - w*next. An FMA would change the last bit, so the device path spells the rounding
 * out and host includers compile with contraction off (cpu/posegrad.c sets the pragma). */
GM_HD float gm_pg_neg_diff(float w, float prev, float next) {
#if defined(__CUDA_ARCH__)
    return __fsub_rn(__fmul_rn(w, prev), __fmul_rn(w, next));
#else
    return w * prev - w * next;
#endif
}

/* Neighbour indices of one central difference at position i of an axis of length n
 * (-1 = a zero sample outside the image for GM_PG_BORDER_ZERO; clamped for REPLICATE). */
GM_HD void gm_pg_diff_setup(int i, int n, int border, int* lo, int* hi) {
    if (border == GM_PG_BORDER_ZERO) {
        *lo = i > 0 ? i - 1 : -1;
        *hi = i < n - 1 ? i + 1 : -1;
    } else {
        *lo = i > 0 ? i - 1 : 0;
        *hi = i < n - 1 ? i + 1 : n - 1;
    }
}

GM_HD int gm_pg_clamp(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

GM_HD int gm_pg_is_border(int r, int c, int h, int w) {
    return r == 0 || c == 0 || r == h - 1 || c == w - 1;
}

/* stillleben's generate_sobel_valid_mask for pixel (r,c): invalid iff it belongs to an object
 * and a clamped 3x3 neighbour belongs to a different object with a strictly smaller depth.
 * CPU semantics: border pixels are never visited, so they stay valid. */
GM_HD int gm_pg_pixel_valid(const int16_t* inst, const float* depth, int h, int w, int r, int c,
                            int semantics) {
    ptrdiff_t p = (ptrdiff_t)r * w + c;
    int id = inst[p];
    if (id == 0) return 1;
    if (semantics == GM_PG_SEM_CPU && gm_pg_is_border(r, c, h, w)) return 1;
    float d = depth[p];
    for (int dy = -1; dy <= 1; ++dy) {
        int rr = gm_pg_clamp(r + dy, 0, h - 1);
        for (int dx = -1; dx <= 1; ++dx) {
            ptrdiff_t q = (ptrdiff_t)rr * w + gm_pg_clamp(c + dx, 0, w - 1);
            int iq = inst[q];
            if (iq != id && iq != 0 && depth[q] < d) return 0;
        }
    }
    return 1;
}

/* The objects pixel (r,c) counts for, after stillleben's per-object 1-pixel dilation
 * (dilate_object_mask), as (instance id, pixel whose object coordinate is used) pairs:
 * its own id first (own coordinate), then each other id found among the 3x3 neighbours when
 * all nine are valid, with the coordinate of the last neighbour of that id in scan order.
 * `valid` holds rows valid_row0.. of the valid mask. Returns the count (0..9). */
GM_HD int gm_pg_dilate_candidates(const int16_t* inst, const uint8_t* valid, int valid_row0, int h,
                                  int w, int r, int c, int semantics, int16_t* ids, ptrdiff_t* src) {
    if (semantics == GM_PG_SEM_CPU && gm_pg_is_border(r, c, h, w)) return 0;
    ptrdiff_t p = (ptrdiff_t)r * w + c;
    int id0 = inst[p];
    int n = 0;
    if (id0 != 0) {
        ids[0] = (int16_t)id0;
        src[0] = p;
        n = 1;
    }
    /* Cheap exit: no neighbour of another object. */
    int other = 0;
    for (int dy = -1; dy <= 1; ++dy) {
        int rr = gm_pg_clamp(r + dy, 0, h - 1);
        for (int dx = -1; dx <= 1; ++dx) {
            int iq = inst[(ptrdiff_t)rr * w + gm_pg_clamp(c + dx, 0, w - 1)];
            other |= (iq != 0 && iq != id0);
        }
    }
    if (!other) return n;
    for (int dy = -1; dy <= 1; ++dy) {
        int rr = gm_pg_clamp(r + dy, 0, h - 1);
        for (int dx = -1; dx <= 1; ++dx)
            if (!valid[(ptrdiff_t)(rr - valid_row0) * w + gm_pg_clamp(c + dx, 0, w - 1)]) return n;
    }
    for (int a = -1; a <= 1; ++a) {
        for (int b = -1; b <= 1; ++b) {
            int dx = semantics == GM_PG_SEM_CUDA ? a : b; /* CUDA: dx outer; CPU: dy outer */
            int dy = semantics == GM_PG_SEM_CUDA ? b : a;
            ptrdiff_t q = (ptrdiff_t)gm_pg_clamp(r + dy, 0, h - 1) * w + gm_pg_clamp(c + dx, 0, w - 1);
            int iq = inst[q];
            if (iq == 0 || iq == id0) continue;
            int k = id0 != 0 ? 1 : 0;
            while (k < n && ids[k] != iq) ++k;
            ids[k] = (int16_t)iq; /* a later neighbour of the same id overwrites: last one wins */
            src[k] = q;
            if (k == n) ++n;
        }
    }
    return n;
}

/* One pixel's contribution to the 6-vector (alpha, beta, gamma, a, b, c) of one object.
 * T: object -> camera (R row-major, then t); P: 4x4 row-major; denom_row 2 (stillleben) or 3
 * (clip w, the true perspective Jacobian). sx, sy: sum_c g[c]*grad_x[c] and sum_c g[c]*grad_y[c].
 * With y = R X + t, clip = P [y;1], J[j,i] = P[j,i]/d - P[denom_row,i] c_j/d^2 (d = clip[denom_row]),
 * v = sx J[0,:] + sy J[1,:] (dL/dy), u = R^T v: rotation part X x u, translation part u.
 * Returns the denominator d (callers count d <= 0). */
GM_HD double gm_pg_contribution(const double* T, const double* P, int denom_row, double x0, double x1,
                                double x2, double sx, double sy, double* out) {
    double y0 = T[0] * x0 + T[1] * x1 + T[2] * x2 + T[9];
    double y1 = T[3] * x0 + T[4] * x1 + T[5] * x2 + T[10];
    double y2 = T[6] * x0 + T[7] * x1 + T[8] * x2 + T[11];
    const double* Pd = P + 4 * denom_row;
    double c0 = P[0] * y0 + P[1] * y1 + P[2] * y2 + P[3];
    double c1 = P[4] * y0 + P[5] * y1 + P[6] * y2 + P[7];
    double d = Pd[0] * y0 + Pd[1] * y1 + Pd[2] * y2 + Pd[3];
    double inv = 1.0 / d;
    double q0 = c0 * inv * inv, q1 = c1 * inv * inv;
    double v[3];
    for (int i = 0; i < 3; ++i)
        v[i] = sx * (P[i] * inv - Pd[i] * q0) + sy * (P[4 + i] * inv - Pd[i] * q1);
    double u0 = T[0] * v[0] + T[3] * v[1] + T[6] * v[2];
    double u1 = T[1] * v[0] + T[4] * v[1] + T[7] * v[2];
    double u2 = T[2] * v[0] + T[5] * v[1] + T[8] * v[2];
    out[0] = x1 * u2 - x2 * u1;
    out[1] = x2 * u0 - x0 * u2;
    out[2] = x0 * u1 - x1 * u0;
    out[3] = u0;
    out[4] = u1;
    out[5] = u2;
    return d;
}

#endif /* GEOMOPS_POSEGRAD_MATH_H */
