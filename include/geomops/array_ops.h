/* Device-array services of the CUDA module (cuda/array_ops.cu): the reductions that input
 * validation runs on device arrays (so that an array on the GPU is checked where it lives, with
 * only a few scalars coming back), dtype conversions, the copy of a strided array into a
 * contiguous one, pointer and stream queries.
 *
 * Every function returns a GM_* status (geomops/common.h); streams are cudaStream_t handles
 * passed as void* (NULL: the legacy default stream). */
#ifndef GEOMOPS_ARRAY_OPS_H
#define GEOMOPS_ARRAY_OPS_H

#include "geomops/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Element types of device arrays (NumPy's names). */
enum {
    GM_DT_BOOL = 0,
    GM_DT_INT8 = 1,
    GM_DT_UINT8 = 2,
    GM_DT_INT16 = 3,
    GM_DT_UINT16 = 4,
    GM_DT_INT32 = 5,
    GM_DT_UINT32 = 6,
    GM_DT_INT64 = 7,
    GM_DT_UINT64 = 8,
    GM_DT_FLOAT16 = 9,
    GM_DT_FLOAT32 = 10,
    GM_DT_FLOAT64 = 11
};

/* Most dimensions of a strided copy. */
enum { GM_ARRAY_MAX_DIMS = 32 };

/* Summary of a 1-D array of int32, int64, float32 or float64 (n > 0):
 *  - integer arrays: imin / imax are the extreme values;
 *  - float arrays: fmin / fmax are the extremes of the finite values (+inf / -inf when there is
 *    none) and nonfinite counts NaN and inf values;
 *  - decreasing counts the i with a[i+1] < a[i], nonincreasing those with a[i+1] <= a[i];
 *  - first / last hold the raw bytes of a[0] and a[n-1] (little-endian, zero-padded). */
typedef struct {
    int64_t imin, imax;
    double fmin, fmax;
    int64_t nonfinite;
    int64_t decreasing;
    int64_t nonincreasing;
    uint64_t first, last;
} gm_array_stats;

/* *out = the summary of a[0:n] (dtype GM_DT_INT32/INT64/FLOAT32/FLOAT64). A fixed-order
 * reduction ordered on `stream`; waits for it before returning. */
int gm_array_stats_cuda(const void* a, int dtype, int64_t n, gm_array_stats* out, void* stream);

/* dst[i] = (dst_dtype)src[i] for i < n, with C's conversion rules (NumPy's astype): any
 * GM_DT_* source, destination GM_DT_INT16, INT32, INT64, FLOAT32 or FLOAT64. Asynchronous on
 * `stream`. */
int gm_array_cast_cuda(const void* src, int src_dtype, void* dst, int dst_dtype, int64_t n, void* stream);

/* Copy the strided array at `src` (ndim <= GM_ARRAY_MAX_DIMS, strides in bytes, any sign) into
 * the C-contiguous array at `dst`, elements of `itemsize` bytes. Asynchronous on `stream`. */
int gm_array_copy_strided_cuda(const void* src, void* dst, int64_t itemsize, int ndim, const int64_t* shape,
                               const int64_t* strides, void* stream);

/* The device that owns the memory at `p` (the current device for NULL) and whether it is device
 * (or managed) memory that kernels can read; host memory gives *is_device = 0. */
int gm_cuda_pointer_device(const void* p, int* device, int* is_device);

/* Make `waiter` wait (on the GPU, without blocking the host) for the work queued so far on
 * `producer`, a stream of device `dev`. */
int gm_cuda_stream_wait(void* waiter, void* producer, int dev);

/* The calling thread's current device. */
int gm_cuda_get_device(int* dev);

/* dst row i = src row perm[i] (i < n), each row `row_bytes` bytes: a gather of rows by an int64
 * permutation, ordered on `stream`. */
int gm_array_gather_rows_cuda(const void* src, void* dst, int64_t row_bytes, const int64_t* perm, int64_t n,
                              void* stream);
/* sums[r] = values[row_splits[r]:row_splits[r+1]] summed for int32 (dtype GM_DT_INT32) or int64
 * values, with wraparound in the values' type (NumPy's cumsum-difference result). */
int gm_array_segment_sum_int_cuda(const void* values, int dtype, const int64_t* row_splits, int64_t rows,
                                  void* sums, void* stream);

/* The rows r < rows of the float32 array `values` (rows x cols, C order) whose mask[r] (int16)
 * is non-zero and that hold a NaN or an infinity: *count of them and *first, the smallest (-1
 * when there is none). The check behind "finite at foreground pixels"; waits for `stream`. */
int gm_array_masked_nonfinite_cuda(const float* values, int64_t rows, int64_t cols, const int16_t* mask,
                                   int64_t* count, int64_t* first, void* stream);

/* dst[r, c] = c < src_cols ? src[r, c] : fill for the float32 arrays src (rows x src_cols) and
 * dst (rows x dst_cols, dst_cols >= src_cols), C order: extra columns filled with a constant.
 * Asynchronous on `stream`. */
int gm_array_pad_columns_f32_cuda(const float* src, int64_t rows, int64_t src_cols, float* dst,
                                  int64_t dst_cols, float fill, void* stream);

#ifdef __cplusplus
}
#endif

#endif /* GEOMOPS_ARRAY_OPS_H */
