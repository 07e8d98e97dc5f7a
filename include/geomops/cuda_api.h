/* The CUDA module's runtime services (cuda/device.cu, cuda/status.cu), callable from C and C++:
 * device queries, user-visible device memory, copies and streams.
 *
 * Every function returns a GM_* status code (geomops/common.h), never a raw cudaError_t:
 * GM_ERR_NO_DEVICE when there is no usable driver or device, GM_ERR_NOMEM when device memory runs
 * out, GM_ERR_DEVICE for any other CUDA failure. gm_cuda_last_error() then says why in plain words
 * (thread-local: it describes the last failing call of the calling thread). Streams are passed
 * as void* (a cudaStream_t; NULL is the legacy default stream) so that this header needs no CUDA
 * include. */
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
/* Why the last failing call of this thread failed ("" if none failed since the last success of a
 * query). */
const char* gm_cuda_last_error(void);
void gm_cuda_clear_error(void);

/* Make `dev` the calling thread's current device. */
int gm_cuda_set_device(int dev);
/* Device memory on `dev` for arrays handed to users (0 bytes gives NULL). Freed blocks are cached
 * per size class for reuse (cudaFree would synchronise the device); gm_cuda_free takes the size
 * given to gm_cuda_malloc. gm_cuda_release_cached frees the cache. */
int gm_cuda_malloc(void** p, size_t bytes, int dev);
int gm_cuda_free(void* p, size_t bytes, int dev);
int gm_cuda_release_cached(void);
/* Copy between any host/device pointers (unified addressing), ordered on `stream`, then wait
 * for it: on return the copy is complete. */
int gm_cuda_memcpy(void* dst, const void* src, size_t bytes, void* stream);
/* Set `bytes` bytes to `value`, ordered on `stream` (asynchronous). */
int gm_cuda_memset(void* p, int value, size_t bytes, void* stream);
/* A non-blocking stream on `dev`. */
int gm_cuda_stream_create(void** stream, int dev);
int gm_cuda_stream_destroy(void* stream);
int gm_cuda_stream_synchronize(void* stream);

#ifdef __cplusplus
}
#endif

#endif /* GEOMOPS_CUDA_API_H */
