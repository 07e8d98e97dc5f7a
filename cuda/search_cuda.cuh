// Private parts shared by the CUDA neighbor searches (cuda/search_*.cu): the device grid, the
// plan of the two phases and the helpers every count phase uses. Not part of the public API
// (that is include/geomops/search_cuda.h).
#ifndef GEOMOPS_SEARCH_CUDA_CUH
#define GEOMOPS_SEARCH_CUDA_CUH

#include "gm_cuda.cuh"
#include "primitives.cuh"

#include "geomops/search_cuda.h"
#include "geomops/search_math.h"

// The grid of a point set (device memory): per batch item, cells keyed like the CPU grid
// (gm_search_grid_key) and sorted stably, so that each cell holds its points in ascending index
// order and the cells of one (y, z) row are one contiguous run. The same structure serves the
// fixed-radius search (cell edge from the radius, bitwise the CPU's grid), the radius search
// (edge from the largest radius of each item) and kNN (edge from the density of each item).
struct gm_grid {
    int dtype;
    int64_t n, batch_size;
    double radius;        // the fixed-radius search's radius as given
    int persistent;       // 1: cudaMalloc / cudaFree (a user's index); 0: stream-ordered on `stream`
    cudaStream_t stream;  // where a non-persistent grid is freed
    int64_t bytes;        // device memory held
    void *x, *y, *z;      // [n] coordinates in cell order, the points' dtype
    int64_t* idx;         // [n] global point index at each sorted position
    int64_t* pts_splits;  // [B+1]
    double* origin;       // [3B]
    double* cell;         // [B] cell edge
    double* inv_cell;     // [B] its inverse
    int64_t* dims;        // [3B] cells per axis
    int64_t* item_cells;  // [B+1] ranges into ckey
    uint64_t* ckey;       // [n] sorted cell keys (item_cells[B] of them are used)
    int64_t* cstart;      // [n+1] first sorted position of each cell; cstart[ncells] = n
};

// What kernels get of a grid (passed by value).
struct gm_grid_view {
    const void *x, *y, *z;
    const int64_t* idx;
    const int64_t* pts_splits;
    const double *origin, *cell, *inv_cell;
    const int64_t* dims;
    const int64_t* item_cells;
    const uint64_t* ckey;
    const int64_t* cstart;
    int64_t batch_size;
};

gm_grid_view gm_search_grid_view(const gm_grid* g);

// How the cell edge of each item is chosen.
enum { GM_GRID_FIXED = 0, GM_GRID_PER_ITEM = 1, GM_GRID_KNN = 2 };

// Builds g (zeroed, with dtype/persistent/stream set by the caller) from p. FIXED: edge
// p->radius in the points' precision; PER_ITEM: edge item_edge[b] (device [B]); KNN: edge from
// the density of the item for k neighbors.
int gm_search_grid_build(const gm_grid_params* p, int mode, const double* item_edge, int64_t k, gm_grid* g);
// Frees what g holds and g itself (NULL is fine).
void gm_search_grid_destroy(gm_grid* g);

// The plan of every CUDA count phase (opaque in geomops/search_cuda.h). Each search derives its
// own plan, supplying the fill and the destructor; device temporaries go through plan_alloc and
// are freed, ordered on `stream` (the stream of the last phase), by gm_search_plan_free_cuda.
struct gm_search_plan {
    int (*fill)(gm_search_plan* plan, void* index, void* distance);  // distance NULL: not wanted
    void (*destroy)(gm_search_plan* plan);
    int64_t total;
    int want_distances;
    cudaStream_t stream;
    enum { MAX_MEM = 8 };
    void* mem[MAX_MEM];
    int nmem;
    gm_grid* own_grid;  // a grid the plan owns (radius, kNN), or NULL
};

// Zero-initialised plan fields of a new plan.
void gm_search_plan_init(gm_search_plan* pl, cudaStream_t stream, int want_distances);
// A device temporary of the plan, stream-ordered on the plan's stream (count 0: NULL).
int gm_search_plan_alloc(gm_search_plan* pl, void** p, size_t bytes, const char* what);
// Frees the plan's temporaries and grid (not the plan object).
void gm_search_plan_release(gm_search_plan* pl);

// The end of every count phase: starts [nq+1] (plan memory) = exclusive prefix sum of
// counts [nq], copied to the caller's row_splits (unless NULL); *total read back
// (GM_ERR_OVERFLOW when the sum does not fit int64).
int gm_search_finish_count(const int64_t* counts, int64_t* starts, int64_t* row_splits, int64_t nq,
                           int64_t* total, cudaStream_t stream);

// qord [nq] = the queries sorted by the grid cell they fall into (only speed depends on it:
// neighboring threads then scan the same cells).
int gm_search_order_queries(const gm_grid* g, const void* queries, int64_t nq, const int64_t* qsplits,
                            int64_t* qord, cudaStream_t stream);

#endif  // GEOMOPS_SEARCH_CUDA_CUH
