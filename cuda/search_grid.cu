// The device cell grid (cuda/search_cuda.cuh) and the two searches that scan the 3x3x3 cells
// around a query's cell: fixed_radius_search (cells of edge >= radius: bitwise the CPU's grid,
// so rows come out in the CPU's order) and radius_search (cells of edge >= the largest radius
// of the item; the CPU uses a k-d tree there).
//
// Grid build: per-item bounding boxes (exact min/max as ordered integer keys), per-item geometry
// (gm_search_grid_geometry, the CPU's formula), cell keys, a stable radix sort by key and then
// by item (so positions are grouped by item and, inside a cell, in ascending point index order,
// as the CPU's per-item stable sort), the occupied cells by flagging + prefix sum.
// Searches: one thread per query (taken in cell order, gm_search_order_queries); the count pass
// counts each query's row, the fill pass writes it: in row-run order, or (sort) merged from the
// <= 27 cells, each already in ascending index order, so rows come out sorted without a sort.
//
// The typed part is search_grid_impl.cuh (per float type, geomops/twin.h).
#include "search_cuda.cuh"

#include <new>

enum { GM_BBOX_CHUNK = 128 };

// The bits of a double.
GM_HD unsigned long long gm_search_bits(double v) {
#if defined(__CUDA_ARCH__)
    return (unsigned long long)__double_as_longlong(v);
#else
    unsigned long long b;
    memcpy(&b, &v, sizeof b);
    return b;
#endif
}

// Monotone map of doubles to unsigned integers (min / max by integer atomics; -0.0 as 0.0, in
// bits: no compiler may fold it away).
GM_HD unsigned long long gm_search_ord_key(double v) {
    unsigned long long b = gm_search_bits(v);
    if (b == 0x8000000000000000ull) b = 0;
    return (b >> 63) ? ~b : (b | 0x8000000000000000ull);
}

GM_HD double gm_search_ord_value(unsigned long long k) {
    const unsigned long long b = (k >> 63) ? (k & 0x7FFFFFFFFFFFFFFFull) : ~k;
#if defined(__CUDA_ARCH__)
    return __longlong_as_double((long long)b);
#else
    double v;
    memcpy(&v, &b, sizeof v);
    return v;
#endif
}

GM_HD double gm_search_coord(const void* pts, int dtype, int64_t i) {
    return dtype == GM_FLOAT32 ? (double)((const float*)pts)[i] : ((const double*)pts)[i];
}

// Bounding box of each item: one thread per chunk of points, one atomic per axis and item met.
__global__ void gm_grid_bbox_kernel(const void* pts, int dtype, int64_t n, const int64_t* splits, int64_t nb,
                                    unsigned long long* mn, unsigned long long* mx) {
    const int64_t nchunks = (n + GM_BBOX_CHUNK - 1) / GM_BBOX_CHUNK;
    GM_FOR_EACH(c, nchunks) {
        int64_t i = c * GM_BBOX_CHUNK;
        const int64_t e = i + GM_BBOX_CHUNK < n ? i + GM_BBOX_CHUNK : n;
        int64_t b = gm_search_item_of(splits, nb, i);
        unsigned long long lo[3], hi[3];
        int any = 0;
        for (; i < e; ++i) {
            if (i >= splits[b + 1]) {
                if (any)
                    for (int a = 0; a < 3; ++a) {
                        atomicMin(&mn[3 * b + a], lo[a]);
                        atomicMax(&mx[3 * b + a], hi[a]);
                    }
                any = 0;
                while (i >= splits[b + 1]) ++b;
            }
            for (int a = 0; a < 3; ++a) {
                const unsigned long long k = gm_search_ord_key(gm_search_coord(pts, dtype, 3 * i + a));
                if (!any || k < lo[a]) lo[a] = k;
                if (!any || k > hi[a]) hi[a] = k;
            }
            any = 1;
        }
        if (any)
            for (int a = 0; a < 3; ++a) {
                atomicMin(&mn[3 * b + a], lo[a]);
                atomicMax(&mx[3 * b + a], hi[a]);
            }
    }
}

