"""geomops.torch.ops: Open3D's torch signatures and return types, results equal to the NumPy ops,
and torch.autograd.gradcheck (float64) for every differentiable input except positions and
extents (those are in test_torch_position_grads.py)."""

import inspect
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
# small tensors: torch's intra-op threads only add waits (CI machines have 2 shared cores)
torch.set_num_threads(1)

import geomops  # noqa: E402
from geomops.torch import ops  # noqa: E402

# the torch API as Open3D 0.20 reports it (shared/spec/open3d_torch_api.md)
SIGNATURES = {
    "continuous_conv": "(filters, out_positions, extents, offset, inp_positions, inp_features, inp_importance, "
                       "neighbors_index, neighbors_importance, neighbors_row_splits, align_corners=False, "
                       "coordinate_mapping='ball_to_cube_radial', normalize=False, interpolation='linear', "
                       "max_temp_mem_MB=64, allow_tf32=False)",
    "continuous_conv_transpose": "(filters, out_positions, out_importance, extents, offset, inp_positions, "
                                 "inp_features, inp_neighbors_index, inp_neighbors_importance_sum, "
                                 "inp_neighbors_row_splits, neighbors_index, neighbors_importance, "
                                 "neighbors_row_splits, align_corners=False, coordinate_mapping='ball_to_cube_radial', "
                                 "normalize=False, interpolation='linear', max_temp_mem_MB=64, allow_tf32=False)",
    "build_spatial_hash_table": "(points, radius, points_row_splits, hash_table_size_factor, "
                                "max_hash_table_size=33554432)",
    "fixed_radius_search": "(points, queries, radius, points_row_splits, queries_row_splits, hash_table_splits, "
                           "hash_table_index, hash_table_cell_splits, index_dtype=3, metric='L2', "
                           "ignore_query_point=False, return_distances=False)",
    "radius_search": "(points, queries, radii, points_row_splits, queries_row_splits, index_dtype=3, metric='L2', "
                     "ignore_query_point=False, return_distances=False, normalize_distances=False)",
    "knn_search": "(points, queries, k, points_row_splits, queries_row_splits, index_dtype=3, metric='L2', "
                  "ignore_query_point=False, return_distances=False)",
    "invert_neighbors_list": "(num_points, inp_neighbors_index, inp_neighbors_row_splits, inp_neighbors_attributes)",
    "reduce_subarrays_sum": "(values, row_splits)",
}


def test_signatures_are_open3d_torch():
    assert sorted(ops.__all__) == sorted(SIGNATURES)
    for name, sig in SIGNATURES.items():
        signature = inspect.signature(getattr(ops, name))
        untyped = signature.replace(parameters=[p.replace(annotation=p.empty) for p in signature.parameters.values()],
                                    return_annotation=signature.empty)  # names, order and defaults
        assert str(untyped) == sig, name


def test_importing_geomops_does_not_import_torch():
    code = "import sys, geomops, geomops.layers; geomops.fixed_radius_search; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def _cloud(n, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, generator=g, dtype=dtype)


def _splits(n):
    return torch.tensor([0, n], dtype=torch.int64)


def _np(t):
    return t.detach().numpy()


# ---- searches ----------------------------------------------------------------------------------

