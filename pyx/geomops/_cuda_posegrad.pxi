# CUDA bindings of the pose gradients (cuda/posegrad.cu): _cpu's posegrad functions with device
# arrays and a ``stream``. The structs are filled by the code the CPU bindings use.

from libc.stdint cimport int32_t as _cp_i32, int64_t as _cp_i64, uintptr_t as _cp_uintptr

from geomops._c_posegrad cimport (GM_PG_ACC_GRAD, GM_PG_ACC_PIXELS, GM_PG_ACC_SINGULAR, GM_PG_ACC_STRIDE,
                                  GM_PG_BORDER_REPLICATE, GM_PG_BORDER_ZERO, GM_PG_SEM_CPU, GM_PG_SEM_CUDA,
                                  gm_pg_backprop_params, gm_pg_image, gm_pg_image_grad_params,
                                  gm_posegrad_backprop_cuda, gm_posegrad_image_gradients_cuda)

include "_posegrad_fill.pxi"

PG_BORDER_ZERO = GM_PG_BORDER_ZERO
PG_BORDER_REPLICATE = GM_PG_BORDER_REPLICATE
PG_SEM_CUDA = GM_PG_SEM_CUDA
PG_SEM_CPU = GM_PG_SEM_CPU
PG_ACC_GRAD = GM_PG_ACC_GRAD
PG_ACC_SINGULAR = GM_PG_ACC_SINGULAR
PG_ACC_PIXELS = GM_PG_ACC_PIXELS
PG_ACC_STRIDE = GM_PG_ACC_STRIDE


def posegrad_image_gradients(rgb, int border, int semantics, instance, depth, grad_x, grad_y, valid,
                             int num_threads, *, _cp_uintptr stream=0):
    """``_cpu.posegrad_image_gradients`` on device arrays, ordered on ``stream`` (asynchronous).
    ``num_threads`` is ignored."""
    cdef gm_pg_image_grad_params p
    cdef void* s = <void*>stream
    _pg_fill_image(&p.img, rgb, border, semantics, instance, depth, 1)
    p.grad_x = <float*>_addr(grad_x)
    p.grad_y = <float*>_addr(grad_y)
    p.valid = <_pg_u8*>_addr(valid)
    cdef int status
    with nogil:
        status = gm_posegrad_image_gradients_cuda(&p, s)
    _check(status)


def posegrad_backprop(rgb, int border, int semantics, instance, depth, coords, g, Py_ssize_t g_cstride,
                      Py_ssize_t g_pstride, transforms, projection, int denom_row, id_to_slot, slot_start,
                      slot_objects, accum, contributions, masks, int num_threads, *, _cp_uintptr stream=0):
    """``_cpu.posegrad_backprop`` on device arrays, ordered on ``stream``. Every element of the
    optional ``contributions`` and ``masks`` is written (they need not be zero-filled). Returns
    ``(bad_id, first_nonfinite)`` as the CPU binding does, so it synchronises ``stream``; ``accum``
    and the optional outputs are then complete. ``num_threads`` is ignored."""
    cdef gm_pg_backprop_params p
    cdef _cp_i32 bad = 0
    cdef _cp_i64 first_nonfinite = -1
    cdef void* s = <void*>stream
    _pg_fill_image(&p.img, rgb, border, semantics, instance, depth, 1)
    _pg_fill_backprop(&p, coords, g, g_cstride, g_pstride, transforms, projection, denom_row, id_to_slot,
                      slot_start, slot_objects, accum, contributions, masks)
    p.bad_id = &bad
    p.first_nonfinite = &first_nonfinite
    cdef int status
    with nogil:
        status = gm_posegrad_backprop_cuda(&p, s)
    _check(status)
    return bad, first_nonfinite
