/* The C API's common part: version queries, the thread's error message, versioned structs, the
 * execution context, argument checks and memory on the context's side (capi/capi.h). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "capi.h"
#include "geomops/cconv.h"
#include "geomops/cuda_api.h"
#include "geomops/host_alloc.h"
#include "geomops/interrupt.h"
#if defined(GEOMOPS_CAPI_CUDA)
#include "geomops/cconv_cuda.h"
#endif

/* ---- version ---------------------------------------------------------------------------------- */

GEOMOPS_API int geomops_version(void) {
    return GEOMOPS_VERSION;
}

GEOMOPS_API const char* geomops_version_string(void) {
    return GEOMOPS_VERSION_STRING;
}

GEOMOPS_API int geomops_has_cuda(void) {
#if defined(GEOMOPS_CAPI_CUDA)
    return 1;
#else
    return 0;
#endif
}

/* ---- errors ----------------------------------------------------------------------------------- */

static _Thread_local char g_error[1024];
static _Thread_local const char* g_op = "geomops";

void gm_enter(const char* op) {
    g_op = op;
    g_error[0] = '\0';
    gm_interrupt_reset(); /* an interrupt stops the call it happened in, not the next one */
    gm_host_nomem_take(); /* a failed host allocation is reported by the call that made it */
}

geomops_status gm_fail(geomops_status status, const char* fmt, ...) {
    int n = snprintf(g_error, sizeof g_error, "%s: ", g_op);
    if (n < 0 || (size_t)n >= sizeof g_error) n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_error + n, sizeof g_error - (size_t)n, fmt, ap);
    va_end(ap);
    return status;
}

GEOMOPS_API const char* geomops_last_error(void) {
    return g_error;
}

GEOMOPS_API const char* geomops_status_string(geomops_status status) {
    switch (status) {
        case GEOMOPS_OK:
            return "success";
        case GEOMOPS_ERROR_INVALID_ARGUMENT:
            return "invalid argument";
        case GEOMOPS_ERROR_OUT_OF_MEMORY:
            return "out of memory";
        case GEOMOPS_ERROR_OVERFLOW:
            return "a count does not fit its type";
        case GEOMOPS_ERROR_UNSUPPORTED:
            return "unsupported";
        case GEOMOPS_ERROR_NO_DEVICE:
            return "no usable CUDA device";
        case GEOMOPS_ERROR_DEVICE:
            return "CUDA error";
        case GEOMOPS_ERROR_STRUCT_SIZE:
            return "unknown struct size";
        case GEOMOPS_ERROR_INTERNAL:
            return "internal error";
        case GEOMOPS_ERROR_INTERRUPTED:
            return "interrupted";
    }
    return "unknown status";
}

static const char* cuda_message(void) {
#if defined(GEOMOPS_CAPI_CUDA)
    return gm_cuda_last_error();
#else
    return "";
#endif
}

geomops_status gm_kernel(int gm_status, const char* what) {
    const char* why = cuda_message();
    switch (gm_status) {
        case GM_OK:
            return GEOMOPS_OK;
        case GM_ERR_NOMEM: {
            const double host_bytes = gm_host_nomem_take();
            if (host_bytes > 0)
                return gm_fail(GEOMOPS_ERROR_OUT_OF_MEMORY,
                               "out of memory in %s: could not allocate %.0f bytes of host memory", what,
                               host_bytes);
            return gm_fail(GEOMOPS_ERROR_OUT_OF_MEMORY, "out of memory in %s%s%s", what, *why ? ": " : "",
                           why);
        }
        case GM_ERR_INTERRUPTED:
            return gm_fail(GEOMOPS_ERROR_INTERRUPTED,
                           "%s was interrupted (the interrupt handler asked it to stop)", what);
        case GM_ERR_OVERFLOW:
            return gm_fail(GEOMOPS_ERROR_OVERFLOW,
                           "%s: a count does not fit the index type (more than 2^31 - 1 entries: use "
                           "GEOMOPS_INT64 indices)",
                           what);
        case GM_ERR_UNSUPPORTED:
            return gm_fail(GEOMOPS_ERROR_UNSUPPORTED, "%s does not support these options%s%s", what,
                           *why ? ": " : "", why);
        case GM_ERR_NO_DEVICE:
            return gm_fail(GEOMOPS_ERROR_NO_DEVICE, "%s: %s", what, *why ? why : "no usable CUDA device");
        case GM_ERR_DEVICE:
            return gm_fail(GEOMOPS_ERROR_DEVICE, "%s: %s", what, *why ? why : "CUDA error");
        default:
            return gm_fail(GEOMOPS_ERROR_INTERNAL,
                           "the %s kernel refused arguments that passed validation (status %d): a bug in "
                           "geomops, please report it",
                           what, gm_status);
    }
}