def test_search_results_equal_numpy_and_named_tuples():
    pts, qs = _cloud(200, 1), _cloud(50, 2)
    table = ops.build_spatial_hash_table(pts, 0.1, _splits(200), 1 / 32)
    ref_table = geomops.build_spatial_hash_table(_np(pts), 0.1, None, 1 / 32)
    assert type(table).__name__ == "build_spatial_hash_table"
    for a, b in zip(table, ref_table):
        np.testing.assert_array_equal(a.numpy(), b)
    r = ops.fixed_radius_search(pts, qs, 0.1, _splits(200), _splits(50), table.hash_table_splits,
                                table.hash_table_index, table.hash_table_cell_splits, return_distances=True,
                                metric="Linf")
    ref = geomops.fixed_radius_search(_np(pts), _np(qs), 0.1, metric="Linf", return_distances=True)
    assert type(r).__name__ == "fixed_radius_search"
    assert r._fields == ("neighbors_index", "neighbors_row_splits", "neighbors_distance")
    for a, b in zip(r, ref):
        np.testing.assert_array_equal(a.numpy(), b)
    assert r.neighbors_index.dtype == torch.int32
    # the raw arrays (not the tensors build_spatial_hash_table returned) work too, and are checked
    raw = [t.clone() for t in table]
    r2 = ops.fixed_radius_search(pts, qs, 0.1, _splits(200), _splits(50), raw[2], raw[0], raw[1], index_dtype=4)
    l2 = geomops.fixed_radius_search(_np(pts), _np(qs), 0.1, index_dtype=np.int64)
    np.testing.assert_array_equal(r2.neighbors_index.numpy(), l2.neighbors_index)
    assert r2.neighbors_index.dtype == torch.int64 and r2.neighbors_distance.numel() == 0
    with pytest.raises(ValueError, match="radius"):
        ops.fixed_radius_search(pts, qs, 0.2, _splits(200), _splits(50), table.hash_table_splits,
                                table.hash_table_index, table.hash_table_cell_splits)
    with pytest.raises(ValueError, match="hash_table"):
        ops.fixed_radius_search(pts, qs, 0.2, _splits(200), _splits(50), raw[2], raw[0], raw[1])

    radii = torch.rand(50, dtype=torch.float64) * 0.1 + 0.05
    r = ops.radius_search(pts, qs, radii, _splits(200), _splits(50), index_dtype=torch.int64, metric="L1",
                          return_distances=True, normalize_distances=True)
    ref = geomops.radius_search(_np(pts), _np(qs), _np(radii), index_dtype=np.int64, metric="L1",
                                return_distances=True, normalize_distances=True)
    assert type(r).__name__ == "radius_search"
    for a, b in zip(r, ref):
        np.testing.assert_array_equal(a.numpy(), b)
    r = ops.knn_search(pts, qs, 6, _splits(200), _splits(50), return_distances=True)
    ref = geomops.knn_search(_np(pts), _np(qs), 6, return_distances=True)
    assert type(r).__name__ == "knn_search"
    for a, b in zip(r, ref):
        np.testing.assert_array_equal(a.numpy(), b)
    with pytest.raises(TypeError, match="index_dtype"):
        ops.knn_search(pts, qs, 6, _splits(200), _splits(50), index_dtype=5)


def test_batched_search_float32():
    pts, qs = _cloud(100, 3, torch.float32), _cloud(30, 4, torch.float32)
    ps, qsp = torch.tensor([0, 60, 100]), torch.tensor([0, 10, 30])
    r = ops.knn_search(pts, qs, 3, ps, qsp)
    ref = geomops.knn_search(pts.numpy(), qs.numpy(), 3, ps.numpy(), qsp.numpy())
    np.testing.assert_array_equal(r.neighbors_index.numpy(), ref.neighbors_index)


@pytest.mark.parametrize("metric", ["L1", "L2", "Linf"])
def test_search_distances_gradcheck(metric):
    pts = _cloud(40, 5).requires_grad_()
    qs = _cloud(15, 6).requires_grad_()
    radii = (torch.rand(15, dtype=torch.float64, generator=torch.Generator().manual_seed(7)) * 0.2 + 0.3)
    radii.requires_grad_()
    torch.autograd.gradcheck(lambda p, q: ops.knn_search(p, q, 4, _splits(40), _splits(15), metric=metric,
                                                         return_distances=True).neighbors_distance, (pts, qs))
    torch.autograd.gradcheck(lambda p, q, r: ops.radius_search(p, q, r, _splits(40), _splits(15), metric=metric,
                                                               return_distances=True,
                                                               normalize_distances=True).neighbors_distance,
                             (pts, qs, radii))
    torch.autograd.gradcheck(lambda p, q: ops.fixed_radius_search(p, q, 0.3, _splits(40), _splits(15),
                                                                  *_table_args(p, 0.3, 40), metric=metric,
                                                                  return_distances=True).neighbors_distance,
                             (pts, qs))


# ---- list utilities ----------------------------------------------------------------------------

