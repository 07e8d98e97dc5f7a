"""The OpenMP kernels against the independent NumPy reference (tests/reference_pose.py).

Masks (valid, dilated object masks) must agree exactly; image gradients, the (N, 6) result and
the per-pixel contributions to ~1e-6 relative (the kernels round their outputs to float32).
Buffers are random and blocky, so every case of the valid mask and the dilation occurs:
touching objects, islands, pixels next to three ids, objects on the image border.
"""

import numpy as np
import pytest

import reference_pose as ref
from geomops.pose import diff

SIZES = [(1, 1), (1, 7), (6, 1), (2, 3), (7, 9), (13, 5), (33, 17), (40, 61)]


def _scene(rng, h, w, ids, camera_pose=None):
    cam = ref.Camera(w, h, 0.9 * w, 0.95 * w, w / 2 + 0.3, h / 2 - 0.2)
    objs = [ref.Obj(ref.pose_matrix(*rng.uniform(-0.5, 0.5, 3), t=(*rng.uniform(-0.05, 0.05, 2), 1.0)), i)
            for i in ids]
    return ref.Scene(cam, objs, camera_pose)


def _ref_backprop(scene, buf, g, **kw):
    return ref.backprop(scene.camera.projection_matrix(), [o.pose for o in scene.objects],
                        [o.instance_index for o in scene.objects], buf.rgb, buf.instance_index, buf.depth,
                        buf.object_coordinates, g, camera_pose=scene.camera_pose, **kw)


def _rel(a, b):
    return np.abs(np.asarray(a, np.float64) - b).max() / max(np.abs(b).max(), 1e-30)


@pytest.mark.parametrize("h,w", SIZES)
@pytest.mark.parametrize("semantics", ["cuda", "cpu"])
@pytest.mark.parametrize("border", ["zero", "replicate"])
def test_image_gradients(h, w, semantics, border, device):
    rng = np.random.default_rng(h * 100 + w)
    buf = ref.random_buffers(rng, h, w, 3)
    gx, gy, valid = diff.compute_image_space_gradients(None, buf, border=border, helper_semantics=semantics,
                                                       device=device)
    rx, ry, rv = ref.image_gradients(buf.rgb, buf.instance_index, buf.depth, border, semantics)
    assert gx.dtype == gy.dtype == np.float32 and valid.dtype == np.bool_
    assert gx.shape == gy.shape == (3, h, w) and valid.shape == (h, w)
    np.testing.assert_array_equal(valid, rv)
    np.testing.assert_allclose(gx, rx, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gy, ry, rtol=1e-6, atol=1e-6)


def test_image_gradient_weights_follow_float32_division(device):
    # Corrections #2: the weight is 1 / fl32(4/H), e.g. 119.99999237 for H = 480.
    h, w = 480, 7
    rgb = np.zeros((h, w, 4), np.uint8)
    rgb[240, 3, 0] = 255  # one bright pixel: its neighbours see +-weight
    buf = ref.Buffers(rgb, np.full((h, w), 3000, np.float32), np.zeros((h, w), np.int16),
                      np.zeros((h, w, 3), np.float32))
    gx, gy, valid = diff.compute_image_space_gradients(None, buf, device=device)
    assert valid.all()
    wy = np.float32(1) / np.float32(4.0 / 480)
    assert wy != np.float32(120.0)
    assert gy[0, 239, 3] == -wy and gy[0, 241, 3] == wy  # negated: next - prev
    wx = np.float32(1) / np.float32(4.0 / 7)
    assert gx[0, 240, 2] == -wx and gx[0, 240, 4] == wx
    assert np.count_nonzero(gx) == 2 and np.count_nonzero(gy) == 2


def test_zero_border_gives_false_gradients_and_replicate_none(device):
    # A constant grey image: zero padding sees an edge at the image border, replicate does not.
    h, w = 5, 6
    buf = ref.Buffers(np.full((h, w, 4), 128, np.uint8), np.full((h, w), 3000, np.float32),
                      np.zeros((h, w), np.int16), np.zeros((h, w, 3), np.float32))
    gx, gy, _ = diff.compute_image_space_gradients(None, buf, border="zero", device=device)
    assert np.all(gx[:, :, 0] < 0) and np.all(gx[:, :, -1] > 0) and not gx[:, :, 1:-1].any()
    assert np.all(gy[:, 0, :] < 0) and np.all(gy[:, -1, :] > 0)
    gx, gy, _ = diff.compute_image_space_gradients(None, buf, border="replicate", device=device)
    assert not gx.any() and not gy.any()


