/* Fixed-radius search over a sorted cell grid.
 *
 * Index: per batch item, cells of edge >= radius (padded by 1e-5 relative so rounding can never
 * put a neighbor outside the 3x3x3 block of the query's cell), keyed (z, y, x) in a mixed radix
 * and sorted, so the 3 cells of one (y, z) row are one contiguous run of points. Points are
 * copied into cell order as x[], y[], z[] arrays (vector-friendly distance loops).
 * Search: queries are sorted by cell too; a group of queries sharing a cell looks up its <= 9
 * row runs once (binary search over the item's sorted cell keys), then each query scans them.
 * Two passes: count, prefix sum, fill. Every query's row depends only on its own scan, so the
 * result is the same for any thread count.
 *
 * The file includes itself once per float type (GM_GRID_T) for the typed part. */
#ifndef GM_GRID_T

#include "search_internal.h"

struct gm_grid {
    int dtype;
    int64_t n, batch_size;
    double radius;
    void *x, *y, *z;     /* coordinates in cell order, the points' dtype */
    int64_t* idx;        /* global point index at each sorted position */
    int64_t* pts_splits; /* [B+1] */
    double* origin;      /* [3B] per item */
    double* inv_cs;      /* [B] 1 / cell edge */
    int64_t* dims;       /* [3B] cells per axis */
    int64_t* item_cells; /* [B+1] ranges into ckey */
    uint64_t* ckey;      /* [C] sorted cell keys */
    int64_t* cstart;     /* [C+1] first sorted position of each cell */
    /* Dense table for compact items (cells in the bounding box <= 2 * points + 4096): for every
     * cell, empty or not, the first sorted position at or after it (one extra entry at the end),
     * so a row lookup is O(1). dense_off[b] < 0: the item uses binary search over ckey. */
    int64_t* dense_off; /* [B] */
    int64_t* dense;     /* [sum of dense sizes] */
};

/* Cells per axis are capped so that a key (with a 2-cell margin each side for queries)
 * fits 64 bits; only an extent/radius ratio above 2^20 coarsens the grid. */
#define GRID_MAX_DIM 1048576.0

/* Mixed-radix key of cell (cx, cy, cz); coordinates may lie in [-2, dim+1]. */
static inline uint64_t grid_key(int64_t cx, int64_t cy, int64_t cz, const int64_t* dims) {
    return ((uint64_t)(cz + 2) * (uint64_t)(dims[1] + 4) + (uint64_t)(cy + 2)) * (uint64_t)(dims[0] + 4) +
           (uint64_t)(cx + 2);
}

static inline int64_t grid_coord(double v, double o, double inv, int64_t lo, int64_t hi) {
    const double f = floor((v - o) * inv);
    if (!(f >= (double)lo)) return lo;
    if (f > (double)hi) return hi;
    return (int64_t)f;
}

