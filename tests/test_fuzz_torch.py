"""Fuzzing the torch face (``geomops.torch`` ops and layers; the contract is in fuzz_util's docstring).

A valid call is drawn (the small random problems of test_fuzz_cconv / test_fuzz_search, every
option), its tensors made in random flavours (``requires_grad``, non-contiguous views of a
larger tensor, float32 / float64, int32 / int64 indices, empty point sets; device "cpu"), and
checked against the NumPy op on the same data: the same values bitwise, and for the
convolutions the autograd gradients bitwise those of the NumPy one-call backward (for the
searches, those of the NumPy search layers' backward, to rounding). Then one argument is
mutated (fuzz_util.mutations, turned into a tensor where torch has the dtype): the call must
succeed with what the NumPy op gives on the same values, or raise TypeError / ValueError /
MemoryError naming the argument.
"""

import numpy as np
import pytest
from hypothesis import event, given, note
from hypothesis import strategies as st

import geomops as gm
import reference_cconv as R
from fuzz_util import EQUIVALENT, assert_names, fuzz_settings, mutations, outcome, results_equal
from geomops import layers as np_layers
from test_fuzz_cconv import OPTIONS, ROLES, problems
from test_fuzz_search import point_sets

torch = pytest.importorskip("torch")
import geomops.torch as gt  # noqa: E402  (after the skip: it needs torch)

FLOAT_INPUTS = {"filters", "out_positions", "extents", "inp_positions", "inp_features", "inp_importance",
                "neighbors_importance", "out_importance", "inp_neighbors_importance_sum"}  # offset: no gradient


class Flavoured:
    """A tensor of a NumPy array in a drawn flavour: ``tensor`` goes to the op; ``leaf`` holds the
    gradient (a view's base, every other row untouched)."""

    def __init__(self, a, strided, requires_grad):
        a = np.asarray(a)
        if strided and a.ndim and a.shape[0]:
            self.leaf = torch.from_numpy(np.repeat(a, 2, axis=0)).requires_grad_(requires_grad)
            self.tensor = self.leaf[::2]
            assert not self.tensor.is_contiguous() or a.shape[0] == 1 or a.size == 0
        else:
            self.leaf = torch.from_numpy(a.copy()).requires_grad_(requires_grad)
            self.tensor = self.leaf
        self.strided = self.tensor is not self.leaf

    def grad(self):
        g = self.leaf.grad
        return None if g is None else (g[::2] if self.strided else g).numpy()


def _flavour(draw, name, a, requires_grad=None):
    """A Flavoured tensor of argument ``a`` (None and Python scalars stay as they are)."""
    if a is None or not isinstance(a, np.ndarray):
        return a
    rg = requires_grad
    if rg is None:
        rg = name in FLOAT_INPUTS and a.dtype.kind == "f" and draw(st.booleans(), f"{name} requires_grad")
    return Flavoured(a, draw(st.booleans(), f"{name} strided"), rg)


def _tensor_of(value):
    """A mutated argument as torch would get it: a tensor where torch has the dtype (contiguous:
    NumPy layouts such as negative strides have no tensor), else the value itself."""
    if isinstance(value, np.ndarray) and value.dtype.kind in "biufc":
        return torch.from_numpy(np.array(value, order="C"))  # a writable copy
    return value


def _numpy(x):
    """A torch result (tensor, named tuple of tensors) as NumPy."""
    if isinstance(x, tuple):
        return tuple(_numpy(v) for v in x)
    return x.detach().numpy() if isinstance(x, torch.Tensor) else x


def _assert_error_or_equal(name, kind, what, got, margs, numpy_call):
    """A mutated torch call: an error naming ``name``, or the NumPy op's result on the same values."""
    status, result = got
    event(f"{kind} -> {status}")
    if status == "error":
        assert kind not in EQUIVALENT, f"{what} was rejected: {result!r}"
        assert_names(result, name)
        return
    np_status, want = outcome(lambda: numpy_call(margs))
    assert np_status == "ok", f"{what}: torch accepted what the NumPy op refuses ({want!r})"
    assert results_equal(_numpy(result), want), f"{what}: torch and NumPy differ"


