"""Validation of device inputs gives exactly what validation of NumPy inputs gives.

Every case runs a validation helper (``_validate``, ``_cconv_args``, the search helpers) once with
NumPy arrays and once with each array as a device array of another flavour: a DeviceArray, a
foreign producer exposing ``__cuda_array_interface__`` and a foreign producer whose layout is
strided (so it is copied to a contiguous array on the device first). Errors must have the same
type and text; results the same dtype and values. Device inputs are never copied to the host for
validation (``DeviceArray.get`` is made to fail while the helpers run).
"""

import dataclasses

import numpy as np
import pytest

import geomops
from geomops import _backend
from geomops import _cconv_args as CA
from geomops import _validate as V
from geomops import search as S
from geomops._device import DeviceArray


@pytest.fixture(params=["emulated", pytest.param("cuda", marks=pytest.mark.cuda)])
def be(request):
    if request.param == "emulated":
        with _backend.cuda_emulation():
            yield _backend.resolve("cuda")
    else:
        yield _backend.resolve("cuda")


class CAIProducer:
    def __init__(self, base, cai):
        self.base = base
        self.__cuda_array_interface__ = cai


def wrapper(flavour, be):
    """The function that turns each NumPy array of a case into the flavour's device array."""
    def device(a):
        return be.from_host(a)

    def cai(a):
        d = be.from_host(a)
        return CAIProducer(d, {"shape": a.shape, "typestr": a.dtype.str, "data": (d.ptr, False), "version": 3,
                               "strides": None, "stream": None})

    def strided(a):
        wide = np.stack([a, np.zeros_like(a)], axis=-1)  # every other element: a non-contiguous layout
        d = be.from_host(wide)
        return CAIProducer(d, {"shape": a.shape, "typestr": a.dtype.str, "data": (d.ptr, False), "version": 3,
                               "strides": wide.strides[:-1], "stream": None})

    conv = {"numpy": lambda a: a, "device": device, "cai": cai, "strided": strided}[flavour]
    return lambda x: conv(x) if isinstance(x, np.ndarray) else x


def to_host(x):
    if isinstance(x, DeviceArray):
        return x.get()
    if dataclasses.is_dataclass(x):
        return {f.name: to_host(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, tuple):
        return tuple(to_host(v) for v in x)
    return x


def assert_same(got, want):
    if isinstance(want, dict):
        assert got.keys() == want.keys()
        for k in want:
            assert_same(got[k], want[k])
    elif isinstance(want, tuple):
        assert type(got) is type(want) and len(got) == len(want)
        for g, w in zip(got, want):
            assert_same(g, w)
    elif isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray) and got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    else:
        assert got == want and type(got) is type(want)


def outcome(fn, w):
    try:
        return "ok", fn(w)
    except (TypeError, ValueError) as exc:
        return "error", (type(exc), str(exc))


# ---- the cases -----------------------------------------------------------------------------------

f32, f64, i32, i64 = np.float32, np.float64, np.int32, np.int64
RNG = np.random.default_rng(5)
FILTERS = RNG.random((2, 2, 2, 3, 4)).astype(f32)
XO = RNG.random((5, 3)).astype(f32)
XI = RNG.random((7, 3)).astype(f32)
FEAT = RNG.random((7, 3)).astype(f32)
IDX = np.array([0, 1, 6, 2, 2, 5, 3, 4], i32)
RS = np.array([0, 2, 2, 5, 6, 8], i64)
IMP = RNG.random(8).astype(f32)
INV_IDX = np.array([0, 0, 2, 2, 2, 3, 4, 4], i32)
INV_RS = np.array([0, 2, 3, 5, 6, 6, 7, 8], i64)  # 7 input points + 1


def fwd(w, **over):
    kw = dict(filters=FILTERS, out_positions=XO, extents=np.array([[0.5]], f32), offset=np.zeros(3, f32),
              inp_positions=XI, inp_features=FEAT, inp_importance=None, neighbors_index=IDX, neighbors_importance=None,
              neighbors_row_splits=RS)
    kw.update(over)
    return CA.prepare_forward(**{k: w(v) for k, v in kw.items()})


def tr(w, **over):
    kw = dict(filters=FILTERS, out_positions=XO, out_importance=None, extents=np.array([[0.5]], f32),
              offset=np.zeros(3, f32), inp_positions=XI, inp_features=FEAT, inp_neighbors_index=INV_IDX,
              inp_neighbors_importance_sum=None, inp_neighbors_row_splits=INV_RS, neighbors_index=IDX,
              neighbors_importance=None, neighbors_row_splits=RS)
    kw.update(over)
    return CA.prepare_transpose(**{k: w(v) for k, v in kw.items()})


