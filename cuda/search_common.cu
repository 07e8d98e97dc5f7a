// What the CUDA searches share (cuda/search_cuda.cuh): the plans' memory and entry points, the
// end of every count phase (prefix sum, overflow check, the one read-back of the total) and the
// query order.
#include "search_cuda.cuh"

void gm_search_plan_init(gm_search_plan* pl, cudaStream_t stream, int want_distances) {
    pl->fill = nullptr;
    pl->destroy = nullptr;
    pl->total = 0;
    pl->want_distances = want_distances;
    pl->stream = stream;
    pl->nmem = 0;
    pl->own_grid = nullptr;
}

int gm_search_plan_alloc(gm_search_plan* pl, void** p, size_t bytes, const char* what) {
    *p = nullptr;
    if (bytes == 0) return GM_OK;
    if (pl->nmem == gm_search_plan::MAX_MEM) return GM_ERR_INVALID;
    const int st = gm_dev_alloc(p, bytes, pl->stream, what);
    if (st == GM_OK) pl->mem[pl->nmem++] = *p;
    return st;
}

void gm_search_plan_release(gm_search_plan* pl) {
    for (int i = 0; i < pl->nmem; ++i) gm_dev_free(pl->mem[i], pl->stream);
    pl->nmem = 0;
    if (pl->own_grid) {
        pl->own_grid->stream = pl->stream;
        gm_search_grid_destroy(pl->own_grid);
        pl->own_grid = nullptr;
    }
}

extern "C" int gm_search_fill_cuda(gm_search_plan* plan, void* index, void* distance, void* stream) {
    if (!plan) return GM_ERR_INVALID;
    plan->stream = (cudaStream_t)stream;
    if (plan->total == 0) return GM_OK;
    if (!index || (plan->want_distances && !distance)) return GM_ERR_INVALID;
    return plan->fill(plan, index, plan->want_distances ? distance : nullptr);
}

extern "C" void gm_search_plan_free_cuda(gm_search_plan* plan) {
    if (plan) plan->destroy(plan);
}

// flag[0] = 1 when the prefix sums decrease somewhere: the total wrapped around int64 (every
// count is < 2^63, so a first wrap always gives a smaller value).
__global__ void gm_search_wrap_kernel(const int64_t* starts, int64_t nq, int64_t* flag) {
    GM_FOR_EACH(i, nq) {
        if (starts[i + 1] < starts[i]) *flag = 1;
    }
}

int gm_search_finish_count(const int64_t* counts, int64_t* starts, int64_t* row_splits, int64_t nq,
                           int64_t* total, cudaStream_t stream) {
    *total = 0;
    int st = gm_dev_exclusive_scan_i64(counts, starts, nq, stream);
    if (st != GM_OK) return st;
    gm_dev_buffer<int64_t> back;  // [flag, total]
    st = back.alloc(2, stream, "a search count");
    if (st != GM_OK) return st;
    GM_CUDA_TRY(cudaMemsetAsync(back.ptr, 0, sizeof(int64_t), stream), "cudaMemsetAsync");
    if (nq > 0) {
        GM_LAUNCH(gm_search_wrap_kernel, gm_cuda_blocks(nq), GM_CUDA_THREADS, stream, starts, nq, back.ptr);
        st = gm_cuda_check_launch("the search count check");
        if (st != GM_OK) return st;
    }
    GM_CUDA_TRY(cudaMemcpyAsync(back.ptr + 1, starts + nq, sizeof(int64_t), cudaMemcpyDeviceToDevice, stream),
                "cudaMemcpyAsync");
    if (row_splits)
        GM_CUDA_TRY(cudaMemcpyAsync(row_splits, starts, (size_t)(nq + 1) * sizeof(int64_t),
                                    cudaMemcpyDeviceToDevice, stream),
                    "cudaMemcpyAsync");
    int64_t host[2];
    GM_CUDA_WAIT_IDLE(stream, "a search count");
    GM_CUDA_TRY(cudaMemcpyAsync(host, back.ptr, sizeof host, cudaMemcpyDeviceToHost, stream),
                "cudaMemcpyAsync");
    GM_CUDA_TRY(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
    if (host[0]) return GM_ERR_OVERFLOW;
    *total = host[1];
    return GM_OK;
}

// Query cell keys, as the CPU groups its queries (a 2-cell margin each side); queries of items
// without points get key 0.
__global__ void gm_search_query_keys_kernel(gm_grid_view g, int dtype, const void* queries, int64_t nq,
                                            const int64_t* qsplits, uint64_t* keys, int64_t* vals) {
    GM_FOR_EACH(q, nq) {
        const int64_t b = gm_search_item_of(qsplits, g.batch_size, q);
        uint64_t key = 0;
        if (g.pts_splits[b + 1] > g.pts_splits[b]) {
            const double* o = g.origin + 3 * b;
            const int64_t* dims = g.dims + 3 * b;
            const double inv = g.inv_cell[b];
            int64_t c[3];
            for (int a = 0; a < 3; ++a) {
                const double v = dtype == GM_FLOAT32 ? (double)((const float*)queries)[3 * q + a]
                                                     : ((const double*)queries)[3 * q + a];
                c[a] = gm_search_grid_coord(v, o[a], inv, -2, dims[a] + 1);
            }
            key = gm_search_grid_key(c[0], c[1], c[2], dims);
        }
        keys[q] = key;
        vals[q] = q;
    }
}

int gm_search_order_queries(const gm_grid* g, const void* queries, int64_t nq, const int64_t* qsplits,
                            int64_t* qord, cudaStream_t stream) {
    if (nq == 0) return GM_OK;
    gm_dev_buffer<uint64_t> keys, keys_s;
    gm_dev_buffer<int64_t> vals;
    int st = keys.alloc((size_t)nq, stream, "the query order");
    if (st == GM_OK) st = keys_s.alloc((size_t)nq, stream, "the query order");
    if (st == GM_OK) st = vals.alloc((size_t)nq, stream, "the query order");
    if (st != GM_OK) return st;
    GM_LAUNCH(gm_search_query_keys_kernel, gm_cuda_blocks(nq), GM_CUDA_THREADS, stream,
              gm_search_grid_view(g), g->dtype, queries, nq, qsplits, keys.ptr, vals.ptr);
    st = gm_cuda_check_launch("the query cells");
    if (st != GM_OK) return st;
    // keys < (2^20 + 6)^3 < 2^61
    return gm_dev_sort_pairs_u64(keys.ptr, keys_s.ptr, vals.ptr, qord, nq, 61, stream);
}
