// Device queries, user-visible device memory, copies and streams of the CUDA module
// (include/geomops/cuda_api.h). Called lazily (never at import), so that a machine without a
// driver or GPU reports "no CUDA" in plain words instead of failing.
#include <string.h>

#include "gm_cuda.cuh"

extern "C" int gm_cuda_device_count(int* count) {
    *count = 0;
    cudaError_t err = cudaGetDeviceCount(count);
    if (err != cudaSuccess) {
        *count = 0;
        return gm_cuda_fail(err, "cudaGetDeviceCount");
    }
    gm_cuda_clear_error();
    return GM_OK;
}

extern "C" int gm_cuda_device_info(int dev, char* name, int name_len, int* major, int* minor,
                                   size_t* total_mem) {
    cudaDeviceProp prop;
    GM_CUDA_TRY(cudaGetDeviceProperties(&prop, dev), "cudaGetDeviceProperties");
    strncpy(name, prop.name, (size_t)name_len - 1);
    name[name_len - 1] = '\0';
    *major = prop.major;
    *minor = prop.minor;
    *total_mem = prop.totalGlobalMem;
    return GM_OK;
}

extern "C" int gm_cuda_versions(int* runtime_version, int* driver_version) {
    *runtime_version = 0;
    *driver_version = 0;
    GM_CUDA_TRY(cudaRuntimeGetVersion(runtime_version), "cudaRuntimeGetVersion");
    // sets 0 and succeeds when no driver is installed
    GM_CUDA_TRY(cudaDriverGetVersion(driver_version), "cudaDriverGetVersion");
    return GM_OK;
}

extern "C" int gm_cuda_set_device(int dev) {
    GM_CUDA_TRY(cudaSetDevice(dev), "cudaSetDevice");
    return GM_OK;
}

extern "C" int gm_cuda_malloc(void** p, size_t bytes, int dev) {
    *p = nullptr;
    GM_CUDA_TRY(cudaSetDevice(dev), "cudaSetDevice");
    if (bytes == 0) return GM_OK;
    cudaError_t err = cudaMalloc(p, bytes);
    if (err == cudaErrorMemoryAllocation) return gm_cuda_oom(bytes, "an array");
    if (err != cudaSuccess) return gm_cuda_fail(err, "cudaMalloc");
    return GM_OK;
}

extern "C" int gm_cuda_free(void* p, int dev) {
    if (!p) return GM_OK;
    GM_CUDA_TRY(cudaSetDevice(dev), "cudaSetDevice");
    GM_CUDA_TRY(cudaFree(p), "cudaFree");
    return GM_OK;
}

extern "C" int gm_cuda_memcpy(void* dst, const void* src, size_t bytes, void* stream) {
    if (bytes == 0) return GM_OK;
    cudaStream_t s = (cudaStream_t)stream;
    GM_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, s), "cudaMemcpyAsync");
    GM_CUDA_TRY(cudaStreamSynchronize(s), "cudaStreamSynchronize");
    return GM_OK;
}

extern "C" int gm_cuda_memset(void* p, int value, size_t bytes, void* stream) {
    if (bytes == 0) return GM_OK;
    GM_CUDA_TRY(cudaMemsetAsync(p, value, bytes, (cudaStream_t)stream), "cudaMemsetAsync");
    return GM_OK;
}

extern "C" int gm_cuda_stream_create(void** stream, int dev) {
    *stream = nullptr;
    GM_CUDA_TRY(cudaSetDevice(dev), "cudaSetDevice");
    cudaStream_t s;
    GM_CUDA_TRY(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
    *stream = (void*)s;
    return GM_OK;
}

extern "C" int gm_cuda_stream_destroy(void* stream) {
    if (stream) GM_CUDA_TRY(cudaStreamDestroy((cudaStream_t)stream), "cudaStreamDestroy");
    return GM_OK;
}

extern "C" int gm_cuda_stream_synchronize(void* stream) {
    GM_CUDA_TRY(cudaStreamSynchronize((cudaStream_t)stream), "cudaStreamSynchronize");
    return GM_OK;
}
