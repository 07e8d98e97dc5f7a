// Type-generic body of the CUDA continuous convolution (twin body, see geomops/twin.h; included by
// cuda/cconv.cu once per float type). Scheme and plan: the comment at the top of cuda/cconv.cu.

#define GM_GEMM GM_TFN(gm_dev_gemm)

// ---- kernels (one thread per item) -------------------------------------------------------------

// Taps of the entries [w0, w0 + count) of rows [i0, i1): cell (-1 after the last tap) and the
// coefficient (T)(w_t * a_n) the CPU fill adds with (cpu/cconv_fill.h), 8 slots per entry.
__global__ void GM_TFN(gm_cconv_taps_kernel)(gm_cconv_params p, int64_t i0, int64_t i1, int64_t w0,
                                             int64_t count, int* cells, GM_T* coefs) {
    gm_cconv_geometry geom;
    gm_cconv_geometry_init(&geom, &p);
    GM_FOR_EACH(t, count) {
        const int64_t n = w0 + t;
        const int64_t i = gm_cconv_row_of(p.neighbors_row_splits, i0, i1, n);
        int cell[8];
        double w[8];
        int64_t j;
        const int taps = GM_TFN(gm_cconv_entry_taps)(&p, &geom, i, n, &j, cell, w);
        const double a = taps > 0 ? GM_TFN(gm_cconv_entry_weight)(&p, n, j) : 0.0;
        for (int q = 0; q < 8; ++q) {
            cells[t * 8 + q] = q < taps ? cell[q] : -1;
            coefs[t * 8 + q] = q < taps ? (GM_T)(w[q] * a) : (GM_T)0;
        }
    }
}

// Patch columns of rows [i0, i0 + cols), one thread per (row, input channel): it zeroes its
// channel of the column (first window), then adds the taps of the row's entries inside the
// window [w0, w1), entries and taps in order: the CPU fill's summation order per element.
__global__ void GM_TFN(gm_cconv_fill_kernel)(gm_cconv_params p, int64_t i0, int64_t cols, int64_t K,
                                             int64_t w0, int64_t w1, int first, const int* cells,
                                             const GM_T* coefs, GM_T* patch) {
    const int64_t Cin = p.in_channels, S = K / Cin;
    const GM_T* feat = (const GM_T*)p.inp_features;
    GM_FOR_EACH(t, cols * Cin) {
        const int64_t col = t / Cin, ic = t - col * Cin;
        GM_T* dst = patch + col * K + ic;
        if (first)
            for (int64_t s = 0; s < S; ++s) dst[s * Cin] = (GM_T)0;
        int64_t b = p.neighbors_row_splits[i0 + col], e = p.neighbors_row_splits[i0 + col + 1];
        if (b < w0) b = w0;
        if (e > w1) e = w1;
        for (int64_t n = b; n < e; ++n) {
            const int* c = cells + (n - w0) * 8;
            const GM_T* w = coefs + (n - w0) * 8;
            const GM_T f = feat[gm_cconv_neighbor_index(&p, n) * Cin + ic];
            for (int q = 0; q < 8 && c[q] >= 0; ++q) dst[(int64_t)c[q] * Cin] += w[q] * f;
        }
    }
}

// scale[col] = the factor of output row i0 + col (gm_cconv_row_scale).
__global__ void GM_TFN(gm_cconv_scale_kernel)(gm_cconv_params p, int64_t i0, int64_t cols, double* scale) {
    GM_FOR_EACH(col, cols) scale[col] = GM_TFN(gm_cconv_row_scale)(&p, i0 + col);
}

// out[col, :] *= scale[col] where it is not 1 (the CPU's rounding: (T)(o * s)).
__global__ void GM_TFN(gm_cconv_rescale_kernel)(GM_T* out, int64_t cols, int64_t Cout, const double* scale) {
    GM_FOR_EACH(t, cols * Cout) {
        const double s = scale[t / Cout];
        if (s != 1.0) out[t] = (GM_T)(out[t] * s);
    }
}

// gs[col, oc] = (T)(g[i0 + col, oc] * scale[col]): the output gradient as the filter gradient uses it.
__global__ void GM_TFN(gm_cconv_scaled_grad_kernel)(const GM_T* g, int64_t cols, int64_t Cout,
                                                    const double* scale, GM_T* gs) {
    GM_FOR_EACH(t, cols * Cout) gs[t] = (GM_T)(g[t] * scale[t / Cout]);
}

