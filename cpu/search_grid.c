/* Fixed-radius search over a sorted cell grid.
 *
 * Index: per batch item, cells of edge >= radius (padded by 1e-5 relative so rounding can never
 * put a neighbor outside the 3x3x3 block of the query's cell), keyed (z, y, x) in a mixed radix
 * and sorted, so the 3 cells of one (y, z) row are one contiguous run of points. Points are
 * copied into cell order as x[], y[], z[] arrays (vector-friendly distance loops).
 * Search: queries are sorted by cell too; a group of queries sharing a cell looks up its <= 9
 * row runs once (binary search over the item's sorted cell keys), then each query scans them.
 * Two phases (geomops/search.h): the count phase scans every query, writes the row splits and
 * keeps the query order and counts in its plan; the fill phase scans again and writes the rows
 * into the caller's arrays. Every query's row depends only on its own scan, so the result is the
 * same for any thread count.
 *
 * The typed part is search_grid_impl.h (per float type, geomops/twin.h); its scan loops are
 * search_grid_hot.h (per ISA, isa_variants.h). */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off") /* distances rounded once per operation, on every ISA */
#endif

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
            int64_t i0, i1;
            gm_search_grid_row(g->ckey, from, end, xlo, xhi, y, z, dims, &i0, &i1);
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

#define GM_TWIN_BODY "search_grid_impl.h"
#include "geomops/twin.h"

void gm_grid_free(gm_grid* g) {
    if (!g) return;
    gm_host_free(g->x);
    gm_host_free(g->y);
    gm_host_free(g->z);
    gm_host_free(g->idx);
    gm_host_free(g->pts_splits);
    gm_host_free(g->origin);
    gm_host_free(g->inv_cs);
    gm_host_free(g->dims);
    gm_host_free(g->item_cells);
    gm_host_free(g->ckey);
    gm_host_free(g->cstart);
    gm_host_free(g->dense_off);
    gm_host_free(g->dense);
    gm_host_free(g);
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
    gm_grid* g = (gm_grid*)gm_host_calloc(1, sizeof(gm_grid));
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

int gm_fixed_radius_search_count_cpu(const gm_fixed_radius_params* p, int64_t* row_splits, int64_t* total,
                                     gm_search_plan** plan) {
    *plan = NULL;
    *total = 0;
    const gm_grid* g = p->grid;
    if (!g || p->num_queries < 0 || p->metric < 0 || p->metric > 2) return GM_ERR_INVALID;
    if (!p->index_is64 && g->n > (int64_t)INT32_MAX + 1) return GM_ERR_OVERFLOW;
    return g->dtype == GM_FLOAT32 ? frs_count_phase_f32(p, row_splits, total, plan)
                                  : frs_count_phase_f64(p, row_splits, total, plan);
}
