/* The filter taps of a batch of neighbor entries (included once by cconv.c).
 *
 * gm_cconv_filter_taps (geomops/cconv_math.h) is the one definition of the taps. Its most used
 * case, linear interpolation with the identity or radial mapping, is also written here with AVX2
 * double lanes, four entries per step: the same IEEE operations in the same order, compiled for
 * "avx2" without FMA so that nothing is contracted, which makes every cell and every weight
 * bitwise the scalar one (tests/test_gemm_isa.py compares the ISA variants' taps bit for bit).
 * It is about ten times cheaper per entry than the scalar function, whose branches over the
 * eight corners cost as much as the patch fill itself. */

/* Entries whose taps one batch holds; a multiple of 4 (the SIMD lane count). */
#define GM_TAP_BATCH 32

/* The taps of up to GM_TAP_BATCH entries, struct-of-arrays (filled by batch_taps, cconv_fill.h):
 * per entry e its input point j[e] and ntaps[e] taps (0: the entry adds nothing), tap t being
 * filter cell cell[t][e] with weight wa[t][e] = w_t * a_e (a_e: gm_cconv_entry_weight). */
typedef struct {
    int64_t j[GM_TAP_BATCH]; /* input point */
    int32_t cell[8][GM_TAP_BATCH];
    double wa[8][GM_TAP_BATCH];
    uint8_t ntaps[GM_TAP_BATCH];
} gm_tap_batch;

/* Whether the SIMD taps below apply to the call's geometry. */
static int gm_cconv_simd_taps(const gm_cconv_geometry* g) {
    return GM_ISA_X86 && g->interpolation == GM_INTERP_LINEAR &&
           (g->mapping == GM_MAP_IDENTITY || g->mapping == GM_MAP_BALL_TO_CUBE_RADIAL);
}

#if GM_ISA_X86
#include <immintrin.h>

/* v < lo ? lo : (v > hi ? hi : v), lane-wise (gm_clampd, also for -0 and NaN). */
__attribute__((target("avx2"))) static inline __m256d gm_clamp4(__m256d v, __m256d lo, __m256d hi) {
    const __m256d r = _mm256_blendv_pd(v, hi, _mm256_cmp_pd(v, hi, _CMP_GT_OQ));
    return _mm256_blendv_pd(r, lo, _mm256_cmp_pd(v, lo, _CMP_LT_OQ));
}

/* Taps of the four entries e..e+3 of tb from their relative positions (rx, ry, rz), inverse
 * extents (ix, iy, iz) and scalar weights ea: gm_cconv_grid_coordinate (identity or radial
 * mapping), then gm_cconv_axis and gm_cconv_interpolate for linear interpolation, step for
 * step. The inputs come in registers: built through memory from scalar stores, the wide loads
 * would wait for the stores to drain (failed store-to-load forwarding). */
__attribute__((target("avx2"), always_inline)) static inline void gm_cconv_taps4_avx2(
    const gm_cconv_geometry* g, __m256d rx, __m256d ry, __m256d rz, __m256d ix, __m256d iy, __m256d iz,
    __m256d ea, gm_tap_batch* tb, int e) {
    const __m256d zero = _mm256_setzero_pd(), one = _mm256_set1_pd(1.0);
    const __m256d absmask = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL));
    const int W = g->size[0], H = g->size[1];
    __m256d q[3] = {_mm256_mul_pd(rx, ix), _mm256_mul_pd(ry, iy), _mm256_mul_pd(rz, iz)};
    if (g->mapping == GM_MAP_BALL_TO_CUBE_RADIAL) { /* gm_map_radial */
        const __m256d two = _mm256_set1_pd(2.0);
        const __m256d u0 = _mm256_mul_pd(two, q[0]), u1 = _mm256_mul_pd(two, q[1]),
                      u2 = _mm256_mul_pd(two, q[2]);
        const __m256d m =
            _mm256_max_pd(_mm256_and_pd(u0, absmask),
                          _mm256_max_pd(_mm256_and_pd(u1, absmask), _mm256_and_pd(u2, absmask)));
        const __m256d centre = _mm256_cmp_pd(m, _mm256_set1_pd(1e-8), _CMP_LT_OQ);
        const __m256d r2 =
            _mm256_add_pd(_mm256_add_pd(_mm256_mul_pd(u0, u0), _mm256_mul_pd(u1, u1)), _mm256_mul_pd(u2, u2));
        const __m256d s = _mm256_div_pd(_mm256_mul_pd(_mm256_set1_pd(0.5), _mm256_sqrt_pd(r2)), m);
        q[0] = _mm256_blendv_pd(_mm256_mul_pd(u0, s), zero, centre);
        q[1] = _mm256_blendv_pd(_mm256_mul_pd(u1, s), zero, centre);
        q[2] = _mm256_blendv_pd(_mm256_mul_pd(u2, s), zero, centre);
    }
    __m256d finite = _mm256_castsi256_pd(_mm256_set1_epi64x(-1));
    __m128i i0[3], i1[3];
    __m256d w[3][2];
    for (int k = 0; k < 3; ++k) {
        const int n = g->size[k];
        __m256d v;
        if (g->align_corners) {
            v = _mm256_mul_pd(_mm256_add_pd(q[k], _mm256_set1_pd(0.5)), _mm256_set1_pd((double)(n - 1)));
        } else {
            v = _mm256_sub_pd(_mm256_add_pd(_mm256_add_pd(_mm256_mul_pd(q[k], _mm256_set1_pd((double)n)),
                                                          _mm256_set1_pd(g->offset[k])),
                                            _mm256_set1_pd((double)(n / 2))),
                              _mm256_set1_pd((n % 2 == 0) ? 0.5 : 0.0));
        }
        finite = _mm256_and_pd(finite, _mm256_cmp_pd(_mm256_sub_pd(v, v), zero, _CMP_EQ_OQ));
        const __m256d hi = _mm256_set1_pd((double)(n - 1));
        const __m256d lo = gm_clamp4(_mm256_round_pd(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC), zero, hi);
        i0[k] = _mm256_cvttpd_epi32(lo);
        i1[k] = _mm_min_epi32(_mm_add_epi32(i0[k], _mm_set1_epi32(1)), _mm_set1_epi32(n - 1));
        const __m256d a = gm_clamp4(_mm256_sub_pd(v, lo), zero, one);
        w[k][0] = _mm256_sub_pd(one, a);
        w[k][1] = a;
    }
    for (int c = 0; c < 8; ++c) {
        const int bx = c & 1, by = (c >> 1) & 1, bz = (c >> 2) & 1;
        const __m256d wt = _mm256_mul_pd(_mm256_mul_pd(w[0][bx], w[1][by]), w[2][bz]);
        const __m128i x = bx ? i1[0] : i0[0], y = by ? i1[1] : i0[1], z = bz ? i1[2] : i0[2];
        const __m128i cl = _mm_add_epi32(
            _mm_mullo_epi32(_mm_add_epi32(_mm_mullo_epi32(z, _mm_set1_epi32(H)), y), _mm_set1_epi32(W)), x);
        _mm_storeu_si128((__m128i*)&tb->cell[c][e], cl);
        _mm256_storeu_pd(&tb->wa[c][e], _mm256_mul_pd(wt, ea));
    }
    const int mask = _mm256_movemask_pd(finite);
    for (int l = 0; l < 4; ++l) tb->ntaps[e + l] = (mask >> l) & 1 ? 8 : 0;
}
#endif
