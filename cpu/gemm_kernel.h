/* The GEMM kernels of one float type and one ISA (ISA body, see isa_variants.h; included by
 * gemm_impl.h). Per ISA: the vector width and the row block of the main micro-kernel. */
#if GM_ISA_ID == GM_ISA_AVX512
#define GM_GEMM_VBYTES 64
#define GM_GEMM_ROWS   GM_GEMM_MR
#elif GM_ISA_ID == GM_ISA_AVX2
#define GM_GEMM_VBYTES 32
#define GM_GEMM_ROWS   6
#else
#define GM_GEMM_VBYTES 16
#define GM_GEMM_ROWS   4
#endif
#define GM_GEMM_VL       (GM_GEMM_VBYTES / (int)sizeof(GM_T)) /* elements per vector */
#define GM_GEMM_MICRO_MR GM_IFN(GM_TFN(gemm_micro))
#define GM_GEMM_MICRO_4  GM_IFN(GM_TFN(gemm_micro4))
#define GM_GEMM_MICRO_1  GM_IFN(GM_TFN(gemm_micro1))
#define GM_GEMM_VEC      GM_IFN(GM_TFN(gemm_vec))
#define GM_GEMM_UVEC     GM_IFN(GM_TFN(gemm_uvec))

typedef GM_T GM_GEMM_VEC __attribute__((vector_size(GM_GEMM_VBYTES)));
typedef GM_T GM_GEMM_UVEC __attribute__((vector_size(GM_GEMM_VBYTES), aligned(sizeof(GM_T))));

/* The micro-kernels the driver runs: the ISA's row block, then 4 rows, then single rows. */
#define GM_GEMM_MICRO      GM_GEMM_MICRO_MR
#define GM_GEMM_MICRO_ROWS GM_GEMM_ROWS
#include "gemm_micro.h"
#define GM_GEMM_MICRO      GM_GEMM_MICRO_4
#define GM_GEMM_MICRO_ROWS 4
#include "gemm_micro.h"
#define GM_GEMM_MICRO      GM_GEMM_MICRO_1
#define GM_GEMM_MICRO_ROWS 1
#include "gemm_micro.h"

/* Columns one micro-kernel call covers (two vectors): B panels of this width keep the rows a
 * call streams contiguous. */
static int64_t GM_IFN(GM_TFN(gemm_nr))(void) {
    return 2 * GM_GEMM_VL;
}

/* C (+)= A B over column blocks of two vectors, rows in blocks of GM_GEMM_ROWS, 4, then 1. The
 * whole k per call: slicing k (to keep a slice of B in L1) measured slower on Zen 4, where L2
 * streams B and A fast enough for the micro-kernels. */
GM_ISA_ATTR static void GM_IFN(GM_TFN(gemm))(int64_t m, int64_t n, int64_t k, const GM_T* A, int64_t sa_i,
                                             int64_t sa_p, const GM_T* B, int64_t ldb, int64_t pw, int64_t ps,
                                             GM_T* C, int64_t ldc, int accumulate) {
    const int VL = GM_GEMM_VL;
    const int64_t nb = (n + 2 * VL - 1) / (2 * VL); /* column blocks */
#define GM_GEMM_COLS(MICRO, i0)                                                                              \
    for (int64_t jb = 0; jb < nb; ++jb) {                                                                    \
        const int64_t j0 = jb * 2 * VL;                                                                      \
        const int ncols = (int)(n - j0 < 2 * VL ? n - j0 : 2 * VL);                                          \
        MICRO(k, A + (i0) * sa_i, sa_i, sa_p, B + (j0 / pw) * ps + j0 % pw, ldb, C + (i0) * ldc + j0, ldc,   \
              ncols > VL ? 2 : 1, ncols, accumulate);                                                        \
    }
    int64_t i0 = 0;
    for (; i0 + GM_GEMM_ROWS <= m; i0 += GM_GEMM_ROWS) GM_GEMM_COLS(GM_GEMM_MICRO_MR, i0)
    for (; i0 + 4 <= m; i0 += 4) GM_GEMM_COLS(GM_GEMM_MICRO_4, i0)
    for (; i0 < m; ++i0) GM_GEMM_COLS(GM_GEMM_MICRO_1, i0)
#undef GM_GEMM_COLS
}

#undef GM_GEMM_VBYTES
#undef GM_GEMM_ROWS
#undef GM_GEMM_VL
#undef GM_GEMM_MICRO_MR
#undef GM_GEMM_MICRO_4
#undef GM_GEMM_MICRO_1
#undef GM_GEMM_VEC
#undef GM_GEMM_UVEC
