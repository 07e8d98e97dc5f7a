"""Gradients of geomops' cconv ops: central finite differences (float64) and the adjoint identities.

Configurations follow Open3D's test_cconv_gradient (128 random inputs, 5 outputs, extent 0.4
or 0.4 +- 0.005 per point, Linf neighbors with r = extent / 2) plus normalize-with-importance
cases. Only features, filters and importances are perturbed: the ops are linear or smooth in
those, so the interpolation kinks in the positions never matter.
"""

import numpy as np
import pytest

import geomops as gm
import reference_cconv as R


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Thousands of tiny calls: one thread avoids OpenMP wake-up stalls on a loaded 2-core box
    (measured 40 s vs 6 s for the cconv suite). Thread-count independence has its own tests
    in test_cconv_edge_cases.py."""
    gm.set_num_threads(1)
    yield
    gm.set_num_threads(None)

# (filter [D,H,W], Cout, Cin, inp_importance, neighbors_importance range or None, individual extent,
#  normalize, align_corners, mapping, interpolation)
GRADIENT_CONFIGS = {
    "o3d-1": ((3, 5, 1), 2, 7, True, None, False, False, True, "identity", "nearest_neighbor"),
    "o3d-2": ((3, 3, 3), 1, 1, False, None, True, False, False, "ball_to_cube_radial", "linear"),
    "o3d-3": ((5, 5, 5), 5, 3, False, (-0.5, 0.5), False, True, False, "ball_to_cube_volume_preserving",
              "linear_border"),
    "o3d-4": ((5, 1, 3), 3, 4, False, (-0.5, 0.5), False, False, False, "identity", "linear"),
    "norm-imp-radial": ((3, 3, 3), 2, 3, True, (0.25, 1.0), True, True, True, "ball_to_cube_radial", "linear"),
    "norm-imp-nearest": ((2, 3, 2), 3, 2, True, (-0.5, 1.0), True, True, False, "identity", "nearest_neighbor"),
    "norm-imp-vp-border": ((4, 2, 3), 2, 2, True, (0.2, 1.0), False, True, False, "ball_to_cube_volume_preserving",
                           "linear_border"),
}


def gradient_problem(name, seed=0):
    (dhw, cout, cin, inp_imp, nimp_range, individual, normalize, align, mapping, interp) = GRADIENT_CONFIGS[name]
    rng = np.random.default_rng(seed)
    ni, no = 128, 5
    inp = rng.uniform(0.0, 1.0, (ni, 3))
    out = rng.uniform(0.2, 0.8, (no, 3))
    extents = 0.4 + rng.uniform(-0.005, 0.005, (no, 1)) if individual else np.array([[0.4]])
    rows = R.extent_rows(extents, no)
    index, splits = [], [0]
    for i in range(no):
        js = np.nonzero(np.max(np.abs(inp - out[i]), axis=1) <= rows[i, 0] / 2)[0]
        index.extend(js.tolist())
        splits.append(len(index))
    index = np.array(index, np.int64)
    nimp = None
    if nimp_range is not None:
        nimp = rng.uniform(*nimp_range, len(index))
        # keep each row's normaliser away from 0 so finite differences stay well conditioned
        for i in range(no):
            sl = slice(splits[i], splits[i + 1])
            if splits[i + 1] > splits[i] and abs(nimp[sl].sum()) < 0.2:
                nimp[splits[i]] += 0.5
    p = R.Problem(filters=rng.uniform(-1, 1, dhw + (cin, cout)), out_positions=out, extents=extents,
                  offset=np.array([0.1, -0.2, 0.05]), inp_positions=inp, inp_features=rng.uniform(-1, 1, (ni, cin)),
                  inp_importance=rng.uniform(0.2, 1.0, ni) if inp_imp else None, neighbors_index=index,
                  neighbors_importance=nimp, neighbors_row_splits=np.array(splits, np.int64))
    opts = dict(coordinate_mapping=mapping, interpolation=interp, align_corners=align, normalize=normalize)
    return p, opts


def fd_check(loss, x, grad, rng, what, *, eps=1e-6, directions=4, coordinates=0, mask=None):
    """Central differences of ``loss`` along random directions (and single coordinates) vs ``grad``.

    ``mask`` (bool, like x) restricts the perturbed entries (e.g. away from a discontinuity).
    """
    assert grad is not None, f"{what}: gradient missing"
    assert grad.shape == np.shape(x), f"{what}: gradient shape {grad.shape}, expected {np.shape(x)}"
    dirs = [rng.uniform(-1, 1, np.shape(x)) for _ in range(directions)]
    for k in rng.permutation(np.size(x))[:coordinates]:
        d = np.zeros(np.size(x))
        d[k] = 1.0
        dirs.append(d.reshape(np.shape(x)))
    for d in dirs:
        if mask is not None:
            d = d * mask
        fd = (loss(x + eps * d) - loss(x - eps * d)) / (2 * eps)
        an = float(np.sum(grad * d))
        scale = float(np.sum(np.abs(grad * d)))
        assert abs(fd - an) <= 1e-6 * scale + 1e-9, f"{what}: finite difference {fd!r} vs analytic {an!r}"


@pytest.mark.parametrize("name", list(GRADIENT_CONFIGS))
def test_forward_gradients_finite_differences(name, device):
    p, opts = gradient_problem(name)
    rng = np.random.default_rng(1)
    g = rng.uniform(-1, 1, (len(p.out_positions), p.filters.shape[4]))
    grads = gm.continuous_conv_backward(*p.args(), g, **opts, device=device)

    def loss(**kw):
        return float(np.sum(gm.continuous_conv(*p.replace(**kw).args(), **opts, device=device) * g))

    fd_check(lambda v: loss(filters=v), p.filters, grads.filters, rng, f"{name} d filters", coordinates=20)
    fd_check(lambda v: loss(inp_features=v), p.inp_features, grads.inp_features, rng, f"{name} d inp_features",
             coordinates=20)
    if p.inp_importance is not None:
        fd_check(lambda v: loss(inp_importance=v), p.inp_importance, grads.inp_importance, rng,
                 f"{name} d inp_importance", coordinates=20)
    else:
        assert grads.inp_importance is None
    if p.neighbors_importance is not None:
        fd_check(lambda v: loss(neighbors_importance=v), p.neighbors_importance, grads.neighbors_importance, rng,
                 f"{name} d neighbors_importance", coordinates=20)
    else:
        assert grads.neighbors_importance is None
    # the standalone filter gradient op agrees with the one-call backward
    bpf = gm.continuous_conv_backprop_filter(*p.args(), g, **opts, device=device)
    assert np.allclose(bpf, grads.filters, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("name", list(GRADIENT_CONFIGS))
@pytest.mark.parametrize("true_sums", [True, False])
def test_transpose_gradients_finite_differences(name, true_sums, device):
    p, opts = gradient_problem(name)
    rng = np.random.default_rng(2)
    t = R.transpose_problem(p, swapped_filters=True, seed=3)
    if not true_sums and t.inp_neighbors_importance_sum is not None:
        # inp_neighbors_importance_sum is an independent input: any value, zeros included
        s = t.inp_neighbors_importance_sum * rng.uniform(0.5, 2.0, len(t.inp_neighbors_importance_sum))
        s[0] = 0.0
        t = t.replace(inp_neighbors_importance_sum=s)
    g = rng.uniform(-1, 1, (len(t.out_positions), t.filters.shape[4]))
    grads = gm.continuous_conv_transpose_backward(*t.args(), g, **opts, device=device)

    def loss(**kw):
        return float(np.sum(gm.continuous_conv_transpose(*t.replace(**kw).args(), **opts, device=device) * g))

    fd_check(lambda v: loss(filters=v), t.filters, grads.filters, rng, f"{name} transpose d filters", coordinates=20)
    fd_check(lambda v: loss(inp_features=v), t.inp_features, grads.inp_features, rng,
             f"{name} transpose d inp_features", coordinates=10)
    if t.out_importance is not None:
        fd_check(lambda v: loss(out_importance=v), t.out_importance, grads.out_importance, rng,
                 f"{name} transpose d out_importance", coordinates=20)
    else:
        assert grads.out_importance is None
    if t.neighbors_importance is not None:
        fd_check(lambda v: loss(neighbors_importance=v), t.neighbors_importance, grads.neighbors_importance, rng,
                 f"{name} transpose d neighbors_importance", coordinates=20)
        fd_check(lambda v: loss(inp_neighbors_importance_sum=v), t.inp_neighbors_importance_sum,
                 grads.inp_neighbors_importance_sum, rng, f"{name} transpose d inp_neighbors_importance_sum",
                 coordinates=5, mask=t.inp_neighbors_importance_sum != 0)  # phi = 0 is a jump (factor 1)
        if not opts["normalize"]:
            assert not np.any(grads.inp_neighbors_importance_sum)
        else:
            zero = t.inp_neighbors_importance_sum == 0
            assert not np.any(grads.inp_neighbors_importance_sum[zero]), "sum == 0 means factor 1: no gradient"
    else:
        assert grads.neighbors_importance is None and grads.inp_neighbors_importance_sum is None
    tbpf = gm.continuous_conv_transpose_backprop_filter(
        *t.args(fields=R.TransposeProblem.BACKPROP_FILTER_FIELDS), g, **opts, device=device)
    assert np.allclose(tbpf, grads.filters, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("name", list(GRADIENT_CONFIGS))
def test_zero_backprop_vector_gives_zero_gradients(name, device):
    p, opts = gradient_problem(name)
    g = np.zeros((len(p.out_positions), p.filters.shape[4]))
    grads = gm.continuous_conv_backward(*p.args(), g, **opts, device=device)
    for field in grads._fields:
        v = getattr(grads, field)
        assert v is None or not np.any(v), field
    t = R.transpose_problem(p, swapped_filters=True)
    gt = np.zeros((len(t.out_positions), t.filters.shape[4]))
    tg = gm.continuous_conv_transpose_backward(*t.args(), gt, **opts, device=device)
    for field in tg._fields:
        v = getattr(tg, field)
        assert v is None or not np.any(v), field


# --------------------------------------------------------------------------- adjoint identity

ADJOINT_OPTS = [(m, i, a, n) for m in R.MAPPINGS for i in R.INTERPOLATIONS for a, n in ((True, False), (False, True))]


def _transpose_via_ops(p, y, dtype, idx_dtype, device):
    """Spec §2.6 composition built with geomops' own invert_neighbors_list / reduce_subarrays_sum."""
    nimp = p.neighbors_importance
    args = p.args(dtype, idx_dtype)
    index, rs = args[7], args[9]
    attrs = args[8] if nimp is not None else np.zeros(0, dtype)
    inv_index, inv_rs, inv_attrs = gm.invert_neighbors_list(len(p.inp_positions), index, rs, attrs, device=device)
    sums = gm.reduce_subarrays_sum(attrs, rs, device=device)  # empty attrs -> empty sums ("absent")
    return dict(filters=np.swapaxes(args[0], 3, 4), out_positions=args[4], out_importance=args[6],
                extents=args[2], offset=args[3], inp_positions=args[1], inp_features=y.astype(dtype),
                inp_neighbors_index=index, inp_neighbors_importance_sum=sums, inp_neighbors_row_splits=rs,
                neighbors_index=inv_index, neighbors_importance=inv_attrs, neighbors_row_splits=inv_rs)


