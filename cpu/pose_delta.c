/* apply_pose_delta over a batch of poses (include/geomops/pose_delta.h): one call of the shared
 * gm_pose_delta_apply per pose. Batches are small (one pose per object): no threads. */
#include "geomops/pose_delta.h"
#include "geomops/svd3_math.h"

int gm_pose_delta_cpu(const gm_pose_delta_params* p) {
    if (!p || p->batch < 0 || (p->delta_batch != p->batch && p->delta_batch != 1) ||
        (p->dtype != GM_FLOAT32 && p->dtype != GM_FLOAT64) ||
        (p->delta_dtype != GM_FLOAT32 && p->delta_dtype != GM_FLOAT64))
        return GM_ERR_INVALID;
    if (p->batch == 0) return GM_OK;
    if (!p->pose || !p->delta || !p->out) return GM_ERR_INVALID;
    for (int64_t b = 0; b < p->batch; ++b) {
        const int64_t db = p->delta_batch == 1 ? 0 : b;
        double pose[16], delta[6], out[16];
        for (int k = 0; k < 16; ++k)
            pose[k] = p->dtype == GM_FLOAT32 ? (double)((const float*)p->pose)[16 * b + k]
                                             : ((const double*)p->pose)[16 * b + k];
        for (int k = 0; k < 6; ++k)
            delta[k] = p->delta_dtype == GM_FLOAT32 ? (double)((const float*)p->delta)[6 * db + k]
                                                    : ((const double*)p->delta)[6 * db + k];
        gm_pose_delta_apply(pose, delta, p->orthonormalize, p->fix_reflection, out);
        for (int k = 0; k < 16; ++k) {
            if (p->dtype == GM_FLOAT32)
                ((float*)p->out)[16 * b + k] = (float)out[k];
            else
                ((double*)p->out)[16 * b + k] = out[k];
        }
    }
    return GM_OK;
}
