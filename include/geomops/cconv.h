/* Continuous convolution: the CPU launchers (cpu/cconv.c). Parameter structs are in
 * cconv_types.h, the per-neighbor formulas in cconv_math.h; semantics: docs/cconv.md. */
#ifndef GEOMOPS_CCONV_H
#define GEOMOPS_CCONV_H

#include "geomops/cconv_types.h"
#include "geomops/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out = continuous_conv (transpose = 0) or continuous_conv_transpose (transpose = 1). */
int gm_cconv_apply_cpu(const gm_cconv_params* p);

/* output = gradient of sum(out * out_features_gradient) w.r.t. the filters.
 * Bitwise deterministic for any thread count (fixed chunking, fixed-order reduction). */
int gm_cconv_backprop_filter_cpu(const gm_cconv_params* p);

/* Per neighbor entry n (row i, input j), each output written when its pointer is not NULL:
 * output[n] = sum_corners w_c * <(F g_i)[s_c, :], inp_features[j, :]>, the derivative of
 * <out_i, g_i> w.r.t. the entry's scalar weight before any importance or normalisation factor
 * (the facade combines it into importance gradients); entry_position_grads[n] and
 * entry_extent_grads[n], the derivatives of <out, g> w.r.t. the entry's relative position and
 * its extent (gm_cconv_entry_grads_*), summed into points by gm_cconv_position_grads_cpu. */
int gm_cconv_neighbor_products_cpu(const gm_cconv_params* p);

/* The normaliser of every row r the op normalises (gm_cconv_normalizer_*: psi_r of the forward
 * op's output rows, No of them; phi_r of the transpose's input points, Ni of them), ignoring
 * p->normalize: divisor[r] = the float64 value the op divides by (gm_cconv_divisor) and
 * was_zero[r] = 1 where the normaliser was exactly 0 (replaced by 1, so it has no derivative).
 * The backward functions of the facade use these instead of recomputing them. */
int gm_cconv_normalizers_cpu(const gm_cconv_params* p, double* divisor, uint8_t* was_zero);

/* The backward functions' per-entry math (gm_cconv_grad_params, formulas gm_cconv_bwd_* of
 * cconv_math.h): inv_weights, the weights of the inverted list's entries; then the importance
 * gradients (every non-NULL output; needs products). */
int gm_cconv_inverted_weights_cpu(const gm_cconv_grad_params* p);
int gm_cconv_importance_grads_cpu(const gm_cconv_grad_params* p);

/* The position and extent gradients from the per-entry derivatives (gm_cconv_grad_params:
 * entry_position_grads, entry_extent_grads) into every non-NULL output among d_out_positions,
 * d_inp_positions, d_extents (gm_cconv_bwd_position_*, gm_cconv_bwd_extent_*): fixed-order
 * sums, bitwise identical for any thread count. */
int gm_cconv_position_grads_cpu(const gm_cconv_grad_params* p);

/* out[c, oc, ic] = filters[c, ic, oc] for c < cells: [D,H,W,Cin,Cout] -> [D,H,W,Cout,Cin]. */
int gm_cconv_swap_channels_cpu(int dtype, const void* filters, int64_t cells, int64_t in_channels,
                               int64_t out_channels, void* out, int num_threads);

/* dst[k] = src[k] converted (round to nearest) between GM_FLOAT32 / GM_FLOAT64, k < n. */
int gm_cconv_cast_cpu(int src_dtype, const void* src, int dst_dtype, void* dst, int64_t n, int num_threads);

/* Inverse neighbor list (counting sort, rows keep the original list order). */
int gm_invert_neighbors_cpu(const gm_invert_params* p);

/* sums[r] = sum(values[row_splits[r]:row_splits[r+1]]) with a float64 accumulator. */
int gm_reduce_subarrays_sum_cpu(int dtype, const void* values, const int64_t* row_splits, int64_t num_rows,
                                void* sums, int num_threads);

/* Benchmark instrumentation (benchmarks/bench_cconv.py): while enabled, gm_cconv_apply_cpu and
 * gm_cconv_backprop_filter_cpu add the thread-seconds they spend filling patch rows and in the
 * GEMM (thread CPU time) to two counters. Stores the counters in out[0] (fill) and out[1] (GEMM) when out is not
 * NULL, resets them, and turns the timing on (enable != 0) or off (the default: no clock reads).
 * Not thread-safe against concurrent cconv calls; for a benchmark's single caller. */
void gm_cconv_profile_cpu(int enable, double* out);

#ifdef __cplusplus
}
#endif

#endif /* GEOMOPS_CCONV_H */
