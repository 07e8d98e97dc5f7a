/* OpenMP CPU kernels of the continuous convolution (docs/cconv.md, "How it is computed").
 *
 * Differences from Open3D's CPU kernels, on purpose:
 *  - the filter gradient is reduced in a fixed order (bitwise identical for any thread count),
 *  - temporary memory is bounded by max_temp_bytes (Open3D ignores max_temp_mem_MB on the CPU),
 *  - the GEMM is a register-blocked AVX-512/AVX2 kernel (cpu/gemm.c) instead of Eigen.
 * The per-entry and per-row formulas are the GM_HD helpers of geomops/cconv_math.h. */
#include "geomops/cconv.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gemm.h"
#include "geomops/cconv_math.h"
#include "geomops/host_alloc.h"
#include "interrupt_omp.h"
#include "isa.h"
#include "search_internal.h" /* gm_search_radix_sort */

#include "cconv_taps.h"

typedef struct {
    const gm_cconv_params* p;
    gm_cconv_geometry geom;
    int64_t K, Cin, Cout;
    int num_threads;
    int simd_taps; /* the taps of cconv_taps.h's SIMD path apply (gm_cconv_simd_taps) */
} cconv_ctx;

static int cconv_ctx_init(cconv_ctx* c, const gm_cconv_params* p) {
    if (p->dtype != GM_FLOAT32 && p->dtype != GM_FLOAT64) return GM_ERR_INVALID;
    if (p->filter_depth < 1 || p->filter_height < 1 || p->filter_width < 1) return GM_ERR_INVALID;
    if (p->extents_cols != 1 && p->extents_cols != 3) return GM_ERR_INVALID;
    c->p = p;
    gm_cconv_geometry_init(&c->geom, p);
    c->simd_taps = gm_cconv_simd_taps(&c->geom);
    c->Cin = p->in_channels;
    c->Cout = p->out_channels;
    c->K = (int64_t)p->filter_depth * p->filter_height * p->filter_width * p->in_channels;
    c->num_threads = p->num_threads > 0 ? p->num_threads : 1;
    /* Small problems run on fewer threads: opening a parallel region costs more than the work
     * (and stalls on a busy machine). Results do not depend on the thread count. */
    const double entries = p->num_out > 0 ? (double)p->neighbors_row_splits[p->num_out] : 0.0;
    const double work = entries * 8 * c->Cin + (double)p->num_out * c->K * (c->Cout > 0 ? c->Cout : 1);
    const double useful = 1 + work / (1 << 18); /* double: the product may exceed int64 */
    if (useful < c->num_threads) c->num_threads = (int)useful;
    return GM_OK;
}

/* Columns per chunk: as many as fit the byte budget, at least a few, at most `cap` (beyond
 * that the patch matrix leaves the cache without any gain). */
static int64_t chunk_columns(int64_t budget_bytes, int64_t bytes_per_column, int64_t cap) {
    int64_t cols = bytes_per_column > 0 ? budget_bytes / bytes_per_column : cap;
    if (cols > cap) cols = cap;
    if (cols >= GM_GEMM_MR) cols -= cols % GM_GEMM_MR;
    if (cols < 16) cols = 16; /* the minimum temporary memory, always allocated */
    return cols;
}

/* Patch-matrix sizes that stay in a core's L2 cache (per thread): the GEMM re-reads the
 * patches once per block of output channels. */
#ifndef GM_APPLY_CACHE_BYTES
#define GM_APPLY_CACHE_BYTES (512 * 1024)
#endif
#ifndef GM_PANEL_CACHE_BYTES
#define GM_PANEL_CACHE_BYTES (2048 * 1024)
#endif

/* Columns of `bytes_per_column` that fit `cache_bytes` (a multiple of the GEMM row block). */
static int64_t cache_columns(int64_t bytes_per_column, int64_t cache_bytes) {
    int64_t cols = bytes_per_column > 0 ? cache_bytes / bytes_per_column : 96;
    cols -= cols % GM_GEMM_MR;
    return cols < GM_GEMM_MR ? GM_GEMM_MR : cols;
}

/* Phase timing for gm_cconv_profile_cpu: off unless a benchmark asks for it. */
static int prof_on;
static double prof_fill, prof_gemm; /* thread-seconds */