# ---- the convolutions -----------------------------------------------------------------------------

CONV = {
    "continuous_conv": (gt.ops.continuous_conv, gm.continuous_conv, gm.continuous_conv_backward,
                        R.Problem.FIELDS, lambda p, t, dt, it: p.args(dt, it)),
    "continuous_conv_transpose": (gt.ops.continuous_conv_transpose, gm.continuous_conv_transpose,
                                  gm.continuous_conv_transpose_backward, R.TransposeProblem.FIELDS,
                                  lambda p, t, dt, it: t.args(dt, it)),
}


@pytest.mark.parametrize("op", list(CONV))
@fuzz_settings(0.5)
@given(data=st.data())
def test_fuzz_torch_conv_ops(op, data):
    torch_fn, numpy_fn, numpy_backward, fields, make = CONV[op]
    p, t, dtype, index_dtype, seed = data.draw(problems(), "problem")
    opts = data.draw(OPTIONS, "options")
    args = dict(zip(fields, make(p, t, dtype, index_dtype)))
    flav = {n: _flavour(data.draw, n, a) for n, a in args.items()}
    targs = [f.tensor if isinstance(f, Flavoured) else f for f in flav.values()]
    status, out = outcome(lambda: torch_fn(*targs, **opts))
    assert status == "ok", f"a valid call failed: {out!r}"
    want = numpy_fn(*args.values(), **opts)
    assert out.dtype == torch.from_numpy(want).dtype and results_equal(out.detach().numpy(), want)

    wrt = sorted(n for n, f in flav.items() if isinstance(f, Flavoured) and f.leaf.requires_grad)
    note(f"{op}: gradients of {wrt}")
    if wrt and out.requires_grad:
        g = np.random.default_rng(seed).uniform(-1, 1, out.shape).astype(dtype)
        out.backward(torch.from_numpy(g))
        grads = numpy_backward(*args.values(), g, wrt=wrt, **opts)
        for n in wrt:
            got, expected = flav[n].grad(), getattr(grads, n)
            if expected is None:  # an absent importance: no gradient at all
                assert got is None or not got.any(), n
                continue
            assert results_equal(got, expected.reshape(got.shape)), f"{op}: d/d {n} differs from the NumPy backward"

    name = data.draw(st.sampled_from(sorted(args)), "argument")
    role = "scalar" if isinstance(args[name], float) else ROLES[name]
    kind, what, new = data.draw(mutations(args[name], role), "mutation")
    what = f"{op}: {name} {what}"
    note(what)
    margs = dict(args, **{name: new})
    got = outcome(lambda: torch_fn(*[_tensor_of(v) for v in margs.values()], **opts))
    _assert_error_or_equal(name, kind, what, got, margs, lambda m: numpy_fn(*m.values(), **opts))


# ---- the list utilities ---------------------------------------------------------------------------

