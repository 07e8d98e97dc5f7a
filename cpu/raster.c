/* Tile-binned software rasterizer (OpenMP), see include/geomops/raster.h and docs/rendering.md.
 *
 * Passes:
 *   1. vertices -> camera frame (double), outcodes, snapped fixed-point projections;
 *   2. triangle setup over contiguous chunks of the submission order: trivial reject, clipping
 *      (near plane + guard band) into a fan of pieces, orientation, pixel bounding box; each
 *      chunk appends its pieces to its own array and counts them per 32x32 tile;
 *   3. prefix sums give each (tile, chunk) pair a slot range, so every tile's list is in
 *      submission order whatever the chunk count;
 *   4. tiles in parallel: exact coverage, strict depth test on camera Z (first wins ties), then
 *      one resolve/shade pass over the tile's pixels.
 * No atomics in the numeric path, and no result depends on which thread ran what: bitwise
 * deterministic for any thread count. The per-vertex, per-face and per-pixel steps are the
 * GM_HD functions of raster_math.h, shared with cuda/raster.cu. */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off") /* the same roundings as the device (raster_math.h) */
#endif

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "geomops/host_alloc.h"
#include "geomops/raster.h"
#include "geomops/raster_math.h"
#include "interrupt_omp.h"

#define TILE       GM_RASTER_TILE
#define SUB        GM_RASTER_SUBPIXEL
#define MAX_CHUNKS 32
#define PREFETCH   4
#define VERT_BLOCK 2048 /* vertices per chunk of the vertex pass */
#define FACE_BLOCK 4096 /* faces between the interrupt checks of a setup chunk */

/* ---- scratch memory, cached between calls ------------------------------------------------ */
enum {
    WS_CAM,
    WS_OUTCODE,
    WS_SX,
    WS_SY,
    WS_TILE_START,
    WS_LIST,
    WS_TILE_COUNT,
    WS_TRIS,
    WS_NUM = WS_TRIS + MAX_CHUNKS
};

typedef struct gm_raster_block {
    void* ptr;
    size_t size;
} gm_raster_block;

typedef struct gm_raster_workspace {
    gm_raster_block blk[WS_NUM];
} gm_raster_workspace;

static gm_raster_workspace g_cache;
static atomic_int g_cache_busy;

static gm_raster_workspace* ws_acquire(void) {
    if (atomic_exchange(&g_cache_busy, 1) == 0) return &g_cache;
    return (gm_raster_workspace*)calloc(1, sizeof(gm_raster_workspace)); /* another call holds the cache */
}

static void ws_free_blocks(gm_raster_workspace* ws) {
    for (int i = 0; i < WS_NUM; ++i) {
        free(ws->blk[i].ptr);
        ws->blk[i].ptr = NULL;
        ws->blk[i].size = 0;
    }
}

static void ws_release(gm_raster_workspace* ws) {
    if (ws == &g_cache) {
        atomic_store(&g_cache_busy, 0);
    } else if (ws) {
        ws_free_blocks(ws);
        free(ws);
    }
}

void gm_raster_release_cache(void) {
    if (atomic_exchange(&g_cache_busy, 1) == 0) {
        ws_free_blocks(&g_cache);
        atomic_store(&g_cache_busy, 0);
    }
}

/* At least `need` bytes (contents undefined). Grows by 1/4 extra to avoid churn. */
static void* ws_get(gm_raster_block* b, size_t need) {
    if (need == 0) need = 1;
    if (b->size < need) {
        free(b->ptr);
        size_t cap = need + need / 4;
        b->ptr = gm_host_alloc((int64_t)cap, 1);
        b->size = b->ptr ? cap : 0;
    }
    return b->ptr;
}

/* Grow keeping the contents. */
static void* ws_grow(gm_raster_block* b, size_t need) {
    if (b->size >= need) return b->ptr;
    size_t cap = need + need / 2;
    void* p = realloc(b->ptr, cap);
    if (!p) {
        gm_host_nomem((double)cap);
        return NULL;
    }
    b->ptr = p;
    b->size = cap;
    return p;
}

