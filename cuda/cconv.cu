// CUDA kernels of the continuous convolution (include/geomops/cconv_cuda.h), twin of cpu/cconv.c.
//
// Scheme (Open3D's, made deterministic and memory-bounded): output rows are processed in chunks.
// For a chunk, one thread per neighbor entry computes its filter taps once (cell and coefficient
// (T)(w_t * a_n), the CPU fill's values); then one thread per (row, input channel) writes its
// channel of the row's patch column B_i[s * Cin + ic]: it walks the row's entries and taps in
// order and adds into its own elements only (race-free, the CPU's summation order per element).
// Then the GEMM primitive (cuda/gemm.cuh) contracts the patches with the filters. A fused
// gather-GEMM would avoid writing the patch matrix but needs a block-cooperative kernel; this
// design keeps every kernel one thread per item (testable in the emulation) and the GEMM the
// one block-cooperative piece.
//
// Memory: max_temp_bytes bounds the patch matrix (3/4 of it) and the tap buffer (1/4); a chunk's
// entries are tapped in windows when they do not fit. A minimum (GM_CCONV_MIN_ROWS rows,
// GM_CCONV_MIN_TAPS entries) is always used. Chunking needs the row splits at the chunk
// boundaries on the host: each convolution launcher reads those few values back (one stream
// synchronisation). No result depends on the chunking: every element is computed by the same
// chain of operations whatever the chunk (see the filter gradient's slices below).
#include "gm_cuda.cuh"

#include <stdlib.h>

#include "gemm.cuh"
#include "geomops/cconv_cuda.h"
#include "geomops/cconv_math.h"
#include "geomops/host_alloc.h"
#include "primitives.cuh"

enum {
    GM_CCONV_MIN_ROWS = 32,    // rows per chunk, at least
    GM_CCONV_MIN_TAPS = 1024,  // entries per tap window, at least
    GM_CCONV_SLICE = 512,      // output rows per partial sum of the filter gradient (a power of two)
    GM_CCONV_KSEG = 512        // GEMM depth per partial product of the forward op (a split along K)
};

// Launch `kernel` over n items (nothing for n <= 0) and return its launch status on failure.
#define GM_CUDA_RUN(kernel, n, stream, what, ...)                                                            \
    do {                                                                                                     \
        if ((n) > 0) {                                                                                       \
            GM_LAUNCH(kernel, gm_cuda_blocks(n), GM_CUDA_THREADS, stream, __VA_ARGS__);                      \
            const int gm_st_ = gm_cuda_check_launch(what);                                                   \
            if (gm_st_ != GM_OK) return gm_st_;                                                              \
        }                                                                                                    \
    } while (0)

// ---- chunk plan ----------------------------------------------------------------------------------

// Rows per chunk: as many rows of `per_row` bytes as fit `bytes`, at least the minimum, at most
// `rows` (>= 1).
static int64_t gm_cconv_chunk_rows(int64_t bytes, int64_t per_row, int64_t rows) {
    int64_t c = per_row > 0 ? bytes / per_row : rows;
    if (c < GM_CCONV_MIN_ROWS) c = GM_CCONV_MIN_ROWS;
    return c < rows ? c : rows;
}

// The largest power of two <= v (v >= 1).
static int64_t gm_cconv_pow2_below(int64_t v) {
    int64_t p = 1;
    while (p * 2 <= v) p *= 2;
    return p;
}

// Entries per tap window: what fits `bytes`, at least the minimum, at most what a chunk needs.
static int64_t gm_cconv_window(int64_t bytes, int64_t per_entry, int64_t max_entries) {
    int64_t w = bytes / per_entry;
    if (w < GM_CCONV_MIN_TAPS) w = GM_CCONV_MIN_TAPS;
    if (w > max_entries) w = max_entries;
    return w > 0 ? w : 1;
}

