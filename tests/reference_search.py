"""Brute-force NumPy reference of the neighbor searches, written from the spec (§4).

Every distance is computed in the points' dtype with one rounding per operation, in the same order
as the kernels (dx*dx + dy*dy + dz*dz; |dx| + |dy| + |dz|; max(|dx|, |dy|, |dz|)), so the
membership tests and distances can be compared exactly.
"""

import numpy as np


def distances(points, q, metric):
    """Distances from query q [3] to points [n, 3] in points.dtype (squared for L2)."""
    d = points - q.astype(points.dtype)
    dx, dy, dz = d[:, 0], d[:, 1], d[:, 2]
    if metric == "L2":
        return dx * dx + dy * dy + dz * dz
    ax, ay, az = np.abs(dx), np.abs(dy), np.abs(dz)
    if metric == "L1":
        return ax + ay + az
    return np.maximum(np.maximum(ax, ay), az)


def default_splits(n):
    return np.array([0, n], np.int64)


def _items(points_row_splits, queries_row_splits, num_points, num_queries):
    ps = default_splits(num_points) if points_row_splits is None else np.asarray(points_row_splits, np.int64)
    qs = default_splits(num_queries) if queries_row_splits is None else np.asarray(queries_row_splits, np.int64)
    for b in range(len(ps) - 1):
        for i in range(qs[b], qs[b + 1]):
            yield b, i, ps[b], ps[b + 1]


def _same_point(points, q):
    return (points[:, 0] == q[0]) & (points[:, 1] == q[1]) & (points[:, 2] == q[2])


def ref_radius(points, queries, radii, points_row_splits=None, queries_row_splits=None, metric="L2",
               ignore_query_point=False, inclusive=True, normalize=False):
    """Per-query (sorted indices, matching distances) for a radius search.

    radii: one radius per query (points' dtype). inclusive=True is fixed_radius_search (<=),
    False is radius_search (<). Thresholds are r*r (L2) or r, computed in the points' dtype.
    """
    dt = points.dtype.type
    out = [None] * len(queries)
    for _, i, lo, hi in _items(points_row_splits, queries_row_splits, len(points), len(queries)):
        r = dt(radii[i])
        thr = dt(r * r) if metric == "L2" else r
        d = distances(points[lo:hi], queries[i], metric)
        mask = d <= thr if inclusive else d < thr
        if ignore_query_point:
            mask &= ~_same_point(points[lo:hi], queries[i])
        idx = np.nonzero(mask)[0]
        dist = d[idx]
        if normalize:
            dist = dist / (dt(r * r) if metric == "L2" else r)
        out[i] = (idx + lo, dist.astype(points.dtype))
    return out


def ref_knn(points, queries, k, points_row_splits=None, queries_row_splits=None, metric="L2",
            ignore_query_point=False):
    """Per-query (indices, distances): the min(k, n_b) smallest (distance, index) pairs in
    ascending order, then the points equal to the query removed (Open3D filters afterwards)."""
    out = [None] * len(queries)
    for _, i, lo, hi in _items(points_row_splits, queries_row_splits, len(points), len(queries)):
        d = distances(points[lo:hi], queries[i], metric)
        order = np.lexsort((np.arange(hi - lo), d))[:k]
        keep = order
        if ignore_query_point:
            keep = order[~_same_point(points[lo:hi][order], queries[i])]
        out[i] = (keep + lo, d[keep])
    return out


def _cell_int32(v):
    """floor() then C's float -> int conversion as x86 does it (NaN / out of range -> INT32_MIN)."""
    f = np.floor(v)
    ok = (f >= -2147483648.0) & (f < 2147483648.0)
    return np.where(ok, np.where(ok, f, 0).astype(np.int64), -2147483648).astype(np.int64)


def ref_spatial_hash(points, radius):
    """Open3D's SpatialHash of each point's voxel, sign-extended to uint64 (before % T)."""
    dt = points.dtype.type
    r = dt(radius)
    inv = dt(1) / dt(2 * r)
    with np.errstate(invalid="ignore", over="ignore"):
        c = _cell_int32(points * inv)
    mult = np.array([73856096, 193649663, 83492791], np.int64)
    h32 = (c * mult) & 0xFFFFFFFF  # wrapping 32-bit products
    h = (h32[:, 0] ^ h32[:, 1] ^ h32[:, 2]).astype(np.uint64)
    signed = h.astype(np.int64) - np.where(h >= 2 ** 31, 2 ** 32, 0).astype(np.int64)  # int32 -> int64
    return signed.astype(np.uint64)  # two's complement: the size_t Open3D takes % of


def ref_hash_table(points, radius, points_row_splits=None, factor=1 / 64, max_size=33554432):
    """(bins [N], cell_splits [sum T + 1], table_splits [B + 1]) of the spec's hash table model."""
    ps = default_splits(len(points)) if points_row_splits is None else np.asarray(points_row_splits, np.int64)
    sizes = [min(max(int(factor * int(n)), 1), max_size) for n in np.diff(ps)]
    splits = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    h = ref_spatial_hash(points, radius)
    bins = np.empty(len(points), np.int64)
    for b in range(len(ps) - 1):
        lo, hi = ps[b], ps[b + 1]
        bins[lo:hi] = splits[b] + (h[lo:hi] % np.uint64(sizes[b])).astype(np.int64)
    counts = np.bincount(bins, minlength=splits[-1])
    cell_splits = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return bins, cell_splits, splits


