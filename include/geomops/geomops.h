/* geomops.h -- the C API of libgeomops (docs/c_api.md).
 *
 * Continuous convolutions on point clouds, neighbor searches and render-and-compare pose
 * gradients for C and C++ programs without Python: the kernels of the geomops Python package
 * behind a stable interface. Semantics, defaults and validation are those of the Python API
 * (geomops.ops, geomops.pose); where the Python name of an argument exists, the C field has it.
 *
 * This header is C89, C99 and C++ (no other geomops header is needed or installed).
 *
 * Conventions
 * - Every function that does work returns a geomops_status; GEOMOPS_OK is 0. On failure
 *   geomops_last_error() says why and names the bad argument. The queries geomops_version(),
 *   geomops_version_string(), geomops_has_cuda(), geomops_last_error() and
 *   geomops_status_string() return their value directly.
 * - Memory is the caller's: every output is a buffer the caller allocated (temporaries come
 *   from malloc or the allocator of geomops_set_allocator); searches, whose
 *   output size depends on the data, run in two phases (count, then fill). Arrays are dense and
 *   row-major (C order) with the shapes given below; counts are int64_t.
 * - Structs whose first field is `size_t size` are versioned: initialise them with their
 *   GEOMOPS_*_INIT macro (it sets `size` and the defaults) and then set the fields you need.
 *   The library accepts the sizes of every released version of a struct (newer fields take
 *   their defaults) and rejects a larger, unknown size with GEOMOPS_ERROR_STRUCT_SIZE.
 * - `exec` says where and how to run (geomops_exec); NULL runs on the CPU with all cores.
 *   With GEOMOPS_DEVICE_CUDA every array pointer is a device pointer of exec->device, except
 *   the tables of structs (mesh instances, pose objects) and the 16 doubles of a projection
 *   matrix, which are host memory.
 * - Thread safety: every function may be called from several threads at once (no global
 *   state besides the CPU rasterizer's scratch cache, which is safe for concurrent calls, and
 *   the allocator of geomops_set_allocator, whose rule is given there).
 *   A search handle must not be used by two threads at the same time.
 * - The library never aborts, exits or writes to stdout/stderr. */
#ifndef GEOMOPS_GEOMOPS_H
#define GEOMOPS_GEOMOPS_H

#include <stddef.h>
#include <stdint.h>

/* ---- version ------------------------------------------------------------------------------ */

#define GEOMOPS_VERSION_MAJOR  0
#define GEOMOPS_VERSION_MINOR  2
#define GEOMOPS_VERSION_PATCH  0
#define GEOMOPS_VERSION_STRING "0.2.0"
/* One number per version, ordered like the versions: 0.2.0 -> 200, 1.2.3 -> 10203.
 * 0.2: the position and extent gradients of the backward functions, geomops_set_allocator. */
#define GEOMOPS_MAKE_VERSION(major, minor, patch) ((major) * 10000 + (minor) * 100 + (patch))
#define GEOMOPS_VERSION                                                                                      \
    GEOMOPS_MAKE_VERSION(GEOMOPS_VERSION_MAJOR, GEOMOPS_VERSION_MINOR, GEOMOPS_VERSION_PATCH)

#if defined(_WIN32) && defined(GEOMOPS_BUILDING_LIBRARY)
#define GEOMOPS_API __declspec(dllexport)
#elif defined(_WIN32)
#define GEOMOPS_API __declspec(dllimport)
#elif defined(__GNUC__)
#define GEOMOPS_API __attribute__((visibility("default")))
#else
#define GEOMOPS_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status, errors, element types, where to run --------------------------------------------- */

typedef enum geomops_status {
    GEOMOPS_OK = 0,
    GEOMOPS_ERROR_INVALID_ARGUMENT = 1, /* a bad argument (Python: ValueError / TypeError) */
    GEOMOPS_ERROR_OUT_OF_MEMORY = 2,    /* a host or device allocation failed */
    GEOMOPS_ERROR_OVERFLOW = 3,         /* a count does not fit the index type (use int64 indices) */
    GEOMOPS_ERROR_UNSUPPORTED = 4,      /* e.g. CUDA asked of a library built without it */
    GEOMOPS_ERROR_NO_DEVICE = 5,        /* no usable CUDA driver or device */
    GEOMOPS_ERROR_DEVICE = 6,           /* any other CUDA runtime error */
    GEOMOPS_ERROR_STRUCT_SIZE = 7,      /* a versioned struct with an unknown `size` */
    GEOMOPS_ERROR_INTERNAL = 8,         /* a kernel refused validated arguments: a bug, please report */
    GEOMOPS_ERROR_INTERRUPTED = 9       /* the interrupt handler asked the call to stop */
} geomops_status;

/* Element types. GEOMOPS_DTYPE_DEFAULT is "not set": accepted only where a field says so. */
typedef enum geomops_dtype {
    GEOMOPS_DTYPE_DEFAULT = 0,
    GEOMOPS_FLOAT32 = 1,
    GEOMOPS_FLOAT64 = 2,
    GEOMOPS_INT32 = 3,
    GEOMOPS_INT64 = 4,
    GEOMOPS_UINT8 = 5,
    GEOMOPS_INT16 = 6
} geomops_dtype;

typedef enum geomops_device_type { GEOMOPS_DEVICE_CPU = 0, GEOMOPS_DEVICE_CUDA = 1 } geomops_device_type;

