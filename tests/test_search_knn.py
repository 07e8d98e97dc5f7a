"""knn_search against cKDTree.query and the NumPy reference."""

import numpy as np
import pytest

import geomops
from reference_search import assert_same_neighbors, ckdtree_knn, random_row_splits, ref_knn, rows

METRICS = ("L1", "L2", "Linf")
DTYPES = (np.float32, np.float64)


def cloud(n, dtype, seed):
    return np.random.default_rng(seed).random((n, 3)).astype(dtype)


def check(res, points, queries, k, ps=None, qs=None, metric="L2", ignore=False, index_dtype=np.int32,
          ckdtree=True):
    """Rows equal the reference exactly (order included: by distance, ties by index)."""
    assert res.neighbors_index.dtype == np.dtype(index_dtype)
    assert res.neighbors_row_splits.dtype == np.int64 and res.neighbors_row_splits.shape == (len(queries) + 1,)
    ref = ref_knn(points, queries, k, ps, qs, metric, ignore)
    for i, (idx, dist) in enumerate(rows(res)):
        np.testing.assert_array_equal(idx, ref[i][0], err_msg=f"query {i}")
        if dist.size or len(idx) == 0:
            assert dist.dtype == points.dtype
            np.testing.assert_allclose(dist, ref[i][1], rtol=1e-7, atol=1e-8)
    if ckdtree and not ignore:  # cKDTree has no ignore option and breaks ties its own way
        assert_same_neighbors(res, ckdtree_knn(points, queries, k, ps, qs, metric), "vs cKDTree")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sizes", [(10, 5), (31, 33), (33, 31), (123, 345), (1000, 200)])
@pytest.mark.parametrize("k", [1, 5, 16, 40])
def test_knn_search_against_references(dtype, sizes, k, device):
    num_points, num_queries = sizes
    points = cloud(num_points, dtype, num_points + k)
    queries = cloud(num_queries, dtype, num_queries + 1)
    for metric in METRICS:
        res = geomops.knn_search(points, queries, k, metric=metric, return_distances=True, device=device)
        check(res, points, queries, k, metric=metric)
        assert np.all(np.diff(res.neighbors_row_splits) == min(k, num_points))
        res64 = geomops.knn_search(points, queries, k, index_dtype=np.int64, metric=metric, return_distances=True,
                                   device=device)
        for x, y in zip(res, res64):
            np.testing.assert_array_equal(x, y)
        q = points[:num_queries]
        res = geomops.knn_search(points, q, k, metric=metric, ignore_query_point=True, return_distances=True,
                                 device=device)
        check(res, points, q, k, metric=metric, ignore=True)
    res = geomops.knn_search(points, queries, k, device=device)
    assert res.neighbors_distance.shape == (0,) and res.neighbors_distance.dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
def test_ignore_query_point_filters_after_the_search(dtype, device):
    points = cloud(200, dtype, 5)
    res = geomops.knn_search(points, points, 1, ignore_query_point=True, device=device)
    assert res.neighbors_index.size == 0
    np.testing.assert_array_equal(res.neighbors_row_splits, np.zeros(201, np.int64))
    res = geomops.knn_search(points, points, 8, ignore_query_point=True, device=device)
    assert np.all(np.diff(res.neighbors_row_splits) == 7)
    # with a duplicate, both copies found among the k are removed
    dup = np.concatenate([points, points[:3]])
    res = geomops.knn_search(dup, points[:3], 8, ignore_query_point=True, device=device)
    assert np.all(np.diff(res.neighbors_row_splits) == 6)
    check(res, dup, points[:3], 8, ignore=True)