def test_list_utilities_and_their_gradients():
    pts = _cloud(30, 8)
    nb = ops.knn_search(pts, pts, 4, _splits(30), _splits(30))
    attrs = torch.rand(nb.neighbors_index.shape[0], dtype=torch.float64, requires_grad=True)
    inv = ops.invert_neighbors_list(30, nb.neighbors_index, nb.neighbors_row_splits, attrs)
    ref = geomops.invert_neighbors_list(30, nb.neighbors_index.numpy(), nb.neighbors_row_splits.numpy(),
                                        _np(attrs))
    assert type(inv).__name__ == "invert_neighbors_list"
    for a, b in zip(inv, ref):
        np.testing.assert_array_equal(_np(a), b)
    torch.autograd.gradcheck(lambda a: ops.invert_neighbors_list(30, nb.neighbors_index, nb.neighbors_row_splits,
                                                                 a).neighbors_attributes, (attrs,))
    empty = ops.invert_neighbors_list(30, nb.neighbors_index, nb.neighbors_row_splits, torch.empty(0))
    assert empty.neighbors_attributes.shape == (0,)
    with pytest.raises(ValueError, match="inp_neighbors_attributes"):
        ops.invert_neighbors_list(30, nb.neighbors_index, nb.neighbors_row_splits, torch.ones(5))

    values = torch.rand(nb.neighbors_index.shape[0], dtype=torch.float64, requires_grad=True)
    sums = ops.reduce_subarrays_sum(values, nb.neighbors_row_splits)
    np.testing.assert_array_equal(_np(sums), geomops.reduce_subarrays_sum(_np(values),
                                                                          nb.neighbors_row_splits.numpy()))
    torch.autograd.gradcheck(lambda v: ops.reduce_subarrays_sum(v, nb.neighbors_row_splits), (values,))
    assert ops.reduce_subarrays_sum(torch.empty(0), nb.neighbors_row_splits).shape == (0,)
    ints = ops.reduce_subarrays_sum(torch.arange(nb.neighbors_index.shape[0]), nb.neighbors_row_splits)
    assert ints.dtype == torch.int64


# ---- convolutions ------------------------------------------------------------------------------

def _conv_case(dtype=torch.float64, seed=0, n_in=30, n_out=20, cin=3, cout=2, extent=0.8):
    g = torch.Generator().manual_seed(seed)
    xi = torch.rand(n_in, 3, generator=g, dtype=dtype)
    xo = torch.rand(n_out, 3, generator=g, dtype=dtype)
    nb = ops.fixed_radius_search(xi, xo, extent / 2, _splits(n_in), _splits(n_out),
                                 *_table_args(xi, extent / 2, n_in))
    e = nb.neighbors_index.shape[0]
    case = dict(
        filters=torch.randn(2, 3, 2, cin, cout, generator=g, dtype=dtype),
        out_positions=xo, extents=torch.tensor([[extent]], dtype=dtype), offset=torch.zeros(3, dtype=dtype),
        inp_positions=xi, inp_features=torch.randn(n_in, cin, generator=g, dtype=dtype),
        inp_importance=torch.rand(n_in, generator=g, dtype=dtype) + 0.5, neighbors_index=nb.neighbors_index,
        neighbors_importance=torch.rand(e, generator=g, dtype=dtype) + 0.5,
        neighbors_row_splits=nb.neighbors_row_splits)
    return case


def _table_args(points, radius, n):
    t = ops.build_spatial_hash_table(points, radius, _splits(n), 1 / 64)
    return t.hash_table_splits, t.hash_table_index, t.hash_table_cell_splits


def _transpose_case(dtype=torch.float64, seed=0):
    """A transpose call built from a forward call's lists (inp <-> out swapped)."""
    c = _conv_case(dtype, seed)
    n_out = c["out_positions"].shape[0]
    n_in = c["inp_positions"].shape[0]
    # forward-direction lists of the transpose: each of its input points (the conv's outputs) -> its outputs
    fwd_index, fwd_splits = c["neighbors_index"], c["neighbors_row_splits"]
    fwd_imp = c["neighbors_importance"]
    inv = ops.invert_neighbors_list(n_in, fwd_index, fwd_splits, fwd_imp)
    g = torch.Generator().manual_seed(seed + 100)
    return dict(filters=c["filters"], out_positions=c["inp_positions"],
                out_importance=torch.rand(n_in, generator=g, dtype=dtype) + 0.5,
                extents=torch.full((n_out, 1), 0.8, dtype=dtype), offset=c["offset"],
                inp_positions=c["out_positions"],
                inp_features=torch.randn(n_out, c["filters"].shape[3], generator=g, dtype=dtype),
                inp_neighbors_index=fwd_index,
                inp_neighbors_importance_sum=ops.reduce_subarrays_sum(fwd_imp, fwd_splits).detach(),
                inp_neighbors_row_splits=fwd_splits, neighbors_index=inv.neighbors_index,
                neighbors_importance=inv.neighbors_attributes.detach(), neighbors_row_splits=inv.neighbors_row_splits)


