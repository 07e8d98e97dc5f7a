"""Fuzzing the NumPy layers: ContinuousConv, ContinuousConvTranspose, FixedRadiusSearch,
RadiusSearch and KNNSearch (the contract is in fuzz_util's docstring), their constructors,
``forward`` / ``__call__`` and ``backward``.

Oracles: for the convolution layers the float64 reference of reference_cconv run on the
neighbor lists the call used (kept in its context), plus dense center, bias and activation in
NumPy, and those neighbor lists against the brute-force search of reference_search; the kernel
and feature gradients against the reference's backward. For the search layers the functional
op with the same options (bitwise) and, for L2, the distance gradient 2 (q - p) g in NumPy.
"""

import numpy as np
import pytest
from hypothesis import given, note
from hypothesis import strategies as st

import geomops as gm
import reference_cconv as R
import reference_search as RS
from fuzz_util import EQUIVALENT, assert_names, fuzz_settings, mutations, outcome, results_equal
from geomops.layers import ContinuousConv, ContinuousConvTranspose, FixedRadiusSearch, KNNSearch, RadiusSearch

ACTIVATIONS = {None: lambda x: x, "relu": lambda x: np.maximum(x, 0.0), "tanh": np.tanh}
ACTIVATION_DERIVATIVES = {None: lambda x: np.ones_like(x), "relu": lambda x: (x > 0).astype(np.float64),
                          "tanh": lambda x: 1.0 - np.tanh(x) ** 2}

# bad (or unusual) constructor values; a value the layer accepts must still give a correct call
CONV_CTOR_VALUES = {
    "in_channels": [0, -1, 2.5, "3", None, 1 << 62],
    "filters": [0, 2.5, None, 1 << 62],
    "kernel_size": [(0, 1, 1), (2, 2), "3", 2.5, (1 << 40,) * 3, (1 << 20,) * 3, None],  # never one that fits
    "activation": ["foo", 3, "RELU"],
    "use_bias": ["yes", None, 1],
    "dtype": ["float16", np.int32, "foo", np.complex64],
    "coordinate_mapping": ["foo", None, 0],
    "interpolation": ["cubic", None],
    "align_corners": [1, "no", None],
    "normalize": [0, None],
    "radius_search_metric": ["L3", None, 2, "l2"],
    "radius_search_ignore_query_points": [1, "yes"],
    "offset": [[np.nan, 0, 0], [1.0, 2.0], "abc", 5.0, [1e300, 0, 0], [0.1, 0.2, 0.3 + 1j]],
    "max_temp_mem_MB": [-1, "a", 0, 1 << 62],
    "num_threads": [-2, 2.5, "1", 1 << 40, 1],
    "window_function": [3, "gauss"],
}


def _conv_options(ctor):
    return dict(align_corners=ctor["align_corners"], coordinate_mapping=ctor["coordinate_mapping"],
                interpolation=ctor["interpolation"], normalize=ctor["normalize"])


