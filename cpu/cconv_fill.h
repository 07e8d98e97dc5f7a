/* The patch row of one output row, per float type and ISA (ISA body, see isa_variants.h;
 * included by cconv_impl.h): the innermost loops of the forward op, the transpose and the
 * filter gradient.
 *
 * A row's entries are handled in batches of GM_TAP_BATCH: first the taps of the whole batch
 * (cconv_taps.h), then the scatter, which adds w_t a_n feat_j into the patch cells. Every patch
 * element receives its terms in the same order as a plain loop over entries and taps (entries
 * ascending, then taps in corner order), with the same operations, so the split changes no bit. */

#if GM_ISA_ID == GM_ISA_AVX512
#define GM_FILL_VBYTES 64
#elif GM_ISA_ID == GM_ISA_AVX2
#define GM_FILL_VBYTES 32
#else
#define GM_FILL_VBYTES 16
#endif
#define GM_FILL_VL  (GM_FILL_VBYTES / (int)sizeof(GM_T))
#define GM_FILL_VEC GM_IFN(GM_TFN(fill_vec))
typedef GM_T GM_FILL_VEC __attribute__((vector_size(GM_FILL_VBYTES), aligned(sizeof(GM_T))));

/* Taps of the entries [n0, n0 + cnt) of row i (cnt <= GM_TAP_BATCH) into tb. */
GM_ISA_ATTR static void GM_IFN(GM_TFN(batch_taps))(const cconv_ctx* c, int64_t i, int64_t n0, int cnt,
                                                   gm_tap_batch* tb) {
    const gm_cconv_params* p = c->p;
#if GM_ISA_ID != GM_ISA_GENERIC
    if (c->simd_taps) {
        GM_TFN(simd_taps)(c, i, n0, cnt, tb);
        return;
    }
#endif
    for (int e = 0; e < cnt; ++e) {
        int cell[8];
        double w[8];
        const int taps = GM_TFN(gm_cconv_entry_taps)(p, &c->geom, i, n0 + e, &tb->j[e], cell, w);
        tb->ntaps[e] = (uint8_t)taps;
        if (taps == 0) continue;
        const double a = GM_TFN(gm_cconv_entry_weight)(p, n0 + e, tb->j[e]);
        for (int t = 0; t < taps; ++t) {
            tb->cell[t][e] = cell[t];
            tb->wa[t][e] = w[t] * a;
        }
    }
}

/* col[cell_t * Cin + ic] += (GM_T)(w_t a) * feat_j[ic] for the cnt entries of tb: four vectors of
 * channels at a time, held in registers over the entry's taps. */
GM_ISA_ATTR static void GM_IFN(GM_TFN(scatter_taps))(const GM_T* feat, int64_t Cin, const gm_tap_batch* tb,
                                                     int cnt, GM_T* col) {
    typedef GM_FILL_VEC vec;
    const int VL = GM_FILL_VL;
    for (int e = 0; e < cnt; ++e) {
        const int nt = tb->ntaps[e];
        if (nt == 0) continue;
        const GM_T* f = feat + tb->j[e] * Cin;
        GM_T cf[8];
        GM_T* dst[8];
        for (int t = 0; t < nt; ++t) {
            cf[t] = (GM_T)tb->wa[t][e];
            dst[t] = col + (int64_t)tb->cell[t][e] * Cin;
        }
        int64_t ic = 0;
        for (; ic + 4 * VL <= Cin; ic += 4 * VL) {
            const vec f0 = *(const vec*)(f + ic), f1 = *(const vec*)(f + ic + VL),
                      f2 = *(const vec*)(f + ic + 2 * VL), f3 = *(const vec*)(f + ic + 3 * VL);
            for (int t = 0; t < nt; ++t) {
                vec* d = (vec*)(dst[t] + ic);
                d[0] += cf[t] * f0;
                d[1] += cf[t] * f1;
                d[2] += cf[t] * f2;
                d[3] += cf[t] * f3;
            }
        }
        for (; ic + 2 * VL <= Cin; ic += 2 * VL) { /* e.g. 32 float channels with AVX-512 */
            const vec f0 = *(const vec*)(f + ic), f1 = *(const vec*)(f + ic + VL);
            for (int t = 0; t < nt; ++t) {
                vec* d = (vec*)(dst[t] + ic);
                d[0] += cf[t] * f0;
                d[1] += cf[t] * f1;
            }
        }
        for (; ic + VL <= Cin; ic += VL) {
            const vec f0 = *(const vec*)(f + ic);
            for (int t = 0; t < nt; ++t) *(vec*)(dst[t] + ic) += cf[t] * f0;
        }
#if GM_ISA_ID == GM_ISA_AVX512
        /* A trailing half vector: plain AVX-512F has no FMA on 256-bit vectors, so this is a
         * multiply and an add (the rest is fused), exactly as in the compiler-vectorised loop
         * that this one replaced: the results keep their bits. */
        if (ic + VL / 2 <= Cin) {
            typedef GM_T hvec __attribute__((vector_size(GM_FILL_VBYTES / 2), aligned(sizeof(GM_T))));
            const hvec f0 = *(const hvec*)(f + ic);
            for (int t = 0; t < nt; ++t) *(hvec*)(dst[t] + ic) += cf[t] * f0;
            ic += VL / 2;
        }
#endif
        for (; ic < Cin; ++ic)
            for (int t = 0; t < nt; ++t) dst[t][ic] += cf[t] * f[ic];
    }
}

/* Adds every neighbor of row i into the patch row col[0:K] (zeroed by the caller). Prefetches the
 * positions and features of row `ahead`'s neighbors (a row processed soon; -1: none): they are
 * scattered in memory and the taps of a batch need all of its positions at once. */
GM_ISA_ATTR static void GM_IFN(GM_TFN(fill_row))(const cconv_ctx* c, int64_t i, int64_t ahead, GM_T* col) {
    const gm_cconv_params* p = c->p;
    const GM_T* feat = (const GM_T*)p->inp_features;
    const int64_t Cin = c->Cin;
    if (ahead >= 0) {
        const GM_T* pos = (const GM_T*)p->inp_positions;
        const int64_t row_bytes = Cin * (int64_t)sizeof(GM_T);
        for (int64_t n = p->neighbors_row_splits[ahead]; n < p->neighbors_row_splits[ahead + 1]; ++n) {
            const int64_t j = gm_cconv_neighbor_index(p, n);
            __builtin_prefetch(pos + 3 * j);
            const char* nf = (const char*)(feat + j * Cin);
            for (int64_t b = 0; b < row_bytes; b += 64) __builtin_prefetch(nf + b);
        }
    }
    gm_tap_batch tb;
    const int64_t end = p->neighbors_row_splits[i + 1];
    for (int64_t n0 = p->neighbors_row_splits[i]; n0 < end; n0 += GM_TAP_BATCH) {
        const int cnt = (int)(end - n0 < GM_TAP_BATCH ? end - n0 : GM_TAP_BATCH);
        GM_IFN(GM_TFN(batch_taps))(c, i, n0, cnt, &tb);
        GM_IFN(GM_TFN(scatter_taps))(feat, Cin, &tb, cnt, col);
    }
}

#undef GM_FILL_VBYTES
#undef GM_FILL_VL
#undef GM_FILL_VEC
