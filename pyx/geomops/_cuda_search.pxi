# CUDA bindings of the neighbor searches (cuda/search_*.cu), mirroring _search.pxi: the same
# names, positional arguments and semantics, with device arrays (``__cuda_array_interface__``)
# for every array and a keyword-only ``stream`` (a cudaStream_t as an int; 0: the legacy default
# stream). ``num_threads`` is accepted for the mirror and unused. A search is two calls
# (geomops/search_cuda.h): ``search_*_count`` writes the device row splits, reads only the total
# back and returns a SearchPlan; the caller allocates the device outputs for ``plan.total``
# entries and calls ``plan.fill``.

from libc.stdint cimport int32_t, int64_t, uintptr_t

from geomops._c_common cimport GM_FLOAT32, GM_FLOAT64
from geomops._c_search cimport (
    GM_METRIC_L1, GM_METRIC_L2, GM_METRIC_LINF, gm_hash_table_params, gm_grid, gm_grid_params, gm_search_plan,
    gm_fixed_radius_params, gm_tree_search_params, gm_build_spatial_hash_table_cuda,
    gm_verify_spatial_hash_table_cuda, gm_grid_build_cuda, gm_grid_free_cuda, gm_grid_matches_cuda,
    gm_grid_nbytes_cuda, gm_fixed_radius_search_count_cuda, gm_radius_search_count_cuda, gm_knn_search_count_cuda,
    gm_search_fill_cuda, gm_search_plan_free_cuda)

import numpy as _np

# metric name -> the header's gm_metric value
SEARCH_METRICS = {"L1": GM_METRIC_L1, "L2": GM_METRIC_L2, "Linf": GM_METRIC_LINF}


cdef inline object _sdtype(a):
    """The dtype of a device array (from its CUDA array interface)."""
    return _np.dtype(a.__cuda_array_interface__["typestr"])


cdef inline int _sfloat(a) except -1:
    return GM_FLOAT64 if _sdtype(a).itemsize == 8 else GM_FLOAT32


cdef class SearchPlan:
    """What a search's count phase keeps for its fill (a device plan, freed with this object).

    ``total`` is the number of neighbor entries; ``fill`` writes them and frees the plan. The
    plan holds on to the inputs it points to, so they stay alive until the fill."""
    cdef gm_search_plan *plan
    cdef readonly int64_t total
    cdef object inputs
    cdef uintptr_t stream

    def __dealloc__(self):
        gm_search_plan_free_cuda(self.plan)
        self.plan = NULL

    def fill(self, index, distance=None, *, stream=None):
        """Write the device arrays ``index`` ([total] int32/int64, as asked for at the count) and,
        when distances were asked for, ``distance`` ([total], the points' dtype), ordered on
        ``stream`` (default: the count's stream); a plan fills once."""
        if self.plan == NULL:
            raise ValueError("geomops: internal error, this search plan was already filled")
        cdef void *ip = <void *>_addr(index)
        cdef void *dp = <void *>_addr(distance)
        cdef uintptr_t s = self.stream if stream is None else stream
        cdef int status
        with nogil:
            status = gm_search_fill_cuda(self.plan, ip, dp, <void *>s)
            gm_search_plan_free_cuda(self.plan)  # ordered after the fill on s
        self.plan = NULL
        self.inputs = None
        _check(status)

    def __reduce__(self):
        raise TypeError("SearchPlan cannot be pickled")


cdef object _srch_plan(gm_search_plan *plan, int64_t total, inputs, uintptr_t stream):
    cdef SearchPlan obj
    try:
        obj = SearchPlan.__new__(SearchPlan)
    except BaseException:
        gm_search_plan_free_cuda(plan)
        raise
    obj.plan = plan
    obj.total = total
    obj.inputs = inputs
    obj.stream = stream
    return obj