static double prof_clock(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* CPU time: robust to a busy machine */
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void gm_cconv_profile_cpu(int enable, double* out) {
    if (out) {
        out[0] = prof_fill;
        out[1] = prof_gemm;
    }
    prof_fill = prof_gemm = 0.0;
    prof_on = enable != 0;
}

/* Starts a phase at *t (when timing is on). */
static inline void prof_start(double* t) {
    if (prof_on) *t = prof_clock();
}

/* Adds the seconds since *t to *acc and restarts *t (when timing is on). */
static inline void prof_lap(double* t, double* acc) {
    if (!prof_on) return;
    const double now = prof_clock();
    *acc += now - *t;
    *t = now;
}

/* Adds one thread's phase times to the counters (inside a parallel region). */
static inline void gm_prof_add(double fill, double gemm) {
    if (!prof_on) return;
#pragma omp atomic
    prof_fill += fill;
#pragma omp atomic
    prof_gemm += gemm;
}

/* How many rows ahead the fill prefetches the neighbors' positions and features. */
#ifndef GM_FILL_AHEAD
#define GM_FILL_AHEAD 1
#endif

/* Rows from which the kernels visit the output points in spatial order (below, every gathered
 * array fits in the caches anyway). */
#ifndef GM_CCONV_ORDER_MIN_ROWS
#define GM_CCONV_ORDER_MIN_ROWS 8192
#endif

/* The 10 low bits of x spread to every third bit (the Morton code's interleave). */
static uint32_t spread3(uint32_t x) {
    x &= 0x3ffu;
    x = (x | x << 16) & 0x30000ffu;
    x = (x | x << 8) & 0x300f00fu;
    x = (x | x << 4) & 0x30c30c3u;
    x = (x | x << 2) & 0x9249249u;
    return x;
}

/* order = 0..n-1 sorted by the Morton (z-order) code of the points xyz (n x 3, GM_FLOAT32 or
 * GM_FLOAT64; each axis quantised to 10 bits over the points' finite range; non-finite
 * coordinates count as the range's low end), ties by index: consecutive output points then
 * share most neighbors, so their feature rows are gathered from cache instead of memory. A
 * function of the positions only (the radix sort is stable: its answer does not depend on
 * num_threads). Returns GM_OK, GM_ERR_NOMEM or GM_ERR_INTERRUPTED. */
static int spatial_order(const void* xyz, int dtype, int64_t n, int64_t* order, int num_threads) {
    uint64_t* code = (uint64_t*)gm_host_alloc(n > 0 ? n : 1, sizeof(uint64_t));
    if (!code) return GM_ERR_NOMEM;
    double lo[3] = {HUGE_VAL, HUGE_VAL, HUGE_VAL}, hi[3] = {-HUGE_VAL, -HUGE_VAL, -HUGE_VAL};
#define GM_COORD(i, k)                                                                                       \
    (dtype == GM_FLOAT32 ? (double)((const float*)xyz)[3 * (i) + (k)] : ((const double*)xyz)[3 * (i) + (k)])
    for (int64_t i = 0; i < n; ++i)
        for (int k = 0; k < 3; ++k) {
            const double v = GM_COORD(i, k);
            if (v - v == 0.0) {
                if (v < lo[k]) lo[k] = v;
                if (v > hi[k]) hi[k] = v;
            }
        }
    double scale[3];
    for (int k = 0; k < 3; ++k) scale[k] = hi[k] > lo[k] ? 1024.0 / (hi[k] - lo[k]) : 0.0;
    for (int64_t i = 0; i < n; ++i) {
        uint32_t c = 0;
        for (int k = 0; k < 3; ++k) {
            const double t = (GM_COORD(i, k) - lo[k]) * scale[k];
            const uint32_t q = t >= 1023.0 ? 1023u : (t >= 1.0 ? (uint32_t)t : 0u); /* NaN -> 0 */
            c |= spread3(q) << k;
        }
        code[i] = c;
        order[i] = i;
    }
#undef GM_COORD
    const int status = gm_search_radix_sort(code, order, n, (1u << 30) - 1u, num_threads);
    gm_host_free(code);
    return status;
}

/* Elements per patch row: K rounded up to GM_GEMM_PANEL_* (the GEMM may read that far), plus a
 * cache line when the row size is a multiple of 1 KiB, so that the rows a micro-kernel reads
 * together do not all fall into the same L1 sets. */
static int64_t patch_ld(int64_t K, int64_t elem_bytes) {
    int64_t ld = gm_round_up(K, 128 / elem_bytes);
    if ((ld * elem_bytes) % 1024 == 0) ld += 64 / elem_bytes;
    return ld;
}

#define GM_TWIN_BODY "cconv_impl.h"
#include "geomops/twin.h"

/* ---- launchers ------------------------------------------------------------------------ */

#define GM_DISPATCH(fn)                                                                                      \
    cconv_ctx c;                                                                                             \
    int st = cconv_ctx_init(&c, p);                                                                          \
    if (st != GM_OK) return st;                                                                              \
    return p->dtype == GM_FLOAT32 ? fn##_f32(&c) : fn##_f64(&c);

int gm_cconv_apply_cpu(const gm_cconv_params* p) {
    GM_DISPATCH(apply)
}

int gm_cconv_backprop_filter_cpu(const gm_cconv_params* p) {
    GM_DISPATCH(backprop_filter)
}

int gm_cconv_neighbor_products_cpu(const gm_cconv_params* p) {
    GM_DISPATCH(neighbor_products)
}

int gm_cconv_normalizers_cpu(const gm_cconv_params* p, double* divisor, uint8_t* was_zero) {
    cconv_ctx c;
    int st = cconv_ctx_init(&c, p);
    if (st != GM_OK) return st;
    return p->dtype == GM_FLOAT32 ? normalizers_f32(&c, divisor, was_zero)
                                  : normalizers_f64(&c, divisor, was_zero);
}

int gm_cconv_inverted_weights_cpu(const gm_cconv_grad_params* p) {
    if (p->dtype != GM_FLOAT32 && p->dtype != GM_FLOAT64) return GM_ERR_INVALID;
    return p->dtype == GM_FLOAT32 ? inverted_weights_f32(p) : inverted_weights_f64(p);
}

int gm_cconv_importance_grads_cpu(const gm_cconv_grad_params* p) {
    if (p->dtype != GM_FLOAT32 && p->dtype != GM_FLOAT64) return GM_ERR_INVALID;
    return p->dtype == GM_FLOAT32 ? importance_grads_f32(p) : importance_grads_f64(p);
}

int gm_cconv_position_grads_cpu(const gm_cconv_grad_params* p) {
    if (p->dtype != GM_FLOAT32 && p->dtype != GM_FLOAT64) return GM_ERR_INVALID;
    if (p->d_extents && p->extents_cols != 1 && p->extents_cols != 3) return GM_ERR_INVALID;
    /* the per-entry derivatives must be there when there are entries (empty arrays may be NULL) */
    if (p->num_entries > 0 && (((p->d_out_positions || p->d_inp_positions) && !p->entry_position_grads) ||
                               (p->d_extents && !p->entry_extent_grads)))
        return GM_ERR_INVALID;
    return p->dtype == GM_FLOAT32 ? position_grads_f32(p) : position_grads_f64(p);
}

int gm_cconv_swap_channels_cpu(int dtype, const void* filters, int64_t cells, int64_t in_channels,
                               int64_t out_channels, void* out, int num_threads) {
    const int nt = num_threads > 0 ? num_threads : 1;
    if (dtype == GM_FLOAT32)
        swap_channels_f32((const float*)filters, cells, in_channels, out_channels, (float*)out, nt);
    else if (dtype == GM_FLOAT64)
        swap_channels_f64((const double*)filters, cells, in_channels, out_channels, (double*)out, nt);
    else
        return GM_ERR_INVALID;
    return GM_OK;
}

int gm_cconv_cast_cpu(int src_dtype, const void* src, int dst_dtype, void* dst, int64_t n, int num_threads) {
    if ((src_dtype != GM_FLOAT32 && src_dtype != GM_FLOAT64) ||
        (dst_dtype != GM_FLOAT32 && dst_dtype != GM_FLOAT64))
        return GM_ERR_INVALID;
    const int nt = num_threads > 0 ? num_threads : 1;
    const int64_t nblocks = gm_stop_blocks(n, GM_STOP_ITEMS);
    gm_stop stop = 0;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int64_t b = 0; b < nblocks; ++b) {
        if (gm_stopped(&stop)) continue;
        for (int64_t k = b * GM_STOP_ITEMS; k < gm_stop_block_end(b, n, GM_STOP_ITEMS); ++k) {
            const double v =
                src_dtype == GM_FLOAT32 ? (double)((const float*)src)[k] : ((const double*)src)[k];
            if (dst_dtype == GM_FLOAT32)
                ((float*)dst)[k] = (float)v;
            else
                ((double*)dst)[k] = v;
        }
    }
    return gm_stop_status(&stop, GM_OK);
}

