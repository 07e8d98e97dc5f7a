"""The CUDA neighbor searches (cuda/search_*.cu) against the OpenMP ones.

Without a GPU the CUDA kernels run in the host emulation (``geomops._cuda_emu``): every binding
of ``_cuda_search.pxi`` is called with device arrays and compared with its ``_cpu`` twin. Hash
tables, sorted rows, kNN rows and (fixed-radius) unsorted rows must be bitwise equal to the
CPU's; unsorted radius-search rows hold the same (index, distance) pairs in another fixed order.
The tests marked ``cuda`` repeat the comparisons on a real device, with sizes that need many
blocks, and check that two runs give the same bits."""

import numpy as np
import pytest

import geomops
from geomops import _backend

C = _backend.cpu().kernels
METRICS = ["L1", "L2", "Linf"]
PS = np.array([0, 60, 60, 130, 160], np.int64)  # item 1 has no points
QS = np.array([0, 25, 40, 40, 70], np.int64)    # item 1 has queries without points, item 2 no queries


def emulated():
    with _backend.cuda_emulation():
        return _backend.resolve("cuda")


def real_device():
    return _backend.resolve("cuda")


def cloud(dtype, seed=0, n=160, nq=70, scale=1.0):
    rng = np.random.default_rng(seed)
    pts = (rng.random((n, 3)) * scale).astype(dtype)
    pts[10:16] = pts[0:6]            # duplicate points
    qs = (rng.random((nq, 3)) * scale).astype(dtype)
    qs[:6] = pts[:6]                 # queries on (duplicated) points
    qs[50] = pts[70]
    qs[60:63] += dtype(5 * scale)    # queries without neighbors
    pts[30, 0] = qs[7, 1] = -0.0     # the smallest x of item 0: a bounding box at -0.0
    return pts, qs


# ---- running both bindings -------------------------------------------------------------------

def _host_fill(plan, rs, index_dtype, dtype, rd):
    index = np.full(plan.total, -7, index_dtype)
    dist = np.full(plan.total if rd else 0, np.nan, dtype)
    plan.fill(index, dist if rd else None)
    return index, rs, dist


def _dev_fill(be, plan, rs, index_dtype, dtype, rd):
    index = be.empty((plan.total,), index_dtype)
    dist = be.empty((plan.total if rd else 0,), dtype)
    plan.fill(index, dist if rd else None)
    return index.get(), rs.get(), dist.get()


def fixed(be, pts, qs, ps, qsp, radius, metric="L2", ignore=False, rd=True, sort=False, index_dtype=np.int32):
    is64 = np.dtype(index_dtype) == np.int64
    rs = np.empty(len(qs) + 1, np.int64)
    grid = C.search_grid_build(pts, ps, radius, 2)
    plan = C.search_fixed_radius_count(grid, qs, qsp, rs, metric, ignore, rd, sort, is64, 2)
    cpu = _host_fill(plan, rs, index_dtype, pts.dtype, rd)
    K = be.kernels
    dgrid = K.search_grid_build(be.from_host(pts), be.from_host(ps), radius, 1)
    drs = be.empty((len(qs) + 1,), np.int64)
    dplan = K.search_fixed_radius_count(dgrid, be.from_host(qs), be.from_host(qsp), drs, metric, ignore, rd, sort,
                                        is64, 1, stream=0)
    assert dplan.total == plan.total
    return cpu, _dev_fill(be, dplan, drs, index_dtype, pts.dtype, rd)


def radius(be, pts, qs, ps, qsp, radii, metric="L2", ignore=False, rd=True, normalize=False, sort=False,
           index_dtype=np.int32):
    is64 = np.dtype(index_dtype) == np.int64
    rs = np.empty(len(qs) + 1, np.int64)
    plan = C.search_radius_count(pts, ps, qs, qsp, radii, rs, metric, ignore, rd, normalize, sort, is64, 2)
    cpu = _host_fill(plan, rs, index_dtype, pts.dtype, rd)
    drs = be.empty((len(qs) + 1,), np.int64)
    dplan = be.kernels.search_radius_count(be.from_host(pts), be.from_host(ps), be.from_host(qs), be.from_host(qsp),
                                           be.from_host(radii), drs, metric, ignore, rd, normalize, sort, is64, 1)
    return cpu, _dev_fill(be, dplan, drs, index_dtype, pts.dtype, rd)