def grad(w, g):
    return CA.gradient(w(g), fwd(w))


PTS = RNG.random((9, 3))
QS = RNG.random((4, 3))


def sargs(w, pts=PTS, qs=QS, prs=None, qrs=None, index_dtype=i32, metric="L2"):
    a, _ = S._search_args(w(pts), w(qs), w(prs), w(qrs), index_dtype, metric, False, True, 1)
    return a


TABLE = tuple(geomops.build_spatial_hash_table(PTS, 0.3, points_row_splits=np.array([0, 4, 9])))


def table(w, i=None, value=None):
    arrays = [t.copy() for t in TABLE]
    if i is not None:
        arrays[i] = value(arrays[i])
    return S._table_arrays(tuple(w(a) for a in arrays), 9, 2)


def setat(i, v):
    def f(a):
        a = a.copy()
        a[i] = v
        return a
    return f


CASES = {
    # _validate
    "float-int-no-dtype": lambda w: V.float_array(w(np.ones(3, i32)), "x"),
    "float-other-float": lambda w: V.float_array(w(np.ones(3)), "x", dtype=f32),
    "float-shape": lambda w: V.float_array(w(np.ones((3, 2), f32)), "x", shape=(None, 3)),
    "float-ndim": lambda w: V.float_array(w(np.ones(3, f32)), "x", ndim=2),
    "float-from-int": lambda w: V.float_array(w(np.arange(-3, 3, dtype=i64).reshape(2, 3)), "x", shape=(None, 3),
                                              dtype=f64),
    "float-from-bool-bad-shape": lambda w: V.float_array(w(np.ones(3, bool)), "x", shape=(None, 3), dtype=f32),
    "float-from-uint8": lambda w: V.float_array(w(np.arange(6, dtype=np.uint8)), "x", dtype=f32),
    "float-from-float16": lambda w: V.float_array(w(np.array([1.5, -2, np.inf], np.float16)), "x", dtype=f64),
    "float-ok": lambda w: V.float_array(w(np.ones((2, 3), f32)), "x", shape=(None, 3)),
    "index-float": lambda w: V.index_array(w(np.ones(3)), "idx"),
    "index-2d": lambda w: V.index_array(w(np.ones((2, 2), i32)), "idx"),
    "index-high": lambda w: V.index_array(w(np.array([0, 5, 2], i64)), "idx", num_points=5),
    "index-negative": lambda w: V.index_array(w(np.array([0, -3, 9], i32)), "idx", num_points=5),
    "index-ok": lambda w: V.index_array(w(np.array([0, 4, 2], i32)), "idx", num_points=5),
    "index-empty": lambda w: V.index_array(w(np.zeros(0, i64)), "idx", num_points=0),
    "index-int32-only": lambda w: V.index_array(w(np.array([0], i64)), "idx", allow=(np.dtype(i32),)),
    "splits-float": lambda w: V.row_splits(w(np.zeros(3)), "rs"),
    "splits-2d": lambda w: V.row_splits(w(np.zeros((2, 2), i64)), "rs"),
    "splits-length": lambda w: V.row_splits(w(np.array([0, 1, 2], i64)), "rs", num_rows=3),
    "splits-empty": lambda w: V.row_splits(w(np.zeros(0, i64)), "rs"),
    "splits-start": lambda w: V.row_splits(w(np.array([1, 2, 3], i64)), "rs"),
    "splits-unsorted": lambda w: V.row_splits(w(np.array([0, 3, 2, 4], i32)), "rs"),
    "splits-end": lambda w: V.row_splits(w(np.array([0, 3, 4], i64)), "rs", total=5),
    "splits-ok-int32": lambda w: V.row_splits(w(np.array([0, 3, 3, 5], i32)), "rs", num_rows=3, total=5),
    "splits-single": lambda w: V.row_splits(w(np.array([0], i32)), "rs", total=0),
    "optional-absent": lambda w: V.optional_float(w(np.zeros(0)), "imp", length=3, dtype=f64),
    "optional-length": lambda w: V.optional_float(w(np.zeros(2)), "imp", length=3, dtype=f64),
    "optional-2d": lambda w: V.optional_float(w(np.zeros((3, 1))), "imp", length=3, dtype=f64),
    "optional-from-int": lambda w: V.optional_float(w(np.arange(3)), "imp", length=3, dtype=f64),
    "common-mixed": lambda w: V.common_float_dtype(a=w(np.ones(2, f32)), b=w(np.ones(2)), c=None),
    "common-int": lambda w: V.common_float_dtype(a=w(np.ones(2, i32))),
    "common-ok": lambda w: V.common_float_dtype(a=w(np.ones(2)), b=w(np.ones(1))),
    "absent": lambda w: (V.is_absent(w(np.zeros(0))), V.is_absent(w(np.zeros(1))), V.is_absent(w(np.zeros((0, 2))))),
    "real-0d": lambda w: V.check_real(w(np.array(2.5)), "r", positive=True),
    "real-0d-nan": lambda w: V.check_real(w(np.array(np.nan)), "r"),
    "real-0d-negative": lambda w: V.check_real(w(np.array(-1.0, f32)), "r", nonnegative=True),
    # continuous convolution
    "fwd-ok": lambda w: fwd(w),
    "fwd-ok-importance": lambda w: fwd(w, inp_importance=np.ones(7, f32), neighbors_importance=IMP),
    "fwd-ok-absent": lambda w: fwd(w, inp_importance=np.zeros(0, f32), neighbors_importance=np.zeros(0, f32)),
    "fwd-ok-int32-splits": lambda w: fwd(w, neighbors_row_splits=RS.astype(i32), neighbors_index=IDX.astype(i64)),
    "fwd-ok-scalar-extent": lambda w: fwd(w, extents=0.5),
    "fwd-ok-0d-extent": lambda w: fwd(w, extents=np.array(0.25, f32)),
    "fwd-ok-extents-per-point": lambda w: fwd(w, extents=np.full((5, 3), 0.3, f32)),
    "fwd-ok-float64": lambda w: fwd(w, filters=FILTERS.astype(f64), out_positions=XO.astype(f64),
                                    extents=np.array([[0.5]]), offset=np.zeros(3), inp_positions=XI.astype(f64),
                                    inp_features=FEAT.astype(f64)),
    "fwd-filters-ndim": lambda w: fwd(w, filters=FILTERS[0]),
    "fwd-filters-zero": lambda w: fwd(w, filters=np.zeros((0, 2, 2, 3, 4), f32)),
    "fwd-filters-int": lambda w: fwd(w, filters=FILTERS.astype(i32)),
    "fwd-mixed-dtypes": lambda w: fwd(w, out_positions=XO.astype(f64)),
    "fwd-positions-shape": lambda w: fwd(w, out_positions=XO[:, :2].copy()),
    "fwd-features-channels": lambda w: fwd(w, inp_features=FEAT[:, :2].copy()),
    "fwd-features-rows": lambda w: fwd(w, inp_features=FEAT[:6].copy()),
    "fwd-extents-nan": lambda w: fwd(w, extents=np.array([[np.nan]], f32)),
    "fwd-extents-inf": lambda w: fwd(w, extents=np.array([[0.5, np.inf, 0.5]], f32)),
    "fwd-extents-zero": lambda w: fwd(w, extents=np.array([[0.0]], f32)),
    "fwd-extents-negative": lambda w: fwd(w, extents=np.full((5, 1), -0.5, f32)),
    "fwd-extents-shape": lambda w: fwd(w, extents=np.ones((2, 3), f32)),
    "fwd-offset-shape": lambda w: fwd(w, offset=np.zeros(2, f32)),
    "fwd-index-high": lambda w: fwd(w, neighbors_index=np.where(IDX == 6, 7, IDX).astype(i32)),
    "fwd-index-negative": lambda w: fwd(w, neighbors_index=np.where(IDX == 6, -1, IDX).astype(i64)),
    "fwd-index-float": lambda w: fwd(w, neighbors_index=IDX.astype(f32)),
    "fwd-index-2d": lambda w: fwd(w, neighbors_index=IDX.reshape(2, 4)),
    "fwd-splits-unsorted": lambda w: fwd(w, neighbors_row_splits=np.array([0, 2, 1, 5, 6, 8], i64)),
    "fwd-splits-start": lambda w: fwd(w, neighbors_row_splits=np.array([1, 2, 2, 5, 6, 8], i64)),
    "fwd-splits-end": lambda w: fwd(w, neighbors_row_splits=np.array([0, 2, 2, 5, 6, 7], i64)),
    "fwd-splits-length": lambda w: fwd(w, neighbors_row_splits=RS[:-1].copy()),
    "fwd-splits-float": lambda w: fwd(w, neighbors_row_splits=RS.astype(f64)),
    "fwd-importance-length": lambda w: fwd(w, neighbors_importance=IMP[:5].copy()),
    "fwd-importance-int": lambda w: fwd(w, neighbors_importance=np.ones(8, i32)),
    "fwd-inp-importance-length": lambda w: fwd(w, inp_importance=np.ones(6, f32)),
    "tr-ok": lambda w: tr(w),
    "tr-ok-importance": lambda w: tr(w, neighbors_importance=IMP, inp_neighbors_importance_sum=np.ones(7, f32),
                                     out_importance=np.ones(5, f32)),
    "tr-ok-no-inverse-index": lambda w: tr(w, inp_neighbors_index=None),
    "tr-importance-without-sum": lambda w: tr(w, neighbors_importance=IMP),
    "tr-sum-without-importance": lambda w: tr(w, inp_neighbors_importance_sum=np.ones(7, f32)),
    "tr-inverse-index-high": lambda w: tr(w, inp_neighbors_index=np.where(INV_IDX == 4, 5, INV_IDX).astype(i32)),
    "tr-inverse-index-length": lambda w: tr(w, inp_neighbors_index=INV_IDX[:7].copy()),
    "tr-inverse-splits-end": lambda w: tr(w, inp_neighbors_row_splits=np.array([0, 1, 2, 4, 5, 6, 7, 9], i64)),
    "tr-out-importance-length": lambda w: tr(w, out_importance=np.ones(4, f32)),
    "tr-extents-per-output": lambda w: tr(w, extents=np.full((5, 1), 0.5, f32)),
    "tr-ok-extents-per-input": lambda w: tr(w, extents=np.full((7, 1), 0.5, f32)),
    "grad-ok": lambda w: grad(w, np.ones((5, 4), f32)),
    "grad-shape": lambda w: grad(w, np.ones((5, 3), f32)),
    "grad-dtype": lambda w: grad(w, np.ones((5, 4), f64)),
    "grad-from-int": lambda w: grad(w, np.ones((5, 4), i32)),
    # searches
    "search-ok": lambda w: sargs(w),
    "search-ok-float32": lambda w: sargs(w, pts=PTS.astype(f32), qs=QS.astype(f32)),
    "search-ok-splits": lambda w: sargs(w, prs=np.array([0, 4, 9], i32), qrs=np.array([0, 1, 4], i64)),
    "search-ok-list-queries": lambda w: sargs(w, qs=QS.tolist()),
    "search-points-nan": lambda w: sargs(w, pts=np.where(PTS > 0.9, np.nan, PTS)),
    "search-queries-inf": lambda w: sargs(w, qs=np.where(QS > 0.5, np.inf, QS)),
    "search-queries-dtype": lambda w: sargs(w, qs=QS.astype(f32)),
    "search-points-shape": lambda w: sargs(w, pts=PTS[:, :2].copy()),
    "search-points-int": lambda w: sargs(w, pts=(PTS * 10).astype(i64)),
    "search-splits-lengths": lambda w: sargs(w, prs=np.array([0, 4, 9], i64)),
    "search-splits-unsorted": lambda w: sargs(w, prs=np.array([0, 5, 4, 9], i64), qrs=np.array([0, 1, 2, 4], i64)),
    "search-splits-end": lambda w: sargs(w, qrs=np.array([0, 3], i64)),
    "search-index-dtype": lambda w: sargs(w, index_dtype=np.int16),
    "search-metric": lambda w: sargs(w, metric="L3"),
    "radii-ok": lambda w: S._radii(w(np.full(4, 0.2)), 4, np.dtype(f64)),
    "radii-ok-list": lambda w: S._radii([0.1, 0.2, 0.3, 0.4], 4, np.dtype(f32)),
    "radii-negative": lambda w: S._radii(w(np.array([0.1, -0.2, 0.3, 0.4])), 4, np.dtype(f64)),
    "radii-nan": lambda w: S._radii(w(np.array([0.1, np.nan, 0.3, 0.4], f32)), 4, np.dtype(f32)),
    "radii-shape": lambda w: S._radii(w(np.full(3, 0.2)), 4, np.dtype(f64)),
    "radii-dtype": lambda w: S._radii(w(np.full(4, 0.2)), 4, np.dtype(f32)),
    "radii-from-int": lambda w: S._radii(w(np.arange(4)), 4, np.dtype(f32)),
    "table-ok": lambda w: table(w),
    "table-index-dtype": lambda w: table(w, 0, lambda a: a.astype(i64)),
    "table-index-range": lambda w: table(w, 0, setat(2, 9)),
    "table-index-length": lambda w: table(w, 0, lambda a: a[:-1].copy()),
    "table-cells-dtype": lambda w: table(w, 1, lambda a: a.astype(i64)),
    "table-cells-2d": lambda w: table(w, 1, lambda a: a.reshape(1, -1)),
    "table-cells-unsorted": lambda w: table(w, 1, lambda a: a[::-1].copy()),
    "table-cells-end": lambda w: table(w, 1, setat(-1, 8)),
    "table-splits-length": lambda w: table(w, 2, lambda a: a[:-1].copy()),
    "table-splits-flat": lambda w: table(w, 2, setat(1, 0)),
    "table-splits-start": lambda w: table(w, 2, setat(0, 1)),
    "table-splits-end": lambda w: table(w, 2, lambda a: a + np.array([0, 0, 1], i32)),
}