@pytest.mark.parametrize("h,w", SIZES)
@pytest.mark.parametrize("semantics", ["cuda", "cpu"])
def test_object_masks(h, w, semantics, device):
    rng = np.random.default_rng(7 * h + w)
    buf = ref.random_buffers(rng, h, w, 4)
    scene = _scene(rng, h, w, [1, 2, 3, 4])
    got = diff._object_masks(scene, buf, helper_semantics=semantics, device=device)
    want = ref.object_masks(buf.instance_index, buf.depth, buf.object_coordinates, [1, 2, 3, 4], semantics)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("h,w", SIZES)
@pytest.mark.parametrize("semantics", ["cuda", "cpu"])
@pytest.mark.parametrize("mode", ["compat", "exact"])
def test_backprop_matches_reference(h, w, semantics, mode, device):
    rng = np.random.default_rng(1000 + 31 * h + w)
    buf = ref.random_buffers(rng, h, w, 3)
    scene = _scene(rng, h, w, [1, 2, 3])
    g = rng.standard_normal((3, h, w)).astype(np.float32)
    got, con = diff.backpropagate_gradient_to_poses(scene, buf, g, mode=mode, helper_semantics=semantics,
                                                    return_contributions=True, device=device)
    want, wcon = _ref_backprop(scene, buf, g, mode=mode, semantics=semantics, return_contributions=True)
    assert got.dtype == np.float32 and got.shape == (3, 6)
    assert con.dtype == np.float32 and con.shape == (3, 6, h, w)
    if np.abs(want).max() == 0:
        assert not got.any() and not con.any()
        return
    assert _rel(got, want) < 2e-6
    assert _rel(con, wcon) < 2e-6


@pytest.mark.parametrize("border", ["zero", "replicate"])
@pytest.mark.parametrize("mode", ["compat", "exact"])
def test_border_option_and_float64_grad(border, mode, device):
    rng = np.random.default_rng(5)
    h, w = 21, 26
    buf = ref.random_buffers(rng, h, w, 2)
    scene = _scene(rng, h, w, [1, 2])
    g = rng.standard_normal((3, h, w))
    got = diff.backpropagate_gradient_to_poses(scene, buf, g, mode=mode, border=border, device=device)
    want = _ref_backprop(scene, buf, g, mode=mode, border=border)
    assert got.dtype == np.float64  # float64 grad in, float64 result out
    assert _rel(got, want) < 1e-12
    got32 = diff.backpropagate_gradient_to_poses(scene, buf, g.astype(np.float32), mode=mode, border=border,
                                                 device=device)
    assert got32.dtype == np.float32
    assert _rel(got32, want) < 1e-5


def test_default_border_depends_on_mode(device):
    rng = np.random.default_rng(6)
    h, w = 15, 18
    buf = ref.random_buffers(rng, h, w, 2)
    scene = _scene(rng, h, w, [1, 2])
    g = rng.standard_normal((3, h, w))
    for mode, border in (("compat", "zero"), ("exact", "replicate")):
        np.testing.assert_array_equal(diff.backpropagate_gradient_to_poses(scene, buf, g, mode=mode, device=device),
                                      diff.backpropagate_gradient_to_poses(scene, buf, g, mode=mode, border=border,
                                                                           device=device))
    assert not np.array_equal(diff.backpropagate_gradient_to_poses(scene, buf, g, mode="exact", device=device),
                              diff.backpropagate_gradient_to_poses(scene, buf, g, mode="exact", border="zero",
                                                                   device=device))


def test_hwc_layout_rgb_variants_and_squeezed_buffers(device):
    rng = np.random.default_rng(8)
    h, w = 12, 17
    buf = ref.random_buffers(rng, h, w, 2, rgb_channels=3)
    scene = _scene(rng, h, w, [1, 2])
    g = rng.standard_normal((3, h, w)).astype(np.float32)
    base = diff.backpropagate_gradient_to_poses(scene, buf, g, device=device)
    np.testing.assert_array_equal(base, _check_layout(scene, buf, g, device=device))
    # rgb with alpha gives the same; (H, W, 1) instance/depth buffers too (stillleben's layout)
    buf4 = ref.Buffers(np.concatenate([buf.rgb, np.zeros((h, w, 1), np.uint8)], axis=2), buf.depth[..., None],
                       buf.instance_index[..., None], buf.object_coordinates)
    np.testing.assert_array_equal(base, diff.backpropagate_gradient_to_poses(scene, buf4, g, device=device))
    # float rgb in [0, 1] equal to the uint8 image / 255
    bufF = ref.Buffers(buf.rgb.astype(np.float32) / np.float32(255), buf.depth, buf.instance_index,
                       buf.object_coordinates)
    np.testing.assert_array_equal(base, diff.backpropagate_gradient_to_poses(scene, bufF, g, device=device))
    # non-contiguous inputs are copied, not misread
    gnc = np.asfortranarray(g)
    np.testing.assert_array_equal(base, diff.backpropagate_gradient_to_poses(scene, buf, gnc, device=device))


