/* OpenMP loops of the pose gradients (stillleben.diff, docs/pose.md): image-space gradients
 * with the valid mask, and the fused dilation + per-pixel 6-vector + per-object reduction.
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

#include "geomops/host_alloc.h"
#include "geomops/posegrad.h"
#include "geomops/posegrad_math.h"
#include "interrupt_omp.h"

#define PG_BLOCK_ROWS      8
#define PG_MAX_ACCUM_BYTES ((size_t)256 << 20)

static int pg_check_image(const gm_pg_image* im) {
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

/* The negated, NDC-scaled central differences of channels 0..2 at (r,c). */
static inline void pg_pixel_grads(const gm_pg_image* im, const float* lut, float wx, float wy, int r, int c,
                                  float* gx, float* gy) {
    const int w = im->width;
    if (im->rgb_u8 && !gm_pg_is_border(r, c, im->height, w)) { /* fast path: no padding involved */
        const ptrdiff_t C = im->rgb_channels;
        const uint8_t* px = im->rgb_u8 + ((ptrdiff_t)r * w + c) * C;
        const ptrdiff_t stride = (ptrdiff_t)w * C;
        for (int ch = 0; ch < 3; ++ch) {
            gx[ch] = gm_pg_neg_diff(wx, lut[px[ch - C]], lut[px[ch + C]]);
            gy[ch] = gm_pg_neg_diff(wy, lut[px[ch - stride]], lut[px[ch + stride]]);
        }
        return;
    }
    gm_pg_axis_diffs(im, wx, r, c, 0, gx);
    gm_pg_axis_diffs(im, wy, r, c, 1, gy);
}

/* uni[c] = 1 where pixel (r,c) is interior and its 8 neighbours all carry its id: such a pixel
 * is valid, and the dilation adds nothing to it. A branch-free loop the compiler vectorises; it
 * lets the per-pixel loops skip the 3x3 scans on most of the image. */
static void pg_uniform_row(const int16_t* inst, int h, int w, int r, uint8_t* uni) {
    memset(uni, 0, (size_t)w);
    if (r == 0 || r == h - 1 || w < 3) return;
    const int16_t* a = inst + (ptrdiff_t)(r - 1) * w;
    const int16_t* b = a + w;
    const int16_t* d = b + w;
    for (int c = 1; c < w - 1; ++c) {
        const int16_t x = b[c];
        uni[c] = (uint8_t)((a[c - 1] == x) & (a[c] == x) & (a[c + 1] == x) & (b[c - 1] == x) &
                           (b[c + 1] == x) & (d[c - 1] == x) & (d[c] == x) & (d[c + 1] == x));
    }
}

/* v ? x : +0.0f without a branch (bit mask), so the row loops vectorise. */
static inline float pg_keep(float x, uint8_t v) {
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    bits &= (uint32_t)0 - (uint32_t)(v != 0);
    memcpy(&x, &bits, sizeof bits);
    return x;
}

/* Channels 0..2 of image row r as planar float rows (3 x w), in stillleben's units. */
static void pg_planar_row(const gm_pg_image* im, const float* lut, int r, float* out) {
    const int w = im->width, C = im->rgb_channels;
    const ptrdiff_t base = (ptrdiff_t)r * w * C;
    for (int ch = 0; ch < 3; ++ch) {
        float* o = out + (ptrdiff_t)ch * w;
        if (im->rgb_u8) {
            const uint8_t* src = im->rgb_u8 + base + ch;
            for (int c = 0; c < w; ++c) o[c] = lut[src[(ptrdiff_t)c * C]];
        } else {
            const float* src = im->rgb_f32 + base + ch;
            for (int c = 0; c < w; ++c) o[c] = src[(ptrdiff_t)c * C];
        }
    }
}

/* Row-wise: each thread keeps the planar rows r-1, r, r+1 (a 3-slot ring: a thread's rows are
 * contiguous under schedule(static)), so every interior loop below is a plain vector loop. */