GEOMOPS_API void geomops_set_interrupt_handler(geomops_interrupt_handler handler) {
    gm_interrupt_set_handler(handler);
}

GEOMOPS_API geomops_status geomops_set_allocator(const geomops_allocator* allocator) {
    gm_enter("geomops_set_allocator");
    if (!allocator) {
        gm_host_set_allocator(NULL);
        return GEOMOPS_OK;
    }
    geomops_allocator a = GEOMOPS_ALLOCATOR_INIT;
    GM_TRY(GM_READ(&a, allocator, "allocator", geomops_allocator));
    if (!a.alloc || !a.free)
        return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT,
                       "allocator->%s is NULL: set both alloc and free (or pass NULL to restore malloc)",
                       a.alloc ? "free" : "alloc");
    const gm_host_allocator h = {a.alloc, a.free, a.ctx};
    gm_host_set_allocator(&h);
    return GEOMOPS_OK;
}

GEOMOPS_API geomops_status geomops_release_cuda_cache(void) {
    gm_enter("geomops_release_cuda_cache");
#if defined(GEOMOPS_CAPI_CUDA)
    return gm_kernel(gm_cuda_release_cached(), "the release of cached device memory");
#else
    return GEOMOPS_OK;
#endif
}

/* ---- versioned structs ------------------------------------------------------------------------ */

geomops_status gm_read_struct(void* dst, const size_t* sizes, int n, const void* src, const char* name,
                              const char* type) {
    if (!src) return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "%s is NULL", name);
    size_t size;
    memcpy(&size, src, sizeof size);
    const size_t oldest = sizes[0], full = sizes[n - 1];
    if (size < oldest)
        return gm_fail(GEOMOPS_ERROR_STRUCT_SIZE,
                       "%s->size is %zu, smaller than any %s of a released geomops.h (%zu bytes): initialise "
                       "it with its GEOMOPS_..._INIT macro",
                       name, size, type, oldest);
    if (size > full)
        return gm_fail(GEOMOPS_ERROR_STRUCT_SIZE,
                       "%s->size is %zu, larger than the %s this library knows (%zu bytes): the program was "
                       "built with a newer geomops.h than this library (version %s)",
                       name, size, type, full, GEOMOPS_VERSION_STRING);
    int known = 0;
    for (int i = 0; i < n; ++i) known |= size == sizes[i];
    if (!known) /* between two releases: a field would be copied in part */
        return gm_fail(GEOMOPS_ERROR_STRUCT_SIZE,
                       "%s->size is %zu, not the size of a %s of any released geomops.h (%zu to %zu bytes): "
                       "initialise it with its GEOMOPS_..._INIT macro",
                       name, size, type, oldest, full);
    memcpy(dst, src, size);
    return GEOMOPS_OK;
}

/* ---- execution context ------------------------------------------------------------------------ */

static int default_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static geomops_status cuda_enter(gm_ctx* c) {
#if defined(GEOMOPS_CAPI_CUDA)
    int count = 0;
    int st = gm_cuda_device_count(&count);
    if (st != GM_OK) return gm_kernel(st, "the CUDA device query");
    if (c->device >= count)
        return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "exec->device is %d, but there %s %d CUDA device%s",
                       c->device, count == 1 ? "is" : "are", count, count == 1 ? "" : "s");
    int prev = 0;
    st = gm_cuda_get_device(&prev);
    if (st != GM_OK) return gm_kernel(st, "cudaGetDevice");
    if (prev != c->device) {
        st = gm_cuda_set_device(c->device);
        if (st != GM_OK) return gm_kernel(st, "cudaSetDevice");
        c->prev_device = prev;
    }
    return GEOMOPS_OK;
