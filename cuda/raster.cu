// The tile-binned software rasterizer on the GPU: the CUDA twin of cpu/raster.c, same results
// (instance ids, triangle ids, coverage and colours bit for bit; floats too, since every product
// that feeds a sum is rounded on its own in raster_math.h).
//
// Passes, all one thread per item, no float atomics:
//   1. vertices -> camera frame, outcodes, snapped projections (thread per vertex);
//   2. triangle setup (thread per face, gm_raster_face_pieces): a counting pass gives each face
//      its piece count and tile-reference count, two prefix sums place them, a writing pass
//      stores the pieces in submission order (face, then fan order) and one (tile, piece)
//      pair per overlapped tile;
//   3. a stable sort of the pairs by tile: every tile's list is in submission order;
//   4. one thread per pixel walks its tile's list in order with the strict depth test (the
//      first piece wins ties, as on the CPU), then shades or clears its pixel.
// One synchronisation: the piece and pair totals are read back to size their buffers.
#include "gm_cuda.cuh"
#include "primitives.cuh"

#include <stdlib.h>
#include <string.h>

#include "geomops/host_alloc.h"
#include "geomops/raster.h"
#include "geomops/raster_math.h"

namespace {

constexpr int kTile = GM_RASTER_TILE;
constexpr int kTilePixels = GM_RASTER_TILE * GM_RASTER_TILE;

// The object owning global item i (vertex or face): the last o with base[o] <= i, so empty
// objects are skipped. base has nobj + 1 entries, base[nobj] > i.
__device__ inline int32_t owner(const int64_t* base, int32_t nobj, int64_t i) {
    int32_t lo = 0, hi = nobj - 1;
    while (lo < hi) {
        const int32_t mid = (lo + hi + 1) / 2;
        if (base[mid] <= i)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

// Scene tables on the device: the object array, then the vertex and face bases.
struct scene_tables {
    const gm_raster_object* objs;
    const int64_t* vert_base;
    const int64_t* face_base;
    int32_t nobj;
};

// Camera-frame vertices, outcodes and snapped projections.
struct vertex_data {
    gm_vec3* cam;
    unsigned* code;
    int32_t* sx;
    int32_t* sy;
};

__global__ void k_rays(int32_t width, int32_t height, double cx, double cy, double fx, double fy,
                       double* ray_x, double* ray_y) {
    GM_FOR_EACH(i, (int64_t)width + height) {
        if (i < width)
            ray_x[i] = gm_raster_ray((int32_t)i, cx, fx);
        else
            ray_y[i - width] = gm_raster_ray((int32_t)(i - width), cy, fy);
    }
}

__global__ void k_vertices(gm_raster_view view, scene_tables sc, vertex_data vd, int64_t nv) {
    GM_FOR_EACH(g, nv) {
        const int32_t o = owner(sc.vert_base, sc.nobj, g);
        const gm_raster_object* ob = &sc.objs[o];
        gm_raster_vertex(&view, ob->transform, ob->vertices + 3 * (g - sc.vert_base[o]), &vd.cam[g],
                         &vd.code[g], &vd.sx[g], &vd.sy[g]);
    }
}

// The pieces of global face t (returns their count).
__device__ inline int face_pieces(const gm_raster_view& view, const scene_tables& sc, const vertex_data& vd,
                                  int64_t t, gm_raster_tri* pieces) {
    const int32_t o = owner(sc.face_base, sc.nobj, t);
    const int32_t* fv = sc.objs[o].faces + 3 * (t - sc.face_base[o]);
    const int64_t vb = sc.vert_base[o];
    const int64_t g[3] = {vb + fv[0], vb + fv[1], vb + fv[2]};
    const unsigned code[3] = {vd.code[g[0]], vd.code[g[1]], vd.code[g[2]]};
    if (gm_raster_trivial_reject(code)) return 0;
    const gm_vec3 P[3] = {vd.cam[g[0]], vd.cam[g[1]], vd.cam[g[2]]};
    const int32_t x[3] = {vd.sx[g[0]], vd.sx[g[1]], vd.sx[g[2]]};
    const int32_t y[3] = {vd.sy[g[0]], vd.sy[g[1]], vd.sy[g[2]]};
    return gm_raster_face_pieces(&view, P, code, x, y, (int32_t)t, pieces);
}

__device__ inline int64_t tile_count(const gm_raster_tri* t) {
    int32_t tx0, tx1, ty0, ty1;
    gm_raster_piece_tiles(t, &tx0, &tx1, &ty0, &ty1);
    return (int64_t)(tx1 - tx0 + 1) * (ty1 - ty0 + 1);
}

__global__ void k_count_pieces(gm_raster_view view, scene_tables sc, vertex_data vd, int64_t nf,
                               int64_t* piece_count, int64_t* ref_count) {
    GM_FOR_EACH(t, nf) {
        gm_raster_tri pieces[GM_RASTER_MAX_PIECES];
        const int n = face_pieces(view, sc, vd, t, pieces);
        int64_t refs = 0;
        for (int k = 0; k < n; ++k) refs += tile_count(&pieces[k]);
        piece_count[t] = n;
        ref_count[t] = refs;
    }
}

// Recomputes each face's pieces (the same code gives the same pieces) and stores them with one
// (tile, piece id) pair per overlapped tile.
__global__ void k_write_pieces(gm_raster_view view, scene_tables sc, vertex_data vd, int64_t nf,
                               int32_t tiles_x, const int64_t* piece_off, const int64_t* ref_off,
                               gm_raster_tri* out, uint64_t* keys, int64_t* vals) {
    GM_FOR_EACH(t, nf) {
        gm_raster_tri pieces[GM_RASTER_MAX_PIECES];
        const int n = face_pieces(view, sc, vd, t, pieces);
        int64_t id = piece_off[t], ref = ref_off[t];
        for (int k = 0; k < n; ++k, ++id) {
            out[id] = pieces[k];
            int32_t tx0, tx1, ty0, ty1;
            gm_raster_piece_tiles(&pieces[k], &tx0, &tx1, &ty0, &ty1);
            for (int32_t ty = ty0; ty <= ty1; ++ty)
                for (int32_t tx = tx0; tx <= tx1; ++tx, ++ref) {
                    keys[ref] = (uint64_t)ty * (uint64_t)tiles_x + (uint64_t)tx;
                    vals[ref] = id;
                }
        }
    }
}

// tile_start[tl] = first sorted pair of tile tl (lower bound), for tl in [0, ntiles].
__global__ void k_tile_start(const uint64_t* keys, int64_t nrefs, int64_t ntiles, int64_t* tile_start) {
    GM_FOR_EACH(tl, ntiles + 1) {
        int64_t lo = 0, hi = nrefs;
        while (lo < hi) {
            const int64_t mid = lo + (hi - lo) / 2;
            if (keys[mid] < (uint64_t)tl)
                lo = mid + 1;
            else
                hi = mid;
        }
        tile_start[tl] = lo;
    }
}

// Thread i: pixel i % 1024 of tile i / 1024 (a warp shares one tile row and reads the same
// pieces). Coverage and depth test over the tile's list in submission order, then the output.
__global__ void k_pixels(gm_raster_params p, scene_tables sc, const gm_vec3* cam, const gm_raster_tri* pieces,
                         const int64_t* list, const int64_t* tile_start, const double* ray_x,
                         const double* ray_y, int32_t tiles_x, int64_t nthreads) {
    const double inv_far = 1.0 / p.far_z;
    GM_FOR_EACH(i, nthreads) {
        const int64_t tl = i / kTilePixels;
        const int32_t k = (int32_t)(i % kTilePixels);
        const int32_t r = (int32_t)(tl / tiles_x) * kTile + k / kTile;
        const int32_t c = (int32_t)(tl % tiles_x) * kTile + k % kTile;
        if (r >= p.height || c >= p.width) continue;
        const int64_t px = (int64_t)c * GM_RASTER_SUBPIXEL, py = (int64_t)r * GM_RASTER_SUBPIXEL;
        const double rx = ray_x[c], ry = ray_y[r];
        double best = 0.0;
        int64_t win = -1;
        for (int64_t e = tile_start[tl], end = tile_start[tl + 1]; e < end; ++e) {
            const gm_raster_tri* t = &pieces[list[e]];
            if (c < t->c0 || c > t->c1 || r < t->r0 || r > t->r1) continue;
            if (!gm_raster_covers(t, px, py)) continue;
            const double iz = gm_raster_piece_inv_depth(t, rx, gm_raster_axpb(t->b, ry, t->e));
            if (iz >= inv_far && iz > best) {
                best = iz;
                win = list[e];
            }
        }
        const int64_t pix = (int64_t)r * p.width + c;
        if (win < 0) {
            uint8_t bg[3];
            for (int j = 0; j < 3; ++j) bg[j] = gm_raster_to_u8(p.background[j]);
            gm_raster_clear_pixel(&p, pix, bg);
            continue;
        }
        const int32_t gface = pieces[win].gface;
        const int32_t o = owner(sc.face_base, sc.nobj, gface);
        gm_raster_shade_pixel(&p, &sc.objs[o], cam + sc.vert_base[o], pix, (int32_t)(gface - sc.face_base[o]),
                              1.0 / best, rx, ry);
    }
}

#define GM_RASTER_LAUNCH(kernel, n, stream, ...)                                                             \
    do {                                                                                                     \
        GM_LAUNCH(kernel, gm_cuda_blocks(n), GM_CUDA_THREADS, stream, __VA_ARGS__);                          \
        const int st_ = gm_cuda_check_launch(#kernel);                                                       \
        if (st_ != GM_OK) return st_;                                                                        \
    } while (0)

#define GM_RASTER_ALLOC(buf, count, stream, what)                                                            \
    do {                                                                                                     \
        const int st_ = (buf).alloc((size_t)(count), stream, what);                                          \
        if (st_ != GM_OK) return st_;                                                                        \
    } while (0)

int raster_run(const gm_raster_params* p, cudaStream_t s) {
    const int32_t W = p->width, H = p->height, nobj = p->num_objects;
    const int32_t tiles_x = (W + kTile - 1) / kTile, tiles_y = (H + kTile - 1) / kTile;
    const int64_t ntiles = (int64_t)tiles_x * tiles_y;

    // the object table and the vertex / face bases, in one upload
    const size_t obj_bytes = sizeof(gm_raster_object) * (size_t)nobj;
    const size_t table_bytes = obj_bytes + 2 * sizeof(int64_t) * (size_t)(nobj + 1);
    unsigned char* host = (unsigned char*)gm_host_alloc((int64_t)table_bytes, 1);
    if (!host) return GM_ERR_NOMEM;
    int64_t* vert_base = (int64_t*)(host + obj_bytes);
    int64_t* face_base = vert_base + nobj + 1;
    if (nobj > 0) memcpy(host, p->objects, obj_bytes);
    vert_base[0] = face_base[0] = 0;
    for (int32_t o = 0; o < nobj; ++o) {
        vert_base[o + 1] = vert_base[o] + p->objects[o].num_vertices;
        face_base[o + 1] = face_base[o] + p->objects[o].num_faces;
    }
    const int64_t nv = vert_base[nobj], nf = face_base[nobj];
    gm_dev_buffer<unsigned char> tables;
    int st = nf > INT32_MAX ? GM_ERR_OVERFLOW : tables.alloc(table_bytes, s, "the rasterizer's object table");
    if (st == GM_OK) {
        const cudaError_t err = cudaMemcpyAsync(tables.ptr, host, table_bytes, cudaMemcpyHostToDevice, s);
        if (err != cudaSuccess) st = gm_cuda_fail(err, "cudaMemcpyAsync");
    }
    gm_host_free(host);  // pageable source: the copy has staged it when cudaMemcpyAsync returns
    if (st != GM_OK) return st;
    scene_tables sc;
    sc.objs = (const gm_raster_object*)tables.ptr;
    sc.vert_base = (const int64_t*)(tables.ptr + obj_bytes);
    sc.face_base = sc.vert_base + nobj + 1;
    sc.nobj = nobj;

    gm_raster_view view;
    gm_raster_view_init(p, &view);

    gm_dev_buffer<double> rays;
    GM_RASTER_ALLOC(rays, (int64_t)W + H, s, "the rasterizer's pixel rays");
    GM_RASTER_LAUNCH(k_rays, (int64_t)W + H, s, W, H, p->cx, p->cy, p->fx, p->fy, rays.ptr, rays.ptr + W);

    gm_dev_buffer<gm_vec3> cam;
    gm_dev_buffer<unsigned> code;
    gm_dev_buffer<int32_t> sxy;
    GM_RASTER_ALLOC(cam, nv, s, "the camera-frame vertices");
    GM_RASTER_ALLOC(code, nv, s, "the vertex outcodes");
    GM_RASTER_ALLOC(sxy, 2 * nv, s, "the projected vertices");
    vertex_data vd;
    vd.cam = cam.ptr;
    vd.code = code.ptr;
    vd.sx = sxy.ptr;
    vd.sy = sxy.ptr + nv;
    if (nv > 0) GM_RASTER_LAUNCH(k_vertices, nv, s, view, sc, vd, nv);

    // triangle setup: counts, placement, pieces and (tile, piece) pairs
    int64_t totals[2] = {0, 0};  // pieces, pairs
    gm_dev_buffer<int64_t> counts, offsets;
    gm_dev_buffer<gm_raster_tri> pieces;
    gm_dev_buffer<uint64_t> keys;
    gm_dev_buffer<int64_t> vals;
    if (nf > 0) {
        GM_RASTER_ALLOC(counts, 2 * nf, s, "the per-face piece counts");
        GM_RASTER_ALLOC(offsets, 2 * (nf + 1), s, "the per-face piece offsets");
        int64_t* piece_off = offsets.ptr;
        int64_t* ref_off = offsets.ptr + nf + 1;
        GM_RASTER_LAUNCH(k_count_pieces, nf, s, view, sc, vd, nf, counts.ptr, counts.ptr + nf);
        st = gm_dev_exclusive_scan_i64(counts.ptr, piece_off, nf, s);
        if (st != GM_OK) return st;
        st = gm_dev_exclusive_scan_i64(counts.ptr + nf, ref_off, nf, s);
        if (st != GM_OK) return st;
        GM_CUDA_WAIT_IDLE(s, "the triangle setup");
        GM_CUDA_TRY(cudaMemcpyAsync(&totals[0], piece_off + nf, sizeof(int64_t), cudaMemcpyDeviceToHost, s),
                    "cudaMemcpyAsync");
        GM_CUDA_TRY(cudaMemcpyAsync(&totals[1], ref_off + nf, sizeof(int64_t), cudaMemcpyDeviceToHost, s),
                    "cudaMemcpyAsync");
        GM_CUDA_TRY(cudaStreamSynchronize(s), "cudaStreamSynchronize");
        if (totals[0] > INT32_MAX) return GM_ERR_OVERFLOW;  // the CPU's piece ids are int32
        GM_RASTER_ALLOC(pieces, totals[0], s, "the triangle pieces");
        GM_RASTER_ALLOC(keys, 2 * totals[1], s, "the tile lists");
        GM_RASTER_ALLOC(vals, 2 * totals[1], s, "the tile lists");
        GM_RASTER_LAUNCH(k_write_pieces, nf, s, view, sc, vd, nf, tiles_x, piece_off, ref_off, pieces.ptr,
                         keys.ptr, vals.ptr);
        counts.alloc(0, s, "");  // no longer needed: return it before the sort
        offsets.alloc(0, s, "");
    }
    const int64_t nrefs = totals[1];
    int key_bits = 1;
    while (key_bits < 63 && ((int64_t)1 << key_bits) < ntiles) ++key_bits;
    const uint64_t* sorted_keys = keys.ptr + nrefs;
    const int64_t* list = vals.ptr + nrefs;
    if (nrefs > 0) {
        st =
            gm_dev_sort_pairs_u64(keys.ptr, keys.ptr + nrefs, vals.ptr, vals.ptr + nrefs, nrefs, key_bits, s);
        if (st != GM_OK) return st;
    }
    gm_dev_buffer<int64_t> tile_start;
    GM_RASTER_ALLOC(tile_start, ntiles + 1, s, "the tile list offsets");
    GM_RASTER_LAUNCH(k_tile_start, ntiles + 1, s, sorted_keys, nrefs, ntiles, tile_start.ptr);

    gm_raster_params pp = *p;
    pp.objects = sc.objs;
    const int64_t nthreads = ntiles * kTilePixels;
    GM_RASTER_LAUNCH(k_pixels, nthreads, s, pp, sc, cam.ptr, pieces.ptr, list, tile_start.ptr, rays.ptr,
                     rays.ptr + W, tiles_x, nthreads);
    return GM_OK;
}

}  // namespace

extern "C" int gm_raster_cuda(const gm_raster_params* p, void* stream) {
    if (!p || p->width < 1 || p->height < 1 || p->width > GM_RASTER_MAX_SIZE ||
        p->height > GM_RASTER_MAX_SIZE || p->num_objects < 0 || (p->num_objects > 0 && !p->objects) ||
        !(p->near_z > 0.0) || !(p->far_z > p->near_z) || !(p->fx > 0.0) || !(p->fy > 0.0) || !p->rgb ||
        !p->depth || !p->instance_index || !p->object_coordinates)
        return GM_ERR_INVALID;
    return raster_run(p, (cudaStream_t)stream);
}