// Geometry of each item (the CPU grid's for GM_GRID_FIXED); empty items as the CPU's.
__global__ void gm_grid_geometry_kernel(gm_grid g, int mode, double radius, const double* item_edge,
                                        int64_t k, const unsigned long long* mn,
                                        const unsigned long long* mx) {
    GM_FOR_EACH(b, g.batch_size) {
        const int64_t m = g.pts_splits[b + 1] - g.pts_splits[b];
        if (m == 0) {
            for (int a = 0; a < 3; ++a) {
                g.origin[3 * b + a] = 0;
                g.dims[3 * b + a] = 1;
            }
            g.cell[b] = 1;
            g.inv_cell[b] = 1;
            continue;
        }
        double lo[3], hi[3], ext[3];
        for (int a = 0; a < 3; ++a) {
            lo[a] = gm_search_ord_value(mn[3 * b + a]);
            hi[a] = gm_search_ord_value(mx[3 * b + a]);
            ext[a] = hi[a] - lo[a];
        }
        double r = radius;
        if (mode == GM_GRID_PER_ITEM) r = item_edge[b];
        if (mode == GM_GRID_KNN) {
            // about k/4 points per cell: the k-th neighbor then mostly lies in the 3x3x3 block
            const double kq = (double)(k < m ? k : m) * 0.25;
            r = gm_search_knn_edge(ext, m, kq > 1 ? kq : 1);
        }
        gm_search_grid_geometry(lo, hi, r, g.origin + 3 * b, g.cell + b, g.inv_cell + b, g.dims + 3 * b);
    }
}

__global__ void gm_grid_keys_kernel(gm_grid g, const void* pts, uint64_t* keys, int64_t* vals) {
    GM_FOR_EACH(i, g.n) {
        const int64_t b = gm_search_item_of(g.pts_splits, g.batch_size, i);
        const double* o = g.origin + 3 * b;
        const int64_t* dims = g.dims + 3 * b;
        const double inv = g.inv_cell[b];
        int64_t c[3];
        for (int a = 0; a < 3; ++a)
            c[a] = gm_search_grid_coord(gm_search_coord(pts, g.dtype, 3 * i + a), o[a], inv, 0, dims[a] - 1);
        keys[i] = gm_search_grid_key(c[0], c[1], c[2], dims);
        vals[i] = i;
    }
}

// The item of the point at each position (second sort key) and the positions themselves.
__global__ void gm_grid_item_keys_kernel(const int64_t* splits, int64_t nb, const int64_t* ids, int64_t n,
                                         uint64_t* keys, int64_t* pos) {
    GM_FOR_EACH(t, n) {
        keys[t] = (uint64_t)gm_search_item_of(splits, nb, ids[t]);
        pos[t] = t;
    }
}

__global__ void gm_grid_permute_kernel(const int64_t* perm, int64_t n, const uint64_t* keys_in,
                                       const int64_t* ids_in, uint64_t* keys_out, int64_t* ids_out) {
    GM_FOR_EACH(t, n) {
        keys_out[t] = keys_in[perm[t]];
        ids_out[t] = ids_in[perm[t]];
    }
}

// flags[t] = 1 where a cell starts: first position of an item or a new key.
__global__ void gm_grid_flag_kernel(const int64_t* splits, int64_t nb, const uint64_t* keys, int64_t n,
                                    int64_t* flags) {
    GM_FOR_EACH(t, n) {
        const int64_t b = gm_search_item_of(splits, nb, t);
        flags[t] = (t == splits[b] || keys[t] != keys[t - 1]) ? 1 : 0;
    }
}

// The occupied cells (keys and first positions), cstart[ncells] = n, each item's cell range;
// coordinates gathered in cell order.
__global__ void gm_grid_cells_kernel(gm_grid g, const void* pts, const uint64_t* keys, const int64_t* flags,
                                     const int64_t* cid) {
    const int64_t m = (g.n > g.batch_size ? g.n : g.batch_size) + 1;
    GM_FOR_EACH(t, m) {
        if (t == g.n) {
            g.cstart[cid[g.n]] = g.n;
        } else if (t < g.n) {
            if (flags[t]) {
                g.ckey[cid[t]] = keys[t];
                g.cstart[cid[t]] = t;
            }
            const int64_t i = g.idx[t];
            if (g.dtype == GM_FLOAT32) {
                const float* p = (const float*)pts;
                ((float*)g.x)[t] = p[3 * i];
                ((float*)g.y)[t] = p[3 * i + 1];
                ((float*)g.z)[t] = p[3 * i + 2];
            } else {
                const double* p = (const double*)pts;
                ((double*)g.x)[t] = p[3 * i];
                ((double*)g.y)[t] = p[3 * i + 1];
                ((double*)g.z)[t] = p[3 * i + 2];
            }
        }
        if (t <= g.batch_size) g.item_cells[t] = cid[g.pts_splits[t]];
    }
}

