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

#define GM_TWIN_BODY "geomops/search_math_impl.h"
#include "geomops/twin.h"

#endif /* GEOMOPS_SEARCH_MATH_H */
