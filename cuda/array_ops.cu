// Device-array services (include/geomops/array_ops.h): the value checks of input validation as
// fixed-order reductions, dtype conversions, strided-to-contiguous copies, pointer and stream
// queries. Plain one-thread-per-item kernels, so the emulation build runs all of them in CI.
#include "gm_cuda.cuh"

#include <math.h>
#include <string.h>

#include "geomops/array_ops.h"

namespace {

// ---- statistics ----------------------------------------------------------------------------------

__host__ __device__ inline void stats_init(gm_array_stats& s) {
    s.imin = INT64_MAX;
    s.imax = INT64_MIN;
    s.fmin = INFINITY;
    s.fmax = -INFINITY;
    s.nonfinite = 0;
    s.decreasing = 0;
    s.nonincreasing = 0;
    s.first = 0;
    s.last = 0;
}

// Every field is a min, a max or an integer count: merging in any grouping gives the same result.
__host__ __device__ inline void stats_merge(gm_array_stats& a, const gm_array_stats& b) {
    a.imin = b.imin < a.imin ? b.imin : a.imin;
    a.imax = b.imax > a.imax ? b.imax : a.imax;
    a.fmin = b.fmin < a.fmin ? b.fmin : a.fmin;
    a.fmax = b.fmax > a.fmax ? b.fmax : a.fmax;
    a.nonfinite += b.nonfinite;
    a.decreasing += b.decreasing;
    a.nonincreasing += b.nonincreasing;
}

__device__ inline void stats_add(gm_array_stats& s, int64_t v) {
    s.imin = v < s.imin ? v : s.imin;
    s.imax = v > s.imax ? v : s.imax;
}

__device__ inline void stats_add(gm_array_stats& s, double v) {
    if (isfinite(v)) {
        s.fmin = v < s.fmin ? v : s.fmin;
        s.fmax = v > s.fmax ? v : s.fmax;
    } else {
        s.nonfinite += 1;
    }
}

template <class T>
struct stats_value {
    typedef int64_t type;
};
template <>
struct stats_value<float> {
    typedef double type;
};
template <>
struct stats_value<double> {
    typedef double type;
};

// Partial t summarises a[t], a[t + parts], ... and the neighbour pairs (i, i + 1) starting there.
template <class T>
__global__ void stats_partial_kernel(const T* __restrict__ a, int64_t n, int64_t parts,
                                     gm_array_stats* __restrict__ out) {
    GM_FOR_EACH(t, parts) {
        gm_array_stats s;
        stats_init(s);
        for (int64_t i = t; i < n; i += parts) {
            const T v = a[i];
            stats_add(s, (typename stats_value<T>::type)v);
            if (i + 1 < n) {
                const T w = a[i + 1];
                s.decreasing += w < v;
                s.nonincreasing += w <= v;
            }
        }
        out[t] = s;
    }
}

// out[t] = merge of in[t], in[t + n_out], ... (a fixed assignment: deterministic).
__global__ void stats_combine_kernel(const gm_array_stats* __restrict__ in, int64_t n_in, int64_t n_out,
                                     gm_array_stats* __restrict__ out) {
    GM_FOR_EACH(t, n_out) {
        gm_array_stats s;
        stats_init(s);
        for (int64_t i = t; i < n_in; i += n_out) stats_merge(s, in[i]);
        out[t] = s;
    }
}

enum { STATS_PARTS = 65536, STATS_FAN_IN = 256 };

template <class T>
int stats_launch(const T* a, int64_t n, gm_array_stats* out, cudaStream_t stream) {
    const int64_t parts = n < STATS_PARTS ? n : STATS_PARTS;
    gm_dev_buffer<gm_array_stats> buf_a, buf_b;
    int st = buf_a.alloc((size_t)parts, stream, "an array check");
    if (st != GM_OK) return st;
    st = buf_b.alloc((size_t)((parts + STATS_FAN_IN - 1) / STATS_FAN_IN), stream, "an array check");
    if (st != GM_OK) return st;
    GM_LAUNCH(stats_partial_kernel<T>, gm_cuda_blocks(parts), GM_CUDA_THREADS, stream, a, n, parts,
              buf_a.ptr);
    st = gm_cuda_check_launch("an array check");
    if (st != GM_OK) return st;
    gm_array_stats* cur = buf_a.ptr;
    gm_array_stats* next = buf_b.ptr;
    int64_t m = parts;
    while (m > 1) {
        const int64_t m2 = (m + STATS_FAN_IN - 1) / STATS_FAN_IN;
        GM_LAUNCH(stats_combine_kernel, gm_cuda_blocks(m2), GM_CUDA_THREADS, stream, cur, m, m2, next);
        st = gm_cuda_check_launch("an array check");
        if (st != GM_OK) return st;
        gm_array_stats* t = cur;
        cur = next;
        next = t;
        m = m2;
    }
    GM_CUDA_WAIT_IDLE(stream, "an array check");
    GM_CUDA_TRY(cudaMemcpyAsync(out, cur, sizeof *out, cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync");
    GM_CUDA_TRY(cudaMemcpyAsync(&out->first, a, sizeof(T), cudaMemcpyDeviceToHost, stream),
                "cudaMemcpyAsync");
    GM_CUDA_TRY(cudaMemcpyAsync(&out->last, a + (n - 1), sizeof(T), cudaMemcpyDeviceToHost, stream),
                "cudaMemcpyAsync");
    GM_CUDA_TRY(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
    return GM_OK;
}

// ---- conversions ---------------------------------------------------------------------------------

// IEEE binary16 bits -> float, exact (NaN payloads kept as NumPy does).
__device__ inline float half_bits_to_float(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exponent = (h >> 10) & 0x1fu;
    const uint32_t mantissa = h & 0x3ffu;
    if (exponent == 0) {
        // zero or subnormal: mantissa * 2^-24, exact in float
        const float f = (float)mantissa * 5.9604644775390625e-8f;
        return sign ? -f : f;
    }
    const uint32_t bits = exponent == 31 ? (sign | 0x7f800000u | (mantissa << 13))
                                         : (sign | ((exponent + 112u) << 23) | (mantissa << 13));
    return __int_as_float((int)bits);
}

struct half_bits {
    uint16_t bits;
};

template <class D, class S>
__device__ inline D convert(S v) {
    return (D)v;
}
template <>
__device__ inline float convert<float, half_bits>(half_bits v) {
    return half_bits_to_float(v.bits);
}
template <>
__device__ inline double convert<double, half_bits>(half_bits v) {
    return (double)half_bits_to_float(v.bits);
}
template <>
__device__ inline int16_t convert<int16_t, half_bits>(half_bits v) {
    return (int16_t)half_bits_to_float(v.bits);
}
template <>
__device__ inline int32_t convert<int32_t, half_bits>(half_bits v) {
    return (int32_t)half_bits_to_float(v.bits);
}
template <>
__device__ inline int64_t convert<int64_t, half_bits>(half_bits v) {
    return (int64_t)half_bits_to_float(v.bits);
}

template <class S, class D>
__global__ void cast_kernel(const S* __restrict__ src, D* __restrict__ dst, int64_t n) {
    GM_FOR_EACH(i, n) dst[i] = convert<D>(src[i]);
}

template <class S, class D>
int cast_launch(const void* src, void* dst, int64_t n, cudaStream_t stream) {
    void (*kernel)(const S*, D*, int64_t) = cast_kernel<S, D>;  // a macro argument cannot hold "<S, D>"
    GM_LAUNCH(kernel, gm_cuda_blocks(n), GM_CUDA_THREADS, stream, (const S*)src, (D*)dst, n);
    return gm_cuda_check_launch("a dtype conversion");
}

// bool is read as a byte: NumPy stores True as 1.
template <class D>
int cast_from(int src_dtype, const void* src, void* dst, int64_t n, cudaStream_t stream) {
    switch (src_dtype) {
        case GM_DT_BOOL:
        case GM_DT_UINT8:
            return cast_launch<uint8_t, D>(src, dst, n, stream);
        case GM_DT_INT8:
            return cast_launch<int8_t, D>(src, dst, n, stream);
        case GM_DT_INT16:
            return cast_launch<int16_t, D>(src, dst, n, stream);
        case GM_DT_UINT16:
            return cast_launch<uint16_t, D>(src, dst, n, stream);
        case GM_DT_INT32:
            return cast_launch<int32_t, D>(src, dst, n, stream);
        case GM_DT_UINT32:
            return cast_launch<uint32_t, D>(src, dst, n, stream);
        case GM_DT_INT64:
            return cast_launch<int64_t, D>(src, dst, n, stream);
        case GM_DT_UINT64:
            return cast_launch<uint64_t, D>(src, dst, n, stream);
        case GM_DT_FLOAT16:
            return cast_launch<half_bits, D>(src, dst, n, stream);
        case GM_DT_FLOAT32:
            return cast_launch<float, D>(src, dst, n, stream);
        case GM_DT_FLOAT64:
            return cast_launch<double, D>(src, dst, n, stream);
        default:
            return GM_ERR_INVALID;
    }
}

// ---- strided copy --------------------------------------------------------------------------------

struct strided_layout {
    int ndim;
    int64_t shape[GM_ARRAY_MAX_DIMS];
    int64_t strides[GM_ARRAY_MAX_DIMS];
};

// Element i (C order) of the source, copied as `words` words of type W.
template <class W>
__global__ void copy_strided_kernel(const unsigned char* __restrict__ src, W* __restrict__ dst, int64_t n,
                                    int64_t words, strided_layout layout) {
    GM_FOR_EACH(i, n) {
        int64_t rest = i, offset = 0;
        for (int d = layout.ndim - 1; d >= 0; --d) {
            const int64_t k = rest % layout.shape[d];
            rest /= layout.shape[d];
            offset += k * layout.strides[d];
        }
        const W* s = (const W*)(src + offset);
        for (int64_t w = 0; w < words; ++w) dst[i * words + w] = s[w];
    }
}

template <class W>
int copy_strided_launch(const void* src, void* dst, int64_t n, int64_t itemsize, const strided_layout& layout,
                        cudaStream_t stream) {
    const int64_t words = itemsize / (int64_t)sizeof(W);
    GM_LAUNCH(copy_strided_kernel<W>, gm_cuda_blocks(n), GM_CUDA_THREADS, stream, (const unsigned char*)src,
              (W*)dst, n, words, layout);
    return gm_cuda_check_launch("a strided copy");
}

}  // namespace

extern "C" int gm_array_stats_cuda(const void* a, int dtype, int64_t n, gm_array_stats* out, void* stream) {
    stats_init(*out);
    if (n <= 0) return GM_ERR_INVALID;
    cudaStream_t s = (cudaStream_t)stream;
    switch (dtype) {
        case GM_DT_INT32:
            return stats_launch((const int32_t*)a, n, out, s);
        case GM_DT_INT64:
            return stats_launch((const int64_t*)a, n, out, s);
        case GM_DT_FLOAT32:
            return stats_launch((const float*)a, n, out, s);
        case GM_DT_FLOAT64:
            return stats_launch((const double*)a, n, out, s);
        default:
            return GM_ERR_INVALID;
    }
}

extern "C" int gm_array_cast_cuda(const void* src, int src_dtype, void* dst, int dst_dtype, int64_t n,
                                  void* stream) {
    if (n <= 0) return GM_OK;
    cudaStream_t s = (cudaStream_t)stream;
    switch (dst_dtype) {
        case GM_DT_INT16:
            return cast_from<int16_t>(src_dtype, src, dst, n, s);
        case GM_DT_INT32:
            return cast_from<int32_t>(src_dtype, src, dst, n, s);
        case GM_DT_INT64:
            return cast_from<int64_t>(src_dtype, src, dst, n, s);
        case GM_DT_FLOAT32:
            return cast_from<float>(src_dtype, src, dst, n, s);
        case GM_DT_FLOAT64:
            return cast_from<double>(src_dtype, src, dst, n, s);
        default:
            return GM_ERR_INVALID;
    }
}

extern "C" int gm_array_copy_strided_cuda(const void* src, void* dst, int64_t itemsize, int ndim,
                                          const int64_t* shape, const int64_t* strides, void* stream) {
    if (ndim < 0 || ndim > GM_ARRAY_MAX_DIMS || itemsize <= 0) return GM_ERR_INVALID;
    strided_layout layout;
    memset(&layout, 0, sizeof layout);
    layout.ndim = ndim;
    int64_t n = 1;
    // The widest word that every element address is aligned to: misaligned loads fault on the GPU.
    uint64_t align = (uint64_t)(uintptr_t)src | (uint64_t)itemsize;
    for (int d = 0; d < ndim; ++d) {
        if (shape[d] < 0) return GM_ERR_INVALID;
        layout.shape[d] = shape[d];
        layout.strides[d] = strides[d];
        n *= shape[d];
        if (shape[d] > 1) align |= (uint64_t)strides[d];
    }
    if (n == 0) return GM_OK;
    cudaStream_t s = (cudaStream_t)stream;
    if (align % 8 == 0) return copy_strided_launch<uint64_t>(src, dst, n, itemsize, layout, s);
    if (align % 4 == 0) return copy_strided_launch<uint32_t>(src, dst, n, itemsize, layout, s);
    if (align % 2 == 0) return copy_strided_launch<uint16_t>(src, dst, n, itemsize, layout, s);
    return copy_strided_launch<uint8_t>(src, dst, n, itemsize, layout, s);
}

extern "C" int gm_cuda_pointer_device(const void* p, int* device, int* is_device) {
    *device = 0;
    *is_device = 0;
    if (p == nullptr) {
        GM_CUDA_TRY(cudaGetDevice(device), "cudaGetDevice");
        *is_device = 1;
        return GM_OK;
    }
#if defined(GM_CUDA_EMULATE)
    // emulated device memory is host memory: every pointer counts as device 0's
    *is_device = 1;
#else
    cudaPointerAttributes attr;
    GM_CUDA_TRY(cudaPointerGetAttributes(&attr, p), "cudaPointerGetAttributes");
    *device = attr.device;
    *is_device = attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged;
#endif
    return GM_OK;
}

extern "C" int gm_cuda_stream_wait(void* waiter, void* producer, int dev) {
    GM_CUDA_TRY(cudaSetDevice(dev), "cudaSetDevice");
    cudaEvent_t ev;
    GM_CUDA_TRY(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), "cudaEventCreateWithFlags");
    cudaError_t err = cudaEventRecord(ev, (cudaStream_t)producer);
    if (err == cudaSuccess) err = cudaStreamWaitEvent((cudaStream_t)waiter, ev, 0);
    // destroying a recorded event is safe: its resources go once the wait is resolved
    cudaEventDestroy(ev);
    if (err != cudaSuccess) return gm_cuda_fail(err, "cudaStreamWaitEvent");
    return GM_OK;
}

extern "C" int gm_cuda_get_device(int* dev) {
    *dev = 0;
    GM_CUDA_TRY(cudaGetDevice(dev), "cudaGetDevice");
    return GM_OK;
}

// ---- row gather and integer segment sums ---------------------------------------------------------

namespace {
// One thread per byte-word of the output; rows are `words` words of W.
template <class W>
__global__ void gather_rows_kernel(const W* __restrict__ src, W* __restrict__ dst, int64_t words,
                                   const int64_t* __restrict__ perm, int64_t n) {
    GM_FOR_EACH(t, n * words) {
        const int64_t i = t / words, w = t % words;
        dst[t] = src[perm[i] * words + w];
    }
}

template <class T>
__global__ void segment_sum_int_kernel(const T* __restrict__ v, const int64_t* __restrict__ rs, int64_t rows,
                                       T* __restrict__ out) {
    GM_FOR_EACH(r, rows) {
        uint64_t s = 0;  // unsigned: wraparound is defined, and equals the values' type's modulo sum
        for (int64_t k = rs[r]; k < rs[r + 1]; ++k) s += (uint64_t)(int64_t)v[k];
        out[r] = (T)(int64_t)s;
    }
}
}  // namespace

extern "C" int gm_array_gather_rows_cuda(const void* src, void* dst, int64_t row_bytes, const int64_t* perm,
                                         int64_t n, void* stream) {
    if (n <= 0 || row_bytes <= 0) return GM_OK;
    cudaStream_t s = (cudaStream_t)stream;
    (void)s;  // unused by the host emulation's launches
    const uintptr_t align = (uintptr_t)src | (uintptr_t)dst | (uintptr_t)row_bytes;
    if (align % 8 == 0) {
        const int64_t words = row_bytes / 8;
        GM_LAUNCH(gather_rows_kernel<uint64_t>, gm_cuda_blocks(n * words), GM_CUDA_THREADS, s,
                  (const uint64_t*)src, (uint64_t*)dst, words, perm, n);
    } else if (align % 4 == 0) {
        const int64_t words = row_bytes / 4;
        GM_LAUNCH(gather_rows_kernel<uint32_t>, gm_cuda_blocks(n * words), GM_CUDA_THREADS, s,
                  (const uint32_t*)src, (uint32_t*)dst, words, perm, n);
    } else {
        GM_LAUNCH(gather_rows_kernel<uint8_t>, gm_cuda_blocks(n * row_bytes), GM_CUDA_THREADS, s,
                  (const uint8_t*)src, (uint8_t*)dst, row_bytes, perm, n);
    }
    return gm_cuda_check_launch("a row gather");
}

extern "C" int gm_array_segment_sum_int_cuda(const void* values, int dtype, const int64_t* row_splits,
                                             int64_t rows, void* sums, void* stream) {
    if (rows <= 0) return GM_OK;
    cudaStream_t s = (cudaStream_t)stream;
    (void)s;  // unused by the host emulation's launches
    if (dtype == GM_DT_INT32)
        GM_LAUNCH(segment_sum_int_kernel<int32_t>, gm_cuda_blocks(rows), GM_CUDA_THREADS, s,
                  (const int32_t*)values, row_splits, rows, (int32_t*)sums);
    else if (dtype == GM_DT_INT64)
        GM_LAUNCH(segment_sum_int_kernel<int64_t>, gm_cuda_blocks(rows), GM_CUDA_THREADS, s,
                  (const int64_t*)values, row_splits, rows, (int64_t*)sums);
    else
        return GM_ERR_INVALID;
    return gm_cuda_check_launch("an integer segment sum");
}

// ---- masked finiteness check and column padding --------------------------------------------------

namespace {
// acc[0] counts the masked rows holding a NaN or infinity; acc[1] = rows - (the smallest such
// row), so that one zero fill initialises both and an integer atomicMax finds the first row.
__global__ void masked_nonfinite_kernel(const float* __restrict__ values, int64_t rows, int64_t cols,
                                        const int16_t* __restrict__ mask, unsigned long long* acc) {
    GM_FOR_EACH(r, rows) {
        if (mask[r] == 0) continue;
        bool bad = false;
        for (int64_t c = 0; c < cols; ++c) bad = bad || !isfinite(values[r * cols + c]);
        if (bad) {
            atomicAdd(&acc[0], 1ull);
            atomicMax(&acc[1], (unsigned long long)(rows - r));
        }
    }
}

__global__ void pad_columns_kernel(const float* __restrict__ src, int64_t rows, int64_t src_cols,
                                   float* __restrict__ dst, int64_t dst_cols, float fill) {
    GM_FOR_EACH(i, rows * dst_cols) {
        const int64_t r = i / dst_cols, c = i % dst_cols;
        dst[i] = c < src_cols ? src[r * src_cols + c] : fill;
    }
}
}  // namespace

extern "C" int gm_array_masked_nonfinite_cuda(const float* values, int64_t rows, int64_t cols,
                                              const int16_t* mask, int64_t* count, int64_t* first,
                                              void* stream) {
    *count = 0;
    *first = -1;
    if (rows < 0 || cols < 0) return GM_ERR_INVALID;
    if (rows == 0 || cols == 0) return GM_OK;
    cudaStream_t s = (cudaStream_t)stream;
    gm_dev_buffer<unsigned long long> acc;
    int st = acc.alloc(2, s, "a finiteness check");
    if (st != GM_OK) return st;
    GM_CUDA_TRY(cudaMemsetAsync(acc.ptr, 0, 2 * sizeof(unsigned long long), s), "cudaMemsetAsync");
    GM_LAUNCH(masked_nonfinite_kernel, gm_cuda_blocks(rows), GM_CUDA_THREADS, s, values, rows, cols, mask,
              acc.ptr);
    st = gm_cuda_check_launch("a finiteness check");
    if (st != GM_OK) return st;
    unsigned long long host[2] = {0, 0};
    GM_CUDA_WAIT_IDLE(s, "a finiteness check");
    GM_CUDA_TRY(cudaMemcpyAsync(host, acc.ptr, sizeof host, cudaMemcpyDeviceToHost, s), "cudaMemcpyAsync");
    GM_CUDA_TRY(cudaStreamSynchronize(s), "cudaStreamSynchronize");
    *count = (int64_t)host[0];
    *first = host[0] ? rows - (int64_t)host[1] : -1;
    return GM_OK;
}

extern "C" int gm_array_pad_columns_f32_cuda(const float* src, int64_t rows, int64_t src_cols, float* dst,
                                             int64_t dst_cols, float fill, void* stream) {
    if (rows < 0 || src_cols < 0 || dst_cols < src_cols) return GM_ERR_INVALID;
    if (rows == 0 || dst_cols == 0) return GM_OK;
    cudaStream_t s = (cudaStream_t)stream;
    (void)s;  // unused by the host emulation's launches
    GM_LAUNCH(pad_columns_kernel, gm_cuda_blocks(rows * dst_cols), GM_CUDA_THREADS, s, src, rows, src_cols,
              dst, dst_cols, fill);
    return gm_cuda_check_launch("a column padding");
}
