// Device queries of the CUDA module. Called lazily (never at import), so that a machine without
// a driver or GPU reports "no CUDA" in plain words instead of failing.
#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>

#include "geomops/cuda_api.h"

namespace {

thread_local char g_last_error[512];

// Version as "13.0" from CUDA's 13000 encoding.
void version_text(int v, char* out, size_t n) {
    snprintf(out, n, "%d.%d", v / 1000, v % 1000 / 10);
}

// Maps a CUDA error to a GM status and records the reason for gm_cuda_last_error().
int fail(cudaError_t err, const char* what) {
    cudaGetLastError();  // clear the sticky error state
    int driver = 0, runtime = 0;
    cudaDriverGetVersion(&driver);
    cudaRuntimeGetVersion(&runtime);
    char drv[16], rt[16];
    version_text(driver, drv, sizeof drv);
    version_text(runtime, rt, sizeof rt);
    switch (err) {
        case cudaErrorInsufficientDriver:
            if (driver == 0)
                snprintf(g_last_error, sizeof g_last_error,
                         "no NVIDIA driver is installed on this machine (%s); the CUDA backend needs one "
                         "and a GPU",
                         what);
            else
                snprintf(g_last_error, sizeof g_last_error,
                         "the NVIDIA driver supports CUDA %s but this build of geomops needs CUDA %s or a "
                         "driver with forward compatibility (%s)",
                         drv, rt, what);
            return GM_ERR_NO_DEVICE;
        case cudaErrorNoDevice:
            snprintf(g_last_error, sizeof g_last_error, "the NVIDIA driver found no CUDA device (%s)", what);
            return GM_ERR_NO_DEVICE;
        case cudaErrorSystemDriverMismatch:
        case cudaErrorCompatNotSupportedOnDevice:
        case cudaErrorDevicesUnavailable:
            snprintf(g_last_error, sizeof g_last_error, "no usable CUDA device: %s (%s)",
                     cudaGetErrorString(err), what);
            return GM_ERR_NO_DEVICE;
        default:
            snprintf(g_last_error, sizeof g_last_error, "CUDA error %d in %s: %s", (int)err, what,
                     cudaGetErrorString(err));
            return GM_ERR_DEVICE;
    }
}

int ok() {
    g_last_error[0] = '\0';
    return GM_OK;
}

}  // namespace

extern "C" int gm_cuda_device_count(int* count) {
    *count = 0;
    cudaError_t err = cudaGetDeviceCount(count);
    if (err != cudaSuccess) {
        *count = 0;
        return fail(err, "cudaGetDeviceCount");
    }
    return ok();
}

extern "C" int gm_cuda_device_info(int dev, char* name, int name_len, int* major, int* minor,
                                   size_t* total_mem) {
    cudaDeviceProp prop;
    cudaError_t err = cudaGetDeviceProperties(&prop, dev);
    if (err != cudaSuccess) return fail(err, "cudaGetDeviceProperties");
    strncpy(name, prop.name, (size_t)name_len - 1);
    name[name_len - 1] = '\0';
    *major = prop.major;
    *minor = prop.minor;
    *total_mem = prop.totalGlobalMem;
    return ok();
}

extern "C" int gm_cuda_versions(int* runtime_version, int* driver_version) {
    *runtime_version = 0;
    *driver_version = 0;
    cudaError_t err = cudaRuntimeGetVersion(runtime_version);
    if (err != cudaSuccess) return fail(err, "cudaRuntimeGetVersion");
    err = cudaDriverGetVersion(driver_version);  // sets 0 and succeeds when no driver is installed
    if (err != cudaSuccess) return fail(err, "cudaDriverGetVersion");
    return ok();
}

extern "C" const char* gm_cuda_last_error(void) {
    return g_last_error;
}
