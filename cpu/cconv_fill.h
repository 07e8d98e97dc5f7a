/* The patch column of one output row, per float type and ISA (ISA body, see isa_variants.h;
 * included by cconv_impl.h): the innermost loop of the forward op and the filter gradient. */

/* Adds every neighbor of row i into col[0:K] (col must be zeroed by the caller). */
GM_ISA_ATTR static void GM_IFN(GM_TFN(fill_column))(const cconv_ctx* c, int64_t i, GM_T* col) {
    const gm_cconv_params* p = c->p;
    const GM_T* feat = (const GM_T*)p->inp_features;
    const int64_t Cin = c->Cin;
    int cell[8];
    double w[8];
    const int64_t end = p->neighbors_row_splits[i + 1];
    const int64_t row_bytes = Cin * (int64_t)sizeof(GM_T);
    for (int64_t n = p->neighbors_row_splits[i]; n < end; ++n) {
        /* neighbors are scattered in memory: fetch a later neighbor's features early */
        if (n + GM_PREFETCH_AHEAD < end) {
            const char* nf = (const char*)(feat + gm_cconv_neighbor_index(p, n + GM_PREFETCH_AHEAD) * Cin);
            for (int64_t b = 0; b < row_bytes; b += 64) __builtin_prefetch(nf + b);
        }
        int64_t j;
        int taps = GM_TFN(gm_cconv_entry_taps)(p, &c->geom, i, n, &j, cell, w);
        if (taps == 0) continue;
        double a = GM_TFN(gm_cconv_entry_weight)(p, n, j);
        const GM_T* restrict f = feat + j * Cin;
        for (int t = 0; t < taps; ++t) {
            const GM_T coef = (GM_T)(w[t] * a);
            GM_T* restrict dst = col + (int64_t)cell[t] * Cin;
            for (int64_t ic = 0; ic < Cin; ++ic) dst[ic] += coef * f[ic];
        }
    }
}
