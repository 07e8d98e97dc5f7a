/* Open3D-compatible spatial hash table (build_spatial_hash_table): the same cells, hash and
 * table sizes as Open3D's BuildSpatialHashTableCPU, so hash_table_cell_splits match exactly.
 * Unlike Open3D, points inside a bin are in ascending index order (a stable counting sort). */
#include "search_internal.h"

#define GM_TWIN_BODY "search_hash_impl.h"
#include "geomops/twin.h"

/* bins[i] = table_splits[b] + hash(cell(p_i)) % T_b for every point i of item b. */
static int compute_bins(const gm_hash_table_params* p, int32_t* bins) {
    for (int64_t b = 0; b < p->batch_size; ++b) {
        if (gm_interrupt_poll()) return GM_ERR_INTERRUPTED;
        const int64_t lo = p->points_row_splits[b], hi = p->points_row_splits[b + 1];
        const uint64_t tsize = (uint64_t)(p->table_splits[b + 1] - p->table_splits[b]);
        if (tsize == 0 && hi > lo) return GM_ERR_INVALID;
        if (p->dtype == GM_FLOAT32)
            hash_bins_f32(p, lo, hi, p->table_splits[b], tsize, bins);
        else
            hash_bins_f64(p, lo, hi, p->table_splits[b], tsize, bins);
    }
    return GM_OK;
}

static int check_params(const gm_hash_table_params* p) {
    if (p->num_points < 0 || p->num_points > INT32_MAX || p->batch_size < 1 ||
        p->table_splits[p->batch_size] > INT32_MAX - 1 || (p->dtype != GM_FLOAT32 && p->dtype != GM_FLOAT64))
        return GM_ERR_INVALID;
    return GM_OK;
}

int gm_build_spatial_hash_table_cpu(const gm_hash_table_params* p) {
    int st = check_params(p);
    if (st) return st;
    const int64_t n = p->num_points, ncells = p->table_splits[p->batch_size];
    int32_t* bins = (int32_t*)gm_host_alloc(n, sizeof(int32_t));
    int32_t* fill = (int32_t*)gm_host_alloc(ncells + 1, sizeof(int32_t));
    if (!bins || !fill) {
        gm_host_free(bins);
        gm_host_free(fill);
        return GM_ERR_NOMEM;
    }
    st = compute_bins(p, bins);
    if (st == GM_OK && gm_interrupt_poll()) st = GM_ERR_INTERRUPTED;
    if (st == GM_OK) {
        int32_t* cs = p->cell_splits;
        memset(cs, 0, (size_t)(ncells + 1) * sizeof(int32_t));
        for (int64_t i = 0; i < n; ++i) cs[bins[i] + 1]++;
        for (int64_t c = 0; c < ncells; ++c) cs[c + 1] += cs[c];
        memcpy(fill, cs, (size_t)(ncells + 1) * sizeof(int32_t));
        for (int64_t i = 0; i < n; ++i) p->index[fill[bins[i]]++] = (int32_t)i;
    }
    gm_host_free(bins);
    gm_host_free(fill);
    return st;
}

int gm_verify_spatial_hash_table_cpu(const gm_hash_table_params* p, int* valid) {
    *valid = 0;
    int st = check_params(p);
    if (st) return st;
    const int64_t n = p->num_points, ncells = p->table_splits[p->batch_size];
    const int32_t *cs = p->cell_splits, *index = p->index;
    if (cs[0] != 0 || cs[ncells] != n) return GM_OK;
    for (int64_t c = 0; c < ncells; ++c)
        if (cs[c + 1] < cs[c]) return GM_OK;
    int32_t* bins = (int32_t*)gm_host_alloc(n, sizeof(int32_t));
    unsigned char* seen = (unsigned char*)gm_host_calloc(n, 1);
    if (!bins || !seen) {
        gm_host_free(bins);
        gm_host_free(seen);
        return GM_ERR_NOMEM;
    }
    st = compute_bins(p, bins);
    int ok = st == GM_OK;
    /* every stored entry is a distinct point of the bin's batch item hashing to that bin; with
     * cell_splits ending at n this makes the table a permutation grouped exactly by bins */
    for (int64_t b = 0; b < p->batch_size && ok; ++b) {
        const int64_t plo = p->points_row_splits[b], phi = p->points_row_splits[b + 1];
        for (int64_t c = p->table_splits[b]; c < p->table_splits[b + 1] && ok; ++c)
            for (int64_t j = cs[c]; j < cs[c + 1]; ++j) {
                const int64_t i = index[j];
                if (i < plo || i >= phi || seen[i] || bins[i] != c) {
                    ok = 0;
                    break;
                }
                seen[i] = 1;
            }
    }
    gm_host_free(bins);
    gm_host_free(seen);
    *valid = ok;
    return st;
}
