"""build_spatial_hash_table against the NumPy model of Open3D's hash (spec §4), and reuse / mismatch
detection of tables in fixed_radius_search (spec correction #8)."""

import pickle

import numpy as np
import pytest

import geomops
from reference_search import random_row_splits, ref_hash_table, ref_spatial_hash

DTYPES = (np.float32, np.float64)


def check_table(table, points, radius, ps=None, factor=1 / 64, max_size=33554432):
    bins, cell_splits, splits = ref_hash_table(points, radius, ps, factor, max_size)
    index, cells, tsplits = table
    assert index.dtype == cells.dtype == tsplits.dtype == np.int32
    np.testing.assert_array_equal(cells, cell_splits)
    np.testing.assert_array_equal(tsplits, splits)
    assert sorted(index.tolist()) == list(range(len(points)))
    for c in range(len(cells) - 1):
        members = index[cells[c]:cells[c + 1]]
        assert np.all(bins[members] == c)
        assert np.all(np.diff(members) > 0)  # ascending inside a bin (deterministic)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("radius", [0.0415, 0.1, 0.3])
@pytest.mark.parametrize("factor", [1 / 64, 1 / 8, 0.5, 3.0])
def test_cell_splits_equal_the_numpy_model(dtype, radius, factor, device):
    rng = np.random.default_rng(int(radius * 1000) + int(factor * 64))
    points = ((rng.random((700, 3)) - 0.3) * 5).astype(dtype)  # negative cells too
    table = geomops.build_spatial_hash_table(points, radius, hash_table_size_factor=factor, device=device)
    check_table(table, points, radius, factor=factor)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_size", [2, 3, 8])
def test_batches_and_max_size(dtype, batch_size, device):
    rng = np.random.default_rng(batch_size)
    points = rng.random((500, 3)).astype(dtype)
    ps = random_row_splits(len(points), batch_size, rng)
    for factor, max_size in ((1 / 8, 33554432), (1.0, 7), (1 / 64, 1)):
        table = geomops.build_spatial_hash_table(points, 0.1, ps, factor, max_size, device=device)
        check_table(table, points, 0.1, ps, factor, max_size)
        assert np.all(np.diff(table.hash_table_splits) <= max_size)


def test_hash_uses_wrapping_sign_extended_32bit_arithmetic(device):
    # big coordinates: the products wrap, the hash is negative for some cells, and cells beyond the
    # int32 range become INT32_MIN like Open3D's float->int conversion on x86
    points = np.array([[1e5, -3e5, 7e4], [-2e5, 1.5e5, 9e5], [3e9, 0, -5e9], [0.0, 0.0, 0.0]], np.float64)
    h = ref_spatial_hash(points, 0.01)
    assert np.any(h >= np.uint64(2 ** 63))  # sign-extended negatives
    for factor in (1.0, 2.0):
        table = geomops.build_spatial_hash_table(points, 0.01, hash_table_size_factor=factor, device=device)
        check_table(table, points, 0.01, factor=factor)


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_point_sets(dtype, device):
    table = geomops.build_spatial_hash_table(np.zeros((0, 3), dtype), 0.2, device=device)
    assert table.hash_table_index.shape == (0,)
    np.testing.assert_array_equal(table.hash_table_cell_splits, [0, 0])
    np.testing.assert_array_equal(table.hash_table_splits, [0, 1])
    table = geomops.build_spatial_hash_table(np.zeros((0, 3), dtype), 0.2, points_row_splits=[0, 0, 0], device=device)
    np.testing.assert_array_equal(table.hash_table_cell_splits, [0, 0, 0])


def test_table_unpacks_as_open3d_tuple_and_carries_its_radius(device):
    points = np.random.default_rng(0).random((100, 3)).astype(np.float32)
    table = geomops.build_spatial_hash_table(points, 0.25, device=device)
    index, cells, splits = table
    assert isinstance(table, tuple) and len(table) == 3
    assert table.hash_table_index is index and table.hash_table_cell_splits is cells
    assert table.radius == 0.25 and table.num_points == 100 and table.dtype == np.float32
    np.testing.assert_array_equal(table.points_row_splits, [0, 100])


def test_table_reuse_gives_the_same_result_and_caches_the_index(device):
    rng = np.random.default_rng(1)
    points, queries = rng.random((400, 3)), rng.random((100, 3))
    table = geomops.build_spatial_hash_table(points, 0.15, device=device)
    plain = geomops.fixed_radius_search(points, queries, 0.15, return_distances=True, device=device)
    first = geomops.fixed_radius_search(points, queries, 0.15, hash_table=table, return_distances=True, device=device)
    assert getattr(table, "_grid", None) is not None
    second = geomops.fixed_radius_search(points, queries, 0.15, hash_table=table, return_distances=True, device=device)
    raw = geomops.fixed_radius_search(points, queries, 0.15, hash_table=tuple(table), return_distances=True,
                                      device=device)
    for res in (first, second, raw):
        for a, b in zip(plain, res):
            np.testing.assert_array_equal(a, b)
    # pickling drops the cached index; the unpickled table still works and is still checked
    clone = pickle.loads(pickle.dumps(table))
    assert getattr(clone, "_grid", None) is None and clone.radius == 0.15
    res = geomops.fixed_radius_search(points, queries, 0.15, hash_table=clone, return_distances=True, device=device)
    np.testing.assert_array_equal(res.neighbors_index, plain.neighbors_index)
    with pytest.raises(ValueError, match="hash_table"):
        geomops.fixed_radius_search(points, queries, 0.3, hash_table=clone, device=device)


