/* Type-generic body of the CPU continuous convolution (twin body, see geomops/twin.h;
 * included by cconv.c once per float type).
 *
 * Scheme (docs/cconv.md, "How it is computed"; done deterministically): output points are
 * processed in chunks; for each output point a "patch" column B_i[s * Cin + ic] gathers the
 * interpolation-weighted, importance-scaled input features of its neighbors; then one GEMM per
 * chunk contracts the patches with the filter matrix F[s * Cin + ic, oc]. */

#define GM_GEMM GM_TFN(gm_gemm)
#if GM_TIS_DOUBLE
#define GM_PANEL GM_GEMM_PANEL_F64
#else
#define GM_PANEL GM_GEMM_PANEL_F32
#endif

/* ---- one patch column ---------------------------------------------------------------- */

/* fill_column, compiled per ISA; a kernel picks its variant once per call (GM_ISA_PICK). */
#define GM_ISA_BODY "cconv_fill.h"
#include "isa_variants.h"
typedef void (*GM_TFN(fill_column_fn))(const cconv_ctx* c, int64_t i, GM_T* col);

/* ---- forward / transpose ------------------------------------------------------------- */

static int GM_TFN(apply)(const cconv_ctx* c) {
    const gm_cconv_params* p = c->p;
    const int64_t No = p->num_out, K = c->K, Cout = c->Cout;
    GM_T* out = (GM_T*)p->output;
    if (No == 0 || Cout == 0) return GM_OK;
    if (K == 0 || p->num_inp == 0) {
        memset(out, 0, (size_t)(No * Cout) * sizeof(GM_T));
        return GM_OK;
    }
    /* The GEMM reads B rows up to a multiple of the panel width: pad F when needed. */
    const int64_t ldf = gm_round_up(Cout, GM_PANEL);
    const GM_T* F = (const GM_T*)p->filters;
    GM_T* Fpad = NULL;
    if (ldf != Cout) {
        Fpad = (GM_T*)gm_host_calloc(K * ldf, sizeof(GM_T));
        if (!Fpad) return GM_ERR_NOMEM;
        for (int64_t k = 0; k < K; ++k) memcpy(Fpad + k * ldf, F + k * Cout, (size_t)Cout * sizeof(GM_T));
        F = Fpad;
    }
    const GM_TFN(fill_column_fn) fill_column = GM_ISA_PICK(GM_TFN(fill_column));
    const int nt = c->num_threads;
    int64_t chunk = chunk_columns(p->max_temp_bytes / nt, K * (int64_t)sizeof(GM_T),
                                  cache_columns(K * (int64_t)sizeof(GM_T), GM_APPLY_CACHE_BYTES));
    if (chunk > No) chunk = No;
    const int64_t nchunks = (No + chunk - 1) / chunk;
    int status = GM_OK;
    gm_stop stop = 0;
#pragma omp parallel num_threads(nt)
    {
        GM_T* buf = (GM_T*)gm_host_alloc(chunk * K, sizeof(GM_T));
        if (!buf) {
#pragma omp atomic write
            status = GM_ERR_NOMEM;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t ch = 0; ch < nchunks; ++ch) {
            if (!buf || gm_stopped(&stop)) continue;
            const int64_t i0 = ch * chunk;
            const int64_t cols = No - i0 < chunk ? No - i0 : chunk;
            for (int64_t col = 0; col < cols; ++col) { /* zero just before filling: stays in L1 */
                memset(buf + col * K, 0, (size_t)K * sizeof(GM_T));
                fill_column(c, i0 + col, buf + col * K);
            }
            GM_GEMM(cols, Cout, K, buf, K, 1, F, ldf, INT64_MAX, 0, out + i0 * Cout, Cout, 0);
            for (int64_t col = 0; col < cols; ++col) {
                const double s = GM_TFN(gm_cconv_row_scale)(p, i0 + col);
                if (s != 1.0) {
                    GM_T* o = out + (i0 + col) * Cout;
                    for (int64_t oc = 0; oc < Cout; ++oc) o[oc] = (GM_T)(o[oc] * s);
                }
            }
        }
        free(buf);
    }
    free(Fpad);
    return gm_stop_status(&stop, status);
}

/* ---- filter gradient ----------------------------------------------------------------- */

/* Output points per block of the filter-gradient reduction: a constant, so the summation
 * order (and so every bit of the result) depends neither on the thread count nor on
 * max_temp_bytes. */
#ifndef GM_BACKPROP_BLOCK
#define GM_BACKPROP_BLOCK 2048
#endif

