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
 * memory or malloc fails. gm_host_calloc zeroes it. Free with free(). */
void* gm_host_alloc(int64_t count, size_t elem_size);
void* gm_host_calloc(int64_t count, size_t elem_size);

/* Records a failed request of `bytes` (a double: it may exceed 2^64) and returns GM_ERR_NOMEM. */
int gm_host_nomem(double bytes);

/* The bytes of the last failed request recorded since the previous call (0: none), cleared. */
double gm_host_nomem_take(void);

#ifdef __cplusplus
}
#endif

#endif /* GEOMOPS_HOST_ALLOC_H */