cdef int _srch_table_params(gm_hash_table_params *p, points, row_splits, double radius, table_splits, index,
                            cell_splits) except -1:
    p.dtype = _sfloat(points)
    p.points = <const void *>_addr(points)
    p.num_points = points.shape[0]
    p.points_row_splits = <const int64_t *>_addr(row_splits)
    p.batch_size = row_splits.shape[0] - 1
    p.radius = radius
    p.table_splits = <const int64_t *>_addr(table_splits)
    p.index = <int32_t *>_addr(index)
    p.cell_splits = <int32_t *>_addr(cell_splits)
    p.num_threads = 1
    return 0


def search_build_hash_table(points, row_splits, double radius, table_splits, index, cell_splits, int num_threads,
                            *, uintptr_t stream=0):
    """Fill the device arrays index / cell_splits with the Open3D-compatible hash table of ``points``."""
    cdef gm_hash_table_params p
    _srch_table_params(&p, points, row_splits, radius, table_splits, index, cell_splits)
    cdef int64_t ncells = cell_splits.shape[0] - 1
    cdef int status
    with nogil:
        status = gm_build_spatial_hash_table_cuda(&p, ncells, <void *>stream)
    _check(status)


def search_verify_hash_table(points, row_splits, double radius, table_splits, index, cell_splits,
                             int num_threads, *, uintptr_t stream=0):
    """True when (index, cell_splits) is the hash table of ``points`` for ``radius`` (waits for
    ``stream``)."""
    cdef gm_hash_table_params p
    cdef int valid = 0
    _srch_table_params(&p, points, row_splits, radius, table_splits, index, cell_splits)
    cdef int64_t ncells = cell_splits.shape[0] - 1
    cdef int status
    with nogil:
        status = gm_verify_spatial_hash_table_cuda(&p, ncells, &valid, <void *>stream)
    _check(status)
    return valid != 0


cdef class SearchGrid:
    """Opaque device cell grid of a point set for one radius (used by fixed_radius_search)."""
    cdef gm_grid *grid
    cdef readonly double radius
    cdef readonly object dtype

    def __dealloc__(self):
        gm_grid_free_cuda(self.grid)
        self.grid = NULL

    def matches(self, points, *, uintptr_t stream=0):
        """True when the device array ``points`` holds the coordinates it was built from."""
        cdef int match = 0
        if _sdtype(points) != self.dtype:
            return False
        cdef const void *ptr = <const void *>_addr(points)
        cdef int64_t n = points.shape[0]
        cdef int status
        with nogil:
            status = gm_grid_matches_cuda(self.grid, ptr, n, &match, <void *>stream)
        _check(status)
        return match != 0

    @property
    def nbytes(self):
        return gm_grid_nbytes_cuda(self.grid)

    def __reduce__(self):
        raise TypeError("SearchGrid cannot be pickled; it is rebuilt on demand")


def search_grid_build(points, row_splits, double radius, int num_threads, *, uintptr_t stream=0):
    """Build the fixed-radius search grid of the device array ``points``."""
    cdef gm_grid_params p
    cdef gm_grid *g = NULL
    cdef int status
    p.dtype = _sfloat(points)
    p.points = <const void *>_addr(points)
    p.num_points = points.shape[0]
    p.points_row_splits = <const int64_t *>_addr(row_splits)
    p.batch_size = row_splits.shape[0] - 1
    p.radius = radius
    p.num_threads = 1
    with nogil:
        status = gm_grid_build_cuda(&p, &g, <void *>stream)
    _check(status)
    cdef SearchGrid obj
    try:
        obj = SearchGrid.__new__(SearchGrid)
    except BaseException:
        gm_grid_free_cuda(g)
        raise
    obj.grid = g
    obj.radius = radius
    obj.dtype = _sdtype(points)
    return obj


