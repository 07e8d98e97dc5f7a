/* The neighbor searches of the C API: the argument checks of pyx/geomops/search.py and its
 * two-phase calls of the count / fill launchers of geomops/search.h and geomops/search_cuda.h,
 * behind the opaque geomops_search handle. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capi.h"
#include "geomops/search.h"
#if defined(GEOMOPS_CAPI_CUDA)
#include "geomops/search_cuda.h"
#endif

struct geomops_search {
    gm_ctx ctx;           /* where phase 1 ran: the fill runs there too */
    gm_search_plan* plan; /* NULL once filled */
    gm_grid* grid;        /* fixed radius: the grid the plan reads */
    void* owned[2];       /* default row splits the plan reads (context memory) */
    int64_t total;
    int distances; /* return_distances of phase 1 */
    int filled;
};

/* ---- shared checks ---------------------------------------------------------------------------- */

/* points / queries [n, 3] of the call's dtype, finite (search.py's _points). */
static geomops_status chk_points(const gm_ctx* c, const void* p, int64_t n, int dtype, const char* count_name,
                                 const char* name) {
    GM_TRY(gm_chk_count(n, count_name));
    if (gm_mul(n, 3) < 0) return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "%s is too large", count_name);
    GM_TRY(gm_chk_array(c, p, n * 3, name));
    char what[96];
    snprintf(what, sizeof what, "%s must be finite (no NaN or inf coordinates)", name);
    return gm_chk_finite(c, p, dtype, n * 3, GM_ANY, what);
}

/* Row splits of one point set: [batch_size + 1] ending with n, or NULL for one item. */
static geomops_status chk_batch(const gm_ctx* c, int64_t batch_size, const int64_t* rs, int64_t n,
                                const char* name, const char* total_name) {
    if (batch_size < 1)
        return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "args->batch_size must be >= 1, got %lld",
                       (long long)batch_size);
    if (!rs) {
        if (batch_size != 1)
            return gm_fail(
                GEOMOPS_ERROR_INVALID_ARGUMENT,
                "%s is NULL (one batch item), but args->batch_size is %lld: give both row splits for a "
                "batch",
                name, (long long)batch_size);
        return GEOMOPS_OK;
    }
    return gm_chk_row_splits(c, rs, batch_size, n, name, total_name);
}

/* The row splits [0, n] of a point set without batch items, in context memory. */
static const int64_t* default_splits(const gm_ctx* c, int64_t n, void** owned, geomops_status* st) {
    const int64_t host[2] = {0, n};
    void* p = gm_alloc(c, sizeof host, "the row splits", st);
    if (*st != GEOMOPS_OK) return NULL;
    *st = gm_from_host(c, p, host, sizeof host);
    if (*st != GEOMOPS_OK) {
        gm_free(c, p, sizeof host);
        return NULL;
    }
    *owned = p;
    return (const int64_t*)p;
}

static geomops_status chk_index_capacity(int64_t num_points, int is64) {
    if (!is64 && num_points - 1 > INT32_MAX)
        return gm_fail(
            GEOMOPS_ERROR_INVALID_ARGUMENT,
            "index_type GEOMOPS_INT32 cannot hold the indices of %lld points (max index 2147483647); use "
            "GEOMOPS_INT64",
            (long long)num_points);
    return GEOMOPS_OK;
}

/* What every search takes (search.py's _SearchArgs), validated. */
typedef struct search_common {
    int dtype, is64;
    int64_t np, nq, batch;
    const void *points, *queries;
    const int64_t *ps, *qs;
    int metric, ignore, distances;
} search_common;

static geomops_status chk_common_points(const gm_ctx* c, search_common* s, int dtype, int64_t np,
                                        const void* points, int64_t nq, const void* queries) {
    GM_TRY(gm_chk_float_type(dtype, "args->dtype", &s->dtype));
    GM_TRY(chk_points(c, points, np, s->dtype, "args->num_points", "points"));
    GM_TRY(chk_points(c, queries, nq, s->dtype, "args->num_queries", "queries"));
    s->np = np;
    s->nq = nq;
    s->points = points;
    s->queries = queries;
    return GEOMOPS_OK;
}

