# Binding of apply_pose_delta's batched kernel (cpu/pose_delta.c).

from geomops._c_pose cimport gm_pose_delta_cpu, gm_pose_delta_params

include "_pose_fill.pxi"


def pose_delta(pose, delta, out, bint orthonormalize, bint fix_reflection):
    """out = pose @ D(delta), rotation blocks optionally re-orthonormalised (see
    geomops.pose.apply_pose_delta). pose, out: float32 or float64 (B, 4, 4) (or (4, 4)), the same
    dtype; delta float32/float64 (B, 6) or (1, 6) (or (6,)); all C-contiguous. Float64 math."""
    cdef gm_pose_delta_params p
    _pd_fill(&p, pose, delta, out, orthonormalize, fix_reflection)
    cdef int status
    with nogil:
        status = gm_pose_delta_cpu(&p)
    _check(status)