// Chunk c = rows [c * cols, min((c + 1) * cols, num_rows)); first[c] = its first entry (the row
// split at its start), first[count] = the number of entries.
struct gm_cconv_plan {
    int64_t cols = 0, count = 0;
    int64_t* first = nullptr;  // host memory, count + 1 values
    gm_cconv_plan() = default;
    gm_cconv_plan(const gm_cconv_plan&) = delete;
    gm_cconv_plan& operator=(const gm_cconv_plan&) = delete;
    ~gm_cconv_plan() { gm_host_free(first); }
    int64_t rows(int64_t c, int64_t num_rows) const {
        const int64_t r = num_rows - c * cols;
        return r < cols ? r : cols;
    }
    int64_t max_entries() const {
        int64_t m = 0;
        for (int64_t c = 0; c < count; ++c)
            if (first[c + 1] - first[c] > m) m = first[c + 1] - first[c];
        return m;
    }
};

__global__ void gm_cconv_sample_splits_kernel(const int64_t* splits, int64_t num_rows, int64_t step,
                                              int64_t count, int64_t* out) {
    GM_FOR_EACH(c, count + 1) {
        const int64_t r = c * step;
        out[c] = splits[r < num_rows ? r : num_rows];
    }
}

// The plan for chunks of `cols` rows: samples the row splits on the device, copies them back and
// waits for them.
static int gm_cconv_make_plan(const int64_t* splits, int64_t num_rows, int64_t cols, gm_cconv_plan* plan,
                              cudaStream_t s) {
    plan->cols = cols;
    plan->count = num_rows > 0 ? (num_rows + cols - 1) / cols : 0;
    plan->first = (int64_t*)gm_host_alloc(plan->count + 1, sizeof(int64_t));
    if (!plan->first) return GM_ERR_NOMEM;
    gm_dev_buffer<int64_t> dev;
    int st = dev.alloc((size_t)(plan->count + 1), s, "the chunk plan");
    if (st != GM_OK) return st;
    GM_CUDA_RUN(gm_cconv_sample_splits_kernel, plan->count + 1, s, "the chunk plan kernel", splits, num_rows,
                cols, plan->count, dev.ptr);
    GM_CUDA_WAIT_IDLE(s, "the chunk plan");
    GM_CUDA_TRY(cudaMemcpyAsync(plan->first, dev.ptr, (size_t)(plan->count + 1) * sizeof(int64_t),
                                cudaMemcpyDeviceToHost, s),
                "cudaMemcpyAsync");
    GM_CUDA_TRY(cudaStreamSynchronize(s), "cudaStreamSynchronize");
    return GM_OK;
}

// Partial sums of a shared extent's gradient, one thread per block of entries.
__global__ void gm_cconv_extent_blocks_kernel(gm_cconv_grad_params p, double* partials) {
    GM_FOR_EACH(b, gm_cconv_extent_blocks(&p)) gm_cconv_bwd_extent_block(&p, b, partials);
}

#define GM_TWIN_BODY "cconv_impl.cuh"
#include "geomops/twin.h"

// ---- launchers -------------------------------------------------------------------------------------

static int gm_cconv_check(const gm_cconv_params* p) {
    if (p->dtype != GM_FLOAT32 && p->dtype != GM_FLOAT64) return GM_ERR_INVALID;
    if (p->filter_depth < 1 || p->filter_height < 1 || p->filter_width < 1) return GM_ERR_INVALID;
    if (p->extents_cols != 1 && p->extents_cols != 3) return GM_ERR_INVALID;
    return GM_OK;
}

#define GM_CCONV_DISPATCH(fn, ...)                                                                           \
    const int st_ = gm_cconv_check(p);                                                                       \
    if (st_ != GM_OK) return st_;                                                                            \
    return p->dtype == GM_FLOAT32 ? fn##_f32(p, __VA_ARGS__) : fn##_f64(p, __VA_ARGS__);

extern "C" int gm_cconv_apply_cuda(const gm_cconv_params* p, void* stream) {
    GM_CCONV_DISPATCH(apply, (cudaStream_t)stream)
}

extern "C" int gm_cconv_backprop_filter_cuda(const gm_cconv_params* p, void* stream) {
    GM_CCONV_DISPATCH(backprop_filter, (cudaStream_t)stream)
}

