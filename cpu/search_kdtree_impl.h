/* Float/double body of cpu/search_kdtree.c (compiled per type by geomops/twin.h). */

typedef struct {
    GM_T c[3];
    int64_t idx;
} GM_TFN(kd_pt);

typedef struct {
    int64_t nb;
    GM_T *x, *y, *z;   /* points in tree order */
    int64_t* idx;      /* global index at each tree position */
    int* depth;        /* [nb] leaf depth, -1 for an empty item */
    int64_t* node_off; /* [nb+1] offsets into the node arrays */
    int64_t *nstart, *nend;
    unsigned char* ndim;
    GM_T *nlo, *nhi; /* largest coordinate left of the split, smallest right of it */
} GM_TFN(kd_tree);

GM_ALWAYS_INLINE int GM_TFN(kd_less)(const GM_TFN(kd_pt) * a, const GM_TFN(kd_pt) * b, int dim) {
    return a->c[dim] < b->c[dim] || (a->c[dim] == b->c[dim] && a->idx < b->idx);
}

static void GM_TFN(kd_sift)(GM_TFN(kd_pt) * a, int64_t root, int64_t n, int dim) {
    for (;;) {
        int64_t c = 2 * root + 1;
        if (c >= n) return;
        if (c + 1 < n && GM_TFN(kd_less)(&a[c], &a[c + 1], dim)) ++c;
        if (!GM_TFN(kd_less)(&a[root], &a[c], dim)) return;
        GM_TFN(kd_pt) t = a[root];
        a[root] = a[c];
        a[c] = t;
        root = c;
    }
}

static void GM_TFN(kd_heapsort)(GM_TFN(kd_pt) * a, int64_t n, int dim) {
    for (int64_t i = n / 2 - 1; i >= 0; --i) GM_TFN(kd_sift)(a, i, n, dim);
    for (int64_t end = n - 1; end > 0; --end) {
        GM_TFN(kd_pt) t = a[0];
        a[0] = a[end];
        a[end] = t;
        GM_TFN(kd_sift)(a, 0, end, dim);
    }
}

/* Puts the element of rank k (by (c[dim], idx)) at a[k], smaller ones before, larger after.
 * Median-of-3 quickselect; falls back to heapsort if it stops shrinking fast enough. Returns
 * early, the order unfinished, when the call was interrupted (checked once per partition). */
