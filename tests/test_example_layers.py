"""examples/point_cloud_layers.py trains (small size): the loss must fall a lot."""

import importlib.util
from pathlib import Path

import numpy as np

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "point_cloud_layers.py"


def test_layer_training_example_converges():
    spec = importlib.util.spec_from_file_location("point_cloud_layers", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.train(num_points=800, steps=60, verbose=False)
    assert res.losses[-1] < 0.2 * res.losses[0]
    assert res.prediction.shape == res.target.shape == (800, 1)
    assert np.mean((res.prediction - res.target) ** 2) < 0.3 * res.losses[0]
