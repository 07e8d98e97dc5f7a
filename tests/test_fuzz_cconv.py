"""Fuzzing the continuous-convolution family: the six convolution ops, invert_neighbors_list and
reduce_subarrays_sum (the contract is in fuzz_util's docstring).

A valid call is drawn (a small random problem of reference_cconv, options, dtypes), checked
against the float64 reference, then one argument is mutated. An accepted mutated call is checked
bitwise against the unmutated one (value-preserving mutations) or against the reference run on
the same arguments; where values are not finite the invariants are: the documented shapes and
dtypes, and finite results when only positions are not finite (a neighbor whose relative
position is not finite contributes nothing).
"""

import numpy as np
import pytest
from hypothesis import event, given, note
from hypothesis import strategies as st

import geomops as gm
import reference_cconv as R
from conftest import BACKENDS, use_backend
from fuzz_util import EQUIVALENT, assert_names, device_safe, fuzz_settings, mutations, on_device, outcome
from fuzz_util import results_equal, to_host
from geomops import _backend

ROLES = {"filters": "float", "out_positions": "position", "extents": "float", "offset": "float",
         "inp_positions": "position", "inp_features": "float", "inp_importance": "float",
         "neighbors_index": "index", "neighbors_importance": "float", "neighbors_row_splits": "splits",
         "out_importance": "float", "inp_neighbors_index": "index", "inp_neighbors_importance_sum": "float",
         "inp_neighbors_row_splits": "splits", "out_features_gradient": "float"}
DATA = ("filters", "inp_features", "inp_importance", "neighbors_importance", "out_importance",
        "inp_neighbors_importance_sum", "out_features_gradient", "offset", "extents")

OPTIONS = st.fixed_dictionaries(dict(
    coordinate_mapping=st.sampled_from(R.MAPPINGS),
    interpolation=st.sampled_from(R.INTERPOLATIONS),
    align_corners=st.booleans(),
    normalize=st.booleans(),
))


@st.composite
def problems(draw):
    """A small forward problem, its transpose, the call dtypes and an output gradient seed."""
    spec = dict(seed=draw(st.integers(0, 2 ** 32 - 1)), num_inp=draw(st.integers(0, 8)),
                num_out=draw(st.integers(0, 5)), in_channels=draw(st.integers(1, 3)),
                out_channels=draw(st.integers(1, 3)),
                filter_dhw=draw(st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3))),
                extent_kind=draw(st.sampled_from(R.EXTENT_KINDS)), offset_nonzero=draw(st.booleans()),
                importance=draw(st.booleans()), duplicates=draw(st.integers(0, 2)))
    if spec["extent_kind"] in ("Nx1", "Nx3") and spec["num_out"] < 2:
        spec["extent_kind"] = "1x3"
    p = R.make_problem(**spec)
    t = R.transpose_problem(p, in_channels=draw(st.integers(1, 3)), out_channels=draw(st.integers(1, 3)),
                            seed=spec["seed"] % 1000)
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    index_dtype = draw(st.sampled_from([np.int32, np.int64]))
    return p, t, np.dtype(dtype), index_dtype, spec["seed"]


def _gradient(rows, cols, seed, dtype):
    return R.f32(np.random.default_rng(seed).uniform(-1, 1, (rows, cols))).astype(dtype)


def _forward_args(p, t, dtype, index_dtype, seed, with_g):
    args = dict(zip(R.Problem.FIELDS, p.args(dtype, index_dtype)))
    if with_g:
        args["out_features_gradient"] = _gradient(len(p.out_positions), p.filters.shape[4], seed, dtype)
    return args


def _transpose_args(p, t, dtype, index_dtype, seed, with_g, fields=R.TransposeProblem.FIELDS):
    args = dict(zip(fields, t.args(dtype, index_dtype, fields=fields)))
    if with_g:
        args["out_features_gradient"] = _gradient(len(t.out_positions), t.filters.shape[4], seed, dtype)
    return args