@st.composite
def conv_layer_calls(draw, transpose):
    """(constructor arguments, forward arguments by name) of a small valid call."""
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    dtype = np.dtype(draw(st.sampled_from([np.float32, np.float64])))
    align = draw(st.booleans())
    ni, no = draw(st.integers(0, 8)), draw(st.integers(0, 6))
    same = draw(st.booleans())
    if same:
        no = ni
    ctor = dict(in_channels=draw(st.integers(1, 3)), filters=draw(st.integers(1, 3)),
                kernel_size=draw(st.sampled_from([1, 2, 3, (1, 2, 3), (3, 1, 2)])),
                activation=draw(st.sampled_from([None, "relu", "tanh"])), use_bias=draw(st.booleans()),
                align_corners=align, coordinate_mapping=draw(st.sampled_from(R.MAPPINGS)),
                interpolation=draw(st.sampled_from(["linear", "linear_border"])), normalize=draw(st.booleans()),
                radius_search_metric=draw(st.sampled_from(["L1", "L2", "Linf"])),
                radius_search_ignore_query_points=draw(st.booleans()),
                offset=None if align or draw(st.booleans()) else rng.uniform(-0.3, 0.3, 3),
                use_dense_layer_for_center=same and draw(st.booleans()), dtype=dtype, seed=0)
    xi = rng.uniform(0, 1, (ni, 3)).astype(dtype)
    xo = xi.copy() if same else rng.uniform(0, 1, (no, 3)).astype(dtype)
    per = ni if transpose else no
    extents = float(rng.uniform(0.6, 1.2)) if draw(st.booleans()) else rng.uniform(0.6, 1.2, per).astype(dtype)
    args = dict(inp_features=rng.standard_normal((ni, ctor["in_channels"])).astype(dtype), inp_positions=xi,
                out_positions=xo, extents=extents)
    imp_name, imp_len = ("out_importance", no) if transpose else ("inp_importance", ni)
    args[imp_name] = rng.uniform(0.5, 1.5, imp_len).astype(dtype) if draw(st.booleans()) else None
    if isinstance(extents, float) and draw(st.booleans()):  # the table the layer's search would build
        args["fixed_radius_search_hash_table"] = gm.build_spatial_hash_table(xo if transpose else xi, extents / 2)
    elif draw(st.booleans()):  # the lists the layer's search gives, passed as user lists
        cls = ContinuousConvTranspose if transpose else ContinuousConv
        layer = cls(**ctor)
        points, queries = (xo, xi) if transpose else (xi, xo)
        idx, rs, _, _ = layer._search(points, queries, np.asarray(extents, dtype), None)
        args.update(user_neighbors_index=idx, user_neighbors_row_splits=rs)
        if draw(st.booleans()):
            args["user_neighbors_importance"] = rng.uniform(0.5, 1.5, len(idx)).astype(dtype)
    return ctor, args


def _reference_forward(layer, ctx, transpose):
    opts = _conv_options(layer.conv_options)
    ref = R.continuous_conv_transpose if transpose else R.continuous_conv
    pre = ref(*ctx.args, **opts)
    if layer.dense_kernel is not None:
        pre = pre + ctx.feats.astype(np.float64) @ layer.dense_kernel.astype(np.float64)
    if layer.bias is not None:
        pre = pre + layer.bias
    return pre, ACTIVATIONS[layer.activation](pre)


def _close(got, want, dtype, what, scale=None):
    got = np.asarray(got)
    assert got.dtype == dtype and got.shape == np.shape(want), \
        f"{what}: {got.dtype} {got.shape}, expected {dtype} {np.shape(want)}"
    if scale is None:
        scale = max(float(np.max(np.abs(want), initial=0.0)), 1e-300)
    err = float(np.max(np.abs(got.astype(np.float64) - want), initial=0.0))
    assert err <= 10 * R.RTOL[dtype] * max(scale, 1.0), f"{what}: max error {err:.3g} (scale {scale:.3g})"


def _check_neighbors(layer, ctx, args, transpose, what):
    """The call's neighbor lists against the brute-force search (search radius = extents / 2)."""
    points, queries = (args["out_positions"], args["inp_positions"]) if transpose else \
        (args["inp_positions"], args["out_positions"])
    points, queries = np.asarray(points, layer.dtype), np.asarray(queries, layer.dtype)
    ext = np.asarray(ctx.extents)
    radii = (np.broadcast_to(ext / 2, (len(queries),)) if ext.ndim else
             np.full(len(queries), float(ext) / 2)).astype(layer.dtype)
    per_query = RS.ref_radius(points, queries, radii, metric=layer.radius_search_metric,
                              ignore_query_point=layer.radius_search_ignore_query_points, inclusive=ext.ndim == 0)
    rs = np.asarray(ctx.row_splits)
    idx = np.asarray(ctx.index)
    for i, (want, _) in enumerate(per_query):
        assert sorted(idx[rs[i]:rs[i + 1]].tolist()) == sorted(want.tolist()), f"{what}: neighbors of query {i}"


