"""Gradients w.r.t. inp_positions, out_positions and extents (``wrt=``) of both backward functions.

Checked against central finite differences of the forward ops in float64, at random points kept
away from the sets where the ops are not differentiable (cell boundaries of the interpolation,
the clamps, the mappings' branch switches and centres: :func:`kink_margin` measures the distance
and :func:`smooth_problem` rejects samples that come too close). Also: translation and scale
invariance, float32 against float64, zero gradients for nearest_neighbor, determinism, the
default results unchanged, and the validation of ``wrt``.
"""

import itertools
import math

import numpy as np
import pytest

import geomops as gm
import reference_cconv as R

POSITIONS = ("inp_positions", "out_positions", "extents")
EXTENT_KINDS = ("scalar", "1x1", "1x3", "Nx1", "Nx3")
GEOMETRIES = list(itertools.product(R.MAPPINGS, R.INTERPOLATIONS, (True, False)))
GEOMETRY_IDS = [f"{m}-{i}-{'ac' if a else 'noac'}" for m, i, a in GEOMETRIES]

# v (grid units) and the mappings' relative branch margins must exceed this: a finite-difference
# step of 1e-6 in the positions moves v by less than 1e-4.
MARGIN = 2e-3
EPS = 1e-6


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Many tiny calls: one thread avoids OpenMP wake-up stalls on a loaded machine (thread-count
    independence has its own test below)."""
    gm.set_num_threads(1)
    yield
    gm.set_num_threads(None)


# --------------------------------------------------------------------------- sampling

def _entries(prob, transpose):
    """Per entry of ``prob``'s neighbor list: its relative position and its inverse extent [E, 3]."""
    xo = np.asarray(prob.out_positions, np.float64)
    xi = np.asarray(prob.inp_positions, np.float64)
    idx = np.asarray(prob.neighbors_index).astype(np.int64)
    rs = np.asarray(prob.neighbors_row_splits).astype(np.int64)
    rows = np.repeat(np.arange(len(rs) - 1), np.diff(rs))
    rel = xo[rows] - xi[idx] if transpose else xi[idx] - xo[rows]
    ext = R.extent_rows(prob.extents, len(xi) if transpose else len(xo))
    return rel, 1.0 / ext[idx if transpose else rows]


def kink_margin(prob, opts, transpose=False):
    """The smallest distance of any entry of ``prob`` to a point where the op is not
    differentiable, each in its natural unit: the grid coordinate v to a cell boundary (an
    integer; a half-integer for nearest_neighbor), which also covers the clamps of ``linear`` and
    the zero padding of ``linear_border``; for the mappings, the distance to their centre (|u|,
    u = 2 rel / extent) and to their branch switches relative to |u| (radial: the largest |u_k|
    against the second; volume preserving: the cap/side switch 1.25 z^2 = x^2 + y^2 and the
    |x| = |y| switch of the cylinder-to-cube step)."""
    rel, inv = _entries(prob, transpose)
    if len(rel) == 0:
        return math.inf
    def ratio(a, b):  # a / b, 0 where b is 0 (then the margin b itself is 0)
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), 0.0)

    margins = []
    u = 2.0 * rel * inv
    if opts["coordinate_mapping"] == "ball_to_cube_radial":
        a = np.sort(np.abs(u), axis=1)
        margins += [a[:, 2], ratio(a[:, 2] - a[:, 1], a[:, 2])]
    elif opts["coordinate_mapping"] == "ball_to_cube_volume_preserving":
        x, y, z = u.T
        r2 = x * x + y * y
        n2 = r2 + z * z
        n = np.sqrt(n2)
        margins += [n, ratio(np.abs(1.25 * z * z - r2), n2)]
        cap = 1.25 * z * z > r2
        s = np.where(cap, np.sqrt(3.0 * ratio(n, n + np.abs(z))), ratio(n, np.sqrt(r2)))
        big_x, big_y = x * s, y * s
        rho = np.hypot(big_x, big_y)
        margins += [rho, ratio(np.abs(np.abs(big_x) - np.abs(big_y)), rho)]
    v = np.array([R.filter_coordinates(list(rel[n]), inv[n], prob.filters.shape[:3],
                                       np.asarray(prob.offset, np.float64), align_corners=opts["align_corners"],
                                       coordinate_mapping=opts["coordinate_mapping"])[1] for n in range(len(rel))])
    frac = v - np.floor(v)
    margins.append(np.abs(frac - 0.5) if opts["interpolation"] == "nearest_neighbor" else np.minimum(frac, 1 - frac))
    return float(min(np.min(m) for m in margins))


