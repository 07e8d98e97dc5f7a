"""Bad inputs get a TypeError/ValueError naming the argument; edge cases give zeros, not noise."""

import warnings

import numpy as np
import pytest

import reference_pose as ref
from geomops.pose import backpropagate_gradient_to_poses, compute_image_space_gradients

H, W = 9, 11


def _setup(ids=(1, 2)):
    rng = np.random.default_rng(0)
    buf = ref.random_buffers(rng, H, W, len(ids))
    cam = ref.Camera(W, H, 10, 10, W / 2, H / 2)
    scene = ref.Scene(cam, [ref.Obj(ref.pose_matrix(t=(0, 0, 1.0)), i) for i in ids])
    g = rng.standard_normal((3, H, W)).astype(np.float32)
    return scene, buf, g


def _with(buf, **kw):
    d = dict(rgb=buf.rgb, depth=buf.depth, instance_index=buf.instance_index,
             object_coordinates=buf.object_coordinates)
    d.update(kw)
    return ref.Buffers(**d)


@pytest.mark.parametrize("field,value,exc,match", [
    ("rgb", np.zeros((H, W), np.uint8), ValueError, "render_result.rgb"),
    ("rgb", np.zeros((H, W, 2), np.uint8), ValueError, "render_result.rgb"),
    ("rgb", np.zeros((H, W, 4), np.int32), TypeError, "render_result.rgb"),
    ("depth", np.zeros((H, W + 1), np.float32), ValueError, "render_result.depth"),
    ("depth", np.zeros((H, W), np.int32), TypeError, "render_result.depth"),
    ("depth", np.zeros((H, W, 2), np.float32), ValueError, "render_result.depth"),
    ("instance_index", np.zeros((H, W), np.float32), TypeError, "render_result.instance_index"),
    ("instance_index", np.full((H, W), 40000, np.int32), ValueError, "render_result.instance_index"),
    ("instance_index", np.zeros((H + 1, W), np.int16), ValueError, "render_result.instance_index"),
    ("object_coordinates", np.zeros((H, W, 4), np.float32), ValueError, "render_result.object_coordinates"),
    ("object_coordinates", np.zeros((H, W, 3), np.int16), TypeError, "render_result.object_coordinates"),
    ("object_coordinates", None, ValueError, "render_result.object_coordinates"),
])
def test_bad_buffers(field, value, exc, match, device):
    scene, buf, g = _setup()
    with pytest.raises(exc, match=match):
        backpropagate_gradient_to_poses(scene, _with(buf, **{field: value}), g, device=device)


def test_bad_buffers_image_gradients(device):
    scene, buf, _ = _setup()
    with pytest.raises(ValueError, match="render_result.rgb"):
        compute_image_space_gradients(scene, _with(buf, rgb=np.zeros((H, W), np.uint8)), device=device)
    with pytest.raises(ValueError, match="render_result.depth"):
        compute_image_space_gradients(scene, _with(buf, depth=np.zeros((H + 1, W), np.float32)), device=device)
    with pytest.raises(TypeError, match="render_result"):
        compute_image_space_gradients(scene, object(), device=device)
    with pytest.raises(ValueError, match="scene.camera"):
        compute_image_space_gradients(ref.Scene(ref.Camera(W + 1, H, 10, 10, 5, 5), []), buf, device=device)


def test_int32_instance_buffer_is_converted(device):
    scene, buf, g = _setup()
    a = backpropagate_gradient_to_poses(scene, buf, g, device=device)
    b = backpropagate_gradient_to_poses(scene, _with(buf, instance_index=buf.instance_index.astype(np.int32)), g,
                                        device=device)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("grad,kw,exc,match", [
    (np.zeros((3, H, W + 1), np.float32), {}, ValueError, "grad"),
    (np.zeros((H, W, 3), np.float32), {}, ValueError, "layout='HWC'"),
    (np.zeros((3, H, W), np.float32), {"layout": "HWC"}, ValueError, "grad"),
    (np.zeros((3, H, W), np.int32), {}, TypeError, "grad"),
    (np.zeros((3, H * W), np.float32), {}, ValueError, "grad"),
    (None, {}, TypeError, "grad"),
])
def test_bad_grad(grad, kw, exc, match, device):
    scene, buf, _ = _setup()
    with pytest.raises(exc, match=match):
        backpropagate_gradient_to_poses(scene, buf, grad, **kw, device=device)


@pytest.mark.parametrize("kw,exc,match", [
    ({"mode": "fast"}, ValueError, "mode"),
    ({"helper_semantics": "gpu"}, ValueError, "helper_semantics"),
    ({"border": "reflect"}, ValueError, "border"),
    ({"layout": "WHC"}, ValueError, "layout"),
    ({"num_threads": 0}, ValueError, "num_threads"),
    ({"visualize_grad": "yes"}, TypeError, "visualize_grad"),
    ({"return_contributions": 1}, TypeError, "return_contributions"),
])
def test_bad_options(kw, exc, match, device):
    scene, buf, g = _setup()
    with pytest.raises(exc, match=match):
        backpropagate_gradient_to_poses(scene, buf, g, **kw, device=device)


def test_ids_in_buffer_that_no_object_has(device):
    scene, buf, g = _setup(ids=(1, 2))
    inst = buf.instance_index.copy()
    inst[3, 4] = 7
    with pytest.raises(ValueError, match=r"instance_index contains id 7"):
        backpropagate_gradient_to_poses(scene, _with(buf, instance_index=inst), g, device=device)
    inst[3, 4] = -2
    with pytest.raises(ValueError, match=r"instance_index contains id -2"):
        backpropagate_gradient_to_poses(scene, _with(buf, instance_index=inst), g, device=device)
    # an object removed from the scene while its pixels remain
    with pytest.raises(ValueError, match="no object"):
        backpropagate_gradient_to_poses(ref.Scene(scene.camera, scene.objects[:1]), buf, g, device=device)


