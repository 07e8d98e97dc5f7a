/* radius_search and knn_search over a k-d tree (one tree per batch item).
 *
 * Tree: implicit complete binary tree (node i has children 2i+1, 2i+2), built level by level;
 * each internal node halves its points at the median of its widest axis (ties broken by point
 * index, so the tree is unique). A node stores the split axis, the largest coordinate of its
 * left half and the smallest of its right half; leaves hold <= KD_LEAF points copied into
 * x[], y[], z[] arrays.
 * Search: depth first with an explicit stack, nearer child first. A subtree is skipped when the
 * distance from the query to its box (per-axis gaps combined in the same order and precision as
 * a point distance, hence never larger than the distance of any point inside) cannot qualify.
 * kNN keeps the k smallest (distance, index) pairs, so ties are broken by index and the result
 * does not depend on the visiting order. Every query is independent: any thread count gives
 * the same output.
 *
 * The file includes itself once per float type (GM_KD_T) for the typed part. */
#ifndef GM_KD_T

#include "search_internal.h"

#define KD_LEAF       32
#define KD_MAX_DEPTH  62
#define KD_CHUNK      64
#define KD_SORTED_MAX 48 /* kNN keeps a sorted array up to this k, a heap above */

#define GM_CAT_(a, b) a##_##b
#define GM_CAT(a, b)  GM_CAT_(a, b)

/* The item a query belongs to: last b with splits[b] <= q (items may be empty). */
static inline int64_t kd_item_of(const int64_t* splits, int64_t nb, int64_t q) {
    int64_t lo = 0, hi = nb; /* answer in [lo, hi) */
    while (hi - lo > 1) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (splits[mid] <= q)
            lo = mid;
        else
            hi = mid;
    }
    while (lo + 1 < nb && splits[lo + 1] <= q) ++lo;
    return lo;
}

static inline int kd_depth(int64_t n) {
    int d = 0;
    while (d < KD_MAX_DEPTH && ((n + ((int64_t)1 << d) - 1) >> d) > KD_LEAF) ++d;
    return d;
}

#define GM_KD_T   float
#define GM_KD_SFX f32
#define GM_KD_ABS fabsf
#include "search_kdtree.c"
#undef GM_KD_T
#undef GM_KD_SFX
#undef GM_KD_ABS

#define GM_KD_T   double
#define GM_KD_SFX f64
#define GM_KD_ABS fabs
#include "search_kdtree.c"
#undef GM_KD_T
#undef GM_KD_SFX
#undef GM_KD_ABS

static int kd_check(const gm_tree_search_params* p) {
    if (p->num_points < 0 || p->num_queries < 0 || p->batch_size < 1 || p->metric < 0 || p->metric > 2 ||
        (p->dtype != GM_FLOAT32 && p->dtype != GM_FLOAT64))
        return GM_ERR_INVALID;
    if (!p->index_is64 && p->num_points > (int64_t)INT32_MAX + 1) return GM_ERR_OVERFLOW;
    return GM_OK;
}

int gm_radius_search_cpu(const gm_tree_search_params* p) {
    int st = kd_check(p);
    if (st) return st;
    return p->dtype == GM_FLOAT32 ? kd_radius_f32(p) : kd_radius_f64(p);
}

int gm_knn_search_cpu(const gm_tree_search_params* p) {
    int st = kd_check(p);
    if (st) return st;
    if (p->k < 1) return GM_ERR_INVALID;
    return p->dtype == GM_FLOAT32 ? kd_knn_f32(p) : kd_knn_f64(p);
}

#else /* ------------------------------ typed part ------------------------------------------ */

#define T        GM_KD_T
#define FN(name) GM_CAT(name, GM_KD_SFX)

typedef struct {
    T c[3];
    int64_t idx;
} FN(kd_pt);

typedef struct {
    int64_t nb;
    T *x, *y, *z;      /* points in tree order */
    int64_t* idx;      /* global index at each tree position */
    int* depth;        /* [nb] leaf depth, -1 for an empty item */
    int64_t* node_off; /* [nb+1] offsets into the node arrays */
    int64_t *nstart, *nend;
    unsigned char* ndim;
    T *nlo, *nhi; /* largest coordinate left of the split, smallest right of it */
} FN(kd_tree);

