// Device queries, user-visible device memory, copies and streams of the CUDA module
// (include/geomops/cuda_api.h). Called lazily (never at import), so that a machine without a
// driver or GPU reports "no CUDA" in plain words instead of failing.
#include <string.h>

#include <mutex>
#include <vector>

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

// ---- arrays handed to users: cudaMalloc with a small cache ------------------------------------
// cudaFree synchronises the whole device, which would stall every pipeline that frees a result
// (a render loop frees ~150 MB of buffers per frame). Freed blocks are kept per (device, size
// class) and handed out again; the cache is bounded and emptied when cudaMalloc runs out of
// memory. A block is reused only by a later allocation: work that geomops ordered on its own
// streams has finished by then (ops wait for their stream before returning); work a caller ordered
// on its own stream must finish before the caller drops the array (docs/cuda.md, "Memory").
namespace {
struct cached_block {
    void* ptr;
    size_t bytes;
    int dev;
};
std::mutex g_cache_mutex;
std::vector<cached_block> g_cache;
size_t g_cache_bytes = 0;
const size_t kCacheLimit = (size_t)1 << 31;  // 2 GiB of free blocks at most

// Size classes: powers of two below 1 MiB, multiples of 1 MiB above (bounded waste).
size_t size_class(size_t bytes) {
    if (bytes <= ((size_t)1 << 20)) {
        size_t c = 512;
        while (c < bytes) c <<= 1;
        return c;
    }
    const size_t mib = (size_t)1 << 20;
    return (bytes + mib - 1) / mib * mib;
}

void* cache_take(size_t bytes, int dev) {
    std::lock_guard<std::mutex> lock(g_cache_mutex);
    for (size_t i = 0; i < g_cache.size(); ++i)
        if (g_cache[i].bytes == bytes && g_cache[i].dev == dev) {
            void* p = g_cache[i].ptr;
            g_cache_bytes -= bytes;
            g_cache[i] = g_cache.back();
            g_cache.pop_back();
            return p;
        }
    return nullptr;
}

// Frees every cached block of `dev` (all devices for -1).
void cache_flush(int dev) {
    std::vector<cached_block> drop;
    {
        std::lock_guard<std::mutex> lock(g_cache_mutex);
        for (size_t i = 0; i < g_cache.size();) {
            if (dev < 0 || g_cache[i].dev == dev) {
                drop.push_back(g_cache[i]);
                g_cache_bytes -= g_cache[i].bytes;
                g_cache[i] = g_cache.back();
                g_cache.pop_back();
            } else {
                ++i;
            }
        }
    }
    int cur = 0;
    cudaGetDevice(&cur);
    for (const cached_block& b : drop) {
        cudaSetDevice(b.dev);
        cudaFree(b.ptr);
    }
    cudaSetDevice(cur);
}
}  // namespace

extern "C" int gm_cuda_malloc(void** p, size_t bytes, int dev) {
    *p = nullptr;
    GM_CUDA_TRY(cudaSetDevice(dev), "cudaSetDevice");
    if (bytes == 0) return GM_OK;
    if (bytes > SIZE_MAX / 2) return gm_cuda_oom((double)bytes, "an array");  // no size class holds it
    const size_t cls = size_class(bytes);
    if ((*p = cache_take(cls, dev)) != nullptr) return GM_OK;
    cudaError_t err = cudaMalloc(p, cls);
    if (err == cudaErrorMemoryAllocation) {  // give the cached blocks back and try once more
        cudaGetLastError();
        cache_flush(dev);
        err = cudaMalloc(p, cls);
    }
    if (err == cudaErrorMemoryAllocation) return gm_cuda_oom(bytes, "an array");
    if (err != cudaSuccess) return gm_cuda_fail(err, "cudaMalloc");
    return GM_OK;
}

// `bytes` must be what gm_cuda_malloc was asked for.
extern "C" int gm_cuda_free(void* p, size_t bytes, int dev) {
    if (!p) return GM_OK;
    const size_t cls = size_class(bytes);
    {
        std::lock_guard<std::mutex> lock(g_cache_mutex);
        if (g_cache_bytes + cls <= kCacheLimit) {
            g_cache.push_back({p, cls, dev});
            g_cache_bytes += cls;
            return GM_OK;
        }
    }
    GM_CUDA_TRY(cudaSetDevice(dev), "cudaSetDevice");
    GM_CUDA_TRY(cudaFree(p), "cudaFree");
    return GM_OK;
}

extern "C" int gm_cuda_release_cached(void) {
    cache_flush(-1);
    return GM_OK;
}

extern "C" int gm_cuda_memcpy(void* dst, const void* src, size_t bytes, void* stream) {
    if (bytes == 0) return GM_OK;
    cudaStream_t s = (cudaStream_t)stream;
    // wait for the queued kernels interruptibly first: the copy itself waits uninterruptibly
    GM_CUDA_WAIT_IDLE(s, "a copy");
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
    GM_CUDA_WAIT_IDLE((cudaStream_t)stream, "a stream synchronisation");
    GM_CUDA_TRY(cudaStreamSynchronize((cudaStream_t)stream), "cudaStreamSynchronize");
    return GM_OK;
}
