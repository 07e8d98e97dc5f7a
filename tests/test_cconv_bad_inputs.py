"""Bad inputs to the cconv ops raise TypeError/ValueError naming the argument; odd memory
layouts (non-contiguous, Fortran order, negative strides, read-only) work unchanged."""

import re

import numpy as np
import pytest

import geomops as gm
import reference_cconv as R

P = R.make_problem(41, extent_kind="Nx3", importance=True, offset_nonzero=True)
T = R.transpose_problem(P, in_channels=2, out_channels=3)
NI, NO, E = len(P.inp_positions), len(P.out_positions), len(P.neighbors_index)
NI_T, NO_T = len(T.inp_positions), len(T.out_positions)
assert NI_T == NO and NO_T == NI and NI != NO

# exact-name patterns: "neighbors_index" must not be satisfied by "inp_neighbors_index" etc.
NAME = {
    "neighbors_index": r"(?<!inp_)neighbors_index",
    "neighbors_row_splits": r"(?<!inp_)neighbors_row_splits",
    "neighbors_importance": r"(?<!inp_)neighbors_importance(?!_sum)",
}


def pat(*names):
    return "|".join(NAME.get(n, re.escape(n)) for n in names)


def fwd_kwargs(dtype=np.float64):
    return dict(zip(R.Problem.FIELDS, P.args(dtype)))


def tr_kwargs(dtype=np.float64, fields=R.TransposeProblem.FIELDS):
    return dict(zip(fields, T.args(dtype, fields=fields)))


def g_fwd(dtype=np.float64):
    return np.ones((NO, P.filters.shape[4]), dtype)


def g_tr(dtype=np.float64):
    return np.ones((NO_T, T.filters.shape[4]), dtype)


# every op, as (name, function calling it with the positional args of a kwargs dict on a device)
FORWARD_OPS = [
    ("continuous_conv", lambda kw, device: gm.continuous_conv(*kw.values(), device=device)),
    ("continuous_conv_backprop_filter",
     lambda kw, device: gm.continuous_conv_backprop_filter(*kw.values(), g_fwd(), device=device)),
    ("continuous_conv_backward", lambda kw, device: gm.continuous_conv_backward(*kw.values(), g_fwd(), device=device)),
]
TRANSPOSE_OPS = [
    ("continuous_conv_transpose", lambda kw, device: gm.continuous_conv_transpose(*kw.values(), device=device)),
    ("continuous_conv_transpose_backward",
     lambda kw, device: gm.continuous_conv_transpose_backward(*kw.values(), g_tr(), device=device)),
    ("continuous_conv_transpose_backprop_filter", lambda kw, device: gm.continuous_conv_transpose_backprop_filter(
        *[v for k, v in kw.items() if k != "inp_neighbors_index"], g_tr(), device=device)),
]


def _rs(splits, **changes):
    s = np.array(splits, np.int64)
    for k, v in changes.items():
        s[int(k[1:])] = v
    return s


def _non_monotone(splits):
    s = np.array(splits, np.int64)
    k = int(np.nonzero(s[1:-1] > 0)[0][0]) + 1  # first interior split > 0
    s[k] = s[k + 1] + 1 if s[k + 1] + 1 <= s[-1] else s[-1]
    s[k + 1] = s[k] - 1
    assert np.any(np.diff(s) < 0)
    return s


