"""Every examples/*.py runs at its small size (``--small``, as CI does) in a fresh interpreter:
exit code 0, it says what it shows, and the figures it reports are written to the folder given
with ``--out-dir``. Examples that import torch are skipped without torch."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))


def test_there_are_examples():
    assert {p.name for p in EXAMPLES} >= {"pose_refinement.py", "point_cloud_layers.py", "learn_positions.py"}


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_small_and_saves_its_figures(example, tmp_path):
    source = example.read_text()
    if re.search(r"^import torch|^from torch", source, flags=re.M) and importlib.util.find_spec("torch") is None:
        pytest.skip("needs torch")
    if importlib.util.find_spec("matplotlib") is None:
        pytest.skip("needs matplotlib for the figures")
    # one thread each: the examples are small, and CI runs the tests in parallel
    env = dict(os.environ, GEOMOPS_EXAMPLE_SMALL="1", MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, str(example), "--out-dir", str(tmp_path)], capture_output=True,
                         text=True, timeout=240, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith(f"{example.stem}: "), out.stdout  # says what it shows
    saved = re.findall(r"^figure saved to (.+?\.png)", out.stdout, flags=re.M)
    assert saved, out.stdout
    for path in saved:
        assert Path(path).parent == tmp_path and Path(path).stat().st_size > 10_000, path
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(Path(p).name for p in saved)
