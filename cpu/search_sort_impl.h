/* Float/double body of gm_search_sort_pairs (cpu/search_common.c, compiled per type by
 * geomops/twin.h): in-place sort of parallel (index, distance) arrays by index, insertion sort
 * for short rows, heapsort otherwise (no allocation; indices are distinct, so the order is
 * unique). */

/* Short rows with 32-bit indices: insertion sort of one array of (index << 32 | slot) keys,
 * then the distances follow their slots. Returns 0 if an index needs > 32 bits. */
static int GM_TFN(sort_packed)(int64_t* a, GM_T* d, int64_t n) {
    uint64_t key[64];
    for (int64_t i = 0; i < n; ++i) {
        if ((uint64_t)a[i] > 0xFFFFFFFFu) return 0;
        const uint64_t ki = ((uint64_t)a[i] << 32) | (uint64_t)i;
        int64_t j = i;
        while (j > 0 && key[j - 1] > ki) {
            key[j] = key[j - 1];
            --j;
        }
        key[j] = ki;
    }
    if (d) {
        GM_T tmp[64];
        memcpy(tmp, d, (size_t)n * sizeof(GM_T));
        for (int64_t i = 0; i < n; ++i) d[i] = tmp[key[i] & 0xFFFFFFFFu];
    }
    for (int64_t i = 0; i < n; ++i) a[i] = (int64_t)(key[i] >> 32);
    return 1;
}

static void GM_TFN(sift)(int64_t* a, GM_T* d, int64_t root, int64_t n) {
    for (;;) {
        int64_t c = 2 * root + 1;
        if (c >= n) return;
        if (c + 1 < n && a[c + 1] > a[c]) ++c;
        if (a[root] >= a[c]) return;
        int64_t ti = a[root];
        a[root] = a[c];
        a[c] = ti;
        if (d) {
            GM_T td = d[root];
            d[root] = d[c];
            d[c] = td;
        }
        root = c;
    }
}

void GM_TFN(gm_search_sort_pairs)(int64_t* a, GM_T* d, int64_t n) {
    if (n <= 64 && GM_TFN(sort_packed)(a, d, n)) return;
    if (n <= 32) {
        for (int64_t i = 1; i < n; ++i) {
            const int64_t ai = a[i];
            const GM_T di = d ? d[i] : (GM_T)0;
            int64_t j = i;
            while (j > 0 && a[j - 1] > ai) {
                a[j] = a[j - 1];
                if (d) d[j] = d[j - 1];
                --j;
            }
            a[j] = ai;
            if (d) d[j] = di;
        }
        return;
    }
    for (int64_t i = n / 2 - 1; i >= 0; --i) GM_TFN(sift)(a, d, i, n);
    for (int64_t end = n - 1; end > 0; --end) {
        int64_t ti = a[0];
        a[0] = a[end];
        a[end] = ti;
        if (d) {
            GM_T td = d[0];
            d[0] = d[end];
            d[end] = td;
        }
        GM_TFN(sift)(a, d, 0, end);
    }
}