F = P.filters
# (argument, bad value, exception, pattern of names the message must contain)
FORWARD_BAD = [
    ("filters", F[..., 0], ValueError, pat("filters")),
    ("filters", F[None], ValueError, pat("filters")),
    ("filters", np.zeros((0,) + F.shape[1:]), ValueError, pat("filters")),
    ("filters", np.zeros(F.shape[:2] + (0,) + F.shape[3:]), ValueError, pat("filters")),
    ("filters", np.zeros(F.shape[:4] + (0,)), ValueError, pat("filters")),
    ("filters", F.astype(np.int64), TypeError, pat("filters")),
    ("filters", np.zeros(F.shape[:3] + (4, 2)), ValueError, pat("filters", "inp_features")),
    ("filters", F.astype(np.float32), TypeError, pat("filters")),
    ("out_positions", P.out_positions[:, :2], ValueError, pat("out_positions")),
    ("out_positions", P.out_positions.ravel(), ValueError, pat("out_positions")),
    ("out_positions", P.out_positions.astype(np.int32), TypeError, pat("out_positions")),
    ("out_positions", P.out_positions.astype(np.float32), TypeError, pat("out_positions")),
    # a row-count mismatch may be reported on any of the arguments that must agree
    ("out_positions", np.zeros((NO + 1, 3)), ValueError, pat("out_positions", "neighbors_row_splits", "extents")),
    ("extents", np.ones((1, 2)), ValueError, pat("extents")),
    ("extents", np.ones((NO, 2)), ValueError, pat("extents")),
    ("extents", np.ones((NO + 1, 3)), ValueError, pat("extents")),
    ("extents", np.ones((2, 3)), ValueError, pat("extents")),
    ("extents", np.ones((1, 1, 1)), ValueError, pat("extents")),
    ("extents", np.ones((NO, 3), np.float32), TypeError, pat("extents")),
    ("offset", np.zeros(2), ValueError, pat("offset")),
    ("offset", np.zeros(4), ValueError, pat("offset")),
    ("offset", np.zeros((1, 3)), ValueError, pat("offset")),
    ("offset", np.zeros(3, np.float32), TypeError, pat("offset")),
    ("inp_positions", P.inp_positions[:, :2], ValueError, pat("inp_positions")),
    ("inp_positions", P.inp_positions.astype(np.int64), TypeError, pat("inp_positions")),
    ("inp_positions", P.inp_positions.astype(np.float32), TypeError, pat("inp_positions")),
    ("inp_features", np.zeros((NI + 1, 3)), ValueError, pat("inp_features", "inp_positions")),
    ("inp_features", np.zeros(NI * 3), ValueError, pat("inp_features")),
    ("inp_features", np.zeros((NI, 3), np.float32), TypeError, pat("inp_features")),
    ("inp_features", np.zeros((NI, 3), np.int32), TypeError, pat("inp_features")),
    ("inp_importance", np.ones(NI + 1), ValueError, pat("inp_importance")),
    ("inp_importance", np.ones((NI, 1)), ValueError, pat("inp_importance")),
    ("inp_importance", np.ones(NI, np.float32), TypeError, pat("inp_importance")),
    ("neighbors_index", P.neighbors_index.astype(np.float64), TypeError, pat("neighbors_index")),
    ("neighbors_index", P.neighbors_index[:, None], ValueError, pat("neighbors_index")),
    ("neighbors_index", np.where(np.arange(E) == 3, NI, P.neighbors_index), ValueError, pat("neighbors_index")),
    ("neighbors_index", np.where(np.arange(E) == 3, -1, P.neighbors_index), ValueError, pat("neighbors_index")),
    ("neighbors_importance", np.ones(E + 1), ValueError, pat("neighbors_importance")),
    ("neighbors_importance", np.ones((E, 1)), ValueError, pat("neighbors_importance")),
    ("neighbors_importance", np.ones(E, np.float32), TypeError, pat("neighbors_importance")),
    ("neighbors_row_splits", _rs(P.neighbors_row_splits, i0=1), ValueError, pat("neighbors_row_splits")),
    ("neighbors_row_splits", _non_monotone(P.neighbors_row_splits), ValueError, pat("neighbors_row_splits")),
    ("neighbors_row_splits", _rs(P.neighbors_row_splits, **{f"i{NO}": E + 1}), ValueError,
     pat("neighbors_row_splits")),
    ("neighbors_row_splits", np.append(P.neighbors_row_splits, E), ValueError, pat("neighbors_row_splits")),
    ("neighbors_row_splits", P.neighbors_row_splits.astype(np.float64), TypeError, pat("neighbors_row_splits")),
    ("neighbors_row_splits", P.neighbors_row_splits[:, None], ValueError, pat("neighbors_row_splits")),
]


def _bad_id(case):
    arg, val, exc, _ = case
    return f"{arg}-{np.shape(val)}-{np.asarray(val).dtype}"


