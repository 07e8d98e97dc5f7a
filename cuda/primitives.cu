// The named block-cooperative primitives (cuda/primitives.cuh): CUB on the GPU, host loops with
// the same results in the emulation build.
#include "primitives.cuh"

#if !defined(GM_CUDA_EMULATE)
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>
#else
#include <algorithm>
#include <new>
#include <numeric>
#include <vector>
#endif

int gm_dev_exclusive_scan_i64(const int64_t* in, int64_t* out, int64_t n, cudaStream_t stream) {
#if defined(GM_CUDA_EMULATE)
    (void)stream;
    int64_t s = 0;
    for (int64_t i = 0; i < n; ++i) {
        const int64_t v = in[i];
        out[i] = s;
        s += v;
    }
    out[n] = s;
    return GM_OK;
#else
    // out[0] = 0 and out[1..n] = inclusive sums: n + 1 outputs, out[n] the total.
    GM_CUDA_TRY(cudaMemsetAsync(out, 0, sizeof(int64_t), stream), "cudaMemsetAsync");
    if (n == 0) return GM_OK;
    size_t bytes = 0;
    GM_CUDA_TRY(cub::DeviceScan::InclusiveSum(nullptr, bytes, in, out + 1, n, stream), "DeviceScan");
    gm_dev_buffer<unsigned char> tmp;
    int st = tmp.alloc(bytes, stream, "a prefix sum");
    if (st != GM_OK) return st;
    GM_CUDA_TRY(cub::DeviceScan::InclusiveSum(tmp.ptr, bytes, in, out + 1, n, stream), "DeviceScan");
    return GM_OK;
#endif
}

int gm_dev_sort_pairs_u64(const uint64_t* keys_in, uint64_t* keys_out, const int64_t* vals_in,
                          int64_t* vals_out, int64_t n, int key_bits, cudaStream_t stream) {
#if defined(GM_CUDA_EMULATE)
    (void)stream;
    (void)key_bits;
    std::vector<int64_t> order;
    try {  // an exception must not cross the launcher's C interface
        order.resize((size_t)n);
    } catch (const std::bad_alloc&) {
        return gm_cuda_oom((double)n * sizeof(int64_t), "a radix sort (emulation)");
    }
    std::iota(order.begin(), order.end(), (int64_t)0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return keys_in[a] < keys_in[b]; });
    for (int64_t i = 0; i < n; ++i) {
        keys_out[i] = keys_in[order[(size_t)i]];
        vals_out[i] = vals_in[order[(size_t)i]];
    }
    return GM_OK;
#else
    if (n == 0) return GM_OK;
    size_t bytes = 0;
    GM_CUDA_TRY(cub::DeviceRadixSort::SortPairs(nullptr, bytes, keys_in, keys_out, vals_in, vals_out, n, 0,
                                                key_bits, stream),
                "DeviceRadixSort");
    gm_dev_buffer<unsigned char> tmp;
    int st = tmp.alloc(bytes, stream, "a radix sort");
    if (st != GM_OK) return st;
    GM_CUDA_TRY(cub::DeviceRadixSort::SortPairs(tmp.ptr, bytes, keys_in, keys_out, vals_in, vals_out, n, 0,
                                                key_bits, stream),
                "DeviceRadixSort");
    return GM_OK;
#endif
}

int gm_dev_read_i64(const int64_t* dev, int64_t* host, cudaStream_t stream) {
    GM_CUDA_WAIT_IDLE(stream, "a device count");
    GM_CUDA_TRY(cudaMemcpyAsync(host, dev, sizeof(int64_t), cudaMemcpyDeviceToHost, stream),
                "cudaMemcpyAsync");
    GM_CUDA_TRY(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
    return GM_OK;
}
