/* Per-type helpers of the continuous convolution (twin body, see geomops/twin.h; included by
 * cconv_math.h). GM_T is the float type of the call's arrays. Each reads one entry or one row
 * of a gm_cconv_params call; the OpenMP kernels (cpu/cconv_impl.h) and the CUDA kernels use
 * these, so every formula exists once. Semantics: docs/cconv.md, "Semantics". */

/* Neighbor entry n of result row i: its input point (*jout), the relative position rel (input
 * - output forward, output - input transpose) and the inverse extent inv (shared, per output
 * point forward, per input point transpose). */
GM_HD void GM_TFN(gm_cconv_entry_geometry)(const gm_cconv_params* p, const gm_cconv_geometry* g, int64_t i,
                                           int64_t n, int64_t* jout, double rel[3], double inv[3]) {
    const int64_t j = gm_cconv_neighbor_index(p, n);
    *jout = j;
    const GM_T* xo = (const GM_T*)p->out_positions + 3 * i;
    const GM_T* xi = (const GM_T*)p->inp_positions + 3 * j;
    for (int k = 0; k < 3; ++k)
        rel[k] = p->transpose ? (double)xo[k] - (double)xi[k] : (double)xi[k] - (double)xo[k];
    if (p->extents_rows == 1) {
        for (int k = 0; k < 3; ++k) inv[k] = g->inv_extent[k];
        return;
    }
    const GM_T* e = (const GM_T*)p->extents + (p->transpose ? j : i) * p->extents_cols;
    for (int k = 0; k < 3; ++k) inv[k] = 1.0 / (double)e[p->extents_cols == 1 ? 0 : k];
}

/* Taps of neighbor entry n of result row i (gm_cconv_entry_geometry, then mapping and
 * interpolation: gm_cconv_filter_taps). Returns the number of taps written to cell/w. */
