// Type-generic body of the GEMM primitive (twin body, see geomops/twin.h; included by
// cuda/gemm.cu once per float type). Contract: cuda/gemm.cuh.

#if GM_TIS_DOUBLE
#define GM_G_BM           64
#define GM_G_TM           4
#define GM_G_FMA(a, b, c) fma(a, b, c)
#else
#define GM_G_BM           128
#define GM_G_TM           8
#define GM_G_FMA(a, b, c) fmaf(a, b, c)
#endif
#define GM_G_BN  64
#define GM_G_TN  4
#define GM_G_BK  8
#define GM_G_PAD 4 /* row padding of the shared tiles: conflict-free transposing stores */
/* (BM / TM) x (BN / TN) threads, each owning a TM x TN block: contiguous in shared memory, so the
 * inner loop reads it with vector loads (and the A reads of a warp are broadcasts) */
#define GM_G_THREADS ((GM_G_BM / GM_G_TM) * (GM_G_BN / GM_G_TN))
#define GM_G_LA      (GM_G_BM * GM_G_BK / GM_G_THREADS) /* A elements each thread loads per tile */
#define GM_G_LB      (GM_G_BN * GM_G_BK / GM_G_THREADS)

#if defined(GM_CUDA_EMULATE)

// The same chain per element as the kernel: acc = C or 0, then fma over p ascending.
static int GM_TFN(gemm_host)(const gm_gemm_desc* d) {
    for (int64_t b = 0; b < d->batch; ++b) {
        const GM_T* A = (const GM_T*)d->A + b * d->stride_a;
        const GM_T* B = (const GM_T*)d->B + b * d->stride_b;
        GM_T* C = (GM_T*)d->C + b * d->stride_c;
        for (int64_t i = 0; i < d->m; ++i)
            for (int64_t j = 0; j < d->n; ++j) {
                GM_T acc = d->accumulate ? C[i * d->ldc + j] : (GM_T)0;
                for (int64_t p = 0; p < d->k; ++p) {
                    GM_T a = d->trans_a ? A[p * d->lda + i] : A[i * d->lda + p];
                    GM_T v = d->trans_b ? B[j * d->ldb + p] : B[p * d->ldb + j];
#if !GM_TIS_DOUBLE
                    if (d->allow_tf32) {
                        a = gm_tf32_round(a);
                        v = gm_tf32_round(v);
                    }
#endif
                    acc = GM_G_FMA(a, v, acc);
                }
                C[i * d->ldc + j] = acc;
            }
    }
    return GM_OK;
}

#else