# op name -> (function, arguments from a problem, reference)
OPS = {
    "continuous_conv": (gm.continuous_conv, lambda *a: _forward_args(*a, False), R.continuous_conv),
    "continuous_conv_backprop_filter": (gm.continuous_conv_backprop_filter, lambda *a: _forward_args(*a, True),
                                        R.continuous_conv_backprop_filter),
    "continuous_conv_backward": (gm.continuous_conv_backward, lambda *a: _forward_args(*a, True),
                                 R.continuous_conv_backward),
    "continuous_conv_transpose": (gm.continuous_conv_transpose, lambda *a: _transpose_args(*a, False),
                                  R.continuous_conv_transpose),
    "continuous_conv_transpose_backprop_filter": (
        gm.continuous_conv_transpose_backprop_filter,
        lambda *a: _transpose_args(*a, True, fields=R.TransposeProblem.BACKPROP_FILTER_FIELDS),
        R.continuous_conv_transpose_backprop_filter),
    "continuous_conv_transpose_backward": (gm.continuous_conv_transpose_backward,
                                           lambda *a: _transpose_args(*a, True), R.continuous_conv_transpose_backward),
}


def _arrays(result):
    return list(result) if isinstance(result, tuple) else [result]


def _check_against_reference(got, ref_fn, args, opts, dtype, what):
    """Every result within rtol(dtype) of the reference, relative to the largest value of all the
    call's results (a gradient that cancels to ~0 is compared at the scale of the others)."""
    if opts["interpolation"] == "nearest_neighbor":
        return  # rounding kinks: the fixed-problem tests cover it against the reference
    want = ref_fn(*args.values(), **opts)
    pairs = list(zip(_arrays(got), _arrays(want)))
    scale = max([float(np.max(np.abs(w))) for _, w in pairs if w is not None and np.size(w)] + [1e-300])
    for k, (g, w) in enumerate(pairs):
        if w is None:
            assert g is None, f"{what}: result {k} should be None"
            continue
        assert isinstance(g, np.ndarray) and g.dtype == dtype and g.shape == np.shape(w), \
            f"{what}: result {k} is {getattr(g, 'dtype', type(g))} {np.shape(g)}, expected {dtype} {np.shape(w)}"
        err = float(np.max(np.abs(g.astype(np.float64) - w), initial=0.0))
        assert err <= R.RTOL[dtype] * scale, f"{what}: result {k} differs from the reference by {err:.3g} " \
                                             f"(scale {scale:.3g})\n{g}\n{w}"


def _finite_data(args):
    """Whether every float argument is finite and away from overflow (the reference's domain)."""
    for a in args.values():
        if a is None or isinstance(a, (str, bytes)):
            continue
        try:
            x = np.asarray(a)
        except Exception:
            return False
        if x.dtype.kind == "c" or x.dtype == object:
            return False
        x = x.astype(np.float64) if x.dtype.kind == "f" else x
        if x.dtype.kind == "f" and x.size and not (np.isfinite(x).all() and np.abs(x).max() < 1e15):
            return False
    return True


def _check_accepted(name, kind, got, base, ref_fn, args, opts, dtype, what):
    """The result of a mutated call that was accepted."""
    if kind in EQUIVALENT:
        assert results_equal(got, base), f"{what}: a value-preserving mutation changed the result"
        return
    for g, b in zip(_arrays(got), _arrays(base)):
        assert (g is None) == (b is None) or name in ("inp_importance", "neighbors_importance", "out_importance",
                                                      "inp_neighbors_importance_sum"), what
        if g is not None:
            assert isinstance(g, np.ndarray) and g.dtype == dtype, f"{what}: result dtype {getattr(g, 'dtype', g)}"
    if _finite_data(args):
        _check_against_reference(got, ref_fn, args, opts, dtype, what)
    elif name not in DATA:
        # not finite (or huge) positions: those neighbors contribute nothing, the rest is finite
        for g in _arrays(got):
            assert g is None or np.isfinite(g).all(), f"{what}: non-finite positions gave a non-finite result"


