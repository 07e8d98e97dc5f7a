"""Errors about two arguments that disagree name both arguments and the dimension, with the same
text for NumPy and device-array inputs; ``radius_search`` takes a scalar radius; a NaN or inf in
the pose gradients' dLoss/dImage where it is read raises a ValueError naming ``grad`` and the
pixel instead of giving NaN gradients."""

import re

import numpy as np
import pytest

import geomops as gm
import reference_cconv as R
import reference_pose as ref
from geomops import _backend
from geomops.pose import RenderResult, backpropagate_gradient_to_poses

P = R.make_problem(41, extent_kind="Nx3", importance=True, offset_nonzero=True)
T = R.transpose_problem(P, in_channels=2, out_channels=3)
NI, NO, E = len(P.inp_positions), len(P.out_positions), len(P.neighbors_index)
CIN, COUT = P.filters.shape[3], P.filters.shape[4]


@pytest.fixture
def emu():
    with _backend.cuda_emulation():
        yield _backend.resolve("cuda")


def _raises(call, exc=ValueError):
    with pytest.raises(exc) as info:
        call()
    return str(info.value)


def _fwd(**changes):
    kw = dict(zip(R.Problem.FIELDS, P.args()))
    kw.update(changes)
    return kw


def _tr(**changes):
    kw = dict(zip(R.TransposeProblem.FIELDS, T.args()))
    kw.update(changes)
    return kw


# (what, keyword arguments of continuous_conv, regex of the message)
FORWARD = [
    ("Cin", _fwd(inp_features=np.zeros((NI, CIN + 1))),
     rf"^inp_features has {CIN + 1} channels \(shape\[1\]\) but filters expects {CIN} \(filters\.shape\[3\], Cin\)$"),
    ("features rows", _fwd(inp_features=np.zeros((NI + 1, CIN))),
     rf"^inp_features has {NI + 1} rows \(shape\[0\]\) but inp_positions has {NI} points \(inp_positions\.shape\[0\]\)$"),
    ("features 1-D", _fwd(inp_features=np.zeros(NI * CIN)),
     rf"inp_features must be a 2-D array \[num_inp_points, in_channels\] = \[{NI}, {CIN}\]"),
    ("4-D filters", _fwd(filters=P.filters[..., 0]),
     r"filters must be a 5-D array \[D, H, W, Cin, Cout\].*got a 4-D array of shape \(3, 2, 4, 3\)"),
    ("6-D filters", _fwd(filters=P.filters[None]),
     r"filters must be a 5-D array \[D, H, W, Cin, Cout\].*got a 6-D array of shape \(1, 3, 2, 4, 3, 2\)"),
    ("extents rows", _fwd(extents=np.ones((NO + 2, 3))),
     rf"^extents has {NO + 2} rows \(shape\[0\]\) but out_positions has {NO} points \(out_positions\.shape\[0\]\)"),
    ("row splits vs points", _fwd(neighbors_row_splits=P.neighbors_row_splits[:-1]),
     rf"^neighbors_row_splits has {NO} entries \(shape\[0\]\) but out_positions has {NO} rows "
     rf"\(out_positions\.shape\[0\]\); row splits need out_positions\.shape\[0\] \+ 1 = {NO + 1} entries$"),
    ("row splits vs index", _fwd(neighbors_index=P.neighbors_index[:-1],
                                 neighbors_importance=P.neighbors_importance[:-1]),
     rf"^neighbors_row_splits ends with {E} but neighbors_index has {E - 1} entries \(neighbors_index\.shape\[0\]\)"),
    ("importance vs index", _fwd(neighbors_importance=np.ones(E + 1)),
     rf"^neighbors_importance has {E + 1} entries \(shape\[0\]\) but neighbors_index has {E} "
     r"\(neighbors_index\.shape\[0\]\)"),
    ("inp_importance vs points", _fwd(inp_importance=np.ones(NI - 1)),
     rf"^inp_importance has {NI - 1} entries \(shape\[0\]\) but inp_positions has {NI} \(inp_positions\.shape\[0\]\)"),
    ("index range", _fwd(neighbors_index=np.where(np.arange(E) == 5, NI + 3, P.neighbors_index)),
     rf"^neighbors_index contains {NI + 3}, outside the valid range \[0, {NI}\): inp_positions has {NI} points"),
]