/* dF[k, oc] = sum_i B_i[k] * g[i, oc] * scale_i, computed as dF^T = g^T B^T so the GEMM
 * streams the patch panels contiguously. Output points are cut into fixed blocks; one thread
 * sums a block sequentially into its private partial (the GEMM continues the running sum
 * across sub-chunks), then the partials are added to the total in block order (an OpenMP
 * ordered region), so only one partial per thread is alive and no per-chunk barrier exists. */
static int GM_TFN(backprop_filter)(const cconv_ctx* c) {
    const gm_cconv_params* p = c->p;
    const int64_t No = p->num_out, K = c->K, Cout = c->Cout;
    GM_T* grad = (GM_T*)p->output;
    if (K == 0 || Cout == 0) return GM_OK;
    memset(grad, 0, (size_t)(K * Cout) * sizeof(GM_T));
    if (No == 0 || p->num_inp == 0) return GM_OK;
    const GM_T* g = (const GM_T*)p->out_features_gradient;
    const int64_t PW = GM_PANEL, Kp = gm_round_up(K, PW), npanels = Kp / PW;
    const int64_t partial_len = Cout * Kp;
    const GM_TFN(fill_column_fn) fill_column = GM_ISA_PICK(GM_TFN(fill_column));
    const int nt = c->num_threads;
    int64_t chunk = chunk_columns(p->max_temp_bytes / nt - partial_len * (int64_t)sizeof(GM_T),
                                  (Kp + Cout) * (int64_t)sizeof(GM_T),
                                  cache_columns(Kp * (int64_t)sizeof(GM_T), GM_PANEL_CACHE_BYTES));
    const int64_t block = GM_BACKPROP_BLOCK;
    const int64_t nblocks = (No + block - 1) / block;

    GM_T* total = (GM_T*)gm_host_calloc(partial_len, sizeof(GM_T)); /* [Cout, Kp] */
    if (!total) return GM_ERR_NOMEM;
    int status = GM_OK;
    gm_stop stop = 0;
#pragma omp parallel num_threads(nt)
    {
        GM_T* scratch = (GM_T*)gm_host_alloc(Kp, sizeof(GM_T));
        GM_T* panels = (GM_T*)gm_host_alloc(chunk * Kp, sizeof(GM_T));
        GM_T* gs = (GM_T*)gm_host_alloc(chunk * Cout, sizeof(GM_T));
        GM_T* part = (GM_T*)gm_host_alloc(partial_len, sizeof(GM_T));
        const int ok = scratch && panels && gs && part;
        if (!ok) {
#pragma omp atomic write
            status = GM_ERR_NOMEM;
        }
#pragma omp for ordered schedule(dynamic, 1)
        for (int64_t b = 0; b < nblocks; ++b) {
            const int run = ok && !gm_stopped(&stop);
            if (run) {
                memset(part, 0, (size_t)partial_len * sizeof(GM_T));
                const int64_t b_end = (b + 1) * block < No ? (b + 1) * block : No;
                for (int64_t i0 = b * block; i0 < b_end; i0 += chunk) {
                    const int64_t cols = b_end - i0 < chunk ? b_end - i0 : chunk;
                    for (int64_t col = 0; col < cols; ++col) {
                        const int64_t i = i0 + col;
                        memset(scratch, 0, (size_t)Kp * sizeof(GM_T));
                        fill_column(c, i, scratch);
                        for (int64_t q = 0; q < npanels; ++q)
                            memcpy(panels + q * cols * PW + col * PW, scratch + q * PW,
                                   (size_t)PW * sizeof(GM_T));
                        const double s = GM_TFN(gm_cconv_row_scale)(p, i);
                        for (int64_t oc = 0; oc < Cout; ++oc)
                            gs[col * Cout + oc] = (GM_T)(g[i * Cout + oc] * s);
                    }
                    for (int64_t q = 0; q < npanels; ++q)
                        GM_GEMM(Cout, PW, cols, gs, 1, Cout, panels + q * cols * PW, PW, PW, 0, part + q * PW,
                                Kp, 1);
                }
            }
#pragma omp ordered
            {
                if (run)
                    for (int64_t e = 0; e < partial_len; ++e) total[e] += part[e];
            }
        }
        free(scratch);
        free(panels);
        free(gs);
        free(part);
    }
    status = gm_stop_status(&stop, status);
    if (status == GM_OK) {
        for (int64_t k = 0; k < K; ++k)
            for (int64_t oc = 0; oc < Cout; ++oc) grad[k * Cout + oc] = total[oc * Kp + k];
    }
    free(total);
    return status;
}

/* ---- per-neighbor products and position derivatives ------------------------------------- */

/* For every entry n of row i (gm_cconv_entry_grads, float64): out[n] = sum_t w_t <(F g_i)[cell_t, :],
 * feat_j> (when p->output), its d L / d(relative position) and d L / d extent (when
 * p->entry_position_grads / p->entry_extent_grads). */
