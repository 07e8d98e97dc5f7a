"""fixed_radius_search against scipy's cKDTree and the brute-force NumPy reference (spec §4, §5)."""

import numpy as np
import pytest

import geomops
from reference_search import assert_same_neighbors, ckdtree_ball, random_row_splits, ref_radius, rows

METRICS = ("L1", "L2", "Linf")
DTYPES = (np.float32, np.float64)
SIZES = [(10, 5), (31, 33), (33, 31), (123, 345)]


def cloud(n, dtype, seed):
    return np.random.default_rng(seed).random((n, 3)).astype(dtype)


def references(points, queries, radius, ps=None, qs=None, metric="L2", ignore=False):
    """(NumPy reference rows, cKDTree rows) for fixed_radius_search."""
    ref = ref_radius(points, queries, np.full(len(queries), radius), ps, qs, metric, ignore, inclusive=True)
    kd = ckdtree_ball(points, queries, radius, ps, qs, metric)
    if ignore:  # cKDTree has no such option: drop the points equal to the query
        kd = [s - set(np.nonzero(np.all(points == queries[i], axis=1))[0].tolist()) for i, s in enumerate(kd)]
    return ref, kd


def check_against_refs(res, points, queries, radius, ps=None, qs=None, metric="L2", ignore=False,
                       index_dtype=np.int32, refs=None):
    """Per-query sets equal cKDTree's and the reference's; distances equal the reference's."""
    assert res.neighbors_index.dtype == np.dtype(index_dtype)
    assert res.neighbors_row_splits.dtype == np.int64
    assert res.neighbors_row_splits.shape == (len(queries) + 1,)
    if res.neighbors_distance.size:
        assert res.neighbors_distance.dtype == points.dtype
    ref, kd = refs or references(points, queries, radius, ps, qs, metric, ignore)
    assert_same_neighbors(res, kd, "vs cKDTree")
    assert_same_neighbors(res, ref, "vs NumPy reference")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sizes", SIZES)
@pytest.mark.parametrize("radius", [0.1, 0.3])
@pytest.mark.parametrize("factor", [1 / 8, 1 / 64])
def test_fixed_radius_search_open3d_grid(dtype, sizes, radius, factor, device):
    num_points, num_queries = sizes
    points = cloud(num_points, dtype, 1 + num_points)
    queries = cloud(num_queries, dtype, 2 + num_queries)
    table = geomops.build_spatial_hash_table(points, radius, hash_table_size_factor=factor, device=device)
    for metric in METRICS:
        for ignore in (False, True):
            q = points if ignore else queries  # Open3D's test searches the points themselves here
            refs = references(points, q, radius, metric=metric, ignore=ignore)
            for index_dtype in (np.int32, np.int64):
                for hash_table in (None, table):
                    res = geomops.fixed_radius_search(points, q, radius, hash_table=hash_table,
                                                      hash_table_size_factor=factor, index_dtype=index_dtype,
                                                      metric=metric, ignore_query_point=ignore,
                                                      return_distances=True, device=device)
                    check_against_refs(res, points, q, radius, metric=metric, ignore=ignore,
                                       index_dtype=index_dtype, refs=refs)
    res = geomops.fixed_radius_search(points, queries, radius, device=device)
    assert res.neighbors_distance.shape == (0,) and res.neighbors_distance.dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_size", [2, 3, 8])