/* Where and how a call runs. */
typedef struct geomops_exec {
    size_t size;
    int device_type; /* GEOMOPS_DEVICE_CPU (default) or GEOMOPS_DEVICE_CUDA */
    int num_threads; /* CPU: OpenMP threads; 0 (default): all cores (OMP_NUM_THREADS when set).
                        Results are bitwise identical for any value. Ignored on CUDA. */
    int device;      /* CUDA: device ordinal (default 0). The calling thread's current device is
                        restored before the call returns. */
    void* stream;    /* CUDA: a cudaStream_t, or NULL (default): the legacy default stream. Work
                        is ordered on it; see docs/c_api.md for which calls wait for it. */
} geomops_exec;
#define GEOMOPS_EXEC_INIT {sizeof(geomops_exec), GEOMOPS_DEVICE_CPU, 0, 0, NULL}

/* GEOMOPS_VERSION of the library at run time, and its version text ("0.2.0"). */
GEOMOPS_API int geomops_version(void);
GEOMOPS_API const char* geomops_version_string(void);
/* 1 when the library was built with the CUDA backend, else 0. */
GEOMOPS_API int geomops_has_cuda(void);
/* Why the last call of the calling thread failed ("" after a successful call). Never NULL; the
 * text stays valid until the thread's next geomops call. */
GEOMOPS_API const char* geomops_last_error(void);
/* A fixed text for a status ("invalid argument", ...); never NULL. */
GEOMOPS_API const char* geomops_status_string(geomops_status status);
/* Frees the device memory that CUDA calls keep for reuse (blocks of the temporaries the C API
 * allocates, cached by size, up to 2 GiB in all). Nothing to do without CUDA. */
GEOMOPS_API geomops_status geomops_release_cuda_cache(void);

/* Interrupting long calls. A handler, when one is set, is called by long-running calls between
 * chunks of their work (at most every 50 ms, on the thread that made the call, never on a
 * worker thread); when it returns nonzero the call frees its temporaries and returns
 * GEOMOPS_ERROR_INTERRUPTED, its outputs undefined. A typical handler reads a flag that a
 * SIGINT handler set. NULL (the default) removes it: calls then run to the end. Process-wide. */
typedef int (*geomops_interrupt_handler)(void);
GEOMOPS_API void geomops_set_interrupt_handler(geomops_interrupt_handler handler);

/* Host memory (since 0.2). Every host temporary the library allocates (the C API's own and
 * the CPU kernels'; the rasterizer's scratch cache and search handles included) comes from the
 * allocator set here, malloc / free by default. Device memory on CUDA does not (stream-ordered
 * cudaMallocAsync and the library's cache of device blocks).
 * - alloc(ctx, bytes, alignment): `bytes` bytes aligned to `alignment` (a power of two, at most
 *   64; 16 in this version), or NULL: the call then frees what it holds and returns
 *   GEOMOPS_ERROR_OUT_OF_MEMORY with the bytes in the message. It may be called from the
 *   library's worker threads, concurrently.
 * - free(ctx, p, bytes): gives back a block of alloc with the bytes alloc was asked for.
 * Threads: geomops_set_allocator may be called at any time from any thread. Each allocation
 * reads the allocator once, atomically, and every block goes back to the allocator that gave
 * it, so an allocator (its functions and ctx) must stay usable until all its blocks are back:
 * when every call that started before it was replaced has returned, every search handle created
 * then is freed, and geomops_release_render_cache() has run (the rasterizer's cache is the only
 * memory kept between calls). Simplest: set it once, before the first call.
 * geomops_set_allocator(NULL) restores malloc / free; otherwise alloc and free must both be set
 * (GEOMOPS_ALLOCATOR_INIT sets size, then fill in the functions and ctx). */
typedef struct geomops_allocator {
    size_t size;
    void* (*alloc)(void* ctx, size_t bytes, size_t alignment);
    void (*free)(void* ctx, void* p, size_t bytes);
    void* ctx;
} geomops_allocator;
#define GEOMOPS_ALLOCATOR_INIT {sizeof(geomops_allocator), NULL, NULL, NULL}
GEOMOPS_API geomops_status geomops_set_allocator(const geomops_allocator* allocator);

/* ---- continuous convolution ------------------------------------------------------------------ *
 * Open3D-ML's continuous_conv family with the semantics of geomops.ops (docs/cconv.md): for
 * output point i with neighbor entries n (input point j = neighbors_index[n]),
 *   out[i] = (1/psi_i) sum_n a_n sum_corners w_c F[s_c]^T inp_features[j],
 *   a_n = inp_importance[j] * neighbors_importance[n],
 * psi_i the sum of row i's neighbors_importance (or its neighbor count) with normalize and
 * nonzero, else 1. Results are bitwise those of the Python API for the same inputs. */

typedef enum geomops_coordinate_mapping {
    GEOMOPS_MAP_BALL_TO_CUBE_RADIAL = 0,
    GEOMOPS_MAP_BALL_TO_CUBE_VOLUME_PRESERVING = 1,
    GEOMOPS_MAP_IDENTITY = 2
} geomops_coordinate_mapping;

typedef enum geomops_interpolation {
    GEOMOPS_INTERP_LINEAR = 0,
    GEOMOPS_INTERP_LINEAR_BORDER = 1,
    GEOMOPS_INTERP_NEAREST_NEIGHBOR = 2
} geomops_interpolation;