def _check_call(layer, transpose, args, what, *, lists=True):
    """Run a valid call and its backward; check both against the reference. Returns the output."""
    out, ctx = layer.forward(**args)
    pre, want = _reference_forward(layer, ctx, transpose)
    _close(out, want, layer.dtype, f"{what}: forward")
    if lists:
        _check_neighbors(layer, ctx, args, transpose, what)
    g = np.random.default_rng(1).uniform(-1, 1, out.shape).astype(layer.dtype)
    grads = layer.backward(g, ctx)
    g_pre = g.astype(np.float64) * ACTIVATION_DERIVATIVES[layer.activation](np.asarray(ctx.pre, np.float64))
    opts = _conv_options(layer.conv_options)
    ref_bw = R.continuous_conv_transpose_backward if transpose else R.continuous_conv_backward
    want_bw = ref_bw(*ctx.args, g_pre, **opts)
    scale = max(float(np.max(np.abs(want_bw.filters), initial=0.0)),
                float(np.max(np.abs(want_bw.inp_features), initial=0.0)), 1e-300)
    _close(grads.kernel, want_bw.filters, layer.dtype, f"{what}: kernel gradient", scale)
    if layer.dense_kernel is None:
        _close(grads.inp_features, want_bw.inp_features, layer.dtype, f"{what}: feature gradient", scale)
    if layer.bias is not None:
        _close(grads.bias, g_pre.sum(axis=0), layer.dtype, f"{what}: bias gradient")
    return out


def _finite(*values):
    for v in values:
        if v is None:
            continue
        try:
            a = np.asarray(v)
        except Exception:
            return False
        if a.dtype.kind not in "biuf":
            return False
        mag = np.abs(a.astype(np.float64))
        if a.size and not np.all((mag < 1e15) & ((mag == 0) | (mag > 1e-30))):
            return False  # the reference's domain: no overflow of 1 / extent or of products
    return True


@pytest.mark.parametrize("transpose", [False, True], ids=["ContinuousConv", "ContinuousConvTranspose"])
@fuzz_settings(0.4)
@given(data=st.data())
def test_fuzz_conv_layers(transpose, data):
    cls = ContinuousConvTranspose if transpose else ContinuousConv
    ctor, args = data.draw(conv_layer_calls(transpose), "call")
    layer = cls(**ctor)
    status, base = outcome(lambda: _check_call(layer, transpose, args, "valid call"))
    assert status == "ok", base

    target = data.draw(st.sampled_from(["argument", "argument", "constructor", "gradient", "wrt"]), "target")
    mctor, margs = ctor, args
    if target == "constructor":
        name = data.draw(st.sampled_from(sorted(CONV_CTOR_VALUES)), "parameter")
        new = data.draw(st.sampled_from(CONV_CTOR_VALUES[name]), "value")
        kind, what, mctor = "option", f"-> {new!r}", dict(ctor, **{name: new})
    elif target == "gradient":
        name = "out_features_gradient"
        g = np.random.default_rng(1).uniform(-1, 1, base.shape).astype(layer.dtype)
        kind, what, new = data.draw(mutations(g, "float"), "mutation")
    elif target == "wrt":
        name = "wrt"
        new = data.draw(st.sampled_from(WRT_VALUES), "wrt")
        kind, what = "option", f"-> {new!r}"
    else:
        name = data.draw(st.sampled_from(sorted(args)), "argument")
        value = args[name]
        if name == "fixed_radius_search_hash_table":
            pts = args["out_positions" if transpose else "inp_positions"]
            how = data.draw(st.sampled_from(["radius", "points", "junk", None]), "table")
            new = {"radius": lambda: gm.build_spatial_hash_table(pts, args["extents"]),
                   "points": lambda: gm.build_spatial_hash_table(pts[:-1], args["extents"] / 2),
                   "junk": lambda: (1, 2), None: lambda: None}[how]()
            kind, what = "option", f"-> {how}"
        else:
            role = {"user_neighbors_index": "index", "user_neighbors_row_splits": "splits"}.get(
                name, "scalar" if isinstance(value, float) else "position" if name.endswith("positions") else "float")
            kind, what, new = data.draw(mutations(value, role), "mutation")
        margs = dict(args, **{name: new})
    note(f"{name} {what}")

    def call():
        mlayer = cls(**mctor)
        out, ctx = mlayer.forward(**margs)
        if target == "gradient":
            return out, mlayer.backward(new, ctx)
        if target == "wrt":
            g = np.random.default_rng(1).uniform(-1, 1, out.shape).astype(mlayer.dtype)
            return out, mlayer.backward(g, ctx, wrt=new)
        return out, mlayer

    status, got = outcome(call)
    if status == "error":
        assert kind not in EQUIVALENT, f"{name} {what} was rejected: {got!r}"
        # a table built for the unmutated extents / points no longer fits: naming it is right too
        table = ["fixed_radius_search_hash_table"] if margs.get("fixed_radius_search_hash_table") is not None else []
        assert_names(got, name, *table)
        return
    out, extra = got
    if kind in EQUIVALENT:
        assert results_equal(out, base), f"{name} {what} changed the result"
        if target == "gradient":
            assert results_equal(extra, layer.backward(np.asarray(new), layer.forward(**args)[1]))
        return
    assert isinstance(out, np.ndarray) and out.ndim == 2, f"{name} {what}: {type(out)}"
    if target == "wrt":
        wanted = {new} if isinstance(new, str) else set(new)
        for field, value in extra._asdict().items():
            assert (value is None) == (field not in wanted or getattr(layer, field, True) is None), \
                f"wrt {new!r}: {field} is {'None' if value is None else 'given'}"
            assert value is None or np.isfinite(value).all(), f"wrt {new!r}: {field} is not finite"
        return
    if target == "gradient":
        for field in ("kernel", "inp_features"):
            assert getattr(extra, field).dtype == layer.dtype, f"{name} {what}: {field} dtype"
        return
    mlayer = extra
    if _finite(*(v for k, v in margs.items() if k != "fixed_radius_search_hash_table")) \
            and mlayer.window_function is None:
        status, again = outcome(lambda: _check_call(mlayer, transpose, margs, f"{name} {what}", lists=False))
        assert status == "ok", f"{name} {what}: {again!r}"


