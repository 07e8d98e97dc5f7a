"""visualize_grad returns a matplotlib Figure (stillleben's crashes); a clear ImportError without it."""

import sys

import numpy as np
import pytest

import reference_pose as ref
from geomops.pose import backpropagate_gradient_to_poses
from geomops.pose import plotting


def _setup():
    cam = ref.Camera(32, 24, 30.0, 30.0, 16.0, 12.0)
    objs = [ref.Obj(ref.pose_matrix(t=(-0.05, 0, 0.5)), 1, radius=0.06),
            ref.Obj(ref.pose_matrix(t=(0.06, 0, 0.6)), 2, radius=0.06)]
    scene = ref.Scene(cam, objs)
    buf = ref.raycast_spheres(scene, background=0.3)
    g = np.random.default_rng(0).standard_normal((3, 24, 32)).astype(np.float32)
    return scene, buf, g


def test_visualize_grad_returns_grad_and_figure(device):
    from matplotlib.figure import Figure
    scene, buf, g = _setup()
    plain = backpropagate_gradient_to_poses(scene, buf, g, device=device)
    grad, fig = backpropagate_gradient_to_poses(scene, buf, g, visualize_grad=True, device=device)
    np.testing.assert_array_equal(grad, plain)
    assert isinstance(fig, Figure)
    axes = [ax for ax in fig.get_axes() if ax.get_images()]
    assert len(axes) == 12  # 2x3 per object
    titles = [ax.get_title() for ax in axes]
    assert any(t.startswith("alpha") for t in titles) and any(t.startswith("c (trans z)") for t in titles)
    # each map is centred at 0 and shows the object's contributions
    im = axes[0].get_images()[0]
    lo, hi = im.get_clim()
    assert lo == -hi and hi > 0
    grad2, con, fig2 = backpropagate_gradient_to_poses(scene, buf, g, visualize_grad=True,
                                                       return_contributions=True, device=device)
    np.testing.assert_array_equal(grad2, plain)
    assert con.shape == (2, 6, 24, 32)
    np.testing.assert_allclose(con.sum(axis=(2, 3)), plain, rtol=1e-4, atol=1e-4 * np.abs(plain).max())
    fig.savefig(__import__("io").BytesIO(), format="png")


def test_plot_pose_contributions_checks_its_input():
    with pytest.raises(ValueError, match="contributions"):
        plotting.plot_pose_contributions(np.zeros((2, 5, 4, 4)))
    fig = plotting.plot_pose_contributions(np.zeros((0, 6, 4, 4)))
    assert fig is not None


def test_missing_matplotlib_gives_a_clear_import_error(monkeypatch, device):
    scene, buf, g = _setup()
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        backpropagate_gradient_to_poses(scene, buf, g, visualize_grad=True, device=device)
    # the gradient itself does not need matplotlib
    assert backpropagate_gradient_to_poses(scene, buf, g, device=device).shape == (2, 6)