OPTIONS = [dict(), dict(normalize=True, align_corners=True),
           dict(coordinate_mapping="identity", interpolation="linear_border"),
           dict(coordinate_mapping="ball_to_cube_volume_preserving", interpolation="nearest_neighbor",
                normalize=True)]


@pytest.mark.parametrize("opt", range(len(OPTIONS)))
def test_conv_equals_numpy(opt):
    kw = OPTIONS[opt]
    for dtype in (torch.float32, torch.float64):
        c = _conv_case(dtype, seed=opt)
        out = ops.continuous_conv(**c, **kw)
        ref = geomops.continuous_conv(*(_np(v) for v in c.values()), **{"align_corners": False, **kw})
        assert out.dtype == dtype
        np.testing.assert_array_equal(out.numpy(), ref)
        t = _transpose_case(dtype, seed=opt)
        out = ops.continuous_conv_transpose(**t, **kw)
        ref = geomops.continuous_conv_transpose(*(_np(v) for v in t.values()), **{"align_corners": False, **kw})
        np.testing.assert_array_equal(out.numpy(), ref)


def test_default_align_corners_is_false():
    c = _conv_case(seed=3)
    c["offset"] = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64)
    out = ops.continuous_conv(*c.values())
    args = [_np(v) for v in c.values()]
    np.testing.assert_array_equal(out.numpy(), geomops.continuous_conv(*args, align_corners=False))
    assert not np.array_equal(out.numpy(), geomops.continuous_conv(*args))


CONV_DIFF = ["filters", "inp_features", "inp_importance", "neighbors_importance"]
TRANSPOSE_DIFF = ["filters", "inp_features", "out_importance", "neighbors_importance",
                  "inp_neighbors_importance_sum"]


def _gradcheck(fn, case, names, **kw):
    keys = list(case)
    args = {k: v.clone().requires_grad_(k in names) if v.is_floating_point() else v for k, v in case.items()}

    def f(*diff):
        full = dict(args)
        full.update(zip(names, diff))
        return fn(*(full[k] for k in keys), **kw)

    assert torch.autograd.gradcheck(f, tuple(args[n] for n in names))


@pytest.mark.parametrize("opt", range(len(OPTIONS)))
def test_conv_gradcheck(opt):
    c = _conv_case(seed=10 + opt)
    _gradcheck(ops.continuous_conv, c, CONV_DIFF, **OPTIONS[opt])
    for one in CONV_DIFF:  # each input alone (the backward computes only what is needed)
        _gradcheck(ops.continuous_conv, c, [one], **OPTIONS[opt])


@pytest.mark.parametrize("opt", range(len(OPTIONS)))
def test_transpose_gradcheck(opt):
    t = _transpose_case(seed=20 + opt)
    _gradcheck(ops.continuous_conv_transpose, t, TRANSPOSE_DIFF, **OPTIONS[opt])
    for one in TRANSPOSE_DIFF:
        _gradcheck(ops.continuous_conv_transpose, t, [one], **OPTIONS[opt])


def test_conv_gradients_equal_numpy_backward():
    c = _conv_case(torch.float32, seed=30)
    args = {k: v.clone().requires_grad_(k in CONV_DIFF) if v.is_floating_point() else v for k, v in c.items()}
    out = ops.continuous_conv(**args, normalize=True)
    g = torch.randn_like(out)
    out.backward(g)
    ref = geomops.continuous_conv_backward(*(_np(v) for v in c.values()), g.numpy(), normalize=True,
                                           align_corners=False)
    for name in CONV_DIFF:
        np.testing.assert_array_equal(args[name].grad.numpy(), getattr(ref, name))


def test_optional_inputs_and_offset_gradient():
    c = _conv_case(seed=40)
    c["inp_importance"] = torch.empty(0, dtype=torch.float64)   # Open3D's "absent"
    c["neighbors_importance"] = None
    f = c["filters"].clone().requires_grad_()
    out = ops.continuous_conv(f, *list(c.values())[1:])
    out.sum().backward()
    assert f.grad.shape == f.shape
    off = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    c["offset"] = off
    with pytest.raises(RuntimeError, match="offset"):
        ops.continuous_conv(*c.values()).sum().backward()
    ops.continuous_conv(*c.values(), align_corners=True).sum().backward()  # offset unused: no gradient
    assert off.grad is None


def test_errors_name_the_argument():
    c = _conv_case(seed=41)
    c["inp_features"] = c["inp_features"].float()
    with pytest.raises(TypeError, match="inp_features"):
        ops.continuous_conv(*c.values())
