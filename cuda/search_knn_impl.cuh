// Float/double body of cuda/search_knn.cu (compiled per type by geomops/twin.h).

struct GM_TFN(knn_args) {
    gm_grid_view g;
    const GM_T* points;
    const GM_T* queries;
    const int64_t* qsplits;
    const int64_t* qord;
    int64_t nq, k;
    const int64_t* rs0;  // [nq+1] rows of min(k, n_b): where each query's row goes
    int ignore;
    GM_T* work_d;  // heap mode: [rs0[nq]] the k best of each row while searching
    int64_t* work_i;
    void* index;  // destination, at rs0[q] (int32, or int64 with is64)
    int is64;
    GM_T* distance;   // NULL: not wanted
    int64_t* counts;  // entries written per query, or NULL
};

GM_HD bool GM_TFN(knn_less)(GM_T da, int64_t ia, GM_T db, int64_t ib) {
    return da < db || (da == db && ia < ib);
}

// Max-heap of (distance, index) pairs, as the CPU's.
__device__ void GM_TFN(knn_heap_down)(GM_T* hd, int64_t* hi, int64_t n, int64_t root) {
    const GM_T d = hd[root];
    const int64_t id = hi[root];
    for (;;) {
        int64_t c = 2 * root + 1;
        if (c >= n) break;
        if (c + 1 < n && GM_TFN(knn_less)(hd[c], hi[c], hd[c + 1], hi[c + 1])) ++c;
        if (!GM_TFN(knn_less)(d, id, hd[c], hi[c])) break;
        hd[root] = hd[c];
        hi[root] = hi[c];
        root = c;
    }
    hd[root] = d;
    hi[root] = id;
}

__device__ void GM_TFN(knn_heap_up)(GM_T* hd, int64_t* hi, int64_t pos) {
    const GM_T d = hd[pos];
    const int64_t id = hi[pos];
    while (pos > 0) {
        const int64_t parent = (pos - 1) / 2;
        if (!GM_TFN(knn_less)(hd[parent], hi[parent], d, id)) break;
        hd[pos] = hd[parent];
        hi[pos] = hi[parent];
        pos = parent;
    }
    hd[pos] = d;
    hi[pos] = id;
}