@pytest.mark.parametrize("what,kw,pattern", FORWARD, ids=[c[0] for c in FORWARD])
def test_forward_mismatch_messages(what, kw, pattern, device):
    msg = _raises(lambda: gm.continuous_conv(*kw.values(), device=device))
    assert re.search(pattern, msg), msg


def test_the_issue_example_names_filters():
    """The issue's case: 4-channel features, a filter for 3 input channels."""
    kw = _fwd(inp_features=np.zeros((NI, 4)))
    assert CIN == 3
    msg = _raises(lambda: gm.continuous_conv(*kw.values()))
    assert msg == "inp_features has 4 channels (shape[1]) but filters expects 3 (filters.shape[3], Cin)"


@pytest.mark.parametrize("extents", [1e300, [[-1e300]], [1e39, 1.0, 1.0]])
def test_python_extents_beyond_float32_are_named(extents, device):
    """A Python number or list takes the call's dtype; one that float32 cannot hold is an error
    naming it (not a RuntimeWarning and an inf)."""
    kw = _fwd(**{k: (v.astype(np.float32) if isinstance(v, np.ndarray) and v.dtype == np.float64 else v)
                 for k, v in _fwd().items()})
    kw["extents"] = extents
    with np.errstate(all="raise"):
        msg = _raises(lambda: gm.continuous_conv(*kw.values(), device=device))
    assert msg == "extents has values beyond the range of float32, the dtype of the call's float inputs"


def test_out_features_gradient_mismatch_names_the_output(device):
    kw = _fwd()
    msg = _raises(lambda: gm.continuous_conv_backward(*kw.values(), np.zeros((NO, COUT + 1)), device=device))
    assert msg == (f"out_features_gradient has {COUT + 1} channels (shape[1]) but the op's output has {COUT} "
                   "(filters.shape[4], Cout)")
    msg = _raises(lambda: gm.continuous_conv_backprop_filter(*kw.values(), np.zeros((NO + 1, COUT)), device=device))
    assert msg == f"out_features_gradient has {NO + 1} rows (shape[0]) but the op's output has {NO} (out_positions.shape[0])"


def test_transpose_mismatch_messages(device):
    ni, no = len(T.inp_positions), len(T.out_positions)
    cases = [
        (_tr(extents=np.ones((no, 3))) if no != ni else None,
         rf"^extents has {no} rows \(shape\[0\]\) but inp_positions has {ni} points"),
        (_tr(inp_neighbors_index=np.zeros(E + 1, np.int64)),
         rf"^inp_neighbors_index has {E + 1} entries \(shape\[0\]\) but neighbors_index has {E}"),
        (_tr(inp_neighbors_row_splits=T.inp_neighbors_row_splits[:-1]),
         rf"^inp_neighbors_row_splits has {ni} entries \(shape\[0\]\) but inp_positions has {ni} rows"),
        (_tr(out_importance=np.ones(no + 1)),
         rf"^out_importance has {no + 1} entries \(shape\[0\]\) but out_positions has {no}"),
        (_tr(inp_neighbors_importance_sum=np.ones(ni + 2)),
         rf"^inp_neighbors_importance_sum has {ni + 2} entries \(shape\[0\]\) but inp_positions has {ni}"),
        (_tr(inp_neighbors_index=np.full(E, no, np.int64)),
         rf"^inp_neighbors_index contains {no}, outside the valid range \[0, {no}\): out_positions has {no} points"),
    ]
    for kw, pattern in cases:
        if kw is None:
            continue
        msg = _raises(lambda: gm.continuous_conv_transpose(*kw.values(), device=device))
        assert re.search(pattern, msg), (pattern, msg)


