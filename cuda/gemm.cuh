// The GEMM primitive of the CUDA backend (used by the continuous convolution): a named
// block-cooperative kernel (shared-memory tiles, register blocking; WMMA tensor cores for TF32),
// with a host implementation computing the same per-element chain in the emulation build
// (GM_CUDA_EMULATE). No cuBLAS: the module must import on machines without it.
#ifndef GEOMOPS_CUDA_GEMM_CUH
#define GEOMOPS_CUDA_GEMM_CUH

#include "gm_cuda.cuh"

// One batched product, for b < batch, i < m, j < n:
//   C_b[i, j] = (accumulate ? C_b[i, j] : 0) + sum_{p < k} A_b(i, p) * B_b(p, j)
// with A_b(i, p) = A[b * stride_a + (trans_a ? p * lda + i : i * lda + p)],
//      B_b(p, j) = B[b * stride_b + (trans_b ? j * ldb + p : p * ldb + j)],
//      C_b[i, j] = C[b * stride_c + i * ldc + j].
// Pointers are to the element type of the function called (float or double).
//
// Summation order: without TF32 every element is ONE chain of fused multiply-adds over p in
// ascending order, starting from its initial value (0, or C with accumulate). The result does
// not depend on the tiling, on m, n or batch, and splitting k over consecutive calls with
// accumulate gives the same bits; the emulation computes the same chain (bitwise equal).
// With allow_tf32 (float only, compute capability 8.0 or newer; ignored otherwise) A and B are
// rounded to TF32 and multiplied on tensor cores with float accumulation, k in fixed steps of
// GM_GEMM_TF32_BK: deterministic, and splitting k at multiples of GM_GEMM_TF32_BK gives the same
// bits. The emulation rounds the inputs to TF32 the same way and then computes the fp32 chain.
typedef struct {
    int trans_a, trans_b;
    int64_t m, n, k;
    const void* A;
    int64_t lda, stride_a;
    const void* B;
    int64_t ldb, stride_b;
    void* C;
    int64_t ldc, stride_c;
    int64_t batch;
    int accumulate;
    int allow_tf32;
} gm_gemm_desc;

enum { GM_GEMM_TF32_BK = 32 };

int gm_dev_gemm_f32(const gm_gemm_desc* d, cudaStream_t stream);
int gm_dev_gemm_f64(const gm_gemm_desc* d, cudaStream_t stream);

#endif  // GEOMOPS_CUDA_GEMM_CUH