/* The keyword options of every continuous-convolution function (NULL: all defaults). */
typedef struct geomops_cconv_options {
    size_t size;
    int align_corners;       /* 1 (default): outer filter cell centres on the extent's boundary
                                (offset ignored); 0: the cells tile the extent */
    int coordinate_mapping;  /* geomops_coordinate_mapping; default BALL_TO_CUBE_RADIAL */
    int interpolation;       /* geomops_interpolation; default LINEAR */
    int normalize;           /* 0 (default) or 1: divide each row by its importance sum / count */
    int64_t max_temp_mem_mb; /* bound on temporary memory in MiB (default 64; a small minimum is
                                always used). Results do not depend on it. */
    int output_type;         /* dtype of the outputs: GEOMOPS_DTYPE_DEFAULT (the inputs' dtype,
                                default), GEOMOPS_FLOAT32 or GEOMOPS_FLOAT64 */
    int allow_tf32;          /* CUDA, float32: the GEMMs may use TF32 (default 0; ignored on CPU) */
} geomops_cconv_options;
#define GEOMOPS_CCONV_OPTIONS_INIT                                                                           \
    {sizeof(geomops_cconv_options), 1, GEOMOPS_MAP_BALL_TO_CUBE_RADIAL, GEOMOPS_INTERP_LINEAR, 0, 64,        \
     GEOMOPS_DTYPE_DEFAULT,         0}

/* Inputs of continuous_conv and its gradients (Python's positional arguments). Optional arrays
 * are NULL when absent; a required array may be NULL only when it has no elements. */
typedef struct geomops_cconv_args {
    size_t size;
    int dtype;      /* GEOMOPS_FLOAT32 (default) or GEOMOPS_FLOAT64: every float array below */
    int index_type; /* GEOMOPS_INT32 (default) or GEOMOPS_INT64: neighbors_index */
    int64_t filter_depth, filter_height, filter_width; /* D, H, W (along z, y, x), >= 1 */
    int64_t in_channels, out_channels;                 /* Cin, Cout, >= 1 */
    int64_t num_out;                                   /* No: output points */
    int64_t num_inp;                                   /* Ni: input points */
    int64_t num_neighbors;                             /* E: neighbor entries */
    const void* filters;                               /* [D, H, W, Cin, Cout] */
    const void* out_positions;                         /* [No, 3] */
    const void* extents;                               /* [extents_rows, extents_cols], finite and > 0 */
    int64_t extents_rows;                              /* 1 (shared) or No (per output point); default 1 */
    int64_t extents_cols;                              /* 1 (isotropic) or 3 (per axis); default 1 */
    const void* offset;                                /* [3], in filter-cell units */
    const void* inp_positions;                         /* [Ni, 3] */
    const void* inp_features;                          /* [Ni, Cin] */
    const void* inp_importance;                        /* [Ni] or NULL */
    const void* neighbors_index;                       /* [E], values in [0, Ni) */
    const void* neighbors_importance;                  /* [E] or NULL */
    const int64_t* neighbors_row_splits;               /* [No + 1]: 0, non-decreasing, ends with E */
} geomops_cconv_args;
#define GEOMOPS_CCONV_ARGS_INIT                                                                              \
    {sizeof(geomops_cconv_args),                                                                             \
     GEOMOPS_FLOAT32,                                                                                        \
     GEOMOPS_INT32,                                                                                          \
     1,                                                                                                      \
     1,                                                                                                      \
     1,                                                                                                      \
     1,                                                                                                      \
     1,                                                                                                      \
     0,                                                                                                      \
     0,                                                                                                      \
     0,                                                                                                      \
     NULL,                                                                                                   \
     NULL,                                                                                                   \
     NULL,                                                                                                   \
     1,                                                                                                      \
     1,                                                                                                      \
     NULL,                                                                                                   \
     NULL,                                                                                                   \
     NULL,                                                                                                   \
     NULL,                                                                                                   \
     NULL,                                                                                                   \
     NULL,                                                                                                   \
     NULL}

/* Inputs of continuous_conv_transpose and its gradients. Extents are per INPUT point. */
typedef struct geomops_cconv_transpose_args {
    size_t size;
    int dtype;      /* GEOMOPS_FLOAT32 (default) or GEOMOPS_FLOAT64 */
    int index_type; /* GEOMOPS_INT32 (default) or GEOMOPS_INT64: both index arrays */
    int64_t filter_depth, filter_height, filter_width;
    int64_t in_channels, out_channels;
    int64_t num_out, num_inp, num_neighbors;
    const void* filters;                      /* [D, H, W, Cin, Cout] */
    const void* out_positions;                /* [No, 3] */
    const void* out_importance;               /* [No] or NULL */
    const void* extents;                      /* [extents_rows, extents_cols] */
    int64_t extents_rows;                     /* 1 or Ni */
    int64_t extents_cols;                     /* 1 or 3 */
    const void* offset;                       /* [3] */
    const void* inp_positions;                /* [Ni, 3] */
    const void* inp_features;                 /* [Ni, Cin] */
    const void* inp_neighbors_index;          /* [E], values in [0, No); or NULL (only checked;
                                                     not read by the transpose_backprop_filter) */
    const void* inp_neighbors_importance_sum; /* [Ni] or NULL: given exactly when
                                                     neighbors_importance is */
    const int64_t* inp_neighbors_row_splits;  /* [Ni + 1], ends with E */
    const void* neighbors_index;              /* [E], values in [0, Ni) */
    const void* neighbors_importance;         /* [E] or NULL */
    const int64_t* neighbors_row_splits;      /* [No + 1], ends with E */
} geomops_cconv_transpose_args;
#define GEOMOPS_CCONV_TRANSPOSE_ARGS_INIT                                                                    \
    {sizeof(geomops_cconv_transpose_args),                                                                   \
     GEOMOPS_FLOAT32,                                                                                        \
     GEOMOPS_INT32,                                                                                          \
     1,                                                                                                      \
     1,                                                                                                      \
     1,                                                                                                      \
     1,                                                                                                      \
     1,                                                                                                      \
     0,                                                                                                      \
     0,                                                                                                      \
     0,                                                                                                      \
     NULL,                                                                                                   \
     NULL,                                                                                                   \
     NULL,                                                                                                   \
     NULL,                                                                                                   \
     1,                                                                                                      \
     1,                                                                                                      \
     NULL,                                                                                                   \
     NULL,                                                                                                   \
     NULL,                                                                                                   \
     NULL,                                                                                                   \
     NULL,                                                                                                   \
     NULL,                                                                                                   \
     NULL,                                                                                                   \
     NULL,                                                                                                   \
     NULL}

