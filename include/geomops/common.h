/* Shared definitions for the C (gcc) and CUDA (nvcc) sides of geomops.
 * Everything here must compile as C11 and as CUDA C++. */
#ifndef GEOMOPS_COMMON_H
#define GEOMOPS_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* GM_HD marks per-point / per-pixel math shared by the OpenMP and CUDA backends:
 * one definition of each formula, compiled by both compilers.
 * GM_HD_INLINE is the same, forced inline: for small functions called in the innermost loops
 * with compile-time constant arguments (a metric, a mode) that the call site must specialise. */
#if defined(__CUDACC__)
#define GM_HD        __host__ __device__ __forceinline__
#define GM_HD_INLINE __host__ __device__ __forceinline__
#else
#define GM_HD        static inline
#define GM_HD_INLINE static inline __attribute__((always_inline))
#endif

#ifdef __cplusplus
#define GM_EXTERN_C extern "C"
#else
#define GM_EXTERN_C
#endif

/* Float dtype of a kernel's arrays (every family uses these). */
enum { GM_FLOAT32 = 0, GM_FLOAT64 = 1 };

/* Status codes returned by every launcher and query function of both backends. 0 is success.
 * The CUDA backend never returns a raw cudaError_t: it maps it to one of these and keeps the
 * CUDA error text for gm_cuda_last_error() (include/geomops/cuda_api.h). */
enum {
    GM_OK = 0,
    GM_ERR_NOMEM = 1,       /* an allocation failed (host or device memory) */
    GM_ERR_INVALID = 2,     /* an argument the facade should have rejected */
    GM_ERR_OVERFLOW = 3,    /* a count does not fit the requested index type */
    GM_ERR_UNSUPPORTED = 4, /* an option combination that this backend does not implement */
    GM_ERR_NO_DEVICE = 5,   /* no usable CUDA driver or device */
    GM_ERR_DEVICE = 6,      /* any other CUDA runtime or launch error */
    GM_ERR_INTERRUPTED = 7  /* the interrupt handler asked the call to stop (geomops/interrupt.h) */
};

#endif /* GEOMOPS_COMMON_H */
