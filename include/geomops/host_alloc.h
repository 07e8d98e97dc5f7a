/* Host memory of the launchers (docs/architecture.md, "Interrupts and memory limits"): sizes
 * computed without overflow, large requests checked against the memory the system can still
 * give (so a request that cannot fit fails here instead of waking the OOM killer when its pages
 * are touched), and the size of a failed request kept for the caller's error message. */
#ifndef GEOMOPS_HOST_ALLOC_H
#define GEOMOPS_HOST_ALLOC_H

#include "geomops/common.h"

/* Requests from this size on are compared with the system's available memory first. */
#define GM_HOST_CHECK_BYTES ((size_t)256 << 20)

#ifdef __cplusplus
extern "C" {
#endif

/* count elements of elem_size bytes (count <= 0 gives a minimal block), or NULL after
 * recording the request (gm_host_nomem) when count * elem_size overflows, exceeds the available
 * memory, or the allocator fails. gm_host_calloc zeroes it. Every block, whichever allocator
 * gave it, is freed with gm_host_free (never free()) and goes back to the allocator that gave it.
 * Every block is aligned to a cache line (GM_HOST_ALIGN), whatever the allocator's alignment. */
void* gm_host_alloc(int64_t count, size_t elem_size);
void* gm_host_calloc(int64_t count, size_t elem_size);
/* Frees a block of gm_host_alloc / gm_host_calloc / gm_host_realloc (NULL is fine). */
void gm_host_free(void* p);
/* A block of count * elem_size bytes with the contents of `p` (up to the smaller size), `p`
 * freed; NULL (the request recorded) on failure, `p` then unchanged. p NULL: gm_host_alloc. */
void* gm_host_realloc(void* p, int64_t count, size_t elem_size);

/* The alignment of every block (a cache line: the SIMD kernels' rows start there). An allocator
 * hook is asked for GM_HOST_HOOK_ALIGN; the block is aligned inside what it returns. */
#define GM_HOST_ALIGN      ((size_t)64)
#define GM_HOST_HOOK_ALIGN ((size_t)16)

/* A replacement for malloc / free behind every gm_host_* block (the C API's
 * geomops_set_allocator; the Python modules never set one). alloc returns `bytes` bytes aligned
 * to `alignment` (a power of two) or NULL; free gets the pointer and the bytes alloc was asked
 * for; ctx is passed to both. */
typedef struct gm_host_allocator {
    void* (*alloc)(void* ctx, size_t bytes, size_t alignment);
    void (*free)(void* ctx, void* p, size_t bytes);
    void* ctx;
} gm_host_allocator;

/* Replaces the allocator of the blocks allocated from now on (NULL: malloc / free again); blocks
 * allocated before go back to the allocator that gave them. Safe to call at any time from any
 * thread: each allocation reads the allocator once, atomically. */
void gm_host_set_allocator(const gm_host_allocator* allocator);

/* Records a failed request of `bytes` (a double: it may exceed 2^64) and returns GM_ERR_NOMEM. */
int gm_host_nomem(double bytes);

/* The bytes of the last failed request recorded since the previous call (0: none), cleared. */
double gm_host_nomem_take(void);

#ifdef __cplusplus
}
#endif

#endif /* GEOMOPS_HOST_ALLOC_H */
