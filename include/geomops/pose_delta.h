/* apply_pose_delta on arrays of poses: the CPU loop (cpu/pose_delta.c) and its CUDA twin
 * (cuda/pose_delta.cu), both built on gm_pose_delta_apply of svd3_math.h. */
#ifndef GEOMOPS_POSE_DELTA_H
#define GEOMOPS_POSE_DELTA_H

#include "geomops/common.h"

typedef struct gm_pose_delta_params {
    int64_t batch;       /* B poses */
    int64_t delta_batch; /* B deltas, or 1 (applied to every pose) */
    int dtype;           /* GM_FLOAT32 or GM_FLOAT64: pose and out */
    int delta_dtype;     /* GM_FLOAT32 or GM_FLOAT64 */
    const void* pose;    /* (B, 4, 4) C-contiguous */
    const void* delta;   /* (delta_batch, 6) C-contiguous */
    void* out;           /* (B, 4, 4), may be pose */
    int orthonormalize;  /* replace each rotation block by its nearest orthogonal matrix */
    int fix_reflection;  /* ... and make it a rotation when that is a reflection */
} gm_pose_delta_params;

/* Float64 arithmetic whatever the dtypes. Return GM_OK or GM_ERR_INVALID; the CUDA launcher is
 * ordered on `stream` (a cudaStream_t, device pointers) and may also return GM_ERR_NO_DEVICE or
 * GM_ERR_DEVICE. */
GM_EXTERN_C int gm_pose_delta_cpu(const gm_pose_delta_params* p);
GM_EXTERN_C int gm_pose_delta_cuda(const gm_pose_delta_params* p, void* stream);

#endif /* GEOMOPS_POSE_DELTA_H */
