/* Private helpers of the C API (the capi/ sources): the calling thread's error message, versioned-struct
 * reading, the execution context (CPU threads or a CUDA device and stream), argument checks that
 * name the argument as the Python API does, and memory on the context's side (host or device).
 *
 * Validation reads array values where the Python facade does (row splits, index ranges, finite
 * values): directly on the CPU, and through the device reductions of geomops/array_ops.h on
 * CUDA (gm_array_stats_cuda: a few scalars come back; the call waits for the stream). */
#ifndef GEOMOPS_CAPI_H
#define GEOMOPS_CAPI_H

#include <stddef.h>
#include <stdint.h>

#include "geomops/array_ops.h" /* gm_array_stats, GM_DT_* (the CUDA functions only with CUDA) */
#include "geomops/common.h"
#include "geomops/geomops.h"
#include "geomops/host_alloc.h"

/* GEOMOPS_CAPI_CUDA (set by CMake): the library contains the CUDA backend (nvcc, or the host
 * emulation of cuda/emu). Calls of CUDA launchers go through GM_CUDA_ONLY so that a CPU-only
 * build never references them (those paths are unreachable there: gm_begin refuses CUDA). */
#if defined(GEOMOPS_CAPI_CUDA)
#define GM_CUDA_ONLY(expr) (expr)
#else
#define GM_CUDA_ONLY(expr) GM_ERR_UNSUPPORTED
#endif

#if defined(__GNUC__)
#define GM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define GM_PRINTF(a, b)
#endif

/* ---- errors ---------------------------------------------------------------------------------- */

/* Every API function calls gm_enter first: it clears the thread's message and names the
 * function for the messages that follow. */
void gm_enter(const char* op);
/* Records "<op>: <message>" for geomops_last_error() and returns `status`. */
geomops_status gm_fail(geomops_status status, const char* fmt, ...) GM_PRINTF(2, 3);
/* Maps a kernel's GM_* status to a geomops_status (with a message naming `what`). */
geomops_status gm_kernel(int gm_status, const char* what);

#define GM_TRY(expr)                                                                                         \
    do {                                                                                                     \
        geomops_status gm_st_ = (expr);                                                                      \
        if (gm_st_ != GEOMOPS_OK) return gm_st_;                                                             \
    } while (0)

/* ---- versioned structs ------------------------------------------------------------------------ */

/* Copies the caller's struct `src` (first field: size_t size) over `dst`, which holds the
 * defaults and is sizes[n - 1] bytes. Accepted sizes: exactly those of `sizes` (ascending: the
 * struct in every release that changed it, the first of geomops 0.1.0, the last sizeof); fields
 * beyond a smaller size keep their defaults. `name` is the argument. */
geomops_status gm_read_struct(void* dst, const size_t* sizes, int n, const void* src, const char* name,
                              const char* type);