#else
    (void)c;
    return gm_fail(GEOMOPS_ERROR_UNSUPPORTED,
                   "exec->device_type is GEOMOPS_DEVICE_CUDA, but this libgeomops was built without CUDA "
                   "(configure it with -DGEOMOPS_WITH_CUDA=ON)");
#endif
}

geomops_status gm_begin(gm_ctx* c, const geomops_exec* exec) {
    geomops_exec e = GEOMOPS_EXEC_INIT;
    memset(c, 0, sizeof *c);
    c->prev_device = -1;
    if (exec) GM_TRY(GM_READ(&e, exec, "exec", geomops_exec));
    GM_TRY(
        gm_chk_enum(e.device_type, 0, 1, "exec->device_type", "GEOMOPS_DEVICE_CPU or GEOMOPS_DEVICE_CUDA"));
    if (e.num_threads < 0)
        return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT,
                       "exec->num_threads must be >= 0 (0: all cores), got %d", e.num_threads);
    if (e.device < 0)
        return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "exec->device must be >= 0, got %d", e.device);
    c->cuda = e.device_type == GEOMOPS_DEVICE_CUDA;
    c->num_threads = e.num_threads > 0 ? e.num_threads : default_threads();
    c->device = e.device;
    c->stream = e.stream;
    if (c->cuda) return cuda_enter(c);
    return GEOMOPS_OK;
}

geomops_status gm_begin_saved(gm_ctx* c, const gm_ctx* saved) {
    *c = *saved;
    c->prev_device = -1;
    if (c->cuda) return cuda_enter(c);
    return GEOMOPS_OK;
}

void gm_end(gm_ctx* c) {
#if defined(GEOMOPS_CAPI_CUDA)
    if (c->prev_device >= 0) gm_cuda_set_device(c->prev_device);
#endif
    c->prev_device = -1;
}

/* ---- argument checks -------------------------------------------------------------------------- */

geomops_status gm_chk_count(int64_t v, const char* name) {
    if (v < 0)
        return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "%s must be >= 0, got %lld", name, (long long)v);
    return GEOMOPS_OK;
}

geomops_status gm_chk_min(int64_t v, int64_t minimum, const char* name) {
    if (v < minimum)
        return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "%s must be >= %lld, got %lld", name,
                       (long long)minimum, (long long)v);
    return GEOMOPS_OK;
}

geomops_status gm_chk_flag(int v, const char* name) {
    if (v != 0 && v != 1)
        return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "%s must be 0 or 1, got %d", name, v);
    return GEOMOPS_OK;
}

geomops_status gm_chk_enum(int v, int lo, int hi, const char* name, const char* valid) {
    if (v < lo || v > hi)
        return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "%s must be %s, got %d", name, valid, v);
    return GEOMOPS_OK;
}

geomops_status gm_chk_float_type(int dtype, const char* name, int* gm_dtype) {
    if (dtype == GEOMOPS_FLOAT32) {
        *gm_dtype = GM_FLOAT32;
    } else if (dtype == GEOMOPS_FLOAT64) {
        *gm_dtype = GM_FLOAT64;
    } else {
        return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT,
                       "%s must be GEOMOPS_FLOAT32 or GEOMOPS_FLOAT64, got %d", name, dtype);
    }
    return GEOMOPS_OK;
}

geomops_status gm_chk_index_type(int dtype, const char* name, int* is64) {
    if (dtype != GEOMOPS_INT32 && dtype != GEOMOPS_INT64)
        return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "%s must be GEOMOPS_INT32 or GEOMOPS_INT64, got %d",
                       name, dtype);
    *is64 = dtype == GEOMOPS_INT64;
    return GEOMOPS_OK;
}

geomops_status gm_chk_real(double v, const char* name, int positive, int nonnegative) {
    if (!isfinite(v)) return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "%s must be finite, got %g", name, v);
    if (positive && !(v > 0))
        return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "%s must be > 0, got %g", name, v);
    if (nonnegative && v < 0)
        return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "%s must be >= 0, got %g", name, v);
    return GEOMOPS_OK;
}

