# Filling apply_pose_delta's parameter struct (include/geomops/pose_delta.h): shared by the CPU
# (_pose.pxi) and CUDA (_cuda_pose.pxi) bindings.

from geomops._c_common cimport GM_FLOAT32 as _pd_F32, GM_FLOAT64 as _pd_F64


cdef inline dict _pd_iface(a):
    iface = getattr(a, "__cuda_array_interface__", None)
    return a.__array_interface__ if iface is None else iface


cdef inline Py_ssize_t _pd_size(a) except -1:
    cdef Py_ssize_t n = 1
    for d in _pd_iface(a)["shape"]:
        n *= d
    return n


cdef int _pd_fill(gm_pose_delta_params* p, pose, delta, out, bint orthonormalize, bint fix_reflection) except -1:
    p.batch = _pd_size(pose) // 16
    p.delta_batch = _pd_size(delta) // 6
    p.dtype = _pd_F32 if _pd_iface(pose)["typestr"][2:] == "4" else _pd_F64
    p.delta_dtype = _pd_F32 if _pd_iface(delta)["typestr"][2:] == "4" else _pd_F64
    p.pose = <const void*>_addr(pose)
    p.delta = <const void*>_addr(delta)
    p.out = <void*>_addr(out)
    p.orthonormalize = orthonormalize
    p.fix_reflection = fix_reflection
    return 0