static geomops_status chk_common_rest(const gm_ctx* c, search_common* s, int64_t batch, const int64_t* ps,
                                      const int64_t* qs, int index_type, int metric, int ignore,
                                      int distances) {
    GM_TRY(chk_batch(c, batch, ps, s->np, "points_row_splits", "num_points"));
    GM_TRY(chk_batch(c, batch, qs, s->nq, "queries_row_splits", "num_queries"));
    GM_TRY(gm_chk_index_type(index_type, "args->index_type", &s->is64));
    GM_TRY(chk_index_capacity(s->np, s->is64));
    GM_TRY(gm_chk_enum(metric, 0, 2, "args->metric",
                       "GEOMOPS_METRIC_L1, GEOMOPS_METRIC_L2 or GEOMOPS_METRIC_LINF"));
    GM_TRY(gm_chk_flag(ignore, "args->ignore_query_point"));
    GM_TRY(gm_chk_flag(distances, "args->return_distances"));
    s->batch = batch;
    s->ps = ps;
    s->qs = qs;
    s->metric = metric;
    s->ignore = ignore;
    s->distances = distances;
    return GEOMOPS_OK;
}

/* ---- the handle ------------------------------------------------------------------------------- */

static void handle_release(geomops_search* h) {
    const gm_ctx* c = &h->ctx;
    if (h->plan) {
        if (c->cuda)
            (void)GM_CUDA_ONLY((gm_search_plan_free_cuda(h->plan), 0));
        else
            gm_search_plan_free(h->plan);
        h->plan = NULL;
    }
    if (h->grid) {
        if (c->cuda)
            (void)GM_CUDA_ONLY((gm_grid_free_cuda(h->grid), 0));
        else
            gm_grid_free(h->grid);
        h->grid = NULL;
    }
    if (h->owned[0] || h->owned[1]) {
        (void)gm_sync(c); /* queued work of the fill may still read them */
        gm_free(c, h->owned[0], 2 * sizeof(int64_t));
        gm_free(c, h->owned[1], 2 * sizeof(int64_t));
        h->owned[0] = h->owned[1] = NULL;
    }
}

static geomops_search* handle_new(const gm_ctx* c, const search_common* s, geomops_status* st) {
    geomops_search* h = (geomops_search*)gm_host_tmp(1, sizeof *h, "the search handle", st);
    if (!h) return NULL;
    memset(h, 0, sizeof *h);
    h->ctx = *c;
    h->ctx.prev_device = -1;
    h->distances = s->distances;
    return h;
}

/* Row splits for the kernels: the caller's, or [0, n] owned by the handle. */
static geomops_status kernel_splits(geomops_search* h, search_common* s) {
    geomops_status st = GEOMOPS_OK;
    if (!s->ps) s->ps = default_splits(&h->ctx, s->np, &h->owned[0], &st);
    if (st == GEOMOPS_OK && !s->qs) s->qs = default_splits(&h->ctx, s->nq, &h->owned[1], &st);
    return st;
}

/* Phase 1 done (or failed): hand the handle out, or free it. */
static geomops_status handle_finish(geomops_search* h, geomops_status st, geomops_search** out) {
    if (st != GEOMOPS_OK) {
        handle_release(h);
        gm_host_free(h);
        return st;
    }
    *out = h;
    return GEOMOPS_OK;
}

GEOMOPS_API geomops_status geomops_search_total(const geomops_search* search, int64_t* total) {
    gm_enter("geomops_search_total");
    if (!search) return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "search is NULL");
    if (!total) return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "total is NULL");
    *total = search->total;
    return GEOMOPS_OK;
}