def rows(result):
    """Split a NeighborSearchResult into per-query (index, distance) arrays."""
    rs = result.neighbors_row_splits
    idx, dist = result.neighbors_index, result.neighbors_distance
    return [(idx[rs[i]:rs[i + 1]], dist[rs[i]:rs[i + 1]] if dist.size else dist) for i in range(len(rs) - 1)]


# ---- scipy.spatial.cKDTree as an independent oracle (test extra) --------------------------------

P_NORM = {"L1": 1, "L2": 2, "Linf": np.inf}


def ckdtree_ball(points, queries, r, points_row_splits=None, queries_row_splits=None, metric="L2"):
    """Per-query sets of global indices within r (cKDTree.query_ball_point, inclusive, float64)."""
    from scipy.spatial import cKDTree
    ps = default_splits(len(points)) if points_row_splits is None else np.asarray(points_row_splits)
    qs = default_splits(len(queries)) if queries_row_splits is None else np.asarray(queries_row_splits)
    out = []
    for b in range(len(ps) - 1):
        lo, hi = ps[b], ps[b + 1]
        q = queries[qs[b]:qs[b + 1]].astype(np.float64)
        if hi == lo:
            out += [set() for _ in range(len(q))]
            continue
        if len(q) == 0:
            continue
        tree = cKDTree(points[lo:hi].astype(np.float64))
        radii = np.broadcast_to(np.asarray(r, np.float64), (len(queries),))[qs[b]:qs[b + 1]]
        for found in tree.query_ball_point(q, radii, p=P_NORM[metric]):
            out.append({int(j) + int(lo) for j in found})
    return out


def ckdtree_knn(points, queries, k, points_row_splits=None, queries_row_splits=None, metric="L2"):
    """Per-query sets of the global indices of the min(k, n_b) nearest points (cKDTree.query)."""
    from scipy.spatial import cKDTree
    ps = default_splits(len(points)) if points_row_splits is None else np.asarray(points_row_splits)
    qs = default_splits(len(queries)) if queries_row_splits is None else np.asarray(queries_row_splits)
    out = []
    for b in range(len(ps) - 1):
        lo, hi = ps[b], ps[b + 1]
        q = queries[qs[b]:qs[b + 1]].astype(np.float64)
        if hi == lo or len(q) == 0:
            out += [set() for _ in range(len(q))]
            continue
        tree = cKDTree(points[lo:hi].astype(np.float64))
        _, idx = tree.query(q, k=k, p=P_NORM[metric])
        idx = np.asarray(idx).reshape(len(q), -1)
        out += [{int(j) + int(lo) for j in row if j < hi - lo} for row in idx]
    return out


def random_row_splits(n, batch_size, rng, force_empty=True):
    """Random monotone row splits over n entries; with force_empty one item is empty."""
    cuts = np.sort(rng.integers(0, n + 1, batch_size - 1))
    splits = np.concatenate([[0], cuts, [n]]).astype(np.int64)
    if force_empty and batch_size > 1 and np.all(np.diff(splits) > 0):
        j = int(rng.integers(1, batch_size))
        splits[j] = splits[j - 1]
        splits = np.maximum.accumulate(splits)
    return splits


def canonical(result):
    """(row_splits, index, distance) of a search result with every row sorted by index."""
    rs = result.neighbors_row_splits
    idx = np.asarray(result.neighbors_index, np.int64)
    dist = result.neighbors_distance
    owner = np.repeat(np.arange(len(rs) - 1), np.diff(rs))
    order = np.lexsort((idx, owner))
    return rs, idx[order], (dist[order] if dist.size else dist)


def flatten(per_query):
    """(row_splits, index, distance) from per-query (index, distance) pairs or index sets, rows sorted."""
    rs = np.zeros(len(per_query) + 1, np.int64)
    idx, dist = [], []
    for i, item in enumerate(per_query):
        if isinstance(item, set):
            ii, dd = np.array(sorted(item), np.int64), None
        else:
            ii, dd = np.asarray(item[0], np.int64), np.asarray(item[1])
            order = np.argsort(ii, kind="stable")
            ii, dd = ii[order], dd[order]
        rs[i + 1] = rs[i] + len(ii)
        idx.append(ii)
        if dd is not None:
            dist.append(dd)
    cat = np.concatenate(idx) if idx else np.empty(0, np.int64)
    return rs, cat.astype(np.int64), (np.concatenate(dist) if dist else None)


def assert_same_neighbors(result, per_query, what):
    """Rows of `result` equal the reference rows as sets (and distances when the reference has them)."""
    rs, idx, dist = canonical(result)
    rrs, ridx, rdist = flatten(per_query)
    bad = np.nonzero(np.diff(rs) != np.diff(rrs))[0]
    assert bad.size == 0, f"{what}: neighbor counts differ first at query {bad[:1].tolist()}"
    assert np.array_equal(idx, ridx), f"{what}: neighbor sets differ"
    if rdist is not None and result.neighbors_distance.size:
        assert dist.dtype == rdist.dtype
        np.testing.assert_allclose(dist, rdist, rtol=1e-7, atol=1e-8, err_msg=what)
