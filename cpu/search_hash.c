/* Open3D-compatible spatial hash table (build_spatial_hash_table): the same cells, hash and
 * table sizes as Open3D's BuildSpatialHashTableCPU, so hash_table_cell_splits match exactly.
 * Unlike Open3D, points inside a bin are in ascending index order (a stable counting sort). */
#include "search_internal.h"

/* float -> int32 the way x86's cvtt instructions do it (Open3D's static_cast<int> there):
 * out-of-range and NaN give INT32_MIN. */
static inline int32_t cell_f32(float v) {
    const float f = floorf(v);
    return (f >= -2147483648.0f && f < 2147483648.0f) ? (int32_t)f : INT32_MIN;
}

static inline int32_t cell_f64(double v) {
    const double f = floor(v);
    return (f >= -2147483648.0 && f < 2147483648.0) ? (int32_t)f : INT32_MIN;
}

/* Open3D's SpatialHash: wrapping 32-bit int arithmetic, then sign-extended to size_t. */
static inline uint64_t spatial_hash(int32_t x, int32_t y, int32_t z) {
    const uint32_t h = ((uint32_t)x * 73856096u) ^ ((uint32_t)y * 193649663u) ^ ((uint32_t)z * 83492791u);
    return (uint64_t)(int64_t)(int32_t)h;
}

/* bins[i] = table_splits[b] + hash(cell(p_i)) % T_b for every point i of item b. The voxel
 * arithmetic runs in the points' precision like Open3D's (radius cast to T, 1/(2r) in T). */
static int compute_bins(const gm_hash_table_params* p, int32_t* bins) {
    const int nt = gm_threads(p->num_threads);
    for (int64_t b = 0; b < p->batch_size; ++b) {
        const int64_t lo = p->points_row_splits[b], hi = p->points_row_splits[b + 1];
        const uint64_t tsize = (uint64_t)(p->table_splits[b + 1] - p->table_splits[b]);
        const int64_t first = p->table_splits[b];
        if (tsize == 0 && hi > lo) return GM_ERR_INVALID;
        if (p->dtype == GM_FLOAT32) {
            const float r = (float)p->radius, vs = 2 * r, inv = 1 / vs;
            const float* pts = (const float*)p->points;
#pragma omp parallel for schedule(static) num_threads(nt) if (hi - lo > 16384)
            for (int64_t i = lo; i < hi; ++i) {
                const float px = pts[3 * i] * inv, py = pts[3 * i + 1] * inv, pz = pts[3 * i + 2] * inv;
                bins[i] = (int32_t)(first + (int64_t)(spatial_hash(cell_f32(px), cell_f32(py), cell_f32(pz)) %
                                                      tsize));
            }
        } else {
            const double r = p->radius, vs = 2 * r, inv = 1 / vs;
            const double* pts = (const double*)p->points;
#pragma omp parallel for schedule(static) num_threads(nt) if (hi - lo > 16384)
            for (int64_t i = lo; i < hi; ++i) {
                const double px = pts[3 * i] * inv, py = pts[3 * i + 1] * inv, pz = pts[3 * i + 2] * inv;
                bins[i] = (int32_t)(first + (int64_t)(spatial_hash(cell_f64(px), cell_f64(py), cell_f64(pz)) %
                                                      tsize));
            }
        }
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
    int32_t* bins = (int32_t*)malloc((size_t)(n > 0 ? n : 1) * sizeof(int32_t));
    int32_t* fill = (int32_t*)malloc((size_t)(ncells + 1) * sizeof(int32_t));
    if (!bins || !fill) {
        free(bins);
        free(fill);
        return GM_ERR_NOMEM;
    }
    st = compute_bins(p, bins);
    if (st == GM_OK) {
        int32_t* cs = p->cell_splits;
        memset(cs, 0, (size_t)(ncells + 1) * sizeof(int32_t));
        for (int64_t i = 0; i < n; ++i) cs[bins[i] + 1]++;
        for (int64_t c = 0; c < ncells; ++c) cs[c + 1] += cs[c];
        memcpy(fill, cs, (size_t)(ncells + 1) * sizeof(int32_t));
        for (int64_t i = 0; i < n; ++i) p->index[fill[bins[i]]++] = (int32_t)i;
    }
    free(bins);
    free(fill);
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
    int32_t* bins = (int32_t*)malloc((size_t)(n > 0 ? n : 1) * sizeof(int32_t));
    unsigned char* seen = (unsigned char*)calloc((size_t)(n > 0 ? n : 1), 1);
    if (!bins || !seen) {
        free(bins);
        free(seen);
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
    free(bins);
    free(seen);
    *valid = ok;
    return st;
}
