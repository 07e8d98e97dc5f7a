/* Neighbor search on CUDA (cuda/search_*.cu): the twins of geomops/search.h, with the same
 * params structs, semantics and two phases. Semantics: docs/search.md; the CUDA specifics
 * (stream order, row order): docs/cuda.md and below.
 *
 * Every pointer inside a params struct is DEVICE memory (points, queries, row splits, radii, the
 * hash-table arrays); the scalars (counts, radius, k, flags) are host values. Streams are void*
 * (a cudaStream_t; NULL is the legacy default stream). Every launcher orders its work on the
 * stream it is given and returns without waiting for it, except where a result must come back
 * to the host: the totals of the count phases, the verdicts of verify and matches.
 *
 * Two phases, caller-allocated outputs, like the CPU:
 * 1. gm_*_search_count_cuda(params, row_splits, &total, &plan, stream) writes the device array
 *    row_splits [num_queries+1] and reads only total = row_splits[num_queries] back to the host.
 *    The plan keeps the device temporaries the fill needs (query order, row starts; the grid of
 *    a radius / kNN search; for kNN with ignore_query_point the neighbors found).
 * 2. The caller allocates device arrays index [total] (int32, or int64 with index_is64) and, with
 *    return_distances, distance [total], and calls gm_search_fill_cuda(plan, index, distance,
 *    stream) on the stream of the count (or one ordered after it: the plan's temporaries are
 *    stream-ordered allocations of the count's stream).
 * 3. gm_search_plan_free_cuda(plan) frees them, ordered on the stream of the last phase (which
 *    must still exist).
 * The plan copies the params struct, not the arrays: inputs and the grid must stay alive and
 * unchanged until the fill's work has run. A failed count leaves *plan NULL.
 *
 * Row order: knn rows are sorted by (distance, index), and sort=1 gives rows in ascending index
 * order: both bitwise equal to the CPU's rows. Without sort, a fixed-radius row is in the CPU's
 * order too (the same grid, scanned the same way); a radius-search row holds the CPU's set in
 * the order of the CUDA grid (cells of the 3x3x3 block around the query's cell by z, y, x, then
 * ascending index inside a cell), which is fixed: the same on every run and every device. */
#ifndef GEOMOPS_SEARCH_CUDA_H
#define GEOMOPS_SEARCH_CUDA_H

#include "geomops/common.h"
#include "geomops/search_types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The Open3D-compatible hash table, as gm_build_spatial_hash_table_cpu (ascending point index
 * inside a bin; bitwise equal to the CPU's table). num_cells = table_splits[batch_size] (a host
 * value: table_splits is device memory). */
int gm_build_spatial_hash_table_cuda(const gm_hash_table_params* p, int64_t num_cells, void* stream);
/* *valid = 0 or 1 as gm_verify_spatial_hash_table_cpu (waits for the stream). */
int gm_verify_spatial_hash_table_cuda(const gm_hash_table_params* p, int64_t num_cells, int* valid,
                                      void* stream);

/* The fixed-radius search grid in device memory (allocated with cudaMalloc, written on `stream`:
 * use it on that stream or after synchronising it). Freed by gm_grid_free_cuda (NULL is fine),
 * which waits for the device. */
int gm_grid_build_cuda(const gm_grid_params* p, gm_grid** out, void* stream);
void gm_grid_free_cuda(gm_grid* g);
/* *match = 1 when the device array `points` holds exactly the coordinates the grid was built
 * from (waits for the stream). */
int gm_grid_matches_cuda(const gm_grid* g, const void* points, int64_t num_points, int* match, void* stream);
/* Device memory of the grid in bytes. */
int64_t gm_grid_nbytes_cuda(const gm_grid* g);

/* Count phases: fixed_radius dist <= radius of the grid (p->grid from gm_grid_build_cuda);
 * radius dist < radii[q]; knn min(k, n_b) per query by (distance, index), ignore_query_point
 * filtering them afterwards. */
int gm_fixed_radius_search_count_cuda(const gm_fixed_radius_params* p, int64_t* row_splits, int64_t* total,
                                      gm_search_plan** plan, void* stream);
int gm_radius_search_count_cuda(const gm_tree_search_params* p, int64_t* row_splits, int64_t* total,
                                gm_search_plan** plan, void* stream);
int gm_knn_search_count_cuda(const gm_tree_search_params* p, int64_t* row_splits, int64_t* total,
                             gm_search_plan** plan, void* stream);
/* Fill phase of any of the three (device index / distance; with total 0 nothing is written). */
int gm_search_fill_cuda(gm_search_plan* plan, void* index, void* distance, void* stream);
void gm_search_plan_free_cuda(gm_search_plan* plan);

#ifdef __cplusplus
}
#endif

#endif /* GEOMOPS_SEARCH_CUDA_H */