def knn(be, pts, qs, ps, qsp, k, metric="L2", ignore=False, rd=True, index_dtype=np.int32):
    is64 = np.dtype(index_dtype) == np.int64
    rs = np.empty(len(qs) + 1, np.int64)
    plan = C.search_knn_count(pts, ps, qs, qsp, k, rs, metric, ignore, rd, is64, 2)
    cpu = _host_fill(plan, rs, index_dtype, pts.dtype, rd)
    drs = be.empty((len(qs) + 1,), np.int64)
    dplan = be.kernels.search_knn_count(be.from_host(pts), be.from_host(ps), be.from_host(qs), be.from_host(qsp), k,
                                        drs, metric, ignore, rd, is64, 1)
    return cpu, _dev_fill(be, dplan, drs, index_dtype, pts.dtype, rd)


def assert_equal(cpu, dev):
    (i0, rs0, d0), (i1, rs1, d1) = cpu, dev
    np.testing.assert_array_equal(rs1, rs0)
    assert i1.dtype == i0.dtype and d1.dtype == d0.dtype
    np.testing.assert_array_equal(i1, i0)
    assert d1.tobytes() == d0.tobytes()


def assert_same_sets(cpu, dev):
    """Equal row splits, and each row the same (index, distance bits) pairs in any order."""
    (i0, rs0, d0), (i1, rs1, d1) = cpu, dev
    np.testing.assert_array_equal(rs1, rs0)
    assert i1.dtype == i0.dtype and d1.dtype == d0.dtype
    bits = np.uint64 if d0.dtype.itemsize == 8 else np.uint32
    for q in range(len(rs0) - 1):
        s, e = rs0[q], rs0[q + 1]
        a = sorted(zip(i0[s:e].tolist(), d0[s:e].view(bits).tolist() if d0.size else [0] * (e - s)))
        b = sorted(zip(i1[s:e].tolist(), d1[s:e].view(bits).tolist() if d1.size else [0] * (e - s)))
        assert a == b, f"row {q}"


# ---- the emulated backend against the CPU ------------------------------------------------------

@pytest.fixture(scope="module")
def be():
    return emulated()


def table_pair(be, pts, ps, r, factor=1 / 8):
    sizes = [max(int(factor * c), 1) for c in np.diff(ps)]
    ts = np.zeros(len(sizes) + 1, np.int64)
    ts[1:] = np.cumsum(sizes)
    index, cells = np.empty(len(pts), np.int32), np.empty(ts[-1] + 1, np.int32)
    C.search_build_hash_table(pts, ps, r, ts, index, cells, 2)
    dp, dps, dts = be.from_host(pts), be.from_host(ps), be.from_host(ts)
    dindex, dcells = be.empty((len(pts),), np.int32), be.empty((ts[-1] + 1,), np.int32)
    be.kernels.search_build_hash_table(dp, dps, r, dts, dindex, dcells, 1, stream=0)
    return (index, cells), (dindex, dcells), (dp, dps, dts)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("r", [0.0, 0.07, 0.3, 1e6])
@pytest.mark.parametrize("scale", [1.0, 1e7])
def test_hash_table_is_the_cpus(be, dtype, r, scale):
    pts, _ = cloud(dtype, scale=scale)
    pts[20] = -pts[20]  # negative cells too
    (index, cells), (dindex, dcells), dev = table_pair(be, pts, PS, r)
    np.testing.assert_array_equal(dindex.get(), index)
    np.testing.assert_array_equal(dcells.get(), cells)
    dp, dps, dts = dev
    assert be.kernels.search_verify_hash_table(dp, dps, r, dts, dindex, dcells, 1)