// The kk best (distance, index) pairs of query qp in item b, ascending in hd/hi[0..return).
// Visits the cells in rings (Chebyshev distance r from the query's cell) and stops when no
// point outside the rings seen can qualify: the bound of the nearest unseen ring, in any axis,
// exceeds the k-th distance. Rows and cells whose bound exceeds it are skipped too. The k best
// are unique (ties by index), so the visiting order does not matter.
template <int METRIC, int HEAP>
__device__ int64_t GM_TFN(knn_query)(const gm_grid_view& g, int64_t b, const GM_T* qp, int64_t kk, GM_T* hd,
                                     int64_t* hi) {
    const double* o = g.origin + 3 * b;
    const int64_t* dims = g.dims + 3 * b;
    const double inv = g.inv_cell[b], cell = g.cell[b];
    const GM_T *x = (const GM_T*)g.x, *y = (const GM_T*)g.y, *z = (const GM_T*)g.z;
    double u[3], gmin[3];  // position in cells; the smallest gap along each axis
    int64_t c[3];
    for (int a = 0; a < 3; ++a) {
        u[a] = ((double)qp[a] - o[a]) * inv;
        c[a] = gm_search_grid_coord(qp[a], o[a], inv, 0, dims[a] - 1);
        gmin[a] = gm_search_cell_gap(u[a], c[a], cell);
    }
    const int64_t cbeg = g.item_cells[b], cend = g.item_cells[b + 1];
    int64_t size = 0;
    GM_T worst = 0;  // the kk-th distance once size == kk
    auto scan = [&](int64_t x0, int64_t x1, int64_t yy, int64_t zz, int64_t* from) {
        int64_t i0, i1;
        gm_search_grid_row(g.ckey, *from, cend, x0, x1, yy, zz, dims, &i0, &i1);
        *from = i1;
        const int64_t e = g.cstart[i1];
        for (int64_t j = g.cstart[i0]; j < e; ++j) {
            const GM_T d = GM_TFN(gm_search_dist)(x[j] - qp[0], y[j] - qp[1], z[j] - qp[2], METRIC);
            if (size == kk && d > worst) continue;
            const int64_t id = g.idx[j];
            if (!HEAP) {
                int64_t pos;
                if (size < kk)
                    pos = size++;
                else if (GM_TFN(knn_less)(d, id, hd[kk - 1], hi[kk - 1]))
                    pos = kk - 1;
                else
                    continue;
                while (pos > 0 && GM_TFN(knn_less)(d, id, hd[pos - 1], hi[pos - 1])) {
                    hd[pos] = hd[pos - 1];
                    hi[pos] = hi[pos - 1];
                    --pos;
                }
                hd[pos] = d;
                hi[pos] = id;
                worst = hd[size - 1];
            } else {
                if (size < kk) {
                    hd[size] = d;
                    hi[size] = id;
                    GM_TFN(knn_heap_up)(hd, hi, size);
                    ++size;
                } else if (GM_TFN(knn_less)(d, id, hd[0], hi[0])) {
                    hd[0] = d;
                    hi[0] = id;
                    GM_TFN(knn_heap_down)(hd, hi, size, 0);
                } else
                    continue;
                worst = hd[0];
            }
        }
    };
    for (int64_t r = 0;; ++r) {
        int any = 0;
        double lb = INFINITY;  // bound of every point at ring r or beyond
        for (int a = 0; a < 3; ++a)
            for (int side = -1; side <= 1; side += 2) {
                const int64_t j = c[a] + side * r;
                if (j < 0 || j >= dims[a]) continue;
                any = 1;
                double gg[3] = {gmin[0], gmin[1], gmin[2]};
                gg[a] = gm_search_cell_gap(u[a], j, cell);
                const double bound = gm_search_bound(gg[0], gg[1], gg[2], METRIC, GM_TDTYPE);
                lb = bound < lb ? bound : lb;
            }
        if (!any || (size == kk && lb > (double)worst)) break;
        const int64_t zlo = c[2] - r < 0 ? 0 : c[2] - r,
                      zhi = c[2] + r > dims[2] - 1 ? dims[2] - 1 : c[2] + r;
        const int64_t ylo = c[1] - r < 0 ? 0 : c[1] - r,
                      yhi = c[1] + r > dims[1] - 1 ? dims[1] - 1 : c[1] + r;
        const int64_t xlo = c[0] - r < 0 ? 0 : c[0] - r,
                      xhi = c[0] + r > dims[0] - 1 ? dims[0] - 1 : c[0] + r;
        int64_t from = cbeg;  // rows in ascending key order
        for (int64_t zz = zlo; zz <= zhi; ++zz) {
            const double gz = gm_search_cell_gap(u[2], zz, cell);
            for (int64_t yy = ylo; yy <= yhi; ++yy) {
                const double gy = gm_search_cell_gap(u[1], yy, cell);
                if (zz == c[2] - r || zz == c[2] + r || yy == c[1] - r || yy == c[1] + r) {
                    // a row on the ring's shell: all its cells
                    if (size == kk && gm_search_bound(gmin[0], gy, gz, METRIC, GM_TDTYPE) > (double)worst)
                        continue;
                    scan(xlo, xhi, yy, zz, &from);
                } else {
                    // a row through the ring: its two end cells
                    for (int64_t xx = c[0] - r; xx <= c[0] + r; xx += 2 * r) {
                        if (xx < 0 || xx >= dims[0]) continue;
                        if (size == kk && gm_search_bound(gm_search_cell_gap(u[0], xx, cell), gy, gz, METRIC,
                                                          GM_TDTYPE) > (double)worst)
                            continue;
                        scan(xx, xx, yy, zz, &from);
                    }
                }
            }
        }
    }
    if (HEAP)  // heap -> ascending
        for (int64_t end = size - 1; end > 0; --end) {
            const GM_T td = hd[0];
            hd[0] = hd[end];
            hd[end] = td;
            const int64_t ti = hi[0];
            hi[0] = hi[end];
            hi[end] = ti;
            GM_TFN(knn_heap_down)(hd, hi, end, 0);
        }
    return size;
}

