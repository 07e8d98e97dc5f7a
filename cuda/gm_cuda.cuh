// What every file of the CUDA backend includes first: the runtime (real, or the host emulation
// when GM_CUDA_EMULATE is defined), the launch macro, grid helpers, status mapping and device
// memory with geomops' error codes. See docs/architecture.md and docs/cuda.md.
//
// Rules for kernels (they are also compiled for the host by the emulation build, CI runs them):
//  - one thread per work item, a grid-stride loop (GM_FOR_EACH), no __shared__, no
//    __syncthreads, no warp shuffles: block cooperation lives only in cuda/primitives.cuh;
//  - per-item math comes from the GM_HD functions of include/geomops/*_math.h;
//  - no float atomics in sums whose order can change (results are deterministic run to run).
#ifndef GEOMOPS_GM_CUDA_CUH
#define GEOMOPS_GM_CUDA_CUH

#if defined(GM_CUDA_EMULATE)
#include "emu/cuda_emu.h"
#else
#include <cuda_runtime.h>
#endif

#include <stddef.h>
#include <stdint.h>

#include "geomops/common.h"
#include "geomops/cuda_api.h"
#include "geomops/interrupt.h"

// Launch `kernel` on a grid of `grid` blocks of `block` threads on `stream`. The emulation runs
// every thread in order on the calling host thread.
#if defined(GM_CUDA_EMULATE)
#define GM_LAUNCH(kernel, grid, block, stream, ...)                                                          \
    ::gm_emu::launch(dim3(grid), dim3(block), [&]() { kernel(__VA_ARGS__); })
#else
#define GM_LAUNCH(kernel, grid, block, stream, ...) kernel<<<(grid), (block), 0, (stream)>>>(__VA_ARGS__)
#endif

// Grid-stride loop over [0, n): every index handled by exactly one thread.
#define GM_FOR_EACH(i, n)                                                                                    \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (int64_t)(n);                       \
         i += (int64_t)blockDim.x * gridDim.x)

enum { GM_CUDA_THREADS = 256 };

// Blocks for n items at GM_CUDA_THREADS per block, capped (grid-stride loops cover the rest). The
// emulation gets one block: it runs threads sequentially anyway.
static inline unsigned gm_cuda_blocks(int64_t n) {
#if defined(GM_CUDA_EMULATE)
    (void)n;
    return 1;
#else
    int64_t b = (n + GM_CUDA_THREADS - 1) / GM_CUDA_THREADS;
    if (b < 1) b = 1;
    if (b > 65535 * 8) b = 65535 * 8;
    return (unsigned)b;
#endif
}

// ---- status ------------------------------------------------------------------------------------
// Map a CUDA error to a GM_* status and record the reason for gm_cuda_last_error() (cuda/status.cu).
int gm_cuda_fail(cudaError_t err, const char* what);
// GM_ERR_NOMEM with "could not allocate <bytes> bytes of device memory for <what>" (a double: a size
// that overflowed size_t is reported too).
int gm_cuda_oom(double bytes, const char* what);
// GM_OK after a launch, the launch error mapped by gm_cuda_fail, or GM_ERR_INTERRUPTED when an
// interrupt is pending (geomops/interrupt.h: the launchers poll here, between their launches).
int gm_cuda_check_launch(const char* what);
// Waits until the work queued on `stream` is done, polling for interrupts meanwhile. On
// GM_ERR_INTERRUPTED that work still runs on the device: call it before a read-back into host
// memory (whose copy would block uninterruptibly), never after one.
int gm_cuda_wait_idle(cudaStream_t stream, const char* what);

// Before a read-back into host memory: wait (interruptibly) for the stream's queued work.
#define GM_CUDA_WAIT_IDLE(stream, what)                                                                      \
    do {                                                                                                     \
        const int gm_wst_ = gm_cuda_wait_idle(stream, what);                                                 \
        if (gm_wst_ != GM_OK) return gm_wst_;                                                                \
    } while (0)

#define GM_CUDA_TRY(call, what)                                                                              \
    do {                                                                                                     \
        cudaError_t gm_err_ = (call);                                                                        \
        if (gm_err_ != cudaSuccess) return gm_cuda_fail(gm_err_, what);                                      \
    } while (0)

// ---- device memory -------------------------------------------------------------------------------
// Stream-ordered temporary allocation; failures are GM_ERR_NOMEM with the size in the message.
int gm_dev_alloc(void** p, size_t bytes, cudaStream_t stream, const char* what);
void gm_dev_free(void* p, cudaStream_t stream);

// A temporary device buffer freed (stream-ordered) when it goes out of scope.
template <class T>
struct gm_dev_buffer {
    T* ptr = nullptr;
    cudaStream_t stream = 0;
    gm_dev_buffer() = default;
    gm_dev_buffer(const gm_dev_buffer&) = delete;
    gm_dev_buffer& operator=(const gm_dev_buffer&) = delete;
    ~gm_dev_buffer() { gm_dev_free(ptr, stream); }
    // GM_OK or GM_ERR_NOMEM (also when count * sizeof(T) overflows); count 0 allocates nothing.
    int alloc(size_t count, cudaStream_t s, const char* what) {
        gm_dev_free(ptr, stream);
        ptr = nullptr;
        stream = s;
        if (count == 0) return GM_OK;
        if (count > SIZE_MAX / sizeof(T)) return gm_cuda_oom((double)count * (double)sizeof(T), what);
        return gm_dev_alloc((void**)&ptr, count * sizeof(T), s, what);
    }
};

#endif  // GEOMOPS_GM_CUDA_CUH