GEOMOPS_API geomops_status geomops_search_fill(geomops_search* search, void* neighbors_index,
                                               void* neighbors_distance) {
    gm_enter("geomops_search_fill");
    if (!search) return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "search is NULL");
    if (search->filled)
        return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT,
                       "this search was already filled (a handle fills once)");
    gm_ctx c;
    GM_TRY(gm_begin_saved(&c, &search->ctx));
    geomops_status st = gm_chk_array(&c, neighbors_index, search->total, "neighbors_index");
    if (st == GEOMOPS_OK && search->distances)
        st = gm_chk_array(&c, neighbors_distance, search->total,
                          "neighbors_distance (return_distances was set)");
    if (st == GEOMOPS_OK) {
        int s = c.cuda ? GM_CUDA_ONLY(
                             gm_search_fill_cuda(search->plan, neighbors_index, neighbors_distance, c.stream))
                       : gm_search_fill_cpu(search->plan, neighbors_index, neighbors_distance);
        st = gm_kernel(s, "the search fill");
        search->filled = 1;
        if (c.cuda)
            (void)GM_CUDA_ONLY((gm_search_plan_free_cuda(search->plan), 0)); /* ordered after the fill */
        else
            gm_search_plan_free(search->plan);
        search->plan = NULL;
    }
    gm_end(&c);
    return st;
}

GEOMOPS_API geomops_status geomops_search_free(geomops_search* search) {
    gm_enter("geomops_search_free");
    if (!search) return GEOMOPS_OK;
    gm_ctx c;
    geomops_status st = gm_begin_saved(&c, &search->ctx);
    handle_release(search);
    gm_host_free(search);
    if (st == GEOMOPS_OK) gm_end(&c);
    return st;
}

/* ---- spatial hash table ----------------------------------------------------------------------- */

typedef struct table_call {
    int dtype;
    int64_t n, batch, total;
    const void* points;
    const int64_t* ps; /* may be NULL (one item) */
    double radius;
    int64_t* sizes_prefix; /* host [batch + 1]: prefix sums of the table sizes */
} table_call;

/* search.py's build_spatial_hash_table checks and table sizes; t->sizes_prefix: free it with
 * gm_host_free. */
static geomops_status table_prepare(const gm_ctx* c, const geomops_hash_table_args* in, table_call* t) {
    geomops_hash_table_args a = GEOMOPS_HASH_TABLE_ARGS_INIT;
    GM_TRY(GM_READ(&a, in, "args", geomops_hash_table_args));
    memset(t, 0, sizeof *t);
    GM_TRY(gm_chk_float_type(a.dtype, "args->dtype", &t->dtype));
    GM_TRY(chk_points(c, a.points, a.num_points, t->dtype, "args->num_points", "points"));
    GM_TRY(gm_chk_real(a.radius, "radius", 0, 1));
    GM_TRY(gm_chk_real(a.hash_table_size_factor, "hash_table_size_factor", 1, 0));
    GM_TRY(gm_chk_min(a.max_hash_table_size, 1, "max_hash_table_size"));
    GM_TRY(chk_batch(c, a.batch_size, a.points_row_splits, a.num_points, "points_row_splits", "num_points"));
    if (a.num_points > INT32_MAX)
        return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT,
                       "points: the hash table stores int32 indices and cannot hold %lld points",
                       (long long)a.num_points);
    t->n = a.num_points;
    t->batch = a.batch_size;
    t->points = a.points;
    t->ps = a.points_row_splits;
    t->radius = a.radius;
    geomops_status st = GEOMOPS_OK;
    int64_t* host = (int64_t*)gm_host_tmp(t->batch + 1, sizeof(int64_t), "the table sizes", &st);
    if (!host) return st;
    if (t->ps) {
        st = gm_to_host(c, host, t->ps, (size_t)(t->batch + 1) * sizeof(int64_t));
    } else {
        host[0] = 0;
        host[1] = t->n;
    }
    /* T_b = min(max(int(factor * n_b), 1), max_hash_table_size), prefix-summed in place */
    int64_t total = 0, prev = 0;
    for (int64_t b = 0; st == GEOMOPS_OK && b < t->batch; ++b) {
        const int64_t count = host[b + 1] - prev;
        prev = host[b + 1];
        const double v = a.hash_table_size_factor * (double)count;
        int64_t size = v >= (double)a.max_hash_table_size ? a.max_hash_table_size : (int64_t)v;
        if (size < 1) size = 1;
        host[b] = total;
        total += size;
        if (total > (int64_t)INT32_MAX - 1)
            st = gm_fail(
                GEOMOPS_ERROR_INVALID_ARGUMENT,
                "hash_table_size_factor / max_hash_table_size give more than %d cells in all, more than an "
                "int32 table can hold",
                INT32_MAX - 1);
    }
    if (st != GEOMOPS_OK) {
        gm_host_free(host);
        return st;
    }
    host[t->batch] = total;
    t->total = total;
    t->sizes_prefix = host;
    return GEOMOPS_OK;
}

