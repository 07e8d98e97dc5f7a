/* ISA body of the k-d tree searches (compiled per ISA by isa_variants.h, inside the float/double
 * body search_kdtree_impl.h): the per-chunk loops over queries, dispatched to the search
 * specialised for the metric. */

/* kNN for the queries at processing positions [ps, pe): the neighbors of query q of item b (those
 * ignore_query_point leaves) go to index / distance from row_base[b] + (q - qs[b]) * row_len[b]
 * on, and cnt[q] (if cnt is not NULL) receives how many. */
static GM_ISA_ATTR void GM_IFN(GM_TFN(kd_knn_chunk))(const GM_TFN(kd_plan) * pl, int64_t ps, int64_t pe,
                                                     void* index, GM_T* distance, int64_t* cnt_out, GM_T* hd,
                                                     int64_t* hi) {
    const gm_tree_search_params* p = &pl->p;
    const GM_TFN(kd_tree)* t = &pl->t;
    const GM_T* pts = (const GM_T*)p->points;
    const int64_t kk = pl->kk;
    for (int64_t pos = ps; pos < pe; ++pos) {
        const int64_t q = pl->qord[pos];
        const int64_t b = gm_search_item_of(p->queries_row_splits, p->batch_size, q);
        if (t->depth[b] < 0) {
            if (cnt_out) cnt_out[q] = 0;
            continue;
        }
        const GM_T* qp = pl->qsrt + 3 * pos;
        int64_t size;
        switch (p->metric * 2 + (kk <= KD_SORTED_MAX)) {
            case GM_METRIC_L1 * 2:
                size = GM_TFN(kd_knn_query)(t, b, qp, kk, hd, hi, GM_METRIC_L1, 0);
                break;
            case GM_METRIC_L1 * 2 + 1:
                size = GM_TFN(kd_knn_query)(t, b, qp, kk, hd, hi, GM_METRIC_L1, 1);
                break;
            case GM_METRIC_L2 * 2:
                size = GM_TFN(kd_knn_query)(t, b, qp, kk, hd, hi, GM_METRIC_L2, 0);
                break;
            case GM_METRIC_L2 * 2 + 1:
                size = GM_TFN(kd_knn_query)(t, b, qp, kk, hd, hi, GM_METRIC_L2, 1);
                break;
            case GM_METRIC_LINF * 2:
                size = GM_TFN(kd_knn_query)(t, b, qp, kk, hd, hi, GM_METRIC_LINF, 0);
                break;
            default:
                size = GM_TFN(kd_knn_query)(t, b, qp, kk, hd, hi, GM_METRIC_LINF, 1);
                break;
        }
        int64_t cnt = 0;
        const int64_t base = pl->row_base[b] + (q - p->queries_row_splits[b]) * pl->row_len[b];
        for (int64_t j = 0; j < size; ++j) {
            const int64_t id = hi[j];
            if (p->ignore_query_point && pts[3 * id] == qp[0] && pts[3 * id + 1] == qp[1] &&
                pts[3 * id + 2] == qp[2])
                continue;
            if (p->index_is64)
                ((int64_t*)index)[base + cnt] = id;
            else
                ((int32_t*)index)[base + cnt] = (int32_t)id;
            if (distance) distance[base + cnt] = hd[j];
            ++cnt;
        }
        if (cnt_out) cnt_out[q] = cnt;
    }
}

/* Count (fill 0: cnt_s[pos] = count) or fill pass over processing positions [ps, pe). Returns
 * the first position whose buffer was too small (then *need is the count it needs, -1 when the
 * passes disagree), or pe. */
static GM_ISA_ATTR int64_t GM_IFN(GM_TFN(kd_radius_chunk))(const GM_TFN(kd_plan) * pl, int64_t ps, int64_t pe,
                                                           int fill, void* index, GM_T* distance,
                                                           int64_t* jbuf, GM_T* dbuf, int64_t cap,
                                                           int64_t* need) {
    const gm_tree_search_params* p = &pl->p;
    const GM_TFN(kd_tree)* t = &pl->t;
    const GM_T* radii = (const GM_T*)p->radii;
    for (int64_t pos = ps; pos < pe; ++pos) {
        const int64_t q = pl->qord[pos];
        const int64_t b = gm_search_item_of(p->queries_row_splits, p->batch_size, q);
        if (t->depth[b] < 0) continue;
        const GM_T* qp = pl->qsrt + 3 * pos;
        const GM_T r = radii[q];
        const GM_T thr = GM_TFN(gm_search_threshold)(r, p->metric);
        int64_t cnt = 0;
        const int64_t expect = pl->cnt_s[pos];
        if (fill) {
            if (expect == 0) continue;
            if (expect + 1 > cap) { /* the branchless collection writes one past the count */
                *need = expect + 1;
                return pos;
            }
        }
#define KD_CALL(M) GM_TFN(kd_radius_query)(t, b, qp, thr, p->ignore_query_point, fill ? jbuf : NULL, dbuf, M)
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
            pl->cnt_s[pos] = cnt;
            continue;
        }
        if (cnt != expect) { /* the two passes must agree; never expected */
            *need = -1;
            return pos;
        }
        for (int64_t j = 0; j < cnt; ++j) jbuf[j] = t->idx[jbuf[j]];
        if (distance && p->normalize_distances)
            for (int64_t j = 0; j < cnt; ++j) dbuf[j] = GM_TFN(gm_search_normalize)(dbuf[j], r, p->metric);
        if (p->sort) GM_TFN(gm_search_sort_pairs)(jbuf, distance ? dbuf : NULL, cnt);
        const int64_t at = pl->start_s[pos];
        if (p->index_is64)
            memcpy((int64_t*)index + at, jbuf, (size_t)cnt * sizeof(int64_t));
        else {
            int32_t* o = (int32_t*)index + at;
            for (int64_t j = 0; j < cnt; ++j) o[j] = (int32_t)jbuf[j];
        }
        if (distance) memcpy(distance + at, dbuf, (size_t)cnt * sizeof(GM_T));
    }
    return pe;
}
