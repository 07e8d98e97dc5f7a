/* Neighbor search on the CPU (cpu/search_*.c): Open3D-compatible spatial hash table,
 * fixed-radius search over a sorted cell grid, radius and kNN search over a k-d tree.
 * Semantics: docs/search.md ("Semantics", "How it works").
 *
 * Conventions shared by every launcher below:
 * - points / queries are row-major [N,3] arrays of float (dtype GM_FLOAT32) or double (GM_FLOAT64);
 * - row splits are int64 prefix arrays of batch_size+1 entries (validated by the Python facade);
 * - neighbor indices are global (not relative to the batch item), written as int32 or int64;
 * - distances are squared for L2 and plain for L1 / Linf, computed in the points' precision;
 * - every result is bitwise identical for any thread count and any ISA variant.
 *
 * Results go to caller-allocated arrays, in two phases (docs/search.md, "Calling the kernels"):
 * 1. gm_*_search_count_cpu(params, row_splits, &total, &plan) writes row_splits [num_queries+1]
 *    (the prefix of the per-query neighbor counts) and total = row_splits[num_queries], and
 *    returns a plan holding what the fill needs (search index, query order, counts; for kNN with
 *    ignore_query_point the neighbors found).
 * 2. The caller allocates index [total] (int32, or int64 with index_is64) and, with
 *    return_distances, distance [total] (the points' dtype), and calls
 *    gm_search_fill_cpu(plan, index, distance). distance is ignored without return_distances;
 *    with total == 0 nothing is written and both may be NULL.
 * 3. gm_search_plan_free(plan), after the fill or instead of it, also when the fill failed.
 * Lifetimes: the plan copies the params struct but not what it points to: points, queries, row
 * splits, radii and the grid must stay alive and unchanged until the fill has returned. The
 * row_splits written by the count phase are not read again. A count phase that fails leaves
 * *plan NULL (nothing to free). Temporaries are gm_host_alloc()ed and freed inside a phase or by
 * gm_search_plan_free; no launcher allocates a result array. */
#ifndef GEOMOPS_SEARCH_H
#define GEOMOPS_SEARCH_H

#include "geomops/common.h"
#include "geomops/search_types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* build fills p->index [N] and p->cell_splits [table_splits[B]+1] (a counting sort: ascending
 * point index inside a bin). verify checks that index / cell_splits are such a table for these
 * points and this radius (every point exactly once, each in its own bin); *valid = 0 or 1. */
int gm_build_spatial_hash_table_cpu(const gm_hash_table_params* p);
int gm_verify_spatial_hash_table_cpu(const gm_hash_table_params* p, int* valid);

/* The grid is an index, not a result: built and owned by the library, freed by gm_grid_free
 * (NULL is fine). Searches only read it, so one grid may serve any number of searches, also
 * concurrently. */
int gm_grid_build_cpu(const gm_grid_params* p, gm_grid** out);
void gm_grid_free(gm_grid* g);
/* *match = 1 when `points` holds exactly the coordinates the grid was built from. */
int gm_grid_matches_cpu(const gm_grid* g, const void* points, int64_t num_points, int* match);
/* Approximate heap memory of the grid in bytes. */
int64_t gm_grid_nbytes(const gm_grid* g);

/* Count phases (see above). fixed_radius: dist <= radius of the grid; radius: dist < radii[q];
 * knn: min(k, n_b) results per query sorted by (distance, index), ignore_query_point filtering
 * the found results afterwards. */
int gm_fixed_radius_search_count_cpu(const gm_fixed_radius_params* p, int64_t* row_splits, int64_t* total,
                                     gm_search_plan** plan);
int gm_radius_search_count_cpu(const gm_tree_search_params* p, int64_t* row_splits, int64_t* total,
                               gm_search_plan** plan);
int gm_knn_search_count_cpu(const gm_tree_search_params* p, int64_t* row_splits, int64_t* total,
                            gm_search_plan** plan);
/* Fill phase of any of the three searches. */
int gm_search_fill_cpu(gm_search_plan* plan, void* index, void* distance);
void gm_search_plan_free(gm_search_plan* plan);

#ifdef __cplusplus
}
#endif

#endif /* GEOMOPS_SEARCH_H */