/* Outputs of the one-call backward functions: each pointer is an output buffer in the output
 * dtype, or NULL (that gradient is not computed): Python's wrt=. An importance gradient may only
 * be asked for when that importance is given (Python returns None there).
 * Since 0.2 the structs end with the gradients w.r.t. inp_positions, out_positions and extents
 * (docs/cconv.md, "Gradients w.r.t. positions and extents"). A program built against 0.1 passes
 * the 0.1 size (without these three fields) and keeps working: it gets none of them. */
typedef struct geomops_cconv_gradients {
    size_t size;
    void* filters;              /* [D, H, W, Cin, Cout] */
    void* inp_features;         /* [Ni, Cin] */
    void* inp_importance;       /* [Ni] */
    void* neighbors_importance; /* [E]; includes the derivative through the normaliser */
    /* since 0.2 */
    void* inp_positions; /* [Ni, 3] */
    void* out_positions; /* [No, 3] */
    void* extents;       /* [extents_rows, extents_cols]: the extents' shape as given (an isotropic
                            extent gets the sum over the three axes) */
} geomops_cconv_gradients;
#define GEOMOPS_CCONV_GRADIENTS_INIT                                                                         \
    {sizeof(geomops_cconv_gradients), NULL, NULL, NULL, NULL, NULL, NULL, NULL}

typedef struct geomops_cconv_transpose_gradients {
    size_t size;
    void* filters;                      /* [D, H, W, Cin, Cout] */
    void* inp_features;                 /* [Ni, Cin] */
    void* out_importance;               /* [No] */
    void* neighbors_importance;         /* [E] */
    void* inp_neighbors_importance_sum; /* [Ni] (an independent input, as in Python) */
    /* since 0.2 */
    void* inp_positions; /* [Ni, 3] */
    void* out_positions; /* [No, 3] */
    void* extents;       /* [extents_rows, extents_cols] (per input point here) */
} geomops_cconv_transpose_gradients;
#define GEOMOPS_CCONV_TRANSPOSE_GRADIENTS_INIT                                                               \
    {sizeof(geomops_cconv_transpose_gradients), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL}

/* out_features [No, Cout] = continuous_conv(args). options NULL: defaults. */
GEOMOPS_API geomops_status geomops_continuous_conv(const geomops_exec* exec, const geomops_cconv_args* args,
                                                   const geomops_cconv_options* options, void* out_features);
/* out_features [No, Cout] = continuous_conv_transpose(args). */
GEOMOPS_API geomops_status geomops_continuous_conv_transpose(const geomops_exec* exec,
                                                             const geomops_cconv_transpose_args* args,
                                                             const geomops_cconv_options* options,
                                                             void* out_features);
/* filters_gradient [D, H, W, Cin, Cout] of sum(out * out_features_gradient [No, Cout], args'
 * dtype). args->filters is read for its shape only and may be NULL. Bitwise deterministic. */
GEOMOPS_API geomops_status geomops_continuous_conv_backprop_filter(const geomops_exec* exec,
                                                                   const geomops_cconv_args* args,
                                                                   const geomops_cconv_options* options,
                                                                   const void* out_features_gradient,
                                                                   void* filters_gradient);
GEOMOPS_API geomops_status geomops_continuous_conv_transpose_backprop_filter(
    const geomops_exec* exec, const geomops_cconv_transpose_args* args, const geomops_cconv_options* options,
    const void* out_features_gradient, void* filters_gradient);
/* All gradients of sum(out * out_features_gradient) in one call (Python's
 * continuous_conv_backward / continuous_conv_transpose_backward): the filter gradient, the
 * feature gradient (a transpose convolution over the inverted neighbor list), the importance
 * gradients and (since 0.2) the position and extent gradients. Temporaries are allocated
 * inside (docs/c_api.md); on CUDA the call waits for exec->stream before it returns. */
GEOMOPS_API geomops_status geomops_continuous_conv_backward(const geomops_exec* exec,
                                                            const geomops_cconv_args* args,
                                                            const geomops_cconv_options* options,
                                                            const void* out_features_gradient,
                                                            const geomops_cconv_gradients* gradients);
GEOMOPS_API geomops_status geomops_continuous_conv_transpose_backward(
    const geomops_exec* exec, const geomops_cconv_transpose_args* args, const geomops_cconv_options* options,
    const void* out_features_gradient, const geomops_cconv_transpose_gradients* gradients);

/* Invert a neighbor list: for every point p < num_points, the rows of the input list that
 * contain it, in ascending order of their position in the input list.
 * inp_neighbors_index [num_entries] (index_type INT32/INT64, values in [0, num_points)),
 * inp_neighbors_row_splits [num_rows + 1]; attributes: num_entries rows of attribute_bytes
 * bytes each carried along (any element type), or NULL with attribute_bytes 0.
 * Outputs: out_neighbors_index [num_entries] (index_type: the row of each entry),
 * out_neighbors_row_splits [num_points + 1], out_neighbors_attributes [num_entries rows] or NULL. */
GEOMOPS_API geomops_status geomops_invert_neighbors_list(
    const geomops_exec* exec, int64_t num_points, int index_type, const void* inp_neighbors_index,
    int64_t num_entries, const int64_t* inp_neighbors_row_splits, int64_t num_rows,
    const void* inp_neighbors_attributes, int64_t attribute_bytes, void* out_neighbors_index,
    int64_t* out_neighbors_row_splits, void* out_neighbors_attributes);

