// apply_pose_delta on the GPU (include/geomops/pose_delta.h): one thread per pose, the shared
// gm_pose_delta_apply (svd3_math.h) in float64.
#include "gm_cuda.cuh"

#include "geomops/pose_delta.h"
#include "geomops/svd3_math.h"

namespace {

__global__ void k_pose_delta(gm_pose_delta_params p) {
    GM_FOR_EACH(b, p.batch) {
        const int64_t db = p.delta_batch == 1 ? 0 : b;
        double pose[16], delta[6], out[16];
        for (int k = 0; k < 16; ++k)
            pose[k] = p.dtype == GM_FLOAT32 ? (double)((const float*)p.pose)[16 * b + k]
                                            : ((const double*)p.pose)[16 * b + k];
        for (int k = 0; k < 6; ++k)
            delta[k] = p.delta_dtype == GM_FLOAT32 ? (double)((const float*)p.delta)[6 * db + k]
                                                   : ((const double*)p.delta)[6 * db + k];
        gm_pose_delta_apply(pose, delta, p.orthonormalize, p.fix_reflection, out);
        for (int k = 0; k < 16; ++k) {
            if (p.dtype == GM_FLOAT32)
                ((float*)p.out)[16 * b + k] = (float)out[k];
            else
                ((double*)p.out)[16 * b + k] = out[k];
        }
    }
}

}  // namespace

extern "C" int gm_pose_delta_cuda(const gm_pose_delta_params* p, void* stream) {
    if (!p || p->batch < 0 || (p->delta_batch != p->batch && p->delta_batch != 1) ||
        (p->dtype != GM_FLOAT32 && p->dtype != GM_FLOAT64) ||
        (p->delta_dtype != GM_FLOAT32 && p->delta_dtype != GM_FLOAT64))
        return GM_ERR_INVALID;
    if (p->batch == 0) return GM_OK;
    if (!p->pose || !p->delta || !p->out) return GM_ERR_INVALID;
    GM_LAUNCH(k_pose_delta, gm_cuda_blocks(p->batch), GM_CUDA_THREADS, (cudaStream_t)stream, *p);
    return gm_cuda_check_launch("k_pose_delta");
}