def search_fixed_radius_count(SearchGrid grid, queries, queries_row_splits, row_splits_out, metric,
                              bint ignore_query_point, bint return_distances, bint sort, bint index_is64,
                              int num_threads, *, uintptr_t stream=0):
    """Count phase of fixed_radius_search: fills the device row_splits_out, returns the SearchPlan."""
    cdef gm_fixed_radius_params p
    cdef gm_search_plan *plan = NULL
    cdef int64_t total = 0
    cdef int64_t *rs = <int64_t *>_addr(row_splits_out)
    cdef int status
    p.grid = grid.grid
    p.queries = <const void *>_addr(queries)
    p.num_queries = queries.shape[0]
    p.queries_row_splits = <const int64_t *>_addr(queries_row_splits)
    p.metric = SEARCH_METRICS[metric]
    p.ignore_query_point = ignore_query_point
    p.return_distances = return_distances
    p.sort = sort
    p.index_is64 = index_is64
    p.num_threads = 1
    with nogil:
        status = gm_fixed_radius_search_count_cuda(&p, rs, &total, &plan, <void *>stream)
    _check(status)
    return _srch_plan(plan, total, (grid, queries, queries_row_splits), stream)


cdef int _srch_tree_params(gm_tree_search_params *p, points, points_row_splits, queries, queries_row_splits,
                           metric, bint ignore_query_point, bint return_distances, bint index_is64) except -1:
    p.dtype = _sfloat(points)
    p.points = <const void *>_addr(points)
    p.num_points = points.shape[0]
    p.points_row_splits = <const int64_t *>_addr(points_row_splits)
    p.queries = <const void *>_addr(queries)
    p.num_queries = queries.shape[0]
    p.queries_row_splits = <const int64_t *>_addr(queries_row_splits)
    p.batch_size = points_row_splits.shape[0] - 1
    p.metric = SEARCH_METRICS[metric]
    p.ignore_query_point = ignore_query_point
    p.return_distances = return_distances
    p.index_is64 = index_is64
    p.num_threads = 1
    p.radii = NULL
    p.normalize_distances = 0
    p.sort = 0
    p.k = 0
    return 0


def search_radius_count(points, points_row_splits, queries, queries_row_splits, radii, row_splits_out, metric,
                        bint ignore_query_point, bint return_distances, bint normalize_distances, bint sort,
                        bint index_is64, int num_threads, *, uintptr_t stream=0):
    """Count phase of radius_search (per-query radii): fills the device row_splits_out, returns the
    SearchPlan."""
    cdef gm_tree_search_params p
    cdef gm_search_plan *plan = NULL
    cdef int64_t total = 0
    cdef int64_t *rs = <int64_t *>_addr(row_splits_out)
    cdef int status
    _srch_tree_params(&p, points, points_row_splits, queries, queries_row_splits, metric, ignore_query_point,
                      return_distances, index_is64)
    p.radii = <const void *>_addr(radii)
    p.normalize_distances = normalize_distances
    p.sort = sort
    with nogil:
        status = gm_radius_search_count_cuda(&p, rs, &total, &plan, <void *>stream)
    _check(status)
    return _srch_plan(plan, total, (points, points_row_splits, queries, queries_row_splits, radii), stream)


def search_knn_count(points, points_row_splits, queries, queries_row_splits, int64_t k, row_splits_out, metric,
                     bint ignore_query_point, bint return_distances, bint index_is64, int num_threads, *,
                     uintptr_t stream=0):
    """Count phase of knn_search: fills the device row_splits_out, returns the SearchPlan."""
    cdef gm_tree_search_params p
    cdef gm_search_plan *plan = NULL
    cdef int64_t total = 0
    cdef int64_t *rs = <int64_t *>_addr(row_splits_out)
    cdef int status
    _srch_tree_params(&p, points, points_row_splits, queries, queries_row_splits, metric, ignore_query_point,
                      return_distances, index_is64)
    p.k = k
    with nogil:
        status = gm_knn_search_count_cuda(&p, rs, &total, &plan, <void *>stream)
    _check(status)
    return _srch_plan(plan, total, (points, points_row_splits, queries, queries_row_splits), stream)
