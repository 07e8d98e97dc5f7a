"""Geometric checks on analytically ray-cast spheres (tests/reference_pose.raycast_spheres):
finite differences without silhouettes, compat's Jacobian relation to the exact one, and
compat's singular plane (spec Corrections #4)."""

import warnings

import numpy as np
import pytest

import reference_pose as ref
from geomops.pose import apply_pose_delta, backpropagate_gradient_to_poses


def _l2_setup(cam, T0, radius, delta_target, frequency, camera_pose=None):
    def render(T):
        return ref.raycast_spheres(ref.Scene(cam, [ref.Obj(T, 1, radius=radius)], camera_pose),
                                   quantize=False, frequency=frequency)

    target = render(apply_pose_delta(T0, delta_target)).rgb[..., :3].astype(np.float64)

    def loss(T):
        return 0.5 * np.sum((render(T).rgb[..., :3] - target) ** 2)

    buf = render(T0)
    g = np.ascontiguousarray((buf.rgb[..., :3] - target).transpose(2, 0, 1))
    return buf, g, loss


def _fd(loss, T0, step):
    out = np.zeros(6)
    for k in range(6):
        e = np.zeros(6)
        e[k] = step
        out[k] = (loss(apply_pose_delta(T0, e)) - loss(apply_pose_delta(T0, -e))) / (2 * step)
    return out


@pytest.mark.parametrize("with_camera_pose", [False, True])
def test_exact_matches_finite_differences_without_silhouettes(with_camera_pose, device):
    # The camera sits inside a big textured sphere: every pixel sees the smooth texture, nothing
    # else, so the only approximation left is the central difference (about 3 % for this texture
    # frequency). Exact must match all six components; compat's row-2 denominator (Z/(aZ+b) on
    # x/y, more on z at Z ~ 0.6-1.2 m) must be far off on the same scene.
    h, w = 48, 64
    cam = ref.Camera(w, h, 60.0, 60.0, w / 2, h / 2)
    T0 = ref.pose_matrix(0.3, -0.4, 0.2, t=(0.02, -0.01, 0.2), dtype=np.float64)
    cp = None
    if with_camera_pose:  # move camera and object together: same image, same exact gradient
        cp = ref.pose_matrix(0.1, 0.2, -0.3, t=(0.5, -0.2, 0.1), dtype=np.float64)
        T0 = cp @ T0
    buf, g, loss = _l2_setup(cam, T0, 1.0, np.array([0.01, -0.02, 0.01, 0.004, -0.003, 0.006]), 10.0, cp)
    assert (buf.instance_index == 1).all()
    scene = ref.Scene(cam, [ref.Obj(T0, 1)], cp)
    fd = _fd(loss, T0, 1e-4)
    exact = backpropagate_gradient_to_poses(scene, buf, g, mode="exact", device=device)[0]
    err_exact = np.linalg.norm(exact - fd) / np.linalg.norm(fd)
    assert err_exact < 0.06, (exact, fd)
    assert np.all(np.abs(exact - fd) <= 0.06 * np.abs(fd) + 1e-3 * np.abs(fd).max())
    if not with_camera_pose:
        compat = backpropagate_gradient_to_poses(scene, buf, g, mode="compat", device=device)[0]
        err_compat = np.linalg.norm(compat - fd) / np.linalg.norm(fd)
        assert err_compat > 4 * err_exact, (err_compat, err_exact)


def test_compat_xy_columns_are_exact_times_z_over_az_plus_b(device):
    # Spec section 5d: with P[2,0] = P[2,1] = 0 and an identity rotation, each pixel's translation
    # x/y terms of compat are the exact ones times Z / (aZ + b), a = P[2,2], b = P[2,3].
    h, w = 30, 40
    cam = ref.Camera(w, h, 45.0, 45.0, 19.3, 15.8)
    T0 = ref.pose_matrix(t=(0.01, -0.02, 0.5), dtype=np.float64)
    buf = ref.raycast_spheres(ref.Scene(cam, [ref.Obj(T0, 1, radius=0.15)]), background=0.4)
    rng = np.random.default_rng(0)
    g = rng.standard_normal((3, h, w))
    scene = ref.Scene(cam, [ref.Obj(T0, 1)])
    _, ce = backpropagate_gradient_to_poses(scene, buf, g, mode="exact", return_contributions=True, device=device)
    _, cc = backpropagate_gradient_to_poses(scene, buf, g, mode="compat", border="replicate",
                                            return_contributions=True, device=device)
    P = cam.projection_matrix().astype(np.float64)
    own = (buf.instance_index == 1) & (np.abs(ce[0, 3]) > 1e-3)
    Z = buf.depth.astype(np.float64)
    factor = Z / (P[2, 2] * Z + P[2, 3])
    for e in (3, 4):
        np.testing.assert_allclose(cc[0, e][own], ce[0, e][own] * factor[own], rtol=2e-5)
    assert own.sum() > 100 and factor[own].min() > 1.5  # Z ~ 0.35-0.5 m: the bias is large here


def test_compat_singular_plane_warns_once_and_flips_signs(device):
    # An object at Z ~ 0.15 m renders, but compat's denominator aZ + b is negative there
    # (Corrections #4): one warning per call, and x/y translation terms of the wrong sign.
    h, w = 32, 32
    cam = ref.Camera(w, h, 30.0, 30.0, 16.0, 16.0)
    objs = [ref.Obj(ref.pose_matrix(t=(0.0, 0.0, 0.15)), 1, radius=0.03),
            ref.Obj(ref.pose_matrix(t=(0.1, 0.1, 0.17)), 2, radius=0.03)]
    scene = ref.Scene(cam, objs)
    buf = ref.raycast_spheres(scene, background=0.5)
    assert set(np.unique(buf.instance_index)) == {0, 1, 2}
    rng = np.random.default_rng(1)
    g = rng.standard_normal((3, h, w)).astype(np.float32)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        compat = backpropagate_gradient_to_poses(scene, buf, g, mode="compat", device=device)
    msgs = [r for r in rec if issubclass(r.category, RuntimeWarning)]
    assert len(msgs) == 1 and "denominator" in str(msgs[0].message)
    assert "0 (" in str(msgs[0].message) and "1 (" in str(msgs[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exact = backpropagate_gradient_to_poses(scene, buf, g, mode="exact", device=device)
    # aZ + b < 0 flips the x/y columns: translation a, b have the opposite sign of the exact ones
    assert np.all(np.sign(compat[:, 3:5]) == -np.sign(exact[:, 3:5]))
    # and the reference agrees with compat there
    want = ref.backprop(cam.projection_matrix(), [o.pose for o in objs], [1, 2], buf.rgb, buf.instance_index,
                        buf.depth, buf.object_coordinates, g, mode="compat")
    np.testing.assert_allclose(compat, want, rtol=2e-5)


def test_exact_warns_when_coordinates_map_behind_the_camera(device):
    h, w = 16, 16
    cam = ref.Camera(w, h, 20.0, 20.0, 8.0, 8.0)
    T = ref.pose_matrix(t=(0.0, 0.0, 0.5))
    buf = ref.raycast_spheres(ref.Scene(cam, [ref.Obj(T, 1, radius=0.1)]), background=0.2)
    wrong = ref.Scene(cam, [ref.Obj(ref.pose_matrix(t=(0.0, 0.0, -0.5)), 1)])  # pose does not match
    g = np.ones((3, h, w), np.float32)
    with pytest.warns(RuntimeWarning, match="Z <= 0"):
        backpropagate_gradient_to_poses(wrong, buf, g, mode="exact", device=device)