gm_grid_view gm_search_grid_view(const gm_grid* g) {
    gm_grid_view v;
    v.x = g->x;
    v.y = g->y;
    v.z = g->z;
    v.idx = g->idx;
    v.pts_splits = g->pts_splits;
    v.origin = g->origin;
    v.cell = g->cell;
    v.inv_cell = g->inv_cell;
    v.dims = g->dims;
    v.item_cells = g->item_cells;
    v.ckey = g->ckey;
    v.cstart = g->cstart;
    v.batch_size = g->batch_size;
    return v;
}

static int grid_alloc(gm_grid* g, void** p, size_t bytes, const char* what) {
    *p = nullptr;
    if (bytes == 0) return GM_OK;
    g->bytes += (int64_t)bytes;
    if (!g->persistent) return gm_dev_alloc(p, bytes, g->stream, what);
    const cudaError_t err = cudaMalloc(p, bytes);
    if (err == cudaErrorMemoryAllocation) return gm_cuda_oom(bytes, what);
    if (err != cudaSuccess) return gm_cuda_fail(err, what);
    return GM_OK;
}

static void grid_release(gm_grid* g, void* p) {
    if (!p) return;
    if (g->persistent)
        cudaFree(p);
    else
        gm_dev_free(p, g->stream);
}

void gm_search_grid_destroy(gm_grid* g) {
    if (!g) return;
    void* ptrs[] = {g->x,    g->y,        g->z,    g->idx,        g->pts_splits, g->origin,
                    g->cell, g->inv_cell, g->dims, g->item_cells, g->ckey,       g->cstart};
    for (void* p : ptrs) grid_release(g, p);
    delete g;
}

static int bits_of(uint64_t v) {
    int b = 0;
    while (v) {
        ++b;
        v >>= 1;
    }
    return b;
}