@pytest.mark.parametrize("metric", METRICS)
def test_ties_are_broken_by_index(metric, device):
    # a lattice with power-of-two spacing: many exactly equal distances
    g = np.arange(4) * 0.5
    points = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    rng = np.random.default_rng(6)
    points = points[rng.permutation(len(points))]
    queries = np.array([[0.5, 0.5, 0.5], [0.75, 0.25, 1.0], [0, 0, 0]])
    for k in (1, 6, 7, 13, 27, 64, 100):
        res = geomops.knn_search(points, queries, k, metric=metric, return_distances=True, device=device)
        check(res, points, queries, k, metric=metric, ckdtree=False)
        for _, dist in rows(res):
            assert np.all(np.diff(dist) >= 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_size", [2, 3, 8])
def test_knn_search_batches(dtype, batch_size, device):
    rng = np.random.default_rng(20 + batch_size)
    points, queries = cloud(200, dtype, 30), cloud(80, dtype, 31)
    ps = random_row_splits(len(points), batch_size, rng)
    qs = random_row_splits(len(queries), batch_size, rng)
    for metric in METRICS:
        for k in (3, 30):
            res = geomops.knn_search(points, queries, k, ps, qs, metric=metric, return_distances=True, device=device)
            check(res, points, queries, k, ps, qs, metric)
            counts = np.diff(res.neighbors_row_splits)
            for b in range(batch_size):
                assert np.all(counts[qs[b]:qs[b + 1]] == min(k, ps[b + 1] - ps[b]))
                idx = res.neighbors_index[res.neighbors_row_splits[qs[b]]:res.neighbors_row_splits[qs[b + 1]]]
                assert np.all((idx >= ps[b]) & (idx < ps[b + 1]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sizes", [(0, 7), (9, 0), (0, 0)])
def test_knn_search_empty_point_sets(dtype, sizes, device):
    points, queries = cloud(sizes[0], dtype, 1), cloud(sizes[1], dtype, 2)
    for index_dtype in (np.int32, np.int64):
        res = geomops.knn_search(points, queries, 4, index_dtype=index_dtype, return_distances=True, device=device)
        assert res.neighbors_index.shape == (0,) and res.neighbors_index.dtype == index_dtype
        np.testing.assert_array_equal(res.neighbors_row_splits, np.zeros(sizes[1] + 1, np.int64))
        assert res.neighbors_distance.shape == (0,) and res.neighbors_distance.dtype == dtype


def test_k_larger_than_the_point_set(device):
    points, queries = cloud(12, np.float64, 3), cloud(4, np.float64, 4)
    res = geomops.knn_search(points, queries, 10 ** 9, return_distances=True, device=device)
    assert np.all(np.diff(res.neighbors_row_splits) == 12)
    check(res, points, queries, 12)


def test_knn_thread_count_does_not_change_the_result(device):
    points, queries = cloud(10000, np.float32, 7), cloud(3000, np.float32, 8)
    ps = np.array([0, 3000, 3000, 10000], np.int64)
    qs = np.array([0, 1000, 1500, 3000], np.int64)
    for metric in METRICS:
        for ignore in (False, True):
            kw = dict(metric=metric, ignore_query_point=ignore, return_distances=True)
            one = geomops.knn_search(points, queries, 16, ps, qs, num_threads=1, **kw, device=device)
            two = geomops.knn_search(points, queries, 16, ps, qs, num_threads=2, **kw, device=device)
            for x, y in zip(one, two):
                assert x.dtype == y.dtype and x.tobytes() == y.tobytes()


def test_degenerate_clouds(device):
    rng = np.random.default_rng(9)
    clouds = [np.ones((100, 3)), np.c_[rng.random(200), np.zeros(200), np.zeros(200)],
              np.concatenate([rng.random((150, 3)), [[1e8, 1e8, 1e8]]])]
    for points in clouds:
        queries = np.concatenate([points[:10], rng.random((10, 3)), [[-1e9, 5e8, 0]]])
        for metric in METRICS:
            res = geomops.knn_search(points, queries, 20, metric=metric, return_distances=True, device=device)
            check(res, points, queries, 20, metric=metric, ckdtree=False)  # ties: see the reference


def test_knn_large_query_set(device):
    # >= 65536 queries: the query-order sort runs split across threads
    points, queries = cloud(20000, np.float32, 10), cloud(70000, np.float32, 11)
    one = geomops.knn_search(points, queries, 4, return_distances=True, num_threads=1, device=device)
    two = geomops.knn_search(points, queries, 4, return_distances=True, num_threads=2, device=device)
    for x, y in zip(one, two):
        assert x.tobytes() == y.tobytes()
    ref = ref_knn(points, queries[:200], 4)
    got = one.neighbors_index.reshape(-1, 4)[:200]
    np.testing.assert_array_equal(got, np.stack([r[0] for r in ref]))