extern "C" int gm_cconv_neighbor_products_cuda(const gm_cconv_params* p, void* stream) {
    GM_CCONV_DISPATCH(neighbor_products, (cudaStream_t)stream)
}

extern "C" int gm_cconv_normalizers_cuda(const gm_cconv_params* p, double* divisor, uint8_t* was_zero,
                                         void* stream) {
    GM_CCONV_DISPATCH(normalizers, divisor, was_zero, (cudaStream_t)stream)
}

extern "C" int gm_cconv_inverted_weights_cuda(const gm_cconv_grad_params* p, void* stream) {
    if (p->dtype != GM_FLOAT32 && p->dtype != GM_FLOAT64) return GM_ERR_INVALID;
    return p->dtype == GM_FLOAT32 ? inverted_weights_f32(p, (cudaStream_t)stream)
                                  : inverted_weights_f64(p, (cudaStream_t)stream);
}

extern "C" int gm_cconv_importance_grads_cuda(const gm_cconv_grad_params* p, void* stream) {
    if (p->dtype != GM_FLOAT32 && p->dtype != GM_FLOAT64) return GM_ERR_INVALID;
    return p->dtype == GM_FLOAT32 ? importance_grads_f32(p, (cudaStream_t)stream)
                                  : importance_grads_f64(p, (cudaStream_t)stream);
}

extern "C" int gm_cconv_position_grads_cuda(const gm_cconv_grad_params* p, void* stream) {
    if (p->dtype != GM_FLOAT32 && p->dtype != GM_FLOAT64) return GM_ERR_INVALID;
    if (p->d_extents && p->extents_cols != 1 && p->extents_cols != 3) return GM_ERR_INVALID;
    /* the per-entry derivatives must be there when there are entries (empty arrays may be NULL) */
    if (p->num_entries > 0 && (((p->d_out_positions || p->d_inp_positions) && !p->entry_position_grads) ||
                               (p->d_extents && !p->entry_extent_grads)))
        return GM_ERR_INVALID;
    return p->dtype == GM_FLOAT32 ? position_grads_f32(p, (cudaStream_t)stream)
                                  : position_grads_f64(p, (cudaStream_t)stream);
}

extern "C" int gm_cconv_swap_channels_cuda(int dtype, const void* filters, int64_t cells, int64_t in_channels,
                                           int64_t out_channels, void* out, void* stream) {
    const int64_t n = cells * in_channels * out_channels;
    if (dtype == GM_FLOAT32)
        GM_CUDA_RUN(gm_cconv_swap_channels_kernel_f32, n, (cudaStream_t)stream, "the filter transpose kernel",
                    (const float*)filters, cells, in_channels, out_channels, (float*)out);
    else if (dtype == GM_FLOAT64)
        GM_CUDA_RUN(gm_cconv_swap_channels_kernel_f64, n, (cudaStream_t)stream, "the filter transpose kernel",
                    (const double*)filters, cells, in_channels, out_channels, (double*)out);
    else
        return GM_ERR_INVALID;
    return GM_OK;
}

__global__ void gm_cconv_cast_kernel(int src_dtype, const void* src, int dst_dtype, void* dst, int64_t n) {
    GM_FOR_EACH(k, n) {
        const double v = src_dtype == GM_FLOAT32 ? (double)((const float*)src)[k] : ((const double*)src)[k];
        if (dst_dtype == GM_FLOAT32)
            ((float*)dst)[k] = (float)v;
        else
            ((double*)dst)[k] = v;
    }
}

extern "C" int gm_cconv_cast_cuda(int src_dtype, const void* src, int dst_dtype, void* dst, int64_t n,
                                  void* stream) {
    if ((src_dtype != GM_FLOAT32 && src_dtype != GM_FLOAT64) ||
        (dst_dtype != GM_FLOAT32 && dst_dtype != GM_FLOAT64))
        return GM_ERR_INVALID;
    GM_CUDA_RUN(gm_cconv_cast_kernel, n, (cudaStream_t)stream, "the cast kernel", src_dtype, src, dst_dtype,
                dst, n);
    return GM_OK;
}

