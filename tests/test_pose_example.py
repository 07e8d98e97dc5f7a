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