READS_ONE_ELEMENT = {"real-0d", "real-0d-nan", "real-0d-negative"}  # scalars given as 0-d arrays


def _raise_get(self):
    raise AssertionError("validation copied a device array to the host")


@pytest.mark.parametrize("flavour", ["device", "cai", "strided"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_device_inputs_validate_like_numpy(be, case, flavour, monkeypatch):
    fn = CASES[case]
    kind, want = outcome(fn, wrapper("numpy", be))
    with monkeypatch.context() as mp:
        if case not in READS_ONE_ELEMENT:
            mp.setattr(DeviceArray, "get", _raise_get)
        got_kind, got = outcome(fn, wrapper(flavour, be))
    assert got_kind == kind, got
    if kind == "error":
        assert got == want
    else:
        assert_same(to_host(got), to_host(want))


OK_CASES = {"float-from-int", "float-from-uint8", "float-from-float16", "optional-absent", "optional-from-int",
            "common-ok", "absent", "real-0d", "grad-from-int", "radii-from-int", "index-empty", "splits-single"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_cases_do_what_their_names_say(case):
    """"ok" cases pass NumPy validation, the others fail it (so the table tests what it claims)."""
    kind, _ = outcome(CASES[case], lambda x: x)
    assert kind == ("ok" if "-ok" in case or case in OK_CASES else "error")


def test_validated_device_call_keeps_every_array_on_the_device(be):
    call = fwd(wrapper("cai", be), inp_importance=np.ones(7, f32), neighbors_importance=IMP)
    for f in dataclasses.fields(call):
        v = getattr(call, f.name)
        assert v is None or isinstance(v, (DeviceArray, bool, np.dtype)), f.name
    assert call.neighbors_row_splits.dtype == np.int64


def test_conv_call_to_backend(be):
    call = fwd(lambda x: x, inp_importance=np.ones(7, f32))
    moved = call.to_backend(be)
    for f in dataclasses.fields(call):
        a, b = getattr(call, f.name), getattr(moved, f.name)
        if isinstance(a, np.ndarray):
            assert isinstance(b, DeviceArray) and b.dtype == a.dtype
            np.testing.assert_array_equal(b.get(), a)
        else:
            assert b is a or b == a
    assert call.to_backend(_backend.cpu()) == call
    t = tr(lambda x: x).to_backend(be)
    assert isinstance(t.inp_neighbors_row_splits, DeviceArray) and t.transpose


def test_search_args_to_backend(be):
    a = sargs(lambda x: x)
    moved = a.to_backend(be)
    for name in ("points", "queries", "points_splits", "queries_splits"):
        assert isinstance(getattr(moved, name), DeviceArray)
        np.testing.assert_array_equal(getattr(moved, name).get(), getattr(a, name))
    assert moved[4:] == a[4:]
    assert a.to_backend(_backend.cpu()) == a


def test_default_batch_splits_follow_the_points(be):
    a = sargs(wrapper("device", be))
    assert isinstance(a.points_splits, DeviceArray) and isinstance(a.queries_splits, DeviceArray)
    np.testing.assert_array_equal(a.points_splits.get(), [0, 9])
    host = sargs(lambda x: x)
    assert isinstance(host.points_splits, np.ndarray)


def test_pending_stream_is_waited_for_and_cleared(be):
    keep = be.kernels.Stream(0)
    idx = be.from_host(np.array([0, 1, 2], i32))
    idx._stream = keep.handle or 1
    assert V.index_array(idx, "idx", num_points=3) is idx
    assert idx._stream is None  # the reduction ran on the array's stream, which is now drained