/* sums[r] = sum(values[row_splits[r] : row_splits[r+1]]) for r < num_rows; dtype FLOAT32,
 * FLOAT64 (float64 accumulator), INT32 or INT64 (wrapping in the values' type). With
 * num_values 0 nothing is read or written (Python returns an empty array then). */
GEOMOPS_API geomops_status geomops_reduce_subarrays_sum(const geomops_exec* exec, int dtype,
                                                        const void* values, int64_t num_values,
                                                        const int64_t* row_splits, int64_t num_rows,
                                                        void* sums);

/* ---- neighbor search ------------------------------------------------------------------------- *
 * Open3D-compatible semantics (docs/search.md): points [num_points, 3] and queries
 * [num_queries, 3] of one float dtype, finite; batch item b of the queries only sees item b of
 * the points; indices are global; L2 distances are squared, L1 / Linf plain. Row splits are
 * [batch_size + 1] int64 arrays (0, non-decreasing, ending with the point / query count); NULL
 * means one batch item (batch_size must then be 1). */

typedef enum geomops_metric {
    GEOMOPS_METRIC_L1 = 0,
    GEOMOPS_METRIC_L2 = 1,
    GEOMOPS_METRIC_LINF = 2
} geomops_metric;

/* build_spatial_hash_table: Open3D's table (voxel size 2 radius, sizes
 * T_b = min(max(int(factor n_b), 1), max_hash_table_size)), points in ascending index order
 * inside a bin. */
typedef struct geomops_hash_table_args {
    size_t size;
    int dtype; /* GEOMOPS_FLOAT32 (default) or GEOMOPS_FLOAT64 */
    int64_t num_points;
    const void* points;
    int64_t batch_size;               /* default 1 */
    const int64_t* points_row_splits; /* [batch_size + 1] or NULL */
    double radius;                    /* >= 0 */
    double hash_table_size_factor;    /* > 0, default 1/64 */
    int64_t max_hash_table_size;      /* >= 1, default 33554432 */
} geomops_hash_table_args;
#define GEOMOPS_HASH_TABLE_ARGS_INIT                                                                         \
    {sizeof(geomops_hash_table_args), GEOMOPS_FLOAT32, 0, NULL, 1, NULL, 0.0, 0.015625, 33554432}

/* "How big": *num_cells = sum of T_b; hash_table_cell_splits needs num_cells + 1 entries. */
GEOMOPS_API geomops_status geomops_spatial_hash_table_size(const geomops_exec* exec,
                                                           const geomops_hash_table_args* args,
                                                           int64_t* num_cells);
/* hash_table_index [num_points], hash_table_cell_splits [num_cells + 1] and hash_table_splits
 * [batch_size + 1], all int32 (Open3D's 3-tuple). */
GEOMOPS_API geomops_status geomops_build_spatial_hash_table(const geomops_exec* exec,
                                                            const geomops_hash_table_args* args,
                                                            int32_t* hash_table_index,
                                                            int32_t* hash_table_cell_splits,
                                                            int32_t* hash_table_splits);

/* fixed_radius_search: every point with dist <= radius (inclusive). */
typedef struct geomops_fixed_radius_args {
    size_t size;
    int dtype; /* GEOMOPS_FLOAT32 (default) or GEOMOPS_FLOAT64 */
    int64_t num_points;
    const void* points;
    int64_t num_queries;
    const void* queries;
    int64_t batch_size;                /* default 1 */
    const int64_t* points_row_splits;  /* [batch_size + 1] or NULL */
    const int64_t* queries_row_splits; /* [batch_size + 1] or NULL */
    double radius;                     /* >= 0 */
    int index_type;                    /* GEOMOPS_INT32 (default) or GEOMOPS_INT64 */
    int metric;                        /* geomops_metric, default L2 */
    int ignore_query_point;            /* 0 (default) or 1 */
    int return_distances;              /* 0 (default) or 1 */
    int sort;                          /* 0 (default) or 1: each row in ascending index order */
    /* Optional: a table of geomops_build_spatial_hash_table for these points and this radius
     * (all three arrays or none). It is checked, as in Python; a table for another radius or
     * point set is an error. hash_table_num_cells: its cell_splits has num_cells + 1 entries. */
    const int32_t* hash_table_index;
    const int32_t* hash_table_cell_splits;
    const int32_t* hash_table_splits;
    int64_t hash_table_num_cells;
} geomops_fixed_radius_args;
#define GEOMOPS_FIXED_RADIUS_ARGS_INIT                                                                       \
    {sizeof(geomops_fixed_radius_args),                                                                      \
     GEOMOPS_FLOAT32,                                                                                        \
     0,                                                                                                      \
     NULL,                                                                                                   \
     0,                                                                                                      \
     NULL,                                                                                                   \
     1,                                                                                                      \
     NULL,                                                                                                   \
     NULL,                                                                                                   \
     0.0,                                                                                                    \
     GEOMOPS_INT32,                                                                                          \
     GEOMOPS_METRIC_L2,                                                                                      \
     0,                                                                                                      \
     0,                                                                                                      \
     0,                                                                                                      \
     NULL,                                                                                                   \
     NULL,                                                                                                   \
     NULL,                                                                                                   \
     0}

