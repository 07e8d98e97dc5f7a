# C declarations of the continuous-convolution family: the parameter structs
# (include/geomops/cconv_types.h), the CPU launchers (include/geomops/cconv.h) and the CUDA
# launchers (include/geomops/cconv_cuda.h).

from libc.stdint cimport int64_t, uint8_t

cdef extern from "geomops/cconv_types.h" nogil:
    ctypedef struct gm_cconv_params:
        int dtype, index_int64, transpose
        int64_t num_out, num_inp, in_channels, out_channels
        int filter_depth, filter_height, filter_width
        const void* filters
        const void* out_positions
        const void* inp_positions
        const void* extents
        int64_t extents_rows
        int extents_cols
        const void* offset
        const void* inp_features
        const void* inp_importance
        const void* out_importance
        const void* neighbors_index
        const void* neighbors_importance
        const int64_t* neighbors_row_splits
        const void* inp_neighbors_importance_sum
        const int64_t* inp_neighbors_row_splits
        int align_corners, coordinate_mapping, interpolation, normalize
        const void* out_features_gradient
        void* output
        int64_t max_temp_bytes
        int num_threads
        int allow_tf32
        double* entry_position_grads
        double* entry_extent_grads

    ctypedef struct gm_invert_params:
        int64_t num_points, num_rows, num_entries
        int index_int64
        const void* index
        const int64_t* row_splits
        void* out_index
        int64_t* out_row_splits
        int64_t* out_permutation

    ctypedef struct gm_cconv_grad_params:
        int dtype, index_int64, transpose
        int64_t num_out, num_inp, num_entries
        const void* neighbors_index
        const int64_t* neighbors_row_splits
        const void* neighbors_importance
        const void* point_importance
        const double* divisor
        const uint8_t* was_zero
        const void* inv_index
        const int64_t* inv_row_splits
        const int64_t* inv_permutation
        const double* products
        void* inv_weights
        void* d_point_importance
        void* d_neighbors_importance
        void* d_importance_sum
        const double* entry_position_grads
        const double* entry_extent_grads
        int64_t extents_rows
        int extents_cols
        void* d_out_positions
        void* d_inp_positions
        void* d_extents
        int num_threads

cdef extern from "geomops/cconv.h" nogil:
    int gm_cconv_apply_cpu(const gm_cconv_params* p)
    int gm_cconv_backprop_filter_cpu(const gm_cconv_params* p)
    int gm_cconv_neighbor_products_cpu(const gm_cconv_params* p)
    int gm_cconv_normalizers_cpu(const gm_cconv_params* p, double* divisor, uint8_t* was_zero)
    int gm_cconv_inverted_weights_cpu(const gm_cconv_grad_params* p)
    int gm_cconv_importance_grads_cpu(const gm_cconv_grad_params* p)
    int gm_cconv_position_grads_cpu(const gm_cconv_grad_params* p)
    int gm_cconv_swap_channels_cpu(int dtype, const void* filters, int64_t cells, int64_t in_channels,
                                   int64_t out_channels, void* out, int num_threads)
    int gm_cconv_cast_cpu(int src_dtype, const void* src, int dst_dtype, void* dst, int64_t n, int num_threads)
    int gm_invert_neighbors_cpu(const gm_invert_params* p)
    int gm_reduce_subarrays_sum_cpu(int dtype, const void* values, const int64_t* row_splits,
                                    int64_t num_rows, void* sums, int num_threads)
    void gm_cconv_profile_cpu(int enable, double* out)

cdef extern from "geomops/cconv_cuda.h" nogil:
    int gm_cconv_apply_cuda(const gm_cconv_params* p, void* stream)
    int gm_cconv_backprop_filter_cuda(const gm_cconv_params* p, void* stream)
    int gm_cconv_neighbor_products_cuda(const gm_cconv_params* p, void* stream)
    int gm_cconv_normalizers_cuda(const gm_cconv_params* p, double* divisor, uint8_t* was_zero, void* stream)
    int gm_cconv_inverted_weights_cuda(const gm_cconv_grad_params* p, void* stream)
    int gm_cconv_importance_grads_cuda(const gm_cconv_grad_params* p, void* stream)
    int gm_cconv_position_grads_cuda(const gm_cconv_grad_params* p, void* stream)
    int gm_cconv_swap_channels_cuda(int dtype, const void* filters, int64_t cells, int64_t in_channels,
                                    int64_t out_channels, void* out, void* stream)
    int gm_cconv_cast_cuda(int src_dtype, const void* src, int dst_dtype, void* dst, int64_t n, void* stream)
    int gm_invert_neighbors_cuda(const gm_invert_params* p, void* stream)
    int gm_reduce_subarrays_sum_cuda(int dtype, const void* values, const int64_t* row_splits, int64_t num_rows,
                                     void* sums, void* stream)
    int gm_gemm_cuda(int dtype, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, const void* A,
                     int64_t lda, const void* B, int64_t ldb, void* C, int64_t ldc, int accumulate,
                     int allow_tf32, void* stream)