def _check_layout(scene, buf, g, device=None):
    return diff.backpropagate_gradient_to_poses(scene, buf, np.ascontiguousarray(g.transpose(1, 2, 0)),
                                                layout="HWC", device=device)


def test_objects_sharing_an_id_use_the_union_mask_with_their_own_pose(device):
    rng = np.random.default_rng(9)
    h, w = 20, 24
    buf = ref.random_buffers(rng, h, w, 2)
    scene = _scene(rng, h, w, [1, 2, 2, 1])
    g = rng.standard_normal((3, h, w)).astype(np.float32)
    got = diff.backpropagate_gradient_to_poses(scene, buf, g, mode="compat", device=device)
    want = _ref_backprop(scene, buf, g, mode="compat")
    assert _rel(got, want) < 2e-6
    # each object of a shared id equals that object in a scene where ids are not shared
    for k, obj in enumerate(scene.objects):
        other = ref.Obj(ref.pose_matrix(t=(0.0, 0.0, 1.0)), 3 - obj.instance_index)
        alone = ref.Scene(scene.camera, [obj, other])
        np.testing.assert_allclose(diff.backpropagate_gradient_to_poses(alone, buf, g, mode="compat", device=device)[0],
                                   got[k], rtol=1e-6, atol=1e-6 * np.abs(got[k]).max())


def test_pixel_counts_for_two_objects(device):
    # A background pixel between two objects (both valid) is grown into by both.
    h, w = 3, 5
    inst = np.array([[0, 0, 0, 0, 0], [1, 1, 0, 2, 2], [0, 0, 0, 0, 0]], np.int16)
    depth = np.where(inst > 0, 1.0, 3000.0).astype(np.float32)
    coords = np.where((inst > 0)[..., None], np.float32(0.01), np.float32(3000.0)) * np.ones((1, 1, 3), np.float32)
    buf = ref.Buffers(np.zeros((h, w, 4), np.uint8), depth, inst, coords)
    scene = ref.Scene(ref.Camera(w, h, 5, 5, 2.5, 1.5), [ref.Obj(np.eye(4), 1), ref.Obj(np.eye(4), 2)])
    m = diff._object_masks(scene, buf, device=device)
    assert m[0, 1, 2] and m[1, 1, 2]
    np.testing.assert_array_equal(m, ref.object_masks(inst, depth, coords, [1, 2]))


def test_scan_order_picks_different_neighbours(device):
    # Pixel (1,1) of background has object neighbours at (0,2) and (2,0): the CUDA scan (dx outer)
    # ends on (dy=-1, dx=+1) = (0,2), the CPU scan (dy outer) on (dy=+1, dx=-1) = (2,0).
    inst = np.zeros((3, 3), np.int16)
    inst[0, 2] = inst[2, 0] = 1
    depth = np.where(inst > 0, 1.0, 3000.0).astype(np.float32)
    coords = np.zeros((3, 3, 3), np.float32)
    coords[0, 2] = (0.0, 0.02, 0.0)
    coords[2, 0] = (0.0, -0.02, 0.0)
    rgb = np.zeros((3, 3, 4), np.uint8)
    rgb[1, 2, :3] = 200  # an x gradient at the centre pixel
    buf = ref.Buffers(rgb, depth, inst, coords)
    scene = ref.Scene(ref.Camera(3, 3, 3, 3, 1.5, 1.5), [ref.Obj(ref.pose_matrix(t=(0, 0, 1.0)), 1)])
    g = np.zeros((3, 3, 3), np.float32)
    g[:, 1, 1] = 1.0
    res = {}
    for sem in ("cuda", "cpu"):
        _, con = diff.backpropagate_gradient_to_poses(scene, buf, g, helper_semantics=sem,
                                                      return_contributions=True, device=device)
        want = ref.backprop(scene.camera.projection_matrix(), [scene.objects[0].pose], [1], rgb, inst, depth,
                            coords, g, mode="exact", semantics=sem, return_contributions=True)[1]
        np.testing.assert_allclose(con, want, rtol=1e-6, atol=1e-9)
        res[sem] = con[0, :, 1, 1]
    # the centre pixel borrows (0, +0.02, 0) under CUDA and (0, -0.02, 0) under CPU semantics:
    # its rotation-about-z terms have opposite signs
    assert res["cuda"][2] != 0 and np.isclose(res["cuda"][2], -res["cpu"][2], rtol=1e-5)


