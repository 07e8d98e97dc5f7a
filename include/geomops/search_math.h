/* Per-candidate formulas of the neighbor searches (docs/search.md, "Semantics" and "How it
 * works"), shared by the OpenMP kernels (cpu/search_*.c) and CUDA (cuda/search_math_check.cu
 * compiles this header with nvcc). C11 and CUDA C++: GM_HD functions only.
 *
 * Distances are rounded once per operation in the points' precision, never fused into an FMA,
 * so every ISA variant and both backends give the same bits: the device path spells the
 * roundings out (__fmul_rn, ...) and host includers compile with contraction off (the pragma
 * at the top of cpu/search_grid.c and cpu/search_kdtree.c, before any include). */
#ifndef GEOMOPS_SEARCH_MATH_H
#define GEOMOPS_SEARCH_MATH_H

#include <math.h>
#include <stdint.h>

#include "geomops/common.h"
#include "geomops/search_types.h"

/* Open3D's SpatialHash of a hash-table cell: wrapping 32-bit int arithmetic, then sign-extended
 * to 64 bits. */
GM_HD uint64_t gm_search_spatial_hash(int32_t x, int32_t y, int32_t z) {
    const uint32_t h = ((uint32_t)x * 73856096u) ^ ((uint32_t)y * 193649663u) ^ ((uint32_t)z * 83492791u);
    return (uint64_t)(int64_t)(int32_t)h;
}

/* Mixed-radix key of fixed-radius grid cell (cx, cy, cz), keyed (z, y, x); coordinates may lie
 * in [-2, dim+1] (a 2-cell margin each side for queries). dims: cells per axis of the item. */
GM_HD uint64_t gm_search_grid_key(int64_t cx, int64_t cy, int64_t cz, const int64_t* dims) {
    return ((uint64_t)(cz + 2) * (uint64_t)(dims[1] + 4) + (uint64_t)(cy + 2)) * (uint64_t)(dims[0] + 4) +
           (uint64_t)(cx + 2);
}

/* The cell coordinate in [lo, hi] of coordinate v along one axis of a grid with origin o and
 * inverse cell edge inv (clamped; NaN gives lo). */
GM_HD int64_t gm_search_grid_coord(double v, double o, double inv, int64_t lo, int64_t hi) {
    const double f = floor((v - o) * inv);
    if (!(f >= (double)lo)) return lo;
    if (f > (double)hi) return hi;
    return (int64_t)f;
}

/* Inverse of gm_search_grid_key. */
GM_HD void gm_search_grid_decode(uint64_t key, const int64_t* dims, int64_t* cx, int64_t* cy, int64_t* cz) {
    const uint64_t rx = (uint64_t)(dims[0] + 4), ry = (uint64_t)(dims[1] + 4);
    *cx = (int64_t)(key % rx) - 2;
    key /= rx;
    *cy = (int64_t)(key % ry) - 2;
    *cz = (int64_t)(key / ry) - 2;
}

/* Cells per axis of a search grid are capped so that a key (with a 2-cell margin each side for
 * queries) fits 64 bits; only an extent / cell edge ratio above 2^20 coarsens a grid. */
#define GM_SEARCH_GRID_MAX_DIM 1048576.0

/* The batch item of entry q of a row-split array of nb items: the last b with splits[b] <= q
 * (items may be empty). */
GM_HD int64_t gm_search_item_of(const int64_t* splits, int64_t nb, int64_t q) {
    int64_t lo = 0, hi = nb; /* answer in [lo, hi) */
    while (hi - lo > 1) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (splits[mid] <= q)
            lo = mid;
        else
            hi = mid;
    }
    while (lo + 1 < nb && splits[lo + 1] <= q) ++lo;
    return lo;
}

