/* Private helpers shared by the search kernels (cpu/search_*.c). Not part of the public API. */
#ifndef GEOMOPS_SEARCH_INTERNAL_H
#define GEOMOPS_SEARCH_INTERNAL_H

#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "geomops/host_alloc.h"
#include "geomops/search.h"
#include "geomops/search_math.h"
#include "interrupt_omp.h"
#include "isa.h"

#define GM_ALWAYS_INLINE static inline __attribute__((always_inline))

/* The plan of every CPU count phase (opaque in geomops/search.h): each search embeds it as the
 * first member of its own plan struct and supplies the fill and the destructor. */
struct gm_search_plan {
    int (*fill)(gm_search_plan* plan, void* index, void* distance); /* distance NULL: not wanted */
    void (*destroy)(gm_search_plan* plan);
    int64_t total;      /* entries of index / distance */
    int want_distances; /* return_distances of the params */
};

/* Stable LSD radix sort of (key, value) pairs by key, keys <= max_key. Uses num_threads
 * threads; the result does not depend on it (a stable sort has one answer). Called by the
 * launching thread outside parallel regions: it polls for interrupts between its passes. */
int gm_search_radix_sort(uint64_t* keys, int64_t* vals, int64_t n, uint64_t max_key, int num_threads);

/* row_splits[0] = 0; row_splits[i+1] += row_splits[i]; returns the total (or -1 on overflow). */
int64_t gm_search_prefix_sum(int64_t* row_splits, int64_t num_queries);

/* Sorts n (index, distance) pairs by index (indices are distinct). dist may be NULL. */
void gm_search_sort_pairs_f32(int64_t* idx, float* dist, int64_t n);
void gm_search_sort_pairs_f64(int64_t* idx, double* dist, int64_t n);

GM_ALWAYS_INLINE int gm_threads(int n) {
    return n < 1 ? 1 : n;
}

/* A status shared by the threads of a parallel loop: any thread may record a failure, the
 * others stop early when they see one. */
GM_ALWAYS_INLINE void gm_search_fail(atomic_int* err, int status) {
    atomic_store_explicit(err, status, memory_order_relaxed);
}

GM_ALWAYS_INLINE int gm_search_failed(atomic_int* err) {
    return atomic_load_explicit(err, memory_order_relaxed);
}

#endif /* GEOMOPS_SEARCH_INTERNAL_H */