int gm_search_grid_build(const gm_grid_params* p, int mode, const double* item_edge, int64_t k, gm_grid* g) {
    const int64_t n = p->num_points, nb = p->batch_size;
    const cudaStream_t s = g->stream;
    const size_t tsize = p->dtype == GM_FLOAT32 ? sizeof(float) : sizeof(double);
    const char* what = "a search grid";
    g->dtype = p->dtype;
    g->n = n;
    g->batch_size = nb;
    g->radius = p->radius;
    int st = GM_OK;
    void** arrays[] = {&g->x, &g->y, &g->z};
    for (void** a : arrays)
        if (st == GM_OK) st = grid_alloc(g, a, (size_t)n * tsize, what);
    if (st == GM_OK) st = grid_alloc(g, (void**)&g->idx, (size_t)n * sizeof(int64_t), what);
    if (st == GM_OK) st = grid_alloc(g, (void**)&g->pts_splits, (size_t)(nb + 1) * sizeof(int64_t), what);
    if (st == GM_OK) st = grid_alloc(g, (void**)&g->origin, (size_t)(3 * nb) * sizeof(double), what);
    if (st == GM_OK) st = grid_alloc(g, (void**)&g->cell, (size_t)nb * sizeof(double), what);
    if (st == GM_OK) st = grid_alloc(g, (void**)&g->inv_cell, (size_t)nb * sizeof(double), what);
    if (st == GM_OK) st = grid_alloc(g, (void**)&g->dims, (size_t)(3 * nb) * sizeof(int64_t), what);
    if (st == GM_OK) st = grid_alloc(g, (void**)&g->item_cells, (size_t)(nb + 1) * sizeof(int64_t), what);
    if (st == GM_OK) st = grid_alloc(g, (void**)&g->ckey, (size_t)n * sizeof(uint64_t), what);
    if (st == GM_OK) st = grid_alloc(g, (void**)&g->cstart, (size_t)(n + 1) * sizeof(int64_t), what);
    if (st != GM_OK) return st;
    GM_CUDA_TRY(cudaMemcpyAsync(g->pts_splits, p->points_row_splits, (size_t)(nb + 1) * sizeof(int64_t),
                                cudaMemcpyDeviceToDevice, s),
                "cudaMemcpyAsync");

    gm_dev_buffer<unsigned long long> mn, mx;
    st = mn.alloc((size_t)(3 * nb), s, what);
    if (st == GM_OK) st = mx.alloc((size_t)(3 * nb), s, what);
    if (st != GM_OK) return st;
    GM_CUDA_TRY(cudaMemsetAsync(mn.ptr, 0xFF, (size_t)(3 * nb) * sizeof(unsigned long long), s),
                "cudaMemsetAsync");
    GM_CUDA_TRY(cudaMemsetAsync(mx.ptr, 0, (size_t)(3 * nb) * sizeof(unsigned long long), s),
                "cudaMemsetAsync");
    if (n > 0) {
        const int64_t nchunks = (n + GM_BBOX_CHUNK - 1) / GM_BBOX_CHUNK;
        GM_LAUNCH(gm_grid_bbox_kernel, gm_cuda_blocks(nchunks), GM_CUDA_THREADS, s, p->points, p->dtype, n,
                  g->pts_splits, nb, mn.ptr, mx.ptr);
        st = gm_cuda_check_launch("the grid's bounding boxes");
        if (st != GM_OK) return st;
    }
    const double radius = p->dtype == GM_FLOAT32 ? (double)(float)p->radius : p->radius;
    GM_LAUNCH(gm_grid_geometry_kernel, gm_cuda_blocks(nb), GM_CUDA_THREADS, s, *g, mode, radius, item_edge, k,
              mn.ptr, mx.ptr);
    st = gm_cuda_check_launch("the grid's geometry");
    if (st != GM_OK) return st;

    // cell keys, sorted stably by key, then (several items) stably by item
    gm_dev_buffer<uint64_t> keys, keys_s;
    gm_dev_buffer<int64_t> ids, flags, cid;
    st = keys.alloc((size_t)n, s, what);
    if (st == GM_OK) st = keys_s.alloc((size_t)n, s, what);
    if (st == GM_OK) st = ids.alloc((size_t)n, s, what);
    if (st == GM_OK) st = cid.alloc((size_t)n + 1, s, what);
    if (st != GM_OK) return st;
    if (n > 0) {
        GM_LAUNCH(gm_grid_keys_kernel, gm_cuda_blocks(n), GM_CUDA_THREADS, s, *g, p->points, keys.ptr,
                  ids.ptr);
        st = gm_cuda_check_launch("the grid's cell keys");
        if (st != GM_OK) return st;
        // keys < (2^20 + 6)^3 < 2^61
        st = gm_dev_sort_pairs_u64(keys.ptr, keys_s.ptr, ids.ptr, g->idx, n, 61, s);
        if (st != GM_OK) return st;
        if (nb > 1) {
            gm_dev_buffer<int64_t> pos, perm;
            st = pos.alloc((size_t)n, s, what);
            if (st == GM_OK) st = perm.alloc((size_t)n, s, what);
            if (st != GM_OK) return st;
            GM_LAUNCH(gm_grid_item_keys_kernel, gm_cuda_blocks(n), GM_CUDA_THREADS, s, g->pts_splits, nb,
                      g->idx, n, keys.ptr, pos.ptr);
            st = gm_cuda_check_launch("the grid's item keys");
            // g->ckey is free scratch until the cells kernel writes it
            if (st == GM_OK)
                st = gm_dev_sort_pairs_u64(keys.ptr, g->ckey, pos.ptr, perm.ptr, n,
                                           bits_of((uint64_t)(nb - 1)), s);
            if (st != GM_OK) return st;
            GM_LAUNCH(gm_grid_permute_kernel, gm_cuda_blocks(n), GM_CUDA_THREADS, s, perm.ptr, n, keys_s.ptr,
                      g->idx, keys.ptr, ids.ptr);
            st = gm_cuda_check_launch("the grid's item order");
            if (st != GM_OK) return st;
            GM_CUDA_TRY(
                cudaMemcpyAsync(g->idx, ids.ptr, (size_t)n * sizeof(int64_t), cudaMemcpyDeviceToDevice, s),
                "cudaMemcpyAsync");
            GM_CUDA_TRY(cudaMemcpyAsync(keys_s.ptr, keys.ptr, (size_t)n * sizeof(uint64_t),
                                        cudaMemcpyDeviceToDevice, s),
                        "cudaMemcpyAsync");
        }
        st = flags.alloc((size_t)n, s, what);
        if (st != GM_OK) return st;
        GM_LAUNCH(gm_grid_flag_kernel, gm_cuda_blocks(n), GM_CUDA_THREADS, s, g->pts_splits, nb, keys_s.ptr,
                  n, flags.ptr);
        st = gm_cuda_check_launch("the grid's cells");
        if (st != GM_OK) return st;
    }
    st = gm_dev_exclusive_scan_i64(flags.ptr, cid.ptr, n, s);
    if (st != GM_OK) return st;
    const int64_t m = (n > nb ? n : nb) + 1;
    GM_LAUNCH(gm_grid_cells_kernel, gm_cuda_blocks(m), GM_CUDA_THREADS, s, *g, p->points, keys_s.ptr,
              flags.ptr, cid.ptr);
    return gm_cuda_check_launch("the grid's cells");
}

