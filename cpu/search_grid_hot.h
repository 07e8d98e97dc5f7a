/* ISA body of the fixed-radius scans (compiled per ISA by isa_variants.h, inside the float/double
 * body search_grid_impl.h): one query over its runs, dispatched to the loop specialised for its
 * metric and ignore flag. */

static GM_ISA_ATTR int64_t GM_IFN(GM_TFN(frs_count))(const GM_T* x, const GM_T* y, const GM_T* z,
                                                     const int64_t* runs, int nr, GM_T qx, GM_T qy, GM_T qz,
                                                     GM_T thr, int metric, int ignore) {
#define CALL(M, I) GM_TFN(frs_count_runs)(x, y, z, runs, nr, qx, qy, qz, thr, M, I)
    FRS_DISPATCH(CALL)
#undef CALL
}

static GM_ISA_ATTR int64_t GM_IFN(GM_TFN(frs_collect))(const GM_T* x, const GM_T* y, const GM_T* z,
                                                       const int64_t* runs, int nr, GM_T qx, GM_T qy, GM_T qz,
                                                       GM_T thr, int64_t* jbuf, GM_T* dbuf, int metric,
                                                       int ignore) {
#define CALL(M, I) GM_TFN(frs_collect_runs)(x, y, z, runs, nr, qx, qy, qz, thr, jbuf, dbuf, M, I)
    FRS_DISPATCH(CALL)
#undef CALL
}
