// Device query for the optional CUDA module. Called lazily (never at import) so that a
// machine without a driver or GPU reports "no CUDA" instead of failing.
#include <cuda_runtime.h>
#include <string.h>

#include "geomops/cuda_api.h"

extern "C" int gm_cuda_device_count(int* count) {
    *count = 0;
    cudaError_t err = cudaGetDeviceCount(count);
    if (err != cudaSuccess) {
        *count = 0;
        cudaGetLastError();  // clear the sticky error state
    }
    return (int)err;
}

extern "C" int gm_cuda_device_info(int dev, char* name, int name_len, int* major, int* minor,
                                   size_t* total_mem) {
    cudaDeviceProp prop;
    cudaError_t err = cudaGetDeviceProperties(&prop, dev);
    if (err != cudaSuccess) {
        cudaGetLastError();
        return (int)err;
    }
    strncpy(name, prop.name, (size_t)name_len - 1);
    name[name_len - 1] = '\0';
    *major = prop.major;
    *minor = prop.minor;
    *total_mem = prop.totalGlobalMem;
    return 0;
}

extern "C" int gm_cuda_versions(int* runtime_version, int* driver_version) {
    *runtime_version = 0;
    *driver_version = 0;
    cudaError_t err = cudaRuntimeGetVersion(runtime_version);
    if (err != cudaSuccess) {
        cudaGetLastError();
        return (int)err;
    }
    err = cudaDriverGetVersion(driver_version);
    if (err != cudaSuccess) cudaGetLastError();
    return (int)err;
}

extern "C" const char* gm_cuda_error_string(int code) {
    return cudaGetErrorString((cudaError_t)code);
}
