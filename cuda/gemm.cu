// The GEMM primitive (cuda/gemm.cuh): tiled fp32/fp64 kernels with register blocking, a TF32
// tensor-core kernel (WMMA, sm_80+) and, in the emulation build, host loops with the same
// per-element chain.
#include "gm_cuda.cuh"

#include "gemm.cuh"

#if defined(GM_CUDA_EMULATE)

#include <math.h>
#include <string.h>

// What the tensor cores see of a float: rounded to nearest (ties away from zero) to TF32's 10
// mantissa bits, like cvt.rna.tf32.f32; inf and NaN unchanged.
static float gm_tf32_round(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7f800000u) != 0x7f800000u) {
        u += 0x1000u;
        u &= 0xffffe000u;
    }
    memcpy(&x, &u, sizeof x);
    return x;
}

#else

#include <mma.h>

enum { GM_GEMM_TF32_BM = 64, GM_GEMM_TF32_BN = 64, GM_GEMM_TF32_THREADS = 128 };

// The current device has TF32 tensor cores (compute capability 8.0 or newer).
static int gm_gemm_tf32_supported(void) {
    int dev = 0, major = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) return 0;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) return 0;
    return major >= 8;
}

// One 64 x 64 tile of C per block of 4 warps (each 32 x 32: 2 x 2 WMMA 16x16x8 fragments); k in
// steps of GM_GEMM_TF32_BK through shared memory (zero-padded at the edges).
template <int TA, int TB>
__global__ void __launch_bounds__(GM_GEMM_TF32_THREADS) gm_gemm_tf32_kernel(gm_gemm_desc d) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    namespace wmma = nvcuda::wmma;
    constexpr int BM = GM_GEMM_TF32_BM, BN = GM_GEMM_TF32_BN, BK = GM_GEMM_TF32_BK;
    constexpr int LDA = BK + 4, LDB = BN + 4, LDC = BN + 4;  // multiples of 4, 32-byte fragment rows
    constexpr int AB = BM * LDA + BK * LDB, CS = BM * LDC;
    __shared__ __align__(32) float smem[AB > CS ? AB : CS];
    float* As = smem;             // [BM][LDA]: (i, p)
    float* Bs = smem + BM * LDA;  // [BK][LDB]: (p, j)
    float* Cs = smem;             // [BM][LDC], reused before and after the k loop
    const int tid = threadIdx.x, warp = tid / 32;
    const int wm = (warp / 2) * 32, wn = (warp % 2) * 32;
    const int64_t m0 = (int64_t)blockIdx.x * BM, n0 = (int64_t)blockIdx.y * BN;
    const float* A = (const float*)d.A + (int64_t)blockIdx.z * d.stride_a;
    const float* B = (const float*)d.B + (int64_t)blockIdx.z * d.stride_b;
    float* C = (float*)d.C + (int64_t)blockIdx.z * d.stride_c;

    wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc[2][2];
    if (d.accumulate) {
        for (int e = tid; e < BM * BN; e += GM_GEMM_TF32_THREADS) {
            const int r = e / BN, c = e % BN;
            const int64_t i = m0 + r, j = n0 + c;
            Cs[r * LDC + c] = (i < d.m && j < d.n) ? C[i * d.ldc + j] : 0.0f;
        }
        __syncthreads();
        for (int a = 0; a < 2; ++a)
            for (int b = 0; b < 2; ++b)
                wmma::load_matrix_sync(acc[a][b], Cs + (wm + 16 * a) * LDC + wn + 16 * b, LDC,
                                       wmma::mem_row_major);
        __syncthreads();
    } else {
        for (int a = 0; a < 2; ++a)
            for (int b = 0; b < 2; ++b) wmma::fill_fragment(acc[a][b], 0.0f);
    }

    for (int64_t k0 = 0; k0 < d.k; k0 += BK) {
        for (int e = tid; e < BM * BK; e += GM_GEMM_TF32_THREADS) {
            const int row = TA ? e % BM : e / BK, kk = TA ? e / BM : e % BK;
            const int64_t i = m0 + row, p = k0 + kk;
            As[row * LDA + kk] = (i < d.m && p < d.k) ? (TA ? A[p * d.lda + i] : A[i * d.lda + p]) : 0.0f;
        }
        for (int e = tid; e < BK * BN; e += GM_GEMM_TF32_THREADS) {
            const int col = TB ? e / BK : e % BN, kk = TB ? e % BK : e / BN;
            const int64_t j = n0 + col, p = k0 + kk;
            Bs[kk * LDB + col] = (j < d.n && p < d.k) ? (TB ? B[j * d.ldb + p] : B[p * d.ldb + j]) : 0.0f;
        }
        __syncthreads();
        for (int kk = 0; kk < BK; kk += 8) {
            wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fa[2];
            wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fb[2];
            for (int a = 0; a < 2; ++a) {
                wmma::load_matrix_sync(fa[a], As + (wm + 16 * a) * LDA + kk, LDA);
                for (int t = 0; t < fa[a].num_elements; ++t) fa[a].x[t] = wmma::__float_to_tf32(fa[a].x[t]);
            }
            for (int b = 0; b < 2; ++b) {
                wmma::load_matrix_sync(fb[b], Bs + kk * LDB + wn + 16 * b, LDB);
                for (int t = 0; t < fb[b].num_elements; ++t) fb[b].x[t] = wmma::__float_to_tf32(fb[b].x[t]);
            }
            for (int a = 0; a < 2; ++a)
                for (int b = 0; b < 2; ++b) wmma::mma_sync(acc[a][b], fa[a], fb[b], acc[a][b]);
        }
        __syncthreads();
    }

    for (int a = 0; a < 2; ++a)
        for (int b = 0; b < 2; ++b)
            wmma::store_matrix_sync(Cs + (wm + 16 * a) * LDC + wn + 16 * b, acc[a][b], LDC,
                                    wmma::mem_row_major);
    __syncthreads();
    for (int e = tid; e < BM * BN; e += GM_GEMM_TF32_THREADS) {
        const int r = e / BN, c = e % BN;
        const int64_t i = m0 + r, j = n0 + c;
        if (i < d.m && j < d.n) C[i * d.ldc + j] = Cs[r * LDC + c];
    }
