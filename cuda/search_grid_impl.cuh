// Float/double body of cuda/search_grid.cu (compiled per type by geomops/twin.h): the scans of
// the 3x3x3 cells around a query, shared by fixed_radius_search (inclusive test, the grid's
// radius) and radius_search (strict test, the query's radius).

struct GM_TFN(block_args) {
    gm_grid_view g;
    const GM_T* queries;
    const int64_t* qsplits;
    const int64_t* qord;
    int64_t nq;
    const GM_T* radii;  // radius search: per query; NULL: `radius` for every query
    GM_T radius;
    int strict, ignore, normalize, sort, is64;
    int64_t* counts;        // count pass: [nq]
    const int64_t* starts;  // fill pass: [nq+1]
    void* index;
    GM_T* distance;  // NULL: not wanted
};

// One query: coordinates, radius and threshold, position in cells (u, unclamped) and its cell
// (clamped like the CPU's query cells), batch item.
struct GM_TFN(block_query) {
    GM_T q[3];
    GM_T r, thr;
    double u[3];
    int64_t c[3];
    int64_t b;
};

// Sets up query q; false when its batch item has no points.
template <int METRIC>
__device__ bool GM_TFN(block_setup)(const GM_TFN(block_args) & a, int64_t q, GM_TFN(block_query) * s) {
    const int64_t b = gm_search_item_of(a.qsplits, a.g.batch_size, q);
    if (a.g.pts_splits[b + 1] == a.g.pts_splits[b]) return false;
    s->b = b;
    s->r = a.radii ? a.radii[q] : a.radius;
    s->thr = GM_TFN(gm_search_threshold)(s->r, METRIC);
    const double* o = a.g.origin + 3 * b;
    const int64_t* dims = a.g.dims + 3 * b;
    const double inv = a.g.inv_cell[b];
    for (int k = 0; k < 3; ++k) {
        s->q[k] = a.queries[3 * q + k];
        s->u[k] = ((double)s->q[k] - o[k]) * inv;
        s->c[k] = gm_search_grid_coord(s->q[k], o[k], inv, -2, dims[k] + 1);
    }
    return true;
}

// Calls visit(i0, i1) for the occupied cells [i0, i1) of each (y, z) row of the 3x3x3 block, in
// the CPU's order (z, then y), skipping rows whose distance bound fails the test.
template <int METRIC, class F>
__device__ void GM_TFN(block_rows)(const GM_TFN(block_args) & a, const GM_TFN(block_query) & s, F&& visit) {
    const int64_t* dims = a.g.dims + 3 * s.b;
    const double cell = a.g.cell[s.b];
    const int64_t xlo = s.c[0] - 1 < 0 ? 0 : s.c[0] - 1,
                  xhi = s.c[0] + 1 > dims[0] - 1 ? dims[0] - 1 : s.c[0] + 1;
    if (xlo > xhi) return;
    double gx = gm_search_cell_gap(s.u[0], xlo, cell);
    for (int64_t x = xlo + 1; x <= xhi; ++x) {
        const double gap = gm_search_cell_gap(s.u[0], x, cell);
        gx = gap < gx ? gap : gx;
    }
    const double thr = (double)s.thr;
    int64_t from = a.g.item_cells[s.b];
    const int64_t end = a.g.item_cells[s.b + 1];
    for (int64_t z = s.c[2] - 1; z <= s.c[2] + 1; ++z) {
        if (z < 0 || z >= dims[2]) continue;
        const double gz = gm_search_cell_gap(s.u[2], z, cell);
        for (int64_t y = s.c[1] - 1; y <= s.c[1] + 1; ++y) {
            if (y < 0 || y >= dims[1]) continue;
            const double lb = gm_search_bound(gx, gm_search_cell_gap(s.u[1], y, cell), gz, METRIC, GM_TDTYPE);
            if (a.strict ? lb >= thr : lb > thr) continue;
            int64_t i0, i1;
            gm_search_grid_row(a.g.ckey, from, end, xlo, xhi, y, z, dims, &i0, &i1);
            from = i1;
            if (i0 < i1) visit(i0, i1);
        }
    }
}

