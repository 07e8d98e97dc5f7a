"""apply_pose_delta's batched CUDA kernel (cuda/pose_delta.cu, the Jacobi SVD of svd3_math.h)
against the NumPy path of geomops.pose.apply_pose_delta: random rotations, scaled and perturbed
rotation blocks, reflections with and without fix_reflection, batches with and without a
broadcast delta, float32 and float64 poses and deltas. The host emulation runs the kernel with
the host's arithmetic and must give NumPy's result to 1e-12 (float64); a GPU, which fuses
multiply-adds, to 1e-6."""

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


def tolerance(be, dtype):
    if dtype == np.float32:
        return 1e-6
    return 1e-12 if getattr(be.kernels, "EMULATED", False) else 1e-6


def random_poses(b, seed=0):
    """Rotations; every 5th block scaled, every 7th a reflection, every 11th perturbed. Deltas
    of 0.2 rad: far from the ill-determined reflections of tiny deltas (svd3_math.h)."""
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


@pytest.mark.parametrize("orthonormalize,fix_reflection", [(True, False), (True, True), (False, False)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matches_numpy(cuda_be, dtype, orthonormalize, fix_reflection):
    poses, deltas = random_poses(200, seed=1)
    poses = poses.astype(dtype)
    want = apply_pose_delta(poses, deltas, orthonormalize, fix_reflection=fix_reflection)
    got = run(cuda_be, poses, deltas, orthonormalize, fix_reflection)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, rtol=0, atol=tolerance(cuda_be, dtype))
    if fix_reflection:
        assert np.all(np.linalg.det(got[:, :3, :3].astype(np.float64)) > 0)


@pytest.mark.parametrize("delta_dtype", [np.float64, np.float32])
def test_broadcast_delta_single_pose_and_empty_batch(cuda_be, delta_dtype):
    poses, deltas = random_poses(9, seed=2)
    d1 = deltas[:1].astype(delta_dtype)
    tol = tolerance(cuda_be, np.float64)
    np.testing.assert_allclose(run(cuda_be, poses, d1, True, False), apply_pose_delta(poses, d1), rtol=0, atol=tol)
    # a single (4, 4) pose with a (6,) delta
    np.testing.assert_allclose(run(cuda_be, poses[0], d1[0], True, False), apply_pose_delta(poses[0], d1[0]),
                               rtol=0, atol=tol)
    assert run(cuda_be, np.zeros((0, 4, 4)), np.zeros((0, 6)), True, False).shape == (0, 4, 4)


def test_reflection_fix(cuda_be):
    refl = np.diag([1.0, 1.0, -1.0, 1.0])
    delta = np.array([0.1, 0.2, -0.1, 0.3, 0.0, 0.0])
    plain = run(cuda_be, refl, delta, True, False)
    fixed = run(cuda_be, refl, delta, True, True)
    tol = tolerance(cuda_be, np.float64)
    np.testing.assert_allclose(plain, apply_pose_delta(refl, delta), rtol=0, atol=tol)
    np.testing.assert_allclose(fixed, apply_pose_delta(refl, delta, fix_reflection=True), rtol=0, atol=tol)
    assert np.linalg.det(plain[:3, :3]) == pytest.approx(-1.0)
    assert np.linalg.det(fixed[:3, :3]) == pytest.approx(1.0)
    # a tiny delta leaves the two smallest singular values nearly equal: which direction is
    # flipped is then ill-determined (for LAPACK too), but the result is still a rotation
    tiny = run(cuda_be, refl, np.array([1e-7, 0, 0, 0, 0, 0]), True, True)
    np.testing.assert_allclose(tiny[:3, :3] @ tiny[:3, :3].T, np.eye(3), atol=1e-12)
    assert np.linalg.det(tiny[:3, :3]) == pytest.approx(1.0)


def test_rank_deficient_blocks(cuda_be):
    """Singular rotation blocks (rank 2, 1, 0): the polar factor is not unique, but the result is
    a rotation, keeps the translation, and agrees with NumPy where it is unique."""
    for block in (np.diag([2.0, 1.0, 0.0]), np.outer([1.0, 2.0, 2.0], [0.0, 1.0, 0.0]), np.zeros((3, 3))):
        pose = np.eye(4)
        pose[:3, :3] = block
        pose[:3, 3] = [1.0, 2.0, 3.0]
        out = run(cuda_be, pose, np.zeros(6), True, True)
        R = out[:3, :3]
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(R) == pytest.approx(1.0)
        np.testing.assert_array_equal(out[:3, 3], pose[:3, 3])
        np.testing.assert_array_equal(out[3], [0.0, 0.0, 0.0, 1.0])
    rank2 = run(cuda_be, np.diag([2.0, 1.0, 0.0, 1.0]), np.zeros(6), True, False)
    np.testing.assert_allclose(rank2[:2, :2], np.eye(2), atol=1e-12)


def test_output_may_be_the_input(cuda_be):
    poses, deltas = random_poses(6, seed=3)
    buf = cuda_be.from_host(poses.copy())
    cuda_be.kernels.pose_delta(buf, cuda_be.from_host(deltas), buf, True, False)
    np.testing.assert_allclose(cuda_be.to_host(buf), apply_pose_delta(poses, deltas), rtol=0,
                               atol=tolerance(cuda_be, np.float64))


def test_stream_keyword(cuda_be):
    poses, deltas = random_poses(4, seed=4)
    stream = cuda_be.kernels.Stream(0)
    out = cuda_be.empty(poses.shape, poses.dtype)
    cuda_be.kernels.pose_delta(cuda_be.from_host(poses), cuda_be.from_host(deltas), out, True, False,
                               stream=stream.handle)
    stream.synchronize()
    np.testing.assert_allclose(out.get(), apply_pose_delta(poses, deltas), rtol=0,
                               atol=tolerance(cuda_be, np.float64))
