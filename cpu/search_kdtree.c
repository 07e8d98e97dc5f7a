/* radius_search and knn_search over a k-d tree (one tree per batch item).
 *
 * Tree: implicit complete binary tree (node i has children 2i+1, 2i+2), built level by level;
 * each internal node halves its points at the median of its widest axis (ties broken by point
 * index, so the tree is unique). A node stores the split axis, the largest coordinate of its
 * left half and the smallest of its right half; leaves hold <= KD_LEAF points copied into
 * x[], y[], z[] arrays.
 * Search: depth first with an explicit stack, nearer child first. A subtree is skipped when the
 * distance from the query to its box (per-axis gaps combined in the same order and precision as
 * a point distance, hence never larger than the distance of any point inside) cannot qualify.
 * kNN keeps the k smallest (distance, index) pairs, so ties are broken by index and the result
 * does not depend on the visiting order. Every query is independent: any thread count gives
 * the same output.
 * Phases (geomops/search.h): radius search counts in its count phase and collects in its fill,
 * keeping tree, query order and counts in the plan; kNN knows its counts up front (min(k, n_b))
 * and searches in the fill, unless ignore_query_point makes the counts depend on the result.
 *
 * The typed part is search_kdtree_impl.h (per float type, geomops/twin.h); its per-chunk query
 * loops are search_kdtree_hot.h (per ISA, isa_variants.h). */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off") /* distances rounded once per operation, on every ISA */
#endif

#include "search_internal.h"

#define KD_LEAF       32
#define KD_MAX_DEPTH  62
#define KD_CHUNK      64
#define KD_SORTED_MAX 48 /* kNN keeps a sorted array up to this k, a heap above */

static inline int kd_depth(int64_t n) {
    int d = 0;
    while (d < KD_MAX_DEPTH && ((n + ((int64_t)1 << d) - 1) >> d) > KD_LEAF) ++d;
    return d;
}

#define GM_TWIN_BODY "search_kdtree_impl.h"
#include "geomops/twin.h"

static int kd_check(const gm_tree_search_params* p) {
    if (p->num_points < 0 || p->num_queries < 0 || p->batch_size < 1 || p->metric < 0 || p->metric > 2 ||
        (p->dtype != GM_FLOAT32 && p->dtype != GM_FLOAT64))
        return GM_ERR_INVALID;
    if (!p->index_is64 && p->num_points > (int64_t)INT32_MAX + 1) return GM_ERR_OVERFLOW;
    return GM_OK;
}

int gm_radius_search_count_cpu(const gm_tree_search_params* p, int64_t* row_splits, int64_t* total,
                               gm_search_plan** plan) {
    *plan = NULL;
    *total = 0;
    int st = kd_check(p);
    if (st) return st;
    if (!p->radii) return GM_ERR_INVALID;
    return p->dtype == GM_FLOAT32 ? kd_radius_count_f32(p, row_splits, total, plan)
                                  : kd_radius_count_f64(p, row_splits, total, plan);
}

int gm_knn_search_count_cpu(const gm_tree_search_params* p, int64_t* row_splits, int64_t* total,
                            gm_search_plan** plan) {
    *plan = NULL;
    *total = 0;
    int st = kd_check(p);
    if (st) return st;
    if (p->k < 1) return GM_ERR_INVALID;
    return p->dtype == GM_FLOAT32 ? kd_knn_count_f32(p, row_splits, total, plan)
                                  : kd_knn_count_f64(p, row_splits, total, plan);
}