// MODE = metric * 2 + heap: one thread per query (in cell order); the row of query q (minus the
// points equal to it with ignore) goes to the destination at rs0[q].
template <int MODE>
__global__ void GM_TFN(knn_kernel)(GM_TFN(knn_args) a) {
    constexpr int METRIC = MODE / 2, HEAP = MODE % 2;
    GM_FOR_EACH(t, a.nq) {
        const int64_t q = a.qord[t];
        const int64_t b = gm_search_item_of(a.qsplits, a.g.batch_size, q);
        const int64_t m = a.g.pts_splits[b + 1] - a.g.pts_splits[b];
        const int64_t kq = a.k < m ? a.k : m, off = a.rs0[q];
        if (kq == 0) {
            if (a.counts) a.counts[q] = 0;
            continue;
        }
        GM_T lhd[HEAP ? 1 : GM_KNN_LOCAL];
        int64_t lhi[HEAP ? 1 : GM_KNN_LOCAL];
        GM_T* hd = HEAP ? a.work_d + off : lhd;
        int64_t* hi = HEAP ? a.work_i + off : lhi;
        const GM_T qp[3] = {a.queries[3 * q], a.queries[3 * q + 1], a.queries[3 * q + 2]};
        const int64_t size = GM_TFN(knn_query)<METRIC, HEAP>(a.g, b, qp, kq, hd, hi);
        int64_t w = 0;  // in place when the destination is the work row: w <= j
        for (int64_t j = 0; j < size; ++j) {
            const int64_t id = hi[j];
            const GM_T d = hd[j];
            if (a.ignore && a.points[3 * id] == qp[0] && a.points[3 * id + 1] == qp[1] &&
                a.points[3 * id + 2] == qp[2])
                continue;
            if (a.is64)
                ((int64_t*)a.index)[off + w] = id;
            else
                ((int32_t*)a.index)[off + w] = (int32_t)id;
            if (a.distance) a.distance[off + w] = d;
            ++w;
        }
        if (a.counts) a.counts[q] = w;
    }
}

static int GM_TFN(knn_launch)(const GM_TFN(knn_args) & a, int metric, int heap, cudaStream_t stream) {
    const unsigned grid = gm_cuda_blocks(a.nq);
    switch (metric * 2 + heap) {
        case GM_METRIC_L1 * 2:
            GM_LAUNCH(GM_TFN(knn_kernel) < GM_METRIC_L1 * 2 >, grid, GM_CUDA_THREADS, stream, a);
            break;
        case GM_METRIC_L1 * 2 + 1:
            GM_LAUNCH(GM_TFN(knn_kernel) < GM_METRIC_L1 * 2 + 1 >, grid, GM_CUDA_THREADS, stream, a);
            break;
        case GM_METRIC_L2 * 2:
            GM_LAUNCH(GM_TFN(knn_kernel) < GM_METRIC_L2 * 2 >, grid, GM_CUDA_THREADS, stream, a);
            break;
        case GM_METRIC_L2 * 2 + 1:
            GM_LAUNCH(GM_TFN(knn_kernel) < GM_METRIC_L2 * 2 + 1 >, grid, GM_CUDA_THREADS, stream, a);
            break;
        case GM_METRIC_LINF * 2:
            GM_LAUNCH(GM_TFN(knn_kernel) < GM_METRIC_LINF * 2 >, grid, GM_CUDA_THREADS, stream, a);
            break;
        default:
            GM_LAUNCH(GM_TFN(knn_kernel) < GM_METRIC_LINF * 2 + 1 >, grid, GM_CUDA_THREADS, stream, a);
            break;
    }
    return gm_cuda_check_launch("a kNN search");
}