/* ---- triangle setup ------------------------------------------------------------------------ */
typedef struct gm_raster_chunk {
    gm_raster_block* tris_block;
    gm_raster_tri* tris;
    int64_t count, capacity;
    int64_t* tile_count; /* per tile: pieces of this chunk overlapping it, later a write cursor */
    int status;
} gm_raster_chunk;

typedef struct gm_raster_setup {
    const gm_raster_params* p;
    gm_raster_view view;
    const int64_t* vert_base; /* first global vertex of each object */
    const int64_t* face_base; /* first global face of each object (num_objects + 1 entries) */
    const gm_vec3* cam;       /* camera-frame vertices */
    const unsigned* outcode;
    const int32_t* sx; /* snapped projections (valid when the outcode has no plane bit) */
    const int32_t* sy;
    int32_t tiles_x;
} gm_raster_setup;

static int chunk_push(gm_raster_chunk* ch, const gm_raster_tri* t) {
    if (ch->count == ch->capacity) {
        int64_t cap = ch->capacity * 2 + 64;
        gm_raster_tri* grown = (gm_raster_tri*)ws_grow(ch->tris_block, (size_t)cap * sizeof(gm_raster_tri));
        if (!grown) return GM_ERR_NOMEM;
        ch->tris = grown;
        ch->capacity = (int64_t)(ch->tris_block->size / sizeof(gm_raster_tri));
    }
    ch->tris[ch->count++] = *t;
    return GM_OK;
}

/* Set up the global faces [t0, t1) into one chunk (in submission order); stops early (the chunk
 * unfinished) when the call was interrupted. */
static void setup_chunk(const gm_raster_setup* s, gm_raster_chunk* ch, int64_t t0, int64_t t1,
                        gm_stop* stop) {
    const gm_raster_params* p = s->p;
    int32_t obj = 0;
    for (int64_t tb = t0; tb < t1; tb += FACE_BLOCK) {
        if (gm_stopped(stop)) return;
        const int64_t te = tb + FACE_BLOCK < t1 ? tb + FACE_BLOCK : t1;
        for (int64_t t = tb; t < te; ++t) {
            while (s->face_base[obj + 1] <= t) ++obj;
            const gm_raster_object* o = &p->objects[obj];
            const int32_t* fv = o->faces + 3 * (t - s->face_base[obj]);
            int64_t vb = s->vert_base[obj];
            int64_t g[3] = {vb + fv[0], vb + fv[1], vb + fv[2]};
            unsigned code[3] = {s->outcode[g[0]], s->outcode[g[1]], s->outcode[g[2]]};
            if (gm_raster_trivial_reject(code)) continue; /* before gathering the vertices */
            gm_vec3 P[3] = {s->cam[g[0]], s->cam[g[1]], s->cam[g[2]]};
            int32_t x[3] = {s->sx[g[0]], s->sx[g[1]], s->sx[g[2]]};
            int32_t y[3] = {s->sy[g[0]], s->sy[g[1]], s->sy[g[2]]};
            gm_raster_tri pieces[GM_RASTER_MAX_PIECES];
            int n = gm_raster_face_pieces(&s->view, P, code, x, y, (int32_t)t, pieces);
            for (int k = 0; k < n; ++k) {
                int status = chunk_push(ch, &pieces[k]);
                if (status != GM_OK) {
                    ch->status = status;
                    return;
                }
                int32_t tx0, tx1, ty0, ty1;
                gm_raster_piece_tiles(&pieces[k], &tx0, &tx1, &ty0, &ty1);
                for (int64_t ty = ty0; ty <= ty1; ++ty)
                    for (int64_t tx = tx0; tx <= tx1; ++tx) ch->tile_count[ty * s->tiles_x + tx]++;
            }
        }
    }
}