int gm_posegrad_image_gradients_cpu(const gm_pg_image_grad_params* p) {
    const gm_pg_image* im = &p->img;
    int st = pg_check_image(im);
    if (st != GM_OK) return st;
    if (!p->grad_x || !p->grad_y || !p->valid) return GM_ERR_INVALID;
    const int h = im->height, w = im->width;
    const ptrdiff_t hw = (ptrdiff_t)h * w;
    const float wx = gm_pg_weight(w), wy = gm_pg_weight(h);
    float lut[256];
    pg_fill_lut(lut);
    int fail = 0;
    gm_stop stop = 0;
#pragma omp parallel num_threads(im->num_threads)
    {
        float* ring = (float*)gm_host_alloc((int64_t)9 * w, sizeof(float));
        uint8_t* uni = (uint8_t*)gm_host_alloc(w, 1);
        int tag[3] = {-1, -1, -1};
        if (!ring || !uni) {
#pragma omp atomic write
            fail = 1;
        }
#pragma omp for schedule(static)
        for (int r = 0; r < h; ++r) {
            if (!ring || !uni || gm_stopped(&stop)) continue;
            const float* rows[3]; /* planar rows r-1, r, r+1; NULL outside the image */
            for (int k = 0; k < 3; ++k) {
                int q = r - 1 + k;
                rows[k] = NULL;
                if (q < 0 || q >= h) continue;
                float* slot = ring + (ptrdiff_t)(q % 3) * 3 * w;
                if (tag[q % 3] != q) {
                    pg_planar_row(im, lut, q, slot);
                    tag[q % 3] = q;
                }
                rows[k] = slot;
            }
            uint8_t* val = p->valid + (ptrdiff_t)r * w;
            pg_uniform_row(im->instance, h, w, r, uni);
            /* locals: the uint8 stores below may alias *im, which would force a reload per pixel */
            const int16_t* inst = im->instance;
            const float* depth = im->depth;
            const int sem = im->semantics;
            for (int c = 0; c < w; ++c) val[c] = (uint8_t)gm_pg_valid(uni[c], inst, depth, h, w, r, c, sem);
            const uint8_t* restrict vr = val;
            /* the rows of the y difference as the border mode picks them (NULL: zero samples) */
            int ylo, yhi;
            gm_pg_diff_setup(r, h, im->border, &ylo, &yhi);
            for (int ch = 0; ch < 3; ++ch) {
                const float* restrict mid = rows[1] + (ptrdiff_t)ch * w;
                const float* restrict up = ylo < 0 ? NULL : rows[ylo - r + 1] + (ptrdiff_t)ch * w;
                const float* restrict dn = yhi < 0 ? NULL : rows[yhi - r + 1] + (ptrdiff_t)ch * w;
                float* restrict gxr = p->grad_x + ch * hw + (ptrdiff_t)r * w;
                float* restrict gyr = p->grad_y + ch * hw + (ptrdiff_t)r * w;
                for (int c = 1; c < w - 1; ++c)
                    gxr[c] = pg_keep(gm_pg_neg_diff(wx, mid[c - 1], mid[c + 1]), vr[c]);
                if (up && dn) {
                    for (int c = 0; c < w; ++c) gyr[c] = pg_keep(gm_pg_neg_diff(wy, up[c], dn[c]), vr[c]);
                } else {
                    for (int c = 0; c < w; ++c)
                        gyr[c] = vr[c] ? gm_pg_neg_diff(wy, up ? up[c] : 0.0f, dn ? dn[c] : 0.0f) : 0.0f;
                }
            }
            for (int c = 0; c < w; c += (w > 1 ? w - 1 : 1)) { /* the two border columns */
                float d[3];
                gm_pg_axis_diffs(im, wx, r, c, 0, d);
                for (int ch = 0; ch < 3; ++ch)
                    p->grad_x[ch * hw + (ptrdiff_t)r * w + c] = vr[c] ? d[ch] : 0.0f;
            }
        }
        gm_host_free(ring);
        gm_host_free(uni);
    }
    return gm_stop_status(&stop, fail ? GM_ERR_NOMEM : GM_OK);
}

/* One block of rows [r0, r1): valid rows into vbuf, then every pixel's contributions.
 * ubuf: scratch for the uniform flags of rows r0-1 .. r1, then one busy flag per row.
 * bad: the block's smallest unknown id; nonfinite: the first pixel where g is read and not finite. */
