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

/* ---- one patch row ----------------------------------------------------------------- */

#if GM_ISA_X86
/* The SIMD taps (cconv_taps.h) of the entries [n0, n0 + cnt) of row i into tb, four at a time:
 * each entry's geometry and weight (the scalar helpers of cconv_math_impl.h) go straight into
 * vector lanes. */
__attribute__((target("avx2"))) static void GM_TFN(simd_taps)(const cconv_ctx* c, int64_t i, int64_t n0,
                                                              int cnt, gm_tap_batch* tb) {
    const gm_cconv_params* p = c->p;
    for (int e = 0; e < cnt; e += 4) {
        double r[3][4], v[3][4], a[4];
#pragma GCC unroll 4
        for (int l = 0; l < 4; ++l) {
            double rel[3] = {0.0, 0.0, 0.0}, inv[3] = {0.0, 0.0, 0.0};
            a[l] = 0.0;
            if (e + l < cnt) {
                GM_TFN(gm_cconv_entry_geometry)(p, &c->geom, i, n0 + e + l, &tb->j[e + l], rel, inv);
                a[l] = GM_TFN(gm_cconv_entry_weight)(p, n0 + e + l, tb->j[e + l]);
            }
            for (int k = 0; k < 3; ++k) {
                r[k][l] = rel[k];
                v[k][l] = inv[k];
            }
        }
        gm_cconv_taps4_avx2(&c->geom, _mm256_set_pd(r[0][3], r[0][2], r[0][1], r[0][0]),
                            _mm256_set_pd(r[1][3], r[1][2], r[1][1], r[1][0]),
                            _mm256_set_pd(r[2][3], r[2][2], r[2][1], r[2][0]),
                            _mm256_set_pd(v[0][3], v[0][2], v[0][1], v[0][0]),
                            _mm256_set_pd(v[1][3], v[1][2], v[1][1], v[1][0]),
                            _mm256_set_pd(v[2][3], v[2][2], v[2][1], v[2][0]),
                            _mm256_set_pd(a[3], a[2], a[1], a[0]), tb, e);
    }
}
#endif

/* fill_row, compiled per ISA; a kernel picks its variant once per call (GM_ISA_PICK). */
#define GM_ISA_BODY "cconv_fill.h"
#include "isa_variants.h"
typedef void (*GM_TFN(fill_row_fn))(const cconv_ctx* c, int64_t i, int64_t ahead, GM_T* col);

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
    /* F in column panels of the micro-kernel's width: each call streams its panel contiguously */
    const int64_t nr = GM_TFN(gm_gemm_nr)();
    GM_T* Fp = (GM_T*)gm_host_alloc(K * gm_round_up(Cout, nr), sizeof(GM_T));
    if (!Fp) return GM_ERR_NOMEM;
    GM_TFN(gm_gemm_pack_b)(K, Cout, (const GM_T*)p->filters, Cout, nr, Fp);
    const GM_TFN(fill_row_fn) fill_row = GM_ISA_PICK(GM_TFN(fill_row));
    int64_t* order = NULL; /* rows in spatial order (NULL: index order) */
    if (No >= GM_CCONV_ORDER_MIN_ROWS) {
        order = (int64_t*)gm_host_alloc(No, sizeof(int64_t));
        const int st =
            order ? spatial_order(p->out_positions, p->dtype, No, order, c->num_threads) : GM_ERR_NOMEM;
        if (st != GM_OK) {
            gm_host_free(order);
            gm_host_free(Fp);
            return st;
        }
    }
    const int nt = c->num_threads;
    const int64_t ld = patch_ld(K, (int64_t)sizeof(GM_T));
    int64_t chunk = chunk_columns(p->max_temp_bytes / nt, (ld + Cout) * (int64_t)sizeof(GM_T),
                                  cache_columns(ld * (int64_t)sizeof(GM_T), GM_APPLY_CACHE_BYTES));
    if (chunk > No) chunk = No;
    const int64_t nchunks = (No + chunk - 1) / chunk;
    int status = GM_OK;
    gm_stop stop = 0;
