/* OpenMP loops of the pose gradients (stillleben.diff): image-space gradients with the valid
 * mask, and the fused dilation + per-pixel 6-vector + per-object reduction.
 *
 * Determinism: the backprop kernel partitions the rows into fixed blocks (their size depends
 * only on the image height and the object count), sums each block in row-major pixel order
 * into its own float64 accumulators, then adds the blocks in order. The thread count only
 * decides who computes a block, never the order of a sum. */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off") /* keep float32 products rounded, as stillleben's conv2d */
#endif

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "geomops/posegrad.h"
#include "geomops/posegrad_math.h"

#define PG_BLOCK_ROWS 8
#define PG_MAX_ACCUM_BYTES ((size_t)256 << 20)

static int pg_check_image(const GmPgImage* im) {
    if (im->height < 1 || im->width < 1 || im->num_threads < 1) return GM_ERR_INVALID;
    if ((im->rgb_u8 == NULL) == (im->rgb_f32 == NULL)) return GM_ERR_INVALID;
    if (im->rgb_channels != 3 && im->rgb_channels != 4) return GM_ERR_INVALID;
    if (im->border < GM_PG_BORDER_ZERO || im->border > GM_PG_BORDER_REPLICATE) return GM_ERR_INVALID;
    if (im->semantics != GM_PG_SEM_CUDA && im->semantics != GM_PG_SEM_CPU) return GM_ERR_INVALID;
    if (!im->instance || !im->depth) return GM_ERR_INVALID;
    return GM_OK;
}

static void pg_fill_lut(float* lut) {
    for (int v = 0; v < 256; ++v) lut[v] = gm_pg_unit_u8((uint8_t)v);
}

/* Channel ch of pixel index pix, or 0 for the outside-image sentinel -1. */
static inline float pg_sample(const GmPgImage* im, const float* lut, ptrdiff_t pix, int ch) {
    if (pix < 0) return 0.0f;
    ptrdiff_t k = pix * im->rgb_channels + ch;
    return im->rgb_u8 ? lut[im->rgb_u8[k]] : im->rgb_f32[k];
}

/* The negated, NDC-scaled central differences of channels 0..2 at (r,c). */
static inline void pg_pixel_grads(const GmPgImage* im, const float* lut, int r, int c, float* gx,
                                  float* gy) {
    const int w = im->width;
    int lo, hi;
    gm_pg_diff_setup(c, w, im->border, &lo, &hi);
    const float wx = im->weight_x, wy = im->weight_y;
    ptrdiff_t row = (ptrdiff_t)r * w;
    ptrdiff_t plo = lo < 0 ? -1 : row + lo, phi = hi < 0 ? -1 : row + hi;
    for (int ch = 0; ch < 3; ++ch)
        gx[ch] = gm_pg_neg_diff(wx, pg_sample(im, lut, plo, ch), pg_sample(im, lut, phi, ch));
    gm_pg_diff_setup(r, im->height, im->border, &lo, &hi);
    plo = lo < 0 ? -1 : (ptrdiff_t)lo * w + c;
    phi = hi < 0 ? -1 : (ptrdiff_t)hi * w + c;
    for (int ch = 0; ch < 3; ++ch)
        gy[ch] = gm_pg_neg_diff(wy, pg_sample(im, lut, plo, ch), pg_sample(im, lut, phi, ch));
}

int gm_posegrad_image_gradients_cpu(const GmPgImageGradParams* p) {
    const GmPgImage* im = &p->img;
    int st = pg_check_image(im);
    if (st != GM_OK) return st;
    if (!p->grad_x || !p->grad_y || !p->valid) return GM_ERR_INVALID;
    const int h = im->height, w = im->width;
    const ptrdiff_t hw = (ptrdiff_t)h * w;
    float lut[256];
    pg_fill_lut(lut);
#pragma omp parallel for num_threads(im->num_threads) schedule(static)
    for (int r = 0; r < h; ++r) {
        for (int c = 0; c < w; ++c) {
            ptrdiff_t pix = (ptrdiff_t)r * w + c;
            float gx[3] = {0.0f, 0.0f, 0.0f}, gy[3] = {0.0f, 0.0f, 0.0f};
            int v = gm_pg_pixel_valid(im->instance, im->depth, h, w, r, c, im->semantics);
            p->valid[pix] = (uint8_t)v;
            if (v) pg_pixel_grads(im, lut, r, c, gx, gy);
            for (int ch = 0; ch < 3; ++ch) {
                p->grad_x[ch * hw + pix] = gx[ch];
                p->grad_y[ch * hw + pix] = gy[ch];
            }
        }
    }
    return GM_OK;
}

static inline double pg_g(const GmPgBackpropParams* p, ptrdiff_t pix, int ch) {
    ptrdiff_t k = ch * p->g_cstride + pix * p->g_pstride;
    return p->g_f32 ? (double)p->g_f32[k] : p->g_f64[k];
}

/* Camera-frame point of object coordinate x under T and the projection denominator there. */
static inline double pg_denominator(const double* T, const double* P, int denom_row, const float* x) {
    double y[3];
    for (int i = 0; i < 3; ++i) y[i] = T[3 * i] * x[0] + T[3 * i + 1] * x[1] + T[3 * i + 2] * x[2] + T[9 + i];
    const double* Pd = P + 4 * denom_row;
    return Pd[0] * y[0] + Pd[1] * y[1] + Pd[2] * y[2] + Pd[3];
}

