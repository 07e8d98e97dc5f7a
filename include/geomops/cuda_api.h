/* extern "C" entry points of the CUDA module (files in cuda/). Each returns a cudaError_t as int. */
#ifndef GEOMOPS_CUDA_API_H
#define GEOMOPS_CUDA_API_H

#include "geomops/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Number of CUDA devices; returns the CUDA error code (0 on success) and sets *count. */
int gm_cuda_device_count(int* count);
/* Name, compute capability and total memory of device `dev`. */
int gm_cuda_device_info(int dev, char* name, int name_len, int* major, int* minor, size_t* total_mem);
/* cudart version the module was linked with, and the driver's version (0 when there is no driver). */
int gm_cuda_versions(int* runtime_version, int* driver_version);
/* Human-readable text for a CUDA error code. */
const char* gm_cuda_error_string(int code);

#ifdef __cplusplus
}
#endif

#endif /* GEOMOPS_CUDA_API_H */