static void pg_backprop_block(const gm_pg_backprop_params* params, const gm_pg_object* objs, const float* lut,
                              int r0, int r1, uint8_t* vbuf, uint8_t* ubuf, double* acc, int32_t* bad,
                              int64_t* nonfinite) {
    /* a local copy: the uint8 stores below (masks, flags) may alias *params, which would force a
     * reload of every field at every pixel */
    const gm_pg_backprop_params local = *params;
    const gm_pg_backprop_params* p = &local;
    const gm_pg_image* im = &p->img;
    const int h = im->height, w = im->width;
    const float wx = gm_pg_weight(w), wy = gm_pg_weight(h);
    const ptrdiff_t hw = (ptrdiff_t)h * w;
    const int v0 = r0 > 0 ? r0 - 1 : 0, v1 = r1 < h ? r1 + 1 : h;
    uint8_t* busy = ubuf + (ptrdiff_t)(v1 - v0) * w; /* rows v0..v1-1 holding any object pixel */
    for (int r = v0; r < v1; ++r) {
        uint8_t* uni = ubuf + (ptrdiff_t)(r - v0) * w;
        uint8_t* val = vbuf + (ptrdiff_t)(r - v0) * w;
        const int16_t* row = im->instance + (ptrdiff_t)r * w;
        int any = 0;
        for (int c = 0; c < w; ++c) any |= row[c];
        busy[r - v0] = (uint8_t)(any != 0);
        if (!any) { /* background row: valid everywhere */
            memset(val, 1, (size_t)w);
            continue;
        }
        pg_uniform_row(im->instance, h, w, r, uni);
        const int16_t* inst = im->instance; /* locals: the uint8 stores may alias *im */
        const float* depth = im->depth;
        const int sem = im->semantics;
        for (int c = 0; c < w; ++c) val[c] = (uint8_t)gm_pg_valid(uni[c], inst, depth, h, w, r, c, sem);
    }
    int32_t worst = INT32_MAX;
    int64_t first_nf = -1; /* pixels are visited in increasing order: the first found is the smallest */
    for (int r = r0; r < r1; ++r) {
        /* nothing to do unless this row or a neighbour row has object pixels */
        if (!busy[r - v0] && !(r > v0 && busy[r - 1 - v0]) && !(r + 1 < v1 && busy[r + 1 - v0])) continue;
        if (!busy[r - v0]) pg_uniform_row(im->instance, h, w, r, ubuf + (ptrdiff_t)(r - v0) * w);
        const uint8_t* uni = ubuf + (ptrdiff_t)(r - v0) * w;
        for (int c = 0; c < w; ++c) {
            const ptrdiff_t pix = (ptrdiff_t)r * w + c;
            const int id0 = im->instance[pix];
            if (id0 != 0 && (id0 < 0 || p->id_to_slot[id0] < 0)) {
                if (id0 < worst) worst = id0;
                continue;
            }
            int16_t ids[9];
            ptrdiff_t src[9];
            int n;
            if (uni[c]) { /* interior of an object (or of the background): only its own id */
                if (id0 == 0) continue;
                ids[0] = (int16_t)id0;
                src[0] = pix;
                n = 1;
            } else {
                n = gm_pg_dilate_candidates(im->instance, vbuf, v0, h, w, r, c, im->semantics, ids, src);
                if (n == 0) continue;
            }
            double sx = 0.0, sy = 0.0;
            if (vbuf[(ptrdiff_t)(r - v0) * w + c]) {
                float gx[3], gy[3];
                pg_pixel_grads(im, lut, wx, wy, r, c, gx, gy);
                const double g[3] = {gm_pg_grad_at(p, pix, 0), gm_pg_grad_at(p, pix, 1),
                                     gm_pg_grad_at(p, pix, 2)};
                gm_pg_project_grad(g, gx, gy, &sx, &sy);
                /* a non-finite g makes sx or sy non-finite; only then is g itself looked at (a huge
                 * finite float64 g may overflow them too) */
                if (first_nf < 0 && !gm_pg_finite2(sx, sy) && !gm_pg_all_finite3(g)) first_nf = pix;
            }
            for (int k = 0; k < n; ++k) {
                const int id = ids[k];
                const int slot = id > 0 ? p->id_to_slot[id] : -1;
                if (slot < 0) continue; /* a neighbour's unknown id: reported by its own pixel */
                const float* x = p->coords + 3 * src[k];
                for (int j = p->slot_start[slot]; j < p->slot_start[slot + 1]; ++j) {
                    const int o = p->slot_objects[j];
                    double* a = acc + (ptrdiff_t)o * GM_PG_ACC_STRIDE;
                    double d;
                    a[GM_PG_ACC_PIXELS] += 1.0;
                    if (p->masks) p->masks[o * hw + pix] = 1;
                    if (sx != 0.0 || sy != 0.0) {
                        double out[6];
                        d = gm_pg_contribution(objs + o, x[0], x[1], x[2], sx, sy, out);
                        for (int e = 0; e < 6; ++e) a[GM_PG_ACC_GRAD + e] += out[e];
                        if (p->contributions)
                            for (int e = 0; e < 6; ++e)
                                p->contributions[(o * 6 + e) * hw + pix] = (float)out[e];
                    } else {
                        d = gm_pg_denominator(objs + o, x[0], x[1], x[2]);
                    }
                    if (!(d > 0.0)) a[GM_PG_ACC_SINGULAR] += 1.0;
                }
            }
        }
    }
    *bad = worst;
    *nonfinite = first_nf;
}