GEOMOPS_API geomops_status geomops_spatial_hash_table_size(const geomops_exec* exec,
                                                           const geomops_hash_table_args* args,
                                                           int64_t* num_cells) {
    gm_enter("geomops_spatial_hash_table_size");
    if (!num_cells) return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "num_cells is NULL");
    gm_ctx c;
    GM_TRY(gm_begin(&c, exec));
    table_call t;
    geomops_status st = table_prepare(&c, args, &t);
    if (st == GEOMOPS_OK) {
        *num_cells = t.total;
        gm_host_free(t.sizes_prefix);
    }
    gm_end(&c);
    return st;
}

static void table_params(const gm_ctx* c, const table_call* t, const int64_t* ps, const int64_t* table_splits,
                         int32_t* index, int32_t* cells, gm_hash_table_params* p) {
    memset(p, 0, sizeof *p);
    p->dtype = t->dtype;
    p->points = gm_nz(c, t->points);
    p->num_points = t->n;
    p->points_row_splits = ps;
    p->batch_size = t->batch;
    p->radius = t->radius;
    p->table_splits = table_splits;
    p->index = index;
    p->cell_splits = cells;
    p->num_threads = c->num_threads;
}

GEOMOPS_API geomops_status geomops_build_spatial_hash_table(const geomops_exec* exec,
                                                            const geomops_hash_table_args* args,
                                                            int32_t* hash_table_index,
                                                            int32_t* hash_table_cell_splits,
                                                            int32_t* hash_table_splits) {
    gm_enter("geomops_build_spatial_hash_table");
    gm_ctx c;
    GM_TRY(gm_begin(&c, exec));
    table_call t;
    geomops_status st = table_prepare(&c, args, &t);
    if (st != GEOMOPS_OK) {
        gm_end(&c);
        return st;
    }
    st = gm_chk_array(&c, hash_table_index, t.n, "hash_table_index");
    if (st == GEOMOPS_OK)
        st = gm_chk_array(&c, hash_table_cell_splits, t.total + 1, "hash_table_cell_splits");
    if (st == GEOMOPS_OK) st = gm_chk_array(&c, hash_table_splits, t.batch + 1, "hash_table_splits");
    gm_arena ar;
    gm_arena_init(&ar, &c);
    const int64_t* ps = t.ps;
    int64_t* splits64 = NULL;
    int32_t* splits32 = NULL;
    if (st == GEOMOPS_OK && !ps) {
        int64_t* d = (int64_t*)gm_arena_alloc(&ar, 2, sizeof(int64_t), "the row splits", &st);
        const int64_t host[2] = {0, t.n};
        if (st == GEOMOPS_OK) st = gm_from_host(&c, d, host, sizeof host);
        ps = d;
    }
    if (st == GEOMOPS_OK)
        splits64 = (int64_t*)gm_arena_alloc(&ar, t.batch + 1, sizeof(int64_t), "the table splits", &st);
    if (st == GEOMOPS_OK)
        st = gm_from_host(&c, splits64, t.sizes_prefix, (size_t)(t.batch + 1) * sizeof(int64_t));
    if (st == GEOMOPS_OK)
        splits32 = (int32_t*)gm_host_tmp(t.batch + 1, sizeof(int32_t), "the table splits", &st);
    if (st == GEOMOPS_OK) {
        gm_hash_table_params p;
        table_params(&c, &t, ps, splits64, (int32_t*)gm_nz(&c, hash_table_index), hash_table_cell_splits, &p);
        int s = c.cuda ? GM_CUDA_ONLY(gm_build_spatial_hash_table_cuda(&p, t.total, c.stream))
                       : gm_build_spatial_hash_table_cpu(&p);
        st = gm_kernel(s, "the hash table build");
    }
    if (st == GEOMOPS_OK) {
        for (int64_t b = 0; b <= t.batch; ++b) splits32[b] = (int32_t)t.sizes_prefix[b];
        st = gm_from_host(&c, hash_table_splits, splits32, (size_t)(t.batch + 1) * sizeof(int32_t));
    }
    gm_host_free(splits32);
    gm_host_free(t.sizes_prefix);
    st = gm_arena_free(&ar, st);
    gm_end(&c);
    return st;
}