def smooth_problem(opts, *, transpose=False, extent_kind="Nx3", importance=True, seed=0, **kw):
    """A small random problem (forward, or the transpose of one) whose entries all keep
    ``MARGIN`` from the non-differentiable sets: samples that come closer are rejected."""
    for s in range(seed * 1000, seed * 1000 + 200):
        p = R.make_problem(s, num_inp=24, num_out=7, extent_kind=extent_kind, importance=importance,
                           special_points=False, offset_nonzero=True, **kw)
        prob = R.transpose_problem(p, in_channels=2, out_channels=3, seed=s) if transpose else p
        if kink_margin(prob, opts, transpose) > MARGIN:
            return prob
    raise AssertionError(f"no sample clear of the kinks for {opts}")


# --------------------------------------------------------------------------- helpers

def backward(prob, g, opts, *, transpose, device, dtype=np.float64, **kw):
    fn = gm.continuous_conv_transpose_backward if transpose else gm.continuous_conv_backward
    return fn(*prob.args(dtype), g.astype(dtype), **opts, device=device, **kw)


def forward_loss(prob, g, opts, *, transpose, device):
    fn = gm.continuous_conv_transpose if transpose else gm.continuous_conv

    def loss(**kw):
        return float(np.sum(fn(*prob.replace(**kw).args(), **opts, device=device) * g))
    return loss


def out_grad(prob, seed=1):
    rng = np.random.default_rng(seed)
    return R.f32(rng.uniform(-1, 1, (len(prob.out_positions), prob.filters.shape[4])))


def fd_check(loss, x, grad, rng, what, *, directions=2, coordinates=3):
    """Central differences of ``loss`` along random directions and single coordinates of ``x``
    (an array, or a Python float: a scalar extent, whose gradient has shape [1, 1])."""
    assert grad is not None, f"{what}: gradient missing"
    scalar = isinstance(x, float)
    xa = np.asarray(x, np.float64).reshape(grad.shape) if scalar else np.asarray(x, np.float64)
    assert grad.shape == xa.shape, f"{what}: gradient shape {grad.shape}, expected {xa.shape}"
    dirs = [rng.uniform(-1, 1, xa.shape) for _ in range(directions)]
    for k in rng.permutation(xa.size)[:coordinates]:
        d = np.zeros(xa.size)
        d[k] = 1.0
        dirs.append(d.reshape(xa.shape))

    def at(v):
        return float(v.reshape(())) if scalar else v

    for d in dirs:
        fd = (loss(at(xa + EPS * d)) - loss(at(xa - EPS * d))) / (2 * EPS)
        an = float(np.sum(grad * d))
        scale = float(np.sum(np.abs(grad * d)))
        assert abs(fd - an) <= 1e-6 * scale + 1e-7, f"{what}: finite difference {fd!r} vs analytic {an!r}"


def check_all(prob, opts, *, transpose, device, what, rng):
    g = out_grad(prob)
    grads = backward(prob, g, opts, transpose=transpose, device=device, wrt=POSITIONS)
    loss = forward_loss(prob, g, opts, transpose=transpose, device=device)
    for name in POSITIONS:
        fd_check(lambda v, n=name: loss(**{n: v}), getattr(prob, name), getattr(grads, name), rng,
                 f"{what} d {name}")
    return grads


# --------------------------------------------------------------------------- finite differences

