# The continuous-convolution parameter structs filled from validated arrays (NumPy arrays for
# _cpu, device arrays for the CUDA modules; pointers only through _addr). Included by _cconv.pxi
# and _cuda_cconv.pxi, so both backends read their arguments the same way.

from libc.stdint cimport int64_t, uint8_t

from geomops._c_common cimport GM_FLOAT32, GM_FLOAT64
from geomops._c_cconv cimport gm_cconv_grad_params, gm_cconv_params, gm_invert_params


cdef int _fill_cconv(gm_cconv_params* p, int transpose, filters, out_positions, inp_positions, extents,
                     offset, inp_features, inp_importance, out_importance, neighbors_index,
                     neighbors_importance, neighbors_row_splits, inp_neighbors_importance_sum,
                     inp_neighbors_row_splits, int align_corners, int coordinate_mapping,
                     int interpolation, int normalize, out_features_gradient, output,
                     int64_t max_temp_bytes, int num_threads, bint allow_tf32, entry_position_grads=None,
                     entry_extent_grads=None) except -1:
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
    p.allow_tf32 = 1 if allow_tf32 else 0
    p.entry_position_grads = <double*>_addr(entry_position_grads)
    p.entry_extent_grads = <double*>_addr(entry_extent_grads)
    return 0


cdef int _fill_grad(gm_cconv_grad_params* p, int transpose, neighbors_index, neighbors_row_splits,
                    neighbors_importance, point_importance, divisor, was_zero, inv_index, inv_row_splits,
                    inv_permutation, products, inv_weights, d_point_importance, d_neighbors_importance,
                    d_importance_sum, int num_threads, entry_position_grads=None, entry_extent_grads=None,
                    d_out_positions=None, d_inp_positions=None, d_extents=None) except -1:
    typed = [a for a in (inv_weights, d_point_importance, d_neighbors_importance, d_importance_sum,
                         d_out_positions, d_inp_positions, d_extents) if a is not None]
    p.dtype = GM_FLOAT32 if typed[0].dtype.itemsize == 4 else GM_FLOAT64
    p.index_int64 = 1 if neighbors_index.dtype.itemsize == 8 else 0
    p.transpose = transpose
    p.num_out = neighbors_row_splits.shape[0] - 1
    p.num_inp = inv_row_splits.shape[0] - 1
    p.num_entries = neighbors_index.shape[0]
    p.neighbors_index = <const void*>_addr(neighbors_index)
    p.neighbors_row_splits = <const int64_t*>_addr(neighbors_row_splits)
    p.neighbors_importance = <const void*>_addr(neighbors_importance)
    p.point_importance = <const void*>_addr(point_importance)
    p.divisor = <const double*>_addr(divisor)
    p.was_zero = <const uint8_t*>_addr(was_zero)
    p.inv_index = <const void*>_addr(inv_index)
    p.inv_row_splits = <const int64_t*>_addr(inv_row_splits)
    p.inv_permutation = <const int64_t*>_addr(inv_permutation)
    p.products = <const double*>_addr(products)
    p.inv_weights = <void*>_addr(inv_weights)
    p.d_point_importance = <void*>_addr(d_point_importance)
    p.d_neighbors_importance = <void*>_addr(d_neighbors_importance)
    p.d_importance_sum = <void*>_addr(d_importance_sum)
    p.entry_position_grads = <const double*>_addr(entry_position_grads)
    p.entry_extent_grads = <const double*>_addr(entry_extent_grads)
    p.extents_rows = d_extents.shape[0] if d_extents is not None else 1
    p.extents_cols = d_extents.shape[1] if d_extents is not None else 1
    p.d_out_positions = <void*>_addr(d_out_positions)
    p.d_inp_positions = <void*>_addr(d_inp_positions)
    p.d_extents = <void*>_addr(d_extents)
    p.num_threads = num_threads
    return 0


cdef int _fill_invert(gm_invert_params* p, int64_t num_points, index, row_splits, out_index, out_row_splits,
                      out_permutation) except -1:
    p.num_points = num_points
    p.num_rows = row_splits.shape[0] - 1
    p.num_entries = index.shape[0]
    p.index_int64 = 1 if index.dtype.itemsize == 8 else 0
    p.index = <const void*>_addr(index)
    p.row_splits = <const int64_t*>_addr(row_splits)
    p.out_index = <void*>_addr(out_index)
    p.out_row_splits = <int64_t*>_addr(out_row_splits)
    p.out_permutation = <int64_t*>_addr(out_permutation)
    return 0


cdef inline int _float_dtype(a):
    return GM_FLOAT32 if a.dtype.itemsize == 4 else GM_FLOAT64