// The rows found by the count phase (at rs0, counts[q] each) compacted into the caller's arrays.
__global__ void GM_TFN(knn_compact_kernel)(const int64_t* tidx, const GM_T* tdist, const int64_t* rs0,
                                           const int64_t* starts, int64_t nq, void* index, int is64,
                                           GM_T* distance) {
    GM_FOR_EACH(q, nq) {
        const int64_t from = rs0[q], to = starts[q], n = starts[q + 1] - to;
        for (int64_t j = 0; j < n; ++j) {
            if (is64)
                ((int64_t*)index)[to + j] = tidx[from + j];
            else
                ((int32_t*)index)[to + j] = (int32_t)tidx[from + j];
            if (distance) distance[to + j] = tdist[from + j];
        }
    }
}

// The search arguments of a plan (destination and work rows left to the caller).
static GM_TFN(knn_args) GM_TFN(knn_args_of)(const gm_knn_plan* pl) {
    GM_TFN(knn_args) a;
    a.g = gm_search_grid_view(pl->own_grid);
    a.points = (const GM_T*)pl->p.points;
    a.queries = (const GM_T*)pl->p.queries;
    a.qsplits = pl->p.queries_row_splits;
    a.qord = pl->qord;
    a.nq = pl->p.num_queries;
    a.k = pl->p.k;
    a.rs0 = pl->rs0;
    a.ignore = pl->p.ignore_query_point;
    a.work_d = nullptr;
    a.work_i = nullptr;
    a.index = nullptr;
    a.is64 = 0;
    a.distance = nullptr;
    a.counts = nullptr;
    return a;
}

// Count phase with ignore_query_point: the rows go to the plan's tidx / tdist (which are also
// the heap's work rows), their lengths to counts.
static int GM_TFN(knn_search_into_plan)(const gm_knn_plan* pl, int64_t* counts) {
    GM_TFN(knn_args) a = GM_TFN(knn_args_of)(pl);
    a.work_d = (GM_T*)pl->tdist;
    a.work_i = pl->tidx;
    a.index = pl->tidx;
    a.is64 = 1;
    a.distance = pl->p.return_distances ? (GM_T*)pl->tdist : nullptr;
    a.counts = counts;
    return GM_TFN(knn_launch)(a, pl->p.metric, pl->heap, pl->stream);
}

// Fill phase without ignore_query_point: the search writes the caller's arrays directly.
static int GM_TFN(knn_search_into)(const gm_knn_plan* pl, void* index, void* distance) {
    GM_TFN(knn_args) a = GM_TFN(knn_args_of)(pl);
    gm_dev_buffer<GM_T> wd;
    gm_dev_buffer<int64_t> wi;
    if (pl->heap) {
        int st = wd.alloc((size_t)pl->total, pl->stream, "the kNN rows");
        if (st == GM_OK) st = wi.alloc((size_t)pl->total, pl->stream, "the kNN rows");
        if (st != GM_OK) return st;
    }
    a.work_d = wd.ptr;
    a.work_i = wi.ptr;
    a.index = index;
    a.is64 = pl->p.index_is64;
    a.distance = (GM_T*)distance;
    return GM_TFN(knn_launch)(a, pl->p.metric, pl->heap, pl->stream);
}

static int GM_TFN(knn_compact)(const gm_knn_plan* pl, void* index, void* distance) {
    const int64_t nq = pl->p.num_queries;
    GM_LAUNCH(GM_TFN(knn_compact_kernel), gm_cuda_blocks(nq), GM_CUDA_THREADS, pl->stream, pl->tidx,
              (const GM_T*)pl->tdist, pl->rs0, pl->starts, nq, index, pl->p.index_is64, (GM_T*)distance);
    return gm_cuda_check_launch("a kNN fill");
}
