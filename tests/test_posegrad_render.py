"""Pose gradients on images from the built-in rasterizer: finite differences and stillleben's
own sign test (spec section 8)."""

import numpy as np
import pytest

import reference_pose as ref
from geomops.pose import (Camera, Light, Mesh, Scene, SceneObject, apply_pose_delta,
                          backpropagate_gradient_to_poses)
from geomops.pose import render as render_on_device


def render(scene, **kwargs):
    """geomops.pose.render with the buffers on the host (RenderResult.get() copies a GPU's); the
    gradients then run with the tests' ``device`` on host buffers (copied in and out)."""
    return render_on_device(scene, **kwargs).get()


def _ycb_camera(scale):
    # YCB-Video intrinsics (spec section 8), scaled down from 640x480 to keep the test fast
    return Camera(640 // scale, 480 // scale, 1066.778 / scale, 1067.487 / scale, 312.9869 / scale,
                  241.3109 / scale)


def _l2(a, b):
    return 0.5 * np.sum((a.rgb[..., :3] / 255.0 - b.rgb[..., :3] / 255.0) ** 2)


@pytest.mark.parametrize("shape,tol,compat_factor", [("sphere", 0.05, 10.0), ("box", 0.25, 3.0)])
@pytest.mark.parametrize("seed", [0, 1])
def test_exact_matches_finite_differences(shape, tol, compat_factor, seed, device):
    """Exact mode vs finite differences of an L2 loss, on a shaded, vertex-coloured mesh.

    The finite difference is the slope at 0 of a quadratic fitted to the loss at 7 symmetric
    steps (+-3 mm in translation, +-0.01 rad in rotation), which averages the pixel flips on the
    silhouette. Stated tolerance: the translation part of exact mode within `tol` (relative,
    2-norm) -- 5 % for the smooth sphere, 25 % for the box whose silhouette and flat faces make
    the 1-pixel silhouette approximation coarser. Rotations change the Lambert shading, which
    the method does not model, so for them (and all large components) only the sign must agree.
    Compat mode's row-2 denominator is a large, scene-dependent bias on the same scene: its
    translation error must be `compat_factor` times exact's at least.
    """
    cam = _ycb_camera(4)
    mesh = Mesh.sphere(0.1, 48, 24) if shape == "sphere" else Mesh.box((0.12, 0.1, 0.08))
    rng = np.random.default_rng(seed)
    z = 0.6 if shape == "sphere" else 0.5
    T0 = ref.pose_matrix(*rng.uniform(-1, 1, 3), t=(*rng.uniform(-0.03, 0.03, 2), z), dtype=np.float64)

    def scene_at(T):
        return Scene(cam, [SceneObject(mesh, T)], background=(0.2, 0.3, 0.4))

    target = render(scene_at(apply_pose_delta(T0, np.array([0.02, -0.03, 0.02, 0.005, -0.004, 0.01]))), device=device)
    scene = scene_at(T0)
    buf = render(scene, device=device)
    g = np.ascontiguousarray((buf.rgb[..., :3] / 255.0 - target.rgb[..., :3] / 255.0).transpose(2, 0, 1))

    def fd(k, step, n=7):
        xs = np.linspace(-step, step, n)
        losses = []
        for x in xs:
            e = np.zeros(6)
            e[k] = x
            losses.append(_l2(render(scene_at(apply_pose_delta(T0, e)), num_threads=1, device=device), target))
        return np.polyfit(xs, losses, 2)[1]

    num = np.array([fd(k, 1e-2 if k < 3 else 3e-3) for k in range(6)])
    exact = backpropagate_gradient_to_poses(scene, buf, g, mode="exact", device=device)[0]
    compat = backpropagate_gradient_to_poses(scene, buf, g, mode="compat", device=device)[0]

    err_exact = np.linalg.norm(exact[3:] - num[3:]) / np.linalg.norm(num[3:])
    err_compat = np.linalg.norm(compat[3:] - num[3:]) / np.linalg.norm(num[3:])
    assert err_exact < tol, (exact, num)
    assert err_compat > compat_factor * err_exact, (err_compat, err_exact)
    for part in (slice(0, 3), slice(3, 6)):
        big = np.abs(num[part]) > 0.2 * np.abs(num[part]).max()
        np.testing.assert_array_equal(np.sign(exact[part][big]), np.sign(num[part][big]))