@pytest.mark.parametrize("case", FORWARD_BAD, ids=[f"{k}-{_bad_id(c)}" for k, c in enumerate(FORWARD_BAD)])
@pytest.mark.parametrize("op", FORWARD_OPS, ids=[o[0] for o in FORWARD_OPS])
def test_forward_ops_reject_bad_argument(op, case, device):
    name, call = op
    arg, value, exc, pattern = case
    kw = fwd_kwargs()
    kw[arg] = value
    with pytest.raises(exc, match=pattern):
        call(kw, device)


TF = T.filters
TRANSPOSE_BAD = [
    ("filters", TF[..., 0], ValueError, pat("filters")),
    ("filters", np.zeros(TF.shape[:4] + (0,)), ValueError, pat("filters")),
    ("filters", np.zeros(TF.shape[:3] + (5, 3)), ValueError, pat("filters", "inp_features")),
    ("out_positions", T.out_positions[:, :2], ValueError, pat("out_positions")),
    ("out_positions", np.zeros((NO_T + 1, 3)), ValueError,
     pat("out_positions", "neighbors_row_splits", "out_importance")),
    ("out_importance", np.ones(NO_T + 1), ValueError, pat("out_importance")),
    ("out_importance", np.ones(NO_T, np.float32), TypeError, pat("out_importance")),
    # extents rows index the transpose's INPUT points (Corrections #3): [No, 3] is wrong here
    ("extents", np.ones((NO_T, 3)), ValueError, pat("extents")),
    ("extents", np.ones((NI_T, 2)), ValueError, pat("extents")),
    ("offset", np.zeros(2), ValueError, pat("offset")),
    ("inp_positions", T.inp_positions[:, :2], ValueError, pat("inp_positions")),
    ("inp_features", np.zeros((NI_T + 1, 2)), ValueError, pat("inp_features", "inp_positions")),
    ("inp_features", np.zeros((NI_T, 2), np.float32), TypeError, pat("inp_features")),
    ("inp_neighbors_index", np.zeros(E + 1, np.int64), ValueError, pat("inp_neighbors_index")),
    ("inp_neighbors_index", np.zeros(E, np.float64), TypeError, pat("inp_neighbors_index")),
    ("inp_neighbors_importance_sum", np.ones(NI_T + 1), ValueError, pat("inp_neighbors_importance_sum")),
    ("inp_neighbors_importance_sum", np.ones(NI_T, np.float32), TypeError, pat("inp_neighbors_importance_sum")),
    ("inp_neighbors_row_splits", _rs(T.inp_neighbors_row_splits, i0=1), ValueError, pat("inp_neighbors_row_splits")),
    ("inp_neighbors_row_splits", _non_monotone(T.inp_neighbors_row_splits), ValueError,
     pat("inp_neighbors_row_splits")),
    ("inp_neighbors_row_splits", _rs(T.inp_neighbors_row_splits, **{f"i{NI_T}": E + 1}), ValueError,
     pat("inp_neighbors_row_splits")),
    ("inp_neighbors_row_splits", np.append(T.inp_neighbors_row_splits, E), ValueError,
     pat("inp_neighbors_row_splits")),
    ("neighbors_index", np.where(np.arange(E) == 2, NI_T, T.neighbors_index), ValueError, pat("neighbors_index")),
    ("neighbors_index", np.where(np.arange(E) == 2, -1, T.neighbors_index), ValueError, pat("neighbors_index")),
    ("neighbors_importance", np.ones(E + 1), ValueError, pat("neighbors_importance")),
    ("neighbors_row_splits", _rs(T.neighbors_row_splits, i0=1), ValueError, pat("neighbors_row_splits")),
    ("neighbors_row_splits", _non_monotone(T.neighbors_row_splits), ValueError, pat("neighbors_row_splits")),
    ("neighbors_row_splits", np.append(T.neighbors_row_splits, E), ValueError, pat("neighbors_row_splits")),
]


TRANSPOSE_CASES = [(op, k, case) for op in TRANSPOSE_OPS for k, case in enumerate(TRANSPOSE_BAD)
                   # the transpose backprop-filter op has no inp_neighbors_index argument
                   if not (case[0] == "inp_neighbors_index" and op[0].endswith("backprop_filter"))]