// ---- the public grid ---------------------------------------------------------------------------

extern "C" int gm_grid_build_cuda(const gm_grid_params* p, gm_grid** out, void* stream) {
    *out = nullptr;
    if (p->num_points < 0 || p->batch_size < 1 || !(p->radius >= 0) ||
        (p->dtype != GM_FLOAT32 && p->dtype != GM_FLOAT64))
        return GM_ERR_INVALID;
    gm_grid* g = new (std::nothrow) gm_grid();
    if (!g) return GM_ERR_NOMEM;
    g->persistent = 1;
    g->stream = (cudaStream_t)stream;
    const int st = gm_search_grid_build(p, GM_GRID_FIXED, nullptr, 0, g);
    if (st != GM_OK) {
        gm_search_grid_destroy(g);
        return st;
    }
    *out = g;
    return GM_OK;
}

extern "C" void gm_grid_free_cuda(gm_grid* g) {
    gm_search_grid_destroy(g);
}

extern "C" int64_t gm_grid_nbytes_cuda(const gm_grid* g) {
    return (int64_t)sizeof(*g) + g->bytes;
}

// flag = 1 where a stored coordinate differs bitwise from the point's (as the CPU's memcmp).
template <class W>
__global__ void gm_grid_matches_kernel(const W* pts, const W* x, const W* y, const W* z, const int64_t* idx,
                                       int64_t n, int* flag) {
    GM_FOR_EACH(t, n) {
        const int64_t i = idx[t];
        if (pts[3 * i] != x[t] || pts[3 * i + 1] != y[t] || pts[3 * i + 2] != z[t]) *flag = 1;
    }
}

extern "C" int gm_grid_matches_cuda(const gm_grid* g, const void* points, int64_t num_points, int* match,
                                    void* stream) {
    *match = 0;
    if (num_points != g->n) return GM_OK;
    const cudaStream_t s = (cudaStream_t)stream;
    gm_dev_buffer<int> flag;
    int st = flag.alloc(1, s, "a grid check");
    if (st != GM_OK) return st;
    GM_CUDA_TRY(cudaMemsetAsync(flag.ptr, 0, sizeof(int), s), "cudaMemsetAsync");
    if (g->n > 0) {
        // compare the bits (as integers of the element's width)
        if (g->dtype == GM_FLOAT32)
            GM_LAUNCH(gm_grid_matches_kernel<uint32_t>, gm_cuda_blocks(g->n), GM_CUDA_THREADS, s,
                      (const uint32_t*)points, (const uint32_t*)g->x, (const uint32_t*)g->y,
                      (const uint32_t*)g->z, g->idx, g->n, flag.ptr);
        else
            GM_LAUNCH(gm_grid_matches_kernel<uint64_t>, gm_cuda_blocks(g->n), GM_CUDA_THREADS, s,
                      (const uint64_t*)points, (const uint64_t*)g->x, (const uint64_t*)g->y,
                      (const uint64_t*)g->z, g->idx, g->n, flag.ptr);
        st = gm_cuda_check_launch("a grid check");
        if (st != GM_OK) return st;
    }
    int differ = 0;
    GM_CUDA_WAIT_IDLE(s, "a grid check");
    GM_CUDA_TRY(cudaMemcpyAsync(&differ, flag.ptr, sizeof(int), cudaMemcpyDeviceToHost, s),
                "cudaMemcpyAsync");
    GM_CUDA_TRY(cudaStreamSynchronize(s), "cudaStreamSynchronize");
    *match = !differ;
    return GM_OK;
}

