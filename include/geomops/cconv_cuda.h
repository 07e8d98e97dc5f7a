/* Continuous convolution: the CUDA launchers (cuda/cconv.cu), twins of the CPU launchers of
 * cconv.h with the same semantics. Every pointer in the parameter structs is device memory;
 * `stream` is a cudaStream_t (NULL: the legacy default stream) on which all work is ordered.
 * A launcher returns once its work is queued, except where it must read sizes back first (the
 * chunk plan of the convolution kernels: a few row splits). Results are bitwise identical from
 * run to run (fixed-order sums, no float atomics) and do not depend on max_temp_bytes. */
#ifndef GEOMOPS_CCONV_CUDA_H
#define GEOMOPS_CCONV_CUDA_H

#include "geomops/cconv_types.h"
#include "geomops/common.h"

#ifdef __cplusplus
extern "C" {
#endif

int gm_cconv_apply_cuda(const gm_cconv_params* p, void* stream);
int gm_cconv_backprop_filter_cuda(const gm_cconv_params* p, void* stream);
int gm_cconv_neighbor_products_cuda(const gm_cconv_params* p, void* stream);
int gm_cconv_normalizers_cuda(const gm_cconv_params* p, double* divisor, uint8_t* was_zero, void* stream);
int gm_cconv_inverted_weights_cuda(const gm_cconv_grad_params* p, void* stream);
int gm_cconv_importance_grads_cuda(const gm_cconv_grad_params* p, void* stream);
int gm_cconv_position_grads_cuda(const gm_cconv_grad_params* p, void* stream);
int gm_cconv_swap_channels_cuda(int dtype, const void* filters, int64_t cells, int64_t in_channels,
                                int64_t out_channels, void* out, void* stream);
int gm_cconv_cast_cuda(int src_dtype, const void* src, int dst_dtype, void* dst, int64_t n, void* stream);

/* Inverse neighbor list: rows in ascending order of the original position (a stable radix sort
 * by point), the same result as gm_invert_neighbors_cpu. */
int gm_invert_neighbors_cuda(const gm_invert_params* p, void* stream);

/* sums[r] = sum(values[row_splits[r]:row_splits[r+1]]), float64 accumulator in entry order. */
int gm_reduce_subarrays_sum_cuda(int dtype, const void* values, const int64_t* row_splits, int64_t num_rows,
                                 void* sums, void* stream);

/* The GEMM primitive of cuda/gemm.cuh on one row-major problem (for its tests):
 * C[m, n] = (accumulate ? C : 0) + op(A)[m, k] op(B)[k, n], op = transpose when trans_*. */
int gm_gemm_cuda(int dtype, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, const void* A,
                 int64_t lda, const void* B, int64_t ldb, void* C, int64_t ldc, int accumulate,
                 int allow_tf32, void* stream);

#ifdef __cplusplus
}
#endif

#endif /* GEOMOPS_CCONV_CUDA_H */
