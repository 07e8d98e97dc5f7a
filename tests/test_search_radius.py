"""radius_search (per-query radii, strict test) against cKDTree and the NumPy reference."""

import numpy as np
import pytest

import geomops
from reference_search import assert_same_neighbors, ckdtree_ball, random_row_splits, ref_radius, rows

METRICS = ("L1", "L2", "Linf")
DTYPES = (np.float32, np.float64)


def cloud(n, dtype, seed):
    return np.random.default_rng(seed).random((n, 3)).astype(dtype)


def check(res, points, queries, radii, ps=None, qs=None, metric="L2", ignore=False, normalize=False,
          index_dtype=np.int32):
    assert res.neighbors_index.dtype == np.dtype(index_dtype)
    assert res.neighbors_row_splits.shape == (len(queries) + 1,)
    ref = ref_radius(points, queries, radii, ps, qs, metric, ignore, inclusive=False, normalize=normalize)
    assert_same_neighbors(res, ref, "vs NumPy reference")
    if not normalize:
        kd = ckdtree_ball(points, queries, radii.astype(np.float64), ps, qs, metric)
        if ignore:
            kd = [s - set(np.nonzero(np.all(points == queries[i], axis=1))[0].tolist()) for i, s in enumerate(kd)]
        assert_same_neighbors(res, kd, "vs cKDTree")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sizes", [(10, 5), (31, 33), (33, 31), (123, 345), (1000, 200)])
def test_radius_search_against_references(dtype, sizes, device):
    num_points, num_queries = sizes
    points = cloud(num_points, dtype, num_points)
    queries = cloud(num_queries, dtype, num_queries + 1)
    rng = np.random.default_rng(num_points + num_queries)
    radii = (0.05 + 0.3 * rng.random(num_queries)).astype(dtype)
    for metric in METRICS:
        for ignore in (False, True):
            q, r = (points[:num_queries], radii[:num_points]) if ignore else (queries, radii)
            for normalize in (False, True):
                res = geomops.radius_search(points, q, r, metric=metric, ignore_query_point=ignore,
                                            return_distances=True, normalize_distances=normalize, device=device)
                check(res, points, q, r, metric=metric, ignore=ignore, normalize=normalize)
                res64 = geomops.radius_search(points, q, r, index_dtype=np.int64, metric=metric,
                                              ignore_query_point=ignore, return_distances=True,
                                              normalize_distances=normalize, device=device)
                assert res64.neighbors_index.dtype == np.int64
                for x, y in zip(res, res64):
                    np.testing.assert_array_equal(x, y)
        res = geomops.radius_search(points, queries, radii, metric=metric, device=device)
        assert res.neighbors_distance.shape == (0,) and res.neighbors_distance.dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_size", [2, 3, 8])