static geomops_status chk_device_pointer(const gm_ctx* c, const void* p, const char* name) {
#if defined(GEOMOPS_CAPI_CUDA)
    if (!c->cuda || !p) return GEOMOPS_OK;
    int dev = 0, is_device = 0;
    int st = gm_cuda_pointer_device(p, &dev, &is_device);
    if (st != GM_OK) return gm_kernel(st, "the pointer query");
    if (!is_device)
        return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT,
                       "%s is host memory, but exec runs on CUDA device %d: pass device (or managed) memory",
                       name, c->device);
    if (dev != c->device)
        return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT,
                       "%s is memory of CUDA device %d, but exec->device is %d", name, dev, c->device);
#else
    (void)c;
    (void)p;
    (void)name;
#endif
    return GEOMOPS_OK;
}

geomops_status gm_chk_array(const gm_ctx* c, const void* p, int64_t n, const char* name) {
    if (!p && n != 0)
        return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "%s is NULL (it has %lld elements)", name,
                       (long long)n);
    return chk_device_pointer(c, p, name);
}

geomops_status gm_chk_optional(const gm_ctx* c, const void* p, const char* name) {
    return chk_device_pointer(c, p, name);
}

/* The CPU summary: the same fields as gm_array_stats_cuda. Each thread summarises one chunk
 * (pairs across a chunk's end included), then the chunks are merged (min, max and counts do not
 * depend on the order). */
typedef struct stats_acc {
    int64_t ilo, ihi, bad, dec, noninc;
    double flo, fhi;
} stats_acc;

#define GM_STATS_RANGE(T, IS_FLOAT)                                                                          \
    {                                                                                                        \
        const T* v = (const T*)a;                                                                            \
        for (int64_t i = lo; i < hi; ++i) {                                                                  \
            if (IS_FLOAT) {                                                                                  \
                const double x = (double)v[i];                                                               \
                if (isfinite(x)) {                                                                           \
                    acc.flo = x < acc.flo ? x : acc.flo;                                                     \
                    acc.fhi = x > acc.fhi ? x : acc.fhi;                                                     \
                } else {                                                                                     \
                    acc.bad += 1;                                                                            \
                }                                                                                            \
            } else {                                                                                         \
                const int64_t x = (int64_t)v[i];                                                             \
                acc.ilo = x < acc.ilo ? x : acc.ilo;                                                         \
                acc.ihi = x > acc.ihi ? x : acc.ihi;                                                         \
            }                                                                                                \
            if (i + 1 < n) {                                                                                 \
                acc.dec += v[i + 1] < v[i];                                                                  \
                acc.noninc += v[i + 1] <= v[i];                                                              \
            }                                                                                                \
        }                                                                                                    \
    }

static void cpu_stats(const void* a, int gm_dt, int64_t n, int nt, gm_array_stats* out) {
    const stats_acc empty = {INT64_MAX, INT64_MIN, 0, 0, 0, INFINITY, -INFINITY};
    stats_acc total = empty;
#pragma omp parallel num_threads(nt) if (n > 65536)
    {
#ifdef _OPENMP
        const int64_t t = omp_get_thread_num(), threads = omp_get_num_threads();
#else
        const int64_t t = 0, threads = 1;
#endif
        const int64_t chunk = (n + threads - 1) / threads;
        const int64_t lo = t * chunk < n ? t * chunk : n, hi = lo + chunk < n ? lo + chunk : n;
        stats_acc acc = empty;
        switch (gm_dt) {
            case GM_DT_INT32:
                GM_STATS_RANGE(int32_t, 0)
                break;
            case GM_DT_INT64:
                GM_STATS_RANGE(int64_t, 0)
                break;
            case GM_DT_FLOAT32:
                GM_STATS_RANGE(float, 1)
                break;
            default:
                GM_STATS_RANGE(double, 1)
                break;
        }
#pragma omp critical(gm_capi_stats)
        {
            total.ilo = acc.ilo < total.ilo ? acc.ilo : total.ilo;
            total.ihi = acc.ihi > total.ihi ? acc.ihi : total.ihi;
            total.flo = acc.flo < total.flo ? acc.flo : total.flo;
            total.fhi = acc.fhi > total.fhi ? acc.fhi : total.fhi;
            total.bad += acc.bad;
            total.dec += acc.dec;
            total.noninc += acc.noninc;
        }
    }
    out->imin = total.ilo;
    out->imax = total.ihi;
    out->fmin = total.flo;
    out->fmax = total.fhi;
    out->nonfinite = total.bad;
    out->decreasing = total.dec;
    out->nonincreasing = total.noninc;
    const size_t item = gm_dt == GM_DT_INT32 || gm_dt == GM_DT_FLOAT32 ? 4 : 8;
    memcpy(&out->first, a, item);
    memcpy(&out->last, (const char*)a + (size_t)(n - 1) * item, item);
}

