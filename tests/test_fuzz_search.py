"""Fuzzing the neighbor searches: build_spatial_hash_table, fixed_radius_search, radius_search and
knn_search (the contract is in fuzz_util's docstring).

A valid call (small random batched point sets with duplicates and queries on points, every
option) is checked against the brute-force reference of reference_search, then one argument --
an array, a radius, k, an option or the hash table -- is mutated. An accepted mutated call must
equal the unmutated call bitwise (value-preserving mutations) or the reference run on the same
arguments (huge finite coordinates included); with non-finite coordinates or radii only a
TypeError/ValueError is acceptable (the searches refuse them).
"""

import numpy as np
import pytest
from hypothesis import given, note
from hypothesis import strategies as st

import geomops as gm
import reference_search as RS
from conftest import BACKENDS, use_backend
from fuzz_util import EQUIVALENT, assert_names, device_safe, fuzz_settings, mutations, on_device, outcome
from fuzz_util import results_equal, to_host
from geomops import _backend

OPTION_VALUES = {
    "index_dtype": [np.int8, np.float32, "int33", None, np.int64, "int32", object],
    "metric": ["L3", "l2", None, 2, "Linf", "L1"],
    "ignore_query_point": [1, "yes", None, np.bool_(True), 0.0],
    "return_distances": [1, "no", None, np.bool_(False)],
    "sort": [1, None, "x", np.bool_(True)],
    "normalize_distances": [1, None, np.bool_(True)],
    "num_threads": [0, -1, 1.5, "2", True, 1 << 40, 3, np.int64(2)],
    "hash_table_size_factor": [0.0, -1.0, np.nan, np.inf, "a", None, 1e-300, 1e300, 10.0],
    "max_hash_table_size": [0, -5, 1.5, None, 1, 2 ** 62],
}


@st.composite
def point_sets(draw):
    """(points, queries, points_row_splits, queries_row_splits) in one float dtype."""
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    n_p, n_q = draw(st.integers(0, 20)), draw(st.integers(0, 10))
    points = rng.uniform(0, 1, (n_p, 3)).astype(dtype)
    if n_p > 2 and draw(st.booleans()):
        points[1] = points[0]  # a duplicate
    queries = rng.uniform(0, 1, (n_q, 3)).astype(dtype)
    if n_p and n_q and draw(st.booleans()):
        queries[0] = points[-1]  # a query on a point
    batch = draw(st.integers(1, 3))
    if batch == 1 and draw(st.booleans()):
        ps = qs = None
    else:
        ps = RS.random_row_splits(n_p, batch, rng)
        qs = RS.random_row_splits(n_q, batch, rng)
    return points, queries, ps, qs


def _common_options(draw, with_sort=True):
    opts = dict(index_dtype=draw(st.sampled_from([np.int32, np.int64])),
                metric=draw(st.sampled_from(["L1", "L2", "Linf"])),
                ignore_query_point=draw(st.booleans()), return_distances=draw(st.booleans()))
    if with_sort:
        opts["sort"] = draw(st.booleans())
    return opts


@st.composite
def fixed_radius_calls(draw):
    points, queries, ps, qs = draw(point_sets())
    radius = draw(st.sampled_from([0.0, 0.1, 0.25, 0.6, 2.0]))
    args = dict(points=points, queries=queries, radius=radius, points_row_splits=ps, queries_row_splits=qs)
    args.update(_common_options(draw))
    if draw(st.booleans()):
        table = gm.build_spatial_hash_table(points, radius, ps)
        args["hash_table"] = table if draw(st.booleans()) else tuple(table)
    return args


@st.composite
def radius_calls(draw):
    points, queries, ps, qs = draw(point_sets())
    if draw(st.booleans()):
        radii = draw(st.sampled_from([0.0, 0.2, 0.5]))
    else:
        radii = np.random.default_rng(len(queries)).uniform(0, 0.6, len(queries)).astype(points.dtype)
    args = dict(points=points, queries=queries, radii=radii, points_row_splits=ps, queries_row_splits=qs)
    args.update(_common_options(draw))
    args["normalize_distances"] = draw(st.booleans())
    return args


