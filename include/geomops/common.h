/* Shared definitions for the C (gcc) and CUDA (nvcc) sides of geomops.
 * Everything here must compile as C11 and as CUDA C++. */
#ifndef GEOMOPS_COMMON_H
#define GEOMOPS_COMMON_H

#include <stdint.h>
#include <stddef.h>

/* GM_HD marks per-point / per-pixel math shared by the OpenMP and CUDA backends:
 * one definition of each formula, compiled by both compilers. */
#if defined(__CUDACC__)
#define GM_HD __host__ __device__ __forceinline__
#else
#define GM_HD static inline
#endif

#ifdef __cplusplus
#define GM_EXTERN_C extern "C"
#else
#define GM_EXTERN_C
#endif

/* Float dtype of a kernel's arrays (every family uses these). */
enum { GM_FLOAT32 = 0, GM_FLOAT64 = 1 };

/* Status codes returned by every launcher (CPU and CUDA). 0 means success. */
enum {
    GM_OK = 0,
    GM_ERR_NOMEM = 1,      /* an allocation failed */
    GM_ERR_INVALID = 2,    /* an argument the facade should have rejected */
    GM_ERR_OVERFLOW = 3,   /* a count does not fit the requested index type */
    GM_ERR_UNSUPPORTED = 4 /* an option combination that this backend does not implement */
};

#endif /* GEOMOPS_COMMON_H */
