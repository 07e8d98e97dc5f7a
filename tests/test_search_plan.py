"""The two-phase binding contract of the searches (geomops/search.h): ``search_*_count`` fills the
row splits and returns a plan with ``total`` entries; the caller allocates the outputs and
``plan.fill`` writes them. Exercised on the CPU bindings directly, against the public ops."""

import gc

import numpy as np
import pytest

import geomops
from geomops import _backend
from geomops import search as S

K = _backend.cpu().kernels
PS = np.array([0, 40, 40, 100, 100], np.int64)  # items 1 and 3 have no points
QS = np.array([0, 10, 20, 25, 30], np.int64)    # so queries 10-19 and 25-29 have no points to find


def clouds(dtype, seed=0):
    rng = np.random.default_rng(seed)
    points = rng.random((100, 3)).astype(dtype)
    queries = rng.random((30, 3)).astype(dtype)
    queries[:5] = points[:5]  # exact matches for ignore_query_point
    return points, queries


def fill(plan, index_dtype, float_dtype, return_distances):
    index = np.full(plan.total, -7, index_dtype)
    distance = np.full(plan.total, np.nan, float_dtype) if return_distances else None
    plan.fill(index, distance)
    return index, distance


def counts(kind, points, queries, rs, index_dtype, return_distances, ignore, metric="L2", k=4):
    is64 = np.dtype(index_dtype) == np.int64
    if kind == "fixed":
        grid = K.search_grid_build(points, PS, 0.3, 2)
        return K.search_fixed_radius_count(grid, queries, QS, rs, metric, ignore, return_distances, False, is64, 2)
    if kind == "radius":
        radii = np.full(len(queries), 0.3, points.dtype)
        return K.search_radius_count(points, PS, queries, QS, radii, rs, metric, ignore, return_distances, False,
                                     False, is64, 2)
    return K.search_knn_count(points, PS, queries, QS, k, rs, metric, ignore, return_distances, is64, 2)


def public(kind, points, queries, index_dtype, return_distances, ignore, metric="L2", k=4):
    kw = dict(index_dtype=index_dtype, return_distances=return_distances, ignore_query_point=ignore, metric=metric)
    if kind == "fixed":
        return geomops.fixed_radius_search(points, queries, 0.3, PS, QS, **kw)
    if kind == "radius":
        return geomops.radius_search(points, queries, np.full(len(queries), 0.3, points.dtype), PS, QS, **kw)
    return geomops.knn_search(points, queries, k, PS, QS, **kw)


@pytest.mark.parametrize("kind", ["fixed", "radius", "knn"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("ignore", [False, True])
@pytest.mark.parametrize("return_distances", [False, True])
def test_count_then_fill(kind, dtype, index_dtype, ignore, return_distances):
    points, queries = clouds(dtype)
    rs = np.full(len(queries) + 1, -1, np.int64)
    plan = counts(kind, points, queries, rs, index_dtype, return_distances, ignore)
    assert rs[0] == 0 and np.all(np.diff(rs) >= 0) and plan.total == rs[-1] > 0
    index, distance = fill(plan, index_dtype, dtype, return_distances)
    ref = public(kind, points, queries, index_dtype, return_distances, ignore)
    np.testing.assert_array_equal(rs, ref.neighbors_row_splits)
    np.testing.assert_array_equal(index, ref.neighbors_index)
    if return_distances:
        assert distance.tobytes() == ref.neighbors_distance.tobytes()
    row_counts = np.diff(rs)
    assert np.all(row_counts[10:20] == 0) and np.all(row_counts[25:30] == 0)
    if kind == "knn":  # min(k, n_b) each; ignore_query_point then drops the exact matches (queries 0-4)
        np.testing.assert_array_equal(row_counts[:5], 3 if ignore else 4)
        np.testing.assert_array_equal(row_counts[5:10], 4)
        np.testing.assert_array_equal(row_counts[20:25], 4)
    with pytest.raises(ValueError, match="already filled"):
        plan.fill(index, distance)


@pytest.mark.parametrize("kind", ["fixed", "radius", "knn"])
def test_empty_results_need_no_buffers(kind):
    points, queries = clouds(np.float32)
    far = queries + np.float32(10)  # nothing within the radius; kNN: no query has points
    rs = np.full(len(queries) + 1, -1, np.int64)
    if kind == "knn":
        qs_empty = np.array([0, 0, 30, 30, 30], np.int64)  # every query in the item without points
        plan = K.search_knn_count(points, PS, far, qs_empty, 3, rs, "L2", False, True, False, 2)
    else:
        plan = counts(kind, points, far, rs, np.int32, True, False)
    assert plan.total == 0
    np.testing.assert_array_equal(rs, 0)
    plan.fill(np.empty(0, np.int32), np.empty(0, np.float32))


def test_knn_ignore_query_point_can_remove_every_neighbor():
    points = np.zeros((1, 3), np.float32)
    rs = np.empty(2, np.int64)
    plan = K.search_knn_count(points, np.array([0, 1]), points, np.array([0, 1]), 1, rs, "L2", True, True, False, 2)
    assert plan.total == 0 and rs.tolist() == [0, 0]
    plan.fill(np.empty(0, np.int32), np.empty(0, np.float32))


@pytest.mark.parametrize("kind", ["fixed", "radius", "knn"])
def test_plan_keeps_its_inputs_alive(kind):
    points, queries = clouds(np.float64, seed=3)
    ref = public(kind, points, queries, np.int64, True, True)
    rs = np.empty(len(queries) + 1, np.int64)
    plan = counts(kind, points.copy(), queries.copy(), rs, np.int64, True, True)
    gc.collect()  # the copies above are only referenced by the plan now
    index, distance = fill(plan, np.int64, np.float64, True)
    np.testing.assert_array_equal(index, ref.neighbors_index)
    assert distance.tobytes() == ref.neighbors_distance.tobytes()


def test_fill_checks_the_distance_buffer():
    points, queries = clouds(np.float32)
    rs = np.empty(len(queries) + 1, np.int64)
    plan = counts("radius", points, queries, rs, np.int32, True, False)
    with pytest.raises(RuntimeError, match="invalid argument"):
        plan.fill(np.empty(plan.total, np.int32), None)  # distances were asked for at the count
    plan = counts("radius", points, queries, rs, np.int32, False, False)
    plan.fill(np.empty(plan.total, np.int32), None)  # not asked for: none needed


def test_unfilled_plans_are_freed():
    points, queries = clouds(np.float32)
    for _ in range(3):
        for kind in ("fixed", "radius", "knn"):
            counts(kind, points, queries, np.empty(len(queries) + 1, np.int64), np.int32, True, True)
    gc.collect()


def test_metric_names_match_the_header():
    assert sorted(K.SEARCH_METRICS) == sorted(S.METRICS)
    assert sorted(K.SEARCH_METRICS.values()) == [0, 1, 2]
