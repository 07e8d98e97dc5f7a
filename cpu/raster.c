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
/* the same roundings as the device (raster_math.h); short store loops stay inline (clear_run) */
#pragma GCC optimize("fp-contract=off", "no-tree-loop-distribute-patterns")
#endif

#include <math.h>
#if defined(__unix__)
#include <sched.h>
#endif
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "geomops/host_alloc.h"
#include "geomops/raster.h"
#include "geomops/raster_math.h"
#include "interrupt_omp.h"
#include "isa.h"
#if GM_ISA_X86
#include <immintrin.h>
#endif

#define TILE             GM_RASTER_TILE
#define SUB              GM_RASTER_SUBPIXEL
#define MAX_CHUNKS       32
#define PREFETCH         4
#define VERTEX_BLOCK     2048 /* vertices per task of the vertex pass */
#define FACE_BLOCK       4096 /* faces between the interrupt checks of a setup chunk */
#define GM_RASTER_PASSES 5

/* ---- scratch memory, cached between calls ------------------------------------------------ */
enum { WS_CAM, WS_VTX, WS_TILE_START, WS_LIST, WS_TILE_COUNT, WS_TRIS, WS_NUM = WS_TRIS + MAX_CHUNKS };

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
    /* another call holds the cache */
    return (gm_raster_workspace*)gm_host_calloc(1, sizeof(gm_raster_workspace));
}

static void ws_free_blocks(gm_raster_workspace* ws) {
    for (int i = 0; i < WS_NUM; ++i) {
        gm_host_free(ws->blk[i].ptr);
        ws->blk[i].ptr = NULL;
        ws->blk[i].size = 0;
    }
}

static void ws_release(gm_raster_workspace* ws) {
    if (ws == &g_cache) {
        atomic_store(&g_cache_busy, 0);
    } else if (ws) {
        ws_free_blocks(ws);
        gm_host_free(ws);
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
        gm_host_free(b->ptr);
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
    void* p = gm_host_realloc(b->ptr, (int64_t)cap, 1);
    if (!p) return NULL;
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

/* What triangle setup reads of a vertex besides its position, in one record (one cache access
 * per corner instead of three). */
typedef struct gm_raster_vtx {
    int32_t sx, sy; /* snapped projection (valid when the outcode has no plane bit) */
    unsigned code;  /* outcode */
    int32_t pad;
} gm_raster_vtx;

typedef struct gm_raster_setup {
    const gm_raster_params* p;
    gm_raster_view view;
    const int64_t* vert_base; /* first global vertex of each object */
    const int64_t* face_base; /* first global face of each object (num_objects + 1 entries) */
    const gm_vec3* cam;       /* camera-frame vertices */
    const gm_raster_vtx* vtx;
    int32_t tiles_x;
} gm_raster_setup;

/* Room for the pieces of one more face at the end of the chunk. */
static int chunk_reserve(gm_raster_chunk* ch) {
    if (ch->count + GM_RASTER_MAX_PIECES > ch->capacity) {
        int64_t cap = ch->capacity * 2 + 64;
        gm_raster_tri* grown = (gm_raster_tri*)ws_grow(ch->tris_block, (size_t)cap * sizeof(gm_raster_tri));
        if (!grown) return GM_ERR_NOMEM;
        ch->tris = grown;
        ch->capacity = (int64_t)(ch->tris_block->size / sizeof(gm_raster_tri));
    }
    return GM_OK;
}

/* Set up the global faces [t0, t1) into chunk ch (in submission order); stops early (the chunk
 * unfinished) when the call was interrupted. */
static void setup_faces(const gm_raster_setup* s, gm_raster_chunk* ch, int64_t t0, int64_t t1,
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
            const gm_raster_vtx V[3] = {s->vtx[g[0]], s->vtx[g[1]], s->vtx[g[2]]};
            unsigned code[3] = {V[0].code, V[1].code, V[2].code};
            if (gm_raster_trivial_reject(code)) continue; /* before gathering the vertices */
            gm_vec3 P[3] = {s->cam[g[0]], s->cam[g[1]], s->cam[g[2]]};
            int32_t x[3] = {V[0].sx, V[1].sx, V[2].sx};
            int32_t y[3] = {V[0].sy, V[1].sy, V[2].sy};
            int status = chunk_reserve(ch);
            if (status != GM_OK) {
                ch->status = status;
                return;
            }
            gm_raster_tri* pieces = ch->tris + ch->count; /* written in place */
            int n = gm_raster_face_pieces(&s->view, P, code, x, y, (int32_t)t, pieces);
            ch->count += n;
            for (int k = 0; k < n; ++k) {
                int32_t tx0, tx1, ty0, ty1;
                gm_raster_piece_tiles(&pieces[k], &tx0, &tx1, &ty0, &ty1);
                for (int64_t ty = ty0; ty <= ty1; ++ty)
                    for (int64_t tx = tx0; tx <= tx1; ++tx) ch->tile_count[ty * s->tiles_x + tx]++;
            }
        }
    }
}