#pragma omp parallel num_threads(nt)
    {
        GM_T* buf = (GM_T*)gm_host_alloc(chunk * (ld + Cout), sizeof(GM_T));
        GM_T* res = buf + chunk * ld;               /* the chunk's output rows */
        double t_fill = 0.0, t_gemm = 0.0, t = 0.0; /* gm_cconv_profile_cpu's phases */
        if (!buf) {
#pragma omp atomic write
            status = GM_ERR_NOMEM;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t ch = 0; ch < nchunks; ++ch) {
            if (!buf || gm_stopped(&stop)) continue;
            prof_start(&t);
            const int64_t r0 = ch * chunk;
            const int64_t cols = No - r0 < chunk ? No - r0 : chunk;
            for (int64_t col = 0; col < cols; ++col) { /* zero just before filling: stays in L1 */
                const int64_t r = r0 + col;
                const int64_t ra = r + GM_FILL_AHEAD < No ? r + GM_FILL_AHEAD : -1;
                memset(buf + col * ld, 0, (size_t)ld * sizeof(GM_T));
                fill_row(c, order ? order[r] : r, ra < 0 ? -1 : (order ? order[ra] : ra), buf + col * ld);
            }
            prof_lap(&t, &t_fill);
            GM_GEMM(cols, Cout, K, buf, ld, 1, Fp, nr, nr, K * nr, res, Cout, 0);
            prof_lap(&t, &t_gemm);
            for (int64_t col = 0; col < cols; ++col) {
                const int64_t i = order ? order[r0 + col] : r0 + col;
                const double s = GM_TFN(gm_cconv_row_scale)(p, i);
                GM_T* o = out + i * Cout;
                const GM_T* v = res + col * Cout;
                if (s != 1.0) {
                    for (int64_t oc = 0; oc < Cout; ++oc) o[oc] = (GM_T)(v[oc] * s);
                } else {
                    memcpy(o, v, (size_t)Cout * sizeof(GM_T));
                }
            }
        }
        gm_host_free(buf);
        gm_prof_add(t_fill, t_gemm);
    }
    gm_host_free(order);
    gm_host_free(Fp);
    return gm_stop_status(&stop, status);
}

/* ---- filter gradient ----------------------------------------------------------------- */

/* Output points per block of the filter-gradient reduction: a constant, so the summation
 * order (and so every bit of the result) depends neither on the thread count nor on
 * max_temp_bytes. */
#ifndef GM_BACKPROP_BLOCK
#define GM_BACKPROP_BLOCK 2048
#endif

/* dF[k, oc] = sum_i B_i[k] * g[i, oc] * scale_i: the GEMM dF += B^T G per chunk, the transposed
 * patch matrix as A (12 consecutive k of a patch row per micro-kernel step) and the chunk's
 * scaled gradient rows G as B, which stays in L1. Output points are cut into fixed blocks; one
 * thread sums a block sequentially into its private partial (the GEMM continues the running sum
 * across sub-chunks), then the partials are added to dF in block order (gm_wait_turn /
 * gm_pass_turn: like an OpenMP ordered region, but a waiting thread keeps polling for Ctrl-C),
 * so only one partial per thread is alive and no per-chunk barrier exists. */
