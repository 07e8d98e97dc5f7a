// Open3D-compatible spatial hash table on the device (build_spatial_hash_table): the CPU's table
// bit for bit (cpu/search_hash.c). Each point's bin comes from the shared hash formula
// (gm_search_hash_point), a stable radix sort of (bin, point) puts the points of a bin in
// ascending index order, and each bin's start is a binary search over the sorted bins.
#include "search_cuda.cuh"

// The bin of point i of item b (table_splits[b] + hash % T_b); inv: 1 / (2 r) in float and double.
GM_HD int64_t gm_hash_bin(const void* pts, int dtype, int64_t i, const int64_t* table_splits, int64_t b,
                          float inv32, double inv64) {
    const int64_t first = table_splits[b];
    const uint64_t tsize = (uint64_t)(table_splits[b + 1] - first);
    uint64_t h;
    if (dtype == GM_FLOAT32) {
        const float* p = (const float*)pts + 3 * i;
        h = gm_search_hash_point_f32(p[0], p[1], p[2], inv32);
    } else {
        const double* p = (const double*)pts + 3 * i;
        h = gm_search_hash_point_f64(p[0], p[1], p[2], inv64);
    }
    return tsize ? first + (int64_t)(h % tsize) : first;  // the facade gives every item a bin
}

__global__ void gm_hash_bins_kernel(const void* pts, int dtype, int64_t n, const int64_t* splits, int64_t nb,
                                    const int64_t* table_splits, float inv32, double inv64, uint64_t* keys,
                                    int64_t* vals) {
    GM_FOR_EACH(i, n) {
        keys[i] = (uint64_t)gm_hash_bin(pts, dtype, i, table_splits, gm_search_item_of(splits, nb, i), inv32,
                                        inv64);
        vals[i] = i;
    }
}

// index from the sorted pairs; cell_splits[c] = first sorted position with bin >= c.
__global__ void gm_hash_table_kernel(const uint64_t* bins, const int64_t* ids, int64_t n, int64_t ncells,
                                     int32_t* index, int32_t* cell_splits) {
    const int64_t m = (n > ncells + 1 ? n : ncells + 1);
    GM_FOR_EACH(t, m) {
        if (t < n) index[t] = (int32_t)ids[t];
        if (t <= ncells) cell_splits[t] = (int32_t)gm_search_lower_bound_u64(bins, 0, n, (uint64_t)t);
    }
}

static int hash_check(const gm_hash_table_params* p, int64_t ncells) {
    if (p->num_points < 0 || p->num_points > INT32_MAX || p->batch_size < 1 || ncells < 0 ||
        ncells > INT32_MAX - 1 || (p->dtype != GM_FLOAT32 && p->dtype != GM_FLOAT64))
        return GM_ERR_INVALID;
    return GM_OK;
}

extern "C" int gm_build_spatial_hash_table_cuda(const gm_hash_table_params* p, int64_t num_cells,
                                                void* stream) {
    int st = hash_check(p, num_cells);
    if (st != GM_OK) return st;
    const cudaStream_t s = (cudaStream_t)stream;
    const int64_t n = p->num_points;
    gm_dev_buffer<uint64_t> keys, keys_s;
    gm_dev_buffer<int64_t> vals, vals_s;
    st = keys.alloc((size_t)n, s, "a hash table");
    if (st == GM_OK) st = keys_s.alloc((size_t)n, s, "a hash table");
    if (st == GM_OK) st = vals.alloc((size_t)n, s, "a hash table");
    if (st == GM_OK) st = vals_s.alloc((size_t)n, s, "a hash table");
    if (st != GM_OK) return st;
    if (n > 0) {
        GM_LAUNCH(gm_hash_bins_kernel, gm_cuda_blocks(n), GM_CUDA_THREADS, s, p->points, p->dtype, n,
                  p->points_row_splits, p->batch_size, p->table_splits,
                  gm_search_hash_inv_voxel_f32(p->radius), gm_search_hash_inv_voxel_f64(p->radius), keys.ptr,
                  vals.ptr);
        st = gm_cuda_check_launch("the hash table's bins");
        int bits = 1;
        while (bits < 63 && ((int64_t)1 << bits) < num_cells) ++bits;
        if (st == GM_OK) st = gm_dev_sort_pairs_u64(keys.ptr, keys_s.ptr, vals.ptr, vals_s.ptr, n, bits, s);
        if (st != GM_OK) return st;
    }
    const int64_t m = (n > num_cells + 1 ? n : num_cells + 1);
    GM_LAUNCH(gm_hash_table_kernel, gm_cuda_blocks(m), GM_CUDA_THREADS, s, keys_s.ptr, vals_s.ptr, n,
              num_cells, p->index, p->cell_splits);
    return gm_cuda_check_launch("the hash table");
}

