/* The GEMM of one float type (twin body of cpu/gemm.c): the kernels per ISA, then the entry
 * point gm_gemm_f32 / gm_gemm_f64 that runs the variant of the ISA in use. */

/* The AVX2 kernel is also allowed FMA (gm_cpu_isa() picks AVX2 only with FMA). */
#define GM_ISA_AVX2_TARGET "avx2,fma"
#define GM_ISA_BODY        "gemm_kernel.h"
#include "isa_variants.h"

void GM_TFN(gm_gemm)(int64_t m, int64_t n, int64_t k, const GM_T* A, int64_t sa_i, int64_t sa_p,
                     const GM_T* B, int64_t ldb, int64_t pw, int64_t ps, GM_T* C, int64_t ldc,
                     int accumulate) {
    if (m <= 0 || n <= 0) return;
    GM_ISA_PICK(GM_TFN(gemm))(m, n, k, A, sa_i, sa_p, B, ldb, pw, ps, C, ldc, accumulate);
}

int64_t GM_TFN(gm_gemm_nr)(void) {
    return GM_ISA_PICK(GM_TFN(gemm_nr))();
}

void GM_TFN(gm_gemm_pack_b)(int64_t k, int64_t n, const GM_T* B, int64_t ldb, int64_t nr, GM_T* Bp) {
    for (int64_t j0 = 0; j0 < n; j0 += nr) {
        const int64_t w = n - j0 < nr ? n - j0 : nr;
        GM_T* dst = Bp + j0 * k;
        for (int64_t p = 0; p < k; ++p) {
            memcpy(dst + p * nr, B + p * ldb + j0, (size_t)w * sizeof(GM_T));
            if (w < nr) memset(dst + p * nr + w, 0, (size_t)(nr - w) * sizeof(GM_T));
        }
    }
}