// The test of the point at sorted position j; *d receives its distance.
template <int METRIC>
__device__ __forceinline__ bool GM_TFN(block_test)(const GM_TFN(block_args) & a,
                                                   const GM_TFN(block_query) & s, int64_t j, GM_T* d) {
    const GM_T dx = ((const GM_T*)a.g.x)[j] - s.q[0], dy = ((const GM_T*)a.g.y)[j] - s.q[1],
               dz = ((const GM_T*)a.g.z)[j] - s.q[2];
    *d = GM_TFN(gm_search_dist)(dx, dy, dz, METRIC);
    bool ok = a.strict ? *d < s.thr : *d <= s.thr;
    if (a.ignore && dx == 0 && dy == 0 && dz == 0) ok = false;
    return ok;
}

template <int METRIC>
__device__ __forceinline__ void GM_TFN(block_write)(const GM_TFN(block_args) & a,
                                                    const GM_TFN(block_query) & s, int64_t pos, int64_t id,
                                                    GM_T d) {
    if (a.is64)
        ((int64_t*)a.index)[pos] = id;
    else
        ((int32_t*)a.index)[pos] = (int32_t)id;
    if (a.distance) a.distance[pos] = a.normalize ? GM_TFN(gm_search_normalize)(d, s.r, METRIC) : d;
}

template <int METRIC>
__global__ void GM_TFN(block_count_kernel)(GM_TFN(block_args) a) {
    GM_FOR_EACH(t, a.nq) {
        const int64_t q = a.qord[t];
        GM_TFN(block_query) s;
        int64_t cnt = 0;
        if (GM_TFN(block_setup) < METRIC > (a, q, &s))
            GM_TFN(block_rows)<METRIC>(a, s, [&](int64_t i0, int64_t i1) {
                const int64_t e = a.g.cstart[i1];
                for (int64_t j = a.g.cstart[i0]; j < e; ++j) {
                    GM_T d;
                    cnt += GM_TFN(block_test)<METRIC>(a, s, j, &d) ? 1 : 0;
                }
            });
        a.counts[q] = cnt;
    }
}

// Moves *cur to the first passing point in [*cur, *end), its index and distance to *id and *d;
// false when there is none.
template <int METRIC>
__device__ __forceinline__ bool GM_TFN(block_advance)(const GM_TFN(block_args) & a,
                                                      const GM_TFN(block_query) & s, int64_t* cur,
                                                      const int64_t* end, int64_t* id, GM_T* d) {
    for (; *cur < *end; ++*cur)
        if (GM_TFN(block_test) < METRIC > (a, s, *cur, d)) {
            *id = a.g.idx[*cur];
            return true;
        }
    return false;
}

