"""apply_pose_delta's batched kernels (cuda/pose_delta.cu, cpu/pose_delta.c) against the NumPy
path of geomops.pose.apply_pose_delta: random rotations, scaled and perturbed rotation blocks,
reflections with and without fix_reflection, batches with and without a broadcast delta,
float32 and float64. The CPU loop gives NumPy's result to 1e-12; the CUDA kernel to 1e-6 on a
GPU (the emulation runs the CPU's arithmetic: bitwise equal to the CPU loop)."""

import numpy as np
import pytest

import pose_cases as pc
from geomops import _backend
from geomops.pose import apply_pose_delta


@pytest.fixture(params=["emulated", pytest.param("device", marks=pytest.mark.cuda)])
def cuda_be(request):
    if request.param == "emulated":
        with _backend.cuda_emulation():
            yield _backend.resolve("cuda")
    else:
        yield _backend.resolve("cuda")


def random_poses(b, seed=0):
    """Rotations; every 5th block scaled, every 7th a reflection, every 11th perturbed."""
    rng = np.random.default_rng(seed)
    poses = np.stack([pc.pose(tuple(rng.uniform(-3, 3, 3)), tuple(rng.uniform(-1, 1, 3))) for _ in range(b)])
    poses[::5, :3, :3] *= rng.uniform(0.5, 2.0, (len(poses[::5]), 1, 1))
    poses[1::7, :3, 2] *= -1.0
    poses[2::11, :3, :3] += rng.normal(0, 0.3, (len(poses[2::11]), 3, 3))
    return poses, rng.normal(0, 0.2, (b, 6))


def run(be, pose, delta, orthonormalize, fix_reflection):
    out = be.empty(pose.shape, pose.dtype)
    be.kernels.pose_delta(be.from_host(pose), be.from_host(delta), out, orthonormalize, fix_reflection)
    return be.to_host(out)


CASES = [(True, False), (True, True), (False, False)]


@pytest.mark.parametrize("orthonormalize,fix_reflection", CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cpu_loop_matches_numpy(dtype, orthonormalize, fix_reflection):
    poses, deltas = random_poses(200)
    poses = poses.astype(dtype)
    want = apply_pose_delta(poses, deltas, orthonormalize, fix_reflection=fix_reflection)
    got = run(_backend.cpu(), poses, deltas, orthonormalize, fix_reflection)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 if dtype == np.float64 else 1e-6)
    if fix_reflection:
        assert np.all(np.linalg.det(got[:, :3, :3].astype(np.float64)) > 0)


@pytest.mark.parametrize("orthonormalize,fix_reflection", CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cuda_matches_numpy(cuda_be, dtype, orthonormalize, fix_reflection):
    poses, deltas = random_poses(200, seed=1)
    poses = poses.astype(dtype)
    want = apply_pose_delta(poses, deltas, orthonormalize, fix_reflection=fix_reflection)
    got = run(cuda_be, poses, deltas, orthonormalize, fix_reflection)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    if getattr(cuda_be.kernels, "EMULATED", False):
        assert got.tobytes() == run(_backend.cpu(), poses, deltas, orthonormalize, fix_reflection).tobytes()


@pytest.mark.parametrize("delta_dtype", [np.float64, np.float32])
def test_broadcast_delta_single_pose_and_empty_batch(cuda_be, delta_dtype):
    poses, deltas = random_poses(9, seed=2)
    d1 = deltas[:1].astype(delta_dtype)
    want = apply_pose_delta(poses, d1)
    for be in (_backend.cpu(), cuda_be):
        np.testing.assert_allclose(run(be, poses, d1, True, False), want, rtol=0, atol=1e-12)
        # a single (4, 4) pose with a (6,) delta
        np.testing.assert_allclose(run(be, poses[0], d1[0], True, False), apply_pose_delta(poses[0], d1[0]),
                                   rtol=0, atol=1e-12)
        assert run(be, np.zeros((0, 4, 4)), np.zeros((0, 6)), True, False).shape == (0, 4, 4)


def test_reflection_fix_and_rank_deficient_blocks(cuda_be):
    refl = np.diag([1.0, 1.0, -1.0, 1.0])
    delta = np.array([0.01, 0.02, -0.01, 0.0, 0.0, 0.0])
    for be in (_backend.cpu(), cuda_be):
        plain = run(be, refl, delta, True, False)
        fixed = run(be, refl, delta, True, True)
        np.testing.assert_allclose(plain, apply_pose_delta(refl, delta), atol=1e-12)
        np.testing.assert_allclose(fixed, apply_pose_delta(refl, delta, fix_reflection=True), atol=1e-12)
        assert np.linalg.det(fixed[:3, :3]) == pytest.approx(1.0)
    # singular rotation blocks (rank 2, 1, 0): the polar factor is not unique there, but the
    # result must be orthogonal, keep the translation, and agree with NumPy where it is unique
    for block in (np.diag([2.0, 1.0, 0.0]), np.outer([1.0, 2.0, 2.0], [0.0, 1.0, 0.0]), np.zeros((3, 3))):
        pose = np.eye(4)
        pose[:3, :3] = block
        pose[:3, 3] = [1.0, 2.0, 3.0]
        for be in (_backend.cpu(), cuda_be):
            out = run(be, pose, np.zeros(6), True, True)
            R = out[:3, :3]
            np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
            assert np.linalg.det(R) == pytest.approx(1.0)
            np.testing.assert_array_equal(out[:3, 3], pose[:3, 3])
            np.testing.assert_array_equal(out[3], [0.0, 0.0, 0.0, 1.0])
    rank2 = run(_backend.cpu(), np.diag([2.0, 1.0, 0.0, 1.0]), np.zeros(6), True, False)
    np.testing.assert_allclose(rank2[:2, :2], np.eye(2), atol=1e-15)


def test_output_may_be_the_input(cuda_be):
    poses, deltas = random_poses(6, seed=3)
    want = apply_pose_delta(poses, deltas)
    for be in (_backend.cpu(), cuda_be):
        buf = be.from_host(poses.copy())
        be.kernels.pose_delta(buf, be.from_host(deltas), buf, True, False)
        np.testing.assert_allclose(be.to_host(buf), want, rtol=0, atol=1e-12 if be is _backend.cpu() else 1e-6)
