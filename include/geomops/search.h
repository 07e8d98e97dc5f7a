/* Neighbor search on the CPU: Open3D-compatible spatial hash table, fixed-radius search over a
 * sorted cell grid, radius and kNN search over a k-d tree.
 *
 * Conventions shared by every launcher below:
 * - points / queries are row-major [N,3] arrays of float (dtype GM_FLOAT32) or double (GM_FLOAT64);
 * - row splits are int64 prefix arrays of batch_size+1 entries (validated by the Python facade);
 * - neighbor indices are global (not relative to the batch item), written as int32 or int64;
 * - distances are squared for L2 and plain for L1 / Linf, computed in the points' precision;
 * - result buffers are allocated by the launcher with malloc() and handed to the caller, who frees
 *   them with free() (they are NULL when the result is empty);
 * - every result is bitwise identical for any thread count. */
#ifndef GEOMOPS_SEARCH_H
#define GEOMOPS_SEARCH_H

#include "geomops/common.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { GM_METRIC_L1 = 0, GM_METRIC_L2 = 1, GM_METRIC_LINF = 2 };

/* ---- Open3D-compatible spatial hash table ------------------------------------------------ */

/* Voxel size 2*radius (in the points' precision), hash
 * (cx*73856096 ^ cy*193649663 ^ cz*83492791) in wrapping 32-bit int, sign-extended, % T_b.
 * build: fills index[N] and cell_splits[table_splits[B]+1] (counting sort, ascending point
 * index inside a bin). verify: checks that index/cell_splits are such a table for these
 * points and this radius (every point exactly once, each in its own bin); *valid = 0 or 1. */
typedef struct {
    int dtype;
    const void* points;
    int64_t num_points;
    const int64_t* points_row_splits; /* [batch_size+1] */
    int64_t batch_size;
    double radius;
    const int64_t* table_splits; /* [batch_size+1], prefix sum of the table sizes T_b */
    int32_t* index;              /* [num_points]: output of build, input of verify */
    int32_t* cell_splits;        /* [table_splits[batch_size]+1]: same */
    int num_threads;
} gm_hash_table_params;

int gm_build_spatial_hash_table_cpu(const gm_hash_table_params* p);
int gm_verify_spatial_hash_table_cpu(const gm_hash_table_params* p, int* valid);

/* ---- Cell grid for fixed-radius search ----------------------------------------------------- */

/* Cells of edge >= radius (slightly padded), keyed per batch item; points are copied into
 * cell order (structure of arrays) so that a row of 3 cells is one contiguous range. */
typedef struct gm_grid gm_grid;

typedef struct {
    int dtype;
    const void* points;
    int64_t num_points;
    const int64_t* points_row_splits; /* [batch_size+1] */
    int64_t batch_size;
    double radius;
    int num_threads;
} gm_grid_params;

int gm_grid_build_cpu(const gm_grid_params* p, gm_grid** out);
void gm_grid_free(gm_grid* g);
/* *match = 1 when `points` holds exactly the coordinates the grid was built from. */
int gm_grid_matches_cpu(const gm_grid* g, const void* points, int64_t num_points, int* match);
/* Approximate heap memory of the grid in bytes. */
int64_t gm_grid_nbytes(const gm_grid* g);

/* Outputs shared by the three searches. */
typedef struct {
    int64_t* row_splits; /* caller-allocated [num_queries+1] */
    void** index;        /* receives malloc'ed int32/int64 [total] (NULL if total == 0) */
    void** distance;     /* receives malloc'ed float/double [total] or NULL (return_distances 0) */
    int64_t* total;      /* receives row_splits[num_queries] */
} gm_search_output;

typedef struct {
    const gm_grid* grid; /* built from the points with the same radius */
    const void* queries; /* same dtype as the grid */
    int64_t num_queries;
    const int64_t* queries_row_splits; /* [grid batch_size+1] */
    int metric;                        /* GM_METRIC_* ; test is inclusive: dist <= radius */
    int ignore_query_point;
    int return_distances;
    int sort; /* 1: each row in ascending index order */
    int index_is64;
    int num_threads;
    gm_search_output out;
} gm_fixed_radius_params;

int gm_fixed_radius_search_cpu(const gm_fixed_radius_params* p);

/* ---- k-d tree searches ------------------------------------------------------------------------ */

typedef struct {
    int dtype;
    const void* points;
    int64_t num_points;
    const int64_t* points_row_splits; /* [batch_size+1] */
    const void* queries;
    int64_t num_queries;
    const int64_t* queries_row_splits; /* [batch_size+1] */
    int64_t batch_size;
    int metric;
    int ignore_query_point;
    int return_distances;
    int index_is64;
    int num_threads;
    /* radius search only: per-query radii (points' dtype), strict test dist < r */
    const void* radii;
    int normalize_distances;
    int sort;
    /* knn only */
    int64_t k;
    gm_search_output out;
} gm_tree_search_params;

int gm_radius_search_cpu(const gm_tree_search_params* p);
/* kNN: min(k, n_b) results per query sorted by (distance, index); ignore_query_point filters
 * the found results afterwards. */
int gm_knn_search_cpu(const gm_tree_search_params* p);

#ifdef __cplusplus
}
#endif

#endif /* GEOMOPS_SEARCH_H */