/* ---- list utilities ------------------------------------------------------------------- */

/* Sequential (a counting sort), polling for interrupts between chunks of entries or rows. */
int gm_invert_neighbors_cpu(const gm_invert_params* p) {
    const int64_t P = p->num_points, E = p->num_entries;
    int64_t* splits = p->out_row_splits;
    memset(splits, 0, (size_t)(P + 1) * sizeof(int64_t));
    for (int64_t b = 0; b < gm_stop_blocks(E, GM_STOP_ITEMS); ++b) {
        if (gm_interrupt_poll()) return GM_ERR_INTERRUPTED;
        for (int64_t n = b * GM_STOP_ITEMS; n < gm_stop_block_end(b, E, GM_STOP_ITEMS); ++n) {
            int64_t j = p->index_int64 ? ((const int64_t*)p->index)[n] : ((const int32_t*)p->index)[n];
            if (j < 0 || j >= P) return GM_ERR_INVALID;
            splits[j + 1]++;
        }
    }
    for (int64_t j = 0; j < P; ++j) splits[j + 1] += splits[j];
    int64_t* cursor = (int64_t*)gm_host_alloc(P, sizeof(int64_t));
    if (!cursor) return GM_ERR_NOMEM;
    memcpy(cursor, splits, (size_t)P * sizeof(int64_t));
    /* rows visited in order, so each output row lists entries by original position */
    for (int64_t b = 0; b < gm_stop_blocks(p->num_rows, GM_STOP_ROWS); ++b) {
        if (gm_interrupt_poll()) {
            gm_host_free(cursor);
            return GM_ERR_INTERRUPTED;
        }
        for (int64_t r = b * GM_STOP_ROWS; r < gm_stop_block_end(b, p->num_rows, GM_STOP_ROWS); ++r) {
            for (int64_t n = p->row_splits[r]; n < p->row_splits[r + 1]; ++n) {
                int64_t j = p->index_int64 ? ((const int64_t*)p->index)[n] : ((const int32_t*)p->index)[n];
                int64_t pos = cursor[j]++;
                if (p->index_int64)
                    ((int64_t*)p->out_index)[pos] = r;
                else
                    ((int32_t*)p->out_index)[pos] = (int32_t)r;
                p->out_permutation[pos] = n;
            }
        }
    }
    gm_host_free(cursor);
    return GM_OK;
}

int gm_reduce_subarrays_sum_cpu(int dtype, const void* values, const int64_t* row_splits, int64_t num_rows,
                                void* sums, int num_threads) {
    if (dtype != GM_FLOAT32 && dtype != GM_FLOAT64) return GM_ERR_INVALID;
    const int64_t nblocks = gm_stop_blocks(num_rows, GM_STOP_ROWS);
    gm_stop stop = 0;
#pragma omp parallel for schedule(dynamic, 1) num_threads(num_threads > 0 ? num_threads : 1)
    for (int64_t b = 0; b < nblocks; ++b) {
        if (gm_stopped(&stop)) continue;
        for (int64_t r = b * GM_STOP_ROWS; r < gm_stop_block_end(b, num_rows, GM_STOP_ROWS); ++r) {
            double s = 0.0;
            for (int64_t n = row_splits[r]; n < row_splits[r + 1]; ++n)
                s += dtype == GM_FLOAT32 ? (double)((const float*)values)[n] : ((const double*)values)[n];
            if (dtype == GM_FLOAT32)
                ((float*)sums)[r] = (float)s;
            else
                ((double*)sums)[r] = s;
        }
    }
    return gm_stop_status(&stop, GM_OK);
}