/* ---- fixed-radius search ---------------------------------------------------------------------- */

static int32_t first_i32(const gm_array_stats* s) {
    int32_t v;
    memcpy(&v, &s->first, sizeof v);
    return v;
}

static int32_t last_i32(const gm_array_stats* s) {
    int32_t v;
    memcpy(&v, &s->last, sizeof v);
    return v;
}

/* A user's table must be the table of these points for this radius (search.py's
 * _table_arrays + the verify kernel). */
static geomops_status chk_table(const gm_ctx* c, const geomops_fixed_radius_args* a, const search_common* s,
                                const int64_t* ps) {
    if (!a->hash_table_index && !a->hash_table_cell_splits && !a->hash_table_splits) return GEOMOPS_OK;
    /* the index may be NULL for an empty point set; the two split arrays are never empty */
    if (!a->hash_table_cell_splits || !a->hash_table_splits)
        return gm_fail(
            GEOMOPS_ERROR_INVALID_ARGUMENT,
            "hash_table_index, hash_table_cell_splits and hash_table_splits must be given together (the "
            "three arrays of geomops_build_spatial_hash_table) or all be NULL");
    GM_TRY(gm_chk_count(a->hash_table_num_cells, "args->hash_table_num_cells"));
    GM_TRY(gm_chk_array(c, a->hash_table_index, s->np, "hash_table_index"));
    GM_TRY(gm_chk_array(c, a->hash_table_cell_splits, a->hash_table_num_cells + 1, "hash_table_cell_splits"));
    GM_TRY(gm_chk_array(c, a->hash_table_splits, s->batch + 1, "hash_table_splits"));
    if (s->np > 0) {
        gm_array_stats st;
        GM_TRY(gm_stats(c, a->hash_table_index, GM_DT_INT32, s->np, &st));
        if (st.imin < 0 || st.imax >= s->np)
            return gm_fail(
                GEOMOPS_ERROR_INVALID_ARGUMENT,
                "hash_table_index contains %lld, outside the valid range [0, %lld) of the point set it "
                "indexes",
                (long long)(st.imin < 0 ? st.imin : st.imax), (long long)s->np);
    }
    gm_array_stats sp, cs;
    GM_TRY(gm_stats(c, a->hash_table_splits, GM_DT_INT32, s->batch + 1, &sp));
    if (first_i32(&sp) != 0 || sp.nonincreasing > 0 || last_i32(&sp) != a->hash_table_num_cells)
        return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT,
                       "hash_table_splits must start at 0, grow by >= 1 per batch item and end at "
                       "hash_table_num_cells = %lld",
                       (long long)a->hash_table_num_cells);
    GM_TRY(gm_stats(c, a->hash_table_cell_splits, GM_DT_INT32, a->hash_table_num_cells + 1, &cs));
    if (first_i32(&cs) != 0 || cs.decreasing > 0 || last_i32(&cs) != s->np)
        return gm_fail(
            GEOMOPS_ERROR_INVALID_ARGUMENT,
            "hash_table_cell_splits must start at 0, be non-decreasing and end at num_points = %lld",
            (long long)s->np);

    /* the verify kernel takes int64 table splits */
    gm_arena ar;
    gm_arena_init(&ar, c);
    geomops_status st = GEOMOPS_OK;
    int32_t* host32 = (int32_t*)gm_host_tmp(s->batch + 1, sizeof(int32_t), "the table splits", &st);
    int64_t* host64 = NULL;
    if (st == GEOMOPS_OK)
        host64 = (int64_t*)gm_host_tmp(s->batch + 1, sizeof(int64_t), "the table splits", &st);
    if (st == GEOMOPS_OK)
        st = gm_to_host(c, host32, a->hash_table_splits, (size_t)(s->batch + 1) * sizeof(int32_t));
    int64_t* splits64 = NULL;
    if (st == GEOMOPS_OK) {
        for (int64_t b = 0; b <= s->batch; ++b) host64[b] = host32[b];
        splits64 = (int64_t*)gm_arena_alloc(&ar, s->batch + 1, sizeof(int64_t), "the table splits", &st);
    }
    if (st == GEOMOPS_OK) st = gm_from_host(c, splits64, host64, (size_t)(s->batch + 1) * sizeof(int64_t));
    int valid = 0;
    if (st == GEOMOPS_OK) {
        gm_hash_table_params p;
        memset(&p, 0, sizeof p);
        p.dtype = s->dtype;
        p.points = gm_nz(c, s->points);
        p.num_points = s->np;
        p.points_row_splits = ps;
        p.batch_size = s->batch;
        p.radius = a->radius;
        p.table_splits = splits64;
        p.index = (int32_t*)gm_nz(c, a->hash_table_index);
        p.cell_splits = (int32_t*)a->hash_table_cell_splits;
        p.num_threads = c->num_threads;
        int k = c->cuda ? GM_CUDA_ONLY(gm_verify_spatial_hash_table_cuda(&p, a->hash_table_num_cells, &valid,
                                                                         c->stream))
                        : gm_verify_spatial_hash_table_cpu(&p, &valid);
        st = gm_kernel(k, "the hash table check");
    }
    if (st == GEOMOPS_OK && !valid)
        st = gm_fail(
            GEOMOPS_ERROR_INVALID_ARGUMENT,
            "the hash table is not the spatial hash table of these points for radius=%g: it was built for "
            "another radius, point set or row splits",
            a->radius);
    gm_host_free(host32);
    gm_host_free(host64);
    return gm_arena_free(&ar, st);
}