// One BM x BN tile of C per block of GM_G_THREADS threads; k in steps of BK through shared
// memory, the next step's global loads in registers while the current one is multiplied.
template <int TA, int TB>
__global__ void __launch_bounds__(GM_G_THREADS) GM_TFN(gemm_kernel)(gm_gemm_desc d) {
    __shared__ __align__(16) GM_T As[GM_G_BK][GM_G_BM + GM_G_PAD];
    __shared__ __align__(16) GM_T Bs[GM_G_BK][GM_G_BN + GM_G_PAD];
    const int tid = threadIdx.x;
    const int64_t m0 = (int64_t)blockIdx.x * GM_G_BM, n0 = (int64_t)blockIdx.y * GM_G_BN;
    const GM_T* A = (const GM_T*)d.A + (int64_t)blockIdx.z * d.stride_a;
    const GM_T* B = (const GM_T*)d.B + (int64_t)blockIdx.z * d.stride_b;
    GM_T* C = (GM_T*)d.C + (int64_t)blockIdx.z * d.stride_c;
    const int ty = tid / (GM_G_BN / GM_G_TN), tx = tid % (GM_G_BN / GM_G_TN);

    GM_T acc[GM_G_TM][GM_G_TN];
#pragma unroll
    for (int r = 0; r < GM_G_TM; ++r)
#pragma unroll
        for (int c = 0; c < GM_G_TN; ++c) {
            const int64_t i = m0 + ty * GM_G_TM + r, j = n0 + tx * GM_G_TN + c;
            acc[r][c] = (d.accumulate && i < d.m && j < d.n) ? C[i * d.ldc + j] : (GM_T)0;
        }

    // element e of a tile -> (row or column, kk): the contiguous global dimension varies fastest
    GM_T ra[GM_G_LA], rb[GM_G_LB];
    auto load = [&](int64_t k0) {
#pragma unroll
        for (int l = 0; l < GM_G_LA; ++l) {
            const int e = tid + l * GM_G_THREADS;
            const int row = TA ? e % GM_G_BM : e / GM_G_BK, kk = TA ? e / GM_G_BM : e % GM_G_BK;
            const int64_t i = m0 + row, p = k0 + kk;
            ra[l] = (i < d.m && p < d.k) ? (TA ? A[p * d.lda + i] : A[i * d.lda + p]) : (GM_T)0;
        }
#pragma unroll
        for (int l = 0; l < GM_G_LB; ++l) {
            const int e = tid + l * GM_G_THREADS;
            const int col = TB ? e / GM_G_BK : e % GM_G_BN, kk = TB ? e % GM_G_BK : e / GM_G_BN;
            const int64_t j = n0 + col, p = k0 + kk;
            rb[l] = (j < d.n && p < d.k) ? (TB ? B[j * d.ldb + p] : B[p * d.ldb + j]) : (GM_T)0;
        }
    };
    load(0);
    for (int64_t k0 = 0; k0 < d.k; k0 += GM_G_BK) {
#pragma unroll
        for (int l = 0; l < GM_G_LA; ++l) {
            const int e = tid + l * GM_G_THREADS;
            As[TA ? e / GM_G_BM : e % GM_G_BK][TA ? e % GM_G_BM : e / GM_G_BK] = ra[l];
        }
#pragma unroll
        for (int l = 0; l < GM_G_LB; ++l) {
            const int e = tid + l * GM_G_THREADS;
            Bs[TB ? e % GM_G_BK : e / GM_G_BN][TB ? e / GM_G_BK : e % GM_G_BN] = rb[l];
        }
        __syncthreads();
        if (k0 + GM_G_BK < d.k) load(k0 + GM_G_BK);
        // only the valid steps of the last tile: each element's chain has exactly k terms
        const int kend = d.k - k0 < GM_G_BK ? (int)(d.k - k0) : GM_G_BK;
        for (int kk = 0; kk < kend; ++kk) {
            GM_T a[GM_G_TM], b[GM_G_TN];
#pragma unroll
            for (int r = 0; r < GM_G_TM; ++r) a[r] = As[kk][ty * GM_G_TM + r];
#pragma unroll
            for (int c = 0; c < GM_G_TN; ++c) b[c] = Bs[kk][tx * GM_G_TN + c];
#pragma unroll
            for (int r = 0; r < GM_G_TM; ++r)
#pragma unroll
                for (int c = 0; c < GM_G_TN; ++c) acc[r][c] = GM_G_FMA(a[r], b[c], acc[r][c]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int r = 0; r < GM_G_TM; ++r)
#pragma unroll
        for (int c = 0; c < GM_G_TN; ++c) {
            const int64_t i = m0 + ty * GM_G_TM + r, j = n0 + tx * GM_G_TN + c;
            if (i < d.m && j < d.n) C[i * d.ldc + j] = acc[r][c];
        }
}

static int GM_TFN(gemm_simt)(const gm_gemm_desc* d, cudaStream_t stream) {
    const dim3 grid((unsigned)((d->m + GM_G_BM - 1) / GM_G_BM), (unsigned)((d->n + GM_G_BN - 1) / GM_G_BN),
                    (unsigned)d->batch);
    void (*kernel)(gm_gemm_desc) =
        d->trans_a ? (d->trans_b ? GM_TFN(gemm_kernel) < 1, 1 > : GM_TFN(gemm_kernel) < 1, 0 >)
                   : (d->trans_b ? GM_TFN(gemm_kernel) < 0, 1 > : GM_TFN(gemm_kernel) < 0, 0 >);
    GM_LAUNCH(kernel, grid, GM_G_THREADS, stream, *d);
    return gm_cuda_check_launch("the GEMM kernel");
}

#endif  // GM_CUDA_EMULATE

// Splits the call into launches within the grid limits (n tiles on y, batch on z), then runs
// the TF32 kernel (float, sm_80+, allow_tf32) or the fp32/fp64 one.
int GM_TFN(gm_dev_gemm)(const gm_gemm_desc* d, cudaStream_t stream) {
    if (d->m <= 0 || d->n <= 0 || d->batch <= 0) return GM_OK;
#if defined(GM_CUDA_EMULATE)
    (void)stream;
    return GM_TFN(gemm_host)(d);
#else
#if !GM_TIS_DOUBLE
    const int tf32 = d->allow_tf32 && gm_gemm_tf32_supported();
#else
    const int tf32 = 0;
#endif
    const int64_t max_y = 65535, max_z = 65535;
    const int64_t n_step = max_y * (tf32 ? GM_GEMM_TF32_BN : GM_G_BN);
    for (int64_t b0 = 0; b0 < d->batch; b0 += max_z) {
        for (int64_t j0 = 0; j0 < d->n; j0 += n_step) {
            gm_gemm_desc part = *d;
            part.batch = d->batch - b0 < max_z ? d->batch - b0 : max_z;
            part.n = d->n - j0 < n_step ? d->n - j0 : n_step;
            part.A = (const GM_T*)d->A + b0 * d->stride_a;
            part.B = (const GM_T*)d->B + b0 * d->stride_b + (d->trans_b ? j0 * d->ldb : j0);
            part.C = (GM_T*)d->C + b0 * d->stride_c + j0;
#if !GM_TIS_DOUBLE
            const int st = tf32 ? gm_gemm_tf32(&part, stream) : GM_TFN(gemm_simt)(&part, stream);
#else
            const int st = GM_TFN(gemm_simt)(&part, stream);
#endif
            if (st != GM_OK) return st;
        }
    }
    return GM_OK;
#endif
}

#undef GM_G_BM
#undef GM_G_TM
#undef GM_G_FMA
#undef GM_G_BN
#undef GM_G_TN
#undef GM_G_BK
#undef GM_G_PAD
#undef GM_G_THREADS
#undef GM_G_LA
#undef GM_G_LB
