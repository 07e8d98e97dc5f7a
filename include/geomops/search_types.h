/* Types of the neighbor-search family (docs/search.md), shared by every backend: the metric,
 * the parameter structs of the launchers and the opaque index / plan types. C11 and CUDA C++. */
#ifndef GEOMOPS_SEARCH_TYPES_H
#define GEOMOPS_SEARCH_TYPES_H

#include "geomops/common.h" /* GM_FLOAT32 / GM_FLOAT64 */

/* L2 distances are squared, L1 and Linf plain. */
typedef enum { GM_METRIC_L1 = 0, GM_METRIC_L2 = 1, GM_METRIC_LINF = 2 } gm_metric;

/* Open3D-compatible spatial hash table (docs/search.md, "The spatial hash table"): voxel size
 * 2*radius in the points' precision, hash (cx*73856096 ^ cy*193649663 ^ cz*83492791) in wrapping
 * 32-bit int, sign-extended, % T_b. */
typedef struct {
    int dtype; /* GM_FLOAT32 or GM_FLOAT64 */
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

/* Cell grid of a point set for one radius, the index of the fixed-radius search. */
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

/* What a search's count phase keeps for its fill phase (geomops/search.h). */
typedef struct gm_search_plan gm_search_plan;

typedef struct {
    const gm_grid* grid; /* built from the points with the same radius */
    const void* queries; /* same dtype as the grid */
    int64_t num_queries;
    const int64_t* queries_row_splits; /* [grid batch_size+1] */
    int metric;                        /* gm_metric; the test is inclusive: dist <= radius */
    int ignore_query_point;
    int return_distances;
    int sort; /* 1: each row in ascending index order */
    int index_is64;
    int num_threads;
} gm_fixed_radius_params;

/* radius_search and knn_search (k-d tree). */
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
} gm_tree_search_params;

#endif /* GEOMOPS_SEARCH_TYPES_H */