GEOMOPS_API geomops_status geomops_fixed_radius_search(const geomops_exec* exec,
                                                       const geomops_fixed_radius_args* args,
                                                       int64_t* neighbors_row_splits,
                                                       geomops_search** search) {
    gm_enter("geomops_fixed_radius_search");
    if (!search) return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "search is NULL");
    *search = NULL;
    gm_ctx c;
    GM_TRY(gm_begin(&c, exec));
    geomops_fixed_radius_args a = GEOMOPS_FIXED_RADIUS_ARGS_INIT;
    search_common s;
    memset(&s, 0, sizeof s);
    geomops_status st = GM_READ(&a, args, "args", geomops_fixed_radius_args);
    if (st == GEOMOPS_OK)
        st = chk_common_points(&c, &s, a.dtype, a.num_points, a.points, a.num_queries, a.queries);
    if (st == GEOMOPS_OK) st = gm_chk_real(a.radius, "radius", 0, 1);
    if (st == GEOMOPS_OK)
        st = chk_common_rest(&c, &s, a.batch_size, a.points_row_splits, a.queries_row_splits, a.index_type,
                             a.metric, a.ignore_query_point, a.return_distances);
    if (st == GEOMOPS_OK) st = gm_chk_flag(a.sort, "args->sort");
    if (st == GEOMOPS_OK) st = gm_chk_array(&c, neighbors_row_splits, s.nq + 1, "neighbors_row_splits");
    geomops_search* h = st == GEOMOPS_OK ? handle_new(&c, &s, &st) : NULL;
    if (st == GEOMOPS_OK) st = kernel_splits(h, &s);
    if (st == GEOMOPS_OK) st = chk_table(&c, &a, &s, s.ps);
    if (st == GEOMOPS_OK) {
        gm_grid_params gp;
        memset(&gp, 0, sizeof gp);
        gp.dtype = s.dtype;
        gp.points = gm_nz(&c, s.points);
        gp.num_points = s.np;
        gp.points_row_splits = s.ps;
        gp.batch_size = s.batch;
        gp.radius = a.radius;
        gp.num_threads = c.num_threads;
        int k = c.cuda ? GM_CUDA_ONLY(gm_grid_build_cuda(&gp, &h->grid, c.stream))
                       : gm_grid_build_cpu(&gp, &h->grid);
        st = gm_kernel(k, "the search grid");
    }
    if (st == GEOMOPS_OK) {
        gm_fixed_radius_params p;
        memset(&p, 0, sizeof p);
        p.grid = h->grid;
        p.queries = gm_nz(&c, s.queries);
        p.num_queries = s.nq;
        p.queries_row_splits = s.qs;
        p.metric = s.metric;
        p.ignore_query_point = s.ignore;
        p.return_distances = s.distances;
        p.sort = a.sort;
        p.index_is64 = s.is64;
        p.num_threads = c.num_threads;
        int k = c.cuda ? GM_CUDA_ONLY(gm_fixed_radius_search_count_cuda(&p, neighbors_row_splits, &h->total,
                                                                        &h->plan, c.stream))
                       : gm_fixed_radius_search_count_cpu(&p, neighbors_row_splits, &h->total, &h->plan);
        st = gm_kernel(k, "the fixed-radius search");
    }
    if (h) st = handle_finish(h, st, search);
    gm_end(&c);
    return st;
}

