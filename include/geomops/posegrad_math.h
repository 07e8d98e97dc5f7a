/* Per-pixel math of the pose gradients, shared by the OpenMP loops (cpu/posegrad.c) and CUDA
 * (cuda/posegrad_math_check.cu compiles it with nvcc). C11 and CUDA C++: GM_HD functions only.
 * Semantics: docs/pose.md (stillleben.diff: the image gradients, the valid mask, the dilation
 * and the per-pixel 6-vector). */
#ifndef GEOMOPS_POSEGRAD_MATH_H
#define GEOMOPS_POSEGRAD_MATH_H

#include "geomops/common.h"
#include "geomops/posegrad_types.h"

/* stillleben's intensity: float(v) / 255 as a correctly rounded float32 division. */
GM_HD float gm_pg_unit_u8(uint8_t v) {
    return (float)v / 255.0f;
}

/* stillleben's weight 1 / fl32(4 / n): 4/n in double, rounded to float32, inverted in float32. */
GM_HD float gm_pg_weight(int n) {
    return 1.0f / (float)(4.0 / (double)n);
}

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

/* a * b in float64, rounded before any following addition: the device would otherwise fuse
 * it into an FMA, and the per-pixel terms would differ from the CPU's in the last bit. */
GM_HD double gm_pg_dmul(double a, double b) {
#if defined(__CUDA_ARCH__)
    return __dmul_rn(a, b);
#else
    return a * b;
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

/* Channel ch of pixel index pix in stillleben's float units, or 0 for the outside-image
 * sentinel -1 of gm_pg_diff_setup. */
GM_HD float gm_pg_sample(const gm_pg_image* im, ptrdiff_t pix, int ch) {
    if (pix < 0) return 0.0f;
    const ptrdiff_t k = pix * im->rgb_channels + ch;
    return im->rgb_u8 ? gm_pg_unit_u8(im->rgb_u8[k]) : im->rgb_f32[k];
}

/* The negated central differences of channels 0..2 at pixel (r,c) along x (along_y = 0: the
 * row) or y, out-of-image samples as im->border says: the one definition at the image border
 * (any pixel works; the CPU loops use a plain gm_pg_neg_diff of the two neighbours inside). */
GM_HD void gm_pg_axis_diffs(const gm_pg_image* im, float weight, int r, int c, int along_y, float* d) {
    const int w = im->width;
    int lo, hi;
    ptrdiff_t plo, phi;
    if (along_y) {
        gm_pg_diff_setup(r, im->height, im->border, &lo, &hi);
        plo = lo < 0 ? -1 : (ptrdiff_t)lo * w + c;
        phi = hi < 0 ? -1 : (ptrdiff_t)hi * w + c;
    } else {
        gm_pg_diff_setup(c, w, im->border, &lo, &hi);
        const ptrdiff_t row = (ptrdiff_t)r * w;
        plo = lo < 0 ? -1 : row + lo;
        phi = hi < 0 ? -1 : row + hi;
    }
    for (int ch = 0; ch < 3; ++ch)
        d[ch] = gm_pg_neg_diff(weight, gm_pg_sample(im, plo, ch), gm_pg_sample(im, phi, ch));
}

GM_HD int gm_pg_clamp(int v, int lo, int hi) {
    return v < lo ? lo : (v > hi ? hi : v);
}

GM_HD int gm_pg_is_border(int r, int c, int h, int w) {
    return r == 0 || c == 0 || r == h - 1 || c == w - 1;
}

/* Index of the neighbour (r+dy, c+dx), clamped to the image (a no-op for interior pixels). */
GM_HD ptrdiff_t gm_pg_neighbor(int r, int c, int dy, int dx, int h, int w) {
    return (ptrdiff_t)gm_pg_clamp(r + dy, 0, h - 1) * w + gm_pg_clamp(c + dx, 0, w - 1);
}

/* stillleben's generate_sobel_valid_mask for pixel (r,c): invalid iff it belongs to an object
 * and a clamped 3x3 neighbour belongs to a different object with a strictly smaller depth.
 * CPU semantics: border pixels are never visited, so they stay valid. */
GM_HD int gm_pg_pixel_valid(const int16_t* inst, const float* depth, int h, int w, int r, int c,
                            int semantics) {
    const ptrdiff_t p = (ptrdiff_t)r * w + c;
    const int id = inst[p];
    if (id == 0) return 1;
    const int border = gm_pg_is_border(r, c, h, w);
    if (semantics == GM_PG_SEM_CPU && border) return 1;
    const float d = depth[p];
    for (int dy = -1; dy <= 1; ++dy) {
        for (int dx = -1; dx <= 1; ++dx) {
            ptrdiff_t q = border ? gm_pg_neighbor(r, c, dy, dx, h, w) : p + (ptrdiff_t)dy * w + dx;
            int iq = inst[q];
            if (iq != id && iq != 0 && depth[q] < d) return 0;
        }
    }
    return 1;
}

/* The valid-mask value of pixel (r,c). `uniform`: the caller knows that (r,c) is interior and
 * its 8 neighbours carry its id (such a pixel is valid without the 3x3 scan); pass 0 when it
 * does not know. */
GM_HD int gm_pg_valid(int uniform, const int16_t* inst, const float* depth, int h, int w, int r, int c,
                      int semantics) {
    return uniform || inst[(ptrdiff_t)r * w + c] == 0 ||
           gm_pg_pixel_valid(inst, depth, h, w, r, c, semantics);
}

/* Whether a clamped 3x3 neighbour of (r,c) belongs to an object other than (r,c)'s own id (the
 * dilation can add nothing to a pixel without one). */
GM_HD int gm_pg_has_other(const int16_t* inst, int h, int w, int r, int c) {
    const int border = gm_pg_is_border(r, c, h, w);
    const ptrdiff_t p = (ptrdiff_t)r * w + c;
    const int id0 = inst[p];
    int other = 0;
    for (int dy = -1; dy <= 1; ++dy)
        for (int dx = -1; dx <= 1; ++dx) {
            int iq = inst[border ? gm_pg_neighbor(r, c, dy, dx, h, w) : p + (ptrdiff_t)dy * w + dx];
            other |= (iq != 0) & (iq != id0);
        }
    return other;
}

/* Whether the nine clamped 3x3 neighbours of (r,c) are valid; `valid` holds rows valid_row0..
 * of the valid mask. */
GM_HD int gm_pg_neighbors_valid(const uint8_t* valid, int valid_row0, int h, int w, int r, int c) {
    const int border = gm_pg_is_border(r, c, h, w);
    const ptrdiff_t p = (ptrdiff_t)r * w + c;
    const ptrdiff_t voff = (ptrdiff_t)valid_row0 * w;
    for (int dy = -1; dy <= 1; ++dy)
        for (int dx = -1; dx <= 1; ++dx)
            if (!valid[(border ? gm_pg_neighbor(r, c, dy, dx, h, w) : p + (ptrdiff_t)dy * w + dx) - voff])
                return 0;
    return 1;
}

/* The objects pixel (r,c) counts for, after stillleben's per-object 1-pixel dilation
 * (dilate_object_mask), as (instance id, pixel whose object coordinate is used) pairs:
 * its own id first (own coordinate), then each other id found among the 3x3 neighbours when
 * all nine are valid, with the coordinate of the last neighbour of that id in scan order.
 * `valid` holds rows valid_row0.. of the valid mask. Returns the count (0..9). */
GM_HD int gm_pg_dilate_candidates(const int16_t* inst, const uint8_t* valid, int valid_row0, int h, int w,
                                  int r, int c, int semantics, int16_t* ids, ptrdiff_t* src) {
    const int border = gm_pg_is_border(r, c, h, w);
    if (semantics == GM_PG_SEM_CPU && border) return 0;
    const ptrdiff_t p = (ptrdiff_t)r * w + c;
    const int id0 = inst[p];
    int n = 0;
    if (id0 != 0) {
        ids[0] = (int16_t)id0;
        src[0] = p;
        n = 1;
    }
    if (!gm_pg_has_other(inst, h, w, r, c)) return n; /* cheap exit */
    if (!gm_pg_neighbors_valid(valid, valid_row0, h, w, r, c)) return n;
    for (int a = -1; a <= 1; ++a) {
        for (int b = -1; b <= 1; ++b) {
            int dx = semantics == GM_PG_SEM_CUDA ? a : b; /* CUDA: dx outer; CPU: dy outer */
            int dy = semantics == GM_PG_SEM_CUDA ? b : a;
            ptrdiff_t q = gm_pg_neighbor(r, c, dy, dx, h, w);
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

/* The entry of gm_pg_dilate_candidates for one instance id X > 0, without listing the others:
 * the pixel whose object coordinate (r,c) uses for X -- its own when it carries X, else the
 * last neighbour of id X in the scan order when the dilation applies -- or -1 when (r,c) does
 * not count for X. `other` is gm_pg_has_other(inst, h, w, r, c), `valid` the whole valid mask. */
GM_HD ptrdiff_t gm_pg_dilate_source(const int16_t* inst, const uint8_t* valid, int h, int w, int r, int c,
                                    int semantics, int other, int X) {
    if (semantics == GM_PG_SEM_CPU && gm_pg_is_border(r, c, h, w)) return -1;
    const ptrdiff_t p = (ptrdiff_t)r * w + c;
    if (inst[p] == X) return p;
    if (!other) return -1;
    ptrdiff_t src = -1;
    for (int a = -1; a <= 1; ++a) {
        for (int b = -1; b <= 1; ++b) {
            const int dx = semantics == GM_PG_SEM_CUDA ? a : b; /* CUDA: dx outer; CPU: dy outer */
            const int dy = semantics == GM_PG_SEM_CUDA ? b : a;
            const ptrdiff_t q = gm_pg_neighbor(r, c, dy, dx, h, w);
            if (inst[q] == X) src = q;
        }
    }
    if (src < 0 || !gm_pg_neighbors_valid(valid, 0, h, w, r, c)) return -1;
    return src;
}

/* Per-object constants of the per-pixel 6-vector, for T: object -> camera (R row-major, then
 * t) and P: 4x4 row-major, with denominator row d = 2 (stillleben, clip z) or 3 (clip w):
 * m (3x4) = rows 0, 1, d of P @ T, so the clip values come straight from the object point X;
 * a0, a1, ad = R^T P[j, :3] for j = 0, 1, d. */
typedef struct gm_pg_object {
    double m[12];
    double a0[3], a1[3], ad[3];
} gm_pg_object;

GM_HD void gm_pg_object_setup(const double* T, const double* P, int denom_row, gm_pg_object* o) {
    const int rows[3] = {0, 1, denom_row};
    for (int j = 0; j < 3; ++j) {
        const double* Pj = P + 4 * rows[j];
        for (int k = 0; k < 3; ++k)
            o->m[4 * j + k] =
                gm_pg_dmul(Pj[0], T[k]) + gm_pg_dmul(Pj[1], T[3 + k]) + gm_pg_dmul(Pj[2], T[6 + k]);
        o->m[4 * j + 3] =
            gm_pg_dmul(Pj[0], T[9]) + gm_pg_dmul(Pj[1], T[10]) + gm_pg_dmul(Pj[2], T[11]) + Pj[3];
        double* a = j == 0 ? o->a0 : (j == 1 ? o->a1 : o->ad);
        for (int k = 0; k < 3; ++k)
            a[k] = gm_pg_dmul(T[k], Pj[0]) + gm_pg_dmul(T[3 + k], Pj[1]) + gm_pg_dmul(T[6 + k], Pj[2]);
    }
}

/* The projection denominator (clip z or clip w) at object point X. */
GM_HD double gm_pg_denominator(const gm_pg_object* o, double x0, double x1, double x2) {
    return gm_pg_dmul(o->m[8], x0) + gm_pg_dmul(o->m[9], x1) + gm_pg_dmul(o->m[10], x2) + o->m[11];
}

/* One pixel's contribution to the 6-vector (alpha, beta, gamma, a, b, c) of one object, given
 * sx = sum_c g[c] grad_x[c] and sy = sum_c g[c] grad_y[c] at the pixel and its object point X.
 * With y = R X + t, clip = P [y;1], d = clip[denom_row]:
 *   J[j,i] = P[j,i]/d - P[denom_row,i] clip_j/d^2   (d(ndc_j)/dy_i; stillleben uses row 2)
 *   v = sx J[0,:] + sy J[1,:] = dL/dy,  u = R^T v = (sx a0 + sy a1)/d - (sx clip_0 + sy clip_1) ad/d^2
 *   rotation part X x u (from dy/dalpha = R (e_x x X), ...), translation part u.
 * Returns d (callers count d <= 0). */
GM_HD double gm_pg_contribution(const gm_pg_object* o, double x0, double x1, double x2, double sx, double sy,
                                double* out) {
    const double* m = o->m;
    double c0 = gm_pg_dmul(m[0], x0) + gm_pg_dmul(m[1], x1) + gm_pg_dmul(m[2], x2) + m[3];
    double c1 = gm_pg_dmul(m[4], x0) + gm_pg_dmul(m[5], x1) + gm_pg_dmul(m[6], x2) + m[7];
    double d = gm_pg_dmul(m[8], x0) + gm_pg_dmul(m[9], x1) + gm_pg_dmul(m[10], x2) + m[11];
    double inv = 1.0 / d;
    double k = gm_pg_dmul(gm_pg_dmul(gm_pg_dmul(sx, c0) + gm_pg_dmul(sy, c1), inv), inv);
    double u0 =
        gm_pg_dmul(gm_pg_dmul(sx, o->a0[0]) + gm_pg_dmul(sy, o->a1[0]), inv) - gm_pg_dmul(k, o->ad[0]);
    double u1 =
        gm_pg_dmul(gm_pg_dmul(sx, o->a0[1]) + gm_pg_dmul(sy, o->a1[1]), inv) - gm_pg_dmul(k, o->ad[1]);
    double u2 =
        gm_pg_dmul(gm_pg_dmul(sx, o->a0[2]) + gm_pg_dmul(sy, o->a1[2]), inv) - gm_pg_dmul(k, o->ad[2]);
    out[0] = gm_pg_dmul(x1, u2) - gm_pg_dmul(x2, u1);
    out[1] = gm_pg_dmul(x2, u0) - gm_pg_dmul(x0, u2);
    out[2] = gm_pg_dmul(x0, u1) - gm_pg_dmul(x1, u0);
    out[3] = u0;
    out[4] = u1;
    out[5] = u2;
    return d;
}

/* Channel ch of dLoss/dImage at pixel index pix, as float64. */
GM_HD double gm_pg_grad_at(const gm_pg_backprop_params* p, ptrdiff_t pix, int ch) {
    const ptrdiff_t k = ch * p->g_cstride + pix * p->g_pstride;
    return p->g_f32 ? (double)p->g_f32[k] : p->g_f64[k];
}

/* 1 when g[0..2] are all finite (x - x is 0 exactly for a finite x and NaN for NaN or inf;
 * the includers do not compile with finite-math options). */
GM_HD int gm_pg_all_finite3(const double* g) {
    return (g[0] - g[0]) + (g[1] - g[1]) + (g[2] - g[2]) == 0.0;
}

/* 1 when a and b are both finite (as gm_pg_all_finite3). */
GM_HD int gm_pg_finite2(double a, double b) {
    return (a - a) + (b - b) == 0.0;
}

/* sx = sum_c g[c] gx[c] and sy = sum_c g[c] gy[c]: the image gradient seen by the loss at one
 * pixel, in float64 (the inputs of gm_pg_contribution). */
GM_HD void gm_pg_project_grad(const double* g, const float* gx, const float* gy, double* sx, double* sy) {
    double x = 0.0, y = 0.0;
    for (int ch = 0; ch < 3; ++ch) {
        x += gm_pg_dmul(g[ch], (double)gx[ch]);
        y += gm_pg_dmul(g[ch], (double)gy[ch]);
    }
    *sx = x;
    *sy = y;
}

#endif /* GEOMOPS_POSEGRAD_MATH_H */
