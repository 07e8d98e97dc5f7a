// Host emulation of the subset of CUDA that geomops' kernels use, so that every kernel without
// block cooperation runs on the CPU in CI (no GPU there) and is compared with the OpenMP backend.
//
// Included by cuda/gm_cuda.cuh instead of <cuda_runtime.h> when GM_CUDA_EMULATE is defined
// (the .cu files are then compiled by the host C++ compiler). What it provides:
//  - the kernel language: __global__/__device__/__host__ (empty), dim3, threadIdx/blockIdx/
//    blockDim/gridDim as thread-local variables set by GM_LAUNCH, which runs every block and
//    thread of a grid sequentially, in order; integer atomics as plain host operations (one
//    thread at a time, so they are exact); the rounding intrinsics (__fmul_rn, ...) as plain
//    operations (callers compile with contraction off, as on the device);
//  - the runtime: one device ("geomops CUDA emulator (host)"), memory = host memory, copies =
//    memcpy, streams and events = no-ops (everything is synchronous).
// Deliberately missing: __syncthreads, __shared__, warp shuffles. A kernel that needs them does
// not compile here; such code is kept in the few primitives of cuda/primitives.cuh, which have a
// host implementation for emulation and GPU-only tests.
#ifndef GEOMOPS_CUDA_EMU_H
#define GEOMOPS_CUDA_EMU_H

#ifndef __cplusplus
#error "the CUDA emulation header is C++"
#endif

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>

#include "geomops/interrupt.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__    __restrict
#define __launch_bounds__(...)

struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};

namespace gm_emu {
inline thread_local dim3 thread_idx, block_idx, block_dim, grid_dim;

// Runs kernel body `fn` for every thread of the grid, blocks and threads in ascending order. Between
// threads it polls for an interrupt (geomops/interrupt.h): once one is pending the remaining
// threads are skipped and the launcher's gm_cuda_check_launch reports GM_ERR_INTERRUPTED.
template <class F>
inline void launch(dim3 grid, dim3 block, F&& fn) {
    grid_dim = grid;
    block_dim = block;
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                block_idx = dim3(bx, by, bz);
                for (unsigned tz = 0; tz < block.z; ++tz)
                    for (unsigned ty = 0; ty < block.y; ++ty)
                        for (unsigned tx = 0; tx < block.x; ++tx) {
                            if (gm_interrupt_poll()) return;
                            thread_idx = dim3(tx, ty, tz);
                            fn();
                        }
            }
}
}  // namespace gm_emu

#define threadIdx (::gm_emu::thread_idx)
#define blockIdx  (::gm_emu::block_idx)
#define blockDim  (::gm_emu::block_dim)
#define gridDim   (::gm_emu::grid_dim)

// ---- atomics (sequential emulation: plain read-modify-write, returning the old value) ----------
template <class T>
inline T atomicAdd(T* p, T v) {
    T old = *p;
    *p = old + v;
    return old;
}
template <class T>
inline T atomicMax(T* p, T v) {
    T old = *p;
    *p = old > v ? old : v;
    return old;
}
template <class T>
inline T atomicMin(T* p, T v) {
    T old = *p;
    *p = old < v ? old : v;
    return old;
}
template <class T>
inline T atomicExch(T* p, T v) {
    T old = *p;
    *p = v;
    return old;
}
template <class T>
inline T atomicCAS(T* p, T cmp, T v) {
    T old = *p;
    if (old == cmp) *p = v;
    return old;
}

// ---- rounding intrinsics (contraction is off in the including files) ---------------------------
inline float __fmul_rn(float a, float b) {
    return a * b;
}
inline float __fadd_rn(float a, float b) {
    return a + b;
}
inline float __fsub_rn(float a, float b) {
    return a - b;
}
inline float __fdiv_rn(float a, float b) {
    return a / b;
}
inline double __dmul_rn(double a, double b) {
    return a * b;
}
inline double __dadd_rn(double a, double b) {
    return a + b;
}
inline double __dsub_rn(double a, double b) {
    return a - b;
}
inline double __ddiv_rn(double a, double b) {
    return a / b;
}
inline float __int_as_float(int v) {
    float f;
    memcpy(&f, &v, sizeof f);
    return f;
}
inline int __float_as_int(float v) {
    int i;
    memcpy(&i, &v, sizeof i);
    return i;
}
template <class T>
inline T __ldg(const T* p) {
    return *p;
}

// ---- runtime -------------------------------------------------------------------------------------
typedef enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInitializationError = 3,
    cudaErrorInsufficientDriver = 35,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
    cudaErrorSystemDriverMismatch = 803,
    cudaErrorCompatNotSupportedOnDevice = 804,
    cudaErrorDevicesUnavailable = 46,
    cudaErrorNotReady = 600,
    cudaErrorUnknown = 999
} cudaError_t;

typedef struct gm_emu_stream_* cudaStream_t;
typedef struct gm_emu_event_* cudaEvent_t;
enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4
};
#define cudaStreamNonBlocking 1

