/* Per-neighbor math of the continuous convolution (docs/cconv.md, "Semantics" and "How it is
 * computed"), shared by the OpenMP and CUDA backends: one definition of each formula.
 * Coordinates are computed in double for both float32 and float64 features: this is at least as
 * accurate as Open3D's positions-dtype math.
 *
 * gm_cconv_filter_taps() maps one relative position to at most 8 (filter cell, weight) pairs.
 * The per-type helpers (cconv_math_impl.h, compiled once per float type by geomops/twin.h) read
 * one entry or row of a gm_cconv_params call: an entry's taps, its scalar weight, the normaliser
 * of a row and the factor applied to an output row. */
#ifndef GEOMOPS_CCONV_MATH_H
#define GEOMOPS_CCONV_MATH_H

#include <math.h>

#include "geomops/cconv_types.h"
#include "geomops/common.h"

/* Geometry of one call, fixed for all neighbors. */
typedef struct {
    int mapping;       /* gm_coordinate_mapping */
    int interpolation; /* gm_interpolation      */
    int align_corners;
    int size[3];          /* filter size along x (W), y (H), z (D) */
    double offset[3];     /* align_corners == 0 only */
    double inv_extent[3]; /* 1/extent when one extent is shared by all points (extents_rows == 1) */
} gm_cconv_geometry;

/* The geometry of call p (dtype-dependent reads of offset and extents, converted to double). */
GM_HD void gm_cconv_geometry_init(gm_cconv_geometry* g, const gm_cconv_params* p) {
    g->mapping = p->coordinate_mapping;
    g->interpolation = p->interpolation;
    g->align_corners = p->align_corners;
    g->size[0] = p->filter_width;
    g->size[1] = p->filter_height;
    g->size[2] = p->filter_depth;
    for (int k = 0; k < 3; ++k) {
        g->offset[k] =
            p->dtype == GM_FLOAT32 ? (double)((const float*)p->offset)[k] : ((const double*)p->offset)[k];
    }
    for (int k = 0; k < 3 && p->extents_rows > 0; ++k) {
        int col = p->extents_cols == 1 ? 0 : k;
        double e = p->dtype == GM_FLOAT32 ? (double)((const float*)p->extents)[col]
                                          : ((const double*)p->extents)[col];
        g->inv_extent[k] = 1.0 / e;
    }
}

/* Input point of neighbor entry n. */
GM_HD int64_t gm_cconv_neighbor_index(const gm_cconv_params* p, int64_t n) {
    return p->index_int64 ? ((const int64_t*)p->neighbors_index)[n]
                          : (int64_t)((const int32_t*)p->neighbors_index)[n];
}

/* The zero rule of `normalize`, its one definition: a normaliser of exactly 0 divides by 1
 * (and so has no derivative). */
GM_HD int gm_cconv_normalizer_is_zero(double normalizer) {
    return normalizer == 0.0;
}

/* What a normaliser divides by. */
GM_HD double gm_cconv_divisor(double normalizer) {
    return gm_cconv_normalizer_is_zero(normalizer) ? 1.0 : normalizer;
}

GM_HD double gm_clampd(double v, double lo, double hi) {
    return v < lo ? lo : (v > hi ? hi : v);
}

/* max/min by comparison: libm's fmax is an out-of-line call in strict IEEE builds */
GM_HD double gm_maxd(double a, double b) {
    return a > b ? a : b;
}

/* Unit-ball -> unit-cube mappings; q is scaled by 1/extent on input, in [-1/2, 1/2]^3 on output. */
GM_HD void gm_map_radial(double* q) {
    double u0 = 2.0 * q[0], u1 = 2.0 * q[1], u2 = 2.0 * q[2];
    double m = gm_maxd(fabs(u0), gm_maxd(fabs(u1), fabs(u2)));
    if (m < 1e-8) {
        q[0] = q[1] = q[2] = 0.0;
        return;
    }
    double s = 0.5 * sqrt(u0 * u0 + u1 * u1 + u2 * u2) / m;
    q[0] = u0 * s;
    q[1] = u1 * s;
    q[2] = u2 * s;
}

GM_HD void gm_map_volume_preserving(double* q) {
    const double four_over_pi = 1.27323954473516268615;
    double x = 2.0 * q[0], y = 2.0 * q[1], z = 2.0 * q[2];
    /* sphere -> cylinder (axis z) */
    double n2 = x * x + y * y + z * z;
    if (n2 < 1e-12) {
        x = y = z = 0.0;
    } else {
        double n = sqrt(n2);
        if (1.25 * z * z > x * x + y * y) { /* cap region */
            double s = sqrt(3.0 * n / (n + fabs(z)));
            x *= s;
            y *= s;
            z = copysign(n, z);
        } else { /* side region */
            double s = n / sqrt(x * x + y * y);
            x *= s;
            y *= s;
            z *= 1.5;
        }
    }
    /* cylinder -> cube, acting on (x, y) */
    double rho2 = x * x + y * y;
    if (rho2 < 1e-12) {
        x = y = 0.0;
    } else {
        double rho = sqrt(rho2);
        if (fabs(y) <= fabs(x)) {
            double sx = copysign(1.0, x);
            y = sx * rho * four_over_pi * atan(y / x);
            x = sx * rho;
        } else {
            double sy = copysign(1.0, y);
            x = sy * rho * four_over_pi * atan(x / y);
            y = sy * rho;
        }
    }
    q[0] = 0.5 * x;
    q[1] = 0.5 * y;
    q[2] = 0.5 * z;
}