@fuzz_settings(0.5)
@given(data=st.data())
def test_fuzz_torch_list_utilities(data):
    p = data.draw(problems(), "problem")[0]
    index_dtype = data.draw(st.sampled_from([np.int32, np.int64]), "index dtype")
    dtype = data.draw(st.sampled_from([np.float32, np.float64]), "dtype")
    e = len(p.neighbors_index)
    values = np.linspace(-1, 1, e).astype(dtype)
    args = dict(num_points=len(p.inp_positions), inp_neighbors_index=p.neighbors_index.astype(index_dtype),
                inp_neighbors_row_splits=p.neighbors_row_splits, inp_neighbors_attributes=values)
    roles = dict(num_points="count", inp_neighbors_index="index", inp_neighbors_row_splits="splits",
                 inp_neighbors_attributes="float")
    flav = {n: _flavour(data.draw, n, a, requires_grad=n == "inp_neighbors_attributes") for n, a in args.items()}
    attrs = flav["inp_neighbors_attributes"]
    targs = [f.tensor if isinstance(f, Flavoured) else f for f in flav.values()]
    status, inv = outcome(lambda: gt.ops.invert_neighbors_list(*targs))
    assert status == "ok", inv
    assert results_equal(_numpy(tuple(inv)), tuple(gm.invert_neighbors_list(*args.values())))
    sums = gt.ops.reduce_subarrays_sum(attrs.tensor, flav["inp_neighbors_row_splits"].tensor)
    assert results_equal(sums.detach().numpy(), gm.reduce_subarrays_sum(values, p.neighbors_row_splits))
    # gradients: the permutation moves them back; the sum spreads them over each row
    g_inv = np.random.default_rng(1).uniform(-1, 1, e).astype(dtype)
    g_sum = np.random.default_rng(2).uniform(-1, 1, sums.shape[0]).astype(dtype)
    if e:
        (inv.neighbors_attributes * torch.from_numpy(g_inv)).sum().add((sums * torch.from_numpy(g_sum)).sum()) \
            .backward()
        perm = gm.invert_neighbors_list(*list(args.values())[:3], np.arange(e)).neighbors_attributes
        rows = np.repeat(np.arange(len(p.neighbors_row_splits) - 1), np.diff(p.neighbors_row_splits))
        want = np.zeros(e, dtype)
        want[perm] = g_inv
        np.testing.assert_array_equal(attrs.grad(), want + g_sum[rows])

    name = data.draw(st.sampled_from(sorted(args)), "argument")
    kind, what, new = data.draw(mutations(args[name], roles[name]), "mutation")
    what = f"invert_neighbors_list: {name} {what}"
    note(what)
    margs = dict(args, **{name: new})
    got = outcome(lambda: gt.ops.invert_neighbors_list(margs["num_points"], *[_tensor_of(v) for v in
                                                                              list(margs.values())[1:]]))
    _assert_error_or_equal(name, kind, what, got, margs, lambda m: gm.invert_neighbors_list(*m.values()))
    if name in ("inp_neighbors_attributes", "inp_neighbors_row_splits"):
        sargs = {"values": margs["inp_neighbors_attributes"], "row_splits": margs["inp_neighbors_row_splits"]}
        what = f"reduce_subarrays_sum: {name} {what}"
        got = outcome(lambda: gt.ops.reduce_subarrays_sum(*[_tensor_of(v) for v in sargs.values()]))
        name = "values" if name == "inp_neighbors_attributes" else "row_splits"
        _assert_error_or_equal(name, kind, what, got, sargs, lambda m: gm.reduce_subarrays_sum(*m.values()))


# ---- the searches ---------------------------------------------------------------------------------

SEARCHES = ("fixed_radius_search", "radius_search", "knn_search")


def _search_call(kind, points, queries, extra, ps, qs, opts, torch_face):
    """A search of ``kind`` through geomops.torch.ops (``torch_face``) or geomops."""
    if torch_face:
        if kind == "fixed_radius_search":
            table = gt.ops.build_spatial_hash_table(points, extra, ps, 1 / 64)
            return gt.ops.fixed_radius_search(points, queries, extra, ps, qs, table.hash_table_splits,
                                              table.hash_table_index, table.hash_table_cell_splits, **opts)
        return getattr(gt.ops, kind)(points, queries, extra, ps, qs, **opts)
    return getattr(gm, kind)(points, queries, extra, ps, qs, **opts)