def test_radius_search_batches(dtype, batch_size, device):
    rng = np.random.default_rng(10 + batch_size)
    points, queries = cloud(300, dtype, 20), cloud(90, dtype, 21)
    radii = (0.1 + 0.2 * rng.random(90)).astype(dtype)
    ps = random_row_splits(len(points), batch_size, rng)
    qs = random_row_splits(len(queries), batch_size, rng)
    for metric in METRICS:
        res = geomops.radius_search(points, queries, radii, ps, qs, metric=metric, return_distances=True, device=device)
        check(res, points, queries, radii, ps, qs, metric)
        for b in range(batch_size):
            idx = res.neighbors_index[res.neighbors_row_splits[qs[b]]:res.neighbors_row_splits[qs[b + 1]]]
            assert np.all((idx >= ps[b]) & (idx < ps[b + 1]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sizes", [(0, 7), (9, 0), (0, 0)])
def test_radius_search_empty_point_sets(dtype, sizes, device):
    points, queries = cloud(sizes[0], dtype, 1), cloud(sizes[1], dtype, 2)
    for index_dtype in (np.int32, np.int64):
        res = geomops.radius_search(points, queries, np.full(sizes[1], 0.5, dtype), index_dtype=index_dtype,
                                    return_distances=True, device=device)
        assert res.neighbors_index.shape == (0,) and res.neighbors_index.dtype == index_dtype
        np.testing.assert_array_equal(res.neighbors_row_splits, np.zeros(sizes[1] + 1, np.int64))
        assert res.neighbors_distance.shape == (0,) and res.neighbors_distance.dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
def test_normalized_distances(dtype, device):
    points, queries = cloud(500, dtype, 30), cloud(40, dtype, 31)
    radii = np.linspace(0.1, 0.4, 40).astype(dtype)
    for metric in METRICS:
        plain = geomops.radius_search(points, queries, radii, metric=metric, return_distances=True, sort=True,
                                      device=device)
        norm = geomops.radius_search(points, queries, radii, metric=metric, return_distances=True, sort=True,
                                     normalize_distances=True, device=device)
        np.testing.assert_array_equal(plain.neighbors_index, norm.neighbors_index)
        for i, ((_, d), (_, dn)) in enumerate(zip(rows(plain), rows(norm))):
            scale = radii[i] * radii[i] if metric == "L2" else radii[i]
            np.testing.assert_allclose(dn, d / scale, rtol=1e-7)
            assert np.all(dn < 1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_radius_search_sort_and_radii_conversion(dtype, device):
    points, queries = cloud(400, dtype, 40), cloud(30, dtype, 41)
    radii = [0.2] * 30  # Python floats take the points' dtype
    s = geomops.radius_search(points, queries, radii, sort=True, return_distances=True, device=device)
    assert s.neighbors_distance.dtype == dtype
    a = geomops.radius_search(points, queries, np.full(30, 0.2, dtype), return_distances=True, device=device)
    np.testing.assert_array_equal(s.neighbors_row_splits, a.neighbors_row_splits)
    for (ia, da), (is_, ds) in zip(rows(a), rows(s)):
        assert np.all(np.diff(is_) > 0)
        order = np.argsort(ia)
        np.testing.assert_array_equal(ia[order], is_)
        np.testing.assert_array_equal(da[order], ds)


def test_radius_search_duplicates_and_zero_radius(device):
    base = cloud(40, np.float64, 50)
    points = np.concatenate([base, base[:10]])
    res = geomops.radius_search(points, base, np.full(40, 0.3), ignore_query_point=True, return_distances=True,
                                device=device)
    for i, (idx, dist) in enumerate(rows(res)):
        assert not np.any(np.all(points[idx] == base[i], axis=1)) and np.all(dist > 0)
    check(res, points, base, np.full(40, 0.3), ignore=True)
    res = geomops.radius_search(points, base, np.zeros(40), device=device)  # strict: nothing is closer than 0
    assert res.neighbors_index.size == 0


@pytest.mark.parametrize("sort", [False, True])
def test_radius_search_thread_count_does_not_change_the_result(sort, device):
    points, queries = cloud(10000, np.float32, 60), cloud(3000, np.float32, 61)
    radii = np.random.default_rng(62).uniform(0.03, 0.08, 3000).astype(np.float32)
    ps = np.array([0, 4000, 10000], np.int64)
    qs = np.array([0, 1000, 3000], np.int64)
    for metric in METRICS:
        one = geomops.radius_search(points, queries, radii, ps, qs, metric=metric, return_distances=True,
                                    sort=sort, num_threads=1, device=device)
        two = geomops.radius_search(points, queries, radii, ps, qs, metric=metric, return_distances=True,
                                    sort=sort, num_threads=2, device=device)
        for x, y in zip(one, two):
            assert x.dtype == y.dtype and x.tobytes() == y.tobytes()


def test_degenerate_clouds(device):
    # all points equal, points on a line, a huge outlier: the tree must still answer exactly
    rng = np.random.default_rng(70)
    clouds = [np.ones((100, 3)), np.c_[rng.random(200), np.zeros(200), np.zeros(200)],
              np.concatenate([rng.random((150, 3)), [[1e8, 1e8, 1e8]]])]
    for points in clouds:
        queries = np.concatenate([points[:10], rng.random((10, 3))])
        radii = np.full(len(queries), 0.25)
        for metric in METRICS:
            res = geomops.radius_search(points, queries, radii, metric=metric, return_distances=True, device=device)
            check(res, points, queries, radii, metric=metric)