// ---- fixed-radius and radius search ------------------------------------------------------------

// The plan of both searches: their grid, the query order and the row starts.
struct gm_block_plan : gm_search_plan {
    const gm_grid* grid;  // the caller's (fixed radius) or the plan's own (radius search)
    const void* queries;
    const int64_t* qsplits;
    int64_t nq;
    const void* radii;  // radius search
    int dtype, metric, strict, ignore, normalize, sort, is64;
    int64_t* qord;    // [nq]
    int64_t* starts;  // [nq+1]
};

// A sorted fill merges the <= 27 cells of the block.
enum { GM_BLOCK_CELLS = 27 };

#define GM_TWIN_BODY "search_grid_impl.cuh"
#include "geomops/twin.h"

static int block_fill(gm_search_plan* base, void* index, void* distance) {
    const gm_block_plan* pl = static_cast<const gm_block_plan*>(base);
    return pl->dtype == GM_FLOAT32 ? block_fill_f32(pl, index, distance)
                                   : block_fill_f64(pl, index, distance);
}

static void block_destroy(gm_search_plan* base) {
    gm_block_plan* pl = static_cast<gm_block_plan*>(base);
    gm_search_plan_release(pl);
    delete pl;
}

static gm_block_plan* block_plan_new(cudaStream_t stream, int return_distances) {
    gm_block_plan* pl = new (std::nothrow) gm_block_plan();
    if (!pl) return nullptr;
    gm_search_plan_init(pl, stream, return_distances);
    pl->fill = block_fill;
    pl->destroy = block_destroy;
    return pl;
}

// The count phase once the plan is set up: query order, counts, row splits.
static int block_count(gm_block_plan* pl, int64_t* row_splits, int64_t* total) {
    const int64_t nq = pl->nq;
    int st = gm_search_plan_alloc(pl, (void**)&pl->qord, (size_t)nq * sizeof(int64_t), "a search plan");
    if (st == GM_OK)
        st = gm_search_plan_alloc(pl, (void**)&pl->starts, (size_t)(nq + 1) * sizeof(int64_t),
                                  "a search plan");
    gm_dev_buffer<int64_t> counts;
    if (st == GM_OK) st = counts.alloc((size_t)nq, pl->stream, "the search counts");
    if (st == GM_OK)
        st = gm_search_order_queries(pl->grid, pl->queries, nq, pl->qsplits, pl->qord, pl->stream);
    if (st == GM_OK && nq > 0)
        st = pl->dtype == GM_FLOAT32 ? block_count_f32(pl, counts.ptr) : block_count_f64(pl, counts.ptr);
    if (st == GM_OK) st = gm_search_finish_count(counts.ptr, pl->starts, row_splits, nq, total, pl->stream);
    pl->total = *total;
    return st;
}

extern "C" int gm_fixed_radius_search_count_cuda(const gm_fixed_radius_params* p, int64_t* row_splits,
                                                 int64_t* total, gm_search_plan** plan, void* stream) {
    *plan = nullptr;
    *total = 0;
    const gm_grid* g = p->grid;
    if (!g || p->num_queries < 0 || p->metric < 0 || p->metric > 2) return GM_ERR_INVALID;
    if (!p->index_is64 && g->n > (int64_t)INT32_MAX + 1) return GM_ERR_OVERFLOW;
    gm_block_plan* pl = block_plan_new((cudaStream_t)stream, p->return_distances);
    if (!pl) return GM_ERR_NOMEM;
    pl->grid = g;
    pl->queries = p->queries;
    pl->qsplits = p->queries_row_splits;
    pl->nq = p->num_queries;
    pl->radii = nullptr;
    pl->dtype = g->dtype;
    pl->metric = p->metric;
    pl->strict = 0;
    pl->ignore = p->ignore_query_point;
    pl->normalize = 0;
    pl->sort = p->sort;
    pl->is64 = p->index_is64;
    const int st = block_count(pl, row_splits, total);
    if (st != GM_OK) {
        block_destroy(pl);
        *total = 0;
        return st;
    }
    *plan = pl;
    return GM_OK;
}

