/* One micro-kernel, GM_GEMM_MICRO: GM_GEMM_MICRO_ROWS rows of A times nv vectors of B
 * columns, full k, fixed p order (included by gemm_kernel.h once per row count, so the row
 * count is a literal: the accumulators stay in registers and the row loops unroll fully).
 * Undefines GM_GEMM_MICRO and GM_GEMM_MICRO_ROWS. */
GM_ISA_ATTR static void GM_GEMM_MICRO(int64_t k, const GM_T* A, int64_t sa_i, int64_t sa_p, const GM_T* B,
                                      int64_t ldb, GM_T* C, int64_t ldc, int nv, int ncols, int accumulate) {
    GM_GEMM_VEC acc0[GM_GEMM_MICRO_ROWS], acc1[GM_GEMM_MICRO_ROWS];
#pragma GCC unroll 16
    for (int r = 0; r < GM_GEMM_MICRO_ROWS; ++r) {
        acc0[r] = (GM_GEMM_VEC){0};
        acc1[r] = (GM_GEMM_VEC){0};
    }
    if (accumulate) { /* start from C: the sum over p stays sequential across calls */
        for (int r = 0; r < GM_GEMM_MICRO_ROWS; ++r) {
            GM_T tmp[2 * GM_GEMM_VL];
            memset(tmp, 0, sizeof(tmp));
            memcpy(tmp, C + r * ldc, (size_t)ncols * sizeof(GM_T));
            memcpy(&acc0[r], tmp, sizeof(GM_GEMM_VEC));
            memcpy(&acc1[r], tmp + GM_GEMM_VL, sizeof(GM_GEMM_VEC));
        }
    }
    if (nv == 2) {
        for (int64_t p = 0; p < k; ++p) {
            const GM_T* b = B + p * ldb;
            const GM_GEMM_VEC b0 = *(const GM_GEMM_UVEC*)b;
            const GM_GEMM_VEC b1 = *(const GM_GEMM_UVEC*)(b + GM_GEMM_VL);
            const GM_T* a = A + p * sa_p;
#pragma GCC unroll 16
            for (int r = 0; r < GM_GEMM_MICRO_ROWS; ++r) {
                const GM_T av = a[r * sa_i];
                acc0[r] += av * b0;
                acc1[r] += av * b1;
            }
        }
    } else {
        for (int64_t p = 0; p < k; ++p) {
            const GM_GEMM_VEC b0 = *(const GM_GEMM_UVEC*)(B + p * ldb);
            const GM_T* a = A + p * sa_p;
#pragma GCC unroll 16
            for (int r = 0; r < GM_GEMM_MICRO_ROWS; ++r) acc0[r] += a[r * sa_i] * b0;
        }
    }
    if (ncols == 2 * GM_GEMM_VL || (nv == 1 && ncols == GM_GEMM_VL)) { /* full vectors: no tail */
        for (int r = 0; r < GM_GEMM_MICRO_ROWS; ++r) {
            GM_GEMM_UVEC* c = (GM_GEMM_UVEC*)(C + r * ldc);
            c[0] = acc0[r];
            if (nv == 2) c[1] = acc1[r];
        }
        return;
    }
    for (int r = 0; r < GM_GEMM_MICRO_ROWS; ++r) {
        GM_T* c = C + r * ldc;
        GM_T tmp[2 * GM_GEMM_VL];
        memcpy(tmp, &acc0[r], sizeof(GM_GEMM_VEC));
        memcpy(tmp + GM_GEMM_VL, &acc1[r], sizeof(GM_GEMM_VEC));
        for (int j = 0; j < ncols; ++j) c[j] = tmp[j];
    }
}

#undef GM_GEMM_MICRO
#undef GM_GEMM_MICRO_ROWS