@pytest.mark.parametrize("device", BACKENDS)
@pytest.mark.parametrize("op", list(OPS))
@fuzz_settings(0.5)
@given(data=st.data())
def test_fuzz_cconv_ops(op, device, data):
    fn, make_args, ref_fn = OPS[op]
    p, t, dtype, index_dtype, seed = data.draw(problems(), "problem")
    opts = data.draw(OPTIONS, "options")
    args = make_args(p, t, dtype, index_dtype, seed)
    with use_backend(device) as dev:
        status, base = outcome(lambda: fn(*args.values(), **opts, device=dev))
    assert status == "ok", f"a valid call failed: {base!r}"
    _check_against_reference(base, ref_fn, args, opts, dtype, f"{op} (valid call)")

    name = data.draw(st.sampled_from(sorted(args)), "argument")
    role = "scalar" if isinstance(args[name], float) else ROLES[name]
    kind, what, new = data.draw(mutations(args[name], role), "mutation")
    note(f"{op}: {name} {what}")
    margs = dict(args, **{name: new})
    with use_backend(device) as dev:
        status, got = outcome(lambda: fn(*margs.values(), **opts, device=dev))
    event(f"{kind} -> {status}")
    if status == "error":
        assert kind not in EQUIVALENT, f"{op}: {name} {what} was rejected: {got!r}"
        assert_names(got, name)
        return
    _check_accepted(name, kind, got, base, ref_fn, margs, opts, dtype, f"{op}: {name} {what}")


@pytest.mark.parametrize("op", list(OPS))
@fuzz_settings(0.3)
@given(data=st.data())
def test_fuzz_cconv_device_inputs_match_numpy_inputs(op, data):
    """On the emulated CUDA backend, device-array inputs give what NumPy inputs give: the same
    result bitwise, or the same exception type and message."""
    fn, make_args, _ = OPS[op]
    p, t, dtype, index_dtype, seed = data.draw(problems(), "problem")
    opts = data.draw(OPTIONS, "options")
    args = make_args(p, t, dtype, index_dtype, seed)
    name = data.draw(st.sampled_from(sorted(args)), "argument")
    role = "scalar" if isinstance(args[name], float) else ROLES[name]
    kind, what, new = data.draw(mutations(args[name], role), "mutation")
    if kind != "layout" and data.draw(st.booleans(), "mutate"):
        args = dict(args, **{name: new})
    note(f"{op}: {name} {what}")
    if not all(device_safe(v) for v in args.values()):
        return
    with _backend.cuda_emulation():
        be = _backend.resolve("cuda")
        host = outcome(lambda: fn(*args.values(), **opts, device="cuda"))
        dev = outcome(lambda: to_host(fn(*[on_device(be, v) for v in args.values()], **opts)))
    if host[0] == "error" or dev[0] == "error":
        assert (dev[0], type(dev[1]), str(dev[1])) == (host[0], type(host[1]), str(host[1])), (host, dev)
    else:
        assert results_equal(dev[1], host[1])


# ---- the list utilities ---------------------------------------------------------------------------

@st.composite
def lists(draw):
    p = draw(problems())[0]
    attr_kind = draw(st.sampled_from(["none", "importance", "matrix", "int"]))
    e = len(p.neighbors_index)
    attrs = {"none": np.zeros(0), "importance": np.linspace(0.0, 1.0, e),
             "matrix": np.arange(2 * e, dtype=np.float32).reshape(e, 2),
             "int": np.arange(e, dtype=np.int64)}[attr_kind]
    index_dtype = draw(st.sampled_from([np.int32, np.int64]))
    return len(p.inp_positions), p.neighbors_index.astype(index_dtype), p.neighbors_row_splits, attrs


