"""examples/learn_positions.py runs small (it needs the position gradients): the loss falls and
the figure is written."""

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "learn_positions.py"


def test_learn_positions_example(tmp_path):
    spec = importlib.util.spec_from_file_location("learn_positions", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "fig.png"
    losses = mod.main(["--quick", "--out", str(out)])[-1]
    assert out.stat().st_size > 10_000
    assert losses[-1] < 0.3 * losses[0]