typedef struct gm_raster_tile_job {
    const gm_raster_params* p;
    const gm_raster_setup* s;
    const gm_raster_tri* const* chunk_tris;
    const int64_t* chunk_first;
    int nchunks;
    const double* ray_x;
    const double* ray_y;
    double inv_far;
    const uint8_t* bg;
} gm_raster_tile_job;

/* Coverage + depth test of one tile (on inverse depth: larger is closer), then resolve. */
static void raster_tile(const gm_raster_tile_job* J, const int32_t* list, int64_t count, int32_t tx,
                        int32_t ty) {
    const gm_raster_params* p = J->p;
    double izbuf[TILE * TILE];
    const gm_raster_tri* win[TILE * TILE];
    const int32_t X0 = tx * TILE, Y0 = ty * TILE;
    const int32_t X1 = X0 + TILE - 1 < p->width - 1 ? X0 + TILE - 1 : p->width - 1;
    const int32_t Y1 = Y0 + TILE - 1 < p->height - 1 ? Y0 + TILE - 1 : p->height - 1;
    for (int k = 0; k < TILE * TILE; ++k) {
        izbuf[k] = 0.0;
        win[k] = NULL;
    }
    const double inv_far = J->inv_far;
    const double* ray_x = J->ray_x;
    int cidx = 0, pidx = 0;
    for (int64_t e = 0; e < count; ++e) {
        int32_t gid = list[e];
        while (cidx + 1 < J->nchunks && J->chunk_first[cidx + 1] <= gid) ++cidx; /* lists are sorted */
        const gm_raster_tri* t = &J->chunk_tris[cidx][gid - J->chunk_first[cidx]];
#if defined(__GNUC__)
        /* records of one tile are scattered over the chunk arrays: fetch a few ahead */
        if (e + PREFETCH < count) {
            int32_t pg = list[e + PREFETCH];
            while (pidx + 1 < J->nchunks && J->chunk_first[pidx + 1] <= pg) ++pidx;
            __builtin_prefetch(&J->chunk_tris[pidx][pg - J->chunk_first[pidx]]);
        }
#endif
        int32_t c0 = t->c0 > X0 ? t->c0 : X0, c1 = t->c1 < X1 ? t->c1 : X1;
        int32_t r0 = t->r0 > Y0 ? t->r0 : Y0, r1 = t->r1 < Y1 ? t->r1 : Y1;
        if (c0 > c1 || r0 > r1) continue;
        int64_t ey[3], E0[3];
        const int64_t px0 = (int64_t)c0 * SUB, py0 = (int64_t)r0 * SUB;
        for (int k = 0; k < 3; ++k) {
            int k1 = k == 2 ? 0 : k + 1;
            int64_t ex = (int64_t)t->x[k1] - t->x[k];
            ey[k] = (int64_t)t->y[k1] - t->y[k];
            E0[k] = gm_raster_edge(t->x[k], t->y[k], t->x[k1], t->y[k1], px0, py0) +
                    gm_raster_edge_bias(ex, ey[k]);
        }
        for (int32_t r = r0; r <= r1; ++r) {
            /* E(c, r) = E(c0, r0) + ex (r - r0) SUB - ey (c - c0) SUB */
            int64_t E[3];
            for (int k = 0; k < 3; ++k) {
                int k1 = k == 2 ? 0 : k + 1;
                E[k] = E0[k] + ((int64_t)t->x[k1] - t->x[k]) * (int64_t)(r - r0) * SUB;
            }
            const double rowb = gm_raster_axpb(t->b, J->ray_y[r], t->e);
            const int32_t row = (r - Y0) * TILE - X0;
            for (int32_t c = c0; c <= c1; ++c) {
                if ((E[0] | E[1] | E[2]) >= 0) {
                    const double iz = gm_raster_piece_inv_depth(t, ray_x[c], rowb);
                    const int32_t k = row + c;
                    if (iz >= inv_far && iz > izbuf[k]) {
                        izbuf[k] = iz;
                        win[k] = t;
                    }
                }
                E[0] -= ey[0] * SUB;
                E[1] -= ey[1] * SUB;
                E[2] -= ey[2] * SUB;
            }
        }
    }
    const gm_raster_setup* s = J->s;
    int32_t obj = 0;
    for (int32_t r = Y0; r <= Y1; ++r) {
        for (int32_t c = X0; c <= X1; ++c) {
            const int32_t k = (r - Y0) * TILE + (c - X0);
            const int64_t i = (int64_t)r * p->width + c;
            const gm_raster_tri* t = win[k];
            if (!t) {
                gm_raster_clear_pixel(p, i, J->bg);
                continue;
            }
            int32_t gface = t->gface;
            while (gface < s->face_base[obj]) --obj;
            while (gface >= s->face_base[obj + 1]) ++obj;
            gm_raster_shade_pixel(p, &p->objects[obj], s->cam + s->vert_base[obj], i,
                                  (int32_t)(gface - s->face_base[obj]), 1.0 / izbuf[k], ray_x[c],
                                  J->ray_y[r]);
        }
    }
}