// total[e] = (accumulate ? total[e] : 0) + parts[0][e] + parts[1][e] + ... in part order (parts
// `stride` apart): the fixed-order reductions of the split GEMMs.
__global__ void GM_TFN(gm_cconv_reduce_parts_kernel)(GM_T* total, const GM_T* parts, int64_t nparts,
                                                     int64_t stride, int64_t len, int accumulate) {
    GM_FOR_EACH(e, len) {
        GM_T acc = accumulate ? total[e] : parts[e];
        for (int64_t q = accumulate ? 0 : 1; q < nparts; ++q) acc += parts[q * stride + e];
        total[e] = acc;
    }
}

// The entries [e0, e0 + count) of rows [i0, i0 + cols), Gf = g F^T of those rows, through
// gm_cconv_entry_grads (the CPU's formula): out[n] = sum_t w_t <Gf[row, cell_t, :], feat_j> where
// out is given, and the entry's position / extent derivatives where p.entry_*_grads are (then
// scale[row - i0] is the row's factor, gm_cconv_row_scale).
__global__ void GM_TFN(gm_cconv_products_kernel)(gm_cconv_params p, int64_t i0, int64_t cols, int64_t K,
                                                 int64_t e0, int64_t count, const GM_T* Gf,
                                                 const double* scale, double* out) {
    gm_cconv_geometry geom;
    gm_cconv_geometry_init(&geom, &p);
    GM_FOR_EACH(t, count) {
        const int64_t n = e0 + t;
        const int64_t i = gm_cconv_row_of(p.neighbors_row_splits, i0, i0 + cols, n);
        double* dpos = p.entry_position_grads ? p.entry_position_grads + 3 * n : NULL;
        double* dext = p.entry_extent_grads ? p.entry_extent_grads + p.extents_cols * n : NULL;
        const double d = GM_TFN(gm_cconv_entry_grads)(&p, &geom, i, n, Gf + (i - i0) * K,
                                                      scale ? scale[i - i0] : 1.0, dpos, dext);
        if (out) out[n] = d;
    }
}

__global__ void GM_TFN(gm_cconv_normalizers_kernel)(gm_cconv_params p, int64_t rows, double* divisor,
                                                    uint8_t* was_zero) {
    GM_FOR_EACH(r, rows) {
        const double v = GM_TFN(gm_cconv_normalizer)(&p, r);
        divisor[r] = gm_cconv_divisor(v);
        was_zero[r] = (uint8_t)gm_cconv_normalizer_is_zero(v);
    }
}

__global__ void GM_TFN(gm_cconv_inv_weights_kernel)(gm_cconv_grad_params p) {
    GM_FOR_EACH(pos, p.num_entries) GM_TFN(gm_cconv_bwd_inv_weight)(&p, pos);
}

__global__ void GM_TFN(gm_cconv_bwd_rows_kernel)(gm_cconv_grad_params p) {
    GM_FOR_EACH(r, p.num_out) GM_TFN(gm_cconv_bwd_row)(&p, r);
}

__global__ void GM_TFN(gm_cconv_bwd_inv_rows_kernel)(gm_cconv_grad_params p) {
    GM_FOR_EACH(q, p.num_inp) GM_TFN(gm_cconv_bwd_inv_row)(&p, q);
}

__global__ void GM_TFN(gm_cconv_position_rows_kernel)(gm_cconv_grad_params p) {
    GM_FOR_EACH(r, p.num_out) GM_TFN(gm_cconv_bwd_position_row)(&p, r);
}

__global__ void GM_TFN(gm_cconv_position_inv_rows_kernel)(gm_cconv_grad_params p) {
    GM_FOR_EACH(q, p.num_inp) GM_TFN(gm_cconv_bwd_position_inv_row)(&p, q);
}

// One thread: the shared extent's gradient from the block partials, in block order.
__global__ void GM_TFN(gm_cconv_extent_total_kernel)(gm_cconv_grad_params p, const double* partials,
                                                     int64_t blocks) {
    GM_FOR_EACH(t, 1) GM_TFN(gm_cconv_bwd_extent_total)(&p, partials, blocks);
}

__global__ void GM_TFN(gm_cconv_swap_channels_kernel)(const GM_T* f, int64_t cells, int64_t cin, int64_t cout,
                                                      GM_T* out) {
    GM_FOR_EACH(t, cells * cin * cout) {
        const int64_t ic = t % cin, oc = t / cin % cout, c = t / cin / cout;
        out[t] = f[(c * cin + ic) * cout + oc];
    }
}