GM_HD int GM_TFN(gm_cconv_entry_taps)(const gm_cconv_params* p, const gm_cconv_geometry* g, int64_t i,
                                      int64_t n, int64_t* jout, int cell[8], double w[8]) {
    double rel[3], inv[3];
    GM_TFN(gm_cconv_entry_geometry)(p, g, i, n, jout, rel, inv);
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

/* The per-entry derivatives of L = <out, g> for entry n of row i, given gf = row i of
 * Gf = g F^T ((F g_i)[s * Cin + ic]) and the row's factor `scale` (gm_cconv_row_scale).
 * Returns the neighbor product sum_t w_t <gf[cell_t], f_j> (the derivative w.r.t. the entry's
 * scalar weight before any importance or normalisation factor). When d_rel / d_ext are given,
 * writes d L / d rel (3 values; rel = the entry's relative position) and d L / d extent (the
 * entry's extent: extents_cols values, an isotropic extent gets the sum over the axes):
 * scale * a_n * sum_t (d w_t / d rel) <gf[cell_t], f_j>, through gm_cconv_coordinate_vjp. */
GM_HD double GM_TFN(gm_cconv_entry_grads)(const gm_cconv_params* p, const gm_cconv_geometry* g, int64_t i,
                                          int64_t n, const GM_T* gf, double scale, double* d_rel,
                                          double* d_ext) {
    const int64_t Cin = p->in_channels;
    const int derivs = d_rel || d_ext;
    int64_t j;
    double rel[3], inv[3], v[3], w[8], dw[8][3];
    int cell[8];
    GM_TFN(gm_cconv_entry_geometry)(p, g, i, n, &j, rel, inv);
    const int taps = gm_cconv_grid_coordinate(g, rel, inv, v)
                         ? gm_cconv_interpolate(g, v, cell, w, derivs ? dw : NULL)
                         : 0;
    const GM_T* f = (const GM_T*)p->inp_features + j * Cin;
    double d = 0.0, gv[3] = {0.0, 0.0, 0.0};
    for (int t = 0; t < taps; ++t) {
        const GM_T* row = gf + (int64_t)cell[t] * Cin;
        double dot = 0.0;
        for (int64_t ic = 0; ic < Cin; ++ic) dot += (double)row[ic] * (double)f[ic];
        d += w[t] * dot;
        if (derivs)
            for (int k = 0; k < 3; ++k) gv[k] += dw[t][k] * dot;
    }
    if (!derivs) return d;
    double dr[3] = {0.0, 0.0, 0.0}, de[3] = {0.0, 0.0, 0.0};
    if (taps > 0) {
        const double a = scale * GM_TFN(gm_cconv_entry_weight)(p, n, j);
        for (int k = 0; k < 3; ++k) gv[k] *= a;
        gm_cconv_coordinate_vjp(g, rel, inv, gv, dr, de);
    }
    if (d_rel)
        for (int k = 0; k < 3; ++k) d_rel[k] = dr[k];
    if (d_ext) {
        if (p->extents_cols == 1)
            d_ext[0] = de[0] + de[1] + de[2];
        else
            for (int k = 0; k < 3; ++k) d_ext[k] = de[k];
    }
    return d;
}

/* ---- backward functions (gm_cconv_grad_params) ---------------------------------------------
 * Each writes what the facade's backward functions computed in float64 NumPy before, with the
 * same operations in the same order, so the results are bitwise those of that code:
 * np.bincount(keys, weights) adds each bin's entries in ascending entry order starting from 0.0,
 * which is the order of a row of the original list (rows) or of the inverted list (points). */

/* Value k of an optional float array, 1 when absent. */
GM_HD double GM_TFN(gm_cconv_bwd_value)(const void* a, int64_t k) {
    return a ? (double)((const GM_T*)a)[k] : 1.0;
}

/* Weight of entry pos of the inverted list (original entry n): the entry's importance over the
 * divisor of its normalised row, imp_n / psi_r (forward; the feature gradient is a transpose
 * convolution whose entries carry a_n / psi_i), or imp_n / phi_j (transpose, c_n). */
GM_HD void GM_TFN(gm_cconv_bwd_inv_weight)(const gm_cconv_grad_params* p, int64_t pos) {
    const int64_t n = p->inv_permutation[pos];
    const int64_t key = p->transpose ? gm_cconv_index_at(p->neighbors_index, p->index_int64, n)
                                     : gm_cconv_index_at(p->inv_index, p->index_int64, pos);
    ((GM_T*)p->inv_weights)[pos] =
        (GM_T)(GM_TFN(gm_cconv_bwd_value)(p->neighbors_importance, n) / gm_cconv_bwd_divisor(p, key));
}

/* The importance gradients that belong to row r of the neighbor list. Forward:
 * d neighbors_importance[n] = inp_imp_j * dots_n / psi_r, minus (normalize, psi_r != 0)
 * gout_r / psi_r with gout_r = sum_row nb_imp_n * inp_imp_j * dots_n / psi_r (d psi_r / d imp_n = 1).
 * Transpose: d out_importance[r] = sum_row c_n * dots_n and
 * d neighbors_importance[n] = out_imp_r * dots_n / phi_j. */
GM_HD void GM_TFN(gm_cconv_bwd_row)(const gm_cconv_grad_params* p, int64_t r) {
    const int64_t b = p->neighbors_row_splits[r], e = p->neighbors_row_splits[r + 1];
    const double* dots = p->products;
    if (!p->transpose) {
        if (!p->d_neighbors_importance) return;
        const double psi = gm_cconv_bwd_divisor(p, r);
        double corr = 0.0;
        if (p->divisor) {
            double gout = 0.0;
            for (int64_t n = b; n < e; ++n) {
                const int64_t j = gm_cconv_index_at(p->neighbors_index, p->index_int64, n);
                gout += GM_TFN(gm_cconv_bwd_value)(p->neighbors_importance, n) *
                        GM_TFN(gm_cconv_bwd_value)(p->point_importance, j) * (dots[n] / psi);
            }
            corr = p->was_zero[r] ? 0.0 : gout / psi;
        }
        for (int64_t n = b; n < e; ++n) {
            const int64_t j = gm_cconv_index_at(p->neighbors_index, p->index_int64, n);
            double d = GM_TFN(gm_cconv_bwd_value)(p->point_importance, j) * (dots[n] / psi);
            if (p->divisor) d = d - corr;
            ((GM_T*)p->d_neighbors_importance)[n] = (GM_T)d;
        }
        return;
    }
    if (p->d_point_importance) {
        double s = 0.0;
        for (int64_t n = b; n < e; ++n) {
            const int64_t j = gm_cconv_index_at(p->neighbors_index, p->index_int64, n);
            s +=
                GM_TFN(gm_cconv_bwd_value)(p->neighbors_importance, n) / gm_cconv_bwd_divisor(p, j) * dots[n];
        }
        ((GM_T*)p->d_point_importance)[r] = (GM_T)s;
    }
    if (p->d_neighbors_importance) {
        const double oi = GM_TFN(gm_cconv_bwd_value)(p->point_importance, r);
        for (int64_t n = b; n < e; ++n) {
            const int64_t j = gm_cconv_index_at(p->neighbors_index, p->index_int64, n);
            ((GM_T*)p->d_neighbors_importance)[n] = (GM_T)(oi * dots[n] / gm_cconv_bwd_divisor(p, j));
        }
    }
}

/* The importance gradients that belong to point q (row q of the inverted list). Forward:
 * d inp_importance[q] = sum_entries nb_imp_n * dots_n / psi_r. Transpose (normalize, phi_q != 0):
 * d inp_neighbors_importance_sum[q] = sum_entries -out_imp_r * nb_imp_n * dots_n / phi_q^2, else 0. */
GM_HD void GM_TFN(gm_cconv_bwd_inv_row)(const gm_cconv_grad_params* p, int64_t q) {
    const int64_t b = p->inv_row_splits[q], e = p->inv_row_splits[q + 1];
    const double* dots = p->products;
    if (!p->transpose) {
        if (!p->d_point_importance) return;
        double s = 0.0;
        for (int64_t pos = b; pos < e; ++pos) {
            const int64_t n = p->inv_permutation[pos];
            const int64_t r = gm_cconv_index_at(p->inv_index, p->index_int64, pos);
            s += GM_TFN(gm_cconv_bwd_value)(p->neighbors_importance, n) *
                 (dots[n] / gm_cconv_bwd_divisor(p, r));
        }
        ((GM_T*)p->d_point_importance)[q] = (GM_T)s;
        return;
    }
    if (!p->d_importance_sum) return;
    double s = 0.0;
    if (p->divisor && !p->was_zero[q]) {
        const double phi = p->divisor[q];
        for (int64_t pos = b; pos < e; ++pos) {
            const int64_t n = p->inv_permutation[pos];
            const int64_t r = gm_cconv_index_at(p->inv_index, p->index_int64, pos);
            s += -GM_TFN(gm_cconv_bwd_value)(p->point_importance, r) *
                 GM_TFN(gm_cconv_bwd_value)(p->neighbors_importance, n) * dots[n] / (phi * phi);
        }
    }
    ((GM_T*)p->d_importance_sum)[q] = (GM_T)s;
}

/* The position and extent gradients that belong to row r of the neighbor list: the sum of its
 * entries' d L / d rel (entry_position_grads, in entry order), negated for the forward op
 * (rel = x_inp - x_out) into d out_positions[r]; per-output-point extents of the forward op:
 * the sum of the entries' extent gradients into d extents[r]. */
GM_HD void GM_TFN(gm_cconv_bwd_position_row)(const gm_cconv_grad_params* p, int64_t r) {
    const int64_t b = p->neighbors_row_splits[r], e = p->neighbors_row_splits[r + 1];
    if (p->d_out_positions) {
        double s[3] = {0.0, 0.0, 0.0};
        for (int64_t n = b; n < e; ++n)
            for (int k = 0; k < 3; ++k) s[k] += p->entry_position_grads[3 * n + k];
        for (int k = 0; k < 3; ++k)
            ((GM_T*)p->d_out_positions)[3 * r + k] = (GM_T)(p->transpose ? s[k] : -s[k]);
    }
    if (p->d_extents && p->extents_rows != 1 && !p->transpose) {
        const int cols = p->extents_cols;
        for (int k = 0; k < cols; ++k) {
            double s = 0.0;
            for (int64_t n = b; n < e; ++n) s += p->entry_extent_grads[cols * n + k];
            ((GM_T*)p->d_extents)[cols * r + k] = (GM_T)s;
        }
    }
}

/* The position and extent gradients that belong to input point q (row q of the inverted
 * list, its entries in list order): the sum of their d L / d rel into d inp_positions[q],
 * negated for the transpose (rel = x_out - x_inp); per-input-point extents of the transpose:
 * the sum of their extent gradients into d extents[q]. */
GM_HD void GM_TFN(gm_cconv_bwd_position_inv_row)(const gm_cconv_grad_params* p, int64_t q) {
    const int64_t b = p->inv_row_splits[q], e = p->inv_row_splits[q + 1];
    if (p->d_inp_positions) {
        double s[3] = {0.0, 0.0, 0.0};
        for (int64_t pos = b; pos < e; ++pos) {
            const int64_t n = p->inv_permutation[pos];
            for (int k = 0; k < 3; ++k) s[k] += p->entry_position_grads[3 * n + k];
        }
        for (int k = 0; k < 3; ++k)
            ((GM_T*)p->d_inp_positions)[3 * q + k] = (GM_T)(p->transpose ? -s[k] : s[k]);
    }
    if (p->d_extents && p->extents_rows != 1 && p->transpose) {
        const int cols = p->extents_cols;
        for (int k = 0; k < cols; ++k) {
            double s = 0.0;
            for (int64_t pos = b; pos < e; ++pos)
                s += p->entry_extent_grads[cols * p->inv_permutation[pos] + k];
            ((GM_T*)p->d_extents)[cols * q + k] = (GM_T)s;
        }
    }
}

/* A shared extent's gradient: the block partials of gm_cconv_bwd_extent_block added in block
 * order. */
GM_HD void GM_TFN(gm_cconv_bwd_extent_total)(const gm_cconv_grad_params* p, const double* partials,
                                             int64_t blocks) {
    for (int k = 0; k < p->extents_cols; ++k) {
        double s = 0.0;
        for (int64_t b = 0; b < blocks; ++b) s += partials[b * p->extents_cols + k];
        ((GM_T*)p->d_extents)[k] = (GM_T)s;
    }
}
