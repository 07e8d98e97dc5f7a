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

/* The continuous filter-grid coordinate v (docs/cconv.md, "Semantics") of relative position p
 * (already oriented for forward/transpose) with inverse extent inv: q = p * inv, the coordinate
 * mapping, then the grid coordinate of align_corners. Returns 0 when v is not finite. */
GM_HD int gm_cconv_grid_coordinate(const gm_cconv_geometry* g, const double p[3], const double inv[3],
                                   double v[3]) {
    double q[3] = {p[0] * inv[0], p[1] * inv[1], p[2] * inv[2]};
    if (g->mapping == GM_MAP_BALL_TO_CUBE_RADIAL) {
        gm_map_radial(q);
    } else if (g->mapping == GM_MAP_BALL_TO_CUBE_VOLUME_PRESERVING) {
        gm_map_volume_preserving(q);
    }
    for (int k = 0; k < 3; ++k) {
        int n = g->size[k];
        if (g->align_corners) {
            v[k] = (q[k] + 0.5) * (double)(n - 1);
        } else {
            v[k] = q[k] * (double)n + g->offset[k] + (double)(n / 2) - ((n % 2 == 0) ? 0.5 : 0.0);
        }
        if (!(v[k] - v[k] == 0.0)) return 0; /* NaN or inf */
    }
    return 1;
}

/* One axis of the trilinear interpolations: the lower and upper filter index, whether each lies
 * inside the filter (linear_border drops the others: zero padding), the weight a of the upper
 * one (1 - a for the lower) and da/dv, the derivative of the branch taken: 0 where `linear`
 * clamps a or both indices coincide (the weights then do not depend on v), 1 elsewhere. */
typedef struct {
    int i0, i1, inside0, inside1;
    double a, da;
} gm_cconv_axis_taps;

GM_HD gm_cconv_axis_taps gm_cconv_axis(int interpolation, int n, double v) {
    gm_cconv_axis_taps t;
    if (interpolation == GM_INTERP_LINEAR) {
        double hi = (double)(n - 1);
        double lo = gm_clampd(trunc(v), 0.0, hi); /* trunc toward zero, not floor */
        t.i0 = (int)lo;
        t.i1 = t.i0 + 1 < n ? t.i0 + 1 : n - 1;
        double f = v - lo;
        t.a = gm_clampd(f, 0.0, 1.0);
        t.inside0 = t.inside1 = 1;
        t.da = (t.i1 != t.i0 && f >= 0.0 && f <= 1.0) ? 1.0 : 0.0;
    } else { /* linear_border: zero padding outside the filter */
        /* clamp far-away coordinates first so the int conversion is defined */
        double vv = gm_clampd(v, -2.0, (double)n + 1.0);
        double f = floor(vv);
        t.i0 = (int)f;
        t.i1 = t.i0 + 1;
        t.a = vv - f;
        t.inside0 = t.i0 >= 0 && t.i0 < n;
        t.inside1 = t.i1 >= 0 && t.i1 < n;
        t.da = vv == v ? 1.0 : 0.0; /* beyond the clamp no corner is inside anyway */
    }
    return t;
}

/* Grid coordinate v -> up to 8 taps: cell[t] = z*H*W + y*W + x, weight[t]; with dweight, also
 * dweight[t][k] = d weight[t] / d v[k] (0 for nearest_neighbor: piecewise constant). Returns
 * the number of taps written. Taps of linear_border outside the filter are dropped (their
 * weight is 0: zero padding). Corner order: x fastest, then y, then z. */
GM_HD int gm_cconv_interpolate(const gm_cconv_geometry* g, const double v[3], int cell[8], double weight[8],
                               double (*dweight)[3]) {
    const int W = g->size[0], H = g->size[1];
    if (g->interpolation == GM_INTERP_NEAREST_NEIGHBOR) {
        int i[3];
        for (int k = 0; k < 3; ++k) {
            i[k] = (int)gm_clampd(gm_round_half_away(v[k]), 0.0, (double)(g->size[k] - 1));
        }
        cell[0] = (i[2] * H + i[1]) * W + i[0];
        weight[0] = 1.0;
        if (dweight) dweight[0][0] = dweight[0][1] = dweight[0][2] = 0.0;
        return 1;
    }
    gm_cconv_axis_taps ax[3];
    for (int k = 0; k < 3; ++k) ax[k] = gm_cconv_axis(g->interpolation, g->size[k], v[k]);
    int count = 0;
    for (int c = 0; c < 8; ++c) {
        int bx = c & 1, by = (c >> 1) & 1, bz = (c >> 2) & 1;
        if (!(bx ? ax[0].inside1 : ax[0].inside0) || !(by ? ax[1].inside1 : ax[1].inside0) ||
            !(bz ? ax[2].inside1 : ax[2].inside0))
            continue;
        double w =
            (bx ? ax[0].a : 1.0 - ax[0].a) * (by ? ax[1].a : 1.0 - ax[1].a) * (bz ? ax[2].a : 1.0 - ax[2].a);
        int x = bx ? ax[0].i1 : ax[0].i0, y = by ? ax[1].i1 : ax[1].i0, z = bz ? ax[2].i1 : ax[2].i0;
        cell[count] = (z * H + y) * W + x;
        weight[count] = w;
        if (dweight) {
            /* the product rule: the factor of axis k is a_k (upper) or 1 - a_k (lower) */
            const double fx = bx ? ax[0].a : 1.0 - ax[0].a, fy = by ? ax[1].a : 1.0 - ax[1].a,
                         fz = bz ? ax[2].a : 1.0 - ax[2].a;
            dweight[count][0] = (bx ? ax[0].da : -ax[0].da) * fy * fz;
            dweight[count][1] = fx * (by ? ax[1].da : -ax[1].da) * fz;
            dweight[count][2] = fx * fy * (bz ? ax[2].da : -ax[2].da);
        }
        ++count;
    }
    return count;
}

