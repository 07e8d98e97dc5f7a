/* Float/double body of geomops/search_math.h (compiled once per type by geomops/twin.h). */

/* a + b and a * b, each rounded once (the device would fuse them otherwise). */
GM_HD_INLINE GM_T GM_TFN(gm_search_add)(GM_T a, GM_T b) {
#if defined(__CUDA_ARCH__) && GM_TIS_DOUBLE
    return __dadd_rn(a, b);
#elif defined(__CUDA_ARCH__)
    return __fadd_rn(a, b);
#else
    return a + b;
#endif
}

GM_HD_INLINE GM_T GM_TFN(gm_search_mul)(GM_T a, GM_T b) {
#if defined(__CUDA_ARCH__) && GM_TIS_DOUBLE
    return __dmul_rn(a, b);
#elif defined(__CUDA_ARCH__)
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}

/* a / b, rounded once (IEEE division on the device too). */
GM_HD_INLINE GM_T GM_TFN(gm_search_div)(GM_T a, GM_T b) {
#if defined(__CUDA_ARCH__) && GM_TIS_DOUBLE
    return __ddiv_rn(a, b);
#elif defined(__CUDA_ARCH__)
    return __fdiv_rn(a, b);
#else
    return a / b;
#endif
}

/* The metric's combination of three non-negative per-axis gaps: o0*o0 + o1*o1 + o2*o2 (L2),
 * o0 + o1 + o2 (L1), max (Linf), in this order. Monotone in each gap, so for the gaps between a
 * query and a k-d tree box it is a lower bound of the distance of every point inside. `metric`
 * must be a compile-time constant at the call site (the loops are specialised per metric). */
GM_HD_INLINE GM_T GM_TFN(gm_search_combine)(GM_T o0, GM_T o1, GM_T o2, const int metric) {
    if (metric == GM_METRIC_L2) {
        const GM_T s = GM_TFN(gm_search_add)(GM_TFN(gm_search_mul)(o0, o0), GM_TFN(gm_search_mul)(o1, o1));
        return GM_TFN(gm_search_add)(s, GM_TFN(gm_search_mul)(o2, o2));
    }
    if (metric == GM_METRIC_L1) return GM_TFN(gm_search_add)(GM_TFN(gm_search_add)(o0, o1), o2);
    const GM_T m = o0 > o1 ? o0 : o1;
    return m > o2 ? m : o2;
}

/* Distance of a candidate at d = point - query: squared for L2, plain for L1 / Linf. */
GM_HD_INLINE GM_T GM_TFN(gm_search_dist)(GM_T dx, GM_T dy, GM_T dz, const int metric) {
    if (metric == GM_METRIC_L2) return GM_TFN(gm_search_combine)(dx, dy, dz, GM_METRIC_L2);
    return GM_TFN(gm_search_combine)(GM_TABS(dx), GM_TABS(dy), GM_TABS(dz), metric);
}

/* Right-hand side of a radius test and the normalisation scale: r*r for L2 (distances are
 * squared), r otherwise. */
GM_HD GM_T GM_TFN(gm_search_threshold)(GM_T r, int metric) {
    return metric == GM_METRIC_L2 ? GM_TFN(gm_search_mul)(r, r) : r;
}

/* A returned distance d of a query with radius r under normalize_distances: d / threshold. */
GM_HD GM_T GM_TFN(gm_search_normalize)(GM_T d, GM_T r, int metric) {
    return GM_TFN(gm_search_div)(d, GM_TFN(gm_search_threshold)(r, metric));
}

/* 1 / (2 r) in the points' precision, the inverse voxel size of Open3D's hash table. */
GM_HD GM_T GM_TFN(gm_search_hash_inv_voxel)(double radius) {
    const GM_T r = (GM_T)radius, vs = 2 * r;
    return 1 / vs;
}

/* floor(v) as int32 the way x86's cvtt instructions convert (Open3D's static_cast<int> there):
 * out-of-range and NaN give INT32_MIN. */
GM_HD int32_t GM_TFN(gm_search_hash_cell)(GM_T v) {
#if GM_TIS_DOUBLE
    const GM_T f = floor(v);
#else
    const GM_T f = floorf(v);
#endif
    return (f >= (GM_T)-2147483648.0 && f < (GM_T)2147483648.0) ? (int32_t)f : INT32_MIN;
}

/* Hash of the cell of point (x, y, z) in a table of inverse voxel size inv (before % T_b). */
GM_HD uint64_t GM_TFN(gm_search_hash_point)(GM_T x, GM_T y, GM_T z, GM_T inv) {
    return gm_search_spatial_hash(GM_TFN(gm_search_hash_cell)(x * inv), GM_TFN(gm_search_hash_cell)(y * inv),
                                  GM_TFN(gm_search_hash_cell)(z * inv));
}
