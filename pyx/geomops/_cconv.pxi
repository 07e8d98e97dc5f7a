# Bindings for the continuous-convolution kernels (cpu/cconv.c). Arrays arrive validated,
# C-contiguous and of the right dtype from geomops.cconv; nothing here checks them again.

from libc.stdint cimport int64_t

cdef extern from "geomops/cconv.h" nogil:
    ctypedef struct gm_cconv_params:
        int dtype, index_int64, transpose
        int64_t num_out, num_inp, in_channels, out_channels
        int filter_depth, filter_height, filter_width
        const void* filters
        const void* out_positions
        const void* inp_positions
        const void* extents
        int64_t extents_rows
        int extents_cols
        const void* offset
        const void* inp_features
        const void* inp_importance
        const void* out_importance
        const void* neighbors_index
        const void* neighbors_importance
        const int64_t* neighbors_row_splits
        const void* inp_neighbors_importance_sum
        const int64_t* inp_neighbors_row_splits
        int align_corners, coordinate_mapping, interpolation, normalize
        const void* out_features_gradient
        void* output
        int64_t max_temp_bytes
        int num_threads
    int gm_cconv_apply_cpu(const gm_cconv_params* p)
    int gm_cconv_backprop_filter_cpu(const gm_cconv_params* p)
    int gm_cconv_neighbor_products_cpu(const gm_cconv_params* p)

    ctypedef struct gm_invert_params:
        int64_t num_points, num_rows, num_entries
        int index_int64
        const void* index
        const int64_t* row_splits
        void* out_index
        int64_t* out_row_splits
        int64_t* out_permutation
    int gm_invert_neighbors_cpu(const gm_invert_params* p)
    int gm_reduce_subarrays_sum_cpu(int dtype, const void* values, const int64_t* row_splits,
                                    int64_t num_rows, void* sums, int num_threads)

def gemm_kernel_name():
    """Name of the GEMM micro-kernel selected for this CPU ("avx512", "avx2" or "generic")."""
    return cpu_kernel()


def cconv_run(int mode, int transpose, filters, out_positions, inp_positions, extents, offset,
              inp_features, inp_importance, out_importance, neighbors_index, neighbors_importance,
              neighbors_row_splits, inp_neighbors_importance_sum, inp_neighbors_row_splits,
              int align_corners, int coordinate_mapping, int interpolation, int normalize,
              out_features_gradient, output, int64_t max_temp_bytes, int num_threads):
    """mode 0: forward/transpose into output; 1: filter gradient; 2: neighbor products."""
    cdef gm_cconv_params p
    p.dtype = 0 if inp_features.dtype.itemsize == 4 else 1
    p.index_int64 = 1 if neighbors_index.dtype.itemsize == 8 else 0
    p.transpose = transpose
    p.num_out = out_positions.shape[0]
    p.num_inp = inp_positions.shape[0]
    p.in_channels = filters.shape[3]
    p.out_channels = filters.shape[4]
    p.filter_depth = filters.shape[0]
    p.filter_height = filters.shape[1]
    p.filter_width = filters.shape[2]
    p.filters = <const void*>_addr(filters)
    p.out_positions = <const void*>_addr(out_positions)
    p.inp_positions = <const void*>_addr(inp_positions)
    p.extents = <const void*>_addr(extents)
    p.extents_rows = extents.shape[0]
    p.extents_cols = extents.shape[1]
    p.offset = <const void*>_addr(offset)
    p.inp_features = <const void*>_addr(inp_features)
    p.inp_importance = <const void*>_addr(inp_importance)
    p.out_importance = <const void*>_addr(out_importance)
    p.neighbors_index = <const void*>_addr(neighbors_index)
    p.neighbors_importance = <const void*>_addr(neighbors_importance)
    p.neighbors_row_splits = <const int64_t*>_addr(neighbors_row_splits)
    p.inp_neighbors_importance_sum = <const void*>_addr(inp_neighbors_importance_sum)
    p.inp_neighbors_row_splits = <const int64_t*>_addr(inp_neighbors_row_splits)
    p.align_corners = align_corners
    p.coordinate_mapping = coordinate_mapping
    p.interpolation = interpolation
    p.normalize = normalize
    p.out_features_gradient = <const void*>_addr(out_features_gradient)
    p.output = <void*>_addr(output)
    p.max_temp_bytes = max_temp_bytes
    p.num_threads = num_threads
    cdef int status
    with nogil:
        if mode == 0:
            status = gm_cconv_apply_cpu(&p)
        elif mode == 1:
            status = gm_cconv_backprop_filter_cpu(&p)
        else:
            status = gm_cconv_neighbor_products_cpu(&p)
    _check(status)


def invert_neighbors(int64_t num_points, index, row_splits, out_index, out_row_splits, out_permutation):
    cdef gm_invert_params p
    p.num_points = num_points
    p.num_rows = row_splits.shape[0] - 1
    p.num_entries = index.shape[0]
    p.index_int64 = 1 if index.dtype.itemsize == 8 else 0
    p.index = <const void*>_addr(index)
    p.row_splits = <const int64_t*>_addr(row_splits)
    p.out_index = <void*>_addr(out_index)
    p.out_row_splits = <int64_t*>_addr(out_row_splits)
    p.out_permutation = <int64_t*>_addr(out_permutation)
    cdef int status
    with nogil:
        status = gm_invert_neighbors_cpu(&p)
    _check(status)


def reduce_subarrays_sum(values, row_splits, sums, int num_threads):
    cdef int dtype = 0 if values.dtype.itemsize == 4 else 1
    cdef const void* v = <const void*>_addr(values)
    cdef const int64_t* rs = <const int64_t*>_addr(row_splits)
    cdef int64_t rows = row_splits.shape[0] - 1
    cdef void* out = <void*>_addr(sums)
    cdef int status
    with nogil:
        status = gm_reduce_subarrays_sum_cpu(dtype, v, rs, rows, out, num_threads)
    _check(status)