template <int METRIC>
__global__ void GM_TFN(block_fill_kernel)(GM_TFN(block_args) a) {
    GM_FOR_EACH(t, a.nq) {
        const int64_t q = a.qord[t];
        const int64_t start = a.starts[q], cnt = a.starts[q + 1] - start;
        GM_TFN(block_query) s;
        if (cnt == 0 || !GM_TFN(block_setup) < METRIC > (a, q, &s)) continue;
        if (!a.sort) {  // rows in scan order, as the CPU writes them
            int64_t k = 0;
            GM_TFN(block_rows)<METRIC>(a, s, [&](int64_t i0, int64_t i1) {
                const int64_t e = a.g.cstart[i1];
                for (int64_t j = a.g.cstart[i0]; j < e && k < cnt; ++j) {
                    GM_T d;
                    if (GM_TFN(block_test) < METRIC > (a, s, j, &d))
                        GM_TFN(block_write)<METRIC>(a, s, start + k++, a.g.idx[j], d);
                }
            });
            continue;
        }
        // sort: merge the cells (each in ascending index order) by their heads, the first
        // passing point at or after each cell's cursor
        int64_t cur[GM_BLOCK_CELLS], end[GM_BLOCK_CELLS], hid[GM_BLOCK_CELLS];
        GM_T hd[GM_BLOCK_CELLS];
        int ns = 0;
        auto advance = [&](int i) {
            return GM_TFN(block_advance)<METRIC>(a, s, cur + i, end + i, hid + i, hd + i);
        };
        GM_TFN(block_rows)<METRIC>(a, s, [&](int64_t i0, int64_t i1) {
            for (int64_t c = i0; c < i1; ++c) {
                cur[ns] = a.g.cstart[c];
                end[ns] = a.g.cstart[c + 1];
                if (advance(ns)) ++ns;
            }
        });
        for (int64_t k = 0; k < cnt && ns > 0; ++k) {
            int m = 0;
            for (int i = 1; i < ns; ++i)
                if (hid[i] < hid[m]) m = i;
            GM_TFN(block_write)<METRIC>(a, s, start + k, hid[m], hd[m]);
            ++cur[m];
            if (!advance(m)) {
                --ns;
                cur[m] = cur[ns];
                end[m] = end[ns];
                hid[m] = hid[ns];
                hd[m] = hd[ns];
            }
        }
    }
}

// The arguments of both passes from a plan.
static GM_TFN(block_args) GM_TFN(block_args_of)(const gm_block_plan* pl) {
    GM_TFN(block_args) a;
    a.g = gm_search_grid_view(pl->grid);
    a.queries = (const GM_T*)pl->queries;
    a.qsplits = pl->qsplits;
    a.qord = pl->qord;
    a.nq = pl->nq;
    a.radii = (const GM_T*)pl->radii;
    a.radius = (GM_T)pl->grid->radius;
    a.strict = pl->strict;
    a.ignore = pl->ignore;
    a.normalize = pl->normalize;
    a.sort = pl->sort;
    a.is64 = pl->is64;
    a.counts = nullptr;
    a.starts = pl->starts;
    a.index = nullptr;
    a.distance = nullptr;
    return a;
}

static int GM_TFN(block_count)(const gm_block_plan* pl, int64_t* counts) {
    GM_TFN(block_args) a = GM_TFN(block_args_of)(pl);
    a.counts = counts;
    const unsigned grid = gm_cuda_blocks(pl->nq);
    switch (pl->metric) {
        case GM_METRIC_L1:
            GM_LAUNCH(GM_TFN(block_count_kernel) < GM_METRIC_L1 >, grid, GM_CUDA_THREADS, pl->stream, a);
            break;
        case GM_METRIC_L2:
            GM_LAUNCH(GM_TFN(block_count_kernel) < GM_METRIC_L2 >, grid, GM_CUDA_THREADS, pl->stream, a);
            break;
        default:
            GM_LAUNCH(GM_TFN(block_count_kernel) < GM_METRIC_LINF >, grid, GM_CUDA_THREADS, pl->stream, a);
            break;
    }
    return gm_cuda_check_launch("a neighbor search count");
}

static int GM_TFN(block_fill)(const gm_block_plan* pl, void* index, void* distance) {
    GM_TFN(block_args) a = GM_TFN(block_args_of)(pl);
    a.index = index;
    a.distance = (GM_T*)distance;
    const unsigned grid = gm_cuda_blocks(pl->nq);
    switch (pl->metric) {
        case GM_METRIC_L1:
            GM_LAUNCH(GM_TFN(block_fill_kernel) < GM_METRIC_L1 >, grid, GM_CUDA_THREADS, pl->stream, a);
            break;
        case GM_METRIC_L2:
            GM_LAUNCH(GM_TFN(block_fill_kernel) < GM_METRIC_L2 >, grid, GM_CUDA_THREADS, pl->stream, a);
            break;
        default:
            GM_LAUNCH(GM_TFN(block_fill_kernel) < GM_METRIC_LINF >, grid, GM_CUDA_THREADS, pl->stream, a);
            break;
    }
    return gm_cuda_check_launch("a neighbor search fill");
}