static int GM_TFN(neighbor_products)(const cconv_ctx* c) {
    const gm_cconv_params* p = c->p;
    const int64_t No = p->num_out, K = c->K, Cout = c->Cout;
    double* out = (double*)p->output;
    double* dpos = p->entry_position_grads;
    double* dext = p->entry_extent_grads;
    const int64_t cols_e = p->extents_cols;
    const int64_t E = p->neighbors_row_splits[No];
    if (E == 0) return GM_OK;
    if (K == 0 || Cout == 0) {
        if (out) memset(out, 0, (size_t)E * sizeof(double));
        if (dpos) memset(dpos, 0, (size_t)(3 * E) * sizeof(double));
        if (dext) memset(dext, 0, (size_t)(cols_e * E) * sizeof(double));
        return GM_OK;
    }
    const int derivs = dpos || dext;
    const GM_T* F = (const GM_T*)p->filters;
    const GM_T* g = (const GM_T*)p->out_features_gradient;
    const int64_t PW = GM_PANEL, Kp = gm_round_up(K, PW);
    /* F^T in panel layout: FT(oc, k) = F[k, oc] at [k / PW][oc][k % PW] */
    GM_T* FT = (GM_T*)gm_host_calloc(Cout * Kp, sizeof(GM_T));
    if (!FT) return GM_ERR_NOMEM;
    for (int64_t k = 0; k < K; ++k)
        for (int64_t oc = 0; oc < Cout; ++oc) FT[(k / PW) * Cout * PW + oc * PW + k % PW] = F[k * Cout + oc];
    const int nt = c->num_threads;
    int64_t chunk = chunk_columns(p->max_temp_bytes / nt, Kp * (int64_t)sizeof(GM_T),
                                  cache_columns(Kp * (int64_t)sizeof(GM_T), GM_APPLY_CACHE_BYTES));
    if (chunk > No) chunk = No;
    const int64_t nchunks = (No + chunk - 1) / chunk;
    int status = GM_OK;
    gm_stop stop = 0;
#pragma omp parallel num_threads(nt)
    {
        GM_T* Gf = (GM_T*)gm_host_alloc(chunk * Kp, sizeof(GM_T));
        if (!Gf) {
#pragma omp atomic write
            status = GM_ERR_NOMEM;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t ch = 0; ch < nchunks; ++ch) {
            if (!Gf || gm_stopped(&stop)) continue;
            const int64_t i0 = ch * chunk;
            const int64_t cols = No - i0 < chunk ? No - i0 : chunk;
            GM_GEMM(cols, K, Cout, g + i0 * Cout, Cout, 1, FT, PW, PW, Cout * PW, Gf, Kp, 0);
            for (int64_t col = 0; col < cols; ++col) {
                const int64_t i = i0 + col;
                const GM_T* gf = Gf + col * Kp;
                const double scale = derivs ? GM_TFN(gm_cconv_row_scale)(p, i) : 1.0;
                for (int64_t n = p->neighbors_row_splits[i]; n < p->neighbors_row_splits[i + 1]; ++n) {
                    const double d =
                        GM_TFN(gm_cconv_entry_grads)(p, &c->geom, i, n, gf, scale, dpos ? dpos + 3 * n : NULL,
                                                     dext ? dext + cols_e * n : NULL);
                    if (out) out[n] = d;
                }
            }
        }
        free(Gf);
    }
    free(FT);
    return gm_stop_status(&stop, status);
}

/* ---- per-row normalisers for the facade's backward functions -------------------------- */

static int GM_TFN(normalizers)(const cconv_ctx* c, double* divisor, uint8_t* was_zero) {
    const gm_cconv_params* p = c->p;
    const int64_t rows = p->transpose ? p->num_inp : p->num_out;
    const int64_t nblocks = gm_stop_blocks(rows, GM_STOP_ROWS);
    gm_stop stop = 0;
#pragma omp parallel for schedule(dynamic, 1) num_threads(c->num_threads)
    for (int64_t b = 0; b < nblocks; ++b) {
        if (gm_stopped(&stop)) continue;
        for (int64_t r = b * GM_STOP_ROWS; r < gm_stop_block_end(b, rows, GM_STOP_ROWS); ++r) {
            const double v = GM_TFN(gm_cconv_normalizer)(p, r);
            divisor[r] = gm_cconv_divisor(v);
            was_zero[r] = (uint8_t)gm_cconv_normalizer_is_zero(v);
        }
    }
    return gm_stop_status(&stop, GM_OK);
}

/* ---- the backward functions' per-entry math (gm_cconv_bwd_*, cconv_math.h) ---------------- */