@pytest.mark.parametrize("cached", [False, True])
def test_table_for_another_radius_or_point_set_is_rejected(cached, device):
    rng = np.random.default_rng(2)
    points, queries = rng.random((300, 3)).astype(np.float32), rng.random((50, 3)).astype(np.float32)
    table = geomops.build_spatial_hash_table(points, 0.1, device=device)
    if cached:
        geomops.fixed_radius_search(points, queries, 0.1, hash_table=table, device=device)
    other = rng.random((300, 3)).astype(np.float32)
    cases = [
        dict(points=points, radius=0.2),                              # other radius
        dict(points=other, radius=0.1),                               # same size, other coordinates
        dict(points=points[:299], radius=0.1),                        # other size
        dict(points=points.astype(np.float64), radius=0.1),           # other dtype
        dict(points=points, radius=0.1, points_row_splits=[0, 150, 300],
             queries_row_splits=[0, 25, 50]),                         # other row splits
    ]
    for case in cases:
        q = queries.astype(case["points"].dtype)
        with pytest.raises(ValueError, match="hash_table"):
            geomops.fixed_radius_search(case["points"], q, case["radius"], case.get("points_row_splits"),
                                        case.get("queries_row_splits"), hash_table=table, device=device)
    # plain tuples carry no radius: their contents are checked against the points
    raw = tuple(table)
    for pts, radius in ((points, 0.2), (other, 0.1)):
        with pytest.raises(ValueError, match="hash_table"):
            geomops.fixed_radius_search(pts, queries, radius, hash_table=raw, device=device)
    scrambled = (raw[0][::-1].copy(), raw[1], raw[2])  # every point once, but in wrong bins
    with pytest.raises(ValueError, match="hash_table"):
        geomops.fixed_radius_search(points, queries, 0.1, hash_table=scrambled, device=device)


def test_raw_table_arrays_are_validated(device):
    points = np.random.default_rng(3).random((50, 3))
    index, cells, splits = geomops.build_spatial_hash_table(points, 0.2, device=device)
    bad = [
        ((index.astype(np.int64), cells, splits), TypeError, "hash_table_index"),
        ((index, cells.astype(np.float32), splits), TypeError, "hash_table_cell_splits"),
        ((index, cells, splits.astype(np.int64)), TypeError, "hash_table_splits"),
        ((index[:-1], cells, splits), ValueError, "hash_table_index"),
        ((index, cells[:-1], splits), ValueError, "hash_table"),
        ((index, cells, np.array([0, 1, 1], np.int32)), ValueError, "hash_table_splits"),
        ((index + 100, cells, splits), ValueError, "hash_table_index"),
        ((index, cells.reshape(1, -1), splits), ValueError, "hash_table_cell_splits"),
        ((index, cells), TypeError, "hash_table"),
        ("table", TypeError, "hash_table"),
    ]
    for table, exc, match in bad:
        with pytest.raises(exc, match=match):
            geomops.fixed_radius_search(points, points, 0.2, hash_table=table, device=device)


def test_bad_build_arguments(device):
    points = np.random.default_rng(4).random((20, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="radius"):
        geomops.build_spatial_hash_table(points, -0.1, device=device)
    with pytest.raises(ValueError, match="radius"):
        geomops.build_spatial_hash_table(points, float("nan"), device=device)
    with pytest.raises(ValueError, match="hash_table_size_factor"):
        geomops.build_spatial_hash_table(points, 0.1, hash_table_size_factor=0, device=device)
    with pytest.raises(ValueError, match="max_hash_table_size"):
        geomops.build_spatial_hash_table(points, 0.1, max_hash_table_size=0, device=device)
    with pytest.raises(ValueError, match="points_row_splits"):
        geomops.build_spatial_hash_table(points, 0.1, points_row_splits=[0, 5, 19], device=device)
    with pytest.raises(TypeError, match="points"):
        geomops.build_spatial_hash_table(points.astype(np.int32), 0.1, device=device)
    with pytest.raises(ValueError, match="points"):
        geomops.build_spatial_hash_table(points[:, :2], 0.1, device=device)
    with pytest.raises(ValueError, match="hash_table_size_factor"):
        geomops.build_spatial_hash_table(points, 0.1, points_row_splits=[0, 10, 20],
                                         hash_table_size_factor=2.0 ** 31, max_hash_table_size=2 ** 31 - 2,
                                         device=device)
