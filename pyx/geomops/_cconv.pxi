# Bindings for the continuous-convolution kernels (cpu/cconv.c). Arrays arrive validated,
# C-contiguous and of the right dtype from geomops.cconv; nothing here checks them again. The
# CUDA bindings (_cuda_cconv.pxi) have the same functions and arguments.

from geomops._c_cconv cimport (
    gm_cconv_apply_cpu, gm_cconv_backprop_filter_cpu, gm_cconv_cast_cpu, gm_cconv_importance_grads_cpu,
    gm_cconv_inverted_weights_cpu, gm_cconv_neighbor_products_cpu, gm_cconv_normalizers_cpu,
    gm_cconv_position_grads_cpu, gm_cconv_profile_cpu, gm_cconv_swap_channels_cpu, gm_invert_neighbors_cpu,
    gm_reduce_subarrays_sum_cpu)

include "_cconv_params.pxi"


def cconv_run(int mode, int transpose, filters, out_positions, inp_positions, extents, offset,
              inp_features, inp_importance, out_importance, neighbors_index, neighbors_importance,
              neighbors_row_splits, inp_neighbors_importance_sum, inp_neighbors_row_splits,
              int align_corners, int coordinate_mapping, int interpolation, int normalize,
              out_features_gradient, output, int64_t max_temp_bytes, int num_threads, was_zero=None,
              bint allow_tf32=False, entry_position_grads=None, entry_extent_grads=None):
    """mode 0: forward/transpose into output; 1: filter gradient; 2: neighbor products (into
    ``output``, float64 [E], or None) and, when given, each entry's position and extent
    derivatives (float64 ``entry_position_grads`` [E, 3], ``entry_extent_grads`` [E, extents cols]);
    3: the normalisers (float64 divisors into output, uint8/bool ``was_zero`` where they were 0).
    ``allow_tf32`` is for the CUDA backend (ignored here)."""
    cdef gm_cconv_params p
    _fill_cconv(&p, transpose, filters, out_positions, inp_positions, extents, offset, inp_features,
                inp_importance, out_importance, neighbors_index, neighbors_importance, neighbors_row_splits,
                inp_neighbors_importance_sum, inp_neighbors_row_splits, align_corners, coordinate_mapping,
                interpolation, normalize, out_features_gradient, output, max_temp_bytes, num_threads,
                allow_tf32, entry_position_grads, entry_extent_grads)
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


def cconv_inverted_weights(int transpose, neighbors_index, neighbors_row_splits, neighbors_importance,
                           divisor, inv_index, inv_row_splits, inv_permutation, inv_weights, int num_threads):
    """inv_weights[pos] = the weight of entry pos of the inverted list (gm_cconv_bwd_inv_weight)."""
    cdef gm_cconv_grad_params p
    _fill_grad(&p, transpose, neighbors_index, neighbors_row_splits, neighbors_importance, None, divisor,
               None, inv_index, inv_row_splits, inv_permutation, None, inv_weights, None, None, None,
               num_threads)
    cdef int status
    with nogil:
        status = gm_cconv_inverted_weights_cpu(&p)
    _check(status)


def cconv_importance_grads(int transpose, neighbors_index, neighbors_row_splits, neighbors_importance,
                           point_importance, divisor, was_zero, inv_index, inv_row_splits, inv_permutation,
                           products, d_point_importance, d_neighbors_importance, d_importance_sum,
                           int num_threads):
    """The importance gradients of the backward functions into the given (non-None) outputs
    (gm_cconv_bwd_row / gm_cconv_bwd_inv_row)."""
    cdef gm_cconv_grad_params p
    _fill_grad(&p, transpose, neighbors_index, neighbors_row_splits, neighbors_importance, point_importance,
               divisor, was_zero, inv_index, inv_row_splits, inv_permutation, products, None,
               d_point_importance, d_neighbors_importance, d_importance_sum, num_threads)
    cdef int status
    with nogil:
        status = gm_cconv_importance_grads_cpu(&p)
    _check(status)



def cconv_position_grads(int transpose, neighbors_index, neighbors_row_splits, inv_index, inv_row_splits,
                         inv_permutation, entry_position_grads, entry_extent_grads, d_out_positions,
                         d_inp_positions, d_extents, int num_threads):
    """The position and extent gradients of the backward functions from the per-entry derivatives
    (``cconv_run`` mode 2) into the given (non-None) outputs: d_out_positions [No, 3],
    d_inp_positions [Ni, 3], d_extents (the validated extents' shape) (gm_cconv_bwd_position_*)."""
    cdef gm_cconv_grad_params p
    _fill_grad(&p, transpose, neighbors_index, neighbors_row_splits, None, None, None, None, inv_index,
               inv_row_splits, inv_permutation, None, None, None, None, None, num_threads,
               entry_position_grads, entry_extent_grads, d_out_positions, d_inp_positions, d_extents)
    cdef int status
    with nogil:
        status = gm_cconv_position_grads_cpu(&p)
    _check(status)


def cconv_swap_channels(filters, out, int num_threads):
    """out[d, h, w, oc, ic] = filters[d, h, w, ic, oc]."""
    cdef int dtype = _float_dtype(filters)
    cdef int64_t cells = filters.shape[0] * filters.shape[1] * filters.shape[2]
    cdef int64_t cin = filters.shape[3], cout = filters.shape[4]
    cdef const void* f = <const void*>_addr(filters)
    cdef void* o = <void*>_addr(out)
    cdef int status
    with nogil:
        status = gm_cconv_swap_channels_cpu(dtype, f, cells, cin, cout, o, num_threads)
    _check(status)


def cconv_cast(src, dst, int num_threads):
    """dst[...] = src converted between float32 and float64 (same shape)."""
    cdef int sd = _float_dtype(src), dd = _float_dtype(dst)
    cdef const void* s = <const void*>_addr(src)
    cdef void* d = <void*>_addr(dst)
    cdef int64_t n = 1
    for extent in src.shape:
        n *= extent
    cdef int status
    with nogil:
        status = gm_cconv_cast_cpu(sd, s, dd, d, n, num_threads)
    _check(status)


def invert_neighbors(int64_t num_points, index, row_splits, out_index, out_row_splits, out_permutation):
    cdef gm_invert_params p
    _fill_invert(&p, num_points, index, row_splits, out_index, out_row_splits, out_permutation)
    cdef int status
    with nogil:
        status = gm_invert_neighbors_cpu(&p)
    _check(status)


def reduce_subarrays_sum(values, row_splits, sums, int num_threads):
    cdef int dtype = _float_dtype(values)
    cdef const void* v = <const void*>_addr(values)
    cdef const int64_t* rs = <const int64_t*>_addr(row_splits)
    cdef int64_t rows = row_splits.shape[0] - 1
    cdef void* out = <void*>_addr(sums)
    cdef int status
    with nogil:
        status = gm_reduce_subarrays_sum_cpu(dtype, v, rs, rows, out, num_threads)
    _check(status)


def cconv_profile(bint enable):
    """Benchmark instrumentation: (fill, GEMM) thread CPU seconds the forward/transpose and filter-gradient
    kernels spent since the last call (while timing was on); resets them and turns timing on or off."""
    cdef double out[2]
    gm_cconv_profile_cpu(enable, out)
    return out[0], out[1]