@pytest.mark.parametrize("transpose", [False, True], ids=["forward", "transpose"])
@pytest.mark.parametrize("mapping,interp,align", GEOMETRIES, ids=GEOMETRY_IDS)
def test_finite_differences_every_geometry(mapping, interp, align, transpose, device):
    """Every mapping x interpolation x align_corners, both ops; the extent kind, importances
    and normalize vary along the grid (the next test covers all of their combinations)."""
    k = GEOMETRIES.index((mapping, interp, align)) + (len(GEOMETRIES) if transpose else 0)
    opts = dict(coordinate_mapping=mapping, interpolation=interp, align_corners=align, normalize=bool(k % 2))
    prob = smooth_problem(opts, transpose=transpose, extent_kind=EXTENT_KINDS[k % 5], importance=k % 3 != 0,
                          seed=k)
    grads = check_all(prob, opts, transpose=transpose, device=device, what=f"{opts} transpose={transpose}",
                      rng=np.random.default_rng(k))
    if interp == "nearest_neighbor":
        for name in POSITIONS:
            assert not np.any(getattr(grads, name)), f"nearest_neighbor is piecewise constant: d {name} = 0"
    else:
        assert np.any(grads.inp_positions) and np.any(grads.out_positions) and np.any(grads.extents)


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("importance", [False, True])
@pytest.mark.parametrize("extent_kind", EXTENT_KINDS)
@pytest.mark.parametrize("transpose", [False, True], ids=["forward", "transpose"])
def test_finite_differences_extents_importances_normalize(extent_kind, importance, normalize, transpose, device):
    """Every extent shape x importances x normalize, both ops (two geometries alternate)."""
    k = EXTENT_KINDS.index(extent_kind) + 2 * importance + normalize
    mapping, interp, align = (("ball_to_cube_volume_preserving", "linear", True) if k % 2 else
                              ("ball_to_cube_radial", "linear_border", False))
    opts = dict(coordinate_mapping=mapping, interpolation=interp, align_corners=align, normalize=normalize)
    prob = smooth_problem(opts, transpose=transpose, extent_kind=extent_kind, importance=importance, seed=50 + k)
    grads = check_all(prob, opts, transpose=transpose, device=device, what=f"{extent_kind} {opts}",
                      rng=np.random.default_rng(k))
    ext = np.asarray(prob.extents)
    assert grads.extents.shape == ((1, 1) if ext.ndim == 0 else ext.shape)
    assert grads.inp_positions.shape == np.shape(prob.inp_positions)
    assert grads.out_positions.shape == np.shape(prob.out_positions)


def test_kink_margin_detects_the_kinks():
    """The margin helper the sampling relies on: 0 on a cell boundary and on each branch switch."""
    base = dict(interpolation="linear", align_corners=True)
    p = R.make_problem(0, num_inp=2, num_out=3, extent_kind="1x1", importance=False, special_points=False)
    e = float(np.asarray(p.extents).reshape(()))
    one = dict(neighbors_index=np.array([0]), neighbors_row_splits=np.array([0, 1, 1, 1]))

    def margin(rel, mapping):
        inp = p.inp_positions.copy()
        inp[0] = p.out_positions[0] + np.asarray(rel) * e
        return kink_margin(p.replace(inp_positions=inp, **one), dict(base, coordinate_mapping=mapping))

    # identity, align_corners, W = 4 (x): v = (rel/e + 0.5) * 3 is an integer at rel/e = 1/6
    assert margin([1 / 6, 0.01, 0.02], "identity") < 1e-12
    assert margin([0.1, 0.13, 0.13], "ball_to_cube_radial") < 1e-12  # |u_y| = |u_z| is the max
    # volume preserving: 1.25 z^2 = x^2 + y^2
    assert margin([0.1, 0.05, math.sqrt(0.0125 / 1.25)], "ball_to_cube_volume_preserving") < 1e-9
    assert margin([0.0, 0.0, 0.0], "ball_to_cube_radial") == 0.0


# --------------------------------------------------------------------------- invariances

@pytest.mark.parametrize("transpose", [False, True], ids=["forward", "transpose"])
@pytest.mark.parametrize("mapping", R.MAPPINGS)
def test_translation_and_scale_invariance(mapping, transpose, device):
    """The ops depend on relative positions over extents only, so moving every point by t
    changes nothing (the position gradients sum to 0), nor does scaling every position and
    extent by s (sum x . dx + sum e . de = 0). Holds at any point, kinks included."""
    opts = dict(coordinate_mapping=mapping, interpolation="linear", align_corners=False, normalize=True)
    p = R.make_problem(11, num_inp=30, num_out=9, extent_kind="Nx3", special_points=False)
    prob = R.transpose_problem(p, in_channels=2, out_channels=3) if transpose else p
    gr = backward(prob, out_grad(prob), opts, transpose=transpose, device=device, wrt=POSITIONS)
    terms = np.concatenate([gr.inp_positions, gr.out_positions])
    total = terms.sum(axis=0)
    assert np.all(np.abs(total) <= 1e-12 * np.abs(terms).sum(axis=0) + 1e-14), f"translation: {total}"
    scale_terms = np.concatenate([(gr.inp_positions * prob.inp_positions).ravel(),
                                  (gr.out_positions * prob.out_positions).ravel(),
                                  (gr.extents * prob.extents).ravel()])
    assert abs(scale_terms.sum()) <= 1e-12 * np.abs(scale_terms).sum(), f"scale: {scale_terms.sum()}"


