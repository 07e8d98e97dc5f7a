/* Per-type helpers of the continuous convolution (twin body, see geomops/twin.h; included by
 * cconv_math.h). GM_T is the float type of the call's arrays. Each reads one entry or one row
 * of a gm_cconv_params call; the OpenMP kernels (cpu/cconv_impl.h) and the CUDA kernels use
 * these, so every formula exists once. Semantics: docs/cconv.md, "Semantics". */

/* Taps of neighbor entry n of result row i: its input point (*jout), the relative position
 * (input - output forward, output - input transpose), the extent (shared, per output point
 * forward, per input point transpose), then mapping and interpolation (gm_cconv_filter_taps).
 * Returns the number of taps written to cell/w. */
GM_HD int GM_TFN(gm_cconv_entry_taps)(const gm_cconv_params* p, const gm_cconv_geometry* g, int64_t i,
                                      int64_t n, int64_t* jout, int cell[8], double w[8]) {
    const int64_t j = gm_cconv_neighbor_index(p, n);
    *jout = j;
    const GM_T* xo = (const GM_T*)p->out_positions + 3 * i;
    const GM_T* xi = (const GM_T*)p->inp_positions + 3 * j;
    double rel[3];
    for (int k = 0; k < 3; ++k)
        rel[k] = p->transpose ? (double)xo[k] - (double)xi[k] : (double)xi[k] - (double)xo[k];
    if (p->extents_rows == 1) return gm_cconv_filter_taps(g, rel, g->inv_extent, cell, w);
    const GM_T* e = (const GM_T*)p->extents + (p->transpose ? j : i) * p->extents_cols;
    double inv[3];
    for (int k = 0; k < 3; ++k) inv[k] = 1.0 / (double)e[p->extents_cols == 1 ? 0 : k];
    return gm_cconv_filter_taps(g, rel, inv, cell, w);
}

/* psi_i, the normaliser of the forward op's output row i: the sum of the row's
 * neighbors_importance, accumulated in double in entry order and rounded to the feature type,
 * or the row's neighbor count without importance. */
GM_HD double GM_TFN(gm_cconv_row_normalizer)(const gm_cconv_params* p, int64_t i) {
    const int64_t b = p->neighbors_row_splits[i], e = p->neighbors_row_splits[i + 1];
    if (!p->neighbors_importance) return (double)(e - b);
    double psi = 0.0;
    for (int64_t n = b; n < e; ++n) psi += (double)((const GM_T*)p->neighbors_importance)[n];
    return (double)(GM_T)psi; /* the normaliser has the output type */
}

/* phi_j, the transpose's normaliser of input point j: inp_neighbors_importance_sum[j], or the
 * count of row j of the forward list (inp_neighbors_row_splits) without importance. */
GM_HD double GM_TFN(gm_cconv_inp_normalizer)(const gm_cconv_params* p, int64_t j) {
    return p->neighbors_importance
               ? (double)((const GM_T*)p->inp_neighbors_importance_sum)[j]
               : (double)(p->inp_neighbors_row_splits[j + 1] - p->inp_neighbors_row_splits[j]);
}

/* The normaliser of row r of the op p describes: psi_r (forward), phi_r (transpose). */
GM_HD double GM_TFN(gm_cconv_normalizer)(const gm_cconv_params* p, int64_t r) {
    return p->transpose ? GM_TFN(gm_cconv_inp_normalizer)(p, r) : GM_TFN(gm_cconv_row_normalizer)(p, r);
}

/* Scalar weight of entry n (input point j): a_n = neighbors_importance[n] * inp_importance[j]
 * (forward), c_n = neighbors_importance[n] / phi_j (transpose; phi_j only with normalize). */
GM_HD double GM_TFN(gm_cconv_entry_weight)(const gm_cconv_params* p, int64_t n, int64_t j) {
    double a = p->neighbors_importance ? (double)((const GM_T*)p->neighbors_importance)[n] : 1.0;
    if (!p->transpose) {
        if (p->inp_importance) a *= (double)((const GM_T*)p->inp_importance)[j];
    } else if (p->normalize) {
        a /= gm_cconv_divisor(GM_TFN(gm_cconv_inp_normalizer)(p, j));
    }
    return a;
}

/* Factor applied to output row i: 1/psi_i (forward with normalize), out_importance[i]
 * (transpose), else 1. */
GM_HD double GM_TFN(gm_cconv_row_scale)(const gm_cconv_params* p, int64_t i) {
    if (p->transpose) return p->out_importance ? (double)((const GM_T*)p->out_importance)[i] : 1.0;
    if (!p->normalize) return 1.0;
    return 1.0 / gm_cconv_divisor(GM_TFN(gm_cconv_row_normalizer)(p, i));
}