@pytest.mark.parametrize("op,k,case", TRANSPOSE_CASES,
                         ids=[f"{o[0]}-{k}-{_bad_id(c)}" for o, k, c in TRANSPOSE_CASES])
def test_transpose_ops_reject_bad_argument(op, k, case, device):
    name, call = op
    arg, value, exc, pattern = case
    kw = tr_kwargs()
    kw[arg] = value
    with pytest.raises(exc, match=pattern):
        call(kw, device)


@pytest.mark.parametrize("missing", ["neighbors_importance", "inp_neighbors_importance_sum"])
@pytest.mark.parametrize("as_empty", [False, True])
@pytest.mark.parametrize("op", TRANSPOSE_OPS, ids=[o[0] for o in TRANSPOSE_OPS])
def test_transpose_mixed_importance_presence(op, missing, as_empty, device):
    """Corrections #1: neighbors_importance and inp_neighbors_importance_sum both or neither."""
    name, call = op
    kw = tr_kwargs()
    kw[missing] = np.zeros(0) if as_empty else None
    with pytest.raises(ValueError) as info:
        call(kw, device)
    msg = str(info.value)
    assert "inp_neighbors_importance_sum" in msg, msg
    assert re.search(NAME["neighbors_importance"], msg), msg


OPTION_BAD = [
    (dict(coordinate_mapping="ball"), ValueError,
     ["coordinate_mapping", "ball_to_cube_radial", "ball_to_cube_volume_preserving", "identity"]),
    (dict(interpolation="cubic"), ValueError, ["interpolation", "linear", "linear_border", "nearest_neighbor"]),
    (dict(align_corners="yes"), (TypeError, ValueError), ["align_corners"]),
    (dict(normalize="no"), (TypeError, ValueError), ["normalize"]),
    (dict(max_temp_mem_MB=-1), ValueError, ["max_temp_mem_MB"]),
    (dict(max_temp_mem_MB="64"), TypeError, ["max_temp_mem_MB"]),
    (dict(output_type=np.int32), (TypeError, ValueError), ["output_type"]),
    (dict(num_threads=0), ValueError, ["num_threads"]),
]


@pytest.mark.parametrize("case", OPTION_BAD, ids=[str(c[0]) for c in OPTION_BAD])
@pytest.mark.parametrize("opname", ["continuous_conv", "continuous_conv_transpose", "continuous_conv_backprop_filter",
                                    "continuous_conv_transpose_backprop_filter", "continuous_conv_backward",
                                    "continuous_conv_transpose_backward"])
def test_bad_options(opname, case, device):
    opts, exc, words = case
    fn = getattr(gm, opname)
    if "transpose" in opname:
        fields = R.TransposeProblem.BACKPROP_FILTER_FIELDS if "backprop_filter" in opname else R.TransposeProblem.FIELDS
        args = list(tr_kwargs(fields=fields).values())
        if "back" in opname:
            args.append(g_tr())
    else:
        args = list(fwd_kwargs().values())
        if "back" in opname:
            args.append(g_fwd())
    with pytest.raises(exc) as info:
        fn(*args, **opts, device=device)
    for w in words:
        assert w in str(info.value), f"message {str(info.value)!r} should mention {w!r}"


@pytest.mark.parametrize("bad", [np.ones((NO, 3)), np.ones((NO + 1, 2)), np.ones(NO * 2), np.ones((NO, 2), np.float32)],
                         ids=["cols", "rows", "1d", "dtype"])
def test_bad_out_features_gradient(bad, device):
    kw = fwd_kwargs()
    for fn in (gm.continuous_conv_backprop_filter, gm.continuous_conv_backward):
        with pytest.raises((TypeError, ValueError), match="out_features_gradient"):
            fn(*kw.values(), bad, device=device)
    tkw = tr_kwargs()
    tbad = np.ones((NO_T, 4)) if bad.ndim == 2 and bad.shape[1] == 3 else bad
    if bad.dtype == np.float32:
        tbad = np.ones((NO_T, 3), np.float32)
    with pytest.raises((TypeError, ValueError), match="out_features_gradient"):
        gm.continuous_conv_transpose_backward(*tkw.values(), tbad, device=device)
    bkw = tr_kwargs(fields=R.TransposeProblem.BACKPROP_FILTER_FIELDS)
    with pytest.raises((TypeError, ValueError), match="out_features_gradient"):
        gm.continuous_conv_transpose_backprop_filter(*bkw.values(), tbad, device=device)


