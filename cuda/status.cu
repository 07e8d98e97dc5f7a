// Status mapping and device memory for the whole CUDA backend (declared in cuda/gm_cuda.cuh):
// every CUDA error becomes a GM_* code, and the reason, in plain words, is kept per host thread
// for gm_cuda_last_error().
#include "gm_cuda.cuh"

#include <stdio.h>

#include <chrono>
#include <thread>

namespace {
thread_local char g_last_error[512];

void version_text(int v, char* out, size_t n) {
    snprintf(out, n, "%d.%d", v / 1000, v % 1000 / 10);
}
}  // namespace

int gm_cuda_fail(cudaError_t err, const char* what) {
    cudaGetLastError();  // clear the (non-sticky) error state
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
        case cudaErrorMemoryAllocation:
            snprintf(g_last_error, sizeof g_last_error, "out of device memory in %s", what);
            return GM_ERR_NOMEM;
        default:
            snprintf(g_last_error, sizeof g_last_error, "CUDA error %d in %s: %s", (int)err, what,
                     cudaGetErrorString(err));
            return GM_ERR_DEVICE;
    }
}

int gm_cuda_oom(double bytes, const char* what) {
    cudaGetLastError();
    int dev = 0;
    cudaGetDevice(&dev);
    snprintf(g_last_error, sizeof g_last_error,
             "could not allocate %.0f bytes of device memory for %s (device %d)", bytes, what, dev);
    return GM_ERR_NOMEM;
}

int gm_cuda_check_launch(const char* what) {
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return gm_cuda_fail(err, what);
    return gm_interrupt_poll() ? GM_ERR_INTERRUPTED : GM_OK;
}

int gm_cuda_wait_idle(cudaStream_t stream, const char* what) {
    // Spin (yielding) a little for short waits, then sleep between queries: an idle host thread,
    // and an interrupt noticed within GM_INTERRUPT_INTERVAL_MS plus the sleep.
    for (int round = 0;; ++round) {
        const cudaError_t err = cudaStreamQuery(stream);
        if (err == cudaSuccess) return GM_OK;
        if (err != cudaErrorNotReady) return gm_cuda_fail(err, what);
        if (gm_interrupt_poll()) return GM_ERR_INTERRUPTED;
        if (round < 1000)
            std::this_thread::yield();
        else
            std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
}

int gm_dev_alloc(void** p, size_t bytes, cudaStream_t stream, const char* what) {
    *p = nullptr;
    if (bytes == 0) return GM_OK;
    cudaError_t err = cudaMallocAsync(p, bytes, stream);
    if (err == cudaErrorMemoryAllocation) return gm_cuda_oom(bytes, what);
    if (err != cudaSuccess) return gm_cuda_fail(err, what);
    return GM_OK;
}

void gm_dev_free(void* p, cudaStream_t stream) {
    if (p) cudaFreeAsync(p, stream);
}

extern "C" const char* gm_cuda_last_error(void) {
    return g_last_error;
}

extern "C" void gm_cuda_clear_error(void) {
    g_last_error[0] = '\0';
}