def test_support_op_totals_name_the_split_array(device):
    idx, rs = P.neighbors_index, P.neighbors_row_splits
    msg = _raises(lambda: gm.invert_neighbors_list(NI, idx[:-1], rs, np.zeros(0), device=device))
    assert msg.startswith(f"inp_neighbors_row_splits ends with {E} but inp_neighbors_index has {E - 1} entries")
    msg = _raises(lambda: gm.reduce_subarrays_sum(np.ones(E + 1), rs, device=device))
    assert msg.startswith(f"row_splits ends with {E} but values has {E + 1} entries")


def _device_flavour(be, kw):
    return {k: be.from_host(v) if isinstance(v, np.ndarray) and v.size else v for k, v in kw.items()}


@pytest.mark.parametrize("what,kw,pattern", FORWARD, ids=[c[0] for c in FORWARD])
def test_device_inputs_give_the_same_messages(what, kw, pattern, emu):
    want = _raises(lambda: gm.continuous_conv(*kw.values()))
    got = _raises(lambda: gm.continuous_conv(*_device_flavour(emu, kw).values()))
    assert got == want


# ---------------------------------------------------------------------------------------- search

PTS = np.random.default_rng(3).uniform(0, 1, (60, 3))
QS = np.random.default_rng(4).uniform(0, 1, (25, 3))


def test_radius_search_takes_a_scalar_radius(device):
    want = gm.radius_search(PTS, QS, np.full(len(QS), 0.2), return_distances=True, device=device)
    for r in (0.2, np.float64(0.2), np.array(0.2)):
        got = gm.radius_search(PTS, QS, r, return_distances=True, device=device)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
    f32 = gm.radius_search(PTS.astype(np.float32), QS.astype(np.float32), 0.2, device=device)
    ref32 = gm.radius_search(PTS.astype(np.float32), QS.astype(np.float32), np.full(len(QS), 0.2, np.float32),
                             device=device)
    np.testing.assert_array_equal(f32.neighbors_index, ref32.neighbors_index)


def test_radius_search_scalar_radius_on_device_inputs(emu):
    d = gm.radius_search(emu.from_host(PTS), emu.from_host(QS), 0.2, sort=True)
    want = gm.radius_search(PTS, QS, 0.2, sort=True)
    np.testing.assert_array_equal(d.neighbors_index.get(), want.neighbors_index)
    d0 = gm.radius_search(emu.from_host(PTS), emu.from_host(QS), emu.from_host(np.array(0.2)), sort=True)
    np.testing.assert_array_equal(d0.neighbors_row_splits.get(), want.neighbors_row_splits)


@pytest.mark.parametrize("radii,exc,pattern", [
    (np.array([0.2]), ValueError, r"^radii has 1 entry \(shape\[0\]\) but queries has 25 points \(queries\.shape\[0\]\)"),
    (np.full(24, 0.2), ValueError, r"^radii has 24 entries \(shape\[0\]\) but queries has 25 points"),
    (np.full((25, 1), 0.2), ValueError, r"radii must be a scalar or have shape \[25\]"),
    (-0.1, ValueError, r"radii must be"),
    (float("nan"), ValueError, r"radii must be finite"),
    (np.array(np.inf), ValueError, r"radii must be finite"),
    (True, TypeError, r"radii"),
    ("0.2", TypeError, r"radii"),
    (np.full(25, 0.2, np.float32), TypeError, r"radii has dtype float32 but points has dtype float64"),
])
def test_radius_search_bad_radii(radii, exc, pattern, device):
    msg = _raises(lambda: gm.radius_search(PTS, QS, radii, device=device), exc)
    assert re.search(pattern, msg), msg


