# CUDA bindings of the continuous-convolution family (cuda/cconv.cu, cuda/gemm.cu): the functions
# of _cconv.pxi with the same arguments, on device arrays, plus a keyword-only ``stream`` (an int
# cudaStream_t) on which all work is ordered. The convolution launchers wait on the stream once,
# to read their chunk plan (a few row splits); nothing else synchronises. ``num_threads`` is
# accepted for symmetry and ignored.

from libc.stdint cimport uintptr_t

from geomops._c_cconv cimport (
    gm_cconv_apply_cuda, gm_cconv_backprop_filter_cuda, gm_cconv_cast_cuda, gm_cconv_importance_grads_cuda,
    gm_cconv_inverted_weights_cuda, gm_cconv_neighbor_products_cuda, gm_cconv_normalizers_cuda,
    gm_cconv_position_grads_cuda, gm_cconv_swap_channels_cuda, gm_gemm_cuda, gm_invert_neighbors_cuda, gm_reduce_subarrays_sum_cuda)

include "_cconv_params.pxi"


def cconv_run(int mode, int transpose, filters, out_positions, inp_positions, extents, offset,
              inp_features, inp_importance, out_importance, neighbors_index, neighbors_importance,
              neighbors_row_splits, inp_neighbors_importance_sum, inp_neighbors_row_splits,
              int align_corners, int coordinate_mapping, int interpolation, int normalize,
              out_features_gradient, output, int64_t max_temp_bytes, int num_threads, was_zero=None,
              bint allow_tf32=False, entry_position_grads=None, entry_extent_grads=None, *, uintptr_t stream=0):
    """mode 0: forward/transpose into output; 1: filter gradient; 2: neighbor products (into
    ``output``, float64 [E], or None) and, when given, each entry's position and extent
    derivatives (float64 ``entry_position_grads`` [E, 3], ``entry_extent_grads`` [E, extents cols]);
    3: the normalisers (float64 divisors into output, uint8/bool ``was_zero``). ``allow_tf32``:
    the GEMMs of float32 calls may use TF32 tensor cores."""
    cdef gm_cconv_params p
    _fill_cconv(&p, transpose, filters, out_positions, inp_positions, extents, offset, inp_features,
                inp_importance, out_importance, neighbors_index, neighbors_importance, neighbors_row_splits,
                inp_neighbors_importance_sum, inp_neighbors_row_splits, align_corners, coordinate_mapping,
                interpolation, normalize, out_features_gradient, output, max_temp_bytes, num_threads,
                allow_tf32, entry_position_grads, entry_extent_grads)
    cdef uint8_t* zero = <uint8_t*>_addr(was_zero)
    cdef void* s = <void*>stream
    cdef int status
    with nogil:
        if mode == 0:
            status = gm_cconv_apply_cuda(&p, s)
        elif mode == 1:
            status = gm_cconv_backprop_filter_cuda(&p, s)
        elif mode == 2:
            status = gm_cconv_neighbor_products_cuda(&p, s)
        else:
            status = gm_cconv_normalizers_cuda(&p, <double*>p.output, zero, s)
    _check(status)


def cconv_inverted_weights(int transpose, neighbors_index, neighbors_row_splits, neighbors_importance,
                           divisor, inv_index, inv_row_splits, inv_permutation, inv_weights, int num_threads,
                           *, uintptr_t stream=0):
    """inv_weights[pos] = the weight of entry pos of the inverted list (gm_cconv_bwd_inv_weight)."""
    cdef gm_cconv_grad_params p
    _fill_grad(&p, transpose, neighbors_index, neighbors_row_splits, neighbors_importance, None, divisor,
               None, inv_index, inv_row_splits, inv_permutation, None, inv_weights, None, None, None,
               num_threads)
    cdef void* s = <void*>stream
    cdef int status
    with nogil:
        status = gm_cconv_inverted_weights_cuda(&p, s)
    _check(status)


def cconv_importance_grads(int transpose, neighbors_index, neighbors_row_splits, neighbors_importance,
                           point_importance, divisor, was_zero, inv_index, inv_row_splits, inv_permutation,
                           products, d_point_importance, d_neighbors_importance, d_importance_sum,
                           int num_threads, *, uintptr_t stream=0):
    """The importance gradients of the backward functions into the given (non-None) outputs."""
    cdef gm_cconv_grad_params p
    _fill_grad(&p, transpose, neighbors_index, neighbors_row_splits, neighbors_importance, point_importance,
               divisor, was_zero, inv_index, inv_row_splits, inv_permutation, products, None,
               d_point_importance, d_neighbors_importance, d_importance_sum, num_threads)
    cdef void* s = <void*>stream
    cdef int status
    with nogil:
        status = gm_cconv_importance_grads_cuda(&p, s)
    _check(status)