struct cudaDeviceProp {
    char name[256];
    int major, minor;
    size_t totalGlobalMem;
    int multiProcessorCount;
};

namespace gm_emu {
inline thread_local cudaError_t last_error = cudaSuccess;
inline thread_local int current_device = 0;
inline cudaError_t set(cudaError_t e) {
    if (e != cudaSuccess) last_error = e;
    return e;
}
}  // namespace gm_emu

inline const char* cudaGetErrorString(cudaError_t e) {
    switch (e) {
        case cudaSuccess:
            return "no error";
        case cudaErrorInvalidValue:
            return "invalid argument";
        case cudaErrorMemoryAllocation:
            return "out of memory";
        case cudaErrorInvalidDevice:
            return "invalid device ordinal";
        default:
            return "unknown error (emulator)";
    }
}
inline cudaError_t cudaGetLastError() {
    cudaError_t e = gm_emu::last_error;
    gm_emu::last_error = cudaSuccess;
    return e;
}
inline cudaError_t cudaPeekAtLastError() {
    return gm_emu::last_error;
}
inline cudaError_t cudaGetDeviceCount(int* n) {
    *n = 1;
    return cudaSuccess;
}
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int dev) {
    if (dev != 0) return gm_emu::set(cudaErrorInvalidDevice);
    memset(p, 0, sizeof *p);
    strncpy(p->name, "geomops CUDA emulator (host)", sizeof p->name - 1);
    p->major = 0;
    p->minor = 0;
    p->totalGlobalMem = (size_t)1 << 34;
    p->multiProcessorCount = 1;
    return cudaSuccess;
}
inline cudaError_t cudaRuntimeGetVersion(int* v) {
    *v = 0;
    return cudaSuccess;
}
inline cudaError_t cudaDriverGetVersion(int* v) {
    *v = 0;
    return cudaSuccess;
}
inline cudaError_t cudaSetDevice(int dev) {
    if (dev != 0) return gm_emu::set(cudaErrorInvalidDevice);
    gm_emu::current_device = dev;
    return cudaSuccess;
}
inline cudaError_t cudaGetDevice(int* dev) {
    *dev = gm_emu::current_device;
    return cudaSuccess;
}
inline cudaError_t cudaDeviceSynchronize() {
    return cudaSuccess;
}

// Memory: host memory; a request above GEOMOPS_CUDA_EMU_MAX_BYTES (default 16 GiB) fails like
// cudaMalloc does, so out-of-memory paths can be tested.
namespace gm_emu {
inline size_t max_bytes() {
    const char* env = getenv("GEOMOPS_CUDA_EMU_MAX_BYTES");
    return env ? (size_t)strtoull(env, NULL, 10) : ((size_t)1 << 34);
}
}  // namespace gm_emu
inline cudaError_t cudaMalloc(void** p, size_t bytes) {
    *p = NULL;
    if (bytes > gm_emu::max_bytes()) return gm_emu::set(cudaErrorMemoryAllocation);
    *p = malloc(bytes ? bytes : 1);
    return *p ? cudaSuccess : gm_emu::set(cudaErrorMemoryAllocation);
}
inline cudaError_t cudaFree(void* p) {
    free(p);
    return cudaSuccess;
}
inline cudaError_t cudaMallocAsync(void** p, size_t bytes, cudaStream_t) {
    return cudaMalloc(p, bytes);
}
inline cudaError_t cudaFreeAsync(void* p, cudaStream_t) {
    return cudaFree(p);
}
inline cudaError_t cudaMemcpy(void* dst, const void* src, size_t n, cudaMemcpyKind) {
    if (n) memmove(dst, src, n);
    return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind k, cudaStream_t) {
    return cudaMemcpy(dst, src, n, k);
}
inline cudaError_t cudaMemset(void* p, int v, size_t n) {
    if (n) memset(p, v, n);
    return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* p, int v, size_t n, cudaStream_t) {
    return cudaMemset(p, v, n);
}
inline cudaError_t cudaStreamCreate(cudaStream_t* s) {
    *s = NULL;
    return cudaSuccess;
}
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) {
    return cudaStreamCreate(s);
}
inline cudaError_t cudaStreamDestroy(cudaStream_t) {
    return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t) {
    return cudaSuccess;
}
inline cudaError_t cudaStreamQuery(cudaStream_t) {
    return cudaSuccess;  // everything ran when it was queued
}
inline cudaError_t cudaEventCreate(cudaEvent_t* e) {
    *e = NULL;
    return cudaSuccess;
}
inline cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) {
    return cudaEventCreate(e);
}
inline cudaError_t cudaEventRecord(cudaEvent_t, cudaStream_t) {
    return cudaSuccess;
}
inline cudaError_t cudaEventSynchronize(cudaEvent_t) {
    return cudaSuccess;
}
inline cudaError_t cudaEventDestroy(cudaEvent_t) {
    return cudaSuccess;
}
inline cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned) {
    return cudaSuccess;
}
#define cudaEventDisableTiming 2

#endif  // GEOMOPS_CUDA_EMU_H
