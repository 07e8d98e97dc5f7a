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
    res = cconv_demo(num_points=3000, num_threads=1)
    assert res.losses[-1] < 0.2 * res.losses[0]
    assert res.filters.shape == res.hidden.shape == (3, 3, 3, 8, 16)
    assert res.neighbors.neighbors_row_splits.size == 3001


def test_demo_pose_refinement_converges():
    from geomops._demo import pose_demo
    res = pose_demo(iterations=60)
    assert res.rot_deg < 2.0 and res.trans_mm < 3.0
    assert len(res.history["rot_deg"]) == 60 and res.history["rot_deg"][0] > 10
    assert res.contributions.shape == (6, 120, 160) and np.any(res.contributions != 0)
    assert res.instance_index.shape == (120, 160) and res.grad.shape == (6,)


def _demo(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300, env=env, cwd=cwd)


def test_python_m_geomops_demo_writes_its_figures(tmp_path):
    out = _demo("-m", "geomops", "demo", "--points", "2000", "--out", str(tmp_path / "figs"))
    assert out.returncode == 0, out.stderr
    assert "continuous_conv forward" in out.stdout and "demo finished" in out.stdout
    assert "figures written to" in out.stdout
    from geomops._demo import FIGURES
    for name in FIGURES:
        assert (tmp_path / "figs" / name).stat().st_size > 5_000, name
    # not a terminal: no progress bar in the log
    assert "\r" not in out.stderr and "it/s" not in out.stderr


def test_demo_default_folder_and_no_figures(tmp_path, monkeypatch, capsys):
    from geomops import _demo
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(_demo, "cconv_demo", lambda **kw: None)
    monkeypatch.setattr(_demo, "pose_demo", lambda **kw: None)
    seen = []
    monkeypatch.setattr(_demo, "save_figures", lambda cc, pz, out_dir, show: seen.append(out_dir) or [])
    assert main(["demo"]) == 0
    assert seen == [_demo.Path("geomops-demo")]
    capsys.readouterr()
    assert main(["demo", "--no-figures"]) == 0
    assert len(seen) == 1 and "figures" not in capsys.readouterr().out


def test_demo_without_matplotlib_prints_its_summary(tmp_path):
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "from geomops.__main__ import main\n"
            f"sys.exit(main(['demo', '--points', '1500', '--out', {str(tmp_path / 'figs')!r}]))")
    out = _demo("-c", code)
    assert out.returncode == 0, out.stderr
    assert "demo finished" in out.stdout
    assert "figures skipped: matplotlib is not installed" in out.stdout
    assert not (tmp_path / "figs").exists()


def test_progress_bar_plain_fallback_and_tqdm(monkeypatch, capsys):
    import io
    from geomops._demo import Progress, progress_enabled
    assert not progress_enabled(io.StringIO())
    stream = io.StringIO()
    monkeypatch.setitem(sys.modules, "tqdm", None)  # no tqdm: the plain line
    bar = Progress(4, "work", True, stream)
    for _ in range(4):
        bar.update()
    bar.write("a line")
    bar.close()
    assert "4/4" in stream.getvalue() and "\r" in stream.getvalue()
    assert capsys.readouterr().out == "a line\n"
    silent = io.StringIO()
    bar = Progress(4, "work", False, silent)
    bar.update()
    bar.write("shown")
    bar.close()
    assert silent.getvalue() == "" and capsys.readouterr().out == "shown\n"
    monkeypatch.delitem(sys.modules, "tqdm")
    __import__("pytest").importorskip("tqdm")
    stream = io.StringIO()
    bar = Progress(3, "work", True, stream)
    bar.update()
    bar.close()
    assert "work" in stream.getvalue()


def test_readme_python_snippets_run():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    ns = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), ns)  # noqa: S102 - our own documentation
    assert np.isfinite(ns["out"]).all()
