/* Interrupt checks inside the OpenMP kernels (geomops/interrupt.h).
 *
 * One gm_stop flag per kernel call, shared by the threads of its parallel regions. At the start
 * of each chunk of work every thread calls gm_stopped(&stop) and skips the chunk when it says so:
 * OpenMP thread 0 (the thread that called the launcher) polls the interrupt handler and raises
 * the flag, the others only read it. Chunks are what the loop already had (rows, blocks, tiles),
 * never single elements, and skipping them changes nothing else, so a call that is not
 * interrupted computes exactly what it did without the checks. After the parallel region the
 * launcher frees its temporaries and returns gm_stop_status(&stop, status). */
#ifndef GEOMOPS_CPU_INTERRUPT_OMP_H
#define GEOMOPS_CPU_INTERRUPT_OMP_H

#include <stdatomic.h>
#include <stdint.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "geomops/interrupt.h"

typedef atomic_int gm_stop;

/* Chunks for the loops that had none (one row or item per iteration): rows of a neighbor list
 * (tens of entries each) or single entries, a few tens of microseconds of work per chunk. */
#define GM_STOP_ROWS  4096
#define GM_STOP_ITEMS 65536

/* The chunks of size `block` of [0, n), and the end of chunk b. */
static inline int64_t gm_stop_blocks(int64_t n, int64_t block) {
    return n > 0 ? (n + block - 1) / block : 0;
}

static inline int64_t gm_stop_block_end(int64_t b, int64_t n, int64_t block) {
    return (b + 1) * block < n ? (b + 1) * block : n;
}

static inline int gm_stopped(gm_stop* stop) {
#ifdef _OPENMP
    const int polls = omp_get_thread_num() == 0;
#else
    const int polls = 1;
#endif
    if (polls && !atomic_load_explicit(stop, memory_order_relaxed) && gm_interrupt_poll())
        atomic_store_explicit(stop, 1, memory_order_relaxed);
    return atomic_load_explicit(stop, memory_order_relaxed);
}

/* GM_ERR_INTERRUPTED when the call was stopped, else `status`. */
static inline int gm_stop_status(gm_stop* stop, int status) {
    return atomic_load_explicit(stop, memory_order_relaxed) ? GM_ERR_INTERRUPTED : status;
}

#endif /* GEOMOPS_CPU_INTERRUPT_OMP_H */