/* A struct unchanged since 0.1.0. */
#define GM_READ(dst, src, name, T) gm_read_struct((dst), (const size_t[]){sizeof(T)}, 1, (src), (name), #T)
/* A struct that grew in 0.2 (fields from `first_new` on). */
#define GM_READ_V2(dst, src, name, T, first_new)                                                             \
    gm_read_struct((dst), (const size_t[]){offsetof(T, first_new), sizeof(T)}, 2, (src), (name), #T)

/* ---- execution context ------------------------------------------------------------------------ */

typedef struct gm_ctx {
    int cuda;        /* 0: CPU, 1: CUDA */
    int num_threads; /* CPU threads (resolved, >= 1) */
    int device;      /* CUDA device */
    void* stream;    /* CUDA stream */
    int prev_device; /* the thread's device before gm_begin, restored by gm_end (-1: unchanged) */
} gm_ctx;

/* Resolves `exec` (NULL: CPU, all cores); on CUDA makes exec->device current. Pair every
 * successful gm_begin with gm_end. */
geomops_status gm_begin(gm_ctx* c, const geomops_exec* exec);
void gm_end(gm_ctx* c);
/* A context for a stored exec (search handles): the same, from saved values. */
geomops_status gm_begin_saved(gm_ctx* c, const gm_ctx* saved);

/* ---- argument checks (each fails with a message naming the argument) -------------------------- */

geomops_status gm_chk_count(int64_t v, const char* name);                /* >= 0 */
geomops_status gm_chk_min(int64_t v, int64_t minimum, const char* name); /* >= minimum */
geomops_status gm_chk_flag(int v, const char* name);                     /* 0 or 1 */
geomops_status gm_chk_enum(int v, int lo, int hi, const char* name, const char* valid);
/* GEOMOPS_FLOAT32 / FLOAT64 -> *gm_dtype = GM_FLOAT32 / GM_FLOAT64. */
geomops_status gm_chk_float_type(int dtype, const char* name, int* gm_dtype);
/* GEOMOPS_INT32 / INT64 -> *is64. */
geomops_status gm_chk_index_type(int dtype, const char* name, int* is64);
geomops_status gm_chk_real(double v, const char* name, int positive, int nonnegative); /* finite */

/* A required array of n elements: NULL only when n == 0; on CUDA device memory of exec->device. */
geomops_status gm_chk_array(const gm_ctx* c, const void* p, int64_t n, const char* name);
/* An optional array (NULL: absent): on CUDA, device memory of exec->device when given. */
geomops_status gm_chk_optional(const gm_ctx* c, const void* p, const char* name);

/* The summary of a[0:n] (n > 0; dtype GM_DT_INT32/INT64/FLOAT32/FLOAT64), where it lives. */
geomops_status gm_stats(const gm_ctx* c, const void* a, int gm_dt, int64_t n, gm_array_stats* out);
/* Row splits [rows + 1]: start at 0, non-decreasing, end with `total` (total < 0: not checked).
 * total_name says what the total is ("num_neighbors = 12"). */
geomops_status gm_chk_row_splits(const gm_ctx* c, const int64_t* rs, int64_t rows, int64_t total,
                                 const char* name, const char* total_name);
/* Every index of idx[0:n] in [0, limit); limit_name names the bound ("num_inp"). */
geomops_status gm_chk_indices(const gm_ctx* c, const void* idx, int is64, int64_t n, int64_t limit,
                              const char* name, const char* limit_name);
/* Float values: finite, and (lower > 0) > 0 or (lower == 0) >= 0 or (lower < 0) any. */
enum { GM_ANY = -1, GM_NONNEGATIVE = 0, GM_POSITIVE = 1 };
geomops_status gm_chk_finite(const gm_ctx* c, const void* a, int gm_dtype, int64_t n, int lower,
                             const char* what);

/* ---- memory on the context's side (host on the CPU, device on CUDA) ---------------------------- */

/* Host memory of the C API itself (gm_host_alloc: the caller's allocator, see
 * geomops_set_allocator): count elements of elem bytes, or NULL with *st = OUT_OF_MEMORY naming
 * the bytes and `what`. Free with gm_host_free. */
void* gm_host_tmp(int64_t count, size_t elem, const char* what, geomops_status* st);

/* NULL on failure (the status then says why). 0 bytes gives a valid minimal block on the CPU. */
void* gm_alloc(const gm_ctx* c, size_t bytes, const char* what, geomops_status* st);
/* `bytes`: what gm_alloc was asked for (the CUDA side caches freed blocks by size). */
void gm_free(const gm_ctx* c, void* p, size_t bytes);
geomops_status gm_to_host(const gm_ctx* c, void* dst, const void* src, size_t bytes);
geomops_status gm_from_host(const gm_ctx* c, void* dst, const void* src, size_t bytes);
geomops_status gm_zero(const gm_ctx* c, void* p, size_t bytes);
/* Waits for the context's stream (CUDA; nothing on the CPU). */
geomops_status gm_sync(const gm_ctx* c);
/* dst = src converted between GM_FLOAT32 and GM_FLOAT64 (n elements), where the context runs. */
geomops_status gm_cast(const gm_ctx* c, int src_dtype, const void* src, int dst_dtype, void* dst, int64_t n);

/* Temporaries of one call, freed together by gm_arena_free (on CUDA after waiting for the
 * stream, so that no queued work still reads them). */
enum { GM_ARENA_MAX = 24 };
typedef struct gm_arena {
    const gm_ctx* c;
    void* p[GM_ARENA_MAX];
    size_t bytes[GM_ARENA_MAX];
    int n;
} gm_arena;
void gm_arena_init(gm_arena* a, const gm_ctx* c);
/* `count` elements of `elem` bytes; NULL with *st set on failure. */
void* gm_arena_alloc(gm_arena* a, int64_t count, size_t elem, const char* what, geomops_status* st);
/* Frees everything; returns `status`, or the stream's error if waiting for it failed. */
geomops_status gm_arena_free(gm_arena* a, geomops_status status);

/* A valid pointer for an empty CPU array that may be NULL (the kernels never read it). */
const void* gm_nz(const gm_ctx* c, const void* p);

/* Element sizes. */
static inline size_t gm_fsize(int gm_dtype) {
    return gm_dtype == GM_FLOAT64 ? 8 : 4;
}

/* rows * cols, or -1 when it overflows int64 (the caller reports it). */
int64_t gm_mul(int64_t a, int64_t b);

#endif /* GEOMOPS_CAPI_H */
