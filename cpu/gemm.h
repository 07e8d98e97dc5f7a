/* Small single-threaded GEMM used by the continuous-convolution kernels (CPU only).
 *
 *   C[i, j] (+)= sum_p A(i, p) * B[p, j]      0 <= i < m, 0 <= j < n, 0 <= p < k
 *
 * A is read through two strides, A(i, p) = A[i * sa_i + p * sa_p], so the patch matrix can be
 * used in either orientation without a copy. B is stored in column panels of width pw:
 * B(p, j) = B[(j / pw) * ps + p * ldb + j % pw]. A plain row-major B has pw >= n (any ps);
 * a panel-major B has ldb = pw and ps = k * pw, which keeps the rows a micro-kernel streams
 * contiguous (gm_gemm_pack_b makes one with pw = gm_gemm_nr(), the micro-kernel's width). pw
 * must be a multiple of GM_GEMM_PANEL or of gm_gemm_nr(), or >= n, and the columns up to n
 * rounded up to GM_GEMM_PANEL must be readable (their values are ignored). C is row-major
 * with leading dimension ldc; only the first n columns are written.
 *
 * Every C element is accumulated in a fixed order (p ascending) whatever m, n and the row
 * block a caller passes, so results do not depend on how work is split across threads. With
 * accumulate != 0 the sum starts from C's value, so splitting k across consecutive calls
 * gives bitwise the same result as one call.
 * The micro-kernels exist for AVX-512, AVX2+FMA and portable C; the one of the ISA in use
 * (gm_cpu_isa(), isa.h) runs. */
#ifndef GEOMOPS_CPU_GEMM_H
#define GEOMOPS_CPU_GEMM_H

#include <stdint.h>

/* Panel width in elements (128 bytes) and the padding of B's rows: a multiple of every
 * micro-kernel's column block. */
#define GM_GEMM_PANEL_F32 32
#define GM_GEMM_PANEL_F64 16

void gm_gemm_f32(int64_t m, int64_t n, int64_t k, const float* A, int64_t sa_i, int64_t sa_p, const float* B,
                 int64_t ldb, int64_t pw, int64_t ps, float* C, int64_t ldc, int accumulate);
void gm_gemm_f64(int64_t m, int64_t n, int64_t k, const double* A, int64_t sa_i, int64_t sa_p,
                 const double* B, int64_t ldb, int64_t pw, int64_t ps, double* C, int64_t ldc,
                 int accumulate);

/* Columns one micro-kernel call of the ISA in use covers (a divisor of GM_GEMM_PANEL_*). */
int64_t gm_gemm_nr_f32(void);
int64_t gm_gemm_nr_f64(void);

/* Bp = the k x n row-major B (leading dimension ldb) in column panels of width nr, zero-padded
 * to a multiple of nr: Bp[(j / nr) * k * nr + p * nr + j % nr] (for gm_gemm_* with ldb = pw = nr,
 * ps = k * nr). Bp holds k * round_up(n, nr) elements. */
void gm_gemm_pack_b_f32(int64_t k, int64_t n, const float* B, int64_t ldb, int64_t nr, float* Bp);
void gm_gemm_pack_b_f64(int64_t k, int64_t n, const double* B, int64_t ldb, int64_t nr, double* Bp);

/* Rows handled per micro-kernel call: callers splitting rows across threads use multiples. */
#define GM_GEMM_MR 12

static inline int64_t gm_round_up(int64_t v, int64_t m) {
    return (v + m - 1) / m * m;
}

#endif /* GEOMOPS_CPU_GEMM_H */
