# Bindings for the search kernels (cpu/search_*.c). The facade (search.py) validates every
# argument and passes C-contiguous arrays; results the kernels malloc are adopted by Cython
# arrays that free() them when the last NumPy view is gone.

from libc.stdint cimport int32_t as _srch_i32, int64_t as _srch_i64
from libc.stdlib cimport free as _srch_free
from cython.view cimport array as _srch_array

cdef extern from "geomops/search.h" nogil:
    int GM_METRIC_L1, GM_METRIC_L2, GM_METRIC_LINF

    ctypedef struct gm_hash_table_params:
        int dtype
        const void *points
        _srch_i64 num_points
        const _srch_i64 *points_row_splits
        _srch_i64 batch_size
        double radius
        const _srch_i64 *table_splits
        _srch_i32 *index
        _srch_i32 *cell_splits
        int num_threads

    int gm_build_spatial_hash_table_cpu(const gm_hash_table_params *p)
    int gm_verify_spatial_hash_table_cpu(const gm_hash_table_params *p, int *valid)

    ctypedef struct gm_grid:
        pass

    ctypedef struct gm_grid_params:
        int dtype
        const void *points
        _srch_i64 num_points
        const _srch_i64 *points_row_splits
        _srch_i64 batch_size
        double radius
        int num_threads

    int gm_grid_build_cpu(const gm_grid_params *p, gm_grid **out)
    void gm_grid_free(gm_grid *g)
    int gm_grid_matches_cpu(const gm_grid *g, const void *points, _srch_i64 num_points, int *match)
    _srch_i64 gm_grid_nbytes(const gm_grid *g)

    ctypedef struct gm_search_output:
        _srch_i64 *row_splits
        void **index
        void **distance
        _srch_i64 *total

    ctypedef struct gm_fixed_radius_params:
        const gm_grid *grid
        const void *queries
        _srch_i64 num_queries
        const _srch_i64 *queries_row_splits
        int metric
        int ignore_query_point
        int return_distances
        int sort
        int index_is64
        int num_threads
        gm_search_output out

    int gm_fixed_radius_search_cpu(const gm_fixed_radius_params *p)

    ctypedef struct gm_tree_search_params:
        int dtype
        const void *points
        _srch_i64 num_points
        const _srch_i64 *points_row_splits
        const void *queries
        _srch_i64 num_queries
        const _srch_i64 *queries_row_splits
        _srch_i64 batch_size
        int metric
        int ignore_query_point
        int return_distances
        int index_is64
        int num_threads
        const void *radii
        int normalize_distances
        int sort
        _srch_i64 k
        gm_search_output out

    int gm_radius_search_cpu(const gm_tree_search_params *p)
    int gm_knn_search_cpu(const gm_tree_search_params *p)


_SEARCH_METRICS = {"L1": GM_METRIC_L1, "L2": GM_METRIC_L2, "Linf": GM_METRIC_LINF}


cdef inline const void *_srch_ptr(a) except NULL:
    """Data pointer of a validated, C-contiguous, non-empty-or-empty NumPy array."""
    cdef size_t addr = _addr(a)
    if addr == 0:
        raise ValueError("geomops: internal error, array without data")
    return <const void *>addr


cdef inline int _srch_dtype(a) except -1:
    return GM_FLOAT64 if a.dtype.itemsize == 8 else GM_FLOAT32


cdef object _srch_adopt(void *ptr, _srch_i64 n, Py_ssize_t itemsize, fmt):
    """A Cython array owning malloc'ed memory (freed with it); None when empty."""
    cdef _srch_array arr
    if ptr == NULL or n <= 0:
        _srch_free(ptr)
        return None
    try:
        arr = _srch_array(shape=(n,), itemsize=itemsize, format=fmt, mode="c", allocate_buffer=False)
    except BaseException:
        _srch_free(ptr)
        raise
    arr.data = <char *>ptr
    arr.callback_free_data = _srch_free
    return arr


cdef object _srch_adopt_pair(void *idx, void *dist, _srch_i64 total, bint index_is64, Py_ssize_t tsize):
    try:
        index = _srch_adopt(idx, total, 8 if index_is64 else 4, "q" if index_is64 else "i")
    except BaseException:
        _srch_free(dist)
        raise
    distance = _srch_adopt(dist, total, tsize, "d" if tsize == 8 else "f")
    return index, distance