__global__ void GM_TFN(gm_reduce_subarrays_sum_kernel)(const GM_T* values, const int64_t* splits,
                                                       int64_t rows, GM_T* sums) {
    GM_FOR_EACH(r, rows) {
        double s = 0.0;
        for (int64_t n = splits[r]; n < splits[r + 1]; ++n) s += (double)values[n];
        sums[r] = (GM_T)s;
    }
}

// ---- launch sequences --------------------------------------------------------------------------

// The patch matrix of one chunk (rows [i0, i0 + cols), entries [e0, e1)): taps and fill per
// window of at most `win` entries, in entry order.
static int GM_TFN(fill_chunk)(const gm_cconv_params* p, int64_t i0, int64_t cols, int64_t K, int64_t e0,
                              int64_t e1, int64_t win, int* cells, GM_T* coefs, GM_T* patch, cudaStream_t s) {
    int64_t w0 = e0;
    do {
        const int64_t w1 = e1 - w0 < win ? e1 : w0 + win;
        GM_CUDA_RUN(GM_TFN(gm_cconv_taps_kernel), w1 - w0, s, "the cconv taps kernel", *p, i0, i0 + cols, w0,
                    w1 - w0, cells, coefs);
        GM_CUDA_RUN(GM_TFN(gm_cconv_fill_kernel), cols * p->in_channels, s, "the cconv fill kernel", *p, i0,
                    cols, K, w0, w1, (int)(w0 == e0), cells, coefs, patch);
        w0 = w1;
    } while (w0 < e1);
    return GM_OK;
}

// Does any output row of the op have a factor other than 1 (gm_cconv_row_scale)?
static int GM_TFN(has_row_scale)(const gm_cconv_params* p) {
    return p->transpose ? p->out_importance != NULL : p->normalize;
}

// out = patches F per chunk. With K > GM_CCONV_KSEG the GEMM is split along K into fixed segments
// (batched, more blocks for the GPU when a chunk has few rows) whose partial products are then
// added in segment order: every element's chain depends on K only, not on the chunk.
static int GM_TFN(apply)(const gm_cconv_params* p, cudaStream_t s) {
    const int64_t No = p->num_out, Cin = p->in_channels, Cout = p->out_channels;
    const int64_t K = (int64_t)p->filter_depth * p->filter_height * p->filter_width * Cin;
    GM_T* out = (GM_T*)p->output;
    if (No == 0 || Cout == 0) return GM_OK;
    if (K == 0 || p->num_inp == 0) {
        GM_CUDA_TRY(cudaMemsetAsync(out, 0, (size_t)(No * Cout) * sizeof(GM_T), s), "cudaMemsetAsync");
        return GM_OK;
    }
    const int64_t sz = (int64_t)sizeof(GM_T), KS = GM_CCONV_KSEG;
    const int64_t nseg = (K + KS - 1) / KS;
    const int64_t row_bytes = K * sz + 8 + (nseg > 1 ? nseg * Cout * sz : 0);
    gm_cconv_plan plan;
    int st = gm_cconv_make_plan(p->neighbors_row_splits, No,
                                gm_cconv_chunk_rows(p->max_temp_bytes / 4 * 3, row_bytes, No), &plan, s);
    if (st != GM_OK) return st;
    const int64_t win = gm_cconv_window(p->max_temp_bytes / 4, 8 * (4 + sz), plan.max_entries());
    const int64_t part_len = plan.cols * Cout;
    gm_dev_buffer<GM_T> patch, coefs, parts;
    gm_dev_buffer<int> cells;
    gm_dev_buffer<double> scale;
    if ((st = patch.alloc((size_t)(plan.cols * K), s, "the patch matrix")) != GM_OK ||
        (st = cells.alloc((size_t)(win * 8), s, "the filter taps")) != GM_OK ||
        (st = coefs.alloc((size_t)(win * 8), s, "the filter taps")) != GM_OK ||
        (st = scale.alloc((size_t)plan.cols, s, "the row scales")) != GM_OK ||
        (nseg > 1 &&
         (st = parts.alloc((size_t)(nseg * part_len), s, "the split GEMM's partial sums")) != GM_OK))
        return st;
    const GM_T* F = (const GM_T*)p->filters;
    for (int64_t c = 0; c < plan.count; ++c) {
        const int64_t i0 = c * plan.cols, cols = plan.rows(c, No);
        st = GM_TFN(fill_chunk)(p, i0, cols, K, plan.first[c], plan.first[c + 1], win, cells.ptr, coefs.ptr,
                                patch.ptr, s);
        if (st != GM_OK) return st;
        // segment q: parts[q] = patch[:, q*KS : (q+1)*KS] F[q*KS : (q+1)*KS, :] (the last one shorter)
        gm_gemm_desc d = {
            0,        0, cols, Cout,         K, patch.ptr, K, KS, F, Cout, KS * Cout, out + i0 * Cout, Cout,
            part_len, 1, 0,    p->allow_tf32};
        if (nseg > 1) {
            d.C = parts.ptr;
            d.k = KS;
            d.batch = K / KS;
            if ((st = GM_GEMM(&d, s)) != GM_OK) return st;
            d.k = K % KS;
            d.A = patch.ptr + d.batch * KS;
            d.B = F + d.batch * KS * Cout;
            d.C = parts.ptr + d.batch * part_len;
            d.batch = d.k > 0 ? 1 : 0;
        }
        if ((st = GM_GEMM(&d, s)) != GM_OK) return st;
        if (nseg > 1)
            GM_CUDA_RUN(GM_TFN(gm_cconv_reduce_parts_kernel), cols * Cout, s, "the split GEMM's reduction",
                        out + i0 * Cout, parts.ptr, nseg, part_len, cols * Cout, 0);
        if (GM_TFN(has_row_scale)(p)) {
            GM_CUDA_RUN(GM_TFN(gm_cconv_scale_kernel), cols, s, "the cconv scale kernel", *p, i0, cols,
                        scale.ptr);
            GM_CUDA_RUN(GM_TFN(gm_cconv_rescale_kernel), cols * Cout, s, "the cconv rescale kernel",
                        out + i0 * Cout, cols, Cout, scale.ptr);
        }
    }
    return GM_OK;
}

