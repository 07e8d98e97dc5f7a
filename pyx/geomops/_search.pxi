# Bindings for the search kernels (cpu/search_*.c). The facade (search.py) validates every
# argument and passes C-contiguous arrays. A search is two calls (geomops/search.h): its
# ``search_*_count`` fills the row splits and returns a SearchPlan; the facade allocates the
# outputs for ``plan.total`` entries and calls ``plan.fill``.

from libc.stdint cimport int32_t, int64_t

from geomops._c_search cimport (
    GM_METRIC_L1, GM_METRIC_L2, GM_METRIC_LINF, gm_hash_table_params, gm_grid, gm_grid_params,
    gm_search_plan, gm_fixed_radius_params, gm_tree_search_params, gm_build_spatial_hash_table_cpu,
    gm_verify_spatial_hash_table_cpu, gm_grid_build_cpu, gm_grid_free, gm_grid_matches_cpu, gm_grid_nbytes,
    gm_fixed_radius_search_count_cpu, gm_radius_search_count_cpu, gm_knn_search_count_cpu, gm_search_fill_cpu,
    gm_search_plan_free)

# metric name -> the header's gm_metric value
SEARCH_METRICS = {"L1": GM_METRIC_L1, "L2": GM_METRIC_L2, "Linf": GM_METRIC_LINF}


cdef inline const void *_srch_ptr(a) except NULL:
    """Data pointer of a validated, C-contiguous NumPy array."""
    cdef size_t addr = _addr(a)
    if addr == 0:
        raise ValueError("geomops: internal error, array without data")
    return <const void *>addr


cdef inline int _srch_dtype(a) except -1:
    return GM_FLOAT64 if a.dtype.itemsize == 8 else GM_FLOAT32


cdef class SearchPlan:
    """What a search's count phase keeps for its fill (a native plan, freed with this object).

    ``total`` is the number of neighbor entries; ``fill`` writes them and frees the plan. The
    plan holds on to the inputs it points to, so they stay alive until the fill."""
    cdef gm_search_plan *plan
    cdef readonly int64_t total
    cdef object inputs

    def __dealloc__(self):
        gm_search_plan_free(self.plan)
        self.plan = NULL

    def fill(self, index, distance=None):
        """Write ``index`` ([total] int32/int64, as asked for at the count) and, when distances
        were asked for, ``distance`` ([total], the points' dtype); a plan fills once."""
        if self.plan == NULL:
            raise ValueError("geomops: internal error, this search plan was already filled")
        cdef void *ip = <void *>_addr(index)
        cdef void *dp = <void *>_addr(distance)
        cdef int status
        with nogil:
            status = gm_search_fill_cpu(self.plan, ip, dp)
        gm_search_plan_free(self.plan)
        self.plan = NULL
        self.inputs = None
        _check(status)

    def __reduce__(self):
        raise TypeError("SearchPlan cannot be pickled")


cdef object _srch_plan(gm_search_plan *plan, int64_t total, inputs):
    cdef SearchPlan obj
    try:
        obj = SearchPlan.__new__(SearchPlan)
    except BaseException:
        gm_search_plan_free(plan)
        raise
    obj.plan = plan
    obj.total = total
    obj.inputs = inputs
    return obj


def search_build_hash_table(points, const int64_t[::1] row_splits, double radius,
                            const int64_t[::1] table_splits, int32_t[::1] index,
                            int32_t[::1] cell_splits, int num_threads):
    """Fill index / cell_splits with the Open3D-compatible hash table of ``points``."""
    cdef gm_hash_table_params p
    p.dtype = _srch_dtype(points)
    p.points = _srch_ptr(points)
    p.num_points = points.shape[0]
    p.points_row_splits = &row_splits[0]
    p.batch_size = row_splits.shape[0] - 1
    p.radius = radius
    p.table_splits = &table_splits[0]
    p.index = &index[0] if index.shape[0] else NULL
    p.cell_splits = &cell_splits[0]
    p.num_threads = num_threads
    cdef int status
    with nogil:
        status = gm_build_spatial_hash_table_cpu(&p)
    _check(status)


def search_verify_hash_table(points, const int64_t[::1] row_splits, double radius,
                             const int64_t[::1] table_splits, const int32_t[::1] index,
                             const int32_t[::1] cell_splits, int num_threads):
    """True when (index, cell_splits) is the hash table of ``points`` for ``radius``."""
    cdef gm_hash_table_params p
    cdef int valid = 0
    p.dtype = _srch_dtype(points)
    p.points = _srch_ptr(points)
    p.num_points = points.shape[0]
    p.points_row_splits = &row_splits[0]
    p.batch_size = row_splits.shape[0] - 1
    p.radius = radius
    p.table_splits = &table_splits[0]
    p.index = <int32_t *>&index[0] if index.shape[0] else NULL
    p.cell_splits = <int32_t *>&cell_splits[0]
    p.num_threads = num_threads
    cdef int status
    with nogil:
        status = gm_verify_spatial_hash_table_cpu(&p, &valid)
    _check(status)
    return valid != 0