GM_ALWAYS_INLINE int FN(kd_less)(const FN(kd_pt) * a, const FN(kd_pt) * b, int dim) {
    return a->c[dim] < b->c[dim] || (a->c[dim] == b->c[dim] && a->idx < b->idx);
}

static void FN(kd_sift)(FN(kd_pt) * a, int64_t root, int64_t n, int dim) {
    for (;;) {
        int64_t c = 2 * root + 1;
        if (c >= n) return;
        if (c + 1 < n && FN(kd_less)(&a[c], &a[c + 1], dim)) ++c;
        if (!FN(kd_less)(&a[root], &a[c], dim)) return;
        FN(kd_pt) t = a[root];
        a[root] = a[c];
        a[c] = t;
        root = c;
    }
}

static void FN(kd_heapsort)(FN(kd_pt) * a, int64_t n, int dim) {
    for (int64_t i = n / 2 - 1; i >= 0; --i) FN(kd_sift)(a, i, n, dim);
    for (int64_t end = n - 1; end > 0; --end) {
        FN(kd_pt) t = a[0];
        a[0] = a[end];
        a[end] = t;
        FN(kd_sift)(a, 0, end, dim);
    }
}

/* Puts the element of rank k (by (c[dim], idx)) at a[k], smaller ones before, larger after.
 * Median-of-3 quickselect; falls back to heapsort if it stops shrinking fast enough. */