geomops_status gm_stats(const gm_ctx* c, const void* a, int gm_dt, int64_t n, gm_array_stats* out) {
    memset(out, 0, sizeof *out);
    if (c->cuda)
        return gm_kernel(GM_CUDA_ONLY(gm_array_stats_cuda(a, gm_dt, n, out, c->stream)), "array checks");
    cpu_stats(a, gm_dt, n, c->num_threads, out);
    return GEOMOPS_OK;
}

geomops_status gm_chk_row_splits(const gm_ctx* c, const int64_t* rs, int64_t rows, int64_t total,
                                 const char* name, const char* total_name) {
    GM_TRY(gm_chk_array(c, rs, rows + 1, name));
    gm_array_stats s;
    GM_TRY(gm_stats(c, rs, GM_DT_INT64, rows + 1, &s));
    int64_t first, last;
    memcpy(&first, &s.first, sizeof first);
    memcpy(&last, &s.last, sizeof last);
    if (first != 0)
        return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "%s must start with 0, got %lld", name,
                       (long long)first);
    if (s.decreasing)
        return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "%s must be non-decreasing (monotone row splits)",
                       name);
    if (total >= 0 && last != total)
        return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT,
                       "%s must end with %s = %lld (the length of the array it splits), got %lld", name,
                       total_name, (long long)total, (long long)last);
    return GEOMOPS_OK;
}

geomops_status gm_chk_indices(const gm_ctx* c, const void* idx, int is64, int64_t n, int64_t limit,
                              const char* name, const char* limit_name) {
    if (n == 0) return GEOMOPS_OK;
    gm_array_stats s;
    GM_TRY(gm_stats(c, idx, is64 ? GM_DT_INT64 : GM_DT_INT32, n, &s));
    if (s.imin < 0 || s.imax >= limit)
        return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "%s contains %lld, outside [0, %lld) (%s)", name,
                       (long long)(s.imin < 0 ? s.imin : s.imax), (long long)limit, limit_name);
    return GEOMOPS_OK;
}

geomops_status gm_chk_finite(const gm_ctx* c, const void* a, int gm_dtype, int64_t n, int lower,
                             const char* what) {
    if (n == 0) return GEOMOPS_OK;
    gm_array_stats s;
    GM_TRY(gm_stats(c, a, gm_dtype == GM_FLOAT64 ? GM_DT_FLOAT64 : GM_DT_FLOAT32, n, &s));
    int ok = s.nonfinite == 0;
    if (lower == GM_POSITIVE) ok = ok && s.fmin > 0;
    if (lower == GM_NONNEGATIVE) ok = ok && s.fmin >= 0;
    if (!ok) return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "%s", what);
    return GEOMOPS_OK;
}

/* ---- memory ----------------------------------------------------------------------------------- */

void* gm_host_tmp(int64_t count, size_t elem, const char* what, geomops_status* st) {
    void* p = gm_host_alloc(count, elem);
    *st = GEOMOPS_OK;
    if (!p)
        *st = gm_fail(GEOMOPS_ERROR_OUT_OF_MEMORY, "could not allocate %.0f bytes of host memory for %s",
                      gm_host_nomem_take(), what);
    return p;
}

void* gm_alloc(const gm_ctx* c, size_t bytes, const char* what, geomops_status* st) {
    void* p = NULL;
    *st = GEOMOPS_OK;
    if (c->cuda) {
        if (bytes == 0) return NULL;
        int s = GM_CUDA_ONLY(gm_cuda_malloc(&p, bytes, c->device));
        if (s != GM_OK) {
            *st = gm_kernel(s, what);
            return NULL;
        }
        return p;
    }
    if (bytes > INT64_MAX) {
        *st = gm_fail(GEOMOPS_ERROR_OUT_OF_MEMORY, "could not allocate %zu bytes of host memory for %s",
                      bytes, what);
        return NULL;
    }
    return gm_host_tmp((int64_t)bytes, 1, what, st);
}

