# C declarations of apply_pose_delta's CUDA launcher (include/geomops/pose_delta.h).

from libc.stdint cimport int64_t

cdef extern from "geomops/pose_delta.h" nogil:
    ctypedef struct gm_pose_delta_params:
        int64_t batch, delta_batch
        int dtype, delta_dtype
        const void* pose
        const void* delta
        void* out
        int orthonormalize, fix_reflection

    int gm_pose_delta_cuda(const gm_pose_delta_params* p, void* stream)