// Per item, the largest radius of its queries (as double bits: radii are >= 0, where the bits
// order like the values; the sign bit is cleared, so -0.0 counts as 0.0).
template <class T>
__global__ void gm_radius_max_kernel(const T* radii, const int64_t* qsplits, int64_t nb, int64_t nq,
                                     unsigned long long* rmax) {
    GM_FOR_EACH(q, nq) {
        const unsigned long long bits = gm_search_bits((double)radii[q]) & 0x7FFFFFFFFFFFFFFFull;
        atomicMax(&rmax[gm_search_item_of(qsplits, nb, q)], bits);
    }
}

static int tree_check(const gm_tree_search_params* p) {
    if (p->num_points < 0 || p->num_queries < 0 || p->batch_size < 1 || p->metric < 0 || p->metric > 2 ||
        (p->dtype != GM_FLOAT32 && p->dtype != GM_FLOAT64))
        return GM_ERR_INVALID;
    if (!p->index_is64 && p->num_points > (int64_t)INT32_MAX + 1) return GM_ERR_OVERFLOW;
    return GM_OK;
}

extern "C" int gm_radius_search_count_cuda(const gm_tree_search_params* p, int64_t* row_splits,
                                           int64_t* total, gm_search_plan** plan, void* stream) {
    *plan = nullptr;
    *total = 0;
    int st = tree_check(p);
    if (st != GM_OK) return st;
    if (!p->radii && p->num_queries > 0) return GM_ERR_INVALID;  // an empty device array may be NULL
    const cudaStream_t s = (cudaStream_t)stream;
    gm_block_plan* pl = block_plan_new(s, p->return_distances);
    if (!pl) return GM_ERR_NOMEM;
    pl->queries = p->queries;
    pl->qsplits = p->queries_row_splits;
    pl->nq = p->num_queries;
    pl->radii = p->radii;
    pl->dtype = p->dtype;
    pl->metric = p->metric;
    pl->strict = 1;
    pl->ignore = p->ignore_query_point;
    pl->normalize = p->normalize_distances;
    pl->sort = p->sort;
    pl->is64 = p->index_is64;
    pl->grid = pl->own_grid = new (std::nothrow) gm_grid();
    st = pl->own_grid ? GM_OK : GM_ERR_NOMEM;
    const int64_t nb = p->batch_size, nq = p->num_queries;
    gm_dev_buffer<unsigned long long> rmax;
    if (st == GM_OK) st = rmax.alloc((size_t)nb, s, "the radii per batch item");
    if (st == GM_OK) {
        pl->own_grid->stream = s;
        const cudaError_t err = cudaMemsetAsync(rmax.ptr, 0, (size_t)nb * sizeof(unsigned long long), s);
        if (err != cudaSuccess) st = gm_cuda_fail(err, "cudaMemsetAsync");
    }
    if (st == GM_OK && nq > 0) {
        if (p->dtype == GM_FLOAT32)
            GM_LAUNCH(gm_radius_max_kernel<float>, gm_cuda_blocks(nq), GM_CUDA_THREADS, s,
                      (const float*)p->radii, p->queries_row_splits, nb, nq, rmax.ptr);
        else
            GM_LAUNCH(gm_radius_max_kernel<double>, gm_cuda_blocks(nq), GM_CUDA_THREADS, s,
                      (const double*)p->radii, p->queries_row_splits, nb, nq, rmax.ptr);
        st = gm_cuda_check_launch("the radii per batch item");
    }
    if (st == GM_OK) {
        gm_grid_params gp;
        gp.dtype = p->dtype;
        gp.points = p->points;
        gp.num_points = p->num_points;
        gp.points_row_splits = p->points_row_splits;
        gp.batch_size = nb;
        gp.radius = 0;
        gp.num_threads = 1;
        st = gm_search_grid_build(&gp, GM_GRID_PER_ITEM, (const double*)rmax.ptr, 0, pl->own_grid);
    }
    if (st == GM_OK) st = block_count(pl, row_splits, total);
    if (st != GM_OK) {
        block_destroy(pl);
        *total = 0;
        return st;
    }
    *plan = pl;
    return GM_OK;
}
