/* OpenMP CPU kernels of the continuous convolution (spec/continuous_conv.md sections 2-3).
 *
 * Differences from Open3D's CPU kernels, on purpose:
 *  - the filter gradient is reduced in a fixed order (bitwise identical for any thread count),
 *  - temporary memory is bounded by max_temp_bytes (Open3D ignores max_temp_mem_MB on the CPU),
 *  - the GEMM is a register-blocked AVX-512/AVX2 kernel (cpu/gemm.c) instead of Eigen. */
#include "geomops/cconv.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "geomops/cconv_math.h"

typedef struct {
    const gm_cconv_params* p;
    gm_cconv_geometry geom;
    int64_t K, Cin, Cout;
    double inv_extent[3]; /* 1/extent when one extent is shared by all points */
    int num_threads;
} cconv_ctx;

static int cconv_ctx_init(cconv_ctx* c, const gm_cconv_params* p) {
    if (p->dtype != GM_FLOAT32 && p->dtype != GM_FLOAT64) return GM_ERR_INVALID;
    if (p->filter_depth < 1 || p->filter_height < 1 || p->filter_width < 1) return GM_ERR_INVALID;
    if (p->extents_cols != 1 && p->extents_cols != 3) return GM_ERR_INVALID;
    c->p = p;
    c->geom.mapping = p->coordinate_mapping;
    c->geom.interpolation = p->interpolation;
    c->geom.align_corners = p->align_corners;
    c->geom.size[0] = p->filter_width;
    c->geom.size[1] = p->filter_height;
    c->geom.size[2] = p->filter_depth;
    for (int k = 0; k < 3; ++k) {
        c->geom.offset[k] =
            p->dtype == GM_FLOAT32 ? (double)((const float*)p->offset)[k] : ((const double*)p->offset)[k];
    }
    for (int k = 0; k < 3 && p->extents_rows > 0; ++k) {
        int col = p->extents_cols == 1 ? 0 : k;
        double e = p->dtype == GM_FLOAT32 ? (double)((const float*)p->extents)[col]
                                          : ((const double*)p->extents)[col];
        c->inv_extent[k] = 1.0 / e;
    }
    c->Cin = p->in_channels;
    c->Cout = p->out_channels;
    c->K = (int64_t)p->filter_depth * p->filter_height * p->filter_width * p->in_channels;
    c->num_threads = p->num_threads > 0 ? p->num_threads : 1;
    /* Small problems run on fewer threads: opening a parallel region costs more than the work
     * (and stalls on a busy machine). Results do not depend on the thread count. */
    const int64_t entries = p->num_out > 0 ? p->neighbors_row_splits[p->num_out] : 0;
    const int64_t work = entries * 8 * c->Cin + p->num_out * c->K * (c->Cout > 0 ? c->Cout : 1);
    const int64_t useful = 1 + work / (1 << 18);
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

/* how many neighbor entries ahead the fill prefetches input features */
#define GM_PREFETCH_AHEAD 3

static inline int64_t load_index(const gm_cconv_params* p, int64_t n) {
    return p->index_int64 ? ((const int64_t*)p->neighbors_index)[n]
                          : (int64_t)((const int32_t*)p->neighbors_index)[n];
}

/* ---- per-type helpers, then the type-generic body ------------------------------------- */

#define GM_DEFINE_HELPERS(T, SUF)                                                                            \
    /* taps of entry n (row i): relative position, extent, mapping, interpolation */                         \
    static inline int neighbor_taps_##SUF(const cconv_ctx* c, int64_t i, int64_t n, int64_t* jout,           \
                                          int cell[8], double w[8]) {                                        \
        const gm_cconv_params* p = c->p;                                                                     \
        const int64_t j = load_index(p, n);                                                                  \
        *jout = j;                                                                                           \
        const T* xo = (const T*)p->out_positions + 3 * i;                                                    \
        const T* xi = (const T*)p->inp_positions + 3 * j;                                                    \
        double rel[3];                                                                                       \
        for (int k = 0; k < 3; ++k)                                                                          \
            rel[k] = p->transpose ? (double)xo[k] - (double)xi[k] : (double)xi[k] - (double)xo[k];           \
        if (p->extents_rows == 1) return gm_cconv_filter_taps(&c->geom, rel, c->inv_extent, cell, w);        \
        const T* e = (const T*)p->extents + (p->transpose ? j : i) * p->extents_cols;                        \
        double inv[3];                                                                                       \
        for (int k = 0; k < 3; ++k) inv[k] = 1.0 / (double)e[p->extents_cols == 1 ? 0 : k];                  \
        return gm_cconv_filter_taps(&c->geom, rel, inv, cell, w);                                            \
    }                                                                                                        \
    /* scalar weight of entry n: a_n (forward) or c_n (transpose), spec 2.5 / 2.6 */                         \
    static inline double neighbor_weight_##SUF(const cconv_ctx* c, int64_t n, int64_t j) {                   \
        const gm_cconv_params* p = c->p;                                                                     \
        double a = p->neighbors_importance ? (double)((const T*)p->neighbors_importance)[n] : 1.0;           \
        if (!p->transpose) {                                                                                 \
            if (p->inp_importance) a *= (double)((const T*)p->inp_importance)[j];                            \
        } else if (p->normalize) {                                                                           \
            double phi =                                                                                     \
                p->neighbors_importance                                                                      \
                    ? (double)((const T*)p->inp_neighbors_importance_sum)[j]                                 \
                    : (double)(p->inp_neighbors_row_splits[j + 1] - p->inp_neighbors_row_splits[j]);         \
            if (phi != 0.0) a /= phi;                                                                        \
        }                                                                                                    \
        return a;                                                                                            \
    }                                                                                                        \
    /* factor applied to output row i: 1/psi_i (forward, normalize) or out_importance[i] */                  \
    static inline double row_scale_##SUF(const cconv_ctx* c, int64_t i) {                                    \
        const gm_cconv_params* p = c->p;                                                                     \
        if (p->transpose) return p->out_importance ? (double)((const T*)p->out_importance)[i] : 1.0;         \
        if (!p->normalize) return 1.0;                                                                       \
        const int64_t b = p->neighbors_row_splits[i], e = p->neighbors_row_splits[i + 1];                    \
        double psi;                                                                                          \
        if (p->neighbors_importance) {                                                                       \
            psi = 0.0;                                                                                       \
            for (int64_t n = b; n < e; ++n) psi += (double)((const T*)p->neighbors_importance)[n];           \
            psi = (double)(T)psi; /* the normaliser has the output type */                                   \
        } else {                                                                                             \
            psi = (double)(e - b);                                                                           \
        }                                                                                                    \
        return psi != 0.0 ? 1.0 / psi : 1.0;                                                                 \
    }

