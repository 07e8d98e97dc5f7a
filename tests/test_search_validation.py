"""Bad inputs to the searches raise TypeError / ValueError naming the argument."""

import numpy as np
import pytest

import geomops
from geomops import search as S

P = np.random.default_rng(0).random((30, 3)).astype(np.float32)
Q = np.random.default_rng(1).random((10, 3)).astype(np.float32)
R = np.full(10, 0.2, np.float32)


def calls(device):
    """One entry per search: (name, function taking keyword overrides)."""
    return [
        ("fixed", lambda **kw: geomops.fixed_radius_search(**{**dict(points=P, queries=Q, radius=0.2, device=device),
                                                              **kw})),
        ("radius", lambda **kw: geomops.radius_search(**{**dict(points=P, queries=Q, radii=R, device=device), **kw})),
        ("knn", lambda **kw: geomops.knn_search(**{**dict(points=P, queries=Q, k=3, device=device), **kw})),
    ]


COMMON_BAD = [
    (dict(points=P.astype(np.int64)), TypeError, "points"),
    (dict(points=P[:, :2]), ValueError, "points"),
    (dict(points=P.ravel()), ValueError, "points"),
    (dict(points=P[None]), ValueError, "points"),
    (dict(queries=Q.astype(np.float64)), TypeError, "queries"),
    (dict(queries=Q[:, :1]), ValueError, "queries"),
    (dict(points=np.where(np.arange(30)[:, None] == 3, np.nan, P).astype(np.float32)), ValueError, "points"),
    (dict(queries=np.where(np.arange(10)[:, None] == 3, np.inf, Q).astype(np.float32)), ValueError, "queries"),
    (dict(points_row_splits=[0, 10, 30], queries_row_splits=[0, 10]), ValueError, "row_splits"),
    (dict(points_row_splits=[0, 10, 29], queries_row_splits=[0, 5, 10]), ValueError, "points_row_splits"),
    (dict(points_row_splits=[0, 10, 30], queries_row_splits=[0, 11, 10]), ValueError, "queries_row_splits"),
    (dict(points_row_splits=[1, 10, 30], queries_row_splits=[0, 5, 10]), ValueError, "points_row_splits"),
    (dict(points_row_splits=np.array([0.0, 30.0]), queries_row_splits=[0, 10]), TypeError, "points_row_splits"),
    (dict(index_dtype=np.float32), TypeError, "index_dtype"),
    (dict(index_dtype=np.uint32), TypeError, "index_dtype"),
    (dict(index_dtype="no such dtype"), TypeError, "index_dtype"),
    (dict(metric="L3"), ValueError, r"metric must be one of \('L1', 'L2', 'Linf'\)"),
    (dict(metric="l2"), ValueError, "metric"),
    (dict(ignore_query_point=1), TypeError, "ignore_query_point"),
    (dict(return_distances="yes"), TypeError, "return_distances"),
    (dict(num_threads=0), ValueError, "num_threads"),
]


@pytest.mark.parametrize("which", ["fixed", "radius", "knn"])
@pytest.mark.parametrize("case", range(len(COMMON_BAD)))
def test_common_bad_inputs(which, case, device):
    fn = dict(calls(device))[which]
    kwargs, exc, match = COMMON_BAD[case]
    with pytest.raises(exc, match=match):
        fn(**kwargs)


def test_bad_radius(device):
    for radius, exc in ((-0.1, ValueError), (float("nan"), ValueError), (float("inf"), ValueError),
                        ("0.1", TypeError), (None, TypeError)):
        with pytest.raises(exc, match="radius"):
            geomops.fixed_radius_search(P, Q, radius, device=device)
    with pytest.raises(ValueError, match="hash_table_size_factor"):
        geomops.fixed_radius_search(P, Q, 0.1, hash_table_size_factor=-1, device=device)
    with pytest.raises(TypeError, match="sort"):
        geomops.fixed_radius_search(P, Q, 0.1, sort=None, device=device)


def test_bad_radii(device):
    bad = [
        (R[:-1], ValueError, "radii"),
        (R[:, None], ValueError, "radii"),
        (R.astype(np.float64), TypeError, "radii"),
        (np.where(np.arange(10) == 2, -1, R).astype(np.float32), ValueError, "radii"),
        (np.where(np.arange(10) == 2, np.nan, R).astype(np.float32), ValueError, "radii"),
        (["a"] * 10, TypeError, "radii"),
        (-0.2, ValueError, "radii"),  # a scalar is given to every query (test_mismatch_errors), but checked
    ]
    for radii, exc, match in bad:
        with pytest.raises(exc, match=match):
            geomops.radius_search(P, Q, radii, device=device)
    with pytest.raises(TypeError, match="normalize_distances"):
        geomops.radius_search(P, Q, R, normalize_distances=0, device=device)


def test_bad_k(device):
    for k, exc in ((0, ValueError), (-3, ValueError), (2.5, TypeError), ("3", TypeError)):
        with pytest.raises(exc, match="k"):
            geomops.knn_search(P, Q, k, device=device)
    with pytest.raises(ValueError, match="k must be greater than zero"):
        geomops.knn_search(P, Q, 0, device=device)


def test_int32_indices_never_wrap():
    S._check_index_capacity(2 ** 31, np.dtype(np.int32))  # the last index is 2**31 - 1: fits
    S._check_index_capacity(2 ** 40, np.dtype(np.int64))
    with pytest.raises(ValueError, match="index_dtype"):
        S._check_index_capacity(2 ** 31 + 1, np.dtype(np.int32))


def test_inputs_are_not_modified_and_views_are_accepted(device):
    big = np.random.default_rng(2).random((40, 6))
    points = big[:, ::2]  # non-contiguous view
    keep = big.copy()
    res = geomops.fixed_radius_search(points, points[::3], 0.3, sort=True, device=device)
    ref = geomops.fixed_radius_search(np.ascontiguousarray(points), np.ascontiguousarray(points[::3]), 0.3, sort=True,
                                      device=device)
    np.testing.assert_array_equal(res.neighbors_index, ref.neighbors_index)
    np.testing.assert_array_equal(big, keep)


def test_exports():
    for name in ("build_spatial_hash_table", "fixed_radius_search", "radius_search", "knn_search",
                 "SpatialHashTable", "NeighborSearchResult"):
        assert name in S.__all__
        assert getattr(geomops, name) is getattr(S, name)
        assert getattr(geomops.ops, name) is getattr(S, name)


@pytest.mark.parametrize("which", ["fixed", "radius", "knn", "table"])
def test_device_argument(which):
    op = dict(calls(None), table=lambda **kw: geomops.build_spatial_hash_table(P, 0.2, **kw))[which]
    with pytest.raises(ValueError, match="device"):
        op(device="gpu")
    with pytest.raises(TypeError, match="device"):
        op(device=0)
    ref = op()
    for a, b in zip(op(device="cpu"), ref):
        np.testing.assert_array_equal(a, b)
    if not geomops.cuda_available():
        with pytest.raises(RuntimeError, match="cuda"):
            op(device="cuda")


def test_device_is_keyword_only():
    with pytest.raises(TypeError):
        geomops.knn_search(P, Q, 3, None, None, np.int32, "L2", False, False, None, "cpu")