/* First position in [lo, hi) with keys[pos] >= key. */
GM_HD int64_t gm_search_lower_bound_u64(const uint64_t* keys, int64_t lo, int64_t hi, uint64_t key) {
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (keys[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Geometry of the cell grid of one non-empty batch item whose coordinates span [mn, mx] (per
 * axis, as doubles), for cells of edge >= r: edge r padded by 1e-5 relative (so rounding can
 * never put a point within r of a query outside the 3x3x3 cells around the query's cell),
 * coarsened so that no axis has more than GM_SEARCH_GRID_MAX_DIM cells, the extent (or 1) when
 * that leaves no usable edge. Writes the origin (mn), the cell edge, its inverse and the cells
 * per axis. */
GM_HD void gm_search_grid_geometry(const double* mn, const double* mx, double r, double* origin, double* cell,
                                   double* inv_cell, int64_t* dims) {
    double ext = mx[0] - mn[0];
    ext = mx[1] - mn[1] > ext ? mx[1] - mn[1] : ext;
    ext = mx[2] - mn[2] > ext ? mx[2] - mn[2] : ext;
    double cs = r * (1.0 + 1e-5);
    if (ext / GM_SEARCH_GRID_MAX_DIM > cs) cs = ext / GM_SEARCH_GRID_MAX_DIM;
    if (!(cs > 0) || !isfinite(1.0 / cs)) cs = ext > 0 ? ext : 1.0;
    const double inv = 1.0 / cs;
    *cell = cs;
    *inv_cell = inv;
    for (int k = 0; k < 3; ++k) {
        origin[k] = mn[k];
        const double d = floor((mx[k] - mn[k]) * inv) + 1;
        dims[k] = d > GM_SEARCH_GRID_MAX_DIM + 2 ? (int64_t)GM_SEARCH_GRID_MAX_DIM + 2 : (int64_t)d;
    }
}

/* The occupied cells of grid row (y, z), x in [xlo, xhi], of an item whose sorted cell keys are
 * ckey[from, end): the cell indices [*i0, *i1). */
GM_HD void gm_search_grid_row(const uint64_t* ckey, int64_t from, int64_t end, int64_t xlo, int64_t xhi,
                              int64_t y, int64_t z, const int64_t* dims, int64_t* i0, int64_t* i1) {
    *i0 = gm_search_lower_bound_u64(ckey, from, end, gm_search_grid_key(xlo, y, z, dims));
    *i1 = gm_search_lower_bound_u64(ckey, *i0, end, gm_search_grid_key(xhi, y, z, dims) + 1);
}

/* Cell edge of a kNN grid (CUDA backend) for an item of n points spanning ext[3] per axis:
 * about `target` points per cell were the points spread evenly over the box, over its 3, 2 or 1
 * non-degenerate axes (a flat or linear item gets square or linear cells); 0 when all points
 * coincide. Only the speed of the search depends on it. */
GM_HD double gm_search_knn_edge(const double* ext, int64_t n, double target) {
    double e[3] = {ext[0], ext[1], ext[2]};
    for (int i = 0; i < 2; ++i) /* descending */
        for (int j = 0; j < 2 - i; ++j)
            if (e[j] < e[j + 1]) {
                const double t = e[j];
                e[j] = e[j + 1];
                e[j + 1] = t;
            }
    const double per = target / (double)(n > 0 ? n : 1);
    const double h3 = cbrt(e[0] * e[1] * e[2] * per);
    if (h3 > 0 && h3 <= e[2]) return h3;
    const double h2 = sqrt(e[0] * e[1] * per);
    if (h2 > 0 && h2 <= e[1]) return h2;
    const double h1 = e[0] * per;
    return h1 < e[0] ? h1 : e[0];
}

/* A lower bound, in coordinate units, of |v - q| along one axis for the points v of grid cell j
 * (CUDA backend): the query is at u = (q - origin) * inv_cell cells, the grid has cells of edge
 * `cell`. 1e-6 cells of slack cover the roundings of u and of the points' own cell coordinates;
 * the distance roundings are covered by gm_search_bound. */
GM_HD double gm_search_cell_gap(double u, int64_t j, double cell) {
    const double a = (double)j - u, b = u - (double)(j + 1);
    const double g = (a > b ? a : b) - 1e-6;
    return g > 0 ? g * cell : 0.0;
}

#define GM_TWIN_BODY "geomops/search_math_impl.h"
#include "geomops/twin.h"

/* A lower bound of every distance computed by gm_search_dist in precision `dtype` (GM_FLOAT32 /
 * GM_FLOAT64) of the points whose per-axis gaps to the query are at least gx, gy, gz
 * (gm_search_cell_gap): the gaps combined in double, lowered by 1e-5 relative and a few of the
 * type's smallest subnormals, more than the roundings of a distance can take away. */
GM_HD double gm_search_bound(double gx, double gy, double gz, const int metric, int dtype) {
    const double tiny = dtype == GM_FLOAT64 ? 1e-320 : 1e-42;
    return gm_search_combine_f64(gx, gy, gz, metric) * (1.0 - 1e-5) - tiny;
}

#endif /* GEOMOPS_SEARCH_MATH_H */