/* One block of rows [r0, r1): valid rows into vbuf, then every pixel's contributions. */
static void pg_backprop_block(const GmPgBackpropParams* p, const float* lut, int r0, int r1,
                              uint8_t* vbuf, double* acc, int32_t* bad) {
    const GmPgImage* im = &p->img;
    const int h = im->height, w = im->width;
    const ptrdiff_t hw = (ptrdiff_t)h * w;
    const int v0 = r0 > 0 ? r0 - 1 : 0, v1 = r1 < h ? r1 + 1 : h;
    for (int r = v0; r < v1; ++r)
        for (int c = 0; c < w; ++c)
            vbuf[(ptrdiff_t)(r - v0) * w + c] =
                (uint8_t)gm_pg_pixel_valid(im->instance, im->depth, h, w, r, c, im->semantics);
    int32_t worst = INT32_MAX;
    for (int r = r0; r < r1; ++r) {
        for (int c = 0; c < w; ++c) {
            const ptrdiff_t pix = (ptrdiff_t)r * w + c;
            const int id0 = im->instance[pix];
            if (id0 != 0 && (id0 < 0 || p->id_to_slot[id0] < 0)) {
                if (id0 < worst) worst = id0;
                continue;
            }
            int16_t ids[9];
            ptrdiff_t src[9];
            int n = gm_pg_dilate_candidates(im->instance, vbuf, v0, h, w, r, c, im->semantics, ids, src);
            if (n == 0) continue;
            double sx = 0.0, sy = 0.0;
            if (vbuf[(ptrdiff_t)(r - v0) * w + c]) {
                float gx[3], gy[3];
                pg_pixel_grads(im, lut, r, c, gx, gy);
                for (int ch = 0; ch < 3; ++ch) {
                    double g = pg_g(p, pix, ch);
                    sx += g * (double)gx[ch];
                    sy += g * (double)gy[ch];
                }
            }
            for (int k = 0; k < n; ++k) {
                const int id = ids[k];
                const int slot = id > 0 ? p->id_to_slot[id] : -1;
                if (slot < 0) continue; /* a neighbour's unknown id: reported by its own pixel */
                const float* x = p->coords + 3 * src[k];
                for (int j = p->slot_start[slot]; j < p->slot_start[slot + 1]; ++j) {
                    const int o = p->slot_objects[j];
                    const double* T = p->transforms + 12 * o;
                    double* a = acc + (ptrdiff_t)o * GM_PG_ACC_STRIDE;
                    double d;
                    a[GM_PG_ACC_PIXELS] += 1.0;
                    if (p->masks) p->masks[o * hw + pix] = 1;
                    if (sx != 0.0 || sy != 0.0) {
                        double out[6];
                        d = gm_pg_contribution(T, p->projection, p->denom_row, x[0], x[1], x[2], sx, sy, out);
                        for (int e = 0; e < 6; ++e) a[GM_PG_ACC_GRAD + e] += out[e];
                        if (p->contributions)
                            for (int e = 0; e < 6; ++e) p->contributions[(o * 6 + e) * hw + pix] = (float)out[e];
                    } else {
                        d = pg_denominator(T, p->projection, p->denom_row, x);
                    }
                    if (!(d > 0.0)) a[GM_PG_ACC_SINGULAR] += 1.0;
                }
            }
        }
    }
    *bad = worst;
}

int gm_posegrad_backprop_cpu(const GmPgBackpropParams* p) {
    const GmPgImage* im = &p->img;
    int st = pg_check_image(im);
    if (st != GM_OK) return st;
    if (!p->coords || (p->g_f32 == NULL) == (p->g_f64 == NULL) || p->num_objects < 0 || !p->transforms ||
        !p->projection || (p->denom_row != 2 && p->denom_row != 3) || !p->id_to_slot || !p->slot_start ||
        (p->num_objects > 0 && !p->slot_objects) || !p->accum || !p->bad_id)
        return GM_ERR_INVALID;
    const int h = im->height, w = im->width, nobj = p->num_objects;
    const size_t per_block = (size_t)(nobj > 0 ? nobj : 1) * GM_PG_ACC_STRIDE * sizeof(double);
    int rows = PG_BLOCK_ROWS;
    while (rows < h && (size_t)((h + rows - 1) / rows) * per_block > PG_MAX_ACCUM_BYTES) rows *= 2;
    const int nblocks = (h + rows - 1) / rows;
    double* acc = (double*)calloc((size_t)nblocks, per_block);
    int32_t* bad = (int32_t*)malloc((size_t)nblocks * sizeof(int32_t));
    if (!acc || !bad) {
        free(acc);
        free(bad);
        return GM_ERR_NOMEM;
    }
    float lut[256];
    pg_fill_lut(lut);
    int fail = 0;
#pragma omp parallel num_threads(im->num_threads)
    {
        uint8_t* vbuf = (uint8_t*)malloc((size_t)(rows + 2) * (size_t)w);
        if (!vbuf) {
#pragma omp atomic write
            fail = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int b = 0; b < nblocks; ++b) {
            if (!vbuf) continue;
            int r0 = b * rows, r1 = r0 + rows < h ? r0 + rows : h;
            pg_backprop_block(p, lut, r0, r1, vbuf, acc + (size_t)b * (per_block / sizeof(double)), bad + b);
        }
        free(vbuf);
    }
    if (fail) {
        free(acc);
        free(bad);
        return GM_ERR_NOMEM;
    }
    const size_t nacc = (size_t)nobj * GM_PG_ACC_STRIDE;
    memset(p->accum, 0, nacc * sizeof(double));
    int32_t worst = INT32_MAX;
    for (int b = 0; b < nblocks; ++b) {
        const double* a = acc + (size_t)b * (per_block / sizeof(double));
        for (size_t k = 0; k < nacc; ++k) p->accum[k] += a[k];
        if (bad[b] < worst) worst = bad[b];
    }
    *p->bad_id = worst == INT32_MAX ? 0 : worst;
    free(acc);
    free(bad);
    return GM_OK;
}