@pytest.mark.parametrize("mode", ["compat", "exact"])
def test_thread_count_does_not_change_bits(mode, device):
    rng = np.random.default_rng(11)
    h, w = 67, 45  # several row blocks
    buf = ref.random_buffers(rng, h, w, 4)
    scene = _scene(rng, h, w, [1, 2, 3, 4])
    g = rng.standard_normal((3, h, w)).astype(np.float32)
    a, ca = diff.backpropagate_gradient_to_poses(scene, buf, g, mode=mode, num_threads=1, return_contributions=True,
                                                 device=device)
    b, cb = diff.backpropagate_gradient_to_poses(scene, buf, g, mode=mode, num_threads=2, return_contributions=True,
                                                 device=device)
    c = diff.backpropagate_gradient_to_poses(scene, buf, g, mode=mode, num_threads=3, device=device)
    assert a.tobytes() == b.tobytes() == c.tobytes()
    assert ca.tobytes() == cb.tobytes()
    x1 = diff.compute_image_space_gradients(None, buf, num_threads=1, device=device)
    x2 = diff.compute_image_space_gradients(None, buf, num_threads=2, device=device)
    for u, v in zip(x1, x2):
        assert u.tobytes() == v.tobytes()


def test_camera_pose_exact_honours_compat_ignores(device):
    rng = np.random.default_rng(12)
    h, w = 16, 20
    buf = ref.random_buffers(rng, h, w, 2)
    cp = ref.pose_matrix(0.2, -0.1, 0.3, t=(0.1, -0.2, 0.3), dtype=np.float64)
    scene = _scene(rng, h, w, [1, 2], camera_pose=cp)
    g = rng.standard_normal((3, h, w))
    # exact: the same as poses already expressed in the camera frame with an identity camera
    moved = ref.Scene(scene.camera, [ref.Obj(np.eye(4), o.instance_index) for o in scene.objects])
    for m, o in zip(moved.objects, scene.objects):
        m.pose = np.linalg.inv(cp) @ o.pose.astype(np.float64)  # float64: no float32 rounding of the product
    np.testing.assert_allclose(diff.backpropagate_gradient_to_poses(scene, buf, g, mode="exact", device=device),
                               diff.backpropagate_gradient_to_poses(moved, buf, g, mode="exact", device=device),
                               rtol=1e-9)
    assert _rel(diff.backpropagate_gradient_to_poses(scene, buf, g, mode="exact", device=device),
                _ref_backprop(scene, buf, g, mode="exact")) < 1e-12
    # compat: stillleben never applies the camera pose
    plain = ref.Scene(scene.camera, scene.objects)
    np.testing.assert_array_equal(diff.backpropagate_gradient_to_poses(scene, buf, g, mode="compat", device=device),
                                  diff.backpropagate_gradient_to_poses(plain, buf, g, mode="compat", device=device))


@pytest.mark.parametrize("h,w", SIZES)
@pytest.mark.parametrize("border", ["zero", "replicate"])
@pytest.mark.parametrize("semantics", ["cuda", "cpu"])
def test_uint8_and_float_images_agree_bitwise(h, w, border, semantics, device):
    """The kernels' interior fast paths (uint8 lookup, planar rows) and the one image-border
    difference (gm_pg_axis_diffs) give the same bits: a float image equal to uint8 / 255 (what
    the kernels compute) gives bitwise the same image gradients and pose gradients."""
    rng = np.random.default_rng(h * 31 + w)
    buf = ref.random_buffers(rng, h, w, 3)
    scene = _scene(rng, h, w, [1, 2, 3])
    bufF = ref.Buffers(buf.rgb.astype(np.float32) / np.float32(255), buf.depth, buf.instance_index,
                       buf.object_coordinates)
    kw = dict(border=border, helper_semantics=semantics, device=device)
    for a, b in zip(diff.compute_image_space_gradients(None, buf, **kw),
                    diff.compute_image_space_gradients(None, bufF, **kw)):
        assert a.tobytes() == b.tobytes()
    g = rng.standard_normal((3, h, w))
    for mode in ("exact", "compat"):
        a = diff.backpropagate_gradient_to_poses(scene, buf, g, mode=mode, return_contributions=True, **kw)
        b = diff.backpropagate_gradient_to_poses(scene, bufF, g, mode=mode, return_contributions=True, **kw)
        for x, y in zip(a, b):
            assert x.tobytes() == y.tobytes()
