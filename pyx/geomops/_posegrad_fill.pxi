# Filling the pose-gradient parameter structs (include/geomops/posegrad_types.h) from the
# binding arguments: shared by the CPU (_posegrad.pxi) and CUDA (_cuda_posegrad.pxi) bindings.

from libc.stdint cimport uint8_t as _pg_u8, int16_t as _pg_i16, int32_t as _pg_i32


cdef inline dict _pg_iface(a):
    """The array interface of a host or device array (shape and typestr)."""
    iface = getattr(a, "__cuda_array_interface__", None)
    return a.__array_interface__ if iface is None else iface


cdef inline int _pg_itemsize(a) except -1:
    return int(_pg_iface(a)["typestr"][2:])


cdef int _pg_fill_image(gm_pg_image* im, rgb, int border, int semantics, instance, depth,
                        int num_threads) except -1:
    shape = _pg_iface(instance)["shape"]
    im.height = shape[0]
    im.width = shape[1]
    if _pg_itemsize(rgb) == 1:
        im.rgb_u8 = <const _pg_u8*>_addr(rgb)
        im.rgb_f32 = NULL
    else:
        im.rgb_u8 = NULL
        im.rgb_f32 = <const float*>_addr(rgb)
    im.rgb_channels = _pg_iface(rgb)["shape"][2]
    im.border = border
    im.semantics = semantics
    im.instance = <const _pg_i16*>_addr(instance)
    im.depth = <const float*>_addr(depth)
    im.num_threads = num_threads
    return 0


cdef int _pg_fill_backprop(gm_pg_backprop_params* p, coords, g, Py_ssize_t g_cstride, Py_ssize_t g_pstride,
                           transforms, projection, int denom_row, id_to_slot, slot_start, slot_objects, accum,
                           contributions, masks) except -1:
    """Everything but the image part and the two checks' outputs (bad_id, first_nonfinite)."""
    p.coords = <const float*>_addr(coords)
    if _pg_itemsize(g) == 4:
        p.g_f32 = <const float*>_addr(g)
        p.g_f64 = NULL
    else:
        p.g_f32 = NULL
        p.g_f64 = <const double*>_addr(g)
    p.g_cstride = g_cstride
    p.g_pstride = g_pstride
    p.num_objects = _pg_iface(transforms)["shape"][0]
    p.transforms = <const double*>_addr(transforms)
    p.projection = <const double*>_addr(projection)
    p.denom_row = denom_row
    p.id_to_slot = <const _pg_i32*>_addr(id_to_slot)
    p.slot_start = <const _pg_i32*>_addr(slot_start)
    p.slot_objects = <const _pg_i32*>_addr(slot_objects)
    p.accum = <double*>_addr(accum)
    p.contributions = <float*>_addr(contributions)
    p.masks = <_pg_u8*>_addr(masks)
    return 0
