/* Device queries of the CUDA module (cuda/device.cu), callable from C and C++.
 *
 * Every function returns a GM_* status code (geomops/common.h), never a raw cudaError_t:
 * GM_ERR_NO_DEVICE when there is no usable driver or device, GM_ERR_DEVICE for any other CUDA
 * failure. gm_cuda_last_error() then gives the reason in plain words (thread-local: it describes
 * the last failing call of the calling thread). */
#ifndef GEOMOPS_CUDA_API_H
#define GEOMOPS_CUDA_API_H

#include "geomops/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Number of CUDA devices in *count (0 on failure). */
int gm_cuda_device_count(int* count);
/* Name, compute capability and total memory of device `dev`. */
int gm_cuda_device_info(int dev, char* name, int name_len, int* major, int* minor, size_t* total_mem);
/* cudart version the module was linked with, and the driver's CUDA version (0 without a driver). */
int gm_cuda_versions(int* runtime_version, int* driver_version);
/* Why the last failing call of this thread failed ("" if none failed). */
const char* gm_cuda_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* GEOMOPS_CUDA_API_H */