def test_search_mismatch_messages(device):
    msg = _raises(lambda: gm.knn_search(PTS, QS.astype(np.float32), 3, device=device), TypeError)
    assert msg.startswith("queries has dtype float32 but points has dtype float64")
    msg = _raises(lambda: gm.fixed_radius_search(PTS, QS, 0.1, points_row_splits=[0, 30, 59], device=device))
    assert msg.startswith("points_row_splits ends with 59 but points has 60 entries (points.shape[0])")
    msg = _raises(lambda: gm.fixed_radius_search(PTS, QS, 0.1, queries_row_splits=[0, 26], device=device))
    assert msg.startswith("queries_row_splits ends with 26 but queries has 25 entries (queries.shape[0])")
    table = tuple(gm.build_spatial_hash_table(PTS[:40], 0.1))
    msg = _raises(lambda: gm.fixed_radius_search(PTS, QS, 0.1, hash_table=table, device=device))
    assert msg.startswith("hash_table.hash_table_index has 40 entries (shape[0]) but points has 60 points")
    table = tuple(gm.build_spatial_hash_table(PTS, 0.1))
    msg = _raises(lambda: gm.fixed_radius_search(PTS, QS, 0.1, hash_table=table, points_row_splits=[0, 30, 60],
                                                 queries_row_splits=[0, 10, 25], device=device))
    assert msg.startswith("hash_table.hash_table_splits has 2 entries (shape[0]) but points_row_splits has 3")


# ------------------------------------------------------------------------------------------ pose

H, W = 12, 14


def _pose_setup(seed=0):
    rng = np.random.default_rng(seed)
    buf = ref.random_buffers(rng, H, W, 2)
    cam = ref.Camera(W, H, 10, 10, W / 2, H / 2)
    scene = ref.Scene(cam, [ref.Obj(ref.pose_matrix(t=(0, 0, 1.0)), i) for i in (1, 2)])
    g = rng.standard_normal((3, H, W)).astype(np.float32)
    return scene, buf, g


def _ring_and_far_pixels(scene, buf):
    """A background pixel the dilation reads (in an object's mask, instance 0), and one far
    from every object."""
    masks = ref.object_masks(buf.instance_index, buf.depth, buf.object_coordinates, [1, 2])
    ring = np.argwhere(masks.any(axis=0) & (buf.instance_index == 0))
    near = np.zeros((H, W), bool)
    fg = buf.instance_index != 0
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            near |= np.roll(np.roll(fg, dy, 0), dx, 1)
    far = np.argwhere(~near)
    return (tuple(ring[0]) if len(ring) else None), (tuple(far[0]) if len(far) else None)


