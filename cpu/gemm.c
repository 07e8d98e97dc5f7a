/* Register-blocked GEMM micro-kernels (see gemm.h). Written with GCC vector extensions so one
 * macro body serves AVX-512, AVX2+FMA and portable builds; the ISA is picked at run time, and
 * GEOMOPS_CPU_KERNEL=generic|avx2|avx512 forces one (for testing). */
#include "gemm.h"

#include "isa.h"

#include <stdlib.h>
#include <string.h>

#define GM_PRAGMA(x) _Pragma(#x)

/* One micro-kernel: ROWS rows of A times NV vectors of B columns, full k, fixed p order. */
#define GM_DEFINE_MICRO(NAME, T, VEC, UVEC, VL, ROWS, ATTR)                                                  \
    ATTR static void NAME(int64_t k, const T* A, int64_t sa_i, int64_t sa_p, const T* B, int64_t ldb, T* C,  \
                          int64_t ldc, int nv, int ncols, int accumulate) {                                  \
        VEC acc0[ROWS], acc1[ROWS];                                                                          \
        GM_PRAGMA(GCC unroll 16)                                                                             \
        for (int r = 0; r < ROWS; ++r) {                                                                     \
            acc0[r] = (VEC){0};                                                                              \
            acc1[r] = (VEC){0};                                                                              \
        }                                                                                                    \
        if (accumulate) { /* start from C: the sum over p stays sequential across calls */                   \
            for (int r = 0; r < ROWS; ++r) {                                                                 \
                T tmp[2 * VL];                                                                               \
                memset(tmp, 0, sizeof(tmp));                                                                 \
                memcpy(tmp, C + r * ldc, (size_t)ncols * sizeof(T));                                         \
                memcpy(&acc0[r], tmp, sizeof(VEC));                                                          \
                memcpy(&acc1[r], tmp + VL, sizeof(VEC));                                                     \
            }                                                                                                \
        }                                                                                                    \
        if (nv == 2) {                                                                                       \
            for (int64_t p = 0; p < k; ++p) {                                                                \
                const T* b = B + p * ldb;                                                                    \
                const VEC b0 = *(const UVEC*)b;                                                              \
                const VEC b1 = *(const UVEC*)(b + VL);                                                       \
                const T* a = A + p * sa_p;                                                                   \
                GM_PRAGMA(GCC unroll 16)                                                                     \
                for (int r = 0; r < ROWS; ++r) {                                                             \
                    const T av = a[r * sa_i];                                                                \
                    acc0[r] += av * b0;                                                                      \
                    acc1[r] += av * b1;                                                                      \
                }                                                                                            \
            }                                                                                                \
        } else {                                                                                             \
            for (int64_t p = 0; p < k; ++p) {                                                                \
                const VEC b0 = *(const UVEC*)(B + p * ldb);                                                  \
                const T* a = A + p * sa_p;                                                                   \
                GM_PRAGMA(GCC unroll 16)                                                                     \
                for (int r = 0; r < ROWS; ++r) acc0[r] += a[r * sa_i] * b0;                                  \
            }                                                                                                \
        }                                                                                                    \
        if (ncols == 2 * VL || (nv == 1 && ncols == VL)) { /* full vectors: no tail */                       \
            for (int r = 0; r < ROWS; ++r) {                                                                 \
                UVEC* c = (UVEC*)(C + r * ldc);                                                              \
                c[0] = acc0[r];                                                                              \
                if (nv == 2) c[1] = acc1[r];                                                                 \
            }                                                                                                \
            return;                                                                                          \
        }                                                                                                    \
        for (int r = 0; r < ROWS; ++r) {                                                                     \
            T* c = C + r * ldc;                                                                              \
            T tmp[2 * VL];                                                                                   \
            memcpy(tmp, &acc0[r], sizeof(VEC));                                                              \
            memcpy(tmp + VL, &acc1[r], sizeof(VEC));                                                         \
            for (int j = 0; j < ncols; ++j) c[j] = tmp[j];                                                   \
        }                                                                                                    \
    }