/* radius_search: every point with dist < radii[q] (strict). */
typedef struct geomops_radius_search_args {
    size_t size;
    int dtype;
    int64_t num_points;
    const void* points;
    int64_t num_queries;
    const void* queries;
    int64_t batch_size;
    const int64_t* points_row_splits;
    const int64_t* queries_row_splits;
    const void* radii;       /* [num_queries], the points' dtype, finite and >= 0 */
    int index_type;          /* GEOMOPS_INT32 (default) or GEOMOPS_INT64 */
    int metric;              /* default L2 */
    int ignore_query_point;  /* default 0 */
    int return_distances;    /* default 0 */
    int normalize_distances; /* default 0: 1 divides distances by r^2 (L2) or r */
    int sort;                /* default 0 */
} geomops_radius_search_args;
#define GEOMOPS_RADIUS_SEARCH_ARGS_INIT                                                                      \
    {sizeof(geomops_radius_search_args),                                                                     \
     GEOMOPS_FLOAT32,                                                                                        \
     0,                                                                                                      \
     NULL,                                                                                                   \
     0,                                                                                                      \
     NULL,                                                                                                   \
     1,                                                                                                      \
     NULL,                                                                                                   \
     NULL,                                                                                                   \
     NULL,                                                                                                   \
     GEOMOPS_INT32,                                                                                          \
     GEOMOPS_METRIC_L2,                                                                                      \
     0,                                                                                                      \
     0,                                                                                                      \
     0,                                                                                                      \
     0}

/* knn_search: the min(k, n_b) nearest points sorted by (distance, index); ignore_query_point
 * then removes found points equal to the query (as Open3D). */
typedef struct geomops_knn_search_args {
    size_t size;
    int dtype;
    int64_t num_points;
    const void* points;
    int64_t num_queries;
    const void* queries;
    int64_t batch_size;
    const int64_t* points_row_splits;
    const int64_t* queries_row_splits;
    int64_t k;              /* > 0, default 1 */
    int index_type;         /* GEOMOPS_INT32 (default) or GEOMOPS_INT64 */
    int metric;             /* default L2 */
    int ignore_query_point; /* default 0 */
    int return_distances;   /* default 0 */
} geomops_knn_search_args;
#define GEOMOPS_KNN_SEARCH_ARGS_INIT                                                                         \
    {sizeof(geomops_knn_search_args),                                                                        \
     GEOMOPS_FLOAT32,                                                                                        \
     0,                                                                                                      \
     NULL,                                                                                                   \
     0,                                                                                                      \
     NULL,                                                                                                   \
     1,                                                                                                      \
     NULL,                                                                                                   \
     NULL,                                                                                                   \
     1,                                                                                                      \
     GEOMOPS_INT32,                                                                                          \
     GEOMOPS_METRIC_L2,                                                                                      \
     0,                                                                                                      \
     0}

/* A search between its two phases (opaque). */
typedef struct geomops_search geomops_search;

/* Phase 1 of a search: writes neighbors_row_splits [num_queries + 1] (int64) and returns a
 * handle holding the total entry count and what the fill needs. The inputs the args point to
 * must stay alive and unchanged until the fill has returned. On failure *search is NULL. */
GEOMOPS_API geomops_status geomops_fixed_radius_search(const geomops_exec* exec,
                                                       const geomops_fixed_radius_args* args,
                                                       int64_t* neighbors_row_splits,
                                                       geomops_search** search);
GEOMOPS_API geomops_status geomops_radius_search(const geomops_exec* exec,
                                                 const geomops_radius_search_args* args,
                                                 int64_t* neighbors_row_splits, geomops_search** search);
GEOMOPS_API geomops_status geomops_knn_search(const geomops_exec* exec, const geomops_knn_search_args* args,
                                              int64_t* neighbors_row_splits, geomops_search** search);
/* *total = neighbors_row_splits[num_queries]: the entries of the index / distance outputs. */
GEOMOPS_API geomops_status geomops_search_total(const geomops_search* search, int64_t* total);
/* Phase 2 (once per handle): neighbors_index [total] (index_type) and, when return_distances
 * was set, neighbors_distance [total] (the points' dtype; else ignored, may be NULL). With
 * total 0 both may be NULL. Runs where phase 1 ran (the same exec). */
GEOMOPS_API geomops_status geomops_search_fill(geomops_search* search, void* neighbors_index,
                                               void* neighbors_distance);
/* Phase 3: free the handle (after the fill, or instead of it). NULL is fine. */
GEOMOPS_API geomops_status geomops_search_free(geomops_search* search);

/* ---- pose: rendering ------------------------------------------------------------------------- *
 * The software rasterizer of geomops.pose.render (docs/rendering.md): camera frame x right,
 * y down, z forward; pixel (r, c) is sampled at (c + 0.5, r + 0.5) with u = fx X/Z + cx,
 * v = fy Y/Z + cy. Bitwise the same for any thread count. */

#define GEOMOPS_MAX_INSTANCE_INDEX 32767  /* instance / class buffers are int16; 0 is background */
#define GEOMOPS_MAX_IMAGE_SIZE     32768  /* largest width / height */
#define GEOMOPS_BACKGROUND_DEPTH   3000.0 /* depth / coordinate value of uncovered pixels */

/* One mesh placed in the camera frame (host memory; its arrays follow exec). Tables of these
 * are read with the stride instances[0].size; every element must have the same size. */