@pytest.mark.parametrize("mapping", ["ball_to_cube_radial", "ball_to_cube_volume_preserving"])
def test_zero_derivative_at_the_mapping_centre(mapping, device):
    """A neighbor on its output point (relative position 0): the ball-to-cube mappings are not
    differentiable there; the kernels return 0 for that entry (the branch mapping to the centre)."""
    p = R.make_problem(0, num_inp=4, num_out=3, extent_kind="1x1", importance=False, special_points=False)
    inp = p.inp_positions.copy()
    inp[0] = p.out_positions[0]
    p = p.replace(inp_positions=inp, neighbors_index=np.array([0]), neighbors_row_splits=np.array([0, 1, 1, 1]))
    opts = dict(coordinate_mapping=mapping, interpolation="linear", align_corners=True)
    gr = backward(p, out_grad(p), opts, transpose=False, device=device, wrt=POSITIONS)
    for name in POSITIONS:
        assert not np.any(getattr(gr, name)), name
    ident = backward(p, out_grad(p), dict(opts, coordinate_mapping="identity"), transpose=False, device=device,
                     wrt=POSITIONS)
    assert np.any(ident.inp_positions), "identity is differentiable at 0"


# --------------------------------------------------------------------------- precision, determinism

@pytest.mark.parametrize("transpose", [False, True], ids=["forward", "transpose"])
@pytest.mark.parametrize("mapping,interp,align", GEOMETRIES[::2], ids=GEOMETRY_IDS[::2])
def test_float32_agrees_with_float64(mapping, interp, align, transpose, device):
    opts = dict(coordinate_mapping=mapping, interpolation=interp, align_corners=align, normalize=True)
    prob = smooth_problem(opts, transpose=transpose, seed=7)
    g = out_grad(prob)
    g64 = backward(prob, g, opts, transpose=transpose, device=device, wrt=POSITIONS)
    g32 = backward(prob, g, opts, transpose=transpose, device=device, wrt=POSITIONS, dtype=np.float32)
    for name in POSITIONS:
        a, b = getattr(g32, name), getattr(g64, name)
        assert a.dtype == np.float32 and a.shape == b.shape
        err = np.max(np.abs(a - b))
        assert err <= 1e-4 * max(np.max(np.abs(b)), 1e-30), f"{name}: float32 vs float64 max err {err:.3g}"


def _all_names(transpose):
    return tuple(gm.ContinuousConvTransposeGradients._fields if transpose else gm.ContinuousConvGradients._fields)


