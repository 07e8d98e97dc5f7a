/* Helpers shared by the search kernels: radix sort, result allocation, prefix sums, row sort. */
#include "search_internal.h"

#define RADIX_BITS       11
#define RADIX_SIZE       (1 << RADIX_BITS)
#define RADIX_MAX_CHUNKS 64

int gm_search_radix_sort(uint64_t* keys, int64_t* vals, int64_t n, uint64_t max_key, int num_threads) {
    if (n <= 1 || max_key == 0) return GM_OK;
    if (n <= 48) { /* small batch items: a stable insertion sort, no buffers */
        for (int64_t i = 1; i < n; ++i) {
            const uint64_t k = keys[i];
            const int64_t v = vals[i];
            int64_t j = i;
            while (j > 0 && keys[j - 1] > k) {
                keys[j] = keys[j - 1];
                vals[j] = vals[j - 1];
                --j;
            }
            keys[j] = k;
            vals[j] = v;
        }
        return GM_OK;
    }
    const int bits = 64 - __builtin_clzll(max_key);
    const int passes = (bits + RADIX_BITS - 1) / RADIX_BITS;
    /* Chunking only changes who does the work: a stable sort has a unique result. */
    int chunks = n < 65536 ? 1 : gm_threads(num_threads);
    if (chunks > RADIX_MAX_CHUNKS) chunks = RADIX_MAX_CHUNKS;
    uint64_t* tk = (uint64_t*)malloc((size_t)n * sizeof(uint64_t));
    int64_t* tv = (int64_t*)malloc((size_t)n * sizeof(int64_t));
    int64_t* hist = (int64_t*)malloc((size_t)chunks * RADIX_SIZE * sizeof(int64_t));
    if (!tk || !tv || !hist) {
        free(tk);
        free(tv);
        free(hist);
        return GM_ERR_NOMEM;
    }
    uint64_t *src_k = keys, *dst_k = tk;
    int64_t *src_v = vals, *dst_v = tv;
    for (int pass = 0; pass < passes; ++pass) {
        const int shift = pass * RADIX_BITS;
        memset(hist, 0, (size_t)chunks * RADIX_SIZE * sizeof(int64_t));
#pragma omp parallel for schedule(static, 1) num_threads(chunks) if (chunks > 1)
        for (int c = 0; c < chunks; ++c) {
            const int64_t lo = n * c / chunks, hi = n * (c + 1) / chunks;
            int64_t* h = hist + (size_t)c * RADIX_SIZE;
            for (int64_t i = lo; i < hi; ++i) h[(src_k[i] >> shift) & (RADIX_SIZE - 1)]++;
        }
        /* skip a digit that all keys share */
        int trivial = 0;
        for (int d = 0; d < RADIX_SIZE && !trivial; ++d) {
            int64_t s = 0;
            for (int c = 0; c < chunks; ++c) s += hist[(size_t)c * RADIX_SIZE + d];
            if (s == n)
                trivial = 1;
            else if (s)
                break;
        }
        if (trivial) continue;
        int64_t offset = 0;
        for (int d = 0; d < RADIX_SIZE; ++d)
            for (int c = 0; c < chunks; ++c) {
                int64_t* h = hist + (size_t)c * RADIX_SIZE + d;
                const int64_t cnt = *h;
                *h = offset;
                offset += cnt;
            }
#pragma omp parallel for schedule(static, 1) num_threads(chunks) if (chunks > 1)
        for (int c = 0; c < chunks; ++c) {
            const int64_t lo = n * c / chunks, hi = n * (c + 1) / chunks;
            int64_t* h = hist + (size_t)c * RADIX_SIZE;
            for (int64_t i = lo; i < hi; ++i) {
                const int64_t pos = h[(src_k[i] >> shift) & (RADIX_SIZE - 1)]++;
                dst_k[pos] = src_k[i];
                dst_v[pos] = src_v[i];
            }
        }
        uint64_t* sk = src_k;
        src_k = dst_k;
        dst_k = sk;
        int64_t* sv = src_v;
        src_v = dst_v;
        dst_v = sv;
    }
    if (src_k != keys) {
        memcpy(keys, src_k, (size_t)n * sizeof(uint64_t));
        memcpy(vals, src_v, (size_t)n * sizeof(int64_t));
    }
    free(tk);
    free(tv);
    free(hist);
    return GM_OK;
}

int gm_search_alloc_output(const gm_search_output* out, int64_t total, int index_is64, int want_distances,
                           size_t dist_size) {
    *out->index = NULL;
    *out->distance = NULL;
    *out->total = total;
    if (total <= 0) return GM_OK;
    *out->index = malloc((size_t)total * (index_is64 ? 8 : 4));
    if (!*out->index) return GM_ERR_NOMEM;
    if (want_distances) {
        *out->distance = malloc((size_t)total * dist_size);
        if (!*out->distance) {
            free(*out->index);
            *out->index = NULL;
            return GM_ERR_NOMEM;
        }
    }
    return GM_OK;
}