/* Out of line on the host: every ISA variant of the CPU fill then computes its taps with the
 * same generic code (never FMA-contracted inside an AVX-2/AVX-512 caller), so the variants and
 * the neighbor products agree on every tap bit for bit. */
#if defined(__CUDACC__)
#define GM_CCONV_TAPS_FN GM_HD
#else
#define GM_CCONV_TAPS_FN static __attribute__((noinline))
#endif

/* Relative position p (already oriented for forward/transpose) and inverse extent inv -> up to
 * 8 taps (gm_cconv_interpolate). A non-finite position gives no taps. */
GM_CCONV_TAPS_FN int gm_cconv_filter_taps(const gm_cconv_geometry* g, const double p[3], const double inv[3],
                                          int cell[8], double weight[8]) {
    double v[3];
    if (!gm_cconv_grid_coordinate(g, p, inv, v)) return 0;
    return gm_cconv_interpolate(g, v, cell, weight, NULL);
}

/* ---- derivatives w.r.t. the relative position and the extent (docs/cconv.md, "Gradients
 * w.r.t. positions and extents") --------------------------------------------------------------
 * Each is the exact derivative of the branch the forward function above takes: the kinks
 * (cell boundaries, clamps, the mappings' branch switches) get the one-sided derivative of
 * that branch, the mappings' centre branches (q mapped to 0) a zero derivative. */

/* gq = J^T gy for the radial mapping's Jacobian J = d gm_map_radial(q) / d q at q (scaled by
 * 1/extent). With u = 2q, m = max_k |u_k| (the k gm_maxd picks), r = |u|: the map is
 * u r / (2m), so gq_k = gy_k r/m + (gy.u) u_k / (r m) - [k = argmax] sign(u_k) (gy.u) r / m^2. */
GM_HD void gm_map_radial_vjp(const double q[3], const double gy[3], double gq[3]) {
    const double u[3] = {2.0 * q[0], 2.0 * q[1], 2.0 * q[2]};
    const double a0 = fabs(u[0]), a1 = fabs(u[1]), a2 = fabs(u[2]);
    const double m = gm_maxd(a0, gm_maxd(a1, a2));
    gq[0] = gq[1] = gq[2] = 0.0;
    if (m < 1e-8) return; /* the centre maps to 0 */
    const int km = a0 > gm_maxd(a1, a2) ? 0 : (a1 > a2 ? 1 : 2);
    const double r = sqrt(u[0] * u[0] + u[1] * u[1] + u[2] * u[2]);
    const double yu = gy[0] * u[0] + gy[1] * u[1] + gy[2] * u[2];
    for (int k = 0; k < 3; ++k) gq[k] = gy[k] * r / m + yu * u[k] / (r * m);
    gq[km] -= copysign(1.0, u[km]) * yu * r / (m * m);
}

/* gq = J^T gy for gm_map_volume_preserving at q: the chain through its two steps (sphere ->
 * cylinder: cap or side branch; cylinder -> cube: |y| <= |x| or not), each branch
 * differentiated as the forward evaluates it. */