// dF = sum_i B_i g_i^T scale_i over fixed slices of GM_CCONV_SLICE output rows: each slice's
// partial is one GEMM chain per element (batched over the slices of a chunk), then the partials
// are added to dF in slice order. A chunk holds whole slices, or (small budgets) a power of two
// of rows that divides the slice, whose GEMMs continue the slice's chain with accumulate.
static int GM_TFN(backprop_filter)(const gm_cconv_params* p, cudaStream_t s) {
    const int64_t No = p->num_out, Cin = p->in_channels, Cout = p->out_channels;
    const int64_t K = (int64_t)p->filter_depth * p->filter_height * p->filter_width * Cin;
    GM_T* grad = (GM_T*)p->output;
    if (K == 0 || Cout == 0) return GM_OK;
    GM_CUDA_TRY(cudaMemsetAsync(grad, 0, (size_t)(K * Cout) * sizeof(GM_T), s), "cudaMemsetAsync");
    if (No == 0 || p->num_inp == 0) return GM_OK;
    const int64_t sz = (int64_t)sizeof(GM_T), SL = GM_CCONV_SLICE;
    const int scaled = GM_TFN(has_row_scale)(p);
    const int64_t row_bytes = K * sz + (scaled ? Cout * sz + 8 : 0);
    int64_t cols = gm_cconv_chunk_rows(p->max_temp_bytes / 4 * 3, row_bytes + K * Cout * sz / SL, No);
    const int whole = cols >= SL;
    if (whole)
        cols = cols / SL * SL;
    else
        cols = gm_cconv_pow2_below(cols);
    gm_cconv_plan plan;
    int st = gm_cconv_make_plan(p->neighbors_row_splits, No, cols, &plan, s);
    if (st != GM_OK) return st;
    const int64_t win = gm_cconv_window(p->max_temp_bytes / 4, 8 * (4 + sz), plan.max_entries());
    const int64_t nparts = whole ? cols / SL : 1;
    gm_dev_buffer<GM_T> patch, coefs, gs, parts;
    gm_dev_buffer<int> cells;
    gm_dev_buffer<double> scale;
    if ((st = patch.alloc((size_t)(cols * K), s, "the patch matrix")) != GM_OK ||
        (st = cells.alloc((size_t)(win * 8), s, "the filter taps")) != GM_OK ||
        (st = coefs.alloc((size_t)(win * 8), s, "the filter taps")) != GM_OK ||
        (st = parts.alloc((size_t)(nparts * K * Cout), s, "the filter gradient's partial sums")) != GM_OK ||
        (scaled && (st = gs.alloc((size_t)(cols * Cout), s, "the scaled output gradient")) != GM_OK) ||
        (scaled && (st = scale.alloc((size_t)cols, s, "the row scales")) != GM_OK))
        return st;
    const GM_T* g = (const GM_T*)p->out_features_gradient;
    // partial(k, oc) = sum_rows patch[row, k] * gs[row, oc]: A = patch^T, B = gs
    const gm_gemm_desc gemm = {1,    0,         K,         Cout, 0,        patch.ptr, K, SL * K,       NULL,
                               Cout, SL * Cout, parts.ptr, Cout, K * Cout, 1,         0, p->allow_tf32};
    for (int64_t c = 0; c < plan.count; ++c) {
        const int64_t i0 = c * plan.cols, rows = plan.rows(c, No);
        st = GM_TFN(fill_chunk)(p, i0, rows, K, plan.first[c], plan.first[c + 1], win, cells.ptr, coefs.ptr,
                                patch.ptr, s);
        if (st != GM_OK) return st;
        const GM_T* gc = g + i0 * Cout;
        if (scaled) {
            GM_CUDA_RUN(GM_TFN(gm_cconv_scale_kernel), rows, s, "the cconv scale kernel", *p, i0, rows,
                        scale.ptr);
            GM_CUDA_RUN(GM_TFN(gm_cconv_scaled_grad_kernel), rows * Cout, s,
                        "the cconv gradient scale kernel", gc, rows, Cout, scale.ptr, gs.ptr);
            gc = gs.ptr;
        }
        int64_t reduce = 0;  // partials complete after this chunk
        if (whole) {
            gm_gemm_desc d = gemm;
            d.B = gc;
            d.k = SL;
            d.batch = rows / SL;
            if ((st = GM_GEMM(&d, s)) != GM_OK) return st;
            if (rows % SL) {  // the last slice of the data is shorter
                d.A = patch.ptr + d.batch * SL * K;
                d.B = gc + d.batch * SL * Cout;
                d.C = parts.ptr + d.batch * K * Cout;
                d.k = rows % SL;
                d.batch = 1;
                if ((st = GM_GEMM(&d, s)) != GM_OK) return st;
            }
            reduce = (rows + SL - 1) / SL;
        } else {
            gm_gemm_desc d = gemm;
            d.B = gc;
            d.k = rows;
            d.accumulate = i0 % SL != 0;
            if ((st = GM_GEMM(&d, s)) != GM_OK) return st;
            reduce = ((i0 + rows) % SL == 0 || i0 + rows == No) ? 1 : 0;
        }
        if (reduce)
            GM_CUDA_RUN(GM_TFN(gm_cconv_reduce_parts_kernel), K * Cout, s, "the filter gradient reduction",
                        grad, parts.ptr, reduce, K * Cout, K * Cout, 1);
    }
    return GM_OK;
}

