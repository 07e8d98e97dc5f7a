"""Matplotlib views of the pose gradients (optional: ``pip install geomops[plot]``).

matplotlib is imported only when a function here is called. Figures are built with
``matplotlib.figure.Figure`` directly (no pyplot, no GUI backend, nothing is shown): save them
with ``fig.savefig(path)`` or display them in a notebook.
"""

from __future__ import annotations

import numpy as np

__all__ = ["plot_pose_contributions", "require_matplotlib"]

PARAM_NAMES = ("alpha (rot x)", "beta (rot y)", "gamma (rot z)", "a (trans x)", "b (trans y)", "c (trans z)")


def require_matplotlib():
    """Import matplotlib or raise an ImportError that says how to get it."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("visualize_grad=True and geomops.pose.plotting need matplotlib, which is not "
                          "installed; install it with `pip install matplotlib` (or `pip install geomops[plot]`)"
                          ) from exc
    return Figure


def plot_pose_contributions(contributions, grad=None, instance_ids=None, cmap="RdBu_r"):
    """Per-pixel contribution maps of each pose parameter, a 2x3 grid per object.

    Parameters
    ----------
    contributions : ndarray, shape (N, 6, H, W)
        The per-pixel terms from ``backpropagate_gradient_to_poses(..., return_contributions=True)``.
    grad : ndarray, shape (N, 6), optional
        The summed gradient, printed in each panel's title.
    instance_ids : sequence of int, optional
        Instance ids for the object headings.
    cmap : str
        A diverging colour map; each panel is centred at 0 with symmetric limits.

    Returns
    -------
    matplotlib.figure.Figure
    """
    Figure = require_matplotlib()
    c = np.asarray(contributions)
    if c.ndim != 4 or c.shape[1] != 6:
        raise ValueError(f"contributions must have shape (N, 6, H, W), got shape {c.shape}")
    n, _, h, w = c.shape
    rows = max(n, 1) * 2
    aspect = w / max(h, 1)
    fig = Figure(figsize=(3 * 3.0 * min(max(aspect, 0.5), 2.0), rows * 3.0), layout="constrained")
    if n == 0:
        ax = fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "no objects", ha="center", va="center")
        ax.set_axis_off()
        return fig
    subfigs = np.atleast_1d(fig.subfigures(n, 1))
    for k in range(n):
        sf = subfigs[k]
        head = f"object {k}" + (f" (instance {int(instance_ids[k])})" if instance_ids is not None else "")
        sf.suptitle(head)
        axes = sf.subplots(2, 3)
        for e in range(6):
            ax = axes[e // 3, e % 3]
            img = c[k, e]
            lim = float(np.nanmax(np.abs(img))) if img.size else 0.0
            lim = lim if np.isfinite(lim) and lim > 0 else 1.0
            im = ax.imshow(img, cmap=cmap, vmin=-lim, vmax=lim, interpolation="nearest")
            title = PARAM_NAMES[e]
            if grad is not None:
                title += f"\nsum = {float(np.asarray(grad)[k, e]):.4g}"
            ax.set_title(title, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            sf.colorbar(im, ax=ax, shrink=0.8)
    return fig