static int GM_TFN(backprop_filter)(const cconv_ctx* c) {
    const gm_cconv_params* p = c->p;
    const int64_t No = p->num_out, K = c->K, Cout = c->Cout;
    GM_T* grad = (GM_T*)p->output;
    if (K == 0 || Cout == 0) return GM_OK;
    memset(grad, 0, (size_t)(K * Cout) * sizeof(GM_T));
    if (No == 0 || p->num_inp == 0) return GM_OK;
    const GM_T* g = (const GM_T*)p->out_features_gradient;
    const int64_t ld = patch_ld(K, (int64_t)sizeof(GM_T));
    const int64_t partial_len = K * Cout;
    const int64_t ldg = gm_round_up(Cout, GM_PANEL); /* the GEMM reads B rows that far */
    const GM_TFN(fill_row_fn) fill_row = GM_ISA_PICK(GM_TFN(fill_row));
    const int nt = c->num_threads;
    int64_t chunk = chunk_columns(p->max_temp_bytes / nt - partial_len * (int64_t)sizeof(GM_T),
                                  (ld + ldg) * (int64_t)sizeof(GM_T),
                                  cache_columns(ld * (int64_t)sizeof(GM_T), GM_PANEL_CACHE_BYTES));
    const int64_t block = GM_BACKPROP_BLOCK;
    const int64_t nblocks = (No + block - 1) / block;

    int64_t* order = NULL; /* rows in spatial order (NULL: index order); the blocks follow it */
    if (No >= GM_CCONV_ORDER_MIN_ROWS) {
        order = (int64_t*)gm_host_alloc(No, sizeof(int64_t));
        const int st = order ? spatial_order(p->out_positions, p->dtype, No, order, nt) : GM_ERR_NOMEM;
        if (st != GM_OK) {
            gm_host_free(order);
            return st;
        }
    }
    int status = GM_OK;
    gm_stop stop = 0;
    gm_turn turn = 0; /* the block whose partial is added next */
#pragma omp parallel num_threads(nt)
    {
        GM_T* patches = (GM_T*)gm_host_alloc(chunk * ld, sizeof(GM_T));
        GM_T* gs = (GM_T*)gm_host_calloc(chunk * ldg, sizeof(GM_T)); /* [chunk, ldg], padding 0 */
        GM_T* part = (GM_T*)gm_host_alloc(partial_len, sizeof(GM_T));
        const int ok = patches && gs && part;
        double t_fill = 0.0, t_gemm = 0.0, t = 0.0; /* gm_cconv_profile_cpu's phases */
        if (!ok) {
#pragma omp atomic write
            status = GM_ERR_NOMEM;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t b = 0; b < nblocks; ++b) {
            if (ok && !gm_stopped(&stop)) {
                memset(part, 0, (size_t)partial_len * sizeof(GM_T));
                const int64_t b_end = (b + 1) * block < No ? (b + 1) * block : No;
                for (int64_t r0 = b * block; r0 < b_end && !gm_stopped(&stop); r0 += chunk) {
                    const int64_t cols = b_end - r0 < chunk ? b_end - r0 : chunk;
                    prof_start(&t);
                    for (int64_t col = 0; col < cols; ++col) {
                        const int64_t r = r0 + col, ra = r + GM_FILL_AHEAD < No ? r + GM_FILL_AHEAD : -1;
                        const int64_t i = order ? order[r] : r;
                        memset(patches + col * ld, 0, (size_t)ld * sizeof(GM_T));
                        fill_row(c, i, ra < 0 ? -1 : (order ? order[ra] : ra), patches + col * ld);
                        const double s = GM_TFN(gm_cconv_row_scale)(p, i);
                        for (int64_t oc = 0; oc < Cout; ++oc)
                            gs[col * ldg + oc] = (GM_T)(g[i * Cout + oc] * s);
                    }
                    prof_lap(&t, &t_fill);
                    GM_GEMM(K, Cout, cols, patches, 1, ld, gs, ldg, INT64_MAX, 0, part, Cout, 1);
                    prof_lap(&t, &t_gemm);
                }
            }
            if (gm_wait_turn(&turn, b, &stop)) {
                if (ok && !gm_stopped(&stop))
                    for (int64_t e = 0; e < partial_len; ++e) grad[e] += part[e];
                gm_pass_turn(&turn, b);
            }
        }
        gm_host_free(patches);
        gm_host_free(gs);
        gm_host_free(part);
        gm_prof_add(t_fill, t_gemm);
    }
    gm_host_free(order);
    return gm_stop_status(&stop, status);
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
        gm_host_free(Gf);
    }
    gm_host_free(FT);
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
    gm_host_free(partials);
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