/* setup_faces on a local copy of the chunk record: the records of the other threads' chunks share
 * its cache lines, and its count changes with every face. */
static void setup_chunk(const gm_raster_setup* s, gm_raster_chunk* out, int64_t t0, int64_t t1,
                        gm_stop* stop) {
    gm_raster_chunk local = *out;
    setup_faces(s, &local, t0, t1, stop);
    *out = local;
}

typedef struct gm_raster_tile_job {
    const gm_raster_params* p;
    const gm_raster_setup* s;
    const double* ray_x;
    const double* ray_y;
    double inv_far;
    uint32_t bg_rgba; /* background rgba as stored */
} gm_raster_tile_job;

/* Background of the n pixels from pixel i on (one run of a tile row, n <= GM_RASTER_TILE): the
 * values of gm_raster_clear_pixel, written buffer by buffer with inline stores (runs are too
 * short for memset calls to pay). */
static inline void clear_run(const gm_raster_params* p, int64_t i, int32_t n, uint32_t bg_rgba) {
    const float B = GM_RASTER_BACKGROUND;
    uint8_t* rgb = p->rgb + 4 * i;
    for (int32_t k = 0; k < n; ++k) memcpy(rgb + 4 * k, &bg_rgba, 4);
    float* depth = p->depth + i;
    int16_t* inst = p->instance_index + i;
    for (int32_t k = 0; k < n; ++k) {
        depth[k] = B;
        inst[k] = 0;
    }
    float* oc = p->object_coordinates + 3 * i;
    for (int32_t k = 0; k < 3 * n; ++k) oc[k] = B;
    if (p->class_index) {
        int16_t* cl = p->class_index + i;
        for (int32_t k = 0; k < n; ++k) cl[k] = 0;
    }
    if (p->triangle_id) {
        int32_t* tri = p->triangle_id + i;
        for (int32_t k = 0; k < n; ++k) tri[k] = -1;
    }
    if (p->barycentrics) {
        float* bc = p->barycentrics + 3 * i;
        for (int32_t k = 0; k < 3 * n; ++k) bc[k] = 0.0f;
    }
    if (p->cam_coordinates) {
        float* cc = p->cam_coordinates + 4 * i;
        for (int32_t k = 0; k < 4 * n; ++k) cc[k] = B;
    }
    if (p->normals) {
        float* nr = p->normals + 4 * i;
        for (int32_t k = 0; k < 4 * n; ++k) nr[k] = 0.0f;
    }
}

/* One tile row of every buffer, where the resolve writes before the row goes out (aligned to
 * cache lines for the streaming stores). */
typedef struct gm_raster_rows {
    _Alignas(64) uint8_t rgb[4 * TILE];
    _Alignas(64) float depth[TILE];
    _Alignas(64) int16_t instance_index[TILE];
    _Alignas(64) float object_coordinates[3 * TILE];
    _Alignas(64) int16_t class_index[TILE];
    _Alignas(64) int32_t triangle_id[TILE];
    _Alignas(64) float barycentrics[3 * TILE];
    _Alignas(64) float cam_coordinates[4 * TILE];
    _Alignas(64) float normals[4 * TILE];
} gm_raster_rows;

/* the per-tile coverage and resolve, compiled per ISA */
#define GM_ISA_BODY "raster_hot.h"
#include "isa_variants.h"