/* first position in [lo, hi) with keys[pos] >= key */
static inline int64_t lower_bound_u64(const uint64_t* keys, int64_t lo, int64_t hi, uint64_t key) {
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (keys[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The <= 9 point runs (start, end pairs) around query cell (cx, cy, cz) of item b; adjacent
 * runs are merged. Returns the number of runs. */
static int grid_runs(const gm_grid* g, int64_t b, int64_t cx, int64_t cy, int64_t cz, int64_t* runs) {
    const int64_t* dims = g->dims + 3 * b;
    const int64_t xlo = cx - 1 < 0 ? 0 : cx - 1, xhi = cx + 1 > dims[0] - 1 ? dims[0] - 1 : cx + 1;
    int nr = 0;
    if (xlo > xhi) return 0;
    if (g->dense_off[b] >= 0) {
        const int64_t* d = g->dense + g->dense_off[b];
        for (int64_t z = cz - 1; z <= cz + 1; ++z) {
            if (z < 0 || z >= dims[2]) continue;
            for (int64_t y = cy - 1; y <= cy + 1; ++y) {
                if (y < 0 || y >= dims[1]) continue;
                const int64_t row = (z * dims[1] + y) * dims[0];
                const int64_t s = d[row + xlo], e = d[row + xhi + 1];
                if (s == e) continue;
                if (nr > 0 && runs[2 * nr - 1] == s)
                    runs[2 * nr - 1] = e;
                else {
                    runs[2 * nr] = s;
                    runs[2 * nr + 1] = e;
                    ++nr;
                }
            }
        }
        return nr;
    }
    int64_t from = g->item_cells[b];
    const int64_t end = g->item_cells[b + 1];
    for (int64_t z = cz - 1; z <= cz + 1; ++z) {
        if (z < 0 || z >= dims[2]) continue;
        for (int64_t y = cy - 1; y <= cy + 1; ++y) {
            if (y < 0 || y >= dims[1]) continue;
            const int64_t i0 = lower_bound_u64(g->ckey, from, end, grid_key(xlo, y, z, dims));
            const int64_t i1 = lower_bound_u64(g->ckey, i0, end, grid_key(xhi, y, z, dims) + 1);
            from = i1;
            if (i0 == i1) continue;
            const int64_t s = g->cstart[i0], e = g->cstart[i1];
            if (nr > 0 && runs[2 * nr - 1] == s)
                runs[2 * nr - 1] = e;
            else {
                runs[2 * nr] = s;
                runs[2 * nr + 1] = e;
                ++nr;
            }
        }
    }
    return nr;
}

#define GM_CAT_(a, b) a##_##b
#define GM_CAT(a, b)  GM_CAT_(a, b)

#define GM_GRID_T     float
#define GM_GRID_SFX   f32
#define GM_GRID_ABS   fabsf
#define GM_GRID_DTYPE GM_FLOAT32
#include "search_grid.c"
#undef GM_GRID_T
#undef GM_GRID_SFX
#undef GM_GRID_ABS
#undef GM_GRID_DTYPE

#define GM_GRID_T     double
#define GM_GRID_SFX   f64
#define GM_GRID_ABS   fabs
#define GM_GRID_DTYPE GM_FLOAT64
#include "search_grid.c"
#undef GM_GRID_T
#undef GM_GRID_SFX
#undef GM_GRID_ABS
#undef GM_GRID_DTYPE

void gm_grid_free(gm_grid* g) {
    if (!g) return;
    free(g->x);
    free(g->y);
    free(g->z);
    free(g->idx);
    free(g->pts_splits);
    free(g->origin);
    free(g->inv_cs);
    free(g->dims);
    free(g->item_cells);
    free(g->ckey);
    free(g->cstart);
    free(g->dense_off);
    free(g->dense);
    free(g);
}

int64_t gm_grid_nbytes(const gm_grid* g) {
    const int64_t tsize = g->dtype == GM_FLOAT32 ? 4 : 8;
    const int64_t ncells = g->item_cells[g->batch_size];
    int64_t dense = 0;
    for (int64_t b = 0; b < g->batch_size; ++b)
        if (g->dense_off[b] >= 0) dense += g->dims[3 * b] * g->dims[3 * b + 1] * g->dims[3 * b + 2] + 1;
    return (int64_t)sizeof(*g) + g->n * (3 * tsize + 8) + g->batch_size * (8 * 10 + 16) + 16 * ncells +
           8 * dense;
}

int gm_grid_build_cpu(const gm_grid_params* p, gm_grid** out) {
    *out = NULL;
    if (p->num_points < 0 || p->batch_size < 1 || !(p->radius >= 0)) return GM_ERR_INVALID;
    gm_grid* g = (gm_grid*)calloc(1, sizeof(gm_grid));
    if (!g) return GM_ERR_NOMEM;
    int st;
    if (p->dtype == GM_FLOAT32)
        st = grid_build_f32(p, g);
    else if (p->dtype == GM_FLOAT64)
        st = grid_build_f64(p, g);
    else
        st = GM_ERR_INVALID;
    if (st != GM_OK) {
        gm_grid_free(g);
        return st;
    }
    *out = g;
    return GM_OK;
}

int gm_grid_matches_cpu(const gm_grid* g, const void* points, int64_t num_points, int* match) {
    *match = 0;
    if (num_points != g->n) return GM_OK;
    *match = g->dtype == GM_FLOAT32 ? grid_matches_f32(g, points) : grid_matches_f64(g, points);
    return GM_OK;
}

int gm_fixed_radius_search_cpu(const gm_fixed_radius_params* p) {
    const gm_grid* g = p->grid;
    if (!g || p->num_queries < 0 || p->metric < 0 || p->metric > 2) return GM_ERR_INVALID;
    if (!p->index_is64 && g->n > (int64_t)INT32_MAX + 1) return GM_ERR_OVERFLOW;
    return g->dtype == GM_FLOAT32 ? frs_f32(p) : frs_f64(p);
}

#else /* ------------------------------ typed part ------------------------------------------ */

#define T        GM_GRID_T
#define FN(name) GM_CAT(name, GM_GRID_SFX)

static int FN(grid_build)(const gm_grid_params* p, gm_grid* g) {
    const T* pts = (const T*)p->points;
    const int64_t n = p->num_points, nb = p->batch_size;
    const int nt = gm_threads(p->num_threads);
    const double r = (double)(T)p->radius;
    g->dtype = GM_GRID_DTYPE;
    g->n = n;
    g->batch_size = nb;
    g->radius = p->radius;
    g->pts_splits = (int64_t*)malloc((size_t)(nb + 1) * sizeof(int64_t));
    g->origin = (double*)calloc((size_t)(3 * nb), sizeof(double));
    g->inv_cs = (double*)calloc((size_t)nb, sizeof(double));
    g->dims = (int64_t*)calloc((size_t)(3 * nb), sizeof(int64_t));
    g->item_cells = (int64_t*)calloc((size_t)(nb + 1), sizeof(int64_t));
    g->x = malloc((size_t)(n > 0 ? n : 1) * sizeof(T));
    g->y = malloc((size_t)(n > 0 ? n : 1) * sizeof(T));
    g->z = malloc((size_t)(n > 0 ? n : 1) * sizeof(T));
    g->idx = (int64_t*)malloc((size_t)(n > 0 ? n : 1) * sizeof(int64_t));
    uint64_t* keys = (uint64_t*)malloc((size_t)(n > 0 ? n : 1) * sizeof(uint64_t));
    if (!g->pts_splits || !g->origin || !g->inv_cs || !g->dims || !g->item_cells || !g->x || !g->y || !g->z ||
        !g->idx || !keys) {
        free(keys);
        return GM_ERR_NOMEM;
    }
    memcpy(g->pts_splits, p->points_row_splits, (size_t)(nb + 1) * sizeof(int64_t));
    int64_t* vals = g->idx;
    int st = GM_OK;
    for (int64_t b = 0; b < nb && st == GM_OK; ++b) {
        const int64_t lo = p->points_row_splits[b], hi = p->points_row_splits[b + 1];
        double* o = g->origin + 3 * b;
        int64_t* dims = g->dims + 3 * b;
        dims[0] = dims[1] = dims[2] = 1;
        g->inv_cs[b] = 1.0;
        if (hi <= lo) continue;
        double mnx = INFINITY, mny = INFINITY, mnz = INFINITY, mxx = -INFINITY, mxy = -INFINITY,
               mxz = -INFINITY;
#pragma omp parallel for schedule(static) num_threads(nt) if (hi - lo > 65536)                               \
    reduction(min : mnx, mny, mnz) reduction(max : mxx, mxy, mxz)
        for (int64_t i = lo; i < hi; ++i) {
            const double px = pts[3 * i], py = pts[3 * i + 1], pz = pts[3 * i + 2];
            mnx = px < mnx ? px : mnx;
            mny = py < mny ? py : mny;
            mnz = pz < mnz ? pz : mnz;
            mxx = px > mxx ? px : mxx;
            mxy = py > mxy ? py : mxy;
            mxz = pz > mxz ? pz : mxz;
        }
        double ext = mxx - mnx;
        ext = mxy - mny > ext ? mxy - mny : ext;
        ext = mxz - mnz > ext ? mxz - mnz : ext;
        double cs = r * (1.0 + 1e-5);
        if (ext / GRID_MAX_DIM > cs) cs = ext / GRID_MAX_DIM;
        if (!(cs > 0) || !isfinite(1.0 / cs)) cs = ext > 0 ? ext : 1.0;
        const double inv = 1.0 / cs;
        o[0] = mnx;
        o[1] = mny;
        o[2] = mnz;
        g->inv_cs[b] = inv;
        const double mx[3] = {mxx, mxy, mxz};
        for (int k = 0; k < 3; ++k) {
            double d = floor((mx[k] - o[k]) * inv) + 1;
            dims[k] = d > GRID_MAX_DIM + 2 ? (int64_t)GRID_MAX_DIM + 2 : (int64_t)d;
        }
#pragma omp parallel for schedule(static) num_threads(nt) if (hi - lo > 16384)
        for (int64_t i = lo; i < hi; ++i) {
            const int64_t cx = grid_coord(pts[3 * i], o[0], inv, 0, dims[0] - 1);
            const int64_t cy = grid_coord(pts[3 * i + 1], o[1], inv, 0, dims[1] - 1);
            const int64_t cz = grid_coord(pts[3 * i + 2], o[2], inv, 0, dims[2] - 1);
            keys[i] = grid_key(cx, cy, cz, dims);
            vals[i] = i;
        }
        st = gm_search_radix_sort(keys + lo, vals + lo, hi - lo,
                                  grid_key(dims[0] - 1, dims[1] - 1, dims[2] - 1, dims), nt);
    }
    if (st != GM_OK) {
        free(keys);
        return st;
    }
    /* unique cells */
    int64_t ncells = 0;
    for (int64_t b = 0; b < nb; ++b) {
        g->item_cells[b] = ncells;
        for (int64_t i = p->points_row_splits[b]; i < p->points_row_splits[b + 1]; ++i)
            ncells += (i == p->points_row_splits[b] || keys[i] != keys[i - 1]);
    }
    g->item_cells[nb] = ncells;
    g->ckey = (uint64_t*)malloc((size_t)(ncells > 0 ? ncells : 1) * sizeof(uint64_t));
    g->cstart = (int64_t*)malloc((size_t)(ncells + 1) * sizeof(int64_t));
    if (!g->ckey || !g->cstart) {
        free(keys);
        return GM_ERR_NOMEM;
    }
    int64_t c = 0;
    for (int64_t b = 0; b < nb; ++b)
        for (int64_t i = p->points_row_splits[b]; i < p->points_row_splits[b + 1]; ++i)
            if (i == p->points_row_splits[b] || keys[i] != keys[i - 1]) {
                g->ckey[c] = keys[i];
                g->cstart[c] = i;
                ++c;
            }
    g->cstart[ncells] = n;
    free(keys);
    /* dense cell tables for compact items */
    g->dense_off = (int64_t*)malloc((size_t)nb * sizeof(int64_t));
    if (!g->dense_off) return GM_ERR_NOMEM;
    int64_t dense_total = 0;
    for (int64_t b = 0; b < nb; ++b) {
        const int64_t *dims = g->dims + 3 * b, nbp = p->points_row_splits[b + 1] - p->points_row_splits[b];
        const double cells = (double)dims[0] * (double)dims[1] * (double)dims[2];
        g->dense_off[b] = -1;
        if (nbp > 0 && cells <= 2.0 * (double)nbp + 4096) {
            g->dense_off[b] = dense_total;
            dense_total += (int64_t)cells + 1;
        }
    }
    g->dense = (int64_t*)malloc((size_t)(dense_total > 0 ? dense_total : 1) * sizeof(int64_t));
    if (!g->dense) return GM_ERR_NOMEM;
    for (int64_t b = 0; b < nb; ++b) {
        if (g->dense_off[b] < 0) continue;
        const int64_t* dims = g->dims + 3 * b;
        int64_t* d = g->dense + g->dense_off[b];
        const int64_t ncell = dims[0] * dims[1] * dims[2];
        int64_t c = g->item_cells[b];
        const int64_t cend = g->item_cells[b + 1];
        for (int64_t lin = 0; lin < ncell; ++lin) {
            const int64_t x = lin % dims[0], y = (lin / dims[0]) % dims[1], z = lin / (dims[0] * dims[1]);
            const uint64_t key = grid_key(x, y, z, dims);
            while (c < cend && g->ckey[c] < key) ++c;
            d[lin] = c < cend ? g->cstart[c] : p->points_row_splits[b + 1];
        }
        d[ncell] = p->points_row_splits[b + 1];
    }
    T *x = (T*)g->x, *y = (T*)g->y, *z = (T*)g->z;
#pragma omp parallel for schedule(static) num_threads(nt) if (n > 16384)
    for (int64_t j = 0; j < n; ++j) {
        const int64_t i = vals[j];
        x[j] = pts[3 * i];
        y[j] = pts[3 * i + 1];
        z[j] = pts[3 * i + 2];
    }
    return GM_OK;
}

static int FN(grid_matches)(const gm_grid* g, const void* points) {
    const T *pts = (const T*)points, *x = (const T*)g->x, *y = (const T*)g->y, *z = (const T*)g->z;
    /* bitwise comparison: -0.0 and 0.0 would search alike, but a copy is what was stored */
    for (int64_t j = 0; j < g->n; ++j) {
        const int64_t i = g->idx[j];
        if (memcmp(&pts[3 * i], &x[j], sizeof(T)) || memcmp(&pts[3 * i + 1], &y[j], sizeof(T)) ||
            memcmp(&pts[3 * i + 2], &z[j], sizeof(T)))
            return 0;
    }
    return 1;
}

/* Distance of one candidate; squared for L2. `metric` is a compile-time constant at every call
 * site (always_inline), so each loop below is specialised per metric. */
GM_ALWAYS_INLINE T FN(frs_dist)(T dx, T dy, T dz, const int metric) {
    if (metric == GM_METRIC_L2) return dx * dx + dy * dy + dz * dz;
    const T ax = GM_GRID_ABS(dx), ay = GM_GRID_ABS(dy), az = GM_GRID_ABS(dz);
    if (metric == GM_METRIC_L1) return ax + ay + az;
    const T m = ax > ay ? ax : ay;
    return m > az ? m : az;
}

GM_ALWAYS_INLINE int64_t FN(frs_count_runs)(const T* restrict x, const T* restrict y, const T* restrict z,
                                            const int64_t* runs, int nr, T qx, T qy, T qz, T thr,
                                            const int metric, const int ignore) {
    int64_t total = 0;
    for (int r = 0; r < nr; ++r) {
        for (int64_t s = runs[2 * r]; s < runs[2 * r + 1]; s += (1 << 30)) {
            const int64_t e = runs[2 * r + 1] - s > (1 << 30) ? s + (1 << 30) : runs[2 * r + 1];
            int c = 0;
            for (int64_t j = s; j < e; ++j) {
                const T dx = x[j] - qx, dy = y[j] - qy, dz = z[j] - qz;
                int ok = FN(frs_dist)(dx, dy, dz, metric) <= thr;
                if (ignore) ok &= !((dx == 0) & (dy == 0) & (dz == 0));
                c += ok;
            }
            total += c;
        }
    }
    return total;
}

GM_ALWAYS_INLINE int64_t FN(frs_collect_runs)(const T* restrict x, const T* restrict y, const T* restrict z,
                                              const int64_t* runs, int nr, T qx, T qy, T qz, T thr,
                                              int64_t* restrict jbuf, T* restrict dbuf, const int metric,
                                              const int ignore) {
    int64_t k = 0;
    for (int r = 0; r < nr; ++r) {
        const int64_t e = runs[2 * r + 1];
        for (int64_t j = runs[2 * r]; j < e; ++j) {
            const T dx = x[j] - qx, dy = y[j] - qy, dz = z[j] - qz;
            const T d = FN(frs_dist)(dx, dy, dz, metric);
            int ok = d <= thr;
            if (ignore) ok &= !((dx == 0) & (dy == 0) & (dz == 0));
            jbuf[k] = j;
            dbuf[k] = d;
            k += ok;
        }
    }
    return k;
}

#define FRS_DISPATCH(CALL)                                                                                   \
    switch (metric * 2 + (ignore ? 1 : 0)) {                                                                 \
        case GM_METRIC_L1 * 2:                                                                               \
            return CALL(GM_METRIC_L1, 0);                                                                    \
        case GM_METRIC_L1 * 2 + 1:                                                                           \
            return CALL(GM_METRIC_L1, 1);                                                                    \
        case GM_METRIC_L2 * 2:                                                                               \
            return CALL(GM_METRIC_L2, 0);                                                                    \
        case GM_METRIC_L2 * 2 + 1:                                                                           \
            return CALL(GM_METRIC_L2, 1);                                                                    \
        case GM_METRIC_LINF * 2:                                                                             \
            return CALL(GM_METRIC_LINF, 0);                                                                  \
        default:                                                                                             \
            return CALL(GM_METRIC_LINF, 1);                                                                  \
    }

static GM_HOT int64_t FN(frs_count)(const T* x, const T* y, const T* z, const int64_t* runs, int nr, T qx,
                                    T qy, T qz, T thr, int metric, int ignore) {
#define CALL(M, I) FN(frs_count_runs)(x, y, z, runs, nr, qx, qy, qz, thr, M, I)
    FRS_DISPATCH(CALL)
#undef CALL
}

static GM_HOT int64_t FN(frs_collect)(const T* x, const T* y, const T* z, const int64_t* runs, int nr, T qx,
                                      T qy, T qz, T thr, int64_t* jbuf, T* dbuf, int metric, int ignore) {
#define CALL(M, I) FN(frs_collect_runs)(x, y, z, runs, nr, qx, qy, qz, thr, jbuf, dbuf, M, I)
    FRS_DISPATCH(CALL)
#undef CALL
}

/* Decodes a query-cell key of item b into cell coordinates (each in [-2, dim+1]). */
static inline void FN(decode_key)(uint64_t key, const int64_t* dims, int64_t* cx, int64_t* cy, int64_t* cz) {
    const uint64_t rx = (uint64_t)(dims[0] + 4), ry = (uint64_t)(dims[1] + 4);
    *cx = (int64_t)(key % rx) - 2;
    key /= rx;
    *cy = (int64_t)(key % ry) - 2;
    *cz = (int64_t)(key / ry) - 2;
}

static void FN(write_row)(const gm_fixed_radius_params* p, const gm_grid* g, int64_t pos, int64_t k,
                          int64_t* jbuf, T* dbuf) {
    for (int64_t t = 0; t < k; ++t) jbuf[t] = g->idx[jbuf[t]];
    if (p->sort) FN(gm_search_sort_pairs)(jbuf, p->return_distances ? dbuf : NULL, k);
    if (p->index_is64)
        memcpy((int64_t*)*p->out.index + pos, jbuf, (size_t)k * sizeof(int64_t));
    else {
        int32_t* o = (int32_t*)*p->out.index + pos;
        for (int64_t t = 0; t < k; ++t) o[t] = (int32_t)jbuf[t];
    }
    if (p->return_distances) memcpy((T*)*p->out.distance + pos, dbuf, (size_t)k * sizeof(T));
}

static int FN(frs)(const gm_fixed_radius_params* p) {
    const gm_grid* g = p->grid;
    const T* qs = (const T*)p->queries;
    const int64_t nq = p->num_queries, nb = g->batch_size;
    const int nt = gm_threads(p->num_threads);
    const int metric = p->metric, ignore = p->ignore_query_point;
    int64_t* rs = p->out.row_splits;
    const T rad = (T)g->radius;
    const T thr = metric == GM_METRIC_L2 ? rad * rad : rad;
    memset(rs, 0, (size_t)(nq + 1) * sizeof(int64_t));
    if (nq == 0 || g->n == 0)
        return gm_search_alloc_output(&p->out, 0, p->index_is64, p->return_distances, sizeof(T));

    /* group the queries by cell: sort (cell key, query index) per batch item */
    uint64_t* qkey = (uint64_t*)malloc((size_t)nq * sizeof(uint64_t));
    int64_t* qord = (int64_t*)malloc((size_t)nq * sizeof(int64_t));
    int64_t* gpos = (int64_t*)malloc((size_t)(nq + 1) * sizeof(int64_t));
    int64_t* gitem = (int64_t*)malloc((size_t)(nq + 1) * sizeof(int64_t));
    int64_t* cnt_s = (int64_t*)malloc((size_t)nq * sizeof(int64_t));   /* per sorted position: count */
    int64_t* start_s = (int64_t*)malloc((size_t)nq * sizeof(int64_t)); /* and first output entry */
    T* qsrt = (T*)malloc((size_t)nq * 3 * sizeof(T));                  /* queries in sorted order */
    int st = (qkey && qord && gpos && gitem && cnt_s && start_s && qsrt) ? GM_OK : GM_ERR_NOMEM;
    int64_t ngroups = 0;
    for (int64_t b = 0; b < nb && st == GM_OK; ++b) {
        const int64_t lo = p->queries_row_splits[b], hi = p->queries_row_splits[b + 1];
        if (hi <= lo || g->pts_splits[b + 1] == g->pts_splits[b]) {
            for (int64_t i = lo; i < hi; ++i) qord[i] = i; /* no group: count 0 */
            continue;
        }
        const double *o = g->origin + 3 * b, inv = g->inv_cs[b];
        const int64_t* dims = g->dims + 3 * b;
#pragma omp parallel for schedule(static) num_threads(nt) if (hi - lo > 16384)
        for (int64_t i = lo; i < hi; ++i) {
            const int64_t cx = grid_coord(qs[3 * i], o[0], inv, -2, dims[0] + 1);
            const int64_t cy = grid_coord(qs[3 * i + 1], o[1], inv, -2, dims[1] + 1);
            const int64_t cz = grid_coord(qs[3 * i + 2], o[2], inv, -2, dims[2] + 1);
            qkey[i] = grid_key(cx, cy, cz, dims);
            qord[i] = i;
        }
        st = gm_search_radix_sort(qkey + lo, qord + lo, hi - lo,
                                  grid_key(dims[0] + 1, dims[1] + 1, dims[2] + 1, dims), nt);
        for (int64_t i = lo; i < hi && st == GM_OK; ++i)
            if (i == lo || qkey[i] != qkey[i - 1]) {
                gpos[ngroups] = i;
                gitem[ngroups] = b;
                ++ngroups;
            }
    }
    /* keep one key per group; the per-query keys and the unused group slots go before the
     * output is allocated (peak memory) */
    uint64_t* gkey = NULL;
    if (st == GM_OK) {
        gkey = (uint64_t*)malloc((size_t)(ngroups > 0 ? ngroups : 1) * sizeof(uint64_t));
        if (!gkey)
            st = GM_ERR_NOMEM;
        else
            for (int64_t gi = 0; gi < ngroups; ++gi) gkey[gi] = qkey[gpos[gi]];
    }
    free(qkey);
    qkey = NULL;
    if (st == GM_OK && ngroups > 0) {
        int64_t* np_ = (int64_t*)realloc(gpos, (size_t)ngroups * sizeof(int64_t));
        int64_t* ni_ = (int64_t*)realloc(gitem, (size_t)ngroups * sizeof(int64_t));
        if (np_) gpos = np_;
        if (ni_) gitem = ni_;
    }
    /* Sorted positions outside every group (items without points) keep count 0. Gathering the
     * query coordinates once, in a loop of independent loads, is much cheaper than a cache miss
     * inside each distance scan. */
    if (st == GM_OK) {
#pragma omp parallel for schedule(static) num_threads(nt) if (nq > 16384)
        for (int64_t t = 0; t < nq; ++t) {
            const int64_t q = qord[t];
            qsrt[3 * t] = qs[3 * q];
            qsrt[3 * t + 1] = qs[3 * q + 1];
            qsrt[3 * t + 2] = qs[3 * q + 2];
            cnt_s[t] = 0;
        }
    }
    /* group g spans sorted positions [gpos[g], gend(g)) where the end is the next group's start or
     * its item's end */
    volatile int err = st;
    if (st == GM_OK) {
#pragma omp parallel for schedule(dynamic, 4) num_threads(nt) if (nq > 1024)
        for (int64_t gi = 0; gi < ngroups; ++gi) {
            const int64_t b = gitem[gi], s = gpos[gi];
            const int64_t e =
                (gi + 1 < ngroups && gitem[gi + 1] == b) ? gpos[gi + 1] : p->queries_row_splits[b + 1];
            int64_t cx, cy, cz, runs[18];
            FN(decode_key)(gkey[gi], g->dims + 3 * b, &cx, &cy, &cz);
            const int nr = grid_runs(g, b, cx, cy, cz, runs);
            if (nr == 0) continue;
            for (int64_t t = s; t < e; ++t)
                cnt_s[t] = FN(frs_count)((const T*)g->x, (const T*)g->y, (const T*)g->z, runs, nr,
                                         qsrt[3 * t], qsrt[3 * t + 1], qsrt[3 * t + 2], thr, metric, ignore);
        }
        for (int64_t t = 0; t < nq; ++t) rs[qord[t] + 1] = cnt_s[t];
        const int64_t total = gm_search_prefix_sum(rs, nq);
        for (int64_t t = 0; t < nq; ++t) start_s[t] = rs[qord[t]];
        st = total < 0
                 ? GM_ERR_OVERFLOW
                 : gm_search_alloc_output(&p->out, total, p->index_is64, p->return_distances, sizeof(T));
        err = st;
    }
    if (st == GM_OK) {
#pragma omp parallel num_threads(nt) if (nq > 1024)
        {
            int64_t cap = 0, *jbuf = NULL;
            T* dbuf = NULL;
#pragma omp for schedule(dynamic, 4)
            for (int64_t gi = 0; gi < ngroups; ++gi) {
                if (err) continue;
                const int64_t b = gitem[gi], s = gpos[gi];
                const int64_t e =
                    (gi + 1 < ngroups && gitem[gi + 1] == b) ? gpos[gi + 1] : p->queries_row_splits[b + 1];
                int64_t cx, cy, cz, runs[18];
                FN(decode_key)(gkey[gi], g->dims + 3 * b, &cx, &cy, &cz);
                const int nr = grid_runs(g, b, cx, cy, cz, runs);
                if (nr == 0) continue;
                int64_t need = 1;
                for (int r = 0; r < nr; ++r) need += runs[2 * r + 1] - runs[2 * r];
                if (need > cap) {
                    free(jbuf);
                    free(dbuf);
                    cap = need + need / 2;
                    jbuf = (int64_t*)malloc((size_t)cap * sizeof(int64_t));
                    dbuf = (T*)malloc((size_t)cap * sizeof(T));
                    if (!jbuf || !dbuf) {
                        cap = 0;
                        err = GM_ERR_NOMEM;
                        continue;
                    }
                }
                for (int64_t t = s; t < e; ++t) {
                    const int64_t start = start_s[t], cnt = cnt_s[t];
                    if (cnt == 0) continue;
                    const int64_t k =
                        FN(frs_collect)((const T*)g->x, (const T*)g->y, (const T*)g->z, runs, nr, qsrt[3 * t],
                                        qsrt[3 * t + 1], qsrt[3 * t + 2], thr, jbuf, dbuf, metric, ignore);
                    if (k != cnt) { /* the two passes must agree; never expected */
                        err = GM_ERR_INVALID;
                        continue;
                    }
                    FN(write_row)(p, g, start, k, jbuf, dbuf);
                }
            }
            free(jbuf);
            free(dbuf);
        }
        st = err;
        if (st != GM_OK) gm_search_free_output(&p->out);
    }
    free(gkey);
    free(qord);
    free(gpos);
    free(gitem);
    free(cnt_s);
    free(start_s);
    free(qsrt);
    return st;
}

#undef FN
#undef T
#endif