@pytest.mark.parametrize("device", BACKENDS)
@fuzz_settings(0.5)
@given(data=st.data())
def test_fuzz_invert_neighbors_list(device, data):
    num_points, index, splits, attrs = data.draw(lists(), "lists")
    args = dict(num_points=num_points, inp_neighbors_index=index, inp_neighbors_row_splits=splits,
                inp_neighbors_attributes=attrs)
    roles = dict(num_points="count", inp_neighbors_index="index", inp_neighbors_row_splits="splits",
                 inp_neighbors_attributes="float")
    with use_backend(device) as dev:
        status, base = outcome(lambda: gm.invert_neighbors_list(*args.values(), device=dev))
    assert status == "ok", base
    want = R.invert_neighbors_list(*args.values())
    for g, w in zip(base, want):
        np.testing.assert_array_equal(g, w)
        assert g.dtype == w.dtype

    name = data.draw(st.sampled_from(sorted(args)), "argument")
    kind, what, new = data.draw(mutations(args[name], roles[name]), "mutation")
    note(f"{name} {what}")
    margs = dict(args, **{name: new})
    with use_backend(device) as dev:
        status, got = outcome(lambda: gm.invert_neighbors_list(*margs.values(), device=dev))
    if status == "error":
        assert kind not in EQUIVALENT, f"{name} {what} was rejected: {got!r}"
        assert_names(got, name)
        return
    if kind in EQUIVALENT:
        assert results_equal(got, base)
        return
    want = R.invert_neighbors_list(*margs.values())
    for g, w in zip(got, want):
        assert np.array_equal(g, w, equal_nan=True), f"{name} {what}: {g} != {w}"


@pytest.mark.parametrize("device", BACKENDS)
@fuzz_settings(0.5)
@given(data=st.data())
def test_fuzz_reduce_subarrays_sum(device, data):
    _, index, splits, _ = data.draw(lists(), "lists")
    dtype = data.draw(st.sampled_from([np.float32, np.float64, np.int32, np.int64]), "dtype")
    values = (np.arange(len(index)) % 7 - 3).astype(dtype) * (dtype(0.5) if np.dtype(dtype).kind == "f" else 1)
    args = dict(values=values, row_splits=splits)
    with use_backend(device) as dev:
        status, base = outcome(lambda: gm.reduce_subarrays_sum(*args.values(), device=dev))
    assert status == "ok", base
    np.testing.assert_array_equal(base, R.reduce_subarrays_sum(*args.values()))

    name = data.draw(st.sampled_from(sorted(args)), "argument")
    kind, what, new = data.draw(mutations(args[name], "float" if name == "values" else "splits"), "mutation")
    note(f"{name} {what}")
    margs = dict(args, **{name: new})
    with use_backend(device) as dev:
        status, got = outcome(lambda: gm.reduce_subarrays_sum(*margs.values(), device=dev))
    if status == "error":
        assert kind not in EQUIVALENT, f"{name} {what} was rejected: {got!r}"
        assert_names(got, name)
        return
    if kind in EQUIVALENT:
        assert results_equal(got, base)
        return
    v = np.asarray(margs["values"])
    assert got.dtype == v.dtype, f"{name} {what}"
    if v.shape == (0,):  # empty values: an empty result whatever row_splits is (documented)
        assert got.shape == (0,)
        return
    if v.dtype.kind in "iu":  # integer sums wrap around like NumPy's
        rs = np.asarray(margs["row_splits"]).astype(np.int64)
        bits = 8 * v.dtype.itemsize
        exact = [sum(int(x) for x in v[rs[i]:rs[i + 1]]) for i in range(len(rs) - 1)]
        want = np.array([(x + (1 << (bits - 1))) % (1 << bits) - (1 << (bits - 1)) for x in exact], v.dtype)
        np.testing.assert_array_equal(got, want)
        return
    want = R.reduce_subarrays_sum(v, margs["row_splits"])
    assert got.shape == want.shape, f"{name} {what}"
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=1e-6, equal_nan=True)