@pytest.mark.parametrize("kind", SEARCHES)
@fuzz_settings(0.5)
@given(data=st.data())
def test_fuzz_torch_searches(kind, data):
    points, queries, ps, qs = data.draw(point_sets(), "points")
    dtype = points.dtype
    ps = np.array([0, len(points)], np.int64) if ps is None else ps  # the torch ops take them explicitly
    qs = np.array([0, len(queries)], np.int64) if qs is None else qs
    opts = dict(index_dtype=data.draw(st.sampled_from([torch.int32, torch.int64, 3, 4]), "index dtype"),
                metric=data.draw(st.sampled_from(["L1", "L2", "Linf"]), "metric"),
                ignore_query_point=data.draw(st.booleans(), "ignore"), return_distances=True)
    if kind == "radius_search":
        extra = np.random.default_rng(0).uniform(0.1, 0.5, len(queries)).astype(dtype)
        opts["normalize_distances"] = data.draw(st.booleans(), "normalize")
    else:
        extra = 0.3 if kind == "fixed_radius_search" else data.draw(st.integers(1, 4), "k")
    np_opts = dict(opts, index_dtype={3: np.int32, 4: np.int64, torch.int32: np.int32,
                                      torch.int64: np.int64}[opts["index_dtype"]])
    fp, fq = Flavoured(points, data.draw(st.booleans()), True), Flavoured(queries, data.draw(st.booleans()), True)
    fe = Flavoured(extra, False, bool(opts.get("normalize_distances"))) if kind == "radius_search" else None
    status, res = outcome(lambda: _search_call(kind, fp.tensor, fq.tensor, fe.tensor if fe else extra,
                                               torch.from_numpy(ps), torch.from_numpy(qs), opts, True))
    assert status == "ok", f"a valid call failed: {res!r}"
    want = _search_call(kind, points, queries, extra, ps, qs, np_opts, False)
    assert results_equal(_numpy(tuple(res)), tuple(want))

    # the distances' gradients: those of the NumPy search layer's backward (to rounding)
    g = np.random.default_rng(3).uniform(-1, 1, res.neighbors_distance.shape).astype(dtype)
    if g.size:
        (res.neighbors_distance * torch.from_numpy(g)).sum().backward()
        layer_opts = dict(metric=opts["metric"], ignore_query_point=opts["ignore_query_point"],
                          return_distances=True, index_dtype=np_opts["index_dtype"])
        if kind == "fixed_radius_search":
            layer, extra_args = np_layers.FixedRadiusSearch(**layer_opts), (extra, ps, qs)
        elif kind == "radius_search":
            layer = np_layers.RadiusSearch(normalize_distances=opts["normalize_distances"], **layer_opts)
            extra_args = (extra, ps, qs)
        else:
            layer, extra_args = np_layers.KNNSearch(**layer_opts), (extra, ps, qs)
        _, ctx = layer.forward(points, queries, *extra_args)
        grads = layer.backward(g, ctx)
        tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(fp.grad(), grads.points, **tol)
        np.testing.assert_allclose(fq.grad(), grads.queries, **tol)
        if fe is not None and opts["normalize_distances"]:
            np.testing.assert_allclose(fe.grad(), grads.radii, **tol)

    args = dict(points=points, queries=queries, radius=extra, points_row_splits=ps, queries_row_splits=qs)
    args = {("radii" if kind == "radius_search" else "k" if kind == "knn_search" else "radius"): extra,
            **{k: v for k, v in args.items() if k != "radius"}}
    roles = dict(points="position", queries="position", radii="float", radius="scalar", k="count",
                 points_row_splits="splits", queries_row_splits="splits")
    name = data.draw(st.sampled_from(sorted(args)), "argument")
    mkind, what, new = data.draw(mutations(args[name], roles[name]), "mutation")
    what = f"{kind}: {name} {what}"
    note(what)
    margs = dict(args, **{name: new})
    order = ("points", "queries", next(k for k in ("radius", "radii", "k") if k in margs), "points_row_splits",
             "queries_row_splits")

    def numpy_call(m):
        return _search_call(kind, *(m[k] for k in order), np_opts, False)

    got = outcome(lambda: _search_call(kind, *(_tensor_of(margs[k]) for k in order), opts, True))
    if name == "radius" and got[0] == "error":  # the torch face builds the table from the radius first
        assert_names(got[1], "radius")
        return
    if name in ("radius", "k") and _one_number(new):
        # a one-element tensor is a number to the torch face (as to Open3D's); NumPy wants a scalar
        margs = dict(margs, **{name: new.reshape(()).item()})
    _assert_error_or_equal(name, mkind, what, got, margs, numpy_call)


def _one_number(value):
    """A one-element real array: ``_tensor_of`` makes it a tensor that the torch face reads as a number."""
    return isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "iuf"