@pytest.mark.parametrize("bad_id,exc", [(40000, ValueError), (0, ValueError), (-1, ValueError),
                                        (None, TypeError), (1.5, TypeError)])
def test_bad_object_ids(bad_id, exc, device):
    scene, buf, g = _setup(ids=(1, 2))
    scene.objects[1].instance_index = bad_id
    with pytest.raises(exc, match=r"scene.objects\[1\].instance_index"):
        backpropagate_gradient_to_poses(scene, buf, g, device=device)


def test_non_finite_poses_and_bad_scene(device):
    scene, buf, g = _setup()
    scene.objects[0].pose = np.full((4, 4), np.nan)
    with pytest.raises(ValueError, match=r"scene.objects\[0\].pose"):
        backpropagate_gradient_to_poses(scene, buf, g, device=device)
    scene, buf, g = _setup()
    scene.objects[1].pose = np.eye(3)
    with pytest.raises(ValueError, match=r"scene.objects\[1\].pose"):
        backpropagate_gradient_to_poses(scene, buf, g, device=device)
    scene, buf, g = _setup()
    scene.camera_pose = np.diag([1.0, 1.0, np.inf, 1.0])
    with pytest.raises(ValueError, match="scene.camera_pose"):
        backpropagate_gradient_to_poses(scene, buf, g, mode="exact", device=device)
    with pytest.raises(TypeError, match="scene"):
        backpropagate_gradient_to_poses(object(), buf, g, device=device)
    with pytest.raises(ValueError, match="scene.camera"):
        backpropagate_gradient_to_poses(ref.Scene(ref.Camera(W, H + 2, 10, 10, 5, 5), scene.objects), buf, g,
                                        device=device)


def test_no_objects_and_invisible_objects_give_zero_rows_quietly(device):
    rng = np.random.default_rng(3)
    cam = ref.Camera(24, 18, 20.0, 20.0, 12.0, 9.0)
    objs = [ref.Obj(ref.pose_matrix(t=(0, 0, 0.6)), 1, radius=0.1),
            ref.Obj(ref.pose_matrix(t=(5.0, 0, 0.6)), 2, radius=0.1),    # outside the view
            ref.Obj(ref.pose_matrix(t=(0, 0, -1.0)), 3, radius=0.1),     # behind the camera
            ref.Obj(ref.pose_matrix(t=(0, 0, 0.7)), 4, radius=0.05)]     # hidden behind object 1
    scene = ref.Scene(cam, objs)
    buf = ref.raycast_spheres(scene, background=0.3)
    assert set(np.unique(buf.instance_index)) == {0, 1}
    g = rng.standard_normal((3, 18, 24)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for mode in ("exact", "compat"):
            out = backpropagate_gradient_to_poses(scene, buf, g, mode=mode, device=device)
            assert out.shape == (4, 6)
            assert np.abs(out[0]).max() > 0
            assert not out[1:].any()
    empty = ref.Scene(cam, [])
    bg = ref.Buffers(buf.rgb, np.full_like(buf.depth, 3000), np.zeros_like(buf.instance_index),
                     buf.object_coordinates)
    out = backpropagate_gradient_to_poses(empty, bg, g, device=device)
    assert out.shape == (0, 6) and out.dtype == np.float32
    _, con = backpropagate_gradient_to_poses(empty, bg, g, return_contributions=True, device=device)
    assert con.shape == (0, 6, 18, 24)


def test_single_pixel_image(device):
    cam = ref.Camera(1, 1, 1.0, 1.0, 0.5, 0.5)
    scene = ref.Scene(cam, [ref.Obj(ref.pose_matrix(t=(0, 0, 1.0)), 1)])
    buf = ref.Buffers(np.full((1, 1, 4), 200, np.uint8), np.ones((1, 1), np.float32), np.ones((1, 1), np.int16),
                      np.zeros((1, 1, 3), np.float32))
    g = np.ones((3, 1, 1), np.float32)
    gx, gy, valid = compute_image_space_gradients(scene, buf, device=device)
    assert valid.all() and gx.shape == (3, 1, 1)
    # zero padding: the lone pixel has both neighbours 0, so its central difference is 0
    assert not gx.any() and not gy.any()
    for mode in ("exact", "compat"):
        np.testing.assert_array_equal(backpropagate_gradient_to_poses(scene, buf, g, mode=mode, device=device), 0)


def test_device_argument():
    from geomops.pose import diff

    scene, buf, g = _setup()
    np.testing.assert_array_equal(backpropagate_gradient_to_poses(scene, buf, g, device="cpu"),
                                  backpropagate_gradient_to_poses(scene, buf, g))
    for a, b in zip(compute_image_space_gradients(scene, buf, device="cpu"), compute_image_space_gradients(scene, buf)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(diff._object_masks(scene, buf, device="cpu"), diff._object_masks(scene, buf))
    for bad, exc in ((1, TypeError), ("gpu", ValueError), ("cuda:x", ValueError)):
        with pytest.raises(exc, match="device"):  # checked before the inputs
            backpropagate_gradient_to_poses(None, None, None, device=bad)
        with pytest.raises(exc, match="device"):
            compute_image_space_gradients(None, None, device=bad)
