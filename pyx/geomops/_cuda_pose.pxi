# CUDA binding of apply_pose_delta's batched kernel (cuda/pose_delta.cu).

from libc.stdint cimport uintptr_t as _pd_uintptr

from geomops._c_common cimport GM_FLOAT32 as _pd_F32, GM_FLOAT64 as _pd_F64
from geomops._c_pose cimport gm_pose_delta_cuda, gm_pose_delta_params


cdef inline dict _pd_iface(a):
    iface = getattr(a, "__cuda_array_interface__", None)
    return a.__array_interface__ if iface is None else iface


cdef inline Py_ssize_t _pd_size(a) except -1:
    cdef Py_ssize_t n = 1
    for d in _pd_iface(a)["shape"]:
        n *= d
    return n


def pose_delta(pose, delta, out, bint orthonormalize, bint fix_reflection, *, _pd_uintptr stream=0):
    """out = pose @ D(delta), rotation blocks optionally re-orthonormalised, as
    geomops.pose.apply_pose_delta (float64 math). pose, out: float32 or float64 device arrays
    of shape (B, 4, 4) (or (4, 4)), the same dtype, out may be pose; delta float32/float64
    (B, 6) or (1, 6) (or (6,)); all C-contiguous. Ordered on ``stream`` (asynchronous)."""
    cdef gm_pose_delta_params p
    cdef void* s = <void*>stream
    p.batch = _pd_size(pose) // 16
    p.delta_batch = _pd_size(delta) // 6
    p.dtype = _pd_F32 if _pd_iface(pose)["typestr"][2:] == "4" else _pd_F64
    p.delta_dtype = _pd_F32 if _pd_iface(delta)["typestr"][2:] == "4" else _pd_F64
    p.pose = <const void*>_addr(pose)
    p.delta = <const void*>_addr(delta)
    p.out = <void*>_addr(out)
    p.orthonormalize = orthonormalize
    p.fix_reflection = fix_reflection
    cdef int status
    with nogil:
        status = gm_pose_delta_cuda(&p, s)
    _check(status)
