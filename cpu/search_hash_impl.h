/* Float/double body of cpu/search_hash.c (compiled per type by geomops/twin.h). */

/* bins[i] = first + hash(cell(p_i)) % tsize for the points [lo, hi) of one batch item. The voxel
 * arithmetic runs in the points' precision like Open3D's (radius cast to T, 1/(2r) in T). */
static void GM_TFN(hash_bins)(const gm_hash_table_params* p, int64_t lo, int64_t hi, int64_t first,
                              uint64_t tsize, int32_t* bins) {
    const int nt = gm_threads(p->num_threads);
    const GM_T inv = GM_TFN(gm_search_hash_inv_voxel)(p->radius);
    const GM_T* pts = (const GM_T*)p->points;
#pragma omp parallel for schedule(static) num_threads(nt) if (hi - lo > 16384)
    for (int64_t i = lo; i < hi; ++i)
        bins[i] = (int32_t)(first + (int64_t)(GM_TFN(gm_search_hash_point)(pts[3 * i], pts[3 * i + 1],
                                                                           pts[3 * i + 2], inv) %
                                              tsize));
}
