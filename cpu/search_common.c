/* Helpers shared by the search kernels: radix sort, prefix sums, row sort, and the fill / free
 * entry points of the search plans. */
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
    uint64_t* tk = (uint64_t*)gm_host_alloc(n, sizeof(uint64_t));
    int64_t* tv = (int64_t*)gm_host_alloc(n, sizeof(int64_t));
    int64_t* hist = (int64_t*)gm_host_alloc((int64_t)chunks * RADIX_SIZE, sizeof(int64_t));
    if (!tk || !tv || !hist) {
        gm_host_free(tk);
        gm_host_free(tv);
        gm_host_free(hist);
        return GM_ERR_NOMEM;
    }
    uint64_t *src_k = keys, *dst_k = tk;
    int64_t *src_v = vals, *dst_v = tv;
    int status = GM_OK;
    for (int pass = 0; pass < passes; ++pass) {
        if (gm_interrupt_poll()) {
            status = GM_ERR_INTERRUPTED;
            break;
        }
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
    if (status == GM_OK && src_k != keys) {
        memcpy(keys, src_k, (size_t)n * sizeof(uint64_t));
        memcpy(vals, src_v, (size_t)n * sizeof(int64_t));
    }
    gm_host_free(tk);
    gm_host_free(tv);
    gm_host_free(hist);
    return status;
}

int64_t gm_search_prefix_sum(int64_t* row_splits, int64_t num_queries) {
    row_splits[0] = 0;
    for (int64_t i = 0; i < num_queries; ++i) {
        if (row_splits[i + 1] > INT64_MAX - row_splits[i]) return -1;
        row_splits[i + 1] += row_splits[i];
    }
    return row_splits[num_queries];
}

int gm_search_fill_cpu(gm_search_plan* plan, void* index, void* distance) {
    if (!plan) return GM_ERR_INVALID;
    if (plan->total == 0) return GM_OK;
    if (!index || (plan->want_distances && !distance)) return GM_ERR_INVALID;
    return plan->fill(plan, index, plan->want_distances ? distance : NULL);
}

void gm_search_plan_free(gm_search_plan* plan) {
    if (plan) plan->destroy(plan);
}

#define GM_TWIN_BODY "search_sort_impl.h"
#include "geomops/twin.h"