# --------------------------------------------------------------------------- support ops

IDX, RS, ATTR = P.neighbors_index, P.neighbors_row_splits, P.neighbors_importance
INVERT_BAD = [
    (dict(num_points=-1), (TypeError, ValueError), pat("num_points")),
    (dict(num_points=1.5), TypeError, pat("num_points")),
    (dict(inp_neighbors_index=np.where(np.arange(E) == 0, NI, IDX)), ValueError, pat("inp_neighbors_index")),
    (dict(inp_neighbors_index=np.where(np.arange(E) == 0, -1, IDX)), ValueError, pat("inp_neighbors_index")),
    (dict(inp_neighbors_index=IDX.astype(np.float64)), TypeError, pat("inp_neighbors_index")),
    (dict(inp_neighbors_index=IDX[:, None]), ValueError, pat("inp_neighbors_index")),
    (dict(inp_neighbors_row_splits=_rs(RS, i0=1)), ValueError, pat("inp_neighbors_row_splits")),
    (dict(inp_neighbors_row_splits=_non_monotone(RS)), ValueError, pat("inp_neighbors_row_splits")),
    (dict(inp_neighbors_row_splits=_rs(RS, **{f"i{NO}": E + 1})), ValueError, pat("inp_neighbors_row_splits")),
    (dict(inp_neighbors_row_splits=RS.astype(np.float32)), TypeError, pat("inp_neighbors_row_splits")),
    (dict(inp_neighbors_attributes=np.ones(E + 1)), ValueError, pat("inp_neighbors_attributes")),
    (dict(inp_neighbors_attributes=np.array(["a"] * E)), TypeError, pat("inp_neighbors_attributes")),
]


@pytest.mark.parametrize("case", INVERT_BAD, ids=[str(k) for k in range(len(INVERT_BAD))])
def test_invert_neighbors_list_rejects(case, device):
    change, exc, pattern = case
    kw = dict(num_points=NI, inp_neighbors_index=IDX, inp_neighbors_row_splits=RS, inp_neighbors_attributes=ATTR)
    kw.update(change)
    with pytest.raises(exc, match=pattern):
        gm.invert_neighbors_list(*kw.values(), device=device)


REDUCE_BAD = [
    (dict(values=np.ones((E, 1))), ValueError, "values"),
    (dict(values=np.array(["a"] * E)), TypeError, "values"),
    (dict(row_splits=_rs(RS, i0=1)), ValueError, "row_splits"),
    (dict(row_splits=_non_monotone(RS)), ValueError, "row_splits"),
    (dict(row_splits=_rs(RS, **{f"i{NO}": E + 1})), ValueError, "row_splits"),
    (dict(row_splits=RS.astype(np.float64)), TypeError, "row_splits"),
]


@pytest.mark.parametrize("case", REDUCE_BAD, ids=[str(k) for k in range(len(REDUCE_BAD))])
def test_reduce_subarrays_sum_rejects(case, device):
    change, exc, pattern = case
    kw = dict(values=ATTR, row_splits=RS)
    kw.update(change)
    with pytest.raises(exc, match=pattern):
        gm.reduce_subarrays_sum(*kw.values(), device=device)


# --------------------------------------------------------------------------- memory layouts

def _strided(a):
    """Same values, non-contiguous (every other element of a doubled array)."""
    return np.repeat(a, 2, axis=0)[::2]


def _reversed(a):
    """Same values, negative stride on the first axis."""
    return np.ascontiguousarray(a[::-1])[::-1]


def _readonly(a):
    a = a.copy()
    a.setflags(write=False)
    return a


LAYOUTS = {"strided": _strided, "fortran": np.asfortranarray, "negative": _reversed, "readonly": _readonly}