def test_hash_table_verify_rejects_other_tables(be):
    pts, _ = cloud(np.float32)
    (index, cells), (dindex, dcells), dev = table_pair(be, pts, PS, 0.1)
    K = be.kernels
    dp, dps, dts = dev
    assert K.search_verify_hash_table(dp, dps, 0.1, dts, dindex, dcells, 1)
    assert not K.search_verify_hash_table(dp, dps, 0.3, dts, dindex, dcells, 1)  # another radius
    verdicts = []
    for i in range(0, 160, 7):  # other coordinates: rejected unless the point stays in its bin
        other = pts.copy()
        other[i] += np.float32(0.5)
        ok = K.search_verify_hash_table(be.from_host(other), dps, 0.1, dts, dindex, dcells, 1)
        assert ok == C.search_verify_hash_table(other, PS, 0.1, dts.get(), index, cells, 1)
        verdicts.append(ok)
    assert not all(verdicts)
    bad = {
        "swapped": (np.where(index == 3, 4, np.where(index == 4, 3, index)), cells),  # valid if one bin
        "twice": (np.where(index == 3, 4, index), cells),
        "cell start": (index, np.where(np.arange(len(cells)) == 1, cells[2], cells)),
        "short": (index, np.concatenate([cells[:-1], [cells[-1] - 1]])),
    }
    for name, (bad_index, bad_cells) in bad.items():
        bad_index, bad_cells = bad_index.astype(np.int32), bad_cells.astype(np.int32)
        ok_cpu = C.search_verify_hash_table(pts, PS, 0.1, dts.get(), bad_index, bad_cells, 1)
        ok_dev = K.search_verify_hash_table(dp, dps, 0.1, dts, be.from_host(bad_index), be.from_host(bad_cells), 1)
        assert ok_dev == ok_cpu, name
        assert name == "swapped" or not ok_dev, name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_grid_matches_only_its_points(be, dtype):
    pts, _ = cloud(dtype)
    K = be.kernels
    grid = K.search_grid_build(be.from_host(pts), be.from_host(PS), 0.1, 1)
    assert grid.matches(be.from_host(pts)) and grid.nbytes > pts.nbytes
    assert grid.radius == 0.1 and grid.dtype == dtype
    other = pts.copy()
    other[77, 1] = np.nextafter(other[77, 1], dtype(2))
    assert not grid.matches(be.from_host(other))
    assert not grid.matches(be.from_host(pts[:-1]))
    assert not grid.matches(be.from_host(pts.astype(np.float64 if dtype == np.float32 else np.float32)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("ignore", [False, True])
@pytest.mark.parametrize("sort", [False, True])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_fixed_radius_rows_are_the_cpus(be, dtype, metric, ignore, sort, index_dtype):
    pts, qs = cloud(dtype)
    # the same grid, scanned in the same order: unsorted rows are equal too
    assert_equal(*fixed(be, pts, qs, PS, QS, 0.21, metric, ignore, True, sort, index_dtype))


@pytest.mark.parametrize("kind", ["fixed", "radius", "knn"])
@pytest.mark.parametrize("ignore", [False, True])
def test_without_distances(be, kind, ignore):
    pts, qs = cloud(np.float32, seed=1)
    if kind == "fixed":
        cpu, dev = fixed(be, pts, qs, PS, QS, 0.2, ignore=ignore, rd=False)
    elif kind == "radius":
        cpu, dev = radius(be, pts, qs, PS, QS, np.full(len(qs), 0.2, np.float32), ignore=ignore, rd=False, sort=True)
    else:
        cpu, dev = knn(be, pts, qs, PS, QS, 40, ignore=ignore, rd=False)
    assert dev[2].shape == (0,)
    assert_equal(cpu, dev)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("r", [0.0, 1e6])
def test_fixed_radius_extreme_radii(be, dtype, r):
    pts, qs = cloud(dtype, seed=2)
    for metric in METRICS:
        for ignore in (False, True):
            assert_equal(*fixed(be, pts, qs, PS, QS, r, metric, ignore))
    cpu, _ = fixed(be, pts, qs, PS, QS, r)
    counts = np.diff(cpu[1])
    if r == 0.0:  # exact duplicates only
        assert counts[:6].tolist() == [2] * 6 and counts[6:25].max() <= 1
    else:         # every point of the item
        assert counts[:25].tolist() == [60] * 25 and counts[40:].tolist() == [30] * 30


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_wide_extent_coarsens_the_grid(be, dtype):
    """Extent / radius above 2^20: the grid's cells grow (CPU and CUDA alike)."""
    pts, qs = cloud(dtype, seed=3, scale=1e7)
    pts[100:110] = pts[100] + np.arange(10, dtype=dtype)[:, None] * dtype(0.4)
    qs[30:35] = pts[100:105]
    for metric in METRICS:
        assert_equal(*fixed(be, pts, qs, PS, QS, 1.0, metric, True, True, False))
        radii = np.full(len(qs), 1.0, dtype)
        assert_equal(*radius(be, pts, qs, PS, QS, radii, metric, sort=True))
        assert_equal(*knn(be, pts, qs, PS, QS, 3, metric))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("ignore", [False, True])
@pytest.mark.parametrize("normalize", [False, True])
def test_radius_search_sorted_rows_are_the_cpus(be, dtype, metric, ignore, normalize):
    pts, qs = cloud(dtype, seed=4)
    radii = np.random.default_rng(5).uniform(0.0, 0.35, len(qs)).astype(dtype)
    radii[7] = 0
    radii[8] = 1e6
    radii[41] = -0.0  # counts as 0 in the item's largest radius too
    for index_dtype in (np.int32, np.int64):
        assert_equal(*radius(be, pts, qs, PS, QS, radii, metric, ignore, True, normalize, True, index_dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("normalize", [False, True])
def test_radius_search_unsorted_rows_hold_the_cpus_sets(be, dtype, metric, normalize):
    pts, qs = cloud(dtype, seed=6)
    radii = np.random.default_rng(7).uniform(0.05, 0.3, len(qs)).astype(dtype)
    assert_same_sets(*radius(be, pts, qs, PS, QS, radii, metric, True, True, normalize, False, np.int64))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("ignore", [False, True])
@pytest.mark.parametrize("k", [1, 7, 33, 200])  # 33: heaps in global memory; 200 > every item
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_knn_rows_are_the_cpus(be, dtype, metric, ignore, k, index_dtype):
    pts, qs = cloud(dtype, seed=8)
    cpu, dev = knn(be, pts, qs, PS, QS, k, metric, ignore, True, index_dtype)
    assert_equal(cpu, dev)
    counts = np.diff(dev[1])
    assert counts[25:40].tolist() == [0] * 15  # queries of the item without points
    if not ignore:
        assert counts[:25].tolist() == [min(k, 60)] * 25 and counts[40:].tolist() == [min(k, 30)] * 30


@pytest.mark.parametrize("k", [5, 40])
def test_knn_ties_are_broken_by_index(be, k):
    """Many equal distances (points on a lattice, duplicated), also at the k-th place."""
    g = np.arange(4, dtype=np.float32)
    pts = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    pts = np.concatenate([pts, pts[::3]])
    qs = np.concatenate([pts[:20], pts[:10] + np.float32(0.5)])
    ps, qsp = np.array([0, len(pts)], np.int64), np.array([0, len(qs)], np.int64)
    for metric in METRICS:
        for ignore in (False, True):
            assert_equal(*knn(be, pts, qs, ps, qsp, k, metric, ignore))


@pytest.mark.parametrize("layout", ["plane", "line", "point", "clusters"])
def test_degenerate_layouts(be, layout):
    """Flat, linear and coincident items (the kNN grid's cells follow the non-degenerate axes)
    and far-apart clusters (mostly empty cells)."""
    rng = np.random.default_rng(12)
    pts = rng.random((160, 3))
    if layout == "plane":
        pts[:, 2] = 0.5
    elif layout == "line":
        pts[:, 1:] = 0.25
    elif layout == "point":
        pts[:] = 0.75
    else:
        pts[::2] += 1000.0
    qs = np.concatenate([pts[:40] + 0.01, rng.random((30, 3))])
    for metric in METRICS:
        for k in (1, 9, 40):
            assert_equal(*knn(be, pts, qs, PS, QS, k, metric, k == 9))
        assert_equal(*fixed(be, pts, qs, PS, QS, 0.1, metric))
        assert_equal(*radius(be, pts, qs, PS, QS, np.full(len(qs), 0.1), metric, sort=True))


@pytest.mark.parametrize("kind", ["fixed", "radius", "knn"])
def test_empty_point_and_query_sets(be, kind):
    pts, qs = cloud(np.float64, seed=9)
    cases = [(pts[:0], qs, np.array([0, 0], np.int64), np.array([0, len(qs)], np.int64)),
             (pts, qs[:0], np.array([0, len(pts)], np.int64), np.array([0, 0], np.int64)),
             (pts[:0], qs[:0], np.array([0, 0], np.int64), np.array([0, 0], np.int64))]
    for p, q, ps, qsp in cases:
        if kind == "fixed":
            cpu, dev = fixed(be, p, q, ps, qsp, 0.2)
        elif kind == "radius":
            cpu, dev = radius(be, p, q, ps, qsp, np.full(len(q), 0.2))
        else:
            cpu, dev = knn(be, p, q, ps, qsp, 3)
        assert_equal(cpu, dev)
        assert dev[0].shape == (0,) and dev[1].tolist() == [0] * (len(q) + 1)


def test_plan_fills_once_and_checks_its_buffers(be):
    pts, qs = cloud(np.float32)
    K = be.kernels
    drs = be.empty((len(qs) + 1,), np.int64)
    plan = K.search_knn_count(be.from_host(pts), be.from_host(PS), be.from_host(qs), be.from_host(QS), 3, drs,
                              "L2", False, True, False, 1)
    with pytest.raises(RuntimeError, match="invalid argument"):
        plan.fill(be.empty((plan.total,), np.int32), None)  # distances were asked for
    with pytest.raises(ValueError, match="already filled"):
        plan.fill(be.empty((plan.total,), np.int32), be.empty((plan.total,), np.float32))
    plan = K.search_knn_count(be.from_host(pts), be.from_host(PS), be.from_host(qs), be.from_host(QS), 3, drs,
                              "L2", False, False, False, 1)
    del plan  # a plan never filled is freed with its object


# ---- the public functions on the emulated backend -------------------------------------------------

def test_public_searches_on_the_emulated_backend():
    pts, qs = cloud(np.float32, seed=10)
    radii = np.full(len(qs), 0.15, np.float32)
    calls = [
        lambda dev: geomops.fixed_radius_search(pts, qs, 0.15, PS, QS, return_distances=True, device=dev),
        lambda dev: geomops.fixed_radius_search(pts, qs, 0.15, PS, QS, sort=True, metric="L1", device=dev),
        lambda dev: geomops.radius_search(pts, qs, radii, PS, QS, return_distances=True, sort=True, device=dev),
        lambda dev: geomops.knn_search(pts, qs, 6, PS, QS, index_dtype=np.int64, return_distances=True,
                                       ignore_query_point=True, device=dev),
    ]
    for call in calls:
        ref = call("cpu")
        with _backend.cuda_emulation():
            res = call("cuda")
        for a, b in zip(ref, res):
            assert isinstance(b, np.ndarray) and a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)


def test_hash_table_grid_is_cached_per_backend():
    """A table built on either backend serves both; each backend caches its own grid on it."""
    pts, qs = cloud(np.float64, seed=11)
    ref = geomops.fixed_radius_search(pts, qs, 0.2, PS, QS, return_distances=True)
    with _backend.cuda_emulation():
        table = geomops.build_spatial_hash_table(pts, 0.2, PS, 0.5, device="cuda")
    cpu_table = geomops.build_spatial_hash_table(pts, 0.2, PS, 0.5)
    for a, b in zip(table, cpu_table):
        np.testing.assert_array_equal(a, b)
    for _ in range(2):  # the second round reuses both grids
        with _backend.cuda_emulation():
            res = geomops.fixed_radius_search(pts, qs, 0.2, PS, QS, hash_table=table, return_distances=True,
                                              device="cuda")
        for a, b in zip(ref, res):
            np.testing.assert_array_equal(a, b)
        res = geomops.fixed_radius_search(pts, qs, 0.2, PS, QS, hash_table=table, return_distances=True)
        for a, b in zip(ref, res):
            np.testing.assert_array_equal(a, b)
    assert set(table._grid) == {("geomops._cuda_emu", "cuda:0"), ("geomops._cpu", "cpu")}
    other = pts.copy()
    other[3, 0] += 0.01
    with _backend.cuda_emulation(), pytest.raises(ValueError, match="another point set"):
        geomops.fixed_radius_search(other, qs, 0.2, PS, QS, hash_table=table, device="cuda")
    with _backend.cuda_emulation():
        res = geomops.fixed_radius_search(pts, qs, 0.2, PS, QS, hash_table=tuple(table), return_distances=True,
                                          device="cuda")
        for a, b in zip(ref, res):
            np.testing.assert_array_equal(a, b)
        with pytest.raises(ValueError, match="not the spatial hash table"):
            geomops.fixed_radius_search(pts, qs, 0.3, PS, QS, hash_table=tuple(table), device="cuda")


# ---- on a real device ----------------------------------------------------------------------------

def big_cloud(dtype, n=200_000, nq=100_000, seed=0):
    rng = np.random.default_rng(seed)
    pts = rng.random((n, 3)).astype(dtype)
    qs = rng.random((nq, 3)).astype(dtype)
    qs[:1000] = pts[:1000]
    ps = np.array([0, n // 2, n // 2, n], np.int64)
    qsp = np.array([0, nq // 3, nq // 2, nq], np.int64)
    return pts, qs, ps, qsp


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gpu_hash_table_and_fixed_radius(dtype):
    dev = real_device()
    pts, qs, ps, qsp = big_cloud(dtype)
    (index, cells), (dindex, dcells), d = table_pair(dev, pts, ps, 0.02, factor=1 / 64)
    np.testing.assert_array_equal(dindex.get(), index)
    np.testing.assert_array_equal(dcells.get(), cells)
    assert dev.kernels.search_verify_hash_table(d[0], d[1], 0.02, d[2], dindex, dcells, 1)
    for metric in METRICS:
        for sort in (False, True):
            assert_equal(*fixed(dev, pts, qs, ps, qsp, 0.02, metric, True, True, sort))


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gpu_radius_and_knn(dtype):
    dev = real_device()
    pts, qs, ps, qsp = big_cloud(dtype, n=100_000, nq=50_000)
    radii = np.random.default_rng(1).uniform(0.0, 0.03, len(qs)).astype(dtype)
    for metric in METRICS:
        assert_equal(*radius(dev, pts, qs, ps, qsp, radii, metric, True, True, True, True))
        assert_same_sets(*radius(dev, pts[:20000], qs[:5000], np.array([0, 20000], np.int64),
                                 np.array([0, 5000], np.int64), radii[:5000], metric, False, True, False, False))
        for k in (1, 16, 64):
            assert_equal(*knn(dev, pts, qs, ps, qsp, k, metric, k == 16, True, np.int64))


@pytest.mark.cuda
def test_gpu_runs_are_bitwise_repeatable():
    dev = real_device()
    pts, qs, ps, qsp = big_cloud(np.float32, seed=3)
    radii = np.random.default_rng(4).uniform(0.0, 0.03, len(qs)).astype(np.float32)
    runs = [(fixed(dev, pts, qs, ps, qsp, 0.02)[1], radius(dev, pts, qs, ps, qsp, radii, sort=False)[1],
             knn(dev, pts, qs, ps, qsp, 16)[1]) for _ in range(2)]
    for a, b in zip(*runs):
        for x, y in zip(a, b):
            assert x.tobytes() == y.tobytes()


@pytest.mark.cuda
def test_gpu_public_searches_and_stream():
    pts, qs, ps, qsp = big_cloud(np.float32, n=50_000, nq=20_000, seed=5)
    for call in (lambda d: geomops.fixed_radius_search(pts, qs, 0.03, ps, qsp, return_distances=True, device=d),
                 lambda d: geomops.knn_search(pts, qs, 8, ps, qsp, return_distances=True, device=d)):
        for a, b in zip(call("cpu"), call("cuda")):
            np.testing.assert_array_equal(a, b)
    dev = real_device()
    K = dev.kernels
    stream = K.Stream(dev.device_id)
    drs = dev.empty((len(qs) + 1,), np.int64)
    plan = K.search_knn_count(dev.from_host(pts), dev.from_host(ps), dev.from_host(qs), dev.from_host(qsp), 8, drs,
                              "L2", False, False, False, 1, stream=stream.handle)
    index = dev.empty((plan.total,), np.int32)
    plan.fill(index)
    stream.synchronize()
    ref = geomops.knn_search(pts, qs, 8, ps, qsp)
    np.testing.assert_array_equal(index.get(), ref.neighbors_index)


@pytest.mark.parametrize("kind", ["table", "fixed", "radius", "knn", "knn_ignore"])
def test_out_of_device_memory_at_every_step(be, kind, monkeypatch):
    """Allocations failing at any point raise MemoryError with the size asked for and leave
    nothing behind; whatever succeeds is still the CPU's result."""
    pts, qs = cloud(np.float32, seed=13)
    radii = np.full(len(qs), 0.2, np.float32)
    ins = [be.from_host(a) for a in (pts, PS, qs, QS, radii)]  # allocated before the limit
    ref = {"fixed": fixed(be, pts, qs, PS, QS, 0.2)[0], "radius": radius(be, pts, qs, PS, QS, radii, sort=True)[0],
           "knn": knn(be, pts, qs, PS, QS, 40)[0], "knn_ignore": knn(be, pts, qs, PS, QS, 40, ignore=True)[0]}
    K = be.kernels
    failed = 0
    for limit in (8, 64, 300, 700, 1300, 2000, 3000, 5000, 8000, 12000, 20000, 10**6):
        monkeypatch.setenv("GEOMOPS_CUDA_EMU_MAX_BYTES", str(limit))
        try:
            if kind == "table":
                ts = be.from_host(np.array([0, 7, 8, 12, 13], np.int64))
                index, cells = be.empty((len(pts),), np.int32), be.empty((14,), np.int32)
                K.search_build_hash_table(ins[0], ins[1], 0.2, ts, index, cells, 1)
                continue
            rs = be.empty((len(qs) + 1,), np.int64)
            if kind == "fixed":
                grid = K.search_grid_build(ins[0], ins[1], 0.2, 1)
                plan = K.search_fixed_radius_count(grid, ins[2], ins[3], rs, "L2", False, True, False, False, 1)
            elif kind == "radius":
                plan = K.search_radius_count(*ins[:4], ins[4], rs, "L2", False, True, False, True, False, 1)
            else:
                plan = K.search_knn_count(*ins[:4], 40, rs, "L2", kind == "knn_ignore", True, False, 1)
            index, dist = be.empty((plan.total,), np.int32), be.empty((plan.total,), np.float32)
            plan.fill(index, dist)
            assert_equal(ref[kind], (index.get(), rs.get(), dist.get()))
        except MemoryError as e:
            assert "bytes of device memory" in str(e)
            failed += 1
    assert 0 < failed < 12