def cconv_position_grads(int transpose, neighbors_index, neighbors_row_splits, inv_index, inv_row_splits,
                         inv_permutation, entry_position_grads, entry_extent_grads, d_out_positions,
                         d_inp_positions, d_extents, int num_threads, *, uintptr_t stream=0):
    """The position and extent gradients of the backward functions from the per-entry derivatives
    (``cconv_run`` mode 2) into the given (non-None) outputs: d_out_positions [No, 3],
    d_inp_positions [Ni, 3], d_extents (the validated extents' shape) (gm_cconv_bwd_position_*)."""
    cdef gm_cconv_grad_params p
    _fill_grad(&p, transpose, neighbors_index, neighbors_row_splits, None, None, None, None, inv_index,
               inv_row_splits, inv_permutation, None, None, None, None, None, num_threads,
               entry_position_grads, entry_extent_grads, d_out_positions, d_inp_positions, d_extents)
    cdef void* s = <void*>stream
    cdef int status
    with nogil:
        status = gm_cconv_position_grads_cuda(&p, s)
    _check(status)


def cconv_swap_channels(filters, out, int num_threads, *, uintptr_t stream=0):
    """out[d, h, w, oc, ic] = filters[d, h, w, ic, oc]."""
    cdef int dtype = _float_dtype(filters)
    cdef int64_t cells = filters.shape[0] * filters.shape[1] * filters.shape[2]
    cdef int64_t cin = filters.shape[3], cout = filters.shape[4]
    cdef const void* f = <const void*>_addr(filters)
    cdef void* o = <void*>_addr(out)
    cdef void* s = <void*>stream
    cdef int status
    with nogil:
        status = gm_cconv_swap_channels_cuda(dtype, f, cells, cin, cout, o, s)
    _check(status)


def cconv_cast(src, dst, int num_threads, *, uintptr_t stream=0):
    """dst[...] = src converted between float32 and float64 (same shape)."""
    cdef int sd = _float_dtype(src), dd = _float_dtype(dst)
    cdef const void* sp = <const void*>_addr(src)
    cdef void* d = <void*>_addr(dst)
    cdef int64_t n = 1
    for extent in src.shape:
        n *= extent
    cdef void* s = <void*>stream
    cdef int status
    with nogil:
        status = gm_cconv_cast_cuda(sd, sp, dd, d, n, s)
    _check(status)


def invert_neighbors(int64_t num_points, index, row_splits, out_index, out_row_splits, out_permutation,
                     *, uintptr_t stream=0):
    cdef gm_invert_params p
    _fill_invert(&p, num_points, index, row_splits, out_index, out_row_splits, out_permutation)
    cdef void* s = <void*>stream
    cdef int status
    with nogil:
        status = gm_invert_neighbors_cuda(&p, s)
    _check(status)


def reduce_subarrays_sum(values, row_splits, sums, int num_threads, *, uintptr_t stream=0):
    cdef int dtype = _float_dtype(values)
    cdef const void* v = <const void*>_addr(values)
    cdef const int64_t* rs = <const int64_t*>_addr(row_splits)
    cdef int64_t rows = row_splits.shape[0] - 1
    cdef void* out = <void*>_addr(sums)
    cdef void* s = <void*>stream
    cdef int status
    with nogil:
        status = gm_reduce_subarrays_sum_cuda(dtype, v, rs, rows, out, s)
    _check(status)


def gemm(a, b, c, bint trans_a, bint trans_b, bint accumulate, bint allow_tf32, *, uintptr_t stream=0):
    """The GEMM primitive on C-contiguous 2-d arrays of one float dtype (for its tests):
    ``c = (c if accumulate else 0) + op(a) @ op(b)``, op transposing when ``trans_*``."""
    cdef int64_t m = c.shape[0], n = c.shape[1]
    cdef int64_t k = a.shape[0] if trans_a else a.shape[1]
    cdef int64_t lda = a.shape[1], ldb = b.shape[1], ldc = n
    cdef int dtype = _float_dtype(c)
    cdef const void* pa = <const void*>_addr(a)
    cdef const void* pb = <const void*>_addr(b)
    cdef void* pc = <void*>_addr(c)
    cdef void* s = <void*>stream
    cdef int status
    with nogil:
        status = gm_gemm_cuda(dtype, trans_a, trans_b, m, n, k, pa, lda, pb, ldb, pc, ldc, accumulate,
                              allow_tf32, s)
    _check(status)