/* Round half away from zero (std::round semantics). */
GM_HD double gm_round_half_away(double v) {
    return v < 0.0 ? -floor(-v + 0.5) : floor(v + 0.5);
}

/* Relative position p (already oriented for forward/transpose) and inverse extent inv -> up to
 * 8 taps: cell[t] = z*H*W + y*W + x, weight[t]. Returns the number of taps written. Taps of
 * linear_border outside the filter are dropped (their weight is 0: zero padding). A non-finite
 * position gives no taps. Corner order: x fastest, then y, then z. */
GM_HD int gm_cconv_filter_taps(const gm_cconv_geometry* g, const double p[3], const double inv[3],
                               int cell[8], double weight[8]) {
    double q[3] = {p[0] * inv[0], p[1] * inv[1], p[2] * inv[2]};
    if (g->mapping == GM_MAP_BALL_TO_CUBE_RADIAL) {
        gm_map_radial(q);
    } else if (g->mapping == GM_MAP_BALL_TO_CUBE_VOLUME_PRESERVING) {
        gm_map_volume_preserving(q);
    }
    double v[3];
    for (int k = 0; k < 3; ++k) {
        int n = g->size[k];
        if (g->align_corners) {
            v[k] = (q[k] + 0.5) * (double)(n - 1);
        } else {
            v[k] = q[k] * (double)n + g->offset[k] + (double)(n / 2) - ((n % 2 == 0) ? 0.5 : 0.0);
        }
        if (!(v[k] - v[k] == 0.0)) return 0; /* NaN or inf */
    }
    const int W = g->size[0], H = g->size[1], D = g->size[2];
    if (g->interpolation == GM_INTERP_NEAREST_NEIGHBOR) {
        int i[3];
        for (int k = 0; k < 3; ++k) {
            i[k] = (int)gm_clampd(gm_round_half_away(v[k]), 0.0, (double)(g->size[k] - 1));
        }
        cell[0] = (i[2] * H + i[1]) * W + i[0];
        weight[0] = 1.0;
        return 1;
    }
    int i0[3], i1[3];
    double a[3];
    int inside0[3], inside1[3];
    if (g->interpolation == GM_INTERP_LINEAR) {
        for (int k = 0; k < 3; ++k) {
            double hi = (double)(g->size[k] - 1);
            double t = gm_clampd(trunc(v[k]), 0.0, hi); /* trunc toward zero, not floor */
            i0[k] = (int)t;
            i1[k] = i0[k] + 1 < g->size[k] ? i0[k] + 1 : g->size[k] - 1;
            a[k] = gm_clampd(v[k] - t, 0.0, 1.0);
            inside0[k] = inside1[k] = 1;
        }
    } else { /* linear_border: zero padding outside the filter */
        for (int k = 0; k < 3; ++k) {
            /* clamp far-away coordinates first so the int conversion is defined */
            double vv = gm_clampd(v[k], -2.0, (double)g->size[k] + 1.0);
            double f = floor(vv);
            i0[k] = (int)f;
            i1[k] = i0[k] + 1;
            a[k] = vv - f;
            inside0[k] = i0[k] >= 0 && i0[k] < g->size[k];
            inside1[k] = i1[k] >= 0 && i1[k] < g->size[k];
        }
    }
    int count = 0;
    for (int c = 0; c < 8; ++c) {
        int bx = c & 1, by = (c >> 1) & 1, bz = (c >> 2) & 1;
        if (!(bx ? inside1[0] : inside0[0]) || !(by ? inside1[1] : inside0[1]) ||
            !(bz ? inside1[2] : inside0[2]))
            continue;
        double w = (bx ? a[0] : 1.0 - a[0]) * (by ? a[1] : 1.0 - a[1]) * (bz ? a[2] : 1.0 - a[2]);
        int x = bx ? i1[0] : i0[0], y = by ? i1[1] : i0[1], z = bz ? i1[2] : i0[2];
        cell[count] = (z * H + y) * W + x;
        weight[count] = w;
        ++count;
    }
    (void)D;
    return count;
}

/* The row of rows [lo, hi) of `splits` that holds entry n (splits[lo] <= n < splits[hi]): the
 * last row r with splits[r] <= n (empty rows never qualify: the next row starts at their end). */
GM_HD int64_t gm_cconv_row_of(const int64_t* splits, int64_t lo, int64_t hi, int64_t n) {
    while (hi - lo > 1) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (splits[mid] <= n)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* Entry n of an int32 or int64 index array. */
GM_HD int64_t gm_cconv_index_at(const void* index, int is64, int64_t n) {
    return is64 ? ((const int64_t*)index)[n] : (int64_t)((const int32_t*)index)[n];
}

/* What the backward functions divide by for normalised row (forward) or point (transpose) k:
 * its divisor, 1 without normalize. */
GM_HD double gm_cconv_bwd_divisor(const gm_cconv_grad_params* p, int64_t k) {
    return p->divisor ? p->divisor[k] : 1.0;
}

#define GM_TWIN_BODY "geomops/cconv_math_impl.h"
#include "geomops/twin.h"

#endif /* GEOMOPS_CCONV_MATH_H */