GM_DEFINE_HELPERS(float, f32)
GM_DEFINE_HELPERS(double, f64)

#define GM_T         float
#define GM_SUF(name) name##_f32
#define GM_GEMM      gm_gemm_f32
#define GM_PANEL     GM_GEMM_PANEL_F32
#include "cconv_impl.h"
#undef GM_T
#undef GM_SUF
#undef GM_GEMM
#undef GM_PANEL

#define GM_T         double
#define GM_SUF(name) name##_f64
#define GM_GEMM      gm_gemm_f64
#define GM_PANEL     GM_GEMM_PANEL_F64
#include "cconv_impl.h"
#undef GM_T
#undef GM_SUF
#undef GM_GEMM
#undef GM_PANEL

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

/* ---- list utilities ------------------------------------------------------------------- */

int gm_invert_neighbors_cpu(const gm_invert_params* p) {
    const int64_t P = p->num_points, E = p->num_entries;
    int64_t* splits = p->out_row_splits;
    memset(splits, 0, (size_t)(P + 1) * sizeof(int64_t));
    for (int64_t n = 0; n < E; ++n) {
        int64_t j = p->index_int64 ? ((const int64_t*)p->index)[n] : ((const int32_t*)p->index)[n];
        if (j < 0 || j >= P) return GM_ERR_INVALID;
        splits[j + 1]++;
    }
    for (int64_t j = 0; j < P; ++j) splits[j + 1] += splits[j];
    int64_t* cursor = (int64_t*)malloc((size_t)(P > 0 ? P : 1) * sizeof(int64_t));
    if (!cursor) return GM_ERR_NOMEM;
    memcpy(cursor, splits, (size_t)P * sizeof(int64_t));
    /* rows visited in order, so each output row lists entries by original position */
    for (int64_t r = 0; r < p->num_rows; ++r) {
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
    free(cursor);
    return GM_OK;
}

int gm_reduce_subarrays_sum_cpu(int dtype, const void* values, const int64_t* row_splits, int64_t num_rows,
                                void* sums, int num_threads) {
    if (dtype != GM_FLOAT32 && dtype != GM_FLOAT64) return GM_ERR_INVALID;
#pragma omp parallel for schedule(static) num_threads(num_threads > 0 ? num_threads : 1)
    for (int64_t r = 0; r < num_rows; ++r) {
        double s = 0.0;
        for (int64_t n = row_splits[r]; n < row_splits[r + 1]; ++n)
            s += dtype == GM_FLOAT32 ? (double)((const float*)values)[n] : ((const double*)values)[n];
        if (dtype == GM_FLOAT32)
            ((float*)sums)[r] = (float)s;
        else
            ((double*)sums)[r] = s;
    }
    return GM_OK;
}
