/* Definitions of geomops/interrupt.h and geomops/host_alloc.h. Every extension module keeps its
 * own copy of this state (symbols are hidden), so this body is compiled once per module: by
 * cpu/host_runtime.c (C11) and cuda/host_runtime.cu (CUDA C++ / the emulation's C++). */
#ifndef GEOMOPS_HOST_RUNTIME_IMPL_H
#define GEOMOPS_HOST_RUNTIME_IMPL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* Every block is preceded by this header (GM_HOST_HEADER bytes, just below the caller's
 * GM_HOST_ALIGN-aligned part, which lies inside what the allocator returned): how to give the
 * block back. free NULL: malloc's. */
typedef struct gm_host_header {
    void* base;   /* what the allocator returned */
    size_t bytes; /* what it was asked for: the caller's bytes plus GM_HOST_EXTRA */
    void (*free)(void* ctx, void* p, size_t bytes);
    void* ctx;
} gm_host_header;
#define GM_HOST_HEADER sizeof(gm_host_header)
#define GM_HOST_EXTRA  (GM_HOST_HEADER + GM_HOST_ALIGN - 1) /* room for the header and the alignment */

/* The caller's part of a block the allocator returned at base: the first GM_HOST_ALIGN boundary
 * with room for the header below it. */
static char* gm_host_payload(void* base) {
    const uintptr_t a = (uintptr_t)base + GM_HOST_HEADER;
    return (char*)base + ((a + GM_HOST_ALIGN - 1) & ~(uintptr_t)(GM_HOST_ALIGN - 1)) - (uintptr_t)base;
}

static gm_host_header* gm_host_header_of(void* p) {
    return (gm_host_header*)((char*)p - GM_HOST_HEADER);
}

/* The bytes of the caller's part at p of the block h describes: from p to the block's end. */
static size_t gm_host_payload_bytes(const gm_host_header* h, const void* p) {
    return h->bytes - (size_t)((const char*)p - (const char*)h->base);
}

/* The replacement allocator: alloc NULL is malloc. Written under the spin lock; gm_hooked says
 * (without the lock) whether one is set, so that allocations without one never take the lock. */
static gm_host_allocator gm_hook;
static int gm_hooked;
static char gm_hook_lock;

static void gm_hook_lock_take(void) {
    while (__atomic_test_and_set(&gm_hook_lock, __ATOMIC_ACQUIRE)) {}
}

static void gm_hook_lock_give(void) {
    __atomic_clear(&gm_hook_lock, __ATOMIC_RELEASE);
}

GM_EXTERN_C void gm_host_set_allocator(const gm_host_allocator* allocator) {
    gm_hook_lock_take();
    if (allocator && allocator->alloc && allocator->free) {
        gm_hook = *allocator;
    } else {
        gm_hook.alloc = NULL;
        gm_hook.free = NULL;
        gm_hook.ctx = NULL;
    }
    __atomic_store_n(&gm_hooked, gm_hook.alloc != NULL, __ATOMIC_RELEASE);
    gm_hook_lock_give();
}

/* The allocator of the next allocation (a consistent copy); 0: malloc. */
static int gm_hook_get(gm_host_allocator* out) {
    if (!__atomic_load_n(&gm_hooked, __ATOMIC_ACQUIRE)) return 0;
    gm_hook_lock_take();
    *out = gm_hook;
    gm_hook_lock_give();
    return out->alloc != NULL;
}

/* count * elem_size bytes plus GM_HOST_EXTRA, or 0 after recording a request that overflows or
 * exceeds the memory the system has available (checked for malloc's blocks only: a replacement
 * allocator decides for itself). */
static size_t gm_host_request(int64_t count, size_t elem_size, int hooked) {
    const size_t n = count > 0 ? (size_t)count : 1;
    if (elem_size == 0) elem_size = 1;
    if (n > (SIZE_MAX - GM_HOST_EXTRA) / elem_size) {
        gm_host_nomem((double)n * (double)elem_size);
        return 0;
    }
    const size_t bytes = n * elem_size;
    if (!hooked && bytes >= GM_HOST_CHECK_BYTES) {
        const double avail = gm_available_bytes();
        if (avail >= 0.0 && (double)bytes > avail) {
            gm_host_nomem((double)bytes);
            return 0;
        }
    }
    return bytes + GM_HOST_EXTRA;
}

static void* gm_host_alloc_impl(int64_t count, size_t elem_size, int zero) {
    gm_host_allocator a = {NULL, NULL, NULL};
    const int hooked = gm_hook_get(&a);
    const size_t total = gm_host_request(count, elem_size, hooked);
    if (!total) return NULL;
    void* base;
    if (hooked) {
        base = a.alloc(a.ctx, total, GM_HOST_HOOK_ALIGN);
        if (base && zero) memset(base, 0, total);
    } else {
        base = zero ? calloc(1, total) : malloc(total);
    }
    if (!base) {
        gm_host_nomem((double)(total - GM_HOST_EXTRA));
        return NULL;
    }
    char* p = gm_host_payload(base);
    gm_host_header* h = gm_host_header_of(p);
    h->base = base;
    h->bytes = total;
    h->free = hooked ? a.free : NULL;
    h->ctx = hooked ? a.ctx : NULL;
    return p;
}

GM_EXTERN_C void* gm_host_alloc(int64_t count, size_t elem_size) {
    return gm_host_alloc_impl(count, elem_size, 0);
}

GM_EXTERN_C void* gm_host_calloc(int64_t count, size_t elem_size) {
    return gm_host_alloc_impl(count, elem_size, 1);
}

GM_EXTERN_C void gm_host_free(void* p) {
    if (!p) return;
    const gm_host_header* h = gm_host_header_of(p);
    if (h->free)
        h->free(h->ctx, h->base, h->bytes);
    else
        free(h->base);
}

GM_EXTERN_C void* gm_host_realloc(void* p, int64_t count, size_t elem_size) {
    if (!p) return gm_host_alloc(count, elem_size);
    const gm_host_header old = *gm_host_header_of(p);
    const size_t old_offset = (size_t)((char*)p - (char*)old.base), old_size = gm_host_payload_bytes(&old, p);
    gm_host_allocator a = {NULL, NULL, NULL};
    if (!old.free && !gm_hook_get(&a)) { /* malloc's block, and malloc's turn: in place when it can */
        const size_t total = gm_host_request(count, elem_size, 0);
        if (!total) return NULL;
        void* base = realloc(old.base, total);
        if (!base) {
            gm_host_nomem((double)(total - GM_HOST_EXTRA));
            return NULL;
        }
        char* q = gm_host_payload(base);
        gm_host_header* h = gm_host_header_of(q);
        const gm_host_header now = {base, total, NULL, NULL};
        /* a moved block may sit differently against the alignment: shift the contents (what both
         * blocks hold, and still inside the new block where it was) */
        if ((size_t)(q - (char*)base) != old_offset) {
            size_t keep =
                old_size < gm_host_payload_bytes(&now, q) ? old_size : gm_host_payload_bytes(&now, q);
            if (keep > total - old_offset) keep = total - old_offset;
            memmove(q, (char*)base + old_offset, keep);
        }
        *h = now;
        return q;
    }
    void* q = gm_host_alloc(count, elem_size);
    if (!q) return NULL;
    const size_t new_size = gm_host_payload_bytes(gm_host_header_of(q), q);
    memcpy(q, p, old_size < new_size ? old_size : new_size);
    gm_host_free(p);
    return q;
}

#undef GM_THREAD_LOCAL

#endif /* GEOMOPS_HOST_RUNTIME_IMPL_H */