/* Until *done reaches n (the tasks of a pass, completed by other threads); acquires their writes. */
static void wait_for(atomic_llong* done, int64_t n) {
    for (int spins = 0; atomic_load_explicit(done, memory_order_acquire) < n; ++spins) {
#if defined(__unix__)
        if (spins >= 64) sched_yield(); /* the thread we wait for may need this core */
#endif
    }
}

/* ---- launcher ------------------------------------------------------------------------------ */
static int raster_run(const gm_raster_params* p, gm_raster_workspace* ws, int nt) {
    const int32_t W = p->width, H = p->height, nobj = p->num_objects;
    const int32_t tiles_x = (W + TILE - 1) / TILE, tiles_y = (H + TILE - 1) / TILE;
    const int64_t ntiles = (int64_t)tiles_x * tiles_y;

    uint8_t bg[4];
    for (int j = 0; j < 3; ++j) bg[j] = gm_raster_to_u8(p->background[j]);
    bg[3] = 0;
    uint32_t bg_rgba;
    memcpy(&bg_rgba, bg, 4);

    /* small per-call tables */
    int64_t* vert_base = (int64_t*)gm_host_alloc(nobj + 1, sizeof(int64_t));
    int64_t* face_base = (int64_t*)gm_host_alloc(nobj + 2, sizeof(int64_t));
    double* ray_x = (double*)gm_host_alloc(W, sizeof(double));
    double* ray_y = (double*)gm_host_alloc(H, sizeof(double));
    gm_stop stop = 0;
    gm_raster_chunk chunks[MAX_CHUNKS];
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
    int nchunks = nt == 1 ? 1 : (8 * nt < MAX_CHUNKS ? 8 * nt : MAX_CHUNKS);
    while (nchunks > 1 && (int64_t)nchunks * ntiles > ((int64_t)1 << 22)) --nchunks;
    if ((int64_t)nchunks > nf) nchunks = nf > 0 ? (int)nf : 1;

    gm_vec3* cam = (gm_vec3*)ws_get(&ws->blk[WS_CAM], sizeof(gm_vec3) * (size_t)nv);
    gm_raster_vtx* vtx = (gm_raster_vtx*)ws_get(&ws->blk[WS_VTX], sizeof(gm_raster_vtx) * (size_t)nv);
    int64_t* tile_start = (int64_t*)ws_get(&ws->blk[WS_TILE_START], sizeof(int64_t) * (size_t)(ntiles + 1));
    int64_t* tile_count =
        (int64_t*)ws_get(&ws->blk[WS_TILE_COUNT], sizeof(int64_t) * (size_t)(ntiles * nchunks));
    if (!cam || !vtx || !tile_start || !tile_count) {
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
    s.vtx = vtx;
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

    gm_raster_tile_job job;
    job.p = p;
    job.s = &s;
    job.ray_x = ray_x;
    job.ray_y = ray_y;
    job.inv_far = 1.0 / p->far_z;
    job.bg_rgba = bg_rgba;
    void (*const tile_fn)(const gm_raster_tile_job*, const gm_raster_tri* const*, int64_t, int32_t, int32_t) =
        GM_ISA_PICK(raster_tile);
    const gm_raster_tri** list = NULL;

    /* vertex blocks per object */
    int64_t* vblock = (int64_t*)gm_host_alloc(nobj + 1, sizeof(int64_t));
    if (!vblock) {
        status = GM_ERR_NOMEM;
        goto done;
    }
    vblock[0] = 0;
    for (int32_t o = 0; o < nobj; ++o)
        vblock[o + 1] = vblock[o] + (p->objects[o].num_vertices + VERTEX_BLOCK - 1) / VERTEX_BLOCK;

    /* The passes as one queue of tasks, taken in order by whichever thread is free: vertex blocks,
     * setup chunks, the prefix sums, binning chunks, tiles. A task waits for the completion of
     * every task of the pass before its own instead of a barrier, so a thread that the OS has not
     * scheduled yet (shared cores) holds nobody up unless it has taken a task. */
    const int64_t count[GM_RASTER_PASSES] = {vblock[nobj], nchunks, 1, nchunks, ntiles};
    int64_t first[GM_RASTER_PASSES + 1];
    first[0] = 0;
    for (int k = 0; k < GM_RASTER_PASSES; ++k) first[k + 1] = first[k] + count[k];
    atomic_llong next_task = 0;
    atomic_llong done_tasks[GM_RASTER_PASSES];
    for (int k = 0; k < GM_RASTER_PASSES; ++k) atomic_init(&done_tasks[k], 0);

#pragma omp parallel num_threads(nt)
    {
        int pass = 0;
        for (;;) {
            const int64_t task = atomic_fetch_add_explicit(&next_task, 1, memory_order_relaxed);
            if (task >= first[GM_RASTER_PASSES]) break;
            while (task >= first[pass + 1]) ++pass; /* tasks are taken in increasing order */
            if (pass > 0) wait_for(&done_tasks[pass - 1], count[pass - 1]);
            const int64_t i = task - first[pass];
            if (gm_stopped(&stop)) {
                /* interrupted: skipped, but counted as done below so that nobody waits forever */
            } else if (pass == 0) {            /* 1. vertices */
                int32_t lo = 0, hi = nobj - 1; /* the object of block i: vblock[o] <= i < vblock[o + 1] */
                while (lo < hi) {
                    const int32_t mid = lo + (hi - lo + 1) / 2;
                    if (vblock[mid] <= i)
                        lo = mid;
                    else
                        hi = mid - 1;
                }
                const gm_raster_object* ob = &p->objects[lo];
                const int64_t base = vert_base[lo], v0 = (i - vblock[lo]) * VERTEX_BLOCK;
                const int64_t v1 =
                    v0 + VERTEX_BLOCK < ob->num_vertices ? v0 + VERTEX_BLOCK : ob->num_vertices;
                for (int64_t v = v0; v < v1; ++v)
                    gm_raster_vertex(&s.view, ob->transform, ob->vertices + 3 * v, &cam[base + v],
                                     &vtx[base + v].code, &vtx[base + v].sx, &vtx[base + v].sy);
            } else if (pass == 1) { /* 2. triangle setup, one contiguous range of faces per chunk */
                const int ci = (int)i;
                setup_chunk(&s, &chunks[ci], nf * ci / nchunks, nf * (ci + 1) / nchunks, &stop);
            } else if (pass ==
                       2) { /* 3. per-(tile, chunk) slots: tile-major, chunks in order inside a tile */
                int64_t num_pieces = 0;
                for (int ci = 0; ci < nchunks && status == GM_OK; ++ci) {
                    status = chunks[ci].status;
                    num_pieces += chunks[ci].count;
                }
                if (status == GM_OK && num_pieces > INT32_MAX) status = GM_ERR_OVERFLOW;
                if (status == GM_OK) {
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
                    list = (const gm_raster_tri**)ws_get(&ws->blk[WS_LIST],
                                                         sizeof(gm_raster_tri*) * (size_t)tile_start[ntiles]);
                    if (!list) status = GM_ERR_NOMEM;
                }
            } else if (status == GM_OK && pass == 3) { /* binning */
                const gm_raster_chunk* ch = &chunks[i];
                int64_t* cursor = ch->tile_count;
                for (int64_t j = 0; j < ch->count; ++j) {
                    const gm_raster_tri* t = &ch->tris[j];
                    int32_t tx0, tx1, ty0, ty1;
                    gm_raster_piece_tiles(t, &tx0, &tx1, &ty0, &ty1);
                    for (int32_t ty = ty0; ty <= ty1; ++ty)
                        for (int32_t tx = tx0; tx <= tx1; ++tx)
                            list[cursor[(int64_t)ty * tiles_x + tx]++] = t;
                }
            } else if (status == GM_OK) { /* 4. tiles */
                tile_fn(&job, list + tile_start[i], tile_start[i + 1] - tile_start[i], (int32_t)(i % tiles_x),
                        (int32_t)(i / tiles_x));
            }
            atomic_fetch_add_explicit(&done_tasks[pass], 1, memory_order_release);
        }
    }
    gm_host_free(vblock);
    status = gm_stop_status(&stop, status);

done:
    gm_host_free(vert_base);
    gm_host_free(face_base);
    gm_host_free(ray_x);
    gm_host_free(ray_y);
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