// bad = 1 unless every stored entry is a distinct point of its bin's item hashing to that bin and
// cell_splits starts at 0, ends at n and never decreases (as the CPU's verify).
__global__ void gm_hash_verify_kernel(const void* pts, int dtype, int64_t n, const int64_t* splits,
                                      int64_t nb, const int64_t* table_splits, int64_t ncells,
                                      const int32_t* index, const int32_t* cs, float inv32, double inv64,
                                      int* seen, int* bad) {
    const int64_t m = (n > ncells + 1 ? n : ncells + 1);
    GM_FOR_EACH(t, m) {
        if (t <= ncells) {
            if ((t == 0 && cs[0] != 0) || (t == ncells && cs[ncells] != n) || (t > 0 && cs[t] < cs[t - 1]))
                *bad = 1;
        }
        if (t >= n || ncells == 0) continue;
        // the bin holding entry t: the last c < ncells with cs[c] <= t
        int64_t lo = 0, hi = ncells;
        while (hi - lo > 1) {
            const int64_t mid = lo + (hi - lo) / 2;
            if (cs[mid] <= t)
                lo = mid;
            else
                hi = mid;
        }
        const int64_t c = lo, b = gm_search_item_of(table_splits, nb, c), i = index[t];
        if (i < splits[b] || i >= splits[b + 1] || atomicAdd(&seen[i], 1) != 0 ||
            gm_hash_bin(pts, dtype, i, table_splits, b, inv32, inv64) != c)
            *bad = 1;
    }
}

extern "C" int gm_verify_spatial_hash_table_cuda(const gm_hash_table_params* p, int64_t num_cells, int* valid,
                                                 void* stream) {
    *valid = 0;
    int st = hash_check(p, num_cells);
    if (st != GM_OK) return st;
    const cudaStream_t s = (cudaStream_t)stream;
    const int64_t n = p->num_points;
    gm_dev_buffer<int> seen, bad;
    st = seen.alloc((size_t)n, s, "a hash table check");
    if (st == GM_OK) st = bad.alloc(1, s, "a hash table check");
    if (st != GM_OK) return st;
    GM_CUDA_TRY(cudaMemsetAsync(seen.ptr, 0, (size_t)n * sizeof(int), s), "cudaMemsetAsync");
    GM_CUDA_TRY(cudaMemsetAsync(bad.ptr, 0, sizeof(int), s), "cudaMemsetAsync");
    const int64_t m = (n > num_cells + 1 ? n : num_cells + 1);
    GM_LAUNCH(gm_hash_verify_kernel, gm_cuda_blocks(m), GM_CUDA_THREADS, s, p->points, p->dtype, n,
              p->points_row_splits, p->batch_size, p->table_splits, num_cells, p->index, p->cell_splits,
              gm_search_hash_inv_voxel_f32(p->radius), gm_search_hash_inv_voxel_f64(p->radius), seen.ptr,
              bad.ptr);
    st = gm_cuda_check_launch("a hash table check");
    if (st != GM_OK) return st;
    int host = 1;
    GM_CUDA_WAIT_IDLE(s, "a hash table check");
    GM_CUDA_TRY(cudaMemcpyAsync(&host, bad.ptr, sizeof(int), cudaMemcpyDeviceToHost, s), "cudaMemcpyAsync");
    GM_CUDA_TRY(cudaStreamSynchronize(s), "cudaStreamSynchronize");
    *valid = !host;
    return GM_OK;
}