GM_HD void gm_map_volume_preserving_vjp(const double q[3], const double gy[3], double gq[3]) {
    const double four_over_pi = 1.27323954473516268615;
    const double x = 2.0 * q[0], y = 2.0 * q[1], z = 2.0 * q[2];
    gq[0] = gq[1] = gq[2] = 0.0;
    double n2 = x * x + y * y + z * z;
    if (n2 < 1e-12) return; /* the centre maps to 0 */
    double n = sqrt(n2);
    /* sphere -> cylinder: X = x s, Y = y s, Z; ds = d s / d(x, y, z), dz = d Z / d(x, y, z) */
    double s, ds[3], dz[3];
    if (1.25 * z * z > x * x + y * y) { /* cap region: s = sqrt(3n / (n + |z|)), Z = sign(z) n */
        const double az = fabs(z), sz = copysign(1.0, z), t = n + az;
        s = sqrt(3.0 * n / t);
        const double c = 1.5 / (s * t * t); /* d s = 3 (|z| dn - n d|z|) / (2 s t^2) */
        ds[0] = c * az * x / n;
        ds[1] = c * az * y / n;
        ds[2] = c * (az * z / n - n * sz);
        dz[0] = sz * x / n;
        dz[1] = sz * y / n;
        dz[2] = sz * z / n;
    } else { /* side region: s = n / rho1 with rho1 = |(x, y)|, Z = 3/2 z */
        const double rho1 = sqrt(x * x + y * y);
        s = n / rho1;
        const double c = 1.0 / (n * rho1) - n / (rho1 * rho1 * rho1);
        ds[0] = x * c;
        ds[1] = y * c;
        ds[2] = z / (n * rho1);
        dz[0] = dz[1] = 0.0;
        dz[2] = 1.5;
    }
    const double X = x * s, Y = y * s;
    /* cylinder -> cube on (X, Y); the result is (X', Y', Z) / 2 */
    const double hx = 0.5 * gy[0], hy = 0.5 * gy[1], gZ = 0.5 * gy[2];
    double gX = 0.0, gY = 0.0;
    const double rho2 = X * X + Y * Y;
    if (!(rho2 < 1e-12)) { /* else (X', Y') = 0 */
        const double rho = sqrt(rho2);
        if (fabs(Y) <= fabs(X)) { /* X' = sx rho, Y' = sx rho 4/pi atan(Y/X) */
            const double sx = copysign(1.0, X), at = atan(Y / X);
            gX = sx * (hx * X + hy * four_over_pi * (X * at - Y)) / rho;
            gY = sx * (hx * Y + hy * four_over_pi * (Y * at + X)) / rho;
        } else { /* Y' = sy rho, X' = sy rho 4/pi atan(X/Y) */
            const double sy = copysign(1.0, Y), at = atan(X / Y);
            gX = sy * (hx * four_over_pi * (X * at + Y) + hy * X) / rho;
            gY = sy * (hx * four_over_pi * (Y * at - X) + hy * Y) / rho;
        }
    }
    const double gxy = gX * x + gY * y;
    /* d/dq = 2 d/du */
    gq[0] = 2.0 * (gX * s + gxy * ds[0] + gZ * dz[0]);
    gq[1] = 2.0 * (gY * s + gxy * ds[1] + gZ * dz[1]);
    gq[2] = 2.0 * (gxy * ds[2] + gZ * dz[2]);
}

/* From gv = d L / d v (the grid coordinate of gm_cconv_grid_coordinate) to d_rel = d L / d p
 * (the relative position) and d_ext[k] = d L / d extent_k (one extent per axis: inv = 1/extent,
 * q = p inv, so d q_k / d extent_k = -q_k inv_k). */
GM_HD void gm_cconv_coordinate_vjp(const gm_cconv_geometry* g, const double p[3], const double inv[3],
                                   const double gv[3], double d_rel[3], double d_ext[3]) {
    const double q[3] = {p[0] * inv[0], p[1] * inv[1], p[2] * inv[2]};
    double gm[3]; /* d L / d(mapped q): v = mapped q * (n - 1) (align_corners) or * n, + constants */
    for (int k = 0; k < 3; ++k) gm[k] = gv[k] * (double)(g->align_corners ? g->size[k] - 1 : g->size[k]);
    double gq[3];
    if (g->mapping == GM_MAP_BALL_TO_CUBE_RADIAL) {
        gm_map_radial_vjp(q, gm, gq);
    } else if (g->mapping == GM_MAP_BALL_TO_CUBE_VOLUME_PRESERVING) {
        gm_map_volume_preserving_vjp(q, gm, gq);
    } else {
        for (int k = 0; k < 3; ++k) gq[k] = gm[k];
    }
    for (int k = 0; k < 3; ++k) {
        d_rel[k] = gq[k] * inv[k];
        d_ext[k] = -gq[k] * q[k] * inv[k];
    }
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

/* Entries per partial sum of a shared extent's gradient (gm_cconv_bwd_extent_block): a
 * constant, so the summation order, and every bit, depends on the problem only. */
#define GM_CCONV_EXTENT_BLOCK 1024

/* The number of those partial sums for the call's entries. */
GM_HD int64_t gm_cconv_extent_blocks(const gm_cconv_grad_params* p) {
    return (p->num_entries + GM_CCONV_EXTENT_BLOCK - 1) / GM_CCONV_EXTENT_BLOCK;
}

/* Partial sum b of a shared extent's gradient: the extent gradients of the entries
 * [b * GM_CCONV_EXTENT_BLOCK, (b + 1) * GM_CCONV_EXTENT_BLOCK) in entry order, per column. */
GM_HD void gm_cconv_bwd_extent_block(const gm_cconv_grad_params* p, int64_t b, double* partial) {
    const int cols = p->extents_cols;
    const int64_t n0 = b * GM_CCONV_EXTENT_BLOCK;
    const int64_t n1 =
        n0 + GM_CCONV_EXTENT_BLOCK < p->num_entries ? n0 + GM_CCONV_EXTENT_BLOCK : p->num_entries;
    for (int k = 0; k < cols; ++k) {
        double s = 0.0;
        for (int64_t n = n0; n < n1; ++n) s += p->entry_extent_grads[cols * n + k];
        partial[b * cols + k] = s;
    }
}

#define GM_TWIN_BODY "geomops/cconv_math_impl.h"
#include "geomops/twin.h"

#endif /* GEOMOPS_CCONV_MATH_H */
