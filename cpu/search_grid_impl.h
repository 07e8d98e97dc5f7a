/* Float/double body of cpu/search_grid.c (compiled per type by geomops/twin.h). */

static int GM_TFN(grid_build)(const gm_grid_params* p, gm_grid* g) {
    const GM_T* pts = (const GM_T*)p->points;
    const int64_t n = p->num_points, nb = p->batch_size;
    const int nt = gm_threads(p->num_threads);
    const double r = (double)(GM_T)p->radius;
    g->dtype = GM_TDTYPE;
    g->n = n;
    g->batch_size = nb;
    g->radius = p->radius;
    g->pts_splits = (int64_t*)gm_host_alloc(nb + 1, sizeof(int64_t));
    g->origin = (double*)gm_host_calloc(3 * nb, sizeof(double));
    g->inv_cs = (double*)gm_host_calloc(nb, sizeof(double));
    g->dims = (int64_t*)gm_host_calloc(3 * nb, sizeof(int64_t));
    g->item_cells = (int64_t*)gm_host_calloc(nb + 1, sizeof(int64_t));
    g->x = gm_host_alloc(n, sizeof(GM_T));
    g->y = gm_host_alloc(n, sizeof(GM_T));
    g->z = gm_host_alloc(n, sizeof(GM_T));
    g->idx = (int64_t*)gm_host_alloc(n, sizeof(int64_t));
    uint64_t* keys = (uint64_t*)gm_host_alloc(n, sizeof(uint64_t));
    if (!g->pts_splits || !g->origin || !g->inv_cs || !g->dims || !g->item_cells || !g->x || !g->y || !g->z ||
        !g->idx || !keys) {
        gm_host_free(keys);
        return GM_ERR_NOMEM;
    }
    memcpy(g->pts_splits, p->points_row_splits, (size_t)(nb + 1) * sizeof(int64_t));
    int64_t* vals = g->idx;
    int st = GM_OK;
    for (int64_t b = 0; b < nb && st == GM_OK; ++b) {
        if (gm_interrupt_poll()) {
            st = GM_ERR_INTERRUPTED;
            break;
        }
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
        const double mn[3] = {mnx, mny, mnz}, mx[3] = {mxx, mxy, mxz};
        double cell;
        gm_search_grid_geometry(mn, mx, r, o, &cell, &g->inv_cs[b], dims);
        const double inv = g->inv_cs[b];
#pragma omp parallel for schedule(static) num_threads(nt) if (hi - lo > 16384)
        for (int64_t i = lo; i < hi; ++i) {
            const int64_t cx = gm_search_grid_coord(pts[3 * i], o[0], inv, 0, dims[0] - 1);
            const int64_t cy = gm_search_grid_coord(pts[3 * i + 1], o[1], inv, 0, dims[1] - 1);
            const int64_t cz = gm_search_grid_coord(pts[3 * i + 2], o[2], inv, 0, dims[2] - 1);
            keys[i] = gm_search_grid_key(cx, cy, cz, dims);
            vals[i] = i;
        }
        st = gm_search_radix_sort(keys + lo, vals + lo, hi - lo,
                                  gm_search_grid_key(dims[0] - 1, dims[1] - 1, dims[2] - 1, dims), nt);
    }
    if (st != GM_OK) {
        gm_host_free(keys);
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
    g->ckey = (uint64_t*)gm_host_alloc(ncells, sizeof(uint64_t));
    g->cstart = (int64_t*)gm_host_alloc(ncells + 1, sizeof(int64_t));
    if (!g->ckey || !g->cstart) {
        gm_host_free(keys);
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
    gm_host_free(keys);
    /* dense cell tables for compact items */
    g->dense_off = (int64_t*)gm_host_alloc(nb, sizeof(int64_t));
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
    g->dense = (int64_t*)gm_host_alloc(dense_total, sizeof(int64_t));
    if (!g->dense) return GM_ERR_NOMEM;
    for (int64_t b = 0; b < nb; ++b) {
        if (g->dense_off[b] < 0) continue;
        if (gm_interrupt_poll()) return GM_ERR_INTERRUPTED;
        const int64_t* dims = g->dims + 3 * b;
        int64_t* d = g->dense + g->dense_off[b];
        const int64_t ncell = dims[0] * dims[1] * dims[2];
        int64_t c = g->item_cells[b];
        const int64_t cend = g->item_cells[b + 1];
        for (int64_t lin = 0; lin < ncell; ++lin) {
            const int64_t x = lin % dims[0], y = (lin / dims[0]) % dims[1], z = lin / (dims[0] * dims[1]);
            const uint64_t key = gm_search_grid_key(x, y, z, dims);
            while (c < cend && g->ckey[c] < key) ++c;
            d[lin] = c < cend ? g->cstart[c] : p->points_row_splits[b + 1];
        }
        d[ncell] = p->points_row_splits[b + 1];
    }
    GM_T *x = (GM_T*)g->x, *y = (GM_T*)g->y, *z = (GM_T*)g->z;
#pragma omp parallel for schedule(static) num_threads(nt) if (n > 16384)
    for (int64_t j = 0; j < n; ++j) {
        const int64_t i = vals[j];
        x[j] = pts[3 * i];
        y[j] = pts[3 * i + 1];
        z[j] = pts[3 * i + 2];
    }
    return GM_OK;
}

static int GM_TFN(grid_matches)(const gm_grid* g, const void* points) {
    const GM_T *pts = (const GM_T*)points, *x = (const GM_T*)g->x, *y = (const GM_T*)g->y,
               *z = (const GM_T*)g->z;
    /* bitwise comparison: -0.0 and 0.0 would search alike, but a copy is what was stored */
    for (int64_t j = 0; j < g->n; ++j) {
        const int64_t i = g->idx[j];
        if (memcmp(&pts[3 * i], &x[j], sizeof(GM_T)) || memcmp(&pts[3 * i + 1], &y[j], sizeof(GM_T)) ||
            memcmp(&pts[3 * i + 2], &z[j], sizeof(GM_T)))
            return 0;
    }
    return 1;
}

/* The scans of one query over its runs, per metric and ignore flag: both are compile-time
 * constants at every call site (always_inline), so each loop is specialised. */
GM_ALWAYS_INLINE int64_t GM_TFN(frs_count_runs)(const GM_T* restrict x, const GM_T* restrict y,
                                                const GM_T* restrict z, const int64_t* runs, int nr, GM_T qx,
                                                GM_T qy, GM_T qz, GM_T thr, const int metric,
                                                const int ignore) {
    int64_t total = 0;
    for (int r = 0; r < nr; ++r) {
        for (int64_t s = runs[2 * r]; s < runs[2 * r + 1]; s += (1 << 30)) {
            const int64_t e = runs[2 * r + 1] - s > (1 << 30) ? s + (1 << 30) : runs[2 * r + 1];
            int c = 0;
            for (int64_t j = s; j < e; ++j) {
                const GM_T dx = x[j] - qx, dy = y[j] - qy, dz = z[j] - qz;
                int ok = GM_TFN(gm_search_dist)(dx, dy, dz, metric) <= thr;
                if (ignore) ok &= !((dx == 0) & (dy == 0) & (dz == 0));
                c += ok;
            }
            total += c;
        }
    }
    return total;
}

GM_ALWAYS_INLINE int64_t GM_TFN(frs_collect_runs)(const GM_T* restrict x, const GM_T* restrict y,
                                                  const GM_T* restrict z, const int64_t* runs, int nr,
                                                  GM_T qx, GM_T qy, GM_T qz, GM_T thr, int64_t* restrict jbuf,
                                                  GM_T* restrict dbuf, const int metric, const int ignore) {
    int64_t k = 0;
    for (int r = 0; r < nr; ++r) {
        const int64_t e = runs[2 * r + 1];
        for (int64_t j = runs[2 * r]; j < e; ++j) {
            const GM_T dx = x[j] - qx, dy = y[j] - qy, dz = z[j] - qz;
            const GM_T d = GM_TFN(gm_search_dist)(dx, dy, dz, metric);
            int ok = d <= thr;
            if (ignore) ok &= !((dx == 0) & (dy == 0) & (dz == 0));
            jbuf[k] = j;
            dbuf[k] = d;
            k += ok;
        }
    }
    return k;
}

#define GM_ISA_BODY "search_grid_hot.h"
#include "isa_variants.h"

typedef int64_t (*GM_TFN(frs_count_fn))(const GM_T* x, const GM_T* y, const GM_T* z, const int64_t* runs,
                                        int nr, GM_T qx, GM_T qy, GM_T qz, GM_T thr, int metric, int ignore);
typedef int64_t (*GM_TFN(frs_collect_fn))(const GM_T* x, const GM_T* y, const GM_T* z, const int64_t* runs,
                                          int nr, GM_T qx, GM_T qy, GM_T qz, GM_T thr, int64_t* jbuf,
                                          GM_T* dbuf, int metric, int ignore);

/* What the count phase keeps for the fill. Queries are grouped by cell: the sorted positions
 * [gpos[g], next group's start or its item's end) share the key gkey[g]. */
typedef struct {
    gm_search_plan base;
    gm_fixed_radius_params p; /* a copy; the arrays it points to belong to the caller */
    int64_t ngroups;
    uint64_t* gkey;           /* [ngroups] */
    int64_t *gpos, *gitem;    /* [ngroups] first sorted position, batch item */
    int64_t* qord;            /* [nq] query at each sorted position */
    int64_t *cnt_s, *start_s; /* [nq] per sorted position: count and first output entry */
    GM_T* qsrt;               /* [3 nq] queries in sorted order */
} GM_TFN(frs_plan);

static void GM_TFN(frs_destroy)(gm_search_plan* base) {
    GM_TFN(frs_plan)* pl = (GM_TFN(frs_plan)*)base;
    gm_host_free(pl->gkey);
    gm_host_free(pl->gpos);
    gm_host_free(pl->gitem);
    gm_host_free(pl->qord);
    gm_host_free(pl->cnt_s);
    gm_host_free(pl->start_s);
    gm_host_free(pl->qsrt);
    gm_host_free(pl);
}

/* End of group gi's sorted positions. */
GM_ALWAYS_INLINE int64_t GM_TFN(frs_group_end)(const GM_TFN(frs_plan) * pl, int64_t gi) {
    const int64_t b = pl->gitem[gi];
    return (gi + 1 < pl->ngroups && pl->gitem[gi + 1] == b) ? pl->gpos[gi + 1]
                                                            : pl->p.queries_row_splits[b + 1];
}

static void GM_TFN(write_row)(const gm_fixed_radius_params* p, const gm_grid* g, void* index, GM_T* distance,
                              int64_t pos, int64_t k, int64_t* jbuf, GM_T* dbuf) {
    for (int64_t t = 0; t < k; ++t) jbuf[t] = g->idx[jbuf[t]];
    if (p->sort) GM_TFN(gm_search_sort_pairs)(jbuf, distance ? dbuf : NULL, k);
    if (p->index_is64)
        memcpy((int64_t*)index + pos, jbuf, (size_t)k * sizeof(int64_t));
    else {
        int32_t* o = (int32_t*)index + pos;
        for (int64_t t = 0; t < k; ++t) o[t] = (int32_t)jbuf[t];
    }
    if (distance) memcpy(distance + pos, dbuf, (size_t)k * sizeof(GM_T));
}

static int GM_TFN(frs_fill)(gm_search_plan* base, void* index, void* distance) {
    const GM_TFN(frs_plan)* pl = (const GM_TFN(frs_plan)*)base;
    const gm_fixed_radius_params* p = &pl->p;
    const gm_grid* g = p->grid;
    const int64_t nq = p->num_queries, ngroups = pl->ngroups;
    const int nt = gm_threads(p->num_threads);
    const int metric = p->metric, ignore = p->ignore_query_point;
    const GM_T thr = GM_TFN(gm_search_threshold)((GM_T)g->radius, metric);
    const GM_T* qsrt = pl->qsrt;
    const GM_TFN(frs_collect_fn) collect = GM_ISA_PICK(GM_TFN(frs_collect));
    atomic_int err = GM_OK;
    gm_stop stop = 0;
#pragma omp parallel num_threads(nt) if (nq > 1024)
    {
        int64_t cap = 0, *jbuf = NULL;
        GM_T* dbuf = NULL;
#pragma omp for schedule(dynamic, 4)
        for (int64_t gi = 0; gi < ngroups; ++gi) {
            if (gm_search_failed(&err) || gm_stopped(&stop)) continue;
            const int64_t b = pl->gitem[gi], s = pl->gpos[gi], e = GM_TFN(frs_group_end)(pl, gi);
            int64_t cx, cy, cz, runs[18];
            gm_search_grid_decode(pl->gkey[gi], g->dims + 3 * b, &cx, &cy, &cz);
            const int nr = grid_runs(g, b, cx, cy, cz, runs);
            if (nr == 0) continue;
            int64_t need = 1;
            for (int r = 0; r < nr; ++r) need += runs[2 * r + 1] - runs[2 * r];
            if (need > cap) {
                gm_host_free(jbuf);
                gm_host_free(dbuf);
                cap = need + need / 2;
                jbuf = (int64_t*)gm_host_alloc(cap, sizeof(int64_t));
                dbuf = (GM_T*)gm_host_alloc(cap, sizeof(GM_T));
                if (!jbuf || !dbuf) {
                    cap = 0;
                    gm_search_fail(&err, GM_ERR_NOMEM);
                    continue;
                }
            }
            for (int64_t t = s; t < e; ++t) {
                const int64_t start = pl->start_s[t], cnt = pl->cnt_s[t];
                if (cnt == 0) continue;
                const int64_t k =
                    collect((const GM_T*)g->x, (const GM_T*)g->y, (const GM_T*)g->z, runs, nr, qsrt[3 * t],
                            qsrt[3 * t + 1], qsrt[3 * t + 2], thr, jbuf, dbuf, metric, ignore);
                if (k != cnt) { /* the two phases must agree; never expected */
                    gm_search_fail(&err, GM_ERR_INVALID);
                    continue;
                }
                GM_TFN(write_row)(p, g, index, (GM_T*)distance, start, k, jbuf, dbuf);
            }
        }
        gm_host_free(jbuf);
        gm_host_free(dbuf);
    }
    return gm_stop_status(&stop, gm_search_failed(&err));
}

static int GM_TFN(frs_count_phase)(const gm_fixed_radius_params* p, int64_t* rs, int64_t* total,
                                   gm_search_plan** out) {
    const gm_grid* g = p->grid;
    const GM_T* qs = (const GM_T*)p->queries;
    const int64_t nq = p->num_queries, nb = g->batch_size;
    const int nt = gm_threads(p->num_threads);
    const int metric = p->metric, ignore = p->ignore_query_point;
    const GM_T thr = GM_TFN(gm_search_threshold)((GM_T)g->radius, metric);
    memset(rs, 0, (size_t)(nq + 1) * sizeof(int64_t));
    GM_TFN(frs_plan)* pl = (GM_TFN(frs_plan)*)gm_host_calloc(1, sizeof(GM_TFN(frs_plan)));
    if (!pl) return GM_ERR_NOMEM;
    pl->base.fill = GM_TFN(frs_fill);
    pl->base.destroy = GM_TFN(frs_destroy);
    pl->base.want_distances = p->return_distances;
    pl->p = *p;
    if (nq == 0 || g->n == 0) {
        *out = &pl->base;
        return GM_OK;
    }

    /* group the queries by cell: sort (cell key, query index) per batch item */
    uint64_t* qkey = (uint64_t*)gm_host_alloc(nq, sizeof(uint64_t));
    int64_t* qord = pl->qord = (int64_t*)gm_host_alloc(nq, sizeof(int64_t));
    int64_t* gpos = pl->gpos = (int64_t*)gm_host_alloc(nq + 1, sizeof(int64_t));
    int64_t* gitem = pl->gitem = (int64_t*)gm_host_alloc(nq + 1, sizeof(int64_t));
    int64_t* cnt_s = pl->cnt_s = (int64_t*)gm_host_alloc(nq, sizeof(int64_t));
    int64_t* start_s = pl->start_s = (int64_t*)gm_host_alloc(nq, sizeof(int64_t));
    GM_T* qsrt = pl->qsrt = (GM_T*)gm_host_alloc(3 * nq, sizeof(GM_T));
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
            const int64_t cx = gm_search_grid_coord(qs[3 * i], o[0], inv, -2, dims[0] + 1);
            const int64_t cy = gm_search_grid_coord(qs[3 * i + 1], o[1], inv, -2, dims[1] + 1);
            const int64_t cz = gm_search_grid_coord(qs[3 * i + 2], o[2], inv, -2, dims[2] + 1);
            qkey[i] = gm_search_grid_key(cx, cy, cz, dims);
            qord[i] = i;
        }
        st = gm_search_radix_sort(qkey + lo, qord + lo, hi - lo,
                                  gm_search_grid_key(dims[0] + 1, dims[1] + 1, dims[2] + 1, dims), nt);
        for (int64_t i = lo; i < hi && st == GM_OK; ++i)
            if (i == lo || qkey[i] != qkey[i - 1]) {
                gpos[ngroups] = i;
                gitem[ngroups] = b;
                ++ngroups;
            }
    }
    pl->ngroups = ngroups;
    /* keep one key per group; the per-query keys and the unused group slots go before the
     * caller allocates the output (peak memory) */
    if (st == GM_OK) {
        pl->gkey = (uint64_t*)gm_host_alloc(ngroups, sizeof(uint64_t));
        if (!pl->gkey)
            st = GM_ERR_NOMEM;
        else
            for (int64_t gi = 0; gi < ngroups; ++gi) pl->gkey[gi] = qkey[gpos[gi]];
    }
    gm_host_free(qkey);
    if (st == GM_OK && ngroups > 0) {
        int64_t* np_ = (int64_t*)gm_host_realloc(gpos, ngroups, sizeof(int64_t));
        int64_t* ni_ = (int64_t*)gm_host_realloc(gitem, ngroups, sizeof(int64_t));
        if (np_) pl->gpos = np_;
        if (ni_) pl->gitem = ni_;
        if (!np_ || !ni_) gm_host_nomem_take(); /* a failed shrink keeps the larger block: no error */
    }
    if (st != GM_OK) {
        GM_TFN(frs_destroy)(&pl->base);
        return st;
    }
    /* Sorted positions outside every group (items without points) keep count 0. Gathering the
     * query coordinates once, in a loop of independent loads, is much cheaper than a cache miss
     * inside each distance scan. */
#pragma omp parallel for schedule(static) num_threads(nt) if (nq > 16384)
    for (int64_t t = 0; t < nq; ++t) {
        const int64_t q = qord[t];
        qsrt[3 * t] = qs[3 * q];
        qsrt[3 * t + 1] = qs[3 * q + 1];
        qsrt[3 * t + 2] = qs[3 * q + 2];
        cnt_s[t] = 0;
    }
    const GM_TFN(frs_count_fn) count = GM_ISA_PICK(GM_TFN(frs_count));
    gm_stop stop = 0;
#pragma omp parallel for schedule(dynamic, 4) num_threads(nt) if (nq > 1024)
    for (int64_t gi = 0; gi < ngroups; ++gi) {
        if (gm_stopped(&stop)) continue;
        const int64_t b = pl->gitem[gi], s = pl->gpos[gi], e = GM_TFN(frs_group_end)(pl, gi);
        int64_t cx, cy, cz, runs[18];
        gm_search_grid_decode(pl->gkey[gi], g->dims + 3 * b, &cx, &cy, &cz);
        const int nr = grid_runs(g, b, cx, cy, cz, runs);
        if (nr == 0) continue;
        for (int64_t t = s; t < e; ++t)
            cnt_s[t] = count((const GM_T*)g->x, (const GM_T*)g->y, (const GM_T*)g->z, runs, nr, qsrt[3 * t],
                             qsrt[3 * t + 1], qsrt[3 * t + 2], thr, metric, ignore);
    }
    if (atomic_load(&stop)) {
        GM_TFN(frs_destroy)(&pl->base);
        return GM_ERR_INTERRUPTED;
    }
    for (int64_t t = 0; t < nq; ++t) rs[qord[t] + 1] = cnt_s[t];
    const int64_t n = gm_search_prefix_sum(rs, nq);
    if (n < 0) {
        GM_TFN(frs_destroy)(&pl->base);
        return GM_ERR_OVERFLOW;
    }
    for (int64_t t = 0; t < nq; ++t) start_s[t] = rs[qord[t]];
    pl->base.total = *total = n;
    *out = &pl->base;
    return GM_OK;
}