/* ---- radius and kNN search (k-d tree) ---------------------------------------------------------- */

static void tree_params(const gm_ctx* c, const search_common* s, gm_tree_search_params* p) {
    memset(p, 0, sizeof *p);
    p->dtype = s->dtype;
    p->points = gm_nz(c, s->points);
    p->num_points = s->np;
    p->points_row_splits = s->ps;
    p->queries = gm_nz(c, s->queries);
    p->num_queries = s->nq;
    p->queries_row_splits = s->qs;
    p->batch_size = s->batch;
    p->metric = s->metric;
    p->ignore_query_point = s->ignore;
    p->return_distances = s->distances;
    p->index_is64 = s->is64;
    p->num_threads = c->num_threads;
}

GEOMOPS_API geomops_status geomops_radius_search(const geomops_exec* exec,
                                                 const geomops_radius_search_args* args,
                                                 int64_t* neighbors_row_splits, geomops_search** search) {
    gm_enter("geomops_radius_search");
    if (!search) return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "search is NULL");
    *search = NULL;
    gm_ctx c;
    GM_TRY(gm_begin(&c, exec));
    geomops_radius_search_args a = GEOMOPS_RADIUS_SEARCH_ARGS_INIT;
    search_common s;
    memset(&s, 0, sizeof s);
    geomops_status st = GM_READ(&a, args, "args", geomops_radius_search_args);
    if (st == GEOMOPS_OK)
        st = chk_common_points(&c, &s, a.dtype, a.num_points, a.points, a.num_queries, a.queries);
    if (st == GEOMOPS_OK) st = gm_chk_array(&c, a.radii, s.nq, "radii");
    if (st == GEOMOPS_OK)
        st = gm_chk_finite(&c, a.radii, s.dtype, s.nq, GM_NONNEGATIVE,
                           "radii must be finite and >= 0 (found a negative, NaN or inf radius)");
    if (st == GEOMOPS_OK)
        st = chk_common_rest(&c, &s, a.batch_size, a.points_row_splits, a.queries_row_splits, a.index_type,
                             a.metric, a.ignore_query_point, a.return_distances);
    if (st == GEOMOPS_OK) st = gm_chk_flag(a.normalize_distances, "args->normalize_distances");
    if (st == GEOMOPS_OK) st = gm_chk_flag(a.sort, "args->sort");
    if (st == GEOMOPS_OK) st = gm_chk_array(&c, neighbors_row_splits, s.nq + 1, "neighbors_row_splits");
    geomops_search* h = st == GEOMOPS_OK ? handle_new(&c, &s, &st) : NULL;
    if (st == GEOMOPS_OK) st = kernel_splits(h, &s);
    if (st == GEOMOPS_OK) {
        gm_tree_search_params p;
        tree_params(&c, &s, &p);
        p.radii = c.cuda ? a.radii : gm_nz(&c, a.radii);
        p.normalize_distances = a.normalize_distances;
        p.sort = a.sort;
        int k = c.cuda ? GM_CUDA_ONLY(gm_radius_search_count_cuda(&p, neighbors_row_splits, &h->total,
                                                                  &h->plan, c.stream))
                       : gm_radius_search_count_cpu(&p, neighbors_row_splits, &h->total, &h->plan);
        st = gm_kernel(k, "the radius search");
    }
    if (h) st = handle_finish(h, st, search);
    gm_end(&c);
    return st;
}