#define GM_DEFINE_GEMM(NAME, T, VBYTES, MR, ATTR)                                                            \
    typedef T NAME##_vec __attribute__((vector_size(VBYTES)));                                               \
    typedef T NAME##_uvec __attribute__((vector_size(VBYTES), aligned(sizeof(T))));                          \
    GM_DEFINE_MICRO(NAME##_micro, T, NAME##_vec, NAME##_uvec, (VBYTES / (int)sizeof(T)), MR, ATTR)           \
    GM_DEFINE_MICRO(NAME##_micro4, T, NAME##_vec, NAME##_uvec, (VBYTES / (int)sizeof(T)), 4, ATTR)           \
    GM_DEFINE_MICRO(NAME##_micro1, T, NAME##_vec, NAME##_uvec, (VBYTES / (int)sizeof(T)), 1, ATTR)           \
    ATTR static void NAME(int64_t m, int64_t n, int64_t k, const T* A, int64_t sa_i, int64_t sa_p,           \
                          const T* B, int64_t ldb, int64_t pw, int64_t ps, T* C, int64_t ldc,                \
                          int accumulate) {                                                                  \
        const int VL = VBYTES / (int)sizeof(T);                                                              \
        for (int64_t j0 = 0; j0 < n; j0 += 2 * VL) {                                                         \
            int ncols = (int)(n - j0 < 2 * VL ? n - j0 : 2 * VL);                                            \
            int nv = ncols > VL ? 2 : 1;                                                                     \
            const T* Bj = B + (j0 / pw) * ps + j0 % pw;                                                      \
            int64_t i0 = 0;                                                                                  \
            for (; i0 + MR <= m; i0 += MR)                                                                   \
                NAME##_micro(k, A + i0 * sa_i, sa_i, sa_p, Bj, ldb, C + i0 * ldc + j0, ldc, nv, ncols,       \
                             accumulate);                                                                    \
            for (; i0 + 4 <= m; i0 += 4)                                                                     \
                NAME##_micro4(k, A + i0 * sa_i, sa_i, sa_p, Bj, ldb, C + i0 * ldc + j0, ldc, nv, ncols,      \
                              accumulate);                                                                   \
            for (; i0 < m; ++i0)                                                                             \
                NAME##_micro1(k, A + i0 * sa_i, sa_i, sa_p, Bj, ldb, C + i0 * ldc + j0, ldc, nv, ncols,      \
                              accumulate);                                                                   \
        }                                                                                                    \
    }

#if GM_ISA_X86
#define GM_X86 1
GM_DEFINE_GEMM(gemm_f32_avx512, float, 64, GM_GEMM_MR, __attribute__((target("avx512f"))))
GM_DEFINE_GEMM(gemm_f64_avx512, double, 64, GM_GEMM_MR, __attribute__((target("avx512f"))))
GM_DEFINE_GEMM(gemm_f32_avx2, float, 32, 6, __attribute__((target("avx2,fma"))))
GM_DEFINE_GEMM(gemm_f64_avx2, double, 32, 6, __attribute__((target("avx2,fma"))))
#endif
GM_DEFINE_GEMM(gemm_f32_generic, float, 16, 4, )
GM_DEFINE_GEMM(gemm_f64_generic, double, 16, 4, )

/* Same ISA choice as every other CPU kernel (isa.h): the micro-kernels are compiled for
 * AVX-512F and AVX2+FMA above and picked at run time. */
static int isa(void) { return gm_cpu_isa(); }

void gm_gemm_f32(int64_t m, int64_t n, int64_t k, const float* A, int64_t sa_i, int64_t sa_p, const float* B,
                 int64_t ldb, int64_t pw, int64_t ps, float* C, int64_t ldc, int accumulate) {
    if (m <= 0 || n <= 0) return;
    switch (isa()) {
#ifdef GM_X86
        case GM_ISA_AVX512:
            gemm_f32_avx512(m, n, k, A, sa_i, sa_p, B, ldb, pw, ps, C, ldc, accumulate);
            return;
        case GM_ISA_AVX2:
            gemm_f32_avx2(m, n, k, A, sa_i, sa_p, B, ldb, pw, ps, C, ldc, accumulate);
            return;
#endif
        default:
            gemm_f32_generic(m, n, k, A, sa_i, sa_p, B, ldb, pw, ps, C, ldc, accumulate);
    }
}

void gm_gemm_f64(int64_t m, int64_t n, int64_t k, const double* A, int64_t sa_i, int64_t sa_p,
                 const double* B, int64_t ldb, int64_t pw, int64_t ps, double* C, int64_t ldc,
                 int accumulate) {
    if (m <= 0 || n <= 0) return;
    switch (isa()) {
#ifdef GM_X86
        case GM_ISA_AVX512:
            gemm_f64_avx512(m, n, k, A, sa_i, sa_p, B, ldb, pw, ps, C, ldc, accumulate);
            return;
        case GM_ISA_AVX2:
            gemm_f64_avx2(m, n, k, A, sa_i, sa_p, B, ldb, pw, ps, C, ldc, accumulate);
            return;
#endif
        default:
            gemm_f64_generic(m, n, k, A, sa_i, sa_p, B, ldb, pw, ps, C, ldc, accumulate);
    }
}