extern "C" int gm_reduce_subarrays_sum_cuda(int dtype, const void* values, const int64_t* row_splits,
                                            int64_t num_rows, void* sums, void* stream) {
    if (dtype == GM_FLOAT32)
        GM_CUDA_RUN(gm_reduce_subarrays_sum_kernel_f32, num_rows, (cudaStream_t)stream,
                    "the subarray sum kernel", (const float*)values, row_splits, num_rows, (float*)sums);
    else if (dtype == GM_FLOAT64)
        GM_CUDA_RUN(gm_reduce_subarrays_sum_kernel_f64, num_rows, (cudaStream_t)stream,
                    "the subarray sum kernel", (const double*)values, row_splits, num_rows, (double*)sums);
    else
        return GM_ERR_INVALID;
    return GM_OK;
}

// ---- inverse neighbor list ---------------------------------------------------------------------------

// counts[j] = entries of point j (integer atomics: exact); keys/values for the stable sort.
__global__ void gm_invert_count_kernel(const void* index, int is64, int64_t E, unsigned long long* counts,
                                       uint64_t* keys, int64_t* values) {
    GM_FOR_EACH(n, E) {
        const int64_t j = gm_cconv_index_at(index, is64, n);
        atomicAdd(counts + j, 1ULL);
        keys[n] = (uint64_t)j;
        values[n] = n;
    }
}

// out_index[pos] = the original row of entry perm[pos].
__global__ void gm_invert_rows_kernel(const int64_t* perm, const int64_t* row_splits, int64_t num_rows,
                                      int is64, int64_t E, void* out_index) {
    GM_FOR_EACH(pos, E) {
        const int64_t r = gm_cconv_row_of(row_splits, 0, num_rows, perm[pos]);
        if (is64)
            ((int64_t*)out_index)[pos] = r;
        else
            ((int32_t*)out_index)[pos] = (int32_t)r;
    }
}

// Entries sorted by point with a stable radix sort, so each point's row lists its entries in
// ascending original position (as the CPU's counting sort); row splits from exact counts.
extern "C" int gm_invert_neighbors_cuda(const gm_invert_params* p, void* stream) {
    const cudaStream_t s = (cudaStream_t)stream;
    const int64_t P = p->num_points, E = p->num_entries;
    gm_dev_buffer<int64_t> counts;
    int st = counts.alloc((size_t)(P > 0 ? P : 1), s, "the inverse list's counts");
    if (st != GM_OK) return st;
    GM_CUDA_TRY(cudaMemsetAsync(counts.ptr, 0, (size_t)(P > 0 ? P : 1) * sizeof(int64_t), s),
                "cudaMemsetAsync");
    gm_dev_buffer<uint64_t> keys, keys_sorted;
    gm_dev_buffer<int64_t> values;
    if ((st = keys.alloc((size_t)E, s, "the inverse list's sort keys")) != GM_OK ||
        (st = keys_sorted.alloc((size_t)E, s, "the inverse list's sort keys")) != GM_OK ||
        (st = values.alloc((size_t)E, s, "the inverse list's sort values")) != GM_OK)
        return st;
    GM_CUDA_RUN(gm_invert_count_kernel, E, s, "the inverse list's count kernel", p->index, p->index_int64, E,
                (unsigned long long*)counts.ptr, keys.ptr, values.ptr);
    if ((st = gm_dev_exclusive_scan_i64(counts.ptr, p->out_row_splits, P, s)) != GM_OK) return st;
    int bits = 1;
    while (bits < 63 && ((int64_t)1 << bits) < P) ++bits;
    if ((st = gm_dev_sort_pairs_u64(keys.ptr, keys_sorted.ptr, values.ptr, p->out_permutation, E, bits, s)) !=
        GM_OK)
        return st;
    GM_CUDA_RUN(gm_invert_rows_kernel, E, s, "the inverse list's row kernel", p->out_permutation,
                p->row_splits, p->num_rows, p->index_int64, E, p->out_index);
    return GM_OK;
}
