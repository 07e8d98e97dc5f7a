"""Matplotlib views of the pose gradients (optional: ``pip install "geomops[plot]"``).

The pictures themselves live in :mod:`geomops.plot` (:func:`geomops.plot.plot_pose_gradients`);
this module keeps the names it has always had. matplotlib is imported only when a function here
is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy.typing as npt

from .. import plot as _plot
from ..plot import PARAM_NAMES

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["PARAM_NAMES", "plot_pose_contributions", "require_matplotlib"]


def require_matplotlib() -> type[Figure]:
    """Import matplotlib or raise an ImportError that says how to get it."""
    return _plot.require_matplotlib("visualize_grad=True and geomops.pose.plotting")


def plot_pose_contributions(contributions: npt.ArrayLike, grad: Optional[npt.ArrayLike] = None,
                            instance_ids: Optional[Sequence[int]] = None, cmap: str = "RdBu_r",
                            **options: Any) -> Figure:
    """Per-pixel contribution maps of each pose parameter, a 2x3 grid per object.

    The same as :func:`geomops.plot.plot_pose_gradients` (which see for ``options``: ``outline``,
    ``crop``, ``thicken``, ``ncols``, ``fig``), with ``instance_ids`` and ``cmap`` also positional.

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
    return _plot.plot_pose_gradients(contributions, grad, instance_ids=instance_ids, cmap=cmap, **options)