@st.composite
def knn_calls(draw):
    points, queries, ps, qs = draw(point_sets())
    args = dict(points=points, queries=queries, k=draw(st.integers(1, 6)), points_row_splits=ps,
                queries_row_splits=qs)
    args.update(_common_options(draw, with_sort=False))
    return args


@st.composite
def table_calls(draw):
    points, _, ps, _ = draw(point_sets())
    return dict(points=points, radius=draw(st.sampled_from([0.0, 0.05, 0.3, 1.0])), points_row_splits=ps,
                hash_table_size_factor=draw(st.sampled_from([1 / 64, 0.5, 2.0])),
                max_hash_table_size=draw(st.sampled_from([1, 3, 33554432])))


def _dtype_of(args):
    return np.asarray(args["points"]).dtype


def _check_neighbors(result, args, what):
    """The result against the brute-force reference for the same arguments."""
    pts, qs = np.asarray(args["points"]), np.asarray(args["queries"])
    kw = dict(points_row_splits=args.get("points_row_splits"), queries_row_splits=args.get("queries_row_splits"),
              metric=args["metric"], ignore_query_point=bool(args["ignore_query_point"]))
    with np.errstate(all="ignore"):  # huge coordinates overflow in the reference's distances too
        if "k" in args:
            per_query = RS.ref_knn(pts, qs, int(args["k"]), **kw)
        else:
            r = args["radii"] if "radii" in args else args["radius"]
            radii = np.broadcast_to(np.asarray(r, pts.dtype), (len(qs),))
            per_query = RS.ref_radius(pts, qs, radii, inclusive="radius" in args,
                                      normalize=bool(args.get("normalize_distances", False)), **kw)
    assert result.neighbors_index.dtype == np.dtype(args["index_dtype"]), what
    assert result.neighbors_row_splits.dtype == np.int64, what
    if args["return_distances"]:
        assert result.neighbors_distance.dtype == pts.dtype, what
        RS.assert_same_neighbors(result, per_query, what)
    else:
        assert result.neighbors_distance.shape == (0,), what
        RS.assert_same_neighbors(result, [set(p[0].tolist()) for p in per_query], what)
    if "k" not in args and args.get("sort") or "k" in args:
        rs, idx = result.neighbors_row_splits, result.neighbors_index
        for i in range(len(rs) - 1):
            row = idx[rs[i]:rs[i + 1]]
            if "k" not in args:
                assert np.all(np.diff(row) > 0), f"{what}: row {i} is not sorted"


def _check_table(table, args, what):
    with np.errstate(all="ignore"):  # radius 0: the reference divides by it
        want = RS.ref_hash_table(np.asarray(args["points"]), float(args["radius"]), args["points_row_splits"],
                                 float(args["hash_table_size_factor"]), int(args["max_hash_table_size"]))
    bins, cells, splits = want
    assert np.array_equal(table.hash_table_cell_splits, cells), what
    assert np.array_equal(table.hash_table_splits, splits), what
    # points inside a bin in ascending index order
    order = np.lexsort((np.arange(len(bins)), bins))
    assert np.array_equal(table.hash_table_index, order.astype(np.int32)), what


OPS = {
    "fixed_radius_search": (gm.fixed_radius_search, fixed_radius_calls(), _check_neighbors),
    "radius_search": (gm.radius_search, radius_calls(), _check_neighbors),
    "knn_search": (gm.knn_search, knn_calls(), _check_neighbors),
    "build_spatial_hash_table": (gm.build_spatial_hash_table, table_calls(), _check_table),
}


def _role(name, value):
    if name in ("points", "queries"):
        return "position"
    if name.endswith("row_splits"):
        return "splits"
    if name == "k":
        return "count"
    if name in ("radius",) or (name == "radii" and not isinstance(value, np.ndarray)):
        return "scalar"
    return "float"