static void FN(kd_select)(FN(kd_pt) * a, int64_t n, int64_t k, int dim) {
    int64_t lo = 0, hi = n - 1;
    int budget = 2 * 64;
    while (hi > lo) {
        if (hi - lo < 16 || --budget == 0) {
            if (hi - lo < 16) {
                for (int64_t i = lo + 1; i <= hi; ++i) {
                    FN(kd_pt) t = a[i];
                    int64_t j = i;
                    while (j > lo && FN(kd_less)(&t, &a[j - 1], dim)) {
                        a[j] = a[j - 1];
                        --j;
                    }
                    a[j] = t;
                }
            } else
                FN(kd_heapsort)(a + lo, hi - lo + 1, dim);
            return;
        }
        const int64_t mid = lo + (hi - lo) / 2;
        /* order a[lo], a[mid], a[hi]; the median becomes the pivot */
        if (FN(kd_less)(&a[mid], &a[lo], dim)) {
            FN(kd_pt) t = a[mid];
            a[mid] = a[lo];
            a[lo] = t;
        }
        if (FN(kd_less)(&a[hi], &a[lo], dim)) {
            FN(kd_pt) t = a[hi];
            a[hi] = a[lo];
            a[lo] = t;
        }
        if (FN(kd_less)(&a[hi], &a[mid], dim)) {
            FN(kd_pt) t = a[hi];
            a[hi] = a[mid];
            a[mid] = t;
        }
        const FN(kd_pt) pivot = a[mid];
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (FN(kd_less)(&a[i], &pivot, dim)) ++i;
            while (FN(kd_less)(&pivot, &a[j], dim)) --j;
            if (i <= j) {
                FN(kd_pt) t = a[i];
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

static void FN(kd_free)(FN(kd_tree) * t) {
    free(t->x);
    free(t->y);
    free(t->z);
    free(t->idx);
    free(t->depth);
    free(t->node_off);
    free(t->nstart);
    free(t->nend);
    free(t->ndim);
    free(t->nlo);
    free(t->nhi);
}

static int FN(kd_build)(const gm_tree_search_params* p, FN(kd_tree) * t) {
    const T* pts = (const T*)p->points;
    const int64_t n = p->num_points, nb = p->batch_size;
    const int nt = gm_threads(p->num_threads);
    memset(t, 0, sizeof(*t));
    t->nb = nb;
    t->depth = (int*)malloc((size_t)nb * sizeof(int));
    t->node_off = (int64_t*)malloc((size_t)(nb + 1) * sizeof(int64_t));
    if (!t->depth || !t->node_off) return GM_ERR_NOMEM;
    int64_t nodes = 0;
    for (int64_t b = 0; b < nb; ++b) {
        const int64_t m = p->points_row_splits[b + 1] - p->points_row_splits[b];
        t->depth[b] = m > 0 ? kd_depth(m) : -1;
        t->node_off[b] = nodes;
        if (m > 0) nodes += ((int64_t)2 << t->depth[b]) - 1;
    }
    t->node_off[nb] = nodes;
    const size_t nn = (size_t)(n > 0 ? n : 1), nodes_alloc = (size_t)(nodes > 0 ? nodes : 1);
    t->x = (T*)malloc(nn * sizeof(T));
    t->y = (T*)malloc(nn * sizeof(T));
    t->z = (T*)malloc(nn * sizeof(T));
    t->idx = (int64_t*)malloc(nn * sizeof(int64_t));
    t->nstart = (int64_t*)malloc(nodes_alloc * sizeof(int64_t));
    t->nend = (int64_t*)malloc(nodes_alloc * sizeof(int64_t));
    t->ndim = (unsigned char*)malloc(nodes_alloc);
    t->nlo = (T*)malloc(nodes_alloc * sizeof(T));
    t->nhi = (T*)malloc(nodes_alloc * sizeof(T));
    FN(kd_pt)* a = (FN(kd_pt)*)malloc(nn * sizeof(FN(kd_pt)));
    if (!t->x || !t->y || !t->z || !t->idx || !t->nstart || !t->nend || !t->ndim || !t->nlo || !t->nhi ||
        !a) {
        free(a);
        return GM_ERR_NOMEM;
    }
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
        for (int d = 0; d < t->depth[b]; ++d) {
            const int64_t first = ((int64_t)1 << d) - 1, count = (int64_t)1 << d;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (count > 1 && e0 - s0 > 8192)
            for (int64_t i = first; i < first + count; ++i) {
                const int64_t s = t->nstart[off + i], e = t->nend[off + i];
                T mn[3], mx[3];
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
                FN(kd_select)(a + s, e - s, mid - s, dim);
                T lmax = a[s].c[dim];
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
#pragma omp parallel for schedule(static) num_threads(nt) if (n > 16384)
    for (int64_t i = 0; i < n; ++i) {
        t->x[i] = a[i].c[0];
        t->y[i] = a[i].c[1];
        t->z[i] = a[i].c[2];
        t->idx[i] = a[i].idx;
    }
    free(a);
    return GM_OK;
}

/* Lower bound on the distance of any point in a box whose per-axis gaps from the query are
 * o0, o1, o2 (same formula, order and precision as a point distance: monotone in each gap). */
GM_ALWAYS_INLINE T FN(kd_combine)(T o0, T o1, T o2, const int metric) {
    if (metric == GM_METRIC_L2) return o0 * o0 + o1 * o1 + o2 * o2;
    if (metric == GM_METRIC_L1) return o0 + o1 + o2;
    const T m = o0 > o1 ? o0 : o1;
    return m > o2 ? m : o2;
}

GM_ALWAYS_INLINE T FN(kd_dist)(T dx, T dy, T dz, const int metric) {
    if (metric == GM_METRIC_L2) return dx * dx + dy * dy + dz * dz;
    return FN(kd_combine)(GM_KD_ABS(dx), GM_KD_ABS(dy), GM_KD_ABS(dz), metric);
}

typedef struct {
    int64_t node;
    T off[3];
} FN(kd_frame);

/* One descent step at inner node `node` for query q: returns the child on the query's side
 * and fills *far_frame with the other child, its box offset along the split axis raised to
 * the query's distance to that child's side. */
static inline int64_t FN(kd_step)(const FN(kd_tree) * t, int64_t off, int64_t node, const T* q,
                                  const FN(kd_frame) * f, FN(kd_frame) * far_frame) {
    const int dim = t->ndim[off + node];
    const T dl = q[dim] - t->nlo[off + node], dh = q[dim] - t->nhi[off + node];
    int64_t near, far;
    T cut;
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
static int FN(kd_query_order)(const gm_tree_search_params* p, const FN(kd_tree) * t, int64_t** out,
                              T** qsorted) {
    const int64_t nq = p->num_queries;
    const int nt = gm_threads(p->num_threads);
    const T* queries = (const T*)p->queries;
    uint64_t* keys = (uint64_t*)malloc((size_t)(nq > 0 ? nq : 1) * sizeof(uint64_t));
    int64_t* ord = (int64_t*)malloc((size_t)(nq > 0 ? nq : 1) * sizeof(int64_t));
    *out = ord;
    if (!keys || !ord) {
        free(keys);
        return GM_ERR_NOMEM;
    }
#pragma omp parallel for schedule(static) num_threads(nt) if (nq > 16384)
    for (int64_t q = 0; q < nq; ++q) {
        const int64_t b = kd_item_of(p->queries_row_splits, p->batch_size, q);
        uint64_t key = 0;
        if (t->depth[b] >= 0) {
            const int64_t off = t->node_off[b], first_leaf = ((int64_t)1 << t->depth[b]) - 1;
            int64_t node = 0;
            while (node < first_leaf) {
                const int dim = t->ndim[off + node];
                const T v = queries[3 * q + dim];
                node = (v - t->nlo[off + node]) + (v - t->nhi[off + node]) < 0 ? 2 * node + 1 : 2 * node + 2;
            }
            key = (uint64_t)(off + node + 1);
        }
        keys[q] = key;
        ord[q] = q;
    }
    const int st = gm_search_radix_sort(keys, ord, nq, (uint64_t)t->node_off[p->batch_size] + 1, nt);
    free(keys);
    if (st != GM_OK) return st;
    /* the coordinates in processing order: one gather loop instead of a cache miss per query */
    T* qsrt = (T*)malloc((size_t)(nq > 0 ? nq : 1) * 3 * sizeof(T));
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
GM_ALWAYS_INLINE int FN(kd_pair_less)(T da, int64_t ia, T db, int64_t ib) {
    return da < db || (da == db && ia < ib);
}

static void FN(kd_heap_down)(T* hd, int64_t* hi, int64_t n, int64_t root) {
    const T d = hd[root];
    const int64_t id = hi[root];
    for (;;) {
        int64_t c = 2 * root + 1;
        if (c >= n) break;
        if (c + 1 < n && FN(kd_pair_less)(hd[c], hi[c], hd[c + 1], hi[c + 1])) ++c;
        if (!FN(kd_pair_less)(d, id, hd[c], hi[c])) break;
        hd[root] = hd[c];
        hi[root] = hi[c];
        root = c;
    }
    hd[root] = d;
    hi[root] = id;
}

static void FN(kd_heap_up)(T* hd, int64_t* hi, int64_t pos) {
    const T d = hd[pos];
    const int64_t id = hi[pos];
    while (pos > 0) {
        const int64_t parent = (pos - 1) / 2;
        if (!FN(kd_pair_less)(hd[parent], hi[parent], d, id)) break;
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
GM_ALWAYS_INLINE int64_t FN(kd_knn_query)(const FN(kd_tree) * t, int64_t b, const T* q, int64_t kk, T* hd,
                                          int64_t* hi, const int metric, const int sorted_mode) {
    const int64_t off = t->node_off[b];
    const int depth = t->depth[b];
    const int64_t first_leaf = ((int64_t)1 << depth) - 1;
    const T *x = t->x, *y = t->y, *z = t->z;
    FN(kd_frame) stack[KD_MAX_DEPTH + 2];
    int sp = 0;
    int64_t size = 0;
    T worst = 0; /* distance of the k-th pair once size == kk */
    T dleaf[KD_LEAF + 1];
    stack[sp].node = 0;
    stack[sp].off[0] = stack[sp].off[1] = stack[sp].off[2] = 0;
    ++sp;
    while (sp > 0) {
        FN(kd_frame) f = stack[--sp];
        if (size == kk && FN(kd_combine)(f.off[0], f.off[1], f.off[2], metric) > worst) continue;
        int64_t node = f.node;
        while (node < first_leaf) {
            FN(kd_frame) g;
            const int64_t near = FN(kd_step)(t, off, node, q, &f, &g);
            if (size < kk || !(FN(kd_combine)(g.off[0], g.off[1], g.off[2], metric) > worst)) stack[sp++] = g;
            node = near;
        }
        const int64_t s = t->nstart[off + node], e = t->nend[off + node];
        const int64_t m = e - s;
        for (int64_t j = 0; j < m; ++j)
            dleaf[j] = FN(kd_dist)(x[s + j] - q[0], y[s + j] - q[1], z[s + j] - q[2], metric);
        for (int64_t j = 0; j < m; ++j) {
            const T d = dleaf[j];
            if (size == kk && d > worst) continue;
            const int64_t id = t->idx[s + j];
            if (sorted_mode) {
                int64_t pos;
                if (size < kk)
                    pos = size++;
                else if (FN(kd_pair_less)(d, id, hd[kk - 1], hi[kk - 1]))
                    pos = kk - 1;
                else
                    continue;
                while (pos > 0 && FN(kd_pair_less)(d, id, hd[pos - 1], hi[pos - 1])) {
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
                    FN(kd_heap_up)(hd, hi, size);
                    ++size;
                } else if (FN(kd_pair_less)(d, id, hd[0], hi[0])) {
                    hd[0] = d;
                    hi[0] = id;
                    FN(kd_heap_down)(hd, hi, size, 0);
                } else
                    continue;
                worst = hd[0];
            }
        }
    }
    if (!sorted_mode) /* heap -> ascending */
        for (int64_t end = size - 1; end > 0; --end) {
            T td = hd[0];
            hd[0] = hd[end];
            hd[end] = td;
            int64_t ti = hi[0];
            hi[0] = hi[end];
            hi[end] = ti;
            FN(kd_heap_down)(hd, hi, end, 0);
        }
    return size;
}

/* kNN for queries [qs, qe) writing dense rows of kk entries; counts go to rs[q+1]. */
static GM_HOT void FN(kd_knn_chunk)(const gm_tree_search_params* p, const FN(kd_tree) * t,
                                    const int64_t* qord, const T* qsrt, int64_t ps, int64_t pe, int64_t kk,
                                    T* hd, int64_t* hi) {
    const T* pts = (const T*)p->points;
    int64_t* rs = p->out.row_splits;
    for (int64_t pos = ps; pos < pe; ++pos) {
        const int64_t q = qord[pos];
        const int64_t b = kd_item_of(p->queries_row_splits, p->batch_size, q);
        if (t->depth[b] < 0) {
            rs[q + 1] = 0;
            continue;
        }
        const T* qp = qsrt + 3 * pos;
        int64_t size;
        switch (p->metric * 2 + (kk <= KD_SORTED_MAX)) {
            case GM_METRIC_L1 * 2:
                size = FN(kd_knn_query)(t, b, qp, kk, hd, hi, GM_METRIC_L1, 0);
                break;
            case GM_METRIC_L1 * 2 + 1:
                size = FN(kd_knn_query)(t, b, qp, kk, hd, hi, GM_METRIC_L1, 1);
                break;
            case GM_METRIC_L2 * 2:
                size = FN(kd_knn_query)(t, b, qp, kk, hd, hi, GM_METRIC_L2, 0);
                break;
            case GM_METRIC_L2 * 2 + 1:
                size = FN(kd_knn_query)(t, b, qp, kk, hd, hi, GM_METRIC_L2, 1);
                break;
            case GM_METRIC_LINF * 2:
                size = FN(kd_knn_query)(t, b, qp, kk, hd, hi, GM_METRIC_LINF, 0);
                break;
            default:
                size = FN(kd_knn_query)(t, b, qp, kk, hd, hi, GM_METRIC_LINF, 1);
                break;
        }
        int64_t cnt = 0;
        const int64_t base = q * kk;
        for (int64_t j = 0; j < size; ++j) {
            const int64_t id = hi[j];
            if (p->ignore_query_point && pts[3 * id] == qp[0] && pts[3 * id + 1] == qp[1] &&
                pts[3 * id + 2] == qp[2])
                continue;
            if (p->index_is64)
                ((int64_t*)*p->out.index)[base + cnt] = id;
            else
                ((int32_t*)*p->out.index)[base + cnt] = (int32_t)id;
            if (p->return_distances) ((T*)*p->out.distance)[base + cnt] = hd[j];
            ++cnt;
        }
        rs[q + 1] = cnt;
    }
}

static int FN(kd_knn)(const gm_tree_search_params* p) {
    const int64_t nq = p->num_queries, nb = p->batch_size;
    const int nt = gm_threads(p->num_threads);
    int64_t* rs = p->out.row_splits;
    memset(rs, 0, (size_t)(nq + 1) * sizeof(int64_t));
    int64_t maxn = 0;
    for (int64_t b = 0; b < nb; ++b) {
        const int64_t m = p->points_row_splits[b + 1] - p->points_row_splits[b];
        maxn = m > maxn ? m : maxn;
    }
    const int64_t kk = p->k < maxn ? p->k : maxn;
    if (nq == 0 || kk == 0)
        return gm_search_alloc_output(&p->out, 0, p->index_is64, p->return_distances, sizeof(T));
    if (nq > INT64_MAX / 16 / kk) return GM_ERR_NOMEM;
    FN(kd_tree) t;
    int64_t* qord = NULL;
    T* qsrt = NULL;
    int st = FN(kd_build)(p, &t);
    if (st == GM_OK) st = FN(kd_query_order)(p, &t, &qord, &qsrt);
    if (st == GM_OK)
        st = gm_search_alloc_output(&p->out, nq * kk, p->index_is64, p->return_distances, sizeof(T));
    if (st != GM_OK) {
        free(qord);
        free(qsrt);
        FN(kd_free)(&t);
        return st;
    }
    volatile int err = GM_OK;
    const int64_t nchunks = (nq + KD_CHUNK - 1) / KD_CHUNK;
#pragma omp parallel num_threads(nt) if (nchunks > 16)
    {
        T* hd = (T*)malloc((size_t)kk * sizeof(T));
        int64_t* hi = (int64_t*)malloc((size_t)kk * sizeof(int64_t));
        if (!hd || !hi) err = GM_ERR_NOMEM;
#pragma omp for schedule(dynamic, 1)
        for (int64_t c = 0; c < nchunks; ++c) {
            if (!hd || !hi) continue;
            const int64_t qs = c * KD_CHUNK, qe = qs + KD_CHUNK < nq ? qs + KD_CHUNK : nq;
            FN(kd_knn_chunk)(p, &t, qord, qsrt, qs, qe, kk, hd, hi);
        }
        free(hd);
        free(hi);
    }
    free(qord);
    free(qsrt);
    FN(kd_free)(&t);
    st = err;
    if (st != GM_OK) {
        gm_search_free_output(&p->out);
        return st;
    }
    /* compact the dense [nq, kk] rows in place (write position never passes read position) */
    const int64_t total = gm_search_prefix_sum(rs, nq);
    const size_t isz = p->index_is64 ? 8 : 4;
    char* ind = (char*)*p->out.index;
    char* dist = (char*)*p->out.distance;
    if (total != nq * kk) {
        for (int64_t q = 0; q < nq; ++q) {
            const int64_t cnt = rs[q + 1] - rs[q];
            if (cnt && rs[q] != q * kk) {
                memmove(ind + (size_t)rs[q] * isz, ind + (size_t)(q * kk) * isz, (size_t)cnt * isz);
                if (dist)
                    memmove(dist + (size_t)rs[q] * sizeof(T), dist + (size_t)(q * kk) * sizeof(T),
                            (size_t)cnt * sizeof(T));
            }
        }
        if (total == 0) {
            gm_search_free_output(&p->out);
        } else {
            void* ni = realloc(ind, (size_t)total * isz);
            if (ni) *p->out.index = ni;
            if (dist) {
                void* nd = realloc(dist, (size_t)total * sizeof(T));
                if (nd) *p->out.distance = nd;
            }
        }
    }
    *p->out.total = total;
    return GM_OK;
}

/* ---- radius search ---- */

/* Visits the points of tree item b within distance < thr of q (strict, like nanoflann);
 * count only (jbuf == NULL) or collect sorted positions and distances. */
GM_ALWAYS_INLINE int64_t FN(kd_radius_query)(const FN(kd_tree) * t, int64_t b, const T* q, T thr, int ignore,
                                             int64_t* jbuf, T* dbuf, const int metric) {
    const int64_t off = t->node_off[b];
    const int depth = t->depth[b];
    const int64_t first_leaf = ((int64_t)1 << depth) - 1;
    const T *x = t->x, *y = t->y, *z = t->z;
    FN(kd_frame) stack[KD_MAX_DEPTH + 2];
    int sp = 0;
    int64_t cnt = 0;
    stack[sp].node = 0;
    stack[sp].off[0] = stack[sp].off[1] = stack[sp].off[2] = 0;
    ++sp;
    while (sp > 0) {
        FN(kd_frame) f = stack[--sp];
        int64_t node = f.node;
        while (node < first_leaf) {
            FN(kd_frame) g;
            const int64_t near = FN(kd_step)(t, off, node, q, &f, &g);
            if (FN(kd_combine)(g.off[0], g.off[1], g.off[2], metric) < thr) stack[sp++] = g;
            node = near;
        }
        const int64_t s = t->nstart[off + node], e = t->nend[off + node];
        if (jbuf) {
            for (int64_t j = s; j < e; ++j) {
                const T dx = x[j] - q[0], dy = y[j] - q[1], dz = z[j] - q[2];
                const T d = FN(kd_dist)(dx, dy, dz, metric);
                int ok = d < thr;
                if (ignore) ok &= !((dx == 0) & (dy == 0) & (dz == 0));
                jbuf[cnt] = j;
                dbuf[cnt] = d;
                cnt += ok;
            }
        } else {
            int c = 0;
            for (int64_t j = s; j < e; ++j) {
                const T dx = x[j] - q[0], dy = y[j] - q[1], dz = z[j] - q[2];
                int ok = FN(kd_dist)(dx, dy, dz, metric) < thr;
                if (ignore) ok &= !((dx == 0) & (dy == 0) & (dz == 0));
                c += ok;
            }
            cnt += c;
        }
    }
    return cnt;
}

/* Count (jbuf == NULL: rs[q+1] = count) or fill pass over queries [qs, qe). Returns the
 * first query whose buffer was too small (then *need is the count it needs), or qe. */
static GM_HOT int64_t FN(kd_radius_chunk)(const gm_tree_search_params* p, const FN(kd_tree) * t,
                                          const int64_t* qord, const T* qsrt, int64_t* cnt_s,
                                          const int64_t* start_s, int64_t ps, int64_t pe, int fill,
                                          int64_t* jbuf, T* dbuf, int64_t cap, int64_t* need) {
    const T* radii = (const T*)p->radii;
    for (int64_t pos = ps; pos < pe; ++pos) {
        const int64_t q = qord[pos];
        const int64_t b = kd_item_of(p->queries_row_splits, p->batch_size, q);
        if (t->depth[b] < 0) continue;
        const T* qp = qsrt + 3 * pos;
        const T r = radii[q];
        const T thr = p->metric == GM_METRIC_L2 ? r * r : r;
        int64_t cnt = 0;
        const int64_t expect = cnt_s[pos];
        if (fill) {
            if (expect == 0) continue;
            if (expect + 1 > cap) { /* the branchless collection writes one past the count */
                *need = expect + 1;
                return pos;
            }
        }
#define KD_CALL(M) FN(kd_radius_query)(t, b, qp, thr, p->ignore_query_point, fill ? jbuf : NULL, dbuf, M)
        switch (p->metric) {
            case GM_METRIC_L1:
                cnt = KD_CALL(GM_METRIC_L1);
                break;
            case GM_METRIC_L2:
                cnt = KD_CALL(GM_METRIC_L2);
                break;
            default:
                cnt = KD_CALL(GM_METRIC_LINF);
                break;
        }
#undef KD_CALL
        if (!fill) {
            cnt_s[pos] = cnt;
            continue;
        }
        if (cnt != expect) { /* the two passes must agree; never expected */
            *need = -1;
            return pos;
        }
        for (int64_t j = 0; j < cnt; ++j) jbuf[j] = t->idx[jbuf[j]];
        if (p->return_distances && p->normalize_distances) {
            const T scale = p->metric == GM_METRIC_L2 ? r * r : r;
            for (int64_t j = 0; j < cnt; ++j) dbuf[j] /= scale;
        }
        if (p->sort) FN(gm_search_sort_pairs)(jbuf, p->return_distances ? dbuf : NULL, cnt);
        const int64_t at = start_s[pos];
        if (p->index_is64)
            memcpy((int64_t*)*p->out.index + at, jbuf, (size_t)cnt * sizeof(int64_t));
        else {
            int32_t* o = (int32_t*)*p->out.index + at;
            for (int64_t j = 0; j < cnt; ++j) o[j] = (int32_t)jbuf[j];
        }
        if (p->return_distances) memcpy((T*)*p->out.distance + at, dbuf, (size_t)cnt * sizeof(T));
    }
    return pe;
}

static int FN(kd_radius)(const gm_tree_search_params* p) {
    const int64_t nq = p->num_queries;
    const int nt = gm_threads(p->num_threads);
    int64_t* rs = p->out.row_splits;
    memset(rs, 0, (size_t)(nq + 1) * sizeof(int64_t));
    if (nq == 0 || p->num_points == 0)
        return gm_search_alloc_output(&p->out, 0, p->index_is64, p->return_distances, sizeof(T));
    FN(kd_tree) t;
    int64_t* qord = NULL;
    T* qsrt = NULL;
    /* per processing position: neighbor count and first output entry */
    int64_t* cnt_s = (int64_t*)calloc((size_t)nq, sizeof(int64_t));
    int64_t* start_s = (int64_t*)malloc((size_t)nq * sizeof(int64_t));
    int st = FN(kd_build)(p, &t);
    if (st == GM_OK) st = FN(kd_query_order)(p, &t, &qord, &qsrt);
    if (st == GM_OK && (!cnt_s || !start_s)) st = GM_ERR_NOMEM;
    volatile int err = st;
    const int64_t nchunks = (nq + KD_CHUNK - 1) / KD_CHUNK;
    if (st == GM_OK) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nchunks > 16)
        for (int64_t c = 0; c < nchunks; ++c) {
            const int64_t qs = c * KD_CHUNK, qe = qs + KD_CHUNK < nq ? qs + KD_CHUNK : nq;
            FN(kd_radius_chunk)(p, &t, qord, qsrt, cnt_s, start_s, qs, qe, 0, NULL, NULL, 0, NULL);
        }
        for (int64_t i = 0; i < nq; ++i) rs[qord[i] + 1] = cnt_s[i];
        const int64_t total = gm_search_prefix_sum(rs, nq);
        for (int64_t i = 0; i < nq; ++i) start_s[i] = rs[qord[i]];
        st = total < 0
                 ? GM_ERR_OVERFLOW
                 : gm_search_alloc_output(&p->out, total, p->index_is64, p->return_distances, sizeof(T));
        err = st;
    }
    if (st == GM_OK) {
#pragma omp parallel num_threads(nt) if (nchunks > 16)
        {
            int64_t cap = 0, *jbuf = NULL;
            T* dbuf = NULL;
#pragma omp for schedule(dynamic, 1)
            for (int64_t c = 0; c < nchunks; ++c) {
                int64_t qs = c * KD_CHUNK;
                const int64_t qe = qs + KD_CHUNK < nq ? qs + KD_CHUNK : nq;
                while (qs < qe && !err) {
                    int64_t need = 0;
                    qs = FN(kd_radius_chunk)(p, &t, qord, qsrt, cnt_s, start_s, qs, qe, 1, jbuf, dbuf, cap,
                                             &need);
                    if (qs < qe && need < 0) {
                        err = GM_ERR_INVALID;
                    } else if (qs < qe) {
                        free(jbuf);
                        free(dbuf);
                        cap = need + need / 2 + 64;
                        jbuf = (int64_t*)malloc((size_t)cap * sizeof(int64_t));
                        dbuf = (T*)malloc((size_t)cap * sizeof(T));
                        if (!jbuf || !dbuf) {
                            free(jbuf);
                            free(dbuf);
                            jbuf = NULL;
                            dbuf = NULL;
                            cap = 0;
                            err = GM_ERR_NOMEM;
                        }
                    }
                }
            }
            free(jbuf);
            free(dbuf);
        }
        st = err;
        if (st != GM_OK) gm_search_free_output(&p->out);
    }
    free(cnt_s);
    free(start_s);
    free(qord);
    free(qsrt);
    FN(kd_free)(&t);
    return st;
}

#undef FN
#undef T
#endif
