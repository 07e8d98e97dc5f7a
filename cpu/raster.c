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
 * deterministic for any thread count. */
#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "geomops/raster.h"
#include "geomops/raster_math.h"

#define TILE       GM_RASTER_TILE
#define SUB        GM_RASTER_SUBPIXEL
#define MAX_CHUNKS 32
#define PREFETCH   4
#define PLANE_MASK ((1u << GM_RASTER_NUM_PLANES) - 1u)
#define FAR_BIT    (1u << GM_RASTER_NUM_PLANES)
#define ALL_BITS   (PLANE_MASK | FAR_BIT) /* a non-finite vertex: its triangles are dropped */

/* One piece of a (possibly clipped) triangle, ready for coverage tests (72 bytes). */
typedef struct gm_raster_tri {
    int32_t x[3], y[3];     /* fixed-point vertices, positive orientation */
    int16_t c0, c1, r0, r1; /* pixel bounding box, clamped to the image */
    int32_t gface;          /* global face id (faces of all objects in submission order) */
    float ilo, ihi;         /* inverse-depth range of the piece (widened slightly) */
    double a, b, e;         /* 1/Z = a dx + b dy + e on the pixel ray (dx, dy, 1) */
} gm_raster_tri;

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
        b->ptr = malloc(cap);
        b->size = b->ptr ? cap : 0;
    }
    return b->ptr;
}