// Gf = g F^T per chunk of rows (a GEMM), then one thread per entry (gm_cconv_products_kernel);
// with position / extent derivatives the chunk's row factors first (gm_cconv_scale_kernel).
static int GM_TFN(neighbor_products)(const gm_cconv_params* p, cudaStream_t s) {
    const int64_t No = p->num_out, Cin = p->in_channels, Cout = p->out_channels;
    const int64_t K = (int64_t)p->filter_depth * p->filter_height * p->filter_width * Cin;
    double* out = (double*)p->output;
    const int derivs = p->entry_position_grads || p->entry_extent_grads;
    if (No == 0) return GM_OK;
    const int64_t sz = (int64_t)sizeof(GM_T);
    gm_cconv_plan plan;
    int st = gm_cconv_make_plan(p->neighbors_row_splits, No,
                                gm_cconv_chunk_rows(p->max_temp_bytes, K * sz, No), &plan, s);
    if (st != GM_OK) return st;
    const int64_t E = plan.first[plan.count];
    if (E == 0) return GM_OK;
    if (K == 0 || Cout == 0) {
        if (out) GM_CUDA_TRY(cudaMemsetAsync(out, 0, (size_t)E * sizeof(double), s), "cudaMemsetAsync");
        if (p->entry_position_grads)
            GM_CUDA_TRY(cudaMemsetAsync(p->entry_position_grads, 0, (size_t)(3 * E) * sizeof(double), s),
                        "cudaMemsetAsync");
        if (p->entry_extent_grads)
            GM_CUDA_TRY(
                cudaMemsetAsync(p->entry_extent_grads, 0, (size_t)(p->extents_cols * E) * sizeof(double), s),
                "cudaMemsetAsync");
        return GM_OK;
    }
    gm_dev_buffer<GM_T> Gf;
    gm_dev_buffer<double> scale;
    if ((st = Gf.alloc((size_t)(plan.cols * K), s, "the filtered output gradient")) != GM_OK ||
        (derivs && (st = scale.alloc((size_t)plan.cols, s, "the row scales")) != GM_OK))
        return st;
    // Gf(row, k) = sum_oc g[row, oc] F[k, oc]: B = F^T
    const gm_gemm_desc gemm = {0, 1,      0, K, Cout, NULL, Cout,         0, p->filters, Cout,
                               0, Gf.ptr, K, 0, 1,    0,    p->allow_tf32};
    for (int64_t c = 0; c < plan.count; ++c) {
        const int64_t i0 = c * plan.cols, rows = plan.rows(c, No);
        gm_gemm_desc d = gemm;
        d.m = rows;
        d.A = (const GM_T*)p->out_features_gradient + i0 * Cout;
        if ((st = GM_GEMM(&d, s)) != GM_OK) return st;
        if (derivs)
            GM_CUDA_RUN(GM_TFN(gm_cconv_scale_kernel), rows, s, "the cconv scale kernel", *p, i0, rows,
                        scale.ptr);
        GM_CUDA_RUN(GM_TFN(gm_cconv_products_kernel), plan.first[c + 1] - plan.first[c], s,
                    "the cconv neighbor products kernel", *p, i0, rows, K, plan.first[c],
                    plan.first[c + 1] - plan.first[c], Gf.ptr, derivs ? scale.ptr : (const double*)NULL, out);
    }
    return GM_OK;
}