def search_build_hash_table(points, const _srch_i64[::1] row_splits, double radius,
                            const _srch_i64[::1] table_splits, _srch_i32[::1] index,
                            _srch_i32[::1] cell_splits, int num_threads):
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


def search_verify_hash_table(points, const _srch_i64[::1] row_splits, double radius,
                             const _srch_i64[::1] table_splits, const _srch_i32[::1] index,
                             const _srch_i32[::1] cell_splits, int num_threads):
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
    p.index = <_srch_i32 *>&index[0] if index.shape[0] else NULL
    p.cell_splits = <_srch_i32 *>&cell_splits[0]
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
        cdef _srch_i64 n = points.shape[0]
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


def search_grid_build(points, const _srch_i64[::1] row_splits, double radius, int num_threads):
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
    cdef SearchGrid obj = SearchGrid.__new__(SearchGrid)
    obj.grid = g
    obj.radius = radius
    obj.dtype = points.dtype
    return obj


def search_fixed_radius(SearchGrid grid, queries, const _srch_i64[::1] queries_row_splits,
                        _srch_i64[::1] row_splits_out, metric, bint ignore_query_point,
                        bint return_distances, bint sort, bint index_is64, int num_threads):
    """Fixed-radius search; fills row_splits_out and returns (index, distance) buffers or None."""
    cdef gm_fixed_radius_params p
    cdef void *idx = NULL
    cdef void *dist = NULL
    cdef _srch_i64 total = 0
    cdef int status
    p.grid = grid.grid
    p.queries = _srch_ptr(queries)
    p.num_queries = queries.shape[0]
    p.queries_row_splits = &queries_row_splits[0]
    p.metric = _SEARCH_METRICS[metric]
    p.ignore_query_point = ignore_query_point
    p.return_distances = return_distances
    p.sort = sort
    p.index_is64 = index_is64
    p.num_threads = num_threads
    p.out.row_splits = &row_splits_out[0]
    p.out.index = &idx
    p.out.distance = &dist
    p.out.total = &total
    with nogil:
        status = gm_fixed_radius_search_cpu(&p)
    _check(status)
    cdef Py_ssize_t tsize = queries.dtype.itemsize
    return _srch_adopt_pair(idx, dist, total, index_is64, tsize)


def search_tree(kind, points, const _srch_i64[::1] points_row_splits, queries,
                const _srch_i64[::1] queries_row_splits, _srch_i64[::1] row_splits_out, metric,
                bint ignore_query_point, bint return_distances, bint index_is64, int num_threads,
                radii=None, bint normalize_distances=False, bint sort=False, _srch_i64 k=0):
    """radius_search (kind 'radius', per-query radii) or knn_search (kind 'knn')."""
    cdef gm_tree_search_params p
    cdef void *idx = NULL
    cdef void *dist = NULL
    cdef _srch_i64 total = 0
    cdef int status
    cdef bint is_knn = kind == "knn"
    p.dtype = _srch_dtype(points)
    p.points = _srch_ptr(points)
    p.num_points = points.shape[0]
    p.points_row_splits = &points_row_splits[0]
    p.queries = _srch_ptr(queries)
    p.num_queries = queries.shape[0]
    p.queries_row_splits = &queries_row_splits[0]
    p.batch_size = points_row_splits.shape[0] - 1
    p.metric = _SEARCH_METRICS[metric]
    p.ignore_query_point = ignore_query_point
    p.return_distances = return_distances
    p.index_is64 = index_is64
    p.num_threads = num_threads
    p.radii = _srch_ptr(radii) if radii is not None else NULL
    p.normalize_distances = normalize_distances
    p.sort = sort
    p.k = k
    p.out.row_splits = &row_splits_out[0]
    p.out.index = &idx
    p.out.distance = &dist
    p.out.total = &total
    if not is_knn and p.radii == NULL:
        raise ValueError("geomops: internal error, radius search without radii")
    with nogil:
        if is_knn:
            status = gm_knn_search_cpu(&p)
        else:
            status = gm_radius_search_cpu(&p)
    _check(status)
    cdef Py_ssize_t tsize = queries.dtype.itemsize
    return _srch_adopt_pair(idx, dist, total, index_is64, tsize)
