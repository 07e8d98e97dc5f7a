# Bindings for the continuous-convolution kernels (cpu/cconv.c). Arrays arrive validated,
# C-contiguous and of the right dtype from geomops.cconv; nothing here checks them again.

from libc.stdint cimport int64_t, uint8_t

from geomops._c_cconv cimport (
    gm_cconv_apply_cpu, gm_cconv_backprop_filter_cpu, gm_cconv_neighbor_products_cpu,
    gm_cconv_normalizers_cpu, gm_cconv_params, gm_invert_neighbors_cpu, gm_invert_params,
    gm_reduce_subarrays_sum_cpu)


def cconv_run(int mode, int transpose, filters, out_positions, inp_positions, extents, offset,
              inp_features, inp_importance, out_importance, neighbors_index, neighbors_importance,
              neighbors_row_splits, inp_neighbors_importance_sum, inp_neighbors_row_splits,
              int align_corners, int coordinate_mapping, int interpolation, int normalize,
              out_features_gradient, output, int64_t max_temp_bytes, int num_threads, was_zero=None):
    """mode 0: forward/transpose into output; 1: filter gradient; 2: neighbor products;
    3: the normalisers (float64 divisors into output, uint8/bool ``was_zero`` where they were 0)."""
    cdef gm_cconv_params p
    p.dtype = GM_FLOAT32 if inp_features.dtype.itemsize == 4 else GM_FLOAT64
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
    cdef uint8_t* zero = <uint8_t*>_addr(was_zero)
    cdef int status
    with nogil:
        if mode == 0:
            status = gm_cconv_apply_cpu(&p)
        elif mode == 1:
            status = gm_cconv_backprop_filter_cpu(&p)
        elif mode == 2:
            status = gm_cconv_neighbor_products_cpu(&p)
        else:
            status = gm_cconv_normalizers_cpu(&p, <double*>p.output, zero)
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
    cdef int dtype = GM_FLOAT32 if values.dtype.itemsize == 4 else GM_FLOAT64
    cdef const void* v = <const void*>_addr(values)
    cdef const int64_t* rs = <const int64_t*>_addr(row_splits)
    cdef int64_t rows = row_splits.shape[0] - 1
    cdef void* out = <void*>_addr(sums)
    cdef int status
    with nogil:
        status = gm_reduce_subarrays_sum_cpu(dtype, v, rs, rows, out, num_threads)
    _check(status)