cdef class SearchGrid:
    """Opaque cell grid of a point set for one radius (used by fixed_radius_search)."""
    cdef gm_grid *grid
    cdef readonly double radius
    cdef readonly object dtype

    def __dealloc__(self):
        gm_grid_free(self.grid)
        self.grid = NULL

    def matches(self, points):
        """True when ``points`` (validated, C-contiguous) are the coordinates it was built from."""
        cdef int match = 0
        cdef const void *ptr = _srch_ptr(points)
        cdef int64_t n = points.shape[0]
        if points.dtype != self.dtype:
            return False
        cdef int status
        with nogil:
            status = gm_grid_matches_cpu(self.grid, ptr, n, &match)
        _check(status)
        return match != 0

    @property
    def nbytes(self):
        return gm_grid_nbytes(self.grid)

    def __reduce__(self):
        raise TypeError("SearchGrid cannot be pickled; it is rebuilt on demand")


def search_grid_build(points, const int64_t[::1] row_splits, double radius, int num_threads):
    """Build the fixed-radius search grid of ``points``."""
    cdef gm_grid_params p
    cdef gm_grid *g = NULL
    cdef int status
    p.dtype = _srch_dtype(points)
    p.points = _srch_ptr(points)
    p.num_points = points.shape[0]
    p.points_row_splits = &row_splits[0]
    p.batch_size = row_splits.shape[0] - 1
    p.radius = radius
    p.num_threads = num_threads
    with nogil:
        status = gm_grid_build_cpu(&p, &g)
    _check(status)
    cdef SearchGrid obj
    try:
        obj = SearchGrid.__new__(SearchGrid)
    except BaseException:
        gm_grid_free(g)
        raise
    obj.grid = g
    obj.radius = radius
    obj.dtype = points.dtype
    return obj


def search_fixed_radius_count(SearchGrid grid, queries, const int64_t[::1] queries_row_splits,
                              int64_t[::1] row_splits_out, metric, bint ignore_query_point,
                              bint return_distances, bint sort, bint index_is64, int num_threads):
    """Count phase of fixed_radius_search: fills row_splits_out, returns the SearchPlan."""
    cdef gm_fixed_radius_params p
    cdef gm_search_plan *plan = NULL
    cdef int64_t total = 0
    cdef int status
    p.grid = grid.grid
    p.queries = _srch_ptr(queries)
    p.num_queries = queries.shape[0]
    p.queries_row_splits = &queries_row_splits[0]
    p.metric = SEARCH_METRICS[metric]
    p.ignore_query_point = ignore_query_point
    p.return_distances = return_distances
    p.sort = sort
    p.index_is64 = index_is64
    p.num_threads = num_threads
    with nogil:
        status = gm_fixed_radius_search_count_cpu(&p, &row_splits_out[0], &total, &plan)
    _check(status)
    return _srch_plan(plan, total, (grid, queries, queries_row_splits))


cdef int _srch_tree_params(gm_tree_search_params *p, points, const int64_t[::1] points_row_splits, queries,
                           const int64_t[::1] queries_row_splits, metric, bint ignore_query_point,
                           bint return_distances, bint index_is64, int num_threads) except -1:
    p.dtype = _srch_dtype(points)
    p.points = _srch_ptr(points)
    p.num_points = points.shape[0]
    p.points_row_splits = &points_row_splits[0]
    p.queries = _srch_ptr(queries)
    p.num_queries = queries.shape[0]
    p.queries_row_splits = &queries_row_splits[0]
    p.batch_size = points_row_splits.shape[0] - 1
    p.metric = SEARCH_METRICS[metric]
    p.ignore_query_point = ignore_query_point
    p.return_distances = return_distances
    p.index_is64 = index_is64
    p.num_threads = num_threads
    p.radii = NULL
    p.normalize_distances = 0
    p.sort = 0
    p.k = 0
    return 0


def search_radius_count(points, const int64_t[::1] points_row_splits, queries,
                        const int64_t[::1] queries_row_splits, radii, int64_t[::1] row_splits_out, metric,
                        bint ignore_query_point, bint return_distances, bint normalize_distances, bint sort,
                        bint index_is64, int num_threads):
    """Count phase of radius_search (per-query radii): fills row_splits_out, returns the SearchPlan."""
    cdef gm_tree_search_params p
    cdef gm_search_plan *plan = NULL
    cdef int64_t total = 0
    cdef int status
    _srch_tree_params(&p, points, points_row_splits, queries, queries_row_splits, metric, ignore_query_point,
                      return_distances, index_is64, num_threads)
    p.radii = _srch_ptr(radii)
    p.normalize_distances = normalize_distances
    p.sort = sort
    with nogil:
        status = gm_radius_search_count_cpu(&p, &row_splits_out[0], &total, &plan)
    _check(status)
    return _srch_plan(plan, total, (points, points_row_splits, queries, queries_row_splits, radii))


def search_knn_count(points, const int64_t[::1] points_row_splits, queries,
                     const int64_t[::1] queries_row_splits, int64_t k, int64_t[::1] row_splits_out, metric,
                     bint ignore_query_point, bint return_distances, bint index_is64, int num_threads):
    """Count phase of knn_search: fills row_splits_out, returns the SearchPlan."""
    cdef gm_tree_search_params p
    cdef gm_search_plan *plan = NULL
    cdef int64_t total = 0
    cdef int status
    _srch_tree_params(&p, points, points_row_splits, queries, queries_row_splits, metric, ignore_query_point,
                      return_distances, index_is64, num_threads)
    p.k = k
    with nogil:
        status = gm_knn_search_count_cpu(&p, &row_splits_out[0], &total, &plan)
    _check(status)
    return _srch_plan(plan, total, (points, points_row_splits, queries, queries_row_splits))