def test_fixed_radius_search_batches(dtype, batch_size, device):
    rng = np.random.default_rng(batch_size)
    points, queries = cloud(150, dtype, 7), cloud(120, dtype, 8)
    ps = random_row_splits(len(points), batch_size, rng)
    qs = random_row_splits(len(queries), batch_size, rng)
    table = geomops.build_spatial_hash_table(points, 0.2, points_row_splits=ps, hash_table_size_factor=1 / 8,
                                             device=device)
    for metric in METRICS:
        refs = references(points, queries, 0.2, ps, qs, metric)
        for index_dtype in (np.int32, np.int64):
            for hash_table in (None, table):
                res = geomops.fixed_radius_search(points, queries, 0.2, ps, qs, hash_table=hash_table,
                                                  index_dtype=index_dtype, metric=metric, return_distances=True,
                                                  device=device)
                check_against_refs(res, points, queries, 0.2, ps, qs, metric, index_dtype=index_dtype, refs=refs)
    # the neighbors of batch item b are global indices inside item b
    res = geomops.fixed_radius_search(points, queries, 0.2, ps, qs, device=device)
    for b in range(batch_size):
        idx = res.neighbors_index[res.neighbors_row_splits[qs[b]]:res.neighbors_row_splits[qs[b + 1]]]
        assert np.all((idx >= ps[b]) & (idx < ps[b + 1]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sizes", [(0, 7), (9, 0), (0, 0)])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_fixed_radius_search_empty_point_sets(dtype, sizes, index_dtype, device):
    points, queries = cloud(sizes[0], dtype, 1), cloud(sizes[1], dtype, 2)
    for return_distances in (False, True):
        res = geomops.fixed_radius_search(points, queries, 0.3, index_dtype=index_dtype,
                                          return_distances=return_distances, device=device)
        assert res.neighbors_index.shape == (0,) and res.neighbors_index.dtype == index_dtype
        np.testing.assert_array_equal(res.neighbors_row_splits, np.zeros(sizes[1] + 1, np.int64))
        assert res.neighbors_distance.shape == (0,) and res.neighbors_distance.dtype == dtype
    table = geomops.build_spatial_hash_table(points, 0.3, device=device)
    res = geomops.fixed_radius_search(points, queries, 0.3, hash_table=table, device=device)
    np.testing.assert_array_equal(res.neighbors_row_splits, np.zeros(sizes[1] + 1, np.int64))


def test_empty_batch_items_everywhere(device):
    points = cloud(20, np.float32, 3)
    queries = cloud(10, np.float32, 4)
    ps = np.array([0, 0, 20, 20], np.int64)
    qs = np.array([0, 5, 5, 10], np.int64)  # queries only in items without points
    res = geomops.fixed_radius_search(points, queries, 0.5, ps, qs, device=device)
    np.testing.assert_array_equal(res.neighbors_row_splits, np.zeros(11, np.int64))


def lattice(dtype, step=0.25, n=5):
    """Points on an n^3 lattice with power-of-two spacing: all distances are exact."""
    g = np.arange(n) * step
    return np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3).astype(dtype)


def exact_counts(points, q, radius, metric):
    """Neighbor counts (<= r and < r) in exact integer arithmetic on the lattice (units of 1/4)."""
    d = np.round((points.astype(np.float64) - q) * 4).astype(np.int64)
    r = int(round(radius * 4))
    if metric == "L2":
        dist, lim = (d * d).sum(1), r * r
    elif metric == "L1":
        dist, lim = np.abs(d).sum(1), r
    else:
        dist, lim = np.abs(d).max(1), r
    return int((dist <= lim).sum()), int((dist < lim).sum())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("metric", METRICS)
def test_exactly_at_radius_is_included(dtype, metric, device):
    points = lattice(dtype)
    queries = np.array([[0.5, 0.5, 0.5], [0.25, 0.5, 0.75], [0, 0, 0]], dtype)
    for radius in (0.25, 0.5):
        res = geomops.fixed_radius_search(points, queries, radius, metric=metric, return_distances=True, device=device)
        for i, (idx, dist) in enumerate(rows(res)):
            incl, strict = exact_counts(points, queries[i], radius, metric)
            assert incl > strict  # the lattice really has points at exactly r
            assert len(idx) == incl
            limit = radius * radius if metric == "L2" else radius
            assert np.any(dist == limit) and np.all(dist <= limit)
        # the same points through radius_search: strict, so the points at r are gone
        res = geomops.radius_search(points, queries, np.full(3, radius, dtype), metric=metric, device=device)
        for i, (idx, _) in enumerate(rows(res)):
            assert len(idx) == exact_counts(points, queries[i], radius, metric)[1]


@pytest.mark.parametrize("dtype", DTYPES)
def test_distances_squared_for_l2(dtype, device):
    points = cloud(300, dtype, 11) * 4 - 2
    queries = cloud(50, dtype, 12) * 4 - 2
    for metric in METRICS:
        res = geomops.fixed_radius_search(points, queries, 1.0, metric=metric, return_distances=True, device=device)
        assert res.neighbors_index.size > 50
        for i, (idx, dist) in enumerate(rows(res)):
            d = points[idx].astype(np.float64) - queries[i]
            expect = {"L2": (d * d).sum(1), "L1": np.abs(d).sum(1), "Linf": np.abs(d).max(1)}[metric]
            tol = 1e-6 if dtype == np.float32 else 1e-12
            np.testing.assert_allclose(dist, expect, rtol=tol, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_ignore_query_point_with_duplicates(dtype, device):
    base = cloud(60, dtype, 13)
    points = np.concatenate([base, base[:20], base[:5]])  # some points three times
    res = geomops.fixed_radius_search(points, base, 0.3, ignore_query_point=True, return_distances=True, device=device)
    for i, (idx, dist) in enumerate(rows(res)):
        assert not np.any(np.all(points[idx] == base[i], axis=1)), "a copy of the query point survived"
        assert np.all(dist > 0)
    check_against_refs(res, points, base, 0.3, ignore=True)
    res_keep = geomops.fixed_radius_search(points, base, 0.3, device=device)
    copies = (np.all(points[None] == base[:, None], axis=2)).sum(1)
    np.testing.assert_array_equal(np.diff(res_keep.neighbors_row_splits) - np.diff(res.neighbors_row_splits),
                                  copies)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sort_gives_ascending_rows(dtype, device):
    points, queries = cloud(400, dtype, 14), cloud(80, dtype, 15)
    for metric in METRICS:
        a = geomops.fixed_radius_search(points, queries, 0.25, metric=metric, return_distances=True, device=device)
        s = geomops.fixed_radius_search(points, queries, 0.25, metric=metric, return_distances=True, sort=True,
                                        device=device)
        np.testing.assert_array_equal(a.neighbors_row_splits, s.neighbors_row_splits)
        for (ia, da), (is_, ds) in zip(rows(a), rows(s)):
            assert np.all(np.diff(is_) > 0)
            order = np.argsort(ia)
            np.testing.assert_array_equal(ia[order], is_)
            np.testing.assert_array_equal(da[order], ds)


@pytest.mark.parametrize("sort", [False, True])
def test_thread_count_does_not_change_the_result(sort, device):
    points, queries = cloud(20000, np.float32, 16), cloud(6000, np.float32, 17)
    ps = np.array([0, 9000, 9000, 20000], np.int64)
    qs = np.array([0, 2500, 3000, 6000], np.int64)
    for metric in METRICS:
        one = geomops.fixed_radius_search(points, queries, 0.04, ps, qs, metric=metric, return_distances=True,
                                          sort=sort, num_threads=1, device=device)
        two = geomops.fixed_radius_search(points, queries, 0.04, ps, qs, metric=metric, return_distances=True,
                                          sort=sort, num_threads=2, device=device)
        for x, y in zip(one, two):
            assert x.dtype == y.dtype and x.tobytes() == y.tobytes()


def test_far_queries_and_clustered_points(device):
    # an outlier stretches the bounding box; queries far outside it find nothing
    rng = np.random.default_rng(18)
    points = np.concatenate([rng.random((300, 3)), [[1e6, -1e6, 5e5]]]).astype(np.float64)
    queries = np.concatenate([rng.random((50, 3)), [[1e6, -1e6, 5e5 + 0.01], [-1e9, 0, 0]]])
    res = geomops.fixed_radius_search(points, queries, 0.15, return_distances=True, device=device)
    check_against_refs(res, points, queries, 0.15)
    assert set(rows(res)[50][0].tolist()) == {300}
    assert len(rows(res)[51][0]) == 0


def test_zero_radius_finds_exact_duplicates(device):
    points = np.array([[0, 0, 0], [1, 1, 1], [0, 0, 0], [1e-7, 0, 0]], np.float32)
    res = geomops.fixed_radius_search(points, points[:2], 0.0, sort=True, device=device)
    assert [r[0].tolist() for r in rows(res)] == [[0, 2], [1]]


def test_list_inputs_and_result_fields(device):
    res = geomops.fixed_radius_search([[0.0, 0, 0], [0.1, 0, 0]], [[0.0, 0, 0]], 0.1, return_distances=True,
                                      sort=True, device=device)
    assert res.neighbors_index.tolist() == [0, 1]
    assert res.neighbors_distance.dtype == np.float64
    res32 = geomops.fixed_radius_search(np.zeros((2, 3), np.float32), [[0.0, 0, 0]], 0.1, return_distances=True,
                                        device=device)
    assert res32.neighbors_distance.dtype == np.float32  # a list of queries takes the points' dtype
    idx, splits, dist = res
    assert idx is res.neighbors_index and splits is res.neighbors_row_splits and dist is res.neighbors_distance


def test_extent_much_larger_than_radius(device):
    # extent / radius > 2^20: the grid coarsens its cells (sparse cell lookup) but stays exact
    rng = np.random.default_rng(19)
    centers = rng.random((20, 3)) * 1e7
    points = (centers[rng.integers(0, 20, 2000)] + rng.standard_normal((2000, 3))).astype(np.float64)
    queries = points[::10] + rng.standard_normal((200, 3)) * 0.5
    for metric in METRICS:
        res = geomops.fixed_radius_search(points, queries, 1.5, metric=metric, return_distances=True, device=device)
        assert res.neighbors_index.size > 200
        check_against_refs(res, points, queries, 1.5, metric=metric)


def test_thread_count_does_not_change_the_result_sparse_cells(device):
    rng = np.random.default_rng(20)
    points = np.concatenate([rng.random((6000, 3)), [[1e5, 1e5, 1e5]]]).astype(np.float32)
    queries = rng.random((3000, 3)).astype(np.float32)
    for sort in (False, True):
        one = geomops.fixed_radius_search(points, queries, 0.05, return_distances=True, sort=sort, num_threads=1,
                                          device=device)
        two = geomops.fixed_radius_search(points, queries, 0.05, return_distances=True, sort=sort, num_threads=2,
                                          device=device)
        for x, y in zip(one, two):
            assert x.tobytes() == y.tobytes()
        check_against_refs(one, points, queries, 0.05)


def test_radius_larger_than_the_cloud(device):
    points, queries = cloud(300, np.float32, 21), cloud(40, np.float32, 22)
    res = geomops.fixed_radius_search(points, queries, 10.0, sort=True, device=device)
    assert np.all(np.diff(res.neighbors_row_splits) == 300)
    np.testing.assert_array_equal(res.neighbors_index.reshape(40, 300), np.tile(np.arange(300), (40, 1)))
    res = geomops.radius_search(points, queries, np.full(40, 10.0, np.float32), sort=True, device=device)
    np.testing.assert_array_equal(res.neighbors_index.reshape(40, 300), np.tile(np.arange(300), (40, 1)))


def test_large_cloud_parallel_radix_sort(device):
    # >= 65536 points and queries: the cell sorts run split across threads
    points, queries = cloud(70000, np.float32, 23), cloud(70000, np.float32, 24)
    one = geomops.fixed_radius_search(points, queries, 0.03, return_distances=True, num_threads=1, device=device)
    two = geomops.fixed_radius_search(points, queries, 0.03, return_distances=True, num_threads=2, device=device)
    for x, y in zip(one, two):
        assert x.tobytes() == y.tobytes()
    sub = neighbor_subset(one, 300)
    ref = ref_radius(points, queries[:300], np.full(300, 0.03), metric="L2", inclusive=True)
    assert_same_neighbors(sub, ref, "first 300 queries vs NumPy reference")


def neighbor_subset(res, n):
    """The result restricted to its first n queries."""
    rs = res.neighbors_row_splits[:n + 1]
    return geomops.NeighborSearchResult(res.neighbors_index[:rs[-1]], rs, res.neighbors_distance[:rs[-1]])
