# Bindings for the posegrad kernels (cpu/posegrad.c). The facade (geomops.pose.diff) validates
# every array (C-contiguous, dtype, shape) and option; these functions only fill the structs.

from libc.stdint cimport int32_t, int64_t
from geomops._c_posegrad cimport (GM_PG_ACC_GRAD, GM_PG_ACC_PIXELS, GM_PG_ACC_SINGULAR, GM_PG_ACC_STRIDE,
                                  GM_PG_BORDER_REPLICATE, GM_PG_BORDER_ZERO, GM_PG_SEM_CPU, GM_PG_SEM_CUDA,
                                  gm_pg_backprop_params, gm_pg_image, gm_pg_image_grad_params,
                                  gm_posegrad_backprop_cpu, gm_posegrad_image_gradients_cpu)

include "_posegrad_fill.pxi"

# Options and accumulator columns of include/geomops/posegrad_types.h, for geomops.pose.diff.
PG_BORDER_ZERO = GM_PG_BORDER_ZERO
PG_BORDER_REPLICATE = GM_PG_BORDER_REPLICATE
PG_SEM_CUDA = GM_PG_SEM_CUDA
PG_SEM_CPU = GM_PG_SEM_CPU
PG_ACC_GRAD = GM_PG_ACC_GRAD
PG_ACC_SINGULAR = GM_PG_ACC_SINGULAR
PG_ACC_PIXELS = GM_PG_ACC_PIXELS
PG_ACC_STRIDE = GM_PG_ACC_STRIDE


def posegrad_image_gradients(rgb, int border, int semantics, instance, depth, grad_x, grad_y, valid,
                             int num_threads):
    """rgb uint8/float32 (H,W,3|4); instance int16 (H,W); depth float32 (H,W);
    outputs grad_x, grad_y float32 (3,H,W) and valid uint8/bool (H,W). The NDC weights are
    stillleben's, computed by the kernel from the image size (gm_pg_weight)."""
    cdef gm_pg_image_grad_params p
    _pg_fill_image(&p.img, rgb, border, semantics, instance, depth, num_threads)
    p.grad_x = <float*>_addr(grad_x)
    p.grad_y = <float*>_addr(grad_y)
    p.valid = <_pg_u8*>_addr(valid)
    cdef int status
    with nogil:
        status = gm_posegrad_image_gradients_cpu(&p)
    _check(status)


def posegrad_backprop(rgb, int border, int semantics, instance, depth, coords, g, Py_ssize_t g_cstride,
                      Py_ssize_t g_pstride, transforms, projection, int denom_row, id_to_slot, slot_start,
                      slot_objects, accum, contributions, masks, int num_threads):
    """Fused dilation + per-pixel contributions + per-object sums. g float32/float64 with the
    given element strides; transforms float64 (N,12); projection float64 (16,); id_to_slot,
    slot_start, slot_objects int32; accum float64 (N, PG_ACC_STRIDE) (output). contributions
    float32 (N,6,H,W) and masks uint8 (N,H,W) are optional zero-filled outputs. Returns
    ``(bad_id, first_nonfinite)``: the smallest instance id of the buffer that no object has (0 if
    none) and the smallest pixel index of an object pixel of a known id where ``g`` is NaN or inf
    (-1 if none)."""
    cdef gm_pg_backprop_params p
    cdef int32_t bad = 0
    cdef int64_t first_nonfinite = -1
    _pg_fill_image(&p.img, rgb, border, semantics, instance, depth, num_threads)
    _pg_fill_backprop(&p, coords, g, g_cstride, g_pstride, transforms, projection, denom_row, id_to_slot,
                      slot_start, slot_objects, accum, contributions, masks)
    p.bad_id = &bad
    p.first_nonfinite = &first_nonfinite
    cdef int status
    with nogil:
        status = gm_posegrad_backprop_cpu(&p)
    _check(status)
    return bad, first_nonfinite