/* ---- launcher ------------------------------------------------------------------------------ */
static int raster_run(const gm_raster_params* p, gm_raster_workspace* ws, int nt) {
    const int32_t W = p->width, H = p->height, nobj = p->num_objects;
    const int32_t tiles_x = (W + TILE - 1) / TILE, tiles_y = (H + TILE - 1) / TILE;
    const int64_t ntiles = (int64_t)tiles_x * tiles_y;

    uint8_t bg[3];
    for (int j = 0; j < 3; ++j) bg[j] = gm_raster_to_u8(p->background[j]);

    /* small per-call tables */
    int64_t* vert_base = (int64_t*)gm_host_alloc(nobj + 1, sizeof(int64_t));
    int64_t* face_base = (int64_t*)gm_host_alloc(nobj + 2, sizeof(int64_t));
    double* ray_x = (double*)gm_host_alloc(W, sizeof(double));
    double* ray_y = (double*)gm_host_alloc(H, sizeof(double));
    gm_stop stop = 0;
    gm_raster_chunk chunks[MAX_CHUNKS];
    int64_t chunk_first[MAX_CHUNKS + 1];
    const gm_raster_tri* chunk_tris[MAX_CHUNKS];
    int status = GM_OK;
    memset(chunks, 0, sizeof(chunks));
    if (!vert_base || !face_base || !ray_x || !ray_y) {
        status = GM_ERR_NOMEM;
        goto done;
    }
    vert_base[0] = face_base[0] = 0;
    for (int32_t o = 0; o < nobj; ++o) {
        vert_base[o + 1] = vert_base[o] + p->objects[o].num_vertices;
        face_base[o + 1] = face_base[o] + p->objects[o].num_faces;
    }
    face_base[nobj + 1] = INT64_MAX; /* sentinel for the object lookups */
    const int64_t nv = vert_base[nobj], nf = face_base[nobj];
    if (nf > INT32_MAX) {
        status = GM_ERR_OVERFLOW;
        goto done;
    }
    for (int32_t c = 0; c < W; ++c) ray_x[c] = gm_raster_ray(c, p->cx, p->fx);
    for (int32_t r = 0; r < H; ++r) ray_y[r] = gm_raster_ray(r, p->cy, p->fy);

    /* chunk count: a few per thread (balance when cores are shared), bounded so the per-tile
     * counters stay small; the result does not depend on it */
    int nchunks = nt == 1 ? 1 : (4 * nt < MAX_CHUNKS ? 4 * nt : MAX_CHUNKS);
    while (nchunks > 1 && (int64_t)nchunks * ntiles > ((int64_t)1 << 22)) --nchunks;
    if ((int64_t)nchunks > nf) nchunks = nf > 0 ? (int)nf : 1;

    gm_vec3* cam = (gm_vec3*)ws_get(&ws->blk[WS_CAM], sizeof(gm_vec3) * (size_t)nv);
    unsigned* outcode = (unsigned*)ws_get(&ws->blk[WS_OUTCODE], sizeof(unsigned) * (size_t)nv);
    int32_t* sx = (int32_t*)ws_get(&ws->blk[WS_SX], sizeof(int32_t) * (size_t)nv);
    int32_t* sy = (int32_t*)ws_get(&ws->blk[WS_SY], sizeof(int32_t) * (size_t)nv);
    int64_t* tile_start = (int64_t*)ws_get(&ws->blk[WS_TILE_START], sizeof(int64_t) * (size_t)(ntiles + 1));
    int64_t* tile_count =
        (int64_t*)ws_get(&ws->blk[WS_TILE_COUNT], sizeof(int64_t) * (size_t)(ntiles * nchunks));
    if (!cam || !outcode || !sx || !sy || !tile_start || !tile_count) {
        status = GM_ERR_NOMEM;
        goto done;
    }
    memset(tile_count, 0, sizeof(int64_t) * (size_t)(ntiles * nchunks));

    gm_raster_setup s;
    s.p = p;
    gm_raster_view_init(p, &s.view);
    s.vert_base = vert_base;
    s.face_base = face_base;
    s.cam = cam;
    s.outcode = outcode;
    s.sx = sx;
    s.sy = sy;
    s.tiles_x = tiles_x;

    for (int ci = 0; ci < nchunks; ++ci) {
        int64_t t0 = nf * ci / nchunks, t1 = nf * (ci + 1) / nchunks;
        chunks[ci].tris_block = &ws->blk[WS_TRIS + ci];
        chunks[ci].tile_count = tile_count + ntiles * ci;
        /* a piece per face is typical; clipping may add more (the array grows) */
        chunks[ci].tris =
            (gm_raster_tri*)ws_get(chunks[ci].tris_block, sizeof(gm_raster_tri) * (size_t)(t1 - t0 + 64));
        if (!chunks[ci].tris) {
            status = GM_ERR_NOMEM;
            goto done;
        }
        chunks[ci].capacity = (int64_t)(chunks[ci].tris_block->size / sizeof(gm_raster_tri));
    }

#pragma omp parallel num_threads(nt)
    {
        /* 1. vertices */
        for (int32_t o = 0; o < nobj; ++o) {
            const gm_raster_object* ob = &p->objects[o];
            const int64_t base = vert_base[o], n = ob->num_vertices;
            const int64_t nblocks = (n + VERT_BLOCK - 1) / VERT_BLOCK;
#pragma omp for schedule(dynamic, 1) nowait
            for (int64_t vb = 0; vb < nblocks; ++vb) {
                if (gm_stopped(&stop)) continue;
                const int64_t v1 = (vb + 1) * VERT_BLOCK < n ? (vb + 1) * VERT_BLOCK : n;
                for (int64_t v = vb * VERT_BLOCK; v < v1; ++v)
                    gm_raster_vertex(&s.view, ob->transform, ob->vertices + 3 * v, &cam[base + v],
                                     &outcode[base + v], &sx[base + v], &sy[base + v]);
            }
        }
#pragma omp barrier
        /* 2. triangle setup, one contiguous range of faces per chunk */
#pragma omp for schedule(dynamic, 1)
        for (int ci = 0; ci < nchunks; ++ci)
            if (!gm_stopped(&stop))
                setup_chunk(&s, &chunks[ci], nf * ci / nchunks, nf * (ci + 1) / nchunks, &stop);
    }
    if (atomic_load(&stop)) {
        status = GM_ERR_INTERRUPTED;
        goto done;
    }

    chunk_first[0] = 0;
    for (int ci = 0; ci < nchunks; ++ci) {
        if (chunks[ci].status != GM_OK) {
            status = chunks[ci].status;
            goto done;
        }
        chunk_first[ci + 1] = chunk_first[ci] + chunks[ci].count;
        chunk_tris[ci] = chunks[ci].tris;
    }
    if (chunk_first[nchunks] > INT32_MAX) {
        status = GM_ERR_OVERFLOW;
        goto done;
    }

    /* 3. per-(tile, chunk) slots: tile-major, chunks in order inside a tile */
    tile_start[0] = 0;
    for (int64_t tl = 0; tl < ntiles; ++tl) {
        int64_t acc = tile_start[tl];
        for (int ci = 0; ci < nchunks; ++ci) {
            int64_t cnt = chunks[ci].tile_count[tl];
            chunks[ci].tile_count[tl] = acc; /* becomes this chunk's write cursor */
            acc += cnt;
        }
        tile_start[tl + 1] = acc;
    }
    int32_t* list = (int32_t*)ws_get(&ws->blk[WS_LIST], sizeof(int32_t) * (size_t)tile_start[ntiles]);
    if (!list) {
        status = GM_ERR_NOMEM;
        goto done;
    }
    gm_raster_tile_job job;
    job.p = p;
    job.s = &s;
    job.chunk_tris = chunk_tris;
    job.chunk_first = chunk_first;
    job.nchunks = nchunks;
    job.ray_x = ray_x;
    job.ray_y = ray_y;
    job.inv_far = 1.0 / p->far_z;
    job.bg = bg;

#pragma omp parallel num_threads(nt)
    {
#pragma omp for schedule(dynamic, 1)
        for (int ci = 0; ci < nchunks; ++ci) {
            if (gm_stopped(&stop)) continue;
            const gm_raster_chunk* ch = &chunks[ci];
            int64_t* cursor = ch->tile_count;
            for (int64_t j = 0; j < ch->count; ++j) {
                int32_t gid = (int32_t)(chunk_first[ci] + j);
                int32_t tx0, tx1, ty0, ty1;
                gm_raster_piece_tiles(&ch->tris[j], &tx0, &tx1, &ty0, &ty1);
                for (int32_t ty = ty0; ty <= ty1; ++ty)
                    for (int32_t tx = tx0; tx <= tx1; ++tx) list[cursor[(int64_t)ty * tiles_x + tx]++] = gid;
            }
        }
        /* 4. tiles (the implicit barrier above completes the lists) */
#pragma omp for schedule(dynamic, 1)
        for (int64_t tl = 0; tl < ntiles; ++tl)
            if (!gm_stopped(&stop))
                raster_tile(&job, list + tile_start[tl], tile_start[tl + 1] - tile_start[tl],
                            (int32_t)(tl % tiles_x), (int32_t)(tl / tiles_x));
    }
    status = gm_stop_status(&stop, status);

done:
    free(vert_base);
    free(face_base);
    free(ray_x);
    free(ray_y);
    return status;
}

int gm_raster_cpu(const gm_raster_params* p) {
    if (!p || p->width < 1 || p->height < 1 || p->width > GM_RASTER_MAX_SIZE ||
        p->height > GM_RASTER_MAX_SIZE || p->num_objects < 0 || (p->num_objects > 0 && !p->objects) ||
        !(p->near_z > 0.0) || !(p->far_z > p->near_z) || !(p->fx > 0.0) || !(p->fy > 0.0) || !p->rgb ||
        !p->depth || !p->instance_index || !p->object_coordinates)
        return GM_ERR_INVALID;
    int nt = p->num_threads > 0 ? p->num_threads : 1;
    gm_raster_workspace* ws = ws_acquire();
    if (!ws) return GM_ERR_NOMEM;
    int status = raster_run(p, ws, nt);
    ws_release(ws);
    return status;
}