# ---- the layers ---------------------------------------------------------------------------------------

LAYERS = {"ContinuousConv": (gt.layers.ContinuousConv, np_layers.ContinuousConv, "out_positions"),
          "ContinuousConvTranspose": (gt.layers.ContinuousConvTranspose, np_layers.ContinuousConvTranspose,
                                      "inp_positions")}
LAYER_ROLES = dict(inp_features="float", inp_positions="position", out_positions="position")


@pytest.mark.parametrize("layer_name", list(LAYERS))
@fuzz_settings(0.3)
@given(data=st.data())
def test_fuzz_torch_layers(layer_name, data):
    torch_type, numpy_type, per = LAYERS[layer_name]
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1), "seed"))
    dtype = data.draw(st.sampled_from([np.float32, np.float64]), "dtype")
    ni, no, cin, cout = (data.draw(st.integers(0, 8), "ni"), data.draw(st.integers(0, 6), "no"),
                         data.draw(st.integers(1, 3), "cin"), data.draw(st.integers(1, 3), "cout"))
    xi, xo = rng.random((ni, 3)).astype(dtype), rng.random((no, 3)).astype(dtype)
    n_ext = no if per == "out_positions" else ni
    extents = (rng.uniform(0.4, 0.8, n_ext).astype(dtype) if n_ext and data.draw(st.booleans(), "per point")
               else 0.6)
    feats = rng.standard_normal((ni, cin)).astype(dtype)
    window = data.draw(st.booleans(), "window")
    tlayer = torch_type(cin, cout, 2, window_function=(lambda u: (1 - u).clamp(min=0)) if window else None)
    tlayer = tlayer.to(torch.float64 if dtype == np.float64 else torch.float32)
    nlayer = numpy_type(cin, cout, 2, dtype=dtype, seed=0,
                        window_function=(lambda u: np.maximum(1 - u, 0)) if window else None)
    nlayer.kernel[...] = tlayer.kernel.detach().numpy()
    nlayer.bias[...] = tlayer.bias.detach().numpy()
    args = dict(inp_features=feats, inp_positions=xi, out_positions=xo, extents=extents)
    flav = {n: _flavour(data.draw, n, a) for n, a in args.items()}
    status, out = outcome(lambda: tlayer(*(f.tensor if isinstance(f, Flavoured) else f for f in flav.values())))
    assert status == "ok", f"a valid call failed: {out!r}"
    want, ctx = nlayer.forward(*args.values())
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(out.detach().numpy(), want, **tol)
    if out.numel():
        g = rng.uniform(-1, 1, out.shape).astype(dtype)
        out.backward(torch.from_numpy(g))
        names = ["inp_features"] + ([] if window else [n for n in ("inp_positions", "out_positions", "extents")
                                                        if isinstance(flav[n], Flavoured)
                                                        and flav[n].leaf.requires_grad])
        grads = nlayer.backward(g, ctx, wrt=["kernel", "bias"] + names)
        np.testing.assert_allclose(tlayer.kernel.grad.numpy(), grads.kernel, **tol)
        np.testing.assert_allclose(tlayer.bias.grad.numpy(), grads.bias, **tol)
        for n in names:
            got = flav[n].grad()
            if got is not None:
                np.testing.assert_allclose(got, np.reshape(getattr(grads, n), got.shape), **tol)

    name = data.draw(st.sampled_from(sorted(args)), "argument")
    role = "scalar" if isinstance(args[name], float) else LAYER_ROLES.get(name, "float")
    kind, what, new = data.draw(mutations(args[name], role), "mutation")
    what = f"{layer_name}: {name} {what}"
    note(what)
    margs = dict(args, **{name: new})
    status, got = outcome(lambda: tlayer(*(_tensor_of(v) for v in margs.values())))
    event(f"{kind} -> {status}")
    if status == "error":
        assert kind not in EQUIVALENT, f"{what} was rejected: {got!r}"
        assert_names(got, name, "neighbors_index", "neighbors_row_splits")  # the search's lists come from it