@pytest.mark.parametrize("importance", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mapping,interp,align,normalize", ADJOINT_OPTS)
def test_transpose_is_adjoint_of_forward(mapping, interp, align, normalize, dtype, importance, device):
    p = R.make_problem(21, extent_kind="Nx3", offset_nonzero=True, importance=importance)
    opts = dict(coordinate_mapping=mapping, interpolation=interp, align_corners=align, normalize=normalize)
    idx_dtype = np.int32 if dtype == np.float32 else np.int64
    y = R.f32(np.random.default_rng(4).uniform(-1, 1, (len(p.out_positions), p.filters.shape[4])))
    conv = gm.continuous_conv(*p.args(dtype, idx_dtype), **opts, device=device).astype(np.float64)
    targs = _transpose_via_ops(p, y, dtype, idx_dtype, device)
    tr = gm.continuous_conv_transpose(**targs, **opts, device=device).astype(np.float64)
    assert tr.shape == p.inp_features.shape
    lhs, rhs = np.sum(conv * y), np.sum(p.inp_features * tr)
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    scale = np.sum(np.abs(conv * y)) + np.sum(np.abs(p.inp_features * tr))
    assert abs(lhs - rhs) <= rtol * scale, f"<conv(x), y> = {lhs!r} but <x, transpose(y)> = {rhs!r}"
    # the forward op's feature gradient is exactly this transpose
    grads = gm.continuous_conv_backward(*p.args(dtype, idx_dtype), y.astype(dtype), **opts, device=device)
    R.assert_matches(grads.inp_features, tr, dtype, f"backward.inp_features vs transpose composition {opts}")
    # and the transpose's feature gradient is the forward op on the forward lists (§2.7)
    x = R.f32(np.random.default_rng(5).uniform(-1, 1, p.inp_features.shape)).astype(dtype)
    tgrads = gm.continuous_conv_transpose_backward(**targs, out_features_gradient=x, **opts, device=device)
    fwd = gm.continuous_conv(np.swapaxes(targs["filters"], 3, 4), targs["inp_positions"], targs["extents"],
                             targs["offset"], targs["out_positions"], x, targs["out_importance"],
                             targs["inp_neighbors_index"], p.args(dtype)[8], targs["inp_neighbors_row_splits"], **opts,
                             device=device)
    R.assert_matches(tgrads.inp_features, fwd.astype(np.float64), dtype,
                     f"transpose_backward.inp_features vs forward composition {opts}")
