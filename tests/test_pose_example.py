"""examples/pose_refinement.py converges (a shortened run on a small image) and saves its figure."""

import importlib.util
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def _load_example():
    path = os.path.join(HERE, "..", "examples", "pose_refinement.py")
    spec = importlib.util.spec_from_file_location("pose_refinement_example", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_pose_refinement_example_converges(tmp_path):
    example = _load_example()
    out = tmp_path / "refine.png"
    result = example.main(["--iterations", "40", "--width", "160", "--height", "120", "--out", str(out),
                           "--quiet"])
    hist = result["history"]
    rot0, trans0 = hist["rot_deg"][0], hist["trans_mm"][0]
    rot, trans = result["final_error"]
    assert rot0 > 10 and trans0 > 30  # starts about 12 degrees and 35 mm off
    assert rot < rot0 / 5 and trans < trans0 / 5, (rot, trans)
    assert hist["loss"][-1] < hist["loss"][0] / 10
    assert out.exists() and out.stat().st_size > 10_000
    R = result["pose"][:3, :3]
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-9)


def test_pose_refinement_example_on_the_device(tmp_path):
    """--device cuda: the same loop with the renders, the loss (through DLPack), the gradients and
    the pose update on the device (here the CUDA emulator); it converges like the CPU run."""
    from geomops import _backend
    example = _load_example()
    with _backend.cuda_emulation():
        result = example.refine(width=80, height=60, iterations=25, verbose=False, device="cuda")
    cpu = example.refine(width=80, height=60, iterations=25, verbose=False)
    hist = result["history"]
    assert hist["loss"][-1] < hist["loss"][0] / 5
    assert result["final_error"][0] < hist["rot_deg"][0] / 3 and result["final_error"][1] < hist["trans_mm"][0] / 3
    # the same loop up to rounding: the per-step losses agree closely
    np.testing.assert_allclose(hist["loss"][:5], cpu["history"]["loss"][:5], rtol=1e-4)
    assert isinstance(result["start"]["maps"], np.ndarray) and result["final"]["image"].dtype == np.uint8


def test_pose_refinement_example_fails_fast_without_a_gpu(capsys):
    import geomops
    import pytest
    if geomops.cuda_available():
        pytest.skip("a CUDA device is present")
    example = _load_example()
    with pytest.raises(SystemExit, match="--device cuda: device='cuda' cannot be used"):
        example.main(["--device", "cuda", "--iterations", "1", "--quiet"])


def test_pose_refinement_example_zero_iterations_and_quiet(tmp_path, capsys):
    """--iterations 0 saves the start's figure (it crashed in save_figure); --quiet hides the steps,
    not the final result."""
    example = _load_example()
    out = tmp_path / "zero.png"
    result = example.main(["--iterations", "0", "--width", "80", "--height", "60", "--out", str(out), "--quiet"])
    assert result["history"]["loss"] == [] and out.stat().st_size > 10_000
    assert result["final_error"] == result["start_error"]
    assert result["start"]["maps"].shape == (6, 60, 80) and abs(result["start"]["maps"]).sum() > 0
    text = capsys.readouterr().out
    assert "final     rotation error" in text and "figure saved to" in text and "step " not in text