void gm_free(const gm_ctx* c, void* p, size_t bytes) {
    if (!p) return;
    if (c->cuda) {
        (void)GM_CUDA_ONLY(gm_cuda_free(p, bytes, c->device));
        return;
    }
    (void)bytes;
    gm_host_free(p);
}

geomops_status gm_to_host(const gm_ctx* c, void* dst, const void* src, size_t bytes) {
    if (bytes == 0) return GEOMOPS_OK;
    if (c->cuda)
        return gm_kernel(GM_CUDA_ONLY(gm_cuda_memcpy(dst, src, bytes, c->stream)), "a copy to the host");
    memcpy(dst, src, bytes);
    return GEOMOPS_OK;
}

geomops_status gm_from_host(const gm_ctx* c, void* dst, const void* src, size_t bytes) {
    if (bytes == 0) return GEOMOPS_OK;
    if (c->cuda)
        return gm_kernel(GM_CUDA_ONLY(gm_cuda_memcpy(dst, src, bytes, c->stream)), "a copy to the device");
    memcpy(dst, src, bytes);
    return GEOMOPS_OK;
}

geomops_status gm_zero(const gm_ctx* c, void* p, size_t bytes) {
    if (bytes == 0) return GEOMOPS_OK;
    if (c->cuda) return gm_kernel(GM_CUDA_ONLY(gm_cuda_memset(p, 0, bytes, c->stream)), "cudaMemsetAsync");
    memset(p, 0, bytes);
    return GEOMOPS_OK;
}

geomops_status gm_sync(const gm_ctx* c) {
    if (!c->cuda) return GEOMOPS_OK;
    return gm_kernel(GM_CUDA_ONLY(gm_cuda_stream_synchronize(c->stream)), "cudaStreamSynchronize");
}

geomops_status gm_cast(const gm_ctx* c, int src_dtype, const void* src, int dst_dtype, void* dst, int64_t n) {
    if (n == 0) return GEOMOPS_OK;
    if (c->cuda)
        return gm_kernel(GM_CUDA_ONLY(gm_cconv_cast_cuda(src_dtype, src, dst_dtype, dst, n, c->stream)),
                         "the dtype conversion");
    return gm_kernel(gm_cconv_cast_cpu(src_dtype, src, dst_dtype, dst, n, c->num_threads),
                     "the dtype conversion");
}

void gm_arena_init(gm_arena* a, const gm_ctx* c) {
    a->c = c;
    a->n = 0;
}

void* gm_arena_alloc(gm_arena* a, int64_t count, size_t elem, const char* what, geomops_status* st) {
    if (count < 0 || (count > 0 && (uint64_t)count > SIZE_MAX / elem)) {
        *st = gm_fail(GEOMOPS_ERROR_OUT_OF_MEMORY, "%s: %lld elements of %zu bytes do not fit in memory",
                      what, (long long)count, elem);
        return NULL;
    }
    if (a->n == GM_ARENA_MAX) {
        *st = gm_kernel(GM_ERR_INVALID, what); /* more temporaries than any call needs: a bug */
        return NULL;
    }
    void* p = gm_alloc(a->c, (size_t)count * elem, what, st);
    if (*st == GEOMOPS_OK) {
        a->p[a->n] = p;
        a->bytes[a->n++] = (size_t)count * elem;
    }
    return p;
}

geomops_status gm_arena_free(gm_arena* a, geomops_status status) {
    if (a->n == 0) return status;
    geomops_status synced = gm_sync(a->c);
    for (int i = 0; i < a->n; ++i) gm_free(a->c, a->p[i], a->bytes[i]);
    a->n = 0;
    return status != GEOMOPS_OK ? status : synced;
}

static const double g_empty[4];

const void* gm_nz(const gm_ctx* c, const void* p) {
    return p || c->cuda ? p : (const void*)g_empty;
}

int64_t gm_mul(int64_t a, int64_t b) {
    if (a < 0 || b < 0) return -1;
    if (a != 0 && b > INT64_MAX / a) return -1;
    return a * b;
}