/* Grow keeping the contents. */
static void* ws_grow(gm_raster_block* b, size_t need) {
    if (b->size >= need) return b->ptr;
    size_t cap = need + need / 2;
    void* p = realloc(b->ptr, cap);
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

typedef struct gm_raster_setup {
    const gm_raster_params* p;
    gm_plane planes[GM_RASTER_NUM_PLANES];
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

/* True when some candidate sample of a small bounding box is covered. */
static int covers_any(const gm_raster_tri* t) {
    int64_t ex[3], ey[3], bias[3];
    for (int k = 0; k < 3; ++k) {
        ex[k] = (int64_t)t->x[(k + 1) % 3] - t->x[k];
        ey[k] = (int64_t)t->y[(k + 1) % 3] - t->y[k];
        bias[k] = gm_raster_edge_bias(ex[k], ey[k]);
    }
    for (int32_t r = t->r0; r <= t->r1; ++r)
        for (int32_t c = t->c0; c <= t->c1; ++c) {
            int64_t px = (int64_t)c * SUB, py = (int64_t)r * SUB;
            int64_t acc = 0;
            for (int k = 0; k < 3; ++k)
                acc |=
                    gm_raster_edge(t->x[k], t->y[k], t->x[(k + 1) % 3], t->y[(k + 1) % 3], px, py) + bias[k];
            if (acc >= 0) return 1;
        }
    return 0;
}

/* Orient, bound and store one piece with fixed-point vertices (x, y) and camera depths z. */
static int emit_piece(const gm_raster_setup* s, gm_raster_chunk* ch, const int32_t* x, const int32_t* y,
                      const double* z, int32_t gface, const double* plane) {
    gm_raster_tri t;
    int64_t area = gm_raster_area2(x, y);
    if (area == 0) return GM_OK; /* degenerate in fixed point: covers no sample */
    t.x[0] = x[0];
    t.y[0] = y[0];
    if (area > 0) {
        t.x[1] = x[1];
        t.y[1] = y[1];
        t.x[2] = x[2];
        t.y[2] = y[2];
    } else {
        t.x[1] = x[2];
        t.y[1] = y[2];
        t.x[2] = x[1];
        t.y[2] = y[1];
    }
    int64_t minx = x[0], maxx = x[0], miny = y[0], maxy = y[0];
    for (int k = 1; k < 3; ++k) {
        if (x[k] < minx) minx = x[k];
        if (x[k] > maxx) maxx = x[k];
        if (y[k] < miny) miny = y[k];
        if (y[k] > maxy) maxy = y[k];
    }
    /* pixel c is sampled at c * SUB: the candidates are ceil(min / SUB) .. floor(max / SUB) */
    int64_t c0 = -gm_raster_floor_div(-minx, SUB), c1 = gm_raster_floor_div(maxx, SUB);
    int64_t r0 = -gm_raster_floor_div(-miny, SUB), r1 = gm_raster_floor_div(maxy, SUB);
    if (c0 < 0) c0 = 0;
    if (r0 < 0) r0 = 0;
    if (c1 > s->p->width - 1) c1 = s->p->width - 1;
    if (r1 > s->p->height - 1) r1 = s->p->height - 1;
    if (c0 > c1 || r0 > r1) return GM_OK;
    t.c0 = (int16_t)c0;
    t.c1 = (int16_t)c1;
    t.r0 = (int16_t)r0;
    t.r1 = (int16_t)r1;
    /* small triangles often fall between sample points: drop them here, not in every tile */
    if ((c1 - c0 + 1) * (r1 - r0 + 1) <= 4 && !covers_any(&t)) return GM_OK;
    t.gface = gface;
    t.a = plane[0];
    t.b = plane[1];
    t.e = plane[2];
    double zlo = fmin(z[0], fmin(z[1], z[2])), zhi = fmax(z[0], fmax(z[1], z[2]));
    /* widened by 1e-6 (more than the float rounding) so the clamp never bites inside */
    t.ilo = (float)((1.0 / zhi) * (1.0 - 1e-6));
    t.ihi = (float)((1.0 / zlo) * (1.0 + 1e-6));
    int status = chunk_push(ch, &t);
    if (status != GM_OK) return status;
    for (int64_t ty = r0 / TILE; ty <= r1 / TILE; ++ty)
        for (int64_t tx = c0 / TILE; tx <= c1 / TILE; ++tx) ch->tile_count[ty * s->tiles_x + tx]++;
    return GM_OK;
}

/* Clip the camera-frame triangle against the planes its vertices violate; emit a fan. */
static int emit_clipped(const gm_raster_setup* s, gm_raster_chunk* ch, const gm_vec3* P, unsigned any_out,
                        int32_t gface, const double* plane) {
    gm_vec3 buf_a[GM_RASTER_MAX_POLY], buf_b[GM_RASTER_MAX_POLY];
    gm_vec3* cur = buf_a;
    gm_vec3* nxt = buf_b;
    int m = 3;
    cur[0] = P[0];
    cur[1] = P[1];
    cur[2] = P[2];
    for (int k = 0; k < GM_RASTER_NUM_PLANES && m >= 3; ++k) {
        if (!(any_out & (1u << k))) continue;
        m = gm_raster_clip_polygon(cur, m, s->planes[k], nxt);
        gm_vec3* tmp = cur;
        cur = nxt;
        nxt = tmp;
    }
    if (m < 3) return GM_OK;
    int32_t px[GM_RASTER_MAX_POLY], py[GM_RASTER_MAX_POLY];
    const gm_raster_params* p = s->p;
    for (int i = 0; i < m; ++i) gm_raster_project(cur[i], p->fx, p->fy, p->cx, p->cy, &px[i], &py[i]);
    for (int i = 1; i + 1 < m; ++i) {
        int32_t x[3] = {px[0], px[i], px[i + 1]};
        int32_t y[3] = {py[0], py[i], py[i + 1]};
        double z[3] = {cur[0].z, cur[i].z, cur[i + 1].z};
        int status = emit_piece(s, ch, x, y, z, gface, plane);
        if (status != GM_OK) return status;
    }
    return GM_OK;
}

/* Set up the global faces [t0, t1) into one chunk (in submission order). */
static void setup_chunk(const gm_raster_setup* s, gm_raster_chunk* ch, int64_t t0, int64_t t1) {
    const gm_raster_params* p = s->p;
    int32_t obj = 0;
    for (int64_t t = t0; t < t1; ++t) {
        while (s->face_base[obj + 1] <= t) ++obj;
        const gm_raster_object* o = &p->objects[obj];
        const int32_t* fv = o->faces + 3 * (t - s->face_base[obj]);
        int64_t vb = s->vert_base[obj];
        int64_t g0 = vb + fv[0], g1 = vb + fv[1], g2 = vb + fv[2];
        unsigned o0 = s->outcode[g0], o1 = s->outcode[g1], o2 = s->outcode[g2];
        if ((o0 & o1 & o2) || o0 == ALL_BITS || o1 == ALL_BITS || o2 == ALL_BITS)
            continue; /* all three outside one plane (or beyond far), or not finite */
        gm_vec3 P[3] = {s->cam[g0], s->cam[g1], s->cam[g2]};
        gm_vec3 n = gm_cross3(gm_sub3(P[1], P[0]), gm_sub3(P[2], P[0]));
        double det = gm_dot3(n, P[0]);
        /* planes (nearly) through the eye project to a line: snapped slivers of them would
         * need depths far outside the triangle */
        if (!(fabs(det) > 1e-10 * sqrt(gm_dot3(n, n) * gm_dot3(P[0], P[0])))) continue;
        double plane[3];
        gm_raster_inv_depth_plane(n, det, &plane[0], &plane[1], &plane[2]);
        unsigned any_out = (o0 | o1 | o2) & PLANE_MASK;
        int status;
        if (!any_out) {
            int32_t x[3] = {s->sx[g0], s->sx[g1], s->sx[g2]};
            int32_t y[3] = {s->sy[g0], s->sy[g1], s->sy[g2]};
            double z[3] = {P[0].z, P[1].z, P[2].z};
            status = emit_piece(s, ch, x, y, z, (int32_t)t, plane);
        } else {
            status = emit_clipped(s, ch, P, any_out, (int32_t)t, plane);
        }
        if (status != GM_OK) {
            ch->status = status;
            return;
        }
    }
}

/* ---- per-pixel output ---------------------------------------------------------------------- */
static void clear_pixel(const gm_raster_params* p, int64_t i, const uint8_t* bg) {
    const float B = GM_RASTER_BACKGROUND;
    p->rgb[4 * i + 0] = bg[0];
    p->rgb[4 * i + 1] = bg[1];
    p->rgb[4 * i + 2] = bg[2];
    p->rgb[4 * i + 3] = 0;
    p->depth[i] = B;
    p->instance_index[i] = 0;
    p->object_coordinates[3 * i + 0] = B;
    p->object_coordinates[3 * i + 1] = B;
    p->object_coordinates[3 * i + 2] = B;
    if (p->class_index) p->class_index[i] = 0;
    if (p->triangle_id) p->triangle_id[i] = -1;
    if (p->barycentrics)
        for (int k = 0; k < 3; ++k) p->barycentrics[3 * i + k] = 0.0f;
    if (p->cam_coordinates)
        for (int k = 0; k < 4; ++k) p->cam_coordinates[4 * i + k] = B;
    if (p->normals)
        for (int k = 0; k < 4; ++k) p->normals[4 * i + k] = 0.0f;
}

/* Write every buffer of pixel i, covered by face `face` of object `obj` at depth z. */
static void shade_pixel(const gm_raster_params* p, const gm_raster_setup* s, int64_t i, int32_t obj,
                        int32_t face, double z, double dx, double dy) {
    const gm_raster_object* o = &p->objects[obj];
    const int32_t* fv = o->faces + 3 * (int64_t)face;
    int64_t vb = s->vert_base[obj];
    gm_vec3 P0 = s->cam[vb + fv[0]], P1 = s->cam[vb + fv[1]], P2 = s->cam[vb + fv[2]];
    double b[3];
    gm_raster_persp_bary(P0, P1, P2, dx, dy, b);
    /* samples snapped in from just outside an edge: keep attributes convex combinations */
    if (!(b[0] >= 0.0 && b[1] >= 0.0 && b[2] >= 0.0)) {
        double sum = 0.0;
        for (int k = 0; k < 3; ++k) {
            b[k] = b[k] > 0.0 ? b[k] : 0.0;
            sum += b[k];
        }
        for (int k = 0; k < 3; ++k) b[k] = sum > 0.0 ? b[k] / sum : 1.0 / 3.0;
    }

    double oc[3] = {0.0, 0.0, 0.0}, col[3] = {0.0, 0.0, 0.0};
    gm_vec3 sn = gm_make_vec3(0.0, 0.0, 0.0);
    for (int k = 0; k < 3; ++k) {
        const float* v = o->vertices + 3 * (int64_t)fv[k];
        for (int j = 0; j < 3; ++j) oc[j] += b[k] * v[j];
        if (o->colors) {
            const float* c = o->colors + 3 * (int64_t)fv[k];
            for (int j = 0; j < 3; ++j) col[j] += b[k] * c[j];
        }
        if (o->normals) {
            const float* nv = o->normals + 3 * (int64_t)fv[k];
            sn.x += b[k] * nv[0];
            sn.y += b[k] * nv[1];
            sn.z += b[k] * nv[2];
        }
    }
    if (!o->colors)
        for (int j = 0; j < 3; ++j) col[j] = p->default_color[j];

    gm_vec3 n = gm_cross3(gm_sub3(P1, P0), gm_sub3(P2, P0)); /* flat (winding) normal */
    if (o->normals) {
        gm_vec3 m = gm_mat3_apply(o->normal_matrix, sn);
        if (gm_dot3(m, m) > 0.0) n = m;
    }
    double len = sqrt(gm_dot3(n, n));
    if (len > 0.0) n = gm_make_vec3(n.x / len, n.y / len, n.z / len);
    double facing = -(n.x * dx + n.y * dy + n.z) / sqrt(dx * dx + dy * dy + 1.0); /* n . (-view dir) */

    /* two-sided Lambert: light the side that faces the camera */
    gm_vec3 ns = facing < 0.0 ? gm_make_vec3(-n.x, -n.y, -n.z) : n;
    double lam = ns.x * p->light_dir[0] + ns.y * p->light_dir[1] + ns.z * p->light_dir[2];
    if (lam < 0.0) lam = 0.0;
    for (int j = 0; j < 3; ++j)
        p->rgb[4 * i + j] = gm_raster_to_u8(col[j] * (p->ambient[j] + p->light_color[j] * lam));
    p->rgb[4 * i + 3] = 255;
    p->depth[i] = (float)z;
    p->instance_index[i] = (int16_t)o->instance_index;
    for (int k = 0; k < 3; ++k) p->object_coordinates[3 * i + k] = (float)oc[k];
    if (p->class_index) p->class_index[i] = (int16_t)o->class_index;
    if (p->triangle_id) p->triangle_id[i] = face;
    if (p->barycentrics)
        for (int k = 0; k < 3; ++k) p->barycentrics[3 * i + k] = (float)b[k];
    if (p->cam_coordinates) {
        p->cam_coordinates[4 * i + 0] = (float)(z * dx);
        p->cam_coordinates[4 * i + 1] = (float)(z * dy);
        p->cam_coordinates[4 * i + 2] = (float)z;
        p->cam_coordinates[4 * i + 3] = 1.0f;
    }
    if (p->normals) {
        p->normals[4 * i + 0] = (float)n.x;
        p->normals[4 * i + 1] = (float)n.y;
        p->normals[4 * i + 2] = (float)n.z;
        p->normals[4 * i + 3] = (float)facing;
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
        const double lo = (double)t->ilo, hi = (double)t->ihi;
        for (int32_t r = r0; r <= r1; ++r) {
            /* E(c, r) = E(c0, r0) + ex (r - r0) SUB - ey (c - c0) SUB */
            int64_t E[3];
            for (int k = 0; k < 3; ++k) {
                int k1 = k == 2 ? 0 : k + 1;
                E[k] = E0[k] + ((int64_t)t->x[k1] - t->x[k]) * (int64_t)(r - r0) * SUB;
            }
            const double rowb = t->b * J->ray_y[r] + t->e;
            const int32_t row = (r - Y0) * TILE - X0;
            for (int32_t c = c0; c <= c1; ++c) {
                if ((E[0] | E[1] | E[2]) >= 0) {
                    double iz = t->a * ray_x[c] + rowb;
                    /* only samples within 1/512 px of the true edge can leave the piece's range */
                    iz = iz < lo ? lo : (iz > hi ? hi : iz); /* NaN stays NaN and fails below */
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
                clear_pixel(p, i, J->bg);
                continue;
            }
            int32_t gface = t->gface;
            while (gface < s->face_base[obj]) --obj;
            while (gface >= s->face_base[obj + 1]) ++obj;
            shade_pixel(p, s, i, obj, (int32_t)(gface - s->face_base[obj]), 1.0 / izbuf[k], ray_x[c],
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
    int64_t* vert_base = (int64_t*)malloc(sizeof(int64_t) * (size_t)(nobj + 1));
    int64_t* face_base = (int64_t*)malloc(sizeof(int64_t) * (size_t)(nobj + 2));
    double* ray_x = (double*)malloc(sizeof(double) * (size_t)W);
    double* ray_y = (double*)malloc(sizeof(double) * (size_t)H);
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
    for (int32_t c = 0; c < W; ++c) ray_x[c] = ((double)c + 0.5 - p->cx) / p->fx;
    for (int32_t r = 0; r < H; ++r) ray_y[r] = ((double)r + 0.5 - p->cy) / p->fy;

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
    gm_raster_clip_planes(p->fx, p->fy, p->cx, p->cy, p->near_z, W, H, GM_RASTER_GUARD, s.planes);
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
#pragma omp for schedule(dynamic, 2048) nowait
            for (int64_t v = 0; v < n; ++v) {
                gm_vec3 P = gm_transform_point(ob->transform, ob->vertices + 3 * v);
                unsigned code = gm_raster_outcode(s.planes, P);
                if (!(P.z <= p->far_z)) code |= FAR_BIT; /* for trivial reject only */
                if (!(fabs(P.x) <= DBL_MAX && fabs(P.y) <= DBL_MAX && fabs(P.z) <= DBL_MAX)) code = ALL_BITS;
                int32_t x = 0, y = 0;
                if (!(code & PLANE_MASK)) gm_raster_project(P, p->fx, p->fy, p->cx, p->cy, &x, &y);
                cam[base + v] = P;
                outcode[base + v] = code;
                sx[base + v] = x;
                sy[base + v] = y;
            }
        }
#pragma omp barrier
        /* 2. triangle setup, one contiguous range of faces per chunk */
#pragma omp for schedule(dynamic, 1)
        for (int ci = 0; ci < nchunks; ++ci)
            setup_chunk(&s, &chunks[ci], nf * ci / nchunks, nf * (ci + 1) / nchunks);
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
            const gm_raster_chunk* ch = &chunks[ci];
            int64_t* cursor = ch->tile_count;
            for (int64_t j = 0; j < ch->count; ++j) {
                const gm_raster_tri* t = &ch->tris[j];
                int32_t gid = (int32_t)(chunk_first[ci] + j);
                for (int32_t ty = t->r0 / TILE; ty <= t->r1 / TILE; ++ty)
                    for (int32_t tx = t->c0 / TILE; tx <= t->c1 / TILE; ++tx)
                        list[cursor[(int64_t)ty * tiles_x + tx]++] = gid;
            }
        }
        /* 4. tiles (the implicit barrier above completes the lists) */
#pragma omp for schedule(dynamic, 1)
        for (int64_t tl = 0; tl < ntiles; ++tl)
            raster_tile(&job, list + tile_start[tl], tile_start[tl + 1] - tile_start[tl],
                        (int32_t)(tl % tiles_x), (int32_t)(tl / tiles_x));
    }

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
