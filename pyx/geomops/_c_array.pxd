# C declarations of the device-array services (include/geomops/array_ops.h, cuda/array_ops.cu).

from libc.stdint cimport int16_t, int64_t, uint64_t

cdef extern from "geomops/array_ops.h" nogil:
    enum:
        GM_DT_BOOL, GM_DT_INT8, GM_DT_UINT8, GM_DT_INT16, GM_DT_UINT16, GM_DT_INT32, GM_DT_UINT32
        GM_DT_INT64, GM_DT_UINT64, GM_DT_FLOAT16, GM_DT_FLOAT32, GM_DT_FLOAT64
        GM_ARRAY_MAX_DIMS

    ctypedef struct gm_array_stats:
        int64_t imin, imax
        double fmin, fmax
        int64_t nonfinite
        int64_t decreasing
        int64_t nonincreasing
        uint64_t first, last

    int gm_array_stats_cuda(const void* a, int dtype, int64_t n, gm_array_stats* out, void* stream)
    int gm_array_cast_cuda(const void* src, int src_dtype, void* dst, int dst_dtype, int64_t n, void* stream)
    int gm_array_copy_strided_cuda(const void* src, void* dst, int64_t itemsize, int ndim, const int64_t* shape,
                                   const int64_t* strides, void* stream)
    int gm_cuda_pointer_device(const void* p, int* device, int* is_device)
    int gm_cuda_stream_wait(void* waiter, void* producer, int dev)
    int gm_cuda_get_device(int* dev)
    int gm_array_gather_rows_cuda(const void* src, void* dst, int64_t row_bytes, const int64_t* perm, int64_t n,
                                  void* stream)
    int gm_array_segment_sum_int_cuda(const void* values, int dtype, const int64_t* row_splits, int64_t rows,
                                      void* sums, void* stream)
    int gm_array_masked_nonfinite_cuda(const float* values, int64_t rows, int64_t cols, const int16_t* mask,
                                       int64_t* count, int64_t* first, void* stream)
    int gm_array_pad_columns_f32_cuda(const float* src, int64_t rows, int64_t src_cols, float* dst,
                                      int64_t dst_cols, float fill, void* stream)