void gm_search_free_output(const gm_search_output* out) {
    free(*out->index);
    free(*out->distance);
    *out->index = NULL;
    *out->distance = NULL;
    *out->total = 0;
}

int64_t gm_search_prefix_sum(int64_t* row_splits, int64_t num_queries) {
    row_splits[0] = 0;
    for (int64_t i = 0; i < num_queries; ++i) {
        if (row_splits[i + 1] > INT64_MAX - row_splits[i]) return -1;
        row_splits[i + 1] += row_splits[i];
    }
    return row_splits[num_queries];
}

/* In-place sort of parallel (index, distance) arrays by index: insertion sort for short rows,
 * heapsort otherwise (no allocation; indices are distinct, so the order is unique). */
#define DEFINE_SORT_PAIRS(SUFFIX, T)                                                                         \
    /* Short rows with 32-bit indices: insertion sort of one array of (index << 32 | slot)    \
     * keys, then the distances follow their slots. Returns 0 if an index needs > 32 bits. */              \
    static int sort_packed_##SUFFIX(int64_t* a, T* d, int64_t n) {                                           \
        uint64_t key[64];                                                                                    \
        for (int64_t i = 0; i < n; ++i) {                                                                    \
            if ((uint64_t)a[i] > 0xFFFFFFFFu) return 0;                                                      \
            const uint64_t ki = ((uint64_t)a[i] << 32) | (uint64_t)i;                                        \
            int64_t j = i;                                                                                   \
            while (j > 0 && key[j - 1] > ki) {                                                               \
                key[j] = key[j - 1];                                                                         \
                --j;                                                                                         \
            }                                                                                                \
            key[j] = ki;                                                                                     \
        }                                                                                                    \
        if (d) {                                                                                             \
            T tmp[64];                                                                                       \
            memcpy(tmp, d, (size_t)n * sizeof(T));                                                           \
            for (int64_t i = 0; i < n; ++i) d[i] = tmp[key[i] & 0xFFFFFFFFu];                                \
        }                                                                                                    \
        for (int64_t i = 0; i < n; ++i) a[i] = (int64_t)(key[i] >> 32);                                      \
        return 1;                                                                                            \
    }                                                                                                        \
    static void sift_##SUFFIX(int64_t* a, T* d, int64_t root, int64_t n) {                                   \
        for (;;) {                                                                                           \
            int64_t c = 2 * root + 1;                                                                        \
            if (c >= n) return;                                                                              \
            if (c + 1 < n && a[c + 1] > a[c]) ++c;                                                           \
            if (a[root] >= a[c]) return;                                                                     \
            int64_t ti = a[root];                                                                            \
            a[root] = a[c];                                                                                  \
            a[c] = ti;                                                                                       \
            if (d) {                                                                                         \
                T td = d[root];                                                                              \
                d[root] = d[c];                                                                              \
                d[c] = td;                                                                                   \
            }                                                                                                \
            root = c;                                                                                        \
        }                                                                                                    \
    }                                                                                                        \
    void gm_search_sort_pairs_##SUFFIX(int64_t* a, T* d, int64_t n) {                                        \
        if (n <= 64 && sort_packed_##SUFFIX(a, d, n)) return;                                                \
        if (n <= 32) {                                                                                       \
            for (int64_t i = 1; i < n; ++i) {                                                                \
                const int64_t ai = a[i];                                                                     \
                const T di = d ? d[i] : (T)0;                                                                \
                int64_t j = i;                                                                               \
                while (j > 0 && a[j - 1] > ai) {                                                             \
                    a[j] = a[j - 1];                                                                         \
                    if (d) d[j] = d[j - 1];                                                                  \
                    --j;                                                                                     \
                }                                                                                            \
                a[j] = ai;                                                                                   \
                if (d) d[j] = di;                                                                            \
            }                                                                                                \
            return;                                                                                          \
        }                                                                                                    \
        for (int64_t i = n / 2 - 1; i >= 0; --i) sift_##SUFFIX(a, d, i, n);                                  \
        for (int64_t end = n - 1; end > 0; --end) {                                                          \
            int64_t ti = a[0];                                                                               \
            a[0] = a[end];                                                                                   \
            a[end] = ti;                                                                                     \
            if (d) {                                                                                         \
                T td = d[0];                                                                                 \
                d[0] = d[end];                                                                               \
                d[end] = td;                                                                                 \
            }                                                                                                \
            sift_##SUFFIX(a, d, 0, end);                                                                     \
        }                                                                                                    \
    }

DEFINE_SORT_PAIRS(f32, float)
DEFINE_SORT_PAIRS(f64, double)