def _object_pixel(buf):
    return tuple(np.argwhere(buf.instance_index != 0)[0])


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("layout", ["CHW", "HWC"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_finite_grad_at_an_object_pixel_raises(value, layout, dtype, device):
    scene, buf, g = _pose_setup()
    r, c = _object_pixel(buf)
    g = g.astype(dtype)
    g[1, r, c] = value
    if layout == "HWC":
        g = np.ascontiguousarray(g.transpose(1, 2, 0))
    msg = _raises(lambda: backpropagate_gradient_to_poses(scene, buf, g, layout=layout, device=device))
    assert msg.startswith(f"grad (dLoss/dImage) is not finite (NaN or inf) at pixel (row {r}, col {c}), an object "
                          "pixel"), msg


def test_non_finite_grad_where_it_is_not_read_is_ignored(device):
    scene, buf, g = _pose_setup()
    _, far = _ring_and_far_pixels(scene, buf)
    assert far is not None
    want = backpropagate_gradient_to_poses(scene, buf, g, device=device)
    g2 = g.copy()
    g2[:, far[0], far[1]] = np.nan
    got = backpropagate_gradient_to_poses(scene, buf, g2, device=device)
    np.testing.assert_array_equal(got, want)
    assert np.isfinite(got).all()


def test_non_finite_grad_in_the_dilation_ring_raises(device):
    scene, buf, g = _pose_setup()
    ring, _ = _ring_and_far_pixels(scene, buf)
    assert ring is not None
    g[0, ring[0], ring[1]] = np.nan
    msg = _raises(lambda: backpropagate_gradient_to_poses(scene, buf, g, device=device))
    assert msg.startswith(f"grad (dLoss/dImage) is not finite (NaN or inf) at pixel (row {ring[0]}, col {ring[1]}), "
                          "next to an object"), msg


def test_non_finite_object_coordinates_are_named(device):
    scene, buf, g = _pose_setup()
    r, c = _object_pixel(buf)
    coords = buf.object_coordinates.copy()
    coords[r, c, 2] = np.nan
    bad = ref.Buffers(buf.rgb, buf.depth, buf.instance_index, coords)
    msg = _raises(lambda: backpropagate_gradient_to_poses(scene, bad, g, device=device))
    assert msg.startswith(f"render_result.object_coordinates is not finite (NaN or inf) at pixel (row {r}, col {c})")


def _device_buffers(be, buf):
    return RenderResult.from_buffers(rgb=be.from_host(buf.rgb), depth=be.from_host(buf.depth),
                                     instance_index=be.from_host(buf.instance_index),
                                     object_coordinates=be.from_host(buf.object_coordinates))


@pytest.mark.parametrize("layout", ["CHW", "HWC"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_device_grad_checks_give_the_same_messages(layout, dtype, emu):
    scene, buf, g = _pose_setup()
    dbuf = _device_buffers(emu, buf)
    ring, far = _ring_and_far_pixels(scene, buf)
    obj = _object_pixel(buf)

    def grad_with(px, huge=False):
        a = g.astype(dtype)
        if huge:  # finite float64 values beyond float32's range elsewhere: not a finiteness problem
            a[2, far[0], far[1]] = 1e300 if dtype == np.float64 else 1e30
        if px is not None:
            a[0, px[0], px[1]] = np.nan
        return np.ascontiguousarray(a.transpose(1, 2, 0)) if layout == "HWC" else a

    for px in (obj, ring):
        for huge in (False, True):
            a = grad_with(px, huge)
            want = _raises(lambda: backpropagate_gradient_to_poses(scene, buf, a, layout=layout))
            got = _raises(lambda: backpropagate_gradient_to_poses(scene, dbuf, emu.from_host(a), layout=layout))
            assert got == want
    a = grad_with(far)
    want = backpropagate_gradient_to_poses(scene, buf, a, layout=layout)
    got = backpropagate_gradient_to_poses(scene, dbuf, emu.from_host(a), layout=layout)
    np.testing.assert_allclose(got.get(), want, rtol=1e-12, atol=0)


def test_pose_buffer_mismatches_name_both(device):
    scene, buf, g = _pose_setup()
    msg = _raises(lambda: backpropagate_gradient_to_poses(scene, buf, g[:, :, 1:], device=device))
    assert msg.startswith(f"grad has shape (3, {H}, {W - 1}) but render_result.rgb is {H}x{W} (H x W): "
                          f"layout='CHW' needs grad of shape (3, {H}, {W})"), msg
    bad = ref.Buffers(buf.rgb, buf.depth, buf.instance_index, buf.object_coordinates[1:])
    msg = _raises(lambda: backpropagate_gradient_to_poses(scene, bad, g, device=device))
    assert msg.startswith(f"render_result.object_coordinates has shape ({H - 1}, {W}, 3) but render_result.rgb is "
                          f"{H}x{W}"), msg
    bad = ref.Buffers(buf.rgb, buf.depth[:, 1:], buf.instance_index, buf.object_coordinates)
    msg = _raises(lambda: backpropagate_gradient_to_poses(scene, bad, g, device=device))
    assert msg.startswith(f"render_result.depth has shape ({H}, {W - 1}) but render_result.rgb is {H}x{W}"), msg
    msg = _raises(lambda: RenderResult.from_buffers(rgb=buf.rgb[1:], depth=buf.depth, instance_index=buf.instance_index,
                                                    object_coordinates=buf.object_coordinates))
    assert msg.startswith(f"rgb has shape ({H - 1}, {W}, 4) but instance_index is {H}x{W} (H x W)"), msg


# ---- layers ----------------------------------------------------------------------------------

def _layer_cloud(n=10, channels=3):
    rng = np.random.default_rng(5)
    return rng.random((n, channels)).astype(np.float32), rng.random((n, 3)).astype(np.float32)


def test_layer_mismatch_messages():
    from geomops.layers import ContinuousConv, ContinuousConvTranspose, KNNSearch, RadiusSearch
    f, x = _layer_cloud()
    conv = ContinuousConv(3, 2, 2)
    msg = _raises(lambda: conv(np.ones((10, 4), np.float32), x, x, 0.5))
    assert re.search(r"inp_features has 4 channels \(shape\[1\]\) but the layer has in_channels=3", msg), msg
    msg = _raises(lambda: conv(f, x[:5], x, 0.5))
    assert "inp_positions has 5 points" in msg and "inp_features has 10 rows" in msg, msg
    msg = _raises(lambda: conv(f, x, x[:4], np.full(10, 0.5, np.float32)))
    assert "extents" in msg and "out_positions has 4" in msg, msg
    msg = _raises(lambda: ContinuousConvTranspose(3, 2, 2)(f, x, x[:4], np.full(4, 0.5, np.float32)))
    assert "extents" in msg and "inp_positions has 10" in msg, msg
    conv(f, x, x, 0.5)
    msg = _raises(lambda: conv.backward(np.ones((10, 3), np.float32)))
    assert "out_features_gradient has shape (10, 3)" in msg and "filters=2" in msg, msg
    msg = _raises(lambda: conv(f, x, x, 0.5, user_neighbors_index=np.array([0, 1]),
                               user_neighbors_row_splits=np.array([0, 1, 2])))
    assert "user_neighbors_row_splits" in msg and "out_positions has 10 rows" in msg, msg
    msg = _raises(lambda: conv(f.astype(np.float64), x, x, 0.5), TypeError)
    assert "inp_features has dtype float64 but the layer has dtype float32" in msg, msg
    knn = KNNSearch(return_distances=True)
    res = knn(x, x, 3)
    msg = _raises(lambda: knn.backward(np.ones(7)))
    assert "grad_distance has 7 entries" in msg and f"neighbors_distance has {len(res.neighbors_index)}" in msg, msg
    # a scalar radius with normalised distances: the radius gradient is one per query
    rs = RadiusSearch(return_distances=True, normalize_distances=True)
    res = rs(x, x, 0.3)
    assert rs.backward(np.ones(len(res.neighbors_distance))).radii.shape == (10,)


def test_torch_layer_mismatch_messages():
    torch = pytest.importorskip("torch")
    from geomops.torch.layers import ContinuousConv, ContinuousConvTranspose
    f, x = (torch.from_numpy(a) for a in _layer_cloud())
    conv = ContinuousConv(in_channels=3, filters=2, kernel_size=2)
    msg = _raises(lambda: conv(torch.ones(10, 4), x, x, torch.tensor(0.5)))
    assert "inp_features has 4 channels (shape[1]) but the layer has in_channels=3" in msg, msg
    msg = _raises(lambda: conv(f, x, x[:4], torch.full((10,), 0.5)))
    assert "extents" in msg and "out_positions has 4" in msg, msg
    msg = _raises(lambda: ContinuousConvTranspose(in_channels=3, filters=2, kernel_size=2)(
        f, x, x[:4], torch.full((4,), 0.5)))
    assert "extents" in msg and "inp_positions has 10" in msg, msg
