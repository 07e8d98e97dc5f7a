/* Definitions of geomops/interrupt.h and geomops/host_alloc.h. Every extension module keeps its
 * own copy of this state (symbols are hidden), so this body is compiled once per module: by
 * cpu/host_runtime.c (C11) and cuda/host_runtime.cu (CUDA C++ / the emulation's C++). */
#ifndef GEOMOPS_HOST_RUNTIME_IMPL_H
#define GEOMOPS_HOST_RUNTIME_IMPL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "geomops/host_alloc.h"
#include "geomops/interrupt.h"

#ifdef __cplusplus
#define GM_THREAD_LOCAL thread_local
#else
#define GM_THREAD_LOCAL _Thread_local
#endif

/* ---- interrupts ------------------------------------------------------------------------------ */

static gm_interrupt_handler gm_handler; /* read and written with __atomic builtins */
static GM_THREAD_LOCAL int64_t gm_next_poll_ns;
static GM_THREAD_LOCAL int gm_interrupted;

static int64_t gm_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

GM_EXTERN_C void gm_interrupt_set_handler(gm_interrupt_handler handler) {
    __atomic_store_n(&gm_handler, handler, __ATOMIC_RELEASE);
}

GM_EXTERN_C int gm_interrupt_poll(void) {
    if (gm_interrupted) return 1;
    const gm_interrupt_handler h = __atomic_load_n(&gm_handler, __ATOMIC_ACQUIRE);
    if (!h) return 0;
    const int64_t now = gm_monotonic_ns();
    if (now < gm_next_poll_ns) return 0;
    gm_next_poll_ns = now + (int64_t)GM_INTERRUPT_INTERVAL_MS * 1000000;
    gm_interrupted = h() != 0;
    return gm_interrupted;
}

GM_EXTERN_C void gm_interrupt_reset(void) {
    gm_interrupted = 0;
}

/* ---- host memory ------------------------------------------------------------------------------ */

static double gm_failed_bytes; /* read and written with __atomic builtins */

GM_EXTERN_C int gm_host_nomem(double bytes) {
    __atomic_store(&gm_failed_bytes, &bytes, __ATOMIC_RELAXED);
    return GM_ERR_NOMEM;
}

GM_EXTERN_C double gm_host_nomem_take(void) {
    double zero = 0.0, old;
    __atomic_exchange(&gm_failed_bytes, &zero, &old, __ATOMIC_RELAXED);
    return old;
}

/* MemAvailable + SwapFree of /proc/meminfo in bytes, or -1 where it cannot be read. */
static double gm_available_bytes(void) {
    FILE* f = fopen("/proc/meminfo", "r");
    if (!f) return -1.0;
    char line[256];
    double avail = -1.0, swap = 0.0;
    while (fgets(line, sizeof line, f)) {
        unsigned long long kb;
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) avail = (double)kb * 1024.0;
        if (sscanf(line, "SwapFree: %llu kB", &kb) == 1) swap = (double)kb * 1024.0;
    }
    fclose(f);
    return avail < 0.0 ? -1.0 : avail + swap;
}

static void* gm_host_alloc_impl(int64_t count, size_t elem_size, int zero) {
    const size_t n = count > 0 ? (size_t)count : 1;
    if (elem_size == 0) elem_size = 1;
    if (count > 0 && n > SIZE_MAX / elem_size) {
        gm_host_nomem((double)count * (double)elem_size);
        return NULL;
    }
    const size_t bytes = n * elem_size;
    if (bytes >= GM_HOST_CHECK_BYTES) {
        const double avail = gm_available_bytes();
        if (avail >= 0.0 && (double)bytes > avail) {
            gm_host_nomem((double)bytes);
            return NULL;
        }
    }
    void* p = zero ? calloc(n, elem_size) : malloc(bytes);
    if (!p) gm_host_nomem((double)bytes);
    return p;
}

GM_EXTERN_C void* gm_host_alloc(int64_t count, size_t elem_size) {
    return gm_host_alloc_impl(count, elem_size, 0);
}

GM_EXTERN_C void* gm_host_calloc(int64_t count, size_t elem_size) {
    return gm_host_alloc_impl(count, elem_size, 1);
}

#undef GM_THREAD_LOCAL

#endif /* GEOMOPS_HOST_RUNTIME_IMPL_H */