static void GM_TFN(kd_select)(GM_TFN(kd_pt) * a, int64_t n, int64_t k, int dim, gm_stop* stop) {
    int64_t lo = 0, hi = n - 1;
    int budget = 2 * 64;
    while (hi > lo) {
        if (gm_stopped(stop)) return;
        if (hi - lo < 16 || --budget == 0) {
            if (hi - lo < 16) {
                for (int64_t i = lo + 1; i <= hi; ++i) {
                    GM_TFN(kd_pt) t = a[i];
                    int64_t j = i;
                    while (j > lo && GM_TFN(kd_less)(&t, &a[j - 1], dim)) {
                        a[j] = a[j - 1];
                        --j;
                    }
                    a[j] = t;
                }
            } else
                GM_TFN(kd_heapsort)(a + lo, hi - lo + 1, dim);
            return;
        }
        const int64_t mid = lo + (hi - lo) / 2;
        /* order a[lo], a[mid], a[hi]; the median becomes the pivot */
        if (GM_TFN(kd_less)(&a[mid], &a[lo], dim)) {
            GM_TFN(kd_pt) t = a[mid];
            a[mid] = a[lo];
            a[lo] = t;
        }
        if (GM_TFN(kd_less)(&a[hi], &a[lo], dim)) {
            GM_TFN(kd_pt) t = a[hi];
            a[hi] = a[lo];
            a[lo] = t;
        }
        if (GM_TFN(kd_less)(&a[hi], &a[mid], dim)) {
            GM_TFN(kd_pt) t = a[hi];
            a[hi] = a[mid];
            a[mid] = t;
        }
        const GM_TFN(kd_pt) pivot = a[mid];
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (GM_TFN(kd_less)(&a[i], &pivot, dim)) ++i;
            while (GM_TFN(kd_less)(&pivot, &a[j], dim)) --j;
            if (i <= j) {
                GM_TFN(kd_pt) t = a[i];
                a[i] = a[j];
                a[j] = t;
                ++i;
                --j;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return;
    }
}

static void GM_TFN(kd_free)(GM_TFN(kd_tree) * t) {
    gm_host_free(t->x);
    gm_host_free(t->y);
    gm_host_free(t->z);
    gm_host_free(t->idx);
    gm_host_free(t->depth);
    gm_host_free(t->node_off);
    gm_host_free(t->nstart);
    gm_host_free(t->nend);
    gm_host_free(t->ndim);
    gm_host_free(t->nlo);
    gm_host_free(t->nhi);
}

static int GM_TFN(kd_build)(const gm_tree_search_params* p, GM_TFN(kd_tree) * t) {
    const GM_T* pts = (const GM_T*)p->points;
    const int64_t n = p->num_points, nb = p->batch_size;
    const int nt = gm_threads(p->num_threads);
    memset(t, 0, sizeof(*t));
    t->nb = nb;
    t->depth = (int*)gm_host_alloc(nb, sizeof(int));
    t->node_off = (int64_t*)gm_host_alloc(nb + 1, sizeof(int64_t));
    if (!t->depth || !t->node_off) return GM_ERR_NOMEM;
    int64_t nodes = 0;
    for (int64_t b = 0; b < nb; ++b) {
        const int64_t m = p->points_row_splits[b + 1] - p->points_row_splits[b];
        t->depth[b] = m > 0 ? kd_depth(m) : -1;
        t->node_off[b] = nodes;
        if (m > 0) nodes += ((int64_t)2 << t->depth[b]) - 1;
    }
    t->node_off[nb] = nodes;
    t->x = (GM_T*)gm_host_alloc(n, sizeof(GM_T));
    t->y = (GM_T*)gm_host_alloc(n, sizeof(GM_T));
    t->z = (GM_T*)gm_host_alloc(n, sizeof(GM_T));
    t->idx = (int64_t*)gm_host_alloc(n, sizeof(int64_t));
    t->nstart = (int64_t*)gm_host_alloc(nodes, sizeof(int64_t));
    t->nend = (int64_t*)gm_host_alloc(nodes, sizeof(int64_t));
    t->ndim = (unsigned char*)gm_host_alloc(nodes, 1);
    t->nlo = (GM_T*)gm_host_alloc(nodes, sizeof(GM_T));
    t->nhi = (GM_T*)gm_host_alloc(nodes, sizeof(GM_T));
    GM_TFN(kd_pt)* a = (GM_TFN(kd_pt)*)gm_host_alloc(n, sizeof(GM_TFN(kd_pt)));
    if (!t->x || !t->y || !t->z || !t->idx || !t->nstart || !t->nend || !t->ndim || !t->nlo || !t->nhi ||
        !a) {
        gm_host_free(a);
        return GM_ERR_NOMEM;
    }
    gm_stop stop = 0;
#pragma omp parallel for schedule(static) num_threads(nt) if (n > 16384)
    for (int64_t i = 0; i < n; ++i) {
        a[i].c[0] = pts[3 * i];
        a[i].c[1] = pts[3 * i + 1];
        a[i].c[2] = pts[3 * i + 2];
        a[i].idx = i;
    }
    for (int64_t b = 0; b < nb; ++b) {
        if (t->depth[b] < 0) continue;
        const int64_t off = t->node_off[b];
        t->nstart[off] = p->points_row_splits[b];
        t->nend[off] = p->points_row_splits[b + 1];
        const int64_t s0 = t->nstart[off], e0 = t->nend[off];
        for (int d = 0; d < t->depth[b] && !atomic_load(&stop); ++d) {
            const int64_t first = ((int64_t)1 << d) - 1, count = (int64_t)1 << d;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (count > 1 && e0 - s0 > 8192)
            for (int64_t i = first; i < first + count; ++i) {
                if (gm_stopped(&stop)) continue;
                const int64_t s = t->nstart[off + i], e = t->nend[off + i];
                GM_T mn[3], mx[3];
                for (int k = 0; k < 3; ++k) mn[k] = mx[k] = a[s].c[k];
                for (int64_t j = s + 1; j < e; ++j)
                    for (int k = 0; k < 3; ++k) {
                        mn[k] = a[j].c[k] < mn[k] ? a[j].c[k] : mn[k];
                        mx[k] = a[j].c[k] > mx[k] ? a[j].c[k] : mx[k];
                    }
                int dim = 0;
                for (int k = 1; k < 3; ++k)
                    if (mx[k] - mn[k] > mx[dim] - mn[dim]) dim = k;
                const int64_t mid = s + (e - s) / 2;
                GM_TFN(kd_select)(a + s, e - s, mid - s, dim, &stop);
                GM_T lmax = a[s].c[dim];
                for (int64_t j = s + 1; j < mid; ++j) lmax = a[j].c[dim] > lmax ? a[j].c[dim] : lmax;
                t->ndim[off + i] = (unsigned char)dim;
                t->nlo[off + i] = lmax;
                t->nhi[off + i] = a[mid].c[dim];
                t->nstart[off + 2 * i + 1] = s;
                t->nend[off + 2 * i + 1] = mid;
                t->nstart[off + 2 * i + 2] = mid;
                t->nend[off + 2 * i + 2] = e;
            }
        }
    }
    if (atomic_load(&stop)) {
        gm_host_free(a);
        return GM_ERR_INTERRUPTED;
    }
#pragma omp parallel for schedule(static) num_threads(nt) if (n > 16384)
    for (int64_t i = 0; i < n; ++i) {
        t->x[i] = a[i].c[0];
        t->y[i] = a[i].c[1];
        t->z[i] = a[i].c[2];
        t->idx[i] = a[i].idx;
    }
    gm_host_free(a);
    return GM_OK;
}

typedef struct {
    int64_t node;
    GM_T off[3];
} GM_TFN(kd_frame);

/* One descent step at inner node `node` for query q: returns the child on the query's side
 * and fills *far_frame with the other child, its box offset along the split axis raised to
 * the query's distance to that child's side. */
static inline int64_t GM_TFN(kd_step)(const GM_TFN(kd_tree) * t, int64_t off, int64_t node, const GM_T* q,
                                      const GM_TFN(kd_frame) * f, GM_TFN(kd_frame) * far_frame) {
    const int dim = t->ndim[off + node];
    const GM_T dl = q[dim] - t->nlo[off + node], dh = q[dim] - t->nhi[off + node];
    int64_t near, far;
    GM_T cut;
    if (dl + dh < 0) {
        near = 2 * node + 1;
        far = near + 1;
        cut = dh < 0 ? -dh : 0;
    } else {
        far = 2 * node + 1;
        near = far + 1;
        cut = dl > 0 ? dl : 0;
    }
    *far_frame = *f;
    far_frame->node = far;
    far_frame->off[dim] = cut > f->off[dim] ? cut : f->off[dim];
    return near;
}

/* Query processing order: by the leaf each query descends to (then by index), so consecutive
 * queries touch the same part of the tree. Only the speed depends on it. */
static int GM_TFN(kd_query_order)(const gm_tree_search_params* p, const GM_TFN(kd_tree) * t, int64_t** out,
                                  GM_T** qsorted) {
    const int64_t nq = p->num_queries;
    const int nt = gm_threads(p->num_threads);
    const GM_T* queries = (const GM_T*)p->queries;
    uint64_t* keys = (uint64_t*)gm_host_alloc(nq, sizeof(uint64_t));
    int64_t* ord = (int64_t*)gm_host_alloc(nq, sizeof(int64_t));
    *out = ord;
    if (!keys || !ord) {
        gm_host_free(keys);
        return GM_ERR_NOMEM;
    }
#pragma omp parallel for schedule(static) num_threads(nt) if (nq > 16384)
    for (int64_t q = 0; q < nq; ++q) {
        const int64_t b = gm_search_item_of(p->queries_row_splits, p->batch_size, q);
        uint64_t key = 0;
        if (t->depth[b] >= 0) {
            const int64_t off = t->node_off[b], first_leaf = ((int64_t)1 << t->depth[b]) - 1;
            int64_t node = 0;
            while (node < first_leaf) {
                const int dim = t->ndim[off + node];
                const GM_T v = queries[3 * q + dim];
                node = (v - t->nlo[off + node]) + (v - t->nhi[off + node]) < 0 ? 2 * node + 1 : 2 * node + 2;
            }
            key = (uint64_t)(off + node + 1);
        }
        keys[q] = key;
        ord[q] = q;
    }
    const int st = gm_search_radix_sort(keys, ord, nq, (uint64_t)t->node_off[p->batch_size] + 1, nt);
    gm_host_free(keys);
    if (st != GM_OK) return st;
    /* the coordinates in processing order: one gather loop instead of a cache miss per query */
    GM_T* qsrt = (GM_T*)gm_host_alloc(3 * nq, sizeof(GM_T));
    *qsorted = qsrt;
    if (!qsrt) return GM_ERR_NOMEM;
#pragma omp parallel for schedule(static) num_threads(nt) if (nq > 16384)
    for (int64_t i = 0; i < nq; ++i) {
        qsrt[3 * i] = queries[3 * ord[i]];
        qsrt[3 * i + 1] = queries[3 * ord[i] + 1];
        qsrt[3 * i + 2] = queries[3 * ord[i] + 2];
    }
    return GM_OK;
}

/* ---- kNN ---- */

/* max-heap of (dist, idx) pairs ordered lexicographically */
GM_ALWAYS_INLINE int GM_TFN(kd_pair_less)(GM_T da, int64_t ia, GM_T db, int64_t ib) {
    return da < db || (da == db && ia < ib);
}

static void GM_TFN(kd_heap_down)(GM_T* hd, int64_t* hi, int64_t n, int64_t root) {
    const GM_T d = hd[root];
    const int64_t id = hi[root];
    for (;;) {
        int64_t c = 2 * root + 1;
        if (c >= n) break;
        if (c + 1 < n && GM_TFN(kd_pair_less)(hd[c], hi[c], hd[c + 1], hi[c + 1])) ++c;
        if (!GM_TFN(kd_pair_less)(d, id, hd[c], hi[c])) break;
        hd[root] = hd[c];
        hi[root] = hi[c];
        root = c;
    }
    hd[root] = d;
    hi[root] = id;
}

static void GM_TFN(kd_heap_up)(GM_T* hd, int64_t* hi, int64_t pos) {
    const GM_T d = hd[pos];
    const int64_t id = hi[pos];
    while (pos > 0) {
        const int64_t parent = (pos - 1) / 2;
        if (!GM_TFN(kd_pair_less)(hd[parent], hi[parent], d, id)) break;
        hd[pos] = hd[parent];
        hi[pos] = hi[parent];
        pos = parent;
    }
    hd[pos] = d;
    hi[pos] = id;
}

/* One kNN query against tree item b; leaves the (dist, idx) pairs in ascending order in
 * hd/hi[0..return). Small k keeps a sorted array (a short, predictable insertion), large k a
 * max-heap sorted at the end. */
GM_ALWAYS_INLINE int64_t GM_TFN(kd_knn_query)(const GM_TFN(kd_tree) * t, int64_t b, const GM_T* q, int64_t kk,
                                              GM_T* hd, int64_t* hi, const int metric,
                                              const int sorted_mode) {
    const int64_t off = t->node_off[b];
    const int depth = t->depth[b];
    const int64_t first_leaf = ((int64_t)1 << depth) - 1;
    const GM_T *x = t->x, *y = t->y, *z = t->z;
    GM_TFN(kd_frame) stack[KD_MAX_DEPTH + 2];
    int sp = 0;
    int64_t size = 0;
    GM_T worst = 0; /* distance of the k-th pair once size == kk */
    GM_T dleaf[KD_LEAF + 1];
    stack[sp].node = 0;
    stack[sp].off[0] = stack[sp].off[1] = stack[sp].off[2] = 0;
    ++sp;
    while (sp > 0) {
        GM_TFN(kd_frame) f = stack[--sp];
        if (size == kk && GM_TFN(gm_search_combine)(f.off[0], f.off[1], f.off[2], metric) > worst) continue;
        int64_t node = f.node;
        while (node < first_leaf) {
            GM_TFN(kd_frame) g;
            const int64_t near = GM_TFN(kd_step)(t, off, node, q, &f, &g);
            if (size < kk || !(GM_TFN(gm_search_combine)(g.off[0], g.off[1], g.off[2], metric) > worst))
                stack[sp++] = g;
            node = near;
        }
        const int64_t s = t->nstart[off + node], e = t->nend[off + node];
        const int64_t m = e - s;
        for (int64_t j = 0; j < m; ++j)
            dleaf[j] = GM_TFN(gm_search_dist)(x[s + j] - q[0], y[s + j] - q[1], z[s + j] - q[2], metric);
        for (int64_t j = 0; j < m; ++j) {
            const GM_T d = dleaf[j];
            if (size == kk && d > worst) continue;
            const int64_t id = t->idx[s + j];
            if (sorted_mode) {
                int64_t pos;
                if (size < kk)
                    pos = size++;
                else if (GM_TFN(kd_pair_less)(d, id, hd[kk - 1], hi[kk - 1]))
                    pos = kk - 1;
                else
                    continue;
                while (pos > 0 && GM_TFN(kd_pair_less)(d, id, hd[pos - 1], hi[pos - 1])) {
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
                    GM_TFN(kd_heap_up)(hd, hi, size);
                    ++size;
                } else if (GM_TFN(kd_pair_less)(d, id, hd[0], hi[0])) {
                    hd[0] = d;
                    hi[0] = id;
                    GM_TFN(kd_heap_down)(hd, hi, size, 0);
                } else
                    continue;
                worst = hd[0];
            }
        }
    }
    if (!sorted_mode) /* heap -> ascending */
        for (int64_t end = size - 1; end > 0; --end) {
            GM_T td = hd[0];
            hd[0] = hd[end];
            hd[end] = td;
            int64_t ti = hi[0];
            hi[0] = hi[end];
            hi[end] = ti;
            GM_TFN(kd_heap_down)(hd, hi, end, 0);
        }
    return size;
}

/* ---- radius search ---- */

/* Visits the points of tree item b within distance < thr of q (strict, like nanoflann);
 * count only (jbuf == NULL) or collect sorted positions and distances. */
GM_ALWAYS_INLINE int64_t GM_TFN(kd_radius_query)(const GM_TFN(kd_tree) * t, int64_t b, const GM_T* q,
                                                 GM_T thr, int ignore, int64_t* jbuf, GM_T* dbuf,
                                                 const int metric) {
    const int64_t off = t->node_off[b];
    const int depth = t->depth[b];
    const int64_t first_leaf = ((int64_t)1 << depth) - 1;
    const GM_T *x = t->x, *y = t->y, *z = t->z;
    GM_TFN(kd_frame) stack[KD_MAX_DEPTH + 2];
    int sp = 0;
    int64_t cnt = 0;
    stack[sp].node = 0;
    stack[sp].off[0] = stack[sp].off[1] = stack[sp].off[2] = 0;
    ++sp;
    while (sp > 0) {
        GM_TFN(kd_frame) f = stack[--sp];
        int64_t node = f.node;
        while (node < first_leaf) {
            GM_TFN(kd_frame) g;
            const int64_t near = GM_TFN(kd_step)(t, off, node, q, &f, &g);
            if (GM_TFN(gm_search_combine)(g.off[0], g.off[1], g.off[2], metric) < thr) stack[sp++] = g;
            node = near;
        }
        const int64_t s = t->nstart[off + node], e = t->nend[off + node];
        if (jbuf) {
            for (int64_t j = s; j < e; ++j) {
                const GM_T dx = x[j] - q[0], dy = y[j] - q[1], dz = z[j] - q[2];
                const GM_T d = GM_TFN(gm_search_dist)(dx, dy, dz, metric);
                int ok = d < thr;
                if (ignore) ok &= !((dx == 0) & (dy == 0) & (dz == 0));
                jbuf[cnt] = j;
                dbuf[cnt] = d;
                cnt += ok;
            }
        } else {
            int c = 0;
            for (int64_t j = s; j < e; ++j) {
                const GM_T dx = x[j] - q[0], dy = y[j] - q[1], dz = z[j] - q[2];
                int ok = GM_TFN(gm_search_dist)(dx, dy, dz, metric) < thr;
                if (ignore) ok &= !((dx == 0) & (dy == 0) & (dz == 0));
                c += ok;
            }
            cnt += c;
        }
    }
    return cnt;
}

/* ---- the plan and the two phases ---- */

/* What the count phase keeps for the fill. */
typedef struct {
    gm_search_plan base;
    gm_tree_search_params p; /* a copy; the arrays it points to belong to the caller */
    GM_TFN(kd_tree) t;
    int64_t* qord; /* [nq] query at each processing position */
    GM_T* qsrt;    /* [3 nq] queries in processing order */
    /* radius search */
    int64_t *cnt_s, *start_s; /* [nq] per processing position: count and first output entry */
    /* kNN */
    int64_t kk; /* entries a query's search keeps: min(k, largest item) */
    int64_t *row_base,
        *row_len;     /* [B] query q of item b writes from row_base[b] + (q - qs[b]) * row_len[b] */
    void* tmp_index;  /* with ignore_query_point: [nq kk] rows found by the count phase */
    GM_T* tmp_dist;   /* [nq kk] their distances (with return_distances) */
    int64_t* tmp_cnt; /* [nq] entries kept in each row */
} GM_TFN(kd_plan);

#define GM_ISA_BODY "search_kdtree_hot.h"
#include "isa_variants.h"

typedef void (*GM_TFN(kd_knn_chunk_fn))(const GM_TFN(kd_plan) * pl, int64_t ps, int64_t pe, void* index,
                                        GM_T* distance, int64_t* cnt, GM_T* hd, int64_t* hi);
typedef int64_t (*GM_TFN(kd_radius_chunk_fn))(const GM_TFN(kd_plan) * pl, int64_t ps, int64_t pe, int fill,
                                              void* index, GM_T* distance, int64_t* jbuf, GM_T* dbuf,
                                              int64_t cap, int64_t* need);

static void GM_TFN(kd_destroy)(gm_search_plan* base) {
    GM_TFN(kd_plan)* pl = (GM_TFN(kd_plan)*)base;
    GM_TFN(kd_free)(&pl->t);
    gm_host_free(pl->qord);
    gm_host_free(pl->qsrt);
    gm_host_free(pl->cnt_s);
    gm_host_free(pl->start_s);
    gm_host_free(pl->row_base);
    gm_host_free(pl->row_len);
    gm_host_free(pl->tmp_index);
    gm_host_free(pl->tmp_dist);
    gm_host_free(pl->tmp_cnt);
    gm_host_free(pl);
}

/* A zeroed kd plan of these params with this fill, or NULL. */
static void* GM_TFN(kd_plan_new)(const gm_tree_search_params* p, int (*fill)(gm_search_plan*, void*, void*)) {
    GM_TFN(kd_plan)* pl = (GM_TFN(kd_plan)*)gm_host_calloc(1, sizeof(GM_TFN(kd_plan)));
    if (!pl) return NULL;
    pl->base.fill = fill;
    pl->base.destroy = GM_TFN(kd_destroy);
    pl->base.want_distances = p->return_distances;
    pl->p = *p;
    return pl;
}

/* ---- kNN ---- */

/* Runs the kNN search of every query into rows of index / distance (plan's row_base and
 * row_len); cnt (if not NULL) receives the entries kept per query. */
static int GM_TFN(kd_knn_run)(const GM_TFN(kd_plan) * pl, void* index, GM_T* distance, int64_t* cnt) {
    const int64_t nq = pl->p.num_queries, kk = pl->kk;
    const int nt = gm_threads(pl->p.num_threads);
    const int64_t nchunks = (nq + KD_CHUNK - 1) / KD_CHUNK;
    const GM_TFN(kd_knn_chunk_fn) chunk = GM_ISA_PICK(GM_TFN(kd_knn_chunk));
    atomic_int err = GM_OK;
    gm_stop stop = 0;
#pragma omp parallel num_threads(nt) if (nchunks > 16)
    {
        GM_T* hd = (GM_T*)gm_host_alloc(kk, sizeof(GM_T));
        int64_t* hi = (int64_t*)gm_host_alloc(kk, sizeof(int64_t));
        if (!hd || !hi) gm_search_fail(&err, GM_ERR_NOMEM);
#pragma omp for schedule(dynamic, 1)
        for (int64_t c = 0; c < nchunks; ++c) {
            if (!hd || !hi || gm_stopped(&stop)) continue;
            const int64_t qs = c * KD_CHUNK, qe = qs + KD_CHUNK < nq ? qs + KD_CHUNK : nq;
            chunk(pl, qs, qe, index, distance, cnt, hd, hi);
        }
        gm_host_free(hd);
        gm_host_free(hi);
    }
    return gm_stop_status(&stop, gm_search_failed(&err));
}

static int GM_TFN(kd_knn_fill)(gm_search_plan* base, void* index, void* distance) {
    const GM_TFN(kd_plan)* pl = (const GM_TFN(kd_plan)*)base;
    if (!pl->p.ignore_query_point) return GM_TFN(kd_knn_run)(pl, index, (GM_T*)distance, NULL);
    /* compact the rows the count phase found */
    const int64_t nq = pl->p.num_queries, kk = pl->kk;
    const size_t isz = pl->p.index_is64 ? 8 : 4;
    int64_t at = 0;
    for (int64_t q = 0; q < nq; ++q) {
        const int64_t cnt = pl->tmp_cnt[q];
        if (cnt == 0) continue;
        memcpy((char*)index + (size_t)at * isz, (const char*)pl->tmp_index + (size_t)(q * kk) * isz,
               (size_t)cnt * isz);
        if (distance) memcpy((GM_T*)distance + at, pl->tmp_dist + q * kk, (size_t)cnt * sizeof(GM_T));
        at += cnt;
    }
    return GM_OK;
}

/* Without ignore_query_point the counts are min(k, n_b) and the search runs in the fill,
 * straight into the caller's arrays. With it, the search runs here into dense [nq, kk] rows
 * and the fill compacts them; the tree is freed before the caller allocates the output. */
static int GM_TFN(kd_knn_count)(const gm_tree_search_params* p, int64_t* rs, int64_t* total,
                                gm_search_plan** out) {
    const int64_t nq = p->num_queries, nb = p->batch_size;
    const int64_t* qsp = p->queries_row_splits;
    memset(rs, 0, (size_t)(nq + 1) * sizeof(int64_t));
    int64_t maxn = 0;
    for (int64_t b = 0; b < nb; ++b) {
        const int64_t m = p->points_row_splits[b + 1] - p->points_row_splits[b];
        maxn = m > maxn ? m : maxn;
    }
    const int64_t kk = p->k < maxn ? p->k : maxn;
    GM_TFN(kd_plan)* pl = GM_TFN(kd_plan_new)(p, GM_TFN(kd_knn_fill));
    if (!pl) return GM_ERR_NOMEM;
    if (nq == 0 || kk == 0) {
        *out = &pl->base;
        return GM_OK;
    }
    /* the dense rows of ignore_query_point: nq kk entries (the output has at most as many) */
    int st = nq > INT64_MAX / 16 / kk ? gm_host_nomem((double)nq * (double)kk * 16.0) : GM_OK;
    pl->kk = kk;
    if (st == GM_OK) {
        pl->row_base = (int64_t*)gm_host_alloc(nb, sizeof(int64_t));
        pl->row_len = (int64_t*)gm_host_alloc(nb, sizeof(int64_t));
        if (!pl->row_base || !pl->row_len) st = GM_ERR_NOMEM;
    }
    if (st == GM_OK) st = GM_TFN(kd_build)(p, &pl->t);
    if (st == GM_OK) st = GM_TFN(kd_query_order)(p, &pl->t, &pl->qord, &pl->qsrt);
    if (st == GM_OK && !p->ignore_query_point) {
        for (int64_t b = 0; b < nb; ++b) {
            const int64_t m = p->points_row_splits[b + 1] - p->points_row_splits[b];
            pl->row_len[b] = m < p->k ? m : p->k;
            for (int64_t q = qsp[b]; q < qsp[b + 1]; ++q) rs[q + 1] = pl->row_len[b];
        }
        gm_search_prefix_sum(rs, nq); /* <= nq kk: no overflow */
        for (int64_t b = 0; b < nb; ++b) pl->row_base[b] = rs[qsp[b]];
    } else if (st == GM_OK) {
        for (int64_t b = 0; b < nb; ++b) {
            pl->row_base[b] = qsp[b] * kk;
            pl->row_len[b] = kk;
        }
        pl->tmp_index = gm_host_alloc(nq * kk, p->index_is64 ? 8 : 4);
        pl->tmp_dist = p->return_distances ? (GM_T*)gm_host_alloc(nq * kk, sizeof(GM_T)) : NULL;
        pl->tmp_cnt = (int64_t*)gm_host_alloc(nq, sizeof(int64_t));
        if (!pl->tmp_index || (p->return_distances && !pl->tmp_dist) || !pl->tmp_cnt) st = GM_ERR_NOMEM;
        if (st == GM_OK) st = GM_TFN(kd_knn_run)(pl, pl->tmp_index, pl->tmp_dist, pl->tmp_cnt);
        if (st == GM_OK) {
            for (int64_t q = 0; q < nq; ++q) rs[q + 1] = pl->tmp_cnt[q];
            gm_search_prefix_sum(rs, nq);
        }
        GM_TFN(kd_free)(&pl->t); /* the fill only compacts */
        memset(&pl->t, 0, sizeof(pl->t));
        gm_host_free(pl->qord);
        gm_host_free(pl->qsrt);
        pl->qord = NULL;
        pl->qsrt = NULL;
    }
    if (st != GM_OK) {
        GM_TFN(kd_destroy)(&pl->base);
        return st;
    }
    pl->base.total = *total = rs[nq];
    *out = &pl->base;
    return GM_OK;
}

/* ---- radius search ---- */

static int GM_TFN(kd_radius_fill)(gm_search_plan* base, void* index, void* distance) {
    const GM_TFN(kd_plan)* pl = (const GM_TFN(kd_plan)*)base;
    const int64_t nq = pl->p.num_queries;
    const int nt = gm_threads(pl->p.num_threads);
    const int64_t nchunks = (nq + KD_CHUNK - 1) / KD_CHUNK;
    const GM_TFN(kd_radius_chunk_fn) chunk = GM_ISA_PICK(GM_TFN(kd_radius_chunk));
    atomic_int err = GM_OK;
    gm_stop stop = 0;
#pragma omp parallel num_threads(nt) if (nchunks > 16)
    {
        int64_t cap = 0, *jbuf = NULL;
        GM_T* dbuf = NULL;
#pragma omp for schedule(dynamic, 1)
        for (int64_t c = 0; c < nchunks; ++c) {
            if (gm_stopped(&stop)) continue;
            int64_t qs = c * KD_CHUNK;
            const int64_t qe = qs + KD_CHUNK < nq ? qs + KD_CHUNK : nq;
            while (qs < qe && !gm_search_failed(&err)) {
                int64_t need = 0;
                qs = chunk(pl, qs, qe, 1, index, (GM_T*)distance, jbuf, dbuf, cap, &need);
                if (qs < qe && need < 0) {
                    gm_search_fail(&err, GM_ERR_INVALID);
                } else if (qs < qe) {
                    gm_host_free(jbuf);
                    gm_host_free(dbuf);
                    cap = need + need / 2 + 64;
                    jbuf = (int64_t*)gm_host_alloc(cap, sizeof(int64_t));
                    dbuf = (GM_T*)gm_host_alloc(cap, sizeof(GM_T));
                    if (!jbuf || !dbuf) {
                        gm_host_free(jbuf);
                        gm_host_free(dbuf);
                        jbuf = NULL;
                        dbuf = NULL;
                        cap = 0;
                        gm_search_fail(&err, GM_ERR_NOMEM);
                    }
                }
            }
        }
        gm_host_free(jbuf);
        gm_host_free(dbuf);
    }
    return gm_stop_status(&stop, gm_search_failed(&err));
}

static int GM_TFN(kd_radius_count)(const gm_tree_search_params* p, int64_t* rs, int64_t* total,
                                   gm_search_plan** out) {
    const int64_t nq = p->num_queries;
    const int nt = gm_threads(p->num_threads);
    memset(rs, 0, (size_t)(nq + 1) * sizeof(int64_t));
    GM_TFN(kd_plan)* pl = GM_TFN(kd_plan_new)(p, GM_TFN(kd_radius_fill));
    if (!pl) return GM_ERR_NOMEM;
    if (nq == 0 || p->num_points == 0) {
        *out = &pl->base;
        return GM_OK;
    }
    pl->cnt_s = (int64_t*)gm_host_calloc(nq, sizeof(int64_t));
    pl->start_s = (int64_t*)gm_host_alloc(nq, sizeof(int64_t));
    int st = GM_TFN(kd_build)(p, &pl->t);
    if (st == GM_OK) st = GM_TFN(kd_query_order)(p, &pl->t, &pl->qord, &pl->qsrt);
    if (st == GM_OK && (!pl->cnt_s || !pl->start_s)) st = GM_ERR_NOMEM;
    if (st != GM_OK) {
        GM_TFN(kd_destroy)(&pl->base);
        return st;
    }
    const int64_t nchunks = (nq + KD_CHUNK - 1) / KD_CHUNK;
    const GM_TFN(kd_radius_chunk_fn) chunk = GM_ISA_PICK(GM_TFN(kd_radius_chunk));
    gm_stop stop = 0;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nchunks > 16)
    for (int64_t c = 0; c < nchunks; ++c) {
        if (gm_stopped(&stop)) continue;
        const int64_t qs = c * KD_CHUNK, qe = qs + KD_CHUNK < nq ? qs + KD_CHUNK : nq;
        chunk(pl, qs, qe, 0, NULL, NULL, NULL, NULL, 0, NULL);
    }
    if (atomic_load(&stop)) {
        GM_TFN(kd_destroy)(&pl->base);
        return GM_ERR_INTERRUPTED;
    }
    for (int64_t i = 0; i < nq; ++i) rs[pl->qord[i] + 1] = pl->cnt_s[i];
    const int64_t n = gm_search_prefix_sum(rs, nq);
    if (n < 0) {
        GM_TFN(kd_destroy)(&pl->base);
        return GM_ERR_OVERFLOW;
    }
    for (int64_t i = 0; i < nq; ++i) pl->start_s[i] = rs[pl->qord[i]];
    pl->base.total = *total = n;
    *out = &pl->base;
    return GM_OK;
}