#endif
}

static int gm_gemm_tf32(const gm_gemm_desc* d, cudaStream_t stream) {
    const dim3 grid((unsigned)((d->m + GM_GEMM_TF32_BM - 1) / GM_GEMM_TF32_BM),
                    (unsigned)((d->n + GM_GEMM_TF32_BN - 1) / GM_GEMM_TF32_BN), (unsigned)d->batch);
    void (*kernel)(gm_gemm_desc) = d->trans_a
                                       ? (d->trans_b ? gm_gemm_tf32_kernel<1, 1> : gm_gemm_tf32_kernel<1, 0>)
                                       : (d->trans_b ? gm_gemm_tf32_kernel<0, 1> : gm_gemm_tf32_kernel<0, 0>);
    GM_LAUNCH(kernel, grid, GM_GEMM_TF32_THREADS, stream, *d);
    return gm_cuda_check_launch("the TF32 GEMM kernel");
}

#endif  // GM_CUDA_EMULATE

#define GM_TWIN_BODY "gemm_impl.cuh"
#include "geomops/twin.h"

extern "C" int gm_gemm_cuda(int dtype, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                            const void* A, int64_t lda, const void* B, int64_t ldb, void* C, int64_t ldc,
                            int accumulate, int allow_tf32, void* stream) {
    if (dtype != GM_FLOAT32 && dtype != GM_FLOAT64) return GM_ERR_INVALID;
    gm_gemm_desc d = {trans_a, trans_b, m, n, k, A, lda, 0, B, ldb, 0, C, ldc, 0, 1, accumulate, allow_tf32};
    return dtype == GM_FLOAT32 ? gm_dev_gemm_f32(&d, (cudaStream_t)stream)
                               : gm_dev_gemm_f64(&d, (cudaStream_t)stream);
}
