/* apply_pose_delta on arrays of device poses (cuda/pose_delta.cu), built on gm_pose_delta_apply of
 * svd3_math.h. The CPU path of geomops.pose.apply_pose_delta is NumPy (LAPACK's SVD). */
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

/* Float64 arithmetic whatever the dtypes, device pointers, ordered on `stream` (a cudaStream_t;
 * asynchronous). Returns GM_OK, GM_ERR_INVALID, GM_ERR_NO_DEVICE or GM_ERR_DEVICE. */
GM_EXTERN_C int gm_pose_delta_cuda(const gm_pose_delta_params* p, void* stream);

#endif /* GEOMOPS_POSE_DELTA_H */