def _relayout(values, fn):
    out = []
    for v in values:
        if isinstance(v, np.ndarray) and v.size:
            w = fn(v)
            assert np.array_equal(w, v)
            out.append(w)
        else:
            out.append(v)
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_memory_layouts_give_the_same_results(layout, dtype, device):
    fn = LAYOUTS[layout]
    opts = dict(normalize=True, coordinate_mapping="ball_to_cube_volume_preserving", interpolation="linear_border")
    fa = list(fwd_kwargs(dtype).values())
    ta = list(tr_kwargs(dtype).values())
    ba = list(tr_kwargs(dtype, R.TransposeProblem.BACKPROP_FILTER_FIELDS).values())
    g, gt = g_fwd(dtype) * 0.5, g_tr(dtype) * 0.25
    calls = {
        "continuous_conv": lambda a, g_, gt_: gm.continuous_conv(*a[0], **opts, device=device),
        "continuous_conv_transpose": lambda a, g_, gt_: gm.continuous_conv_transpose(*a[1], **opts, device=device),
        "continuous_conv_backprop_filter":
            lambda a, g_, gt_: gm.continuous_conv_backprop_filter(*a[0], g_, **opts, device=device),
        "continuous_conv_transpose_backprop_filter":
            lambda a, g_, gt_: gm.continuous_conv_transpose_backprop_filter(*a[2], gt_, **opts, device=device),
        "continuous_conv_backward": lambda a, g_, gt_: gm.continuous_conv_backward(*a[0], g_, **opts, device=device),
        "continuous_conv_transpose_backward":
            lambda a, g_, gt_: gm.continuous_conv_transpose_backward(*a[1], gt_, **opts, device=device),
    }
    snapshot = [np.copy(v) if isinstance(v, np.ndarray) else v for v in fa + ta]
    odd = (_relayout(fa, fn), _relayout(ta, fn), _relayout(ba, fn))
    for name, call in calls.items():
        want = call((fa, ta, ba), g, gt)
        got = call(odd, fn(g), fn(gt))
        want = want if isinstance(want, tuple) else (want,)
        got = got if isinstance(got, tuple) else (got,)
        for w, o in zip(want, got):
            assert (w is None and o is None) or np.array_equal(w, o), f"{name} differs with {layout} inputs"
    # inputs are never written to
    for before, after in zip(snapshot, fa + ta):
        if isinstance(before, np.ndarray):
            assert np.array_equal(before, after)
    # support ops
    inv = gm.invert_neighbors_list(NI, fn(IDX), fn(RS), fn(ATTR.astype(dtype)), device=device)
    ref = gm.invert_neighbors_list(NI, IDX, RS, ATTR.astype(dtype), device=device)
    assert all(np.array_equal(a, b) for a, b in zip(inv, ref))
    assert np.array_equal(gm.reduce_subarrays_sum(fn(ATTR.astype(dtype)), fn(RS), device=device),
                          gm.reduce_subarrays_sum(ATTR.astype(dtype), RS, device=device))


# --------------------------------------------------------------------------- device

SUPPORT_OPS = [
    ("invert_neighbors_list", lambda kw, device: gm.invert_neighbors_list(NI, IDX, RS, ATTR, device=device)),
    ("reduce_subarrays_sum", lambda kw, device: gm.reduce_subarrays_sum(ATTR, RS, device=device)),
]


@pytest.mark.parametrize("bad,exc", [(3, TypeError), ("tpu", ValueError), ("cuda:x", ValueError)],
                         ids=["int", "tpu", "cuda:x"])
@pytest.mark.parametrize("op", FORWARD_OPS + TRANSPOSE_OPS + SUPPORT_OPS,
                         ids=[o[0] for o in FORWARD_OPS + TRANSPOSE_OPS + SUPPORT_OPS])
def test_every_op_rejects_a_bad_device_first(op, bad, exc):
    """device= is validated before the other inputs: a bad offset does not hide it."""
    name, call = op
    kw = tr_kwargs() if "transpose" in name else fwd_kwargs()
    kw["offset"] = np.zeros(2)
    with pytest.raises(exc, match="device"):
        call(kw, bad)
