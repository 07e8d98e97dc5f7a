// knn_search on the device: a grid per batch item with about k/4 points per cell
// (gm_search_knn_edge), one thread per query visiting cells in rings around the query's cell
// until the next ring's distance bound exceeds the k-th distance (search_knn_impl.cuh). The k
// best are kept as (distance, index) pairs, ties by index, so each row equals the CPU's k-d tree
// result bitwise: a sorted array in registers / local memory up to GM_KNN_LOCAL neighbors, a
// max-heap in the row's global memory above.
// Phases (geomops/search_cuda.h): the counts are min(k, n_b) and the search runs in the fill,
// straight into the caller's arrays; with ignore_query_point the search runs in the count phase
// into the plan's rows [sum min(k, n_b)], the grid is freed, and the fill compacts the rows.
#include "search_cuda.cuh"

#include <new>

enum { GM_KNN_LOCAL = 32 };

struct gm_knn_plan : gm_search_plan {
    gm_tree_search_params p;  // a copy; the arrays it points to belong to the caller
    int heap;                 // k > GM_KNN_LOCAL: heaps in global memory
    int64_t* qord;            // [nq]
    int64_t* rs0;             // [nq+1] prefix of min(k, n_b)
    int64_t* starts;          // ignore: [nq+1] row starts of the result
    int64_t* tidx;            // ignore: [rs0[nq]] the rows found, at rs0
    void* tdist;              // ignore: their distances (also the heap's work rows)
};

#define GM_TWIN_BODY "search_knn_impl.cuh"
#include "geomops/twin.h"

__global__ void gm_knn_rows_kernel(const int64_t* psplits, const int64_t* qsplits, int64_t nb, int64_t nq,
                                   int64_t k, int64_t* counts) {
    GM_FOR_EACH(q, nq) {
        const int64_t b = gm_search_item_of(qsplits, nb, q);
        const int64_t m = psplits[b + 1] - psplits[b];
        counts[q] = k < m ? k : m;
    }
}

static int knn_fill(gm_search_plan* base, void* index, void* distance) {
    const gm_knn_plan* pl = static_cast<const gm_knn_plan*>(base);
    const int f32 = pl->p.dtype == GM_FLOAT32;
    if (pl->p.ignore_query_point)
        return f32 ? knn_compact_f32(pl, index, distance) : knn_compact_f64(pl, index, distance);
    return f32 ? knn_search_into_f32(pl, index, distance) : knn_search_into_f64(pl, index, distance);
}

static void knn_destroy(gm_search_plan* base) {
    gm_knn_plan* pl = static_cast<gm_knn_plan*>(base);
    gm_search_plan_release(pl);
    delete pl;
}

static int knn_count(gm_knn_plan* pl, int64_t* row_splits, int64_t* total) {
    const gm_tree_search_params* p = &pl->p;
    const int64_t nq = p->num_queries;
    const cudaStream_t s = pl->stream;
    const char* what = "a kNN search plan";
    pl->own_grid = new (std::nothrow) gm_grid();
    if (!pl->own_grid) return GM_ERR_NOMEM;
    pl->own_grid->stream = s;
    gm_grid_params gp;
    gp.dtype = p->dtype;
    gp.points = p->points;
    gp.num_points = p->num_points;
    gp.points_row_splits = p->points_row_splits;
    gp.batch_size = p->batch_size;
    gp.radius = 0;
    gp.num_threads = 1;
    int st = gm_search_grid_build(&gp, GM_GRID_KNN, nullptr, p->k, pl->own_grid);
    if (st == GM_OK) st = gm_search_plan_alloc(pl, (void**)&pl->qord, (size_t)nq * sizeof(int64_t), what);
    if (st == GM_OK)
        st = gm_search_plan_alloc(pl, (void**)&pl->rs0, (size_t)(nq + 1) * sizeof(int64_t), what);
    gm_dev_buffer<int64_t> counts;
    if (st == GM_OK) st = counts.alloc((size_t)nq, s, what);
    if (st == GM_OK)
        st = gm_search_order_queries(pl->own_grid, p->queries, nq, p->queries_row_splits, pl->qord, s);
    if (st == GM_OK && nq > 0) {
        GM_LAUNCH(gm_knn_rows_kernel, gm_cuda_blocks(nq), GM_CUDA_THREADS, s, p->points_row_splits,
                  p->queries_row_splits, p->batch_size, nq, p->k, counts.ptr);
        st = gm_cuda_check_launch("the kNN row lengths");
    }
    int64_t total0 = 0;
    if (st == GM_OK)
        st = gm_search_finish_count(counts.ptr, pl->rs0, p->ignore_query_point ? nullptr : row_splits, nq,
                                    &total0, s);
    if (st != GM_OK) return st;
    if (!p->ignore_query_point) {
        pl->total = *total = total0;
        return GM_OK;
    }
    // ignore_query_point: search now, keep the rows, free the grid before the caller allocates
    if ((uint64_t)total0 > SIZE_MAX / 16) return gm_cuda_oom((double)total0 * 16.0, "the kNN rows");
    const size_t tsize = p->dtype == GM_FLOAT32 ? sizeof(float) : sizeof(double);
    st = gm_search_plan_alloc(pl, (void**)&pl->starts, (size_t)(nq + 1) * sizeof(int64_t), what);
    if (st == GM_OK) st = gm_search_plan_alloc(pl, (void**)&pl->tidx, (size_t)total0 * sizeof(int64_t), what);
    if (st == GM_OK && (pl->heap || p->return_distances))
        st = gm_search_plan_alloc(pl, &pl->tdist, (size_t)total0 * tsize, what);
    if (st == GM_OK && nq > 0)
        st = p->dtype == GM_FLOAT32 ? knn_search_into_plan_f32(pl, counts.ptr)
                                    : knn_search_into_plan_f64(pl, counts.ptr);
    if (st == GM_OK) st = gm_search_finish_count(counts.ptr, pl->starts, row_splits, nq, total, s);
    if (st != GM_OK) return st;
    pl->total = *total;
    pl->own_grid->stream = s;
    gm_search_grid_destroy(pl->own_grid);
    pl->own_grid = nullptr;
    return GM_OK;
}

extern "C" int gm_knn_search_count_cuda(const gm_tree_search_params* p, int64_t* row_splits, int64_t* total,
                                        gm_search_plan** plan, void* stream) {
    *plan = nullptr;
    *total = 0;
    if (p->num_points < 0 || p->num_queries < 0 || p->batch_size < 1 || p->metric < 0 || p->metric > 2 ||
        (p->dtype != GM_FLOAT32 && p->dtype != GM_FLOAT64) || p->k < 1)
        return GM_ERR_INVALID;
    if (!p->index_is64 && p->num_points > (int64_t)INT32_MAX + 1) return GM_ERR_OVERFLOW;
    gm_knn_plan* pl = new (std::nothrow) gm_knn_plan();
    if (!pl) return GM_ERR_NOMEM;
    gm_search_plan_init(pl, (cudaStream_t)stream, p->return_distances);
    pl->fill = knn_fill;
    pl->destroy = knn_destroy;
    pl->p = *p;
    pl->heap = p->k > GM_KNN_LOCAL;
    const int st = knn_count(pl, row_splits, total);
    if (st != GM_OK) {
        knn_destroy(pl);
        *total = 0;
        return st;
    }
    *plan = pl;
    return GM_OK;
}
