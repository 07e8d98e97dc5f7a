# C declarations of the continuous-convolution family: the parameter structs
# (include/geomops/cconv_types.h) and the CPU launchers (include/geomops/cconv.h).

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

    ctypedef struct gm_invert_params:
        int64_t num_points, num_rows, num_entries
        int index_int64
        const void* index
        const int64_t* row_splits
        void* out_index
        int64_t* out_row_splits
        int64_t* out_permutation

cdef extern from "geomops/cconv.h" nogil:
    int gm_cconv_apply_cpu(const gm_cconv_params* p)
    int gm_cconv_backprop_filter_cpu(const gm_cconv_params* p)
    int gm_cconv_neighbor_products_cpu(const gm_cconv_params* p)
    int gm_cconv_normalizers_cpu(const gm_cconv_params* p, double* divisor, uint8_t* was_zero)
    int gm_invert_neighbors_cpu(const gm_invert_params* p)
    int gm_reduce_subarrays_sum_cpu(int dtype, const void* values, const int64_t* row_splits,
                                    int64_t num_rows, void* sums, int num_threads)