static int GM_TFN(normalizers)(const gm_cconv_params* p, double* divisor, uint8_t* was_zero, cudaStream_t s) {
    const int64_t rows = p->transpose ? p->num_inp : p->num_out;
    GM_CUDA_RUN(GM_TFN(gm_cconv_normalizers_kernel), rows, s, "the cconv normalizers kernel", *p, rows,
                divisor, was_zero);
    return GM_OK;
}

static int GM_TFN(inverted_weights)(const gm_cconv_grad_params* p, cudaStream_t s) {
    GM_CUDA_RUN(GM_TFN(gm_cconv_inv_weights_kernel), p->num_entries, s, "the inverted weights kernel", *p);
    return GM_OK;
}

// Row sums (output points), inverted-row sums (input points), or for a shared extent the
// block partials then their ordered sum: the CPU's order (gm_cconv_bwd_position_*, _extent_*).
static int GM_TFN(position_grads)(const gm_cconv_grad_params* p, cudaStream_t s) {
    GM_CUDA_RUN(GM_TFN(gm_cconv_position_rows_kernel), p->num_out, s, "the position gradient kernel", *p);
    GM_CUDA_RUN(GM_TFN(gm_cconv_position_inv_rows_kernel), p->num_inp, s, "the position gradient kernel", *p);
    if (p->d_extents && p->extents_rows == 1) {
        const int64_t blocks = gm_cconv_extent_blocks(p);
        gm_dev_buffer<double> partials;
        const int st =
            partials.alloc((size_t)(blocks > 0 ? blocks : 1) * 3, s, "the extent gradient's partial sums");
        if (st != GM_OK) return st;
        GM_CUDA_RUN(gm_cconv_extent_blocks_kernel, blocks, s, "the extent gradient kernel", *p, partials.ptr);
        GM_CUDA_RUN(GM_TFN(gm_cconv_extent_total_kernel), 1, s, "the extent gradient kernel", *p,
                    partials.ptr, blocks);
    }
    return GM_OK;
}

static int GM_TFN(importance_grads)(const gm_cconv_grad_params* p, cudaStream_t s) {
    GM_CUDA_RUN(GM_TFN(gm_cconv_bwd_rows_kernel), p->num_out, s, "the importance gradient kernel", *p);
    GM_CUDA_RUN(GM_TFN(gm_cconv_bwd_inv_rows_kernel), p->num_inp, s, "the importance gradient kernel", *p);
    return GM_OK;
}

#undef GM_GEMM