static int GM_TFN(inverted_weights)(const gm_cconv_grad_params* p) {
    const int64_t E = p->num_entries, nblocks = gm_stop_blocks(E, GM_STOP_ITEMS);
    gm_stop stop = 0;
#pragma omp parallel for schedule(dynamic, 1) num_threads(p->num_threads > 0 ? p->num_threads : 1)
    for (int64_t b = 0; b < nblocks; ++b) {
        if (gm_stopped(&stop)) continue;
        for (int64_t pos = b * GM_STOP_ITEMS; pos < gm_stop_block_end(b, E, GM_STOP_ITEMS); ++pos)
            GM_TFN(gm_cconv_bwd_inv_weight)(p, pos);
    }
    return gm_stop_status(&stop, GM_OK);
}

/* The position and extent gradients: row sums (output points), inverted-row sums (input
 * points), or for a shared extent fixed blocks of entries, then the blocks in order. */
static int GM_TFN(position_grads)(const gm_cconv_grad_params* p) {
    const int nt = p->num_threads > 0 ? p->num_threads : 1;
    const int shared = p->d_extents && p->extents_rows == 1;
    const int64_t blocks = shared ? gm_cconv_extent_blocks(p) : 0;
    double* partials = NULL;
    if (shared && !(partials = (double*)gm_host_alloc(blocks * 3, sizeof(double)))) return GM_ERR_NOMEM;
    const int64_t No = p->num_out, Ni = p->num_inp;
    const int64_t out_blocks = gm_stop_blocks(No, GM_STOP_ROWS),
                  inp_blocks = gm_stop_blocks(Ni, GM_STOP_ROWS);
    const int64_t extent_blocks = gm_stop_blocks(blocks, 64);
    gm_stop stop = 0;
#pragma omp parallel num_threads(nt)
    {
#pragma omp for schedule(dynamic, 1)
        for (int64_t b = 0; b < out_blocks; ++b) {
            if (gm_stopped(&stop)) continue;
            for (int64_t r = b * GM_STOP_ROWS; r < gm_stop_block_end(b, No, GM_STOP_ROWS); ++r)
                GM_TFN(gm_cconv_bwd_position_row)(p, r);
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t b = 0; b < inp_blocks; ++b) {
            if (gm_stopped(&stop)) continue;
            for (int64_t q = b * GM_STOP_ROWS; q < gm_stop_block_end(b, Ni, GM_STOP_ROWS); ++q)
                GM_TFN(gm_cconv_bwd_position_inv_row)(p, q);
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t sb = 0; sb < extent_blocks; ++sb) {
            if (gm_stopped(&stop)) continue;
            for (int64_t b = sb * 64; b < gm_stop_block_end(sb, blocks, 64); ++b)
                gm_cconv_bwd_extent_block(p, b, partials);
        }
    }
    if (shared && !atomic_load(&stop)) GM_TFN(gm_cconv_bwd_extent_total)(p, partials, blocks);
    free(partials);
    return gm_stop_status(&stop, GM_OK);
}

static int GM_TFN(importance_grads)(const gm_cconv_grad_params* p) {
    const int nt = p->num_threads > 0 ? p->num_threads : 1;
    const int64_t No = p->num_out, Ni = p->num_inp;
    const int64_t out_blocks = gm_stop_blocks(No, GM_STOP_ROWS),
                  inp_blocks = gm_stop_blocks(Ni, GM_STOP_ROWS);
    gm_stop stop = 0;
#pragma omp parallel num_threads(nt)
    {
#pragma omp for schedule(dynamic, 1)
        for (int64_t b = 0; b < out_blocks; ++b) {
            if (gm_stopped(&stop)) continue;
            for (int64_t r = b * GM_STOP_ROWS; r < gm_stop_block_end(b, No, GM_STOP_ROWS); ++r)
                GM_TFN(gm_cconv_bwd_row)(p, r);
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t b = 0; b < inp_blocks; ++b) {
            if (gm_stopped(&stop)) continue;
            for (int64_t q = b * GM_STOP_ROWS; q < gm_stop_block_end(b, Ni, GM_STOP_ROWS); ++q)
                GM_TFN(gm_cconv_bwd_inv_row)(p, q);
        }
    }
    return gm_stop_status(&stop, GM_OK);
}

/* out[c, oc, ic] = filters[c, ic, oc]: the filters with Cin and Cout swapped (the gradient
 * identities' filter) */
static void GM_TFN(swap_channels)(const GM_T* f, int64_t cells, int64_t cin, int64_t cout, GM_T* out,
                                  int nt) {
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t c = 0; c < cells; ++c)
        for (int64_t oc = 0; oc < cout; ++oc)
            for (int64_t ic = 0; ic < cin; ++ic)
                out[(c * cout + oc) * cin + ic] = f[(c * cin + ic) * cout + oc];
}

#undef GM_GEMM
#undef GM_PANEL