def _mutate(data, args):
    """``(name, kind, description, mutated args)`` for one argument of a search call."""
    name = data.draw(st.sampled_from(sorted(args)), "argument")
    value = args[name]
    if name in OPTION_VALUES:
        new = data.draw(st.sampled_from(OPTION_VALUES[name]), "option")
        return name, "option", f"-> {new!r}", dict(args, **{name: new})
    if name == "hash_table":
        part = data.draw(st.integers(0, 3), "part")
        if part == 3:
            new = data.draw(st.sampled_from([None, (), "table", (1, 2, 3), list(value)]), "table")
            return name, "table", f"-> {type(new).__name__}", dict(args, hash_table=new)
        kind, what, arr = data.draw(mutations(value[part], "index" if part == 0 else "splits"), "mutation")
        new = tuple(arr if k == part else v for k, v in enumerate(value))
        return name, kind, f"part {part}: {what}", dict(args, hash_table=new)
    if value is None:
        new = data.draw(st.sampled_from([np.array([0, 1]), np.array([0.0, 1.0]), [0], np.zeros(0, np.int64)]))
        return name, "values", f"None -> {new!r}", dict(args, **{name: new})
    kind, what, new = data.draw(mutations(value, _role(name, value)), "mutation")
    return name, kind, what, dict(args, **{name: new})


def _is_finite_input(args):
    for n in ("points", "queries", "radii", "radius"):
        if n in args:
            try:
                a = np.asarray(args[n], dtype=np.float64)
            except (TypeError, ValueError):
                return False
            if not np.isfinite(a).all():
                return False
    return True


def _call(fn, args, dev):
    return fn(**args, device=dev)


@pytest.mark.parametrize("device", BACKENDS)
@pytest.mark.parametrize("op", list(OPS))
@fuzz_settings(0.5)
@given(data=st.data())
def test_fuzz_search(op, device, data):
    fn, calls, check = OPS[op]
    args = data.draw(calls, "call")
    with use_backend(device) as dev:
        status, base = outcome(lambda: _call(fn, args, dev))
    assert status == "ok", f"a valid call failed: {base!r}"
    check(base, args, f"{op} (valid call)")

    name, kind, what, margs = _mutate(data, args)
    note(f"{op}: {name} {what}")
    with use_backend(device) as dev:
        status, got = outcome(lambda: _call(fn, margs, dev))
    if status == "error":
        assert kind not in EQUIVALENT, f"{op}: {name} {what} was rejected: {got!r}"
        assert_names(got, name, *(["hash_table"] if name == "hash_table" else []))
        return
    if kind in EQUIVALENT:
        assert results_equal(tuple(got), tuple(base)), f"{op}: {name} {what} changed the result"
        return
    assert _is_finite_input(margs), f"{op}: {name} {what}: non-finite coordinates or radii were accepted"
    check(got, margs, f"{op}: {name} {what}")


@pytest.mark.parametrize("op", list(OPS))
@fuzz_settings(0.3)
@given(data=st.data())
def test_fuzz_search_device_inputs_match_numpy_inputs(op, data):
    """On the emulated CUDA backend device-array inputs give what NumPy inputs give: the same
    result, or the same exception type and message."""
    fn, calls, _ = OPS[op]
    args = data.draw(calls, "call")
    args.pop("hash_table", None)  # a table's arrays are host or device with the points: tested elsewhere
    name, kind, what, margs = _mutate(data, args)
    if kind != "layout" and data.draw(st.booleans(), "mutate"):
        args = margs
    note(f"{op}: {name} {what}")
    if not all(device_safe(v) for v in args.values()):
        return
    with _backend.cuda_emulation():
        be = _backend.resolve("cuda")
        dargs = {k: on_device(be, v) if k not in OPTION_VALUES else v for k, v in args.items()}
        host = outcome(lambda: fn(**args, device="cuda"))
        dev = outcome(lambda: to_host(fn(**dargs)))
    if host[0] == "error" or dev[0] == "error":
        assert (dev[0], type(dev[1]), str(dev[1])) == (host[0], type(host[1]), str(host[1])), (host, dev)
    elif op == "build_spatial_hash_table":
        assert results_equal(tuple(dev[1]), tuple(host[1]))
    else:
        for a, b in zip(RS.canonical(dev[1]), RS.canonical(host[1])):
            np.testing.assert_array_equal(a, b)