int gm_posegrad_backprop_cpu(const gm_pg_backprop_params* p) {
    const gm_pg_image* im = &p->img;
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
    double* acc = (double*)gm_host_calloc(nblocks, per_block);
    int32_t* bad = (int32_t*)gm_host_alloc(nblocks, sizeof(int32_t));
    int64_t* nonfinite = (int64_t*)gm_host_alloc(nblocks, sizeof(int64_t));
    gm_pg_object* objs = (gm_pg_object*)gm_host_alloc(nobj, sizeof(gm_pg_object));
    if (!acc || !bad || !nonfinite || !objs) {
        gm_host_free(acc);
        gm_host_free(bad);
        gm_host_free(nonfinite);
        gm_host_free(objs);
        return GM_ERR_NOMEM;
    }
    for (int o = 0; o < nobj; ++o)
        gm_pg_object_setup(p->transforms + 12 * o, p->projection, p->denom_row, objs + o);
    float lut[256];
    pg_fill_lut(lut);
    int fail = 0;
    gm_stop stop = 0;
#pragma omp parallel num_threads(im->num_threads)
    {
        /* valid rows, uniform rows, busy flags */
        uint8_t* vbuf = (uint8_t*)gm_host_alloc((int64_t)(rows + 2) * ((int64_t)w * 2 + 1), 1);
        if (!vbuf) {
#pragma omp atomic write
            fail = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int b = 0; b < nblocks; ++b) {
            if (!vbuf || gm_stopped(&stop)) continue;
            int r0 = b * rows, r1 = r0 + rows < h ? r0 + rows : h;
            double* block_acc = acc + (size_t)b * (per_block / sizeof(double));
            pg_backprop_block(p, objs, lut, r0, r1, vbuf, vbuf + (size_t)(rows + 2) * (size_t)w, block_acc,
                              bad + b, nonfinite + b);
        }
        gm_host_free(vbuf);
    }
    gm_host_free(objs);
    if (fail || atomic_load(&stop)) {
        gm_host_free(acc);
        gm_host_free(bad);
        gm_host_free(nonfinite);
        return gm_stop_status(&stop, GM_ERR_NOMEM);
    }
    const size_t nacc = (size_t)nobj * GM_PG_ACC_STRIDE;
    memset(p->accum, 0, nacc * sizeof(double));
    int32_t worst = INT32_MAX;
    int64_t first_nf = -1;
    for (int b = 0; b < nblocks; ++b) {
        const double* a = acc + (size_t)b * (per_block / sizeof(double));
        for (size_t k = 0; k < nacc; ++k) p->accum[k] += a[k];
        if (bad[b] < worst) worst = bad[b];
        if (first_nf < 0) first_nf = nonfinite[b]; /* blocks in row order: the first hit is the smallest */
    }
    *p->bad_id = worst == INT32_MAX ? 0 : worst;
    if (p->first_nonfinite) *p->first_nonfinite = first_nf;
    gm_host_free(acc);
    gm_host_free(bad);
    gm_host_free(nonfinite);
    return GM_OK;
}