GEOMOPS_API geomops_status geomops_knn_search(const geomops_exec* exec, const geomops_knn_search_args* args,
                                              int64_t* neighbors_row_splits, geomops_search** search) {
    gm_enter("geomops_knn_search");
    if (!search) return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "search is NULL");
    *search = NULL;
    gm_ctx c;
    GM_TRY(gm_begin(&c, exec));
    geomops_knn_search_args a = GEOMOPS_KNN_SEARCH_ARGS_INIT;
    search_common s;
    memset(&s, 0, sizeof s);
    geomops_status st = GM_READ(&a, args, "args", geomops_knn_search_args);
    if (st == GEOMOPS_OK)
        st = chk_common_points(&c, &s, a.dtype, a.num_points, a.points, a.num_queries, a.queries);
    if (st == GEOMOPS_OK && a.k < 1)
        st = gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "k must be greater than zero, got %lld", (long long)a.k);
    if (st == GEOMOPS_OK)
        st = chk_common_rest(&c, &s, a.batch_size, a.points_row_splits, a.queries_row_splits, a.index_type,
                             a.metric, a.ignore_query_point, a.return_distances);
    if (st == GEOMOPS_OK) st = gm_chk_array(&c, neighbors_row_splits, s.nq + 1, "neighbors_row_splits");
    geomops_search* h = st == GEOMOPS_OK ? handle_new(&c, &s, &st) : NULL;
    if (st == GEOMOPS_OK) st = kernel_splits(h, &s);
    if (st == GEOMOPS_OK) {
        gm_tree_search_params p;
        tree_params(&c, &s, &p);
        p.k = a.k;
        int k = c.cuda ? GM_CUDA_ONLY(gm_knn_search_count_cuda(&p, neighbors_row_splits, &h->total, &h->plan,
                                                               c.stream))
                       : gm_knn_search_count_cpu(&p, neighbors_row_splits, &h->total, &h->plan);
        st = gm_kernel(k, "the kNN search");
    }
    if (h) st = handle_finish(h, st, search);
    gm_end(&c);
    return st;
}
