/* Private helpers shared by the search kernels (cpu/search_*.c). Not part of the public API. */
#ifndef GEOMOPS_SEARCH_INTERNAL_H
#define GEOMOPS_SEARCH_INTERNAL_H

/* Distances must be rounded exactly like the reference (one rounding per operation, in the
 * points' precision): no fused multiply-add, whatever ISA a clone below targets. */
#pragma GCC optimize("fp-contract=off")

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "geomops/search.h"

/* Hot loops get AVX-512 / AVX2 clones picked at load time (results are identical: no FMA,
 * only exactly rounded +, -, *, abs, max and compares). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(GM_NO_CLONES)
#define GM_HOT __attribute__((target_clones("avx512f", "avx2", "default"), noinline))
#else
#define GM_HOT __attribute__((noinline))
#endif

#define GM_ALWAYS_INLINE static inline __attribute__((always_inline))

/* Stable LSD radix sort of (key, value) pairs by key, keys <= max_key. Uses num_threads
 * threads; the result does not depend on it (a stable sort has one answer). */
int gm_search_radix_sort(uint64_t* keys, int64_t* vals, int64_t n, uint64_t max_key, int num_threads);

/* Allocates the result arrays of a search with `total` entries into out->index / out->distance
 * (NULL when total == 0 or distances are not wanted). */
int gm_search_alloc_output(const gm_search_output* out, int64_t total, int index_is64, int want_distances,
                           size_t dist_size);
/* Frees what gm_search_alloc_output allocated (error paths). */
void gm_search_free_output(const gm_search_output* out);

/* row_splits[0] = 0; row_splits[i+1] += row_splits[i]; returns the total (or -1 on overflow). */
int64_t gm_search_prefix_sum(int64_t* row_splits, int64_t num_queries);

/* Sorts n (index, distance) pairs by index (indices are distinct). dist may be NULL. */
void gm_search_sort_pairs_f32(int64_t* idx, float* dist, int64_t n);
void gm_search_sort_pairs_f64(int64_t* idx, double* dist, int64_t n);

GM_ALWAYS_INLINE int gm_threads(int n) {
    return n < 1 ? 1 : n;
}

#endif /* GEOMOPS_SEARCH_INTERNAL_H */