@pytest.mark.parametrize("transpose", [False, True], ids=["forward", "transpose"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_other_gradients_unchanged_and_wrt_subsets(dtype, transpose, device):
    """Asking for positions changes no other result (bit for bit); the default is filters,
    features and the given importances; every subset returns exactly what it names."""
    opts = dict(coordinate_mapping="ball_to_cube_volume_preserving", interpolation="linear_border", normalize=True)
    p = R.make_problem(5, extent_kind="Nx1")
    prob = R.transpose_problem(p, in_channels=2, out_channels=3) if transpose else p
    g = out_grad(prob)
    default = backward(prob, g, opts, transpose=transpose, device=device, dtype=dtype)
    full = backward(prob, g, opts, transpose=transpose, device=device, dtype=dtype, wrt=_all_names(transpose))
    for name in default._fields:
        a, b = getattr(default, name), getattr(full, name)
        if name in POSITIONS:
            assert a is None and b is not None, name
        else:
            assert a is not None and np.array_equal(a, b), name
    for name in _all_names(transpose):
        one = backward(prob, g, opts, transpose=transpose, device=device, dtype=dtype, wrt=[name])
        for field in one._fields:
            v = getattr(one, field)
            if field != name:
                assert v is None, f"wrt=[{name!r}] also returned {field}"
            else:
                assert np.array_equal(v, getattr(full, field)), f"wrt=[{name!r}] differs from the full call"
    assert all(v is None for v in backward(prob, g, opts, transpose=transpose, device=device, wrt=()))
    # positional unpacking of the original fields keeps working
    if transpose:
        d_f, d_x, d_oi, d_ni, d_s, *_ = default
        assert d_s is not None
    else:
        d_f, d_x, d_ii, d_ni, *_ = default
    assert d_f is default.filters and d_x is default.inp_features


def test_absent_importance_gives_none(device):
    p = R.make_problem(5, importance=False)
    opts = dict(normalize=True)
    gr = backward(p, out_grad(p), opts, transpose=False, device=device,
                  wrt=("inp_importance", "neighbors_importance", "extents"))
    assert gr.inp_importance is None and gr.neighbors_importance is None and gr.extents is not None
    t = R.transpose_problem(p, in_channels=2, out_channels=3)
    tg = backward(t, out_grad(t), opts, transpose=True, device=device,
                  wrt=("out_importance", "neighbors_importance", "inp_neighbors_importance_sum", "out_positions"))
    assert tg.out_importance is None and tg.neighbors_importance is None
    assert tg.inp_neighbors_importance_sum is None and tg.out_positions is not None


@pytest.mark.parametrize("extent_kind", ["1x3", "Nx1"])
def test_thread_count_and_memory_do_not_change_position_grads(extent_kind):
    """Fixed-order sums: bitwise identical for any num_threads and max_temp_mem_MB (CPU); the
    emulated CUDA backend agrees to rounding."""
    from geomops import _backend
    opts = dict(coordinate_mapping="ball_to_cube_radial", interpolation="linear", normalize=True)
    p = R.make_problem(9, num_inp=300, num_out=2100, extent_kind=extent_kind, radius_scale=0.6)
    assert len(p.neighbors_index) > 2 * 1024  # several blocks of the shared extent's sum
    for transpose in (False, True):
        prob = R.transpose_problem(p, in_channels=2, out_channels=3) if transpose else p
        gt = out_grad(prob)
        base = backward(prob, gt, opts, transpose=transpose, device="cpu", wrt=POSITIONS, num_threads=1)
        for nt, mb in ((2, 64), (2, 0), (1, 0)):
            other = backward(prob, gt, opts, transpose=transpose, device="cpu", wrt=POSITIONS, num_threads=nt,
                             max_temp_mem_MB=mb)
            for name in POSITIONS:
                assert np.array_equal(getattr(base, name), getattr(other, name)), (name, nt, mb)
        with _backend.cuda_emulation():
            emu = backward(prob, gt, opts, transpose=transpose, device="cuda", wrt=POSITIONS)
        for name in POSITIONS:
            a, b = getattr(emu, name), getattr(base, name)
            assert np.max(np.abs(a - b)) <= 1e-12 * np.max(np.abs(b)), name


def test_output_type_and_empty_lists(device):
    p = R.make_problem(2, extent_kind="scalar")
    g = out_grad(p)
    gr = backward(p, g, {}, transpose=False, device=device, wrt=POSITIONS, output_type=np.float32)
    assert all(getattr(gr, n).dtype == np.float32 for n in POSITIONS)
    assert gr.extents.shape == (1, 1)
    empty = p.replace(neighbors_index=np.zeros(0, np.int64), neighbors_importance=np.zeros(0),
                      neighbors_row_splits=np.zeros(len(p.out_positions) + 1, np.int64))
    gr = backward(empty, g, {}, transpose=False, device=device, wrt=POSITIONS)
    for name in POSITIONS:
        assert getattr(gr, name).shape == (np.shape(getattr(empty, name)) if name != "extents" else (1, 1))
        assert not np.any(getattr(gr, name))


# --------------------------------------------------------------------------- validation

@pytest.mark.parametrize("transpose", [False, True], ids=["forward", "transpose"])
def test_wrt_validation(transpose, device):
    p = R.make_problem(1)
    prob = R.transpose_problem(p, in_channels=2, out_channels=3) if transpose else p
    g = out_grad(prob)
    with pytest.raises(TypeError, match="wrt"):
        backward(prob, g, {}, transpose=transpose, device=device, wrt=3)
    with pytest.raises(TypeError, match="wrt"):
        backward(prob, g, {}, transpose=transpose, device=device, wrt=["filters", 1])
    with pytest.raises(ValueError, match="wrt.*offset.*inp_positions"):
        backward(prob, g, {}, transpose=transpose, device=device, wrt=("offset",))
    wrong = "inp_importance" if transpose else "out_importance"
    with pytest.raises(ValueError, match=f"wrt contains '{wrong}'"):
        backward(prob, g, {}, transpose=transpose, device=device, wrt=[wrong])
    one = backward(prob, g, {}, transpose=transpose, device=device, wrt="extents")  # a single name
    assert one.extents is not None and one.filters is None