WRT_VALUES = ["kernel", ("kernel", "extents"), ["inp_positions", "out_positions"], ("bias", "inp_features"),
              "foo", 3, ("kernel", None), "filters"]


# ---- search layers -----------------------------------------------------------------------------

SEARCH_LAYERS = {"FixedRadiusSearch": (FixedRadiusSearch, gm.fixed_radius_search, "radius"),
                 "RadiusSearch": (RadiusSearch, gm.radius_search, "radii"),
                 "KNNSearch": (KNNSearch, gm.knn_search, "k")}
SEARCH_CTOR_VALUES = {"metric": ["L3", None, 2], "ignore_query_point": [1, "yes", None],
                      "return_distances": [1, None], "index_dtype": [np.int16, np.float32, "foo", np.uint32],
                      "num_threads": [-2, 2.5, 1 << 40, 1], "normalize_distances": [1, "no"],
                      "max_hash_table_size": [0, -1, 2.5, 1 << 62]}


@st.composite
def search_layer_calls(draw, layer_name):
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    dtype = np.dtype(draw(st.sampled_from([np.float32, np.float64])))
    np_, nq = draw(st.integers(0, 10)), draw(st.integers(0, 6))
    points = rng.uniform(0, 1, (np_, 3)).astype(dtype)
    queries = points[:nq].copy() if draw(st.booleans()) and nq <= np_ else rng.uniform(0, 1, (nq, 3)).astype(dtype)
    ctor = dict(metric=draw(st.sampled_from(["L1", "L2", "Linf"])), ignore_query_point=draw(st.booleans()),
                return_distances=draw(st.booleans()), index_dtype=draw(st.sampled_from([np.int32, np.int64])))
    if layer_name == "RadiusSearch":
        ctor["normalize_distances"] = draw(st.booleans())
    args = dict(points=points, queries=queries)
    if layer_name == "KNNSearch":
        args["k"] = draw(st.integers(1, 4))
    elif layer_name == "RadiusSearch" and draw(st.booleans()):
        args["radii"] = rng.uniform(0.1, 0.6, nq).astype(dtype)
    else:
        args["radius" if layer_name == "FixedRadiusSearch" else "radii"] = float(rng.uniform(0.1, 0.6))
    if draw(st.booleans()):  # two batch items
        args["points_row_splits"] = np.array([0, np_ // 2, np_], np.int64)
        args["queries_row_splits"] = np.array([0, nq // 2, nq], np.int64)
    return ctor, args


def _search_call(layer_name, ctor, args, grad=None):
    cls, op, _ = SEARCH_LAYERS[layer_name]
    layer = cls(**ctor)
    result, ctx = layer.forward(**args)
    grads = None
    if ctor.get("return_distances"):
        g = np.random.default_rng(2).uniform(-1, 1, np.shape(result.neighbors_distance)) if grad is None else grad
        grads = layer.backward(g, ctx)
    return result, grads


def _check_search(layer_name, ctor, args, result, grads, what):
    """The layer's result equals the op's; L2 distance gradients are 2 (q - p) g."""
    _, op, _ = SEARCH_LAYERS[layer_name]
    kw = {k: v for k, v in ctor.items() if k != "max_hash_table_size"}  # the layer only validates it
    want = op(**args, **kw)
    assert results_equal(tuple(result), tuple(want)), f"{what}: the layer's result is not the op's"
    if grads is None:
        return
    pts, qs = np.asarray(args["points"]), np.asarray(args["queries"])
    assert grads.points.shape == pts.shape and grads.queries.shape == qs.shape, what
    assert grads.points.dtype == pts.dtype and grads.queries.dtype == pts.dtype, what
    if ctor["metric"] != "L2" or ctor.get("normalize_distances"):
        assert np.isfinite(grads.points).all() and np.isfinite(grads.queries).all(), what
        return
    g = np.random.default_rng(2).uniform(-1, 1, np.shape(result.neighbors_distance))
    rs = np.asarray(result.neighbors_row_splits)
    rows = np.repeat(np.arange(len(rs) - 1), np.diff(rs))
    idx = np.asarray(result.neighbors_index)
    diff = qs[rows].astype(np.float64) - pts[idx]
    d_q, d_p = np.zeros(qs.shape), np.zeros(pts.shape)
    np.add.at(d_q, rows, 2 * diff * g[:, None])
    np.add.at(d_p, idx, -2 * diff * g[:, None])
    _close(grads.queries, d_q, pts.dtype, f"{what}: query gradient")
    _close(grads.points, d_p, pts.dtype, f"{what}: point gradient")


@pytest.mark.parametrize("layer_name", list(SEARCH_LAYERS))
@fuzz_settings(0.4)
@given(data=st.data())
def test_fuzz_search_layers(layer_name, data):
    ctor, args = data.draw(search_layer_calls(layer_name), "call")
    status, base = outcome(lambda: _search_call(layer_name, ctor, args))
    assert status == "ok", base
    _check_search(layer_name, ctor, args, *base, "valid call")

    targets = ["argument", "argument", "constructor"] + (["gradient"] if ctor["return_distances"] else [])
    target = data.draw(st.sampled_from(targets), "target")
    mctor, margs, grad = ctor, args, None
    if target == "constructor":
        names = [n for n in SEARCH_CTOR_VALUES if n != "normalize_distances" or layer_name == "RadiusSearch"]
        names = [n for n in names if n != "max_hash_table_size" or layer_name == "FixedRadiusSearch"]
        name = data.draw(st.sampled_from(names), "parameter")
        new = data.draw(st.sampled_from(SEARCH_CTOR_VALUES[name]), "value")
        kind, what, mctor = "option", f"-> {new!r}", dict(ctor, **{name: new})
    elif target == "gradient":
        name = "grad_distance"
        g = np.random.default_rng(2).uniform(-1, 1, np.shape(base[0].neighbors_distance))
        kind, what, grad = data.draw(mutations(g, "float"), "mutation")
    else:
        name = data.draw(st.sampled_from(sorted(args)), "argument")
        value = args[name]
        role = {"points": "position", "queries": "position", "k": "count", "points_row_splits": "splits",
                "queries_row_splits": "splits"}.get(name, "scalar" if isinstance(value, float) else "float")
        kind, what, new = data.draw(mutations(value, role), "mutation")
        margs = dict(args, **{name: new})
    note(f"{name} {what}")
    status, got = outcome(lambda: _search_call(layer_name, mctor, margs, grad))
    if status == "error":
        assert kind not in EQUIVALENT, f"{name} {what} was rejected: {got!r}"
        assert_names(got, name)
        return
    if kind in EQUIVALENT:
        assert results_equal(tuple(got[0]), tuple(base[0])), f"{name} {what} changed the result"
        if target == "gradient":
            assert results_equal(tuple(got[1]), tuple(base[1])), f"{name} {what} changed the gradients"
        return
    if target != "gradient" and _finite(*margs.values()):
        _check_search(layer_name, mctor, margs, *got, f"{name} {what}")
