"""apply_pose_delta against the spec's formula (section 6, Corrections #8)."""

import numpy as np
import pytest

import reference_pose as ref
from geomops.pose import apply_pose_delta


def _random_poses(rng, b):
    return np.stack([ref.pose_matrix(*rng.uniform(-np.pi, np.pi, 3), t=rng.uniform(-1, 1, 3), dtype=np.float64)
                     for _ in range(b)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_single_pose_matches_formula(dtype):
    rng = np.random.default_rng(0)
    for _ in range(20):
        pose = _random_poses(rng, 1)[0].astype(dtype)
        delta = rng.normal(0, 0.1, 6)
        out = apply_pose_delta(pose, delta)
        assert out.dtype == dtype and out.shape == (4, 4)
        want = ref.apply_pose_delta(pose, delta)
        np.testing.assert_allclose(out, want, rtol=0, atol=2e-6 if dtype == np.float32 else 1e-12)


def test_without_orthonormalisation_is_the_plain_product():
    rng = np.random.default_rng(1)
    pose = _random_poses(rng, 1)[0]
    delta = np.array([0.1, -0.2, 0.3, 0.01, 0.02, -0.03])
    out = apply_pose_delta(pose, delta, orthonormalize=False)
    D = np.array([[1, -0.3, -0.2, 0.01], [0.3, 1, -0.1, 0.02], [0.2, 0.1, 1, -0.03], [0, 0, 0, 1]])
    np.testing.assert_allclose(out, pose @ D, atol=1e-15)
    # translation: t0 + R0 (a, b, c), kept by the orthonormalisation
    np.testing.assert_allclose(apply_pose_delta(pose, delta)[:3, 3], pose[:3, 3] + pose[:3, :3] @ delta[3:],
                               atol=1e-15)


def test_orthonormal_result_and_zero_delta():
    rng = np.random.default_rng(2)
    poses = _random_poses(rng, 8)
    out = apply_pose_delta(poses, rng.normal(0, 0.5, (8, 6)))
    R = out[:, :3, :3]
    np.testing.assert_allclose(R @ np.transpose(R, (0, 2, 1)), np.broadcast_to(np.eye(3), R.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-12)
    np.testing.assert_allclose(out[:, 3], np.broadcast_to([0, 0, 0, 1], (8, 4)), atol=0)
    np.testing.assert_allclose(apply_pose_delta(poses[0], np.zeros(6)), poses[0], atol=1e-12)


def test_batching_and_broadcast():
    rng = np.random.default_rng(3)
    poses = _random_poses(rng, 5).astype(np.float32)
    deltas = rng.normal(0, 0.1, (5, 6)).astype(np.float32)
    out = apply_pose_delta(poses, deltas)
    assert out.shape == (5, 4, 4) and out.dtype == np.float32
    for b in range(5):
        np.testing.assert_allclose(out[b], apply_pose_delta(poses[b], deltas[b]), atol=1e-7)
    one = apply_pose_delta(poses, deltas[:1])  # (1, 6) broadcasts over B
    for b in range(5):
        np.testing.assert_allclose(one[b], apply_pose_delta(poses[b], deltas[0]), atol=1e-7)


def test_integer_delta_and_dtypes():
    pose = np.eye(4, dtype=np.float32)
    out = apply_pose_delta(pose, np.array([0, 0, 0, 1, 2, 3]))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[:3, 3], [1, 2, 3])
    assert apply_pose_delta(np.eye(4), [0, 0, 0.1, 0, 0, 0]).dtype == np.float64


def test_fix_reflection():
    refl = np.diag([1.0, 1.0, -1.0, 1.0])  # a rotation block with det -1
    delta = np.array([0.01, 0.02, -0.01, 0, 0, 0])
    plain = apply_pose_delta(refl, delta)
    assert np.linalg.det(plain[:3, :3]) == pytest.approx(-1.0)  # stillleben: no det check
    fixed = apply_pose_delta(refl, delta, fix_reflection=True)
    R = fixed[:3, :3]
    assert np.linalg.det(R) == pytest.approx(1.0)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    # a proper rotation is unchanged by the option
    rng = np.random.default_rng(4)
    pose = _random_poses(rng, 1)[0]
    np.testing.assert_array_equal(apply_pose_delta(pose, delta, fix_reflection=True), apply_pose_delta(pose, delta))


@pytest.mark.parametrize("pose,delta,exc,match", [
    (np.eye(4), np.zeros(5), ValueError, "delta"),
    (np.eye(4), np.zeros((1, 6)), ValueError, "delta"),
    (np.eye(3), np.zeros(6), ValueError, "pose"),
    (np.eye(4, dtype=np.int64), np.zeros(6), TypeError, "pose"),
    (np.stack([np.eye(4)] * 3), np.zeros((2, 6)), ValueError, "delta"),
    (np.stack([np.eye(4)] * 3), np.zeros(6), ValueError, "delta"),
    (np.full((4, 4), np.nan), np.zeros(6), ValueError, "pose"),
    (np.eye(4), np.array([0, 0, np.inf, 0, 0, 0]), ValueError, "delta"),
    (np.eye(4), np.array(["a"] * 6), TypeError, "delta"),
])
def test_bad_inputs(pose, delta, exc, match):
    with pytest.raises(exc, match=match):
        apply_pose_delta(pose, delta)


def test_bad_flags():
    with pytest.raises(TypeError, match="orthonormalize"):
        apply_pose_delta(np.eye(4), np.zeros(6), orthonormalize="yes")
    with pytest.raises(TypeError, match="fix_reflection"):
        apply_pose_delta(np.eye(4), np.zeros(6), fix_reflection=1)
