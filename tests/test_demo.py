"""The command line and the demo run end to end (small sizes), and the README snippets run."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from geomops.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


def test_config_command(capsys):
    assert main(["config"]) == 0
    assert "OpenMP" in capsys.readouterr().out


def test_demo_cconv_fit_reduces_loss():
    from geomops._demo import cconv_demo
    losses = cconv_demo(num_points=3000, num_threads=1)
    assert losses[-1] < 0.2 * losses[0]


def test_demo_pose_refinement_converges():
    from geomops._demo import pose_demo
    rot_deg, trans_mm = pose_demo(iterations=60)
    assert rot_deg < 2.0 and trans_mm < 3.0


def test_python_m_geomops_demo_runs():
    out = subprocess.run([sys.executable, "-m", "geomops", "demo", "--points", "2000"], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "continuous_conv forward" in out.stdout and "demo finished" in out.stdout


def test_readme_python_snippets_run():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    ns = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), ns)  # noqa: S102 - our own documentation
    assert np.isfinite(ns["out"]).all()