@pytest.mark.parametrize("mode", ["exact", "compat"])
@pytest.mark.parametrize("shape", ["box", "sphere"])
def test_stillleben_sign_test(mode, shape, device):
    """stillleben's tests/test_grad.py, loosely: render a reference, perturb one parameter by
    +0.01 (from the same base pose each time), render, L2 loss to the reference; the gradient's
    component must be positive (it points back to the reference). 320x240, YCB intrinsics / 2,
    an object of about 0.5 m diagonal at z = 0.8 m, a random light direction."""
    cam = _ycb_camera(2)
    mesh = Mesh.box((0.3, 0.25, 0.3)) if shape == "box" else Mesh.sphere(0.25, 48, 24)
    rng = np.random.default_rng(0)
    T0 = ref.pose_matrix(*rng.uniform(-1, 1, 3), t=(0.0, 0.0, 0.8), dtype=np.float64)
    light = Light(direction=rng.normal(size=3))

    def scene_at(T):
        return Scene(cam, [SceneObject(mesh, T)], light=light)

    reference = render(scene_at(T0), device=device)
    for k in range(6):
        e = np.zeros(6)
        e[k] = 0.01
        scene = scene_at(apply_pose_delta(T0, e))
        buf = render(scene, device=device)
        g = 2.0 * (buf.rgb[..., :3] / 255.0 - reference.rgb[..., :3] / 255.0).transpose(2, 0, 1)
        grad = backpropagate_gradient_to_poses(scene, buf, np.ascontiguousarray(g), mode=mode, device=device)
        assert grad[0, k] > 0, (k, grad)


def test_rendered_buffers_match_the_reference(device):
    # The kernels on real rasterizer output (three overlapping objects, one occluding another).
    cam = Camera(97, 61, 80.0, 80.0, 48.0, 30.0)  # sizes that are not multiples of 16/32
    objs = [SceneObject(Mesh.sphere(0.08, 24, 12), ref.pose_matrix(0.3, 0.2, 0.1, t=(-0.05, 0.0, 0.5))),
            SceneObject(Mesh.box(0.1), ref.pose_matrix(0.5, -0.4, 0.2, t=(0.04, 0.01, 0.45))),
            SceneObject(Mesh.box((0.3, 0.3, 0.02)), ref.pose_matrix(t=(0.0, 0.0, 0.8)))]
    scene = Scene(cam, objs, background=(0.1, 0.1, 0.1))
    buf = render(scene, device=device)
    assert set(np.unique(buf.instance_index)) == {0, 1, 2, 3}
    g = np.random.default_rng(0).standard_normal((3, 61, 97)).astype(np.float32)
    for mode in ("compat", "exact"):
        for sem in ("cuda", "cpu"):
            got = backpropagate_gradient_to_poses(scene, buf, g, mode=mode, helper_semantics=sem, device=device)
            want = ref.backprop(cam.projection_matrix(), [o.pose for o in objs], [1, 2, 3], buf.rgb,
                                buf.instance_index, buf.depth, buf.object_coordinates, g, mode=mode,
                                semantics=sem)
            np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6 * np.abs(want).max())


def test_bring_your_own_buffers_through_from_buffers(device):
    # Buffers from another "renderer" (the NumPy ray caster), wrapped with RenderResult.from_buffers,
    # objects without meshes: the same gradient as passing the raw arrays.
    from geomops.pose import RenderResult
    cam = Camera(48, 36, 40.0, 40.0, 24.0, 18.0)
    poses = [ref.pose_matrix(0.2, 0.1, 0.0, t=(-0.04, 0.0, 0.5), dtype=np.float64),
             ref.pose_matrix(-0.3, 0.2, 0.4, t=(0.05, 0.01, 0.6), dtype=np.float64)]
    raw = ref.raycast_spheres(ref.Scene(cam, [ref.Obj(p, 5 + k, radius=0.06) for k, p in enumerate(poses)]),
                              background=0.25)
    buf = RenderResult.from_buffers(rgb=raw.rgb[..., :3], depth=raw.depth[..., None],
                                    instance_index=raw.instance_index.astype(np.int64),
                                    object_coordinates=raw.object_coordinates.astype(np.float64))
    scene = Scene(cam, [SceneObject(None, p, instance_index=5 + k) for k, p in enumerate(poses)])
    g = np.random.default_rng(2).standard_normal((3, 36, 48)).astype(np.float32)
    for mode in ("exact", "compat"):
        got = backpropagate_gradient_to_poses(scene, buf, g, mode=mode, device=device)
        want = ref.backprop(cam.projection_matrix(), poses, [5, 6], raw.rgb, raw.instance_index, raw.depth,
                            raw.object_coordinates, g, mode=mode)
        assert np.abs(got).min() > 0
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6 * np.abs(want).max())