typedef struct geomops_mesh_instance {
    size_t size;
    int64_t num_vertices;
    const float* vertices; /* [V, 3] object frame, finite */
    int64_t num_faces;
    const int32_t* faces;        /* [F, 3] vertex indices in [0, V) */
    const float* colors;         /* [V, 3] in [0, 1], or NULL (grey 0.7) */
    const float* normals;        /* [V, 3] unit vertex normals (smooth shading; geomops.pose.Mesh
                                   normalises them on input, do the same), or NULL (flat) */
    double object_to_camera[16]; /* 4x4 row-major, affine (last row 0 0 0 1), finite;
                                    Python: inv(camera_pose) @ pose. Default identity. */
    int32_t instance_index;      /* in [1, 32767], default 1 */
    int32_t class_index;         /* in [0, 32767], default 0 */
} geomops_mesh_instance;
#define GEOMOPS_MESH_INSTANCE_INIT                                                                           \
    {sizeof(geomops_mesh_instance),                                                                          \
     0,                                                                                                      \
     NULL,                                                                                                   \
     0,                                                                                                      \
     NULL,                                                                                                   \
     NULL,                                                                                                   \
     NULL,                                                                                                   \
     {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1},                                                       \
     1,                                                                                                      \
     0}

typedef struct geomops_render_args {
    size_t size;
    int32_t width, height; /* in [1, 32768] */
    double fx, fy, cx, cy; /* fx, fy > 0; cx, cy finite (pixel centres at +0.5) */
    double z_near, z_far;  /* 0 < z_near < z_far; defaults 0.1 and 10 */
    int32_t num_instances;
    const geomops_mesh_instance* instances; /* host memory */
    double light_direction[3]; /* towards the light, camera frame, normalised here; default (0,-1,-1) */
    double light_color[3];     /* >= 0, default 0.8 */
    double ambient[3];         /* >= 0, default 0.25 */
    double background[3];      /* rgb of uncovered pixels in [0, 1], default 0 */
} geomops_render_args;
#define GEOMOPS_RENDER_ARGS_INIT                                                                             \
    {                                                                                                        \
        sizeof(geomops_render_args), 0, 0, 0.0, 0.0, 0.0, 0.0, 0.1, 10.0, 0, NULL, {0.0, -1.0, -1.0},        \
            {0.8, 0.8, 0.8}, {0.25, 0.25, 0.25}, {                                                           \
            0.0, 0.0, 0.0                                                                                    \
        }                                                                                                    \
    }

/* The render buffers, all (H, W[, C]) dense. The first four are required, the rest may be NULL
 * (not computed). Backgrounds: rgb = background colour with alpha 0, depth and coordinates
 * GEOMOPS_BACKGROUND_DEPTH, instance / class 0, triangle_id -1, normals / barycentrics 0. */
typedef struct geomops_render_buffers {
    size_t size;
    uint8_t* rgb;              /* (H, W, 4) */
    float* depth;              /* (H, W) camera Z */
    int16_t* instance_index;   /* (H, W) */
    float* object_coordinates; /* (H, W, 3) */
    float* cam_coordinates;    /* (H, W, 4) (X, Y, Z, 1) */
    float* normals;            /* (H, W, 4) */
    int16_t* class_index;      /* (H, W) */
    int32_t* triangle_id;      /* (H, W) */
    float* barycentrics;       /* (H, W, 3) */
} geomops_render_buffers;
#define GEOMOPS_RENDER_BUFFERS_INIT                                                                          \
    {sizeof(geomops_render_buffers), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL}

GEOMOPS_API geomops_status geomops_render(const geomops_exec* exec, const geomops_render_args* args,
                                          const geomops_render_buffers* buffers);
/* Free the CPU rasterizer's scratch memory kept between calls (Python: release_render_cache). */
GEOMOPS_API geomops_status geomops_release_render_cache(void);
/* The 4x4 row-major GL-style projection matrix of a pinhole camera, built in float32 exactly as
 * geomops.pose.Camera.projection_matrix() (stillleben's construction), widened to double. */
GEOMOPS_API geomops_status geomops_projection_matrix(int32_t width, int32_t height, double fx, double fy,
                                                     double cx, double cy, double z_near, double z_far,
                                                     double projection[16]);

/* ---- pose: gradients ------------------------------------------------------------------------- *
 * stillleben's diff module (docs/pose.md): compute_image_space_gradients,
 * backpropagate_gradient_to_poses and apply_pose_delta. */

typedef enum geomops_pose_mode {
    GEOMOPS_POSE_MODE_EXACT = 0,
    GEOMOPS_POSE_MODE_COMPAT = 1
} geomops_pose_mode;
typedef enum geomops_border {
    GEOMOPS_BORDER_DEFAULT = -1, /* image gradients: ZERO; back-propagation: the mode's default
                                    (exact: REPLICATE, compat: ZERO) */
    GEOMOPS_BORDER_ZERO = 0,
    GEOMOPS_BORDER_REPLICATE = 1
} geomops_border;
typedef enum geomops_helper_semantics {
    GEOMOPS_HELPER_CUDA = 0,
    GEOMOPS_HELPER_CPU = 1
} geomops_helper_semantics;
typedef enum geomops_layout { GEOMOPS_LAYOUT_CHW = 0, GEOMOPS_LAYOUT_HWC = 1 } geomops_layout;

/* The render buffers the gradients read (a geomops_render output, or your own). */
typedef struct geomops_image {
    size_t size;
    int32_t width, height;          /* >= 1 */
    int rgb_type;                   /* GEOMOPS_UINT8 (0..255, default), FLOAT32 or FLOAT64 (0..1) */
    int rgb_channels;               /* 3 or 4 (default) */
    const void* rgb;                /* (H, W, rgb_channels) */
    int depth_type;                 /* GEOMOPS_FLOAT32 (default) or GEOMOPS_FLOAT64 */
    const void* depth;              /* (H, W) camera Z */
    const int16_t* instance_index;  /* (H, W), 0 = background */
    int object_coordinates_type;    /* GEOMOPS_FLOAT32 (default) or GEOMOPS_FLOAT64 */
    const void* object_coordinates; /* (H, W, 3); back-propagation only */
} geomops_image;
#define GEOMOPS_IMAGE_INIT                                                                                   \
    {sizeof(geomops_image), 0, 0, GEOMOPS_UINT8, 4, NULL, GEOMOPS_FLOAT32, NULL, NULL, GEOMOPS_FLOAT32, NULL}

