# CUDA binding of apply_pose_delta's batched kernel (cuda/pose_delta.cu).

from libc.stdint cimport uintptr_t as _pd_uintptr

from geomops._c_pose cimport gm_pose_delta_cuda, gm_pose_delta_params

include "_pose_fill.pxi"


def pose_delta(pose, delta, out, bint orthonormalize, bint fix_reflection, *, _pd_uintptr stream=0):
    """``_cpu.pose_delta`` on device arrays, ordered on ``stream`` (asynchronous)."""
    cdef gm_pose_delta_params p
    cdef void* s = <void*>stream
    _pd_fill(&p, pose, delta, out, orthonormalize, fix_reflection)
    cdef int status
    with nogil:
        status = gm_pose_delta_cuda(&p, s)
    _check(status)