typedef struct geomops_pose_gradient_options {
    size_t size;
    int mode;             /* geomops_pose_mode, default EXACT (back-propagation only) */
    int helper_semantics; /* geomops_helper_semantics, default CUDA */
    int border;           /* geomops_border, default GEOMOPS_BORDER_DEFAULT */
    int layout;           /* geomops_layout of `grad`, default CHW (back-propagation only) */
} geomops_pose_gradient_options;
#define GEOMOPS_POSE_GRADIENT_OPTIONS_INIT                                                                   \
    {sizeof(geomops_pose_gradient_options), GEOMOPS_POSE_MODE_EXACT, GEOMOPS_HELPER_CUDA,                    \
     GEOMOPS_BORDER_DEFAULT, GEOMOPS_LAYOUT_CHW}

/* grad_x, grad_y (3, H, W) float32 and valid (H, W) uint8 0/1 (options: helper_semantics and
 * border; NULL: defaults). */
GEOMOPS_API geomops_status geomops_compute_image_space_gradients(const geomops_exec* exec,
                                                                 const geomops_image* image,
                                                                 const geomops_pose_gradient_options* options,
                                                                 float* grad_x, float* grad_y,
                                                                 uint8_t* valid);

/* One object of the scene (host memory; tables are read with the stride objects[0].size). */
typedef struct geomops_pose_object {
    size_t size;
    int32_t instance_index;      /* in [1, 32767]; several objects may share one */
    double object_to_camera[16]; /* 4x4 row-major, finite. Exact mode: inv(camera_pose) @ pose.
                                    Compat mode (stillleben ignores the camera pose): the object
                                    pose, rounded to float32 here as stillleben stores it. */
} geomops_pose_object;
#define GEOMOPS_POSE_OBJECT_INIT                                                                             \
    {                                                                                                        \
        sizeof(geomops_pose_object), 1, {                                                                    \
            1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1                                                   \
        }                                                                                                    \
    }

/* Outputs of the back-propagation. */
typedef struct geomops_pose_gradients {
    size_t size;
    void* gradients;          /* (N, 6) in grad_type: (alpha, beta, gamma, a, b, c) per object */
    float* contributions;     /* (N, 6, H, W) per-pixel terms, or NULL */
    int64_t* singular_pixels; /* (N) pixels whose projection denominator is <= 0 (Python warns
                                 about them), or NULL */
} geomops_pose_gradients;
#define GEOMOPS_POSE_GRADIENTS_INIT {sizeof(geomops_pose_gradients), NULL, NULL, NULL}

/* dLoss/dImage -> dLoss/d(pose delta), one 6-vector per object. grad: (3, H, W) (layout CHW)
 * or (H, W, 3) (HWC), grad_type FLOAT32 or FLOAT64, for the image rgb[..., :3] / 255.
 * projection: the 4x4 row-major projection matrix (host; geomops_projection_matrix). Every
 * nonzero id of image->instance_index must belong to an object, and grad must be finite where it
 * is read: the valid pixels of the objects' masks grown by one pixel (else INVALID_ARGUMENT naming
 * the id or the first such pixel, reported after the kernel ran; a NaN or inf there would make
 * that object's gradient NaN). */
GEOMOPS_API geomops_status geomops_backpropagate_gradient_to_poses(
    const geomops_exec* exec, const geomops_image* image, int32_t num_objects,
    const geomops_pose_object* objects, const double* projection, int grad_type, const void* grad,
    const geomops_pose_gradient_options* options, const geomops_pose_gradients* outputs);

/* out = pose @ D for delta = (alpha, beta, gamma, a, b, c) (the update is in the object frame):
 *   D = [[1, -gamma, beta, a], [gamma, 1, -alpha, b], [-beta, alpha, 1, c], [0, 0, 0, 1]],
 * then (orthonormalize) the rotation block replaced by its nearest orthogonal matrix U V^T.
 * Float64 arithmetic. Python's CPU path uses LAPACK's SVD, this library the one-sided Jacobi
 * SVD of its CUDA kernel on both backends: results agree to about 1e-12. */
typedef struct geomops_pose_delta_args {
    size_t size;
    int dtype;           /* pose and out: GEOMOPS_FLOAT32 or GEOMOPS_FLOAT64 (default) */
    int64_t batch;       /* B poses */
    const void* pose;    /* (B, 4, 4), finite */
    int delta_type;      /* GEOMOPS_FLOAT32 or GEOMOPS_FLOAT64 (default) */
    int64_t delta_batch; /* B, or 1 (one delta for every pose); default 1 */
    const void* delta;   /* (delta_batch, 6), finite */
    int orthonormalize;  /* default 1 */
    int fix_reflection;  /* default 0: 1 turns a reflection result into a rotation */
} geomops_pose_delta_args;
#define GEOMOPS_POSE_DELTA_ARGS_INIT                                                                         \
    {sizeof(geomops_pose_delta_args), GEOMOPS_FLOAT64, 1, NULL, GEOMOPS_FLOAT64, 1, NULL, 1, 0}

/* out (B, 4, 4) in args->dtype; may be args->pose. */
GEOMOPS_API geomops_status geomops_apply_pose_delta(const geomops_exec* exec,
                                                    const geomops_pose_delta_args* args, void* out);

#ifdef __cplusplus
}
#endif

#endif /* GEOMOPS_GEOMOPS_H */
