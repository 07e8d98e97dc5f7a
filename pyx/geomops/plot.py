"""Matplotlib pictures of geomops' inputs and results (optional: ``pip install "geomops[plot]"``).

* :func:`plot_filter` -- the slices of a continuous-convolution filter ``[D, H, W, Cin, Cout]``
* :func:`plot_neighbors` -- one query and its neighbors in 3-D, from a neighbor search result
* :func:`plot_coordinate_mapping` -- the three ball-to-cube mappings, as the kernels compute them
* :func:`plot_pose_gradients` -- the per-pixel maps of the six pose-gradient parameters

matplotlib is imported only when one of these functions is called (``import geomops`` never
imports it). Figures are built with :class:`matplotlib.figure.Figure` directly: no pyplot, no GUI
backend, nothing is shown. Save them with ``fig.savefig(path)`` or display them in a notebook.
Every function returns the :class:`~matplotlib.figure.Figure` it drew on.
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any, Optional, Sequence, Union, cast

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from matplotlib.figure import Figure, SubFigure
    from mpl_toolkits.mplot3d.axes3d import Axes3D  # type: ignore[import-untyped]  # (no type hints)

__all__ = ["PARAM_NAMES", "plot_coordinate_mapping", "plot_filter", "plot_neighbors", "plot_pose_gradients",
           "require_matplotlib"]

#: The six pose-gradient parameters, in the order of ``backpropagate_gradient_to_poses``' output.
PARAM_NAMES = ("alpha (rot x)", "beta (rot y)", "gamma (rot z)", "a (trans x)", "b (trans y)", "c (trans z)")

_MAPPINGS = ("identity", "ball_to_cube_radial", "ball_to_cube_volume_preserving")
_PLANES = {"xy": (0, 1), "xz": (0, 2), "yz": (1, 2)}


def require_matplotlib(what: str = "geomops.plot") -> type[Figure]:
    """Import matplotlib and return :class:`matplotlib.figure.Figure`, or raise an ImportError
    that names ``what`` and says how to install it."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(f"{what} needs matplotlib, which is not installed; install it with "
                          "`pip install matplotlib` (or `pip install \"geomops[plot]\"`)") from exc
    return Figure


# ---- input checks --------------------------------------------------------------------------------

def _host(x: Any, name: str) -> npt.NDArray[Any]:
    """A NumPy view/copy of ``x`` (device arrays are copied to the host)."""
    if hasattr(x, "__cuda_array_interface__") and hasattr(x, "get"):
        x = x.get()
    try:
        return np.asarray(x)
    except Exception as exc:  # e.g. a torch tensor that requires grad
        raise TypeError(f"{name} must be an array, got {type(x).__name__} ({exc})") from None


def _host_array(x: Any, name: str) -> npt.NDArray[Any]:
    """:func:`_host`, real numbers only."""
    a = _host(x, name)
    if a.dtype == np.bool_ or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise TypeError(f"{name} must be an array of real numbers, got dtype {a.dtype}")
    return a


def _index(value: Any, name: str, size: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    i = int(value)
    if not 0 <= i < size:
        raise ValueError(f"{name} must be in [0, {size}), got {i}")
    return i


def _canvas(fig: Optional[Union[Figure, SubFigure]], figsize: tuple[float, float]
            ) -> tuple[Union[Figure, SubFigure], Figure]:
    """The (sub)figure to draw on and the Figure to return."""
    Figure = require_matplotlib()
    from matplotlib.figure import SubFigure
    if fig is None:
        new = Figure(figsize=figsize, layout="constrained")
        return new, new
    if isinstance(fig, Figure):
        return fig, fig
    if isinstance(fig, SubFigure):
        return fig, fig.figure  # a SubFigure's .figure is its root Figure
    raise TypeError(f"fig must be a matplotlib Figure or SubFigure, got {type(fig).__name__}")


def _symmetric_limit(values: npt.NDArray[Any]) -> float:
    lim = float(np.nanmax(np.abs(values))) if values.size else 0.0
    return lim if np.isfinite(lim) and lim > 0 else 1.0


# ---- filters -------------------------------------------------------------------------------------

def plot_filter(filters: npt.ArrayLike, *, in_channel: int = 0, out_channel: int = 0,
                fig: Optional[Union[Figure, SubFigure]] = None, cmap: str = "RdBu_r", max_columns: int = 6,
                vmax: Optional[float] = None, title: Optional[str] = None) -> Figure:
    """The depth slices of one channel pair of a continuous-convolution filter.

    One image per depth index ``d`` shows ``filters[d, :, :, in_channel, out_channel]``: width
    (x) to the right, height (y) up, one pixel per filter cell, all slices on one symmetric colour
    scale centred at 0.

    Parameters
    ----------
    filters : array_like, shape (D, H, W, Cin, Cout), float32 or float64 (any real dtype)
        The filter, as ``continuous_conv`` takes it (depth = z, height = y, width = x). Device
        arrays are copied to the host.
    in_channel, out_channel : int
        The channel pair to show.
    fig : matplotlib.figure.Figure or SubFigure, optional
        Draw on this (sub)figure (e.g. to put two filters side by side); a new Figure otherwise.
    cmap : str
        A diverging colour map.
    max_columns : int
        Slices per row; more depth slices wrap onto further rows.
    vmax : float, optional
        The colour scale is ``[-vmax, vmax]`` (to compare filters on one scale); by default the
        largest magnitude of the shown slices.
    title : str, optional
        The (sub)figure's title; by default it names the channel pair.

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn on (the root Figure when ``fig`` is a SubFigure). Its image axes are
        titled ``"depth d = <d>"``, in order.

    Raises
    ------
    TypeError
        ``filters`` is not a real array, a channel is not an int, ``fig`` is not a figure.
    ValueError
        ``filters`` is not 5-D or has an empty axis, a channel is out of range, ``vmax`` is not
        a positive number.
    """
    f = _host_array(filters, "filters")
    if f.ndim != 5:
        raise ValueError(f"filters must have shape (D, H, W, Cin, Cout), got shape {f.shape}")
    if 0 in f.shape:
        raise ValueError(f"filters must not have an empty axis, got shape {f.shape}")
    d, h, w, cin, cout = f.shape
    ci = _index(in_channel, "in_channel", cin)
    co = _index(out_channel, "out_channel", cout)
    if _index(max_columns, "max_columns", 1 << 30) < 1:
        raise ValueError("max_columns must be at least 1")
    ncols = min(d, int(max_columns))
    nrows = -(-d // ncols)
    canvas, root = _canvas(fig, (2.4 * ncols + 1.0, 2.4 * nrows + 0.6))
    slices = f[..., ci, co]
    if vmax is not None and (isinstance(vmax, bool) or not isinstance(vmax, numbers.Real) or not vmax > 0):
        raise ValueError(f"vmax must be a positive number, got {vmax!r}")
    lim = _symmetric_limit(slices) if vmax is None else float(vmax)
    axes = canvas.subplots(nrows, ncols, squeeze=False).ravel()
    im: Any = None
    for k, ax in enumerate(axes):
        if k >= d:
            ax.set_axis_off()
            continue
        im = ax.imshow(slices[k], cmap=cmap, vmin=-lim, vmax=lim, origin="lower", interpolation="nearest")
        ax.set_title(f"depth d = {k}", fontsize=9)
        ax.set_xticks(range(w))
        ax.set_yticks(range(h))
        ax.tick_params(labelsize=7)
        if k % ncols == 0:
            ax.set_ylabel("height (y)", fontsize=8)
        if k >= d - ncols:
            ax.set_xlabel("width (x)", fontsize=8)
    canvas.colorbar(im, ax=list(axes[:d]), shrink=0.8)
    canvas.suptitle(title if title is not None else f"filter slices: in channel {ci} -> out channel {co}")
    return root


# ---- neighbors -----------------------------------------------------------------------------------

def plot_neighbors(points: npt.ArrayLike, neighbors: Any, query_index: int = 0, *,
                   queries: Optional[npt.ArrayLike] = None, radius: Optional[float] = None,
                   zoom: bool = False, ax: Optional[Axes3D] = None, max_background: int = 4000,
                   seed: int = 0) -> Figure:
    """One query point and its neighbors in 3-D, over (a sample of) the other points.

    Parameters
    ----------
    points : array_like, shape (N, 3), float32 or float64
        The points that were searched.
    neighbors : NeighborSearchResult
        The result of :func:`geomops.fixed_radius_search`, :func:`geomops.radius_search` or
        :func:`geomops.knn_search` (anything with ``neighbors_index`` [E] and
        ``neighbors_row_splits`` [Nq + 1]); its distances, when it has them, colour the neighbors.
    query_index : int
        Which query to show, in ``[0, Nq)``.
    queries : array_like, shape (Nq, 3), optional
        The query positions; by default ``points`` (a search of the points against themselves).
    radius : float, optional
        Draw the search sphere of this radius around the query.
    zoom : bool
        Limit the view to the query's neighborhood (otherwise the whole cloud is in view).
    ax : mpl_toolkits.mplot3d.axes3d.Axes3D, optional
        Draw into this 3-D axes; a new Figure with one 3-D axes otherwise.
    max_background : int
        At most this many of the other points are drawn (a random sample, fixed by ``seed``).
    seed : int
        Seed of that sample.

    Returns
    -------
    matplotlib.figure.Figure
        The figure of the axes. Its three point sets are labelled ``"query <i>"``,
        ``"<k> neighbors"`` (exactly the neighbor list's points, duplicates included) and
        ``"other points"`` (see ``ax.get_legend_handles_labels()``).

    Raises
    ------
    TypeError
        ``neighbors`` is not a search result, ``ax`` is not a 3-D axes, an array is not real.
    ValueError
        Shapes do not match, ``query_index`` is out of range, an index is not a point.
    """
    pts = _host_array(points, "points")
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"points must have shape (N, 3), got shape {pts.shape}")
    if not (hasattr(neighbors, "neighbors_index") and hasattr(neighbors, "neighbors_row_splits")):
        raise TypeError("neighbors must be a neighbor search result with neighbors_index and neighbors_row_splits "
                        f"(e.g. from geomops.fixed_radius_search), got {type(neighbors).__name__}")
    index = _host_array(neighbors.neighbors_index, "neighbors.neighbors_index")
    splits = _host_array(neighbors.neighbors_row_splits, "neighbors.neighbors_row_splits")
    if not (np.issubdtype(index.dtype, np.integer) and np.issubdtype(splits.dtype, np.integer)):
        raise TypeError("neighbors.neighbors_index and neighbors_row_splits must be integer arrays")
    if index.ndim != 1 or splits.ndim != 1 or splits.size < 1:
        raise ValueError("neighbors.neighbors_index must be 1-D and neighbors_row_splits 1-D and non-empty")
    qs = pts if queries is None else _host_array(queries, "queries")
    if qs.ndim != 2 or qs.shape[1] != 3:
        raise ValueError(f"queries must have shape (Nq, 3), got shape {qs.shape}")
    nq = splits.size - 1
    if qs.shape[0] != nq:
        raise ValueError(f"neighbors has {nq} queries but {'points' if queries is None else 'queries'} has "
                         f"{qs.shape[0]} rows: pass the queries that were searched as queries=")
    qi = _index(query_index, "query_index", nq)
    lo, hi = int(splits[qi]), int(splits[qi + 1])
    if not 0 <= lo <= hi <= index.size:
        raise ValueError(f"neighbors.neighbors_row_splits[{qi}:{qi + 2}] = ({lo}, {hi}) is not a range of "
                         f"neighbors_index (size {index.size})")
    nb = index[lo:hi].astype(np.int64)
    if nb.size and (nb.min() < 0 or nb.max() >= pts.shape[0]):
        raise ValueError(f"neighbors of query {qi} index points outside [0, {pts.shape[0]})")
    if radius is not None and (isinstance(radius, bool) or not isinstance(radius, numbers.Real)
                               or not radius > 0):
        raise ValueError(f"radius must be a positive number, got {radius!r}")
    max_background = _index(max_background, "max_background", 1 << 62)
    dist = getattr(neighbors, "neighbors_distance", None)
    dist = None if dist is None else _host_array(dist, "neighbors.neighbors_distance")

    if ax is None:
        Figure = require_matplotlib()
        root = Figure(figsize=(6.0, 5.4), layout="constrained")
        ax = cast("Axes3D", root.add_subplot(projection="3d"))
    elif getattr(ax, "name", None) != "3d":
        raise TypeError(f"ax must be a 3-D axes (projection='3d'), got {type(ax).__name__}")
    else:
        root = _canvas(ax.figure, (0.0, 0.0))[1]

    query = qs[qi].astype(np.float64)
    others = np.ones(pts.shape[0], bool)
    others[nb] = False
    bg = np.flatnonzero(others)
    if zoom:  # keep only what is inside the view
        reach = max(float(radius or 0.0), float(np.abs(pts[nb] - query).max()) if nb.size else 0.0) or 1.0
        half = 1.3 * reach
        bg = bg[np.all(np.abs(pts[bg] - query) <= half, axis=1)]
    if bg.size > max_background:
        bg = np.sort(np.random.default_rng(seed).choice(bg, max_background, replace=False))
    b = pts[bg]
    ax.scatter(b[:, 0], b[:, 1], b[:, 2], s=1.5, c="0.6", alpha=0.35, depthshade=False,
               label=f"other points ({bg.size} shown)")
    p = pts[nb]
    colour: Any = "tab:blue"
    if dist is not None and dist.size == index.size and nb.size:
        colour = dist[lo:hi]
    sc = ax.scatter(p[:, 0], p[:, 1], p[:, 2], s=14, c=colour, depthshade=False, label=f"{nb.size} neighbors",
                    **({} if isinstance(colour, str) else {"cmap": "viridis"}))
    ax.scatter([query[0]], [query[1]], [query[2]], s=180, c="tab:red", marker="*", depthshade=False,
               label=f"query {qi}")
    if radius is not None:
        u, v = np.meshgrid(np.linspace(0, 2 * np.pi, 25), np.linspace(0, np.pi, 13))
        r = float(radius)
        ax.plot_wireframe(query[0] + r * np.cos(u) * np.sin(v), query[1] + r * np.sin(u) * np.sin(v),
                          query[2] + r * np.cos(v), color="tab:red", linewidth=0.3, alpha=0.5)
    if not isinstance(colour, str):
        root.colorbar(sc, ax=ax, shrink=0.6, label="distance (squared for L2, as the search returns it)")
    if zoom:
        for setter, c in zip((ax.set_xlim, ax.set_ylim, ax.set_zlim), query):
            setter(c - half, c + half)
    else:
        mins, maxs = pts.min(axis=0), pts.max(axis=0)
        mid, span = (mins + maxs) / 2, float((maxs - mins).max()) / 2 or 1.0
        for setter, c in zip((ax.set_xlim, ax.set_ylim, ax.set_zlim), mid):
            setter(c - span, c + span)
    ax.set_box_aspect((1.0, 1.0, 1.0))
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_zlabel("z")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(f"query {qi}: {nb.size} neighbors" + (f" within r = {radius:g}" if radius is not None else ""))
    return root


# ---- coordinate mappings -------------------------------------------------------------------------

def _mapped(points: npt.NDArray[np.float64], coordinate_mapping: str) -> npt.NDArray[np.float64]:
    """Filter-cube coordinates q of relative positions ``points`` (extent 1), computed by geomops'
    own kernel: with a 2x2x2 filter whose corner values are the corners' coordinates,
    ``align_corners=True`` and trilinear interpolation, ``continuous_conv`` returns q itself for one
    neighbor with feature 1 (trilinear interpolation reproduces a linear function exactly)."""
    from .cconv import CoordinateMapping, continuous_conv
    n = points.shape[0]
    corner = np.array([-0.5, 0.5])
    z, y, x = np.meshgrid(corner, corner, corner, indexing="ij")
    filters = np.stack([x, y, z], axis=-1)[:, :, :, None, :]  # [D, H, W, 1, 3]: the corner's (x, y, z)
    out = continuous_conv(filters, np.zeros((n, 3)), np.ones((1, 1)), np.zeros(3), points, np.ones((n, 1)), None,
                          np.arange(n, dtype=np.int32), None, np.arange(n + 1, dtype=np.int64),
                          align_corners=True, interpolation="linear",
                          coordinate_mapping=cast(CoordinateMapping, coordinate_mapping))
    return np.asarray(out, dtype=np.float64)


def plot_coordinate_mapping(mappings: Optional[Sequence[str]] = None, *, planes: Sequence[str] = ("xy", "xz"),
                            num_circles: int = 5, num_rays: int = 16,
                            fig: Optional[Union[Figure, SubFigure]] = None) -> Figure:
    """How each ball-to-cube coordinate mapping moves the filter ball into the filter cube.

    A neighbor at relative position ``p`` (divided by the extent, so the filter's ball is the
    ball of radius 1/2) is mapped to ``q`` in the cube ``[-1/2, 1/2]^3`` before the filter is
    interpolated there. Each panel shows, in one coordinate plane through the centre, the images
    of concentric circles (radii ``0.5 k / num_circles``, coloured by radius) and of rays from the
    centre; the dashed square is the cube, the dotted circle the ball. The mapped points are
    computed by geomops' own kernel (``continuous_conv`` with a filter that returns q), not by a
    re-implementation. All three mappings keep these planes, so the panels are exact.

    Parameters
    ----------
    mappings : sequence of str, optional
        Any of ``"identity"``, ``"ball_to_cube_radial"``, ``"ball_to_cube_volume_preserving"``
        (default: all three, in that order). One column each.
    planes : sequence of str
        Any of ``"xy"``, ``"xz"``, ``"yz"``: one row each. ``"xz"`` shows the volume-preserving
        mapping's caps (it treats z differently from x and y).
    num_circles, num_rays : int
        How many circles and rays to draw (at least 1 and 0).
    fig : matplotlib.figure.Figure or SubFigure, optional
        Draw on this (sub)figure; a new Figure otherwise.

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn on. Panel titles are ``"<mapping>\\n<plane> plane"``; each circle's line
        has the label ``"r = <radius>"`` and its data are the mapped coordinates.

    Raises
    ------
    TypeError
        An argument has the wrong type.
    ValueError
        An unknown mapping or plane, or a count out of range.
    """
    if mappings is None:
        mappings = _MAPPINGS
    if isinstance(mappings, str) or not isinstance(mappings, Sequence):
        raise TypeError(f"mappings must be a sequence of mapping names, got {type(mappings).__name__}")
    if not mappings:
        raise ValueError("mappings must name at least one mapping")
    for m in mappings:
        if m not in _MAPPINGS:
            raise ValueError(f"mappings: {m!r} is not one of {_MAPPINGS}")
    if isinstance(planes, str) or not isinstance(planes, Sequence):
        raise TypeError(f"planes must be a sequence of plane names, got {type(planes).__name__}")
    if not planes:
        raise ValueError("planes must name at least one plane")
    for pl in planes:
        if pl not in _PLANES:
            raise ValueError(f"planes: {pl!r} is not one of {tuple(_PLANES)}")
    num_circles = _index(num_circles, "num_circles", 1 << 12)
    if num_circles < 1:
        raise ValueError("num_circles must be at least 1")
    num_rays = _index(num_rays, "num_rays", 1 << 12)

    canvas, root = _canvas(fig, (3.3 * len(mappings), 3.3 * len(planes) + 0.4))
    from matplotlib import colormaps
    cmap = colormaps["viridis"]
    t = np.linspace(0, 2 * np.pi, 241)
    radii = 0.5 * np.arange(1, num_circles + 1) / num_circles
    axes = canvas.subplots(len(planes), len(mappings), squeeze=False)
    for row, pl in enumerate(planes):
        i, j = _PLANES[pl]
        # all circles, then all rays, mapped in one kernel call per mapping
        curves = [np.outer(np.cos(t), np.eye(3)[i]) * r + np.outer(np.sin(t), np.eye(3)[j]) * r for r in radii]
        s = np.linspace(0, 0.5, 26)
        angles = np.arange(num_rays) * 2 * np.pi / max(num_rays, 1)
        rays = [np.outer(s, np.cos(a) * np.eye(3)[i] + np.sin(a) * np.eye(3)[j]) for a in angles]
        allp = np.concatenate(curves + rays) if curves + rays else np.zeros((0, 3))
        for col, m in enumerate(mappings):
            ax = axes[row, col]
            q = _mapped(allp, m)
            start = 0
            for r, c in zip(radii, curves):
                seg = q[start:start + len(c)]
                start += len(c)
                ax.plot(seg[:, i], seg[:, j], color=cmap(r / 0.5 * 0.85), lw=1.2, label=f"r = {r:g}")
            for ray in rays:
                seg = q[start:start + len(ray)]
                start += len(ray)
                ax.plot(seg[:, i], seg[:, j], color="0.55", lw=0.6)
            ax.plot([-0.5, 0.5, 0.5, -0.5, -0.5], [-0.5, -0.5, 0.5, 0.5, -0.5], "k--", lw=0.8)
            ax.plot(0.5 * np.cos(t), 0.5 * np.sin(t), "k:", lw=0.8)
            ax.set_xlim(-0.6, 0.6)
            ax.set_ylim(-0.6, 0.6)
            ax.set_aspect("equal")
            ax.set_title(f"{m}\n{pl} plane", fontsize=9)
            ax.set_xlabel(f"q_{pl[0]}", fontsize=8)
            ax.set_ylabel(f"q_{pl[1]}", fontsize=8)
            ax.tick_params(labelsize=7)
    canvas.suptitle("coordinate mappings: relative position (ball of radius 1/2) -> filter cube")
    return root


# ---- pose gradients ------------------------------------------------------------------------------

def _thicken(img: npt.NDArray[Any], k: int) -> npt.NDArray[Any]:
    """Each pixel takes the value of largest magnitude in its (2k+1)^2 window (lines get 2k px wider)."""
    if k <= 0:
        return img
    pad = np.pad(img, k)
    win = np.lib.stride_tricks.sliding_window_view(pad, (2 * k + 1, 2 * k + 1)).reshape(img.shape + (-1,))
    pick = np.abs(win).argmax(axis=-1)
    return np.take_along_axis(win, pick[..., None], axis=-1)[..., 0]


def _outline_box(mask: npt.NDArray[np.bool_]) -> Optional[tuple[int, int, int, int]]:
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    return int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1


def plot_pose_gradients(contributions: npt.ArrayLike, grad: Optional[npt.ArrayLike] = None, *,
                        outline: Optional[npt.ArrayLike] = None, crop: bool = True, thicken: Optional[int] = None,
                        instance_ids: Optional[Sequence[int]] = None, ncols: int = 3, cmap: str = "RdBu_r",
                        fig: Optional[Union[Figure, SubFigure]] = None) -> Figure:
    """Per-pixel contribution maps of each pose parameter: where in the image the gradient comes from.

    The maps of ``backpropagate_gradient_to_poses(..., return_contributions=True)`` are non-zero
    on thin edges only (a few pixels of a 640x480 image). By default the view is cropped to the
    object and the lines are widened so that they stay visible; the object's outline gives context.

    Parameters
    ----------
    contributions : array_like, shape (N, 6, H, W) or (6, H, W), float32 or float64
        Per-pixel terms of the gradient of N objects (device arrays are copied to the host).
    grad : array_like, shape (N, 6) or (6,), optional
        The summed gradient, printed in each panel's title.
    outline : array_like, shape (H, W), optional
        Object pixels (non-zero), e.g. the render's ``instance_index``: drawn as a black contour.
    crop : bool
        Zoom to the bounding box (plus a margin) of the non-zero contributions and the outline.
        The axes keep the image's pixel coordinates.
    thicken : int, optional
        Widen lines by this many pixels on each side (each pixel shows the value of largest
        magnitude within that distance; the sums in the titles are not affected). Default: about
        one pixel per 90 pixels of the shown region, so 0 for small images.
    instance_ids : sequence of int, optional
        Instance ids for the object headings.
    ncols : int
        Panels per row: 3 gives a 2x3 grid per object, 6 one row.
    cmap : str
        A diverging colour map; each panel is centred at 0 with symmetric limits.
    fig : matplotlib.figure.Figure or SubFigure, optional
        Draw on this (sub)figure; a new Figure otherwise.

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn on. Panel titles start with the parameter names of
        :data:`PARAM_NAMES`; with ``crop=False, thicken=0`` each panel's image data is the map itself.

    Raises
    ------
    TypeError
        An array is not real, a count is not an int, ``fig`` is not a figure.
    ValueError
        Shapes do not match.
    """
    c = _host_array(contributions, "contributions")
    if c.ndim == 3:
        c = c[None]
    if c.ndim != 4 or c.shape[1] != 6:
        raise ValueError(f"contributions must have shape (N, 6, H, W) or (6, H, W), got shape "
                         f"{np.shape(contributions)}")
    n, _, h, w = c.shape
    g = None
    if grad is not None:
        g = _host_array(grad, "grad").reshape(-1, 6) if np.size(grad) == 6 * n else None
        if g is None:
            raise ValueError(f"grad must have shape ({n}, 6), got shape {np.shape(grad)}")
    mask = None
    if outline is not None:
        o = _host(outline, "outline")
        if o.shape != (h, w):
            raise ValueError(f"outline must have the maps' shape ({h}, {w}), got shape {o.shape}")
        mask = o != 0
    if instance_ids is not None and len(instance_ids) != n:
        raise ValueError(f"instance_ids must have {n} entries, got {len(instance_ids)}")
    ncols = _index(ncols, "ncols", 7)
    if ncols == 0:
        raise ValueError("ncols must be in [1, 6]")
    if thicken is not None:
        thicken = _index(thicken, "thicken", 1 << 12)
    nrows = -(-6 // ncols)

    y0, y1, x0, x1 = 0, h, 0, w
    if crop:
        box = _outline_box(np.any(c != 0, axis=(0, 1)) | (mask if mask is not None else False))
        if box is not None:
            by0, by1, bx0, bx1 = box
            margin = max(4, int(0.12 * max(by1 - by0, bx1 - bx0)))
            y0, y1, x0, x1 = max(by0 - margin, 0), min(by1 + margin, h), max(bx0 - margin, 0), min(bx1 + margin, w)
    k = thicken if thicken is not None else int(round(max(y1 - y0, x1 - x0) / 90))
    extent = (x0 - 0.5, x1 - 0.5, y1 - 0.5, y0 - 0.5)  # pixel coordinates of the crop

    aspect = min(max((x1 - x0) / max(y1 - y0, 1), 0.5), 2.0)
    canvas, root = _canvas(fig, (ncols * 3.0 * aspect + 0.5, n * nrows * 3.0))
    if n == 0:
        ax = canvas.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "no objects", ha="center", va="center")
        ax.set_axis_off()
        return root
    subfigs = list(np.ravel(canvas.subfigures(n, 1, squeeze=False))) if n > 1 else [canvas]
    for obj in range(n):
        sf = subfigs[obj]
        if n > 1 or instance_ids is not None:
            sf.suptitle(f"object {obj}" + (f" (instance {int(instance_ids[obj])})" if instance_ids is not None else ""))
        axes = sf.subplots(nrows, ncols, squeeze=False).ravel()
        for e, ax in enumerate(axes):
            if e >= 6:
                ax.set_axis_off()
                continue
            img = _thicken(c[obj, e, y0:y1, x0:x1], k)
            lim = _symmetric_limit(img)
            im = ax.imshow(img, cmap=cmap, vmin=-lim, vmax=lim, interpolation="nearest", extent=extent)
            if mask is not None:
                ys, xs = np.arange(y0, y1), np.arange(x0, x1)
                ax.contour(xs, ys, mask[y0:y1, x0:x1].astype(np.float32), levels=[0.5], colors="k",
                           linewidths=0.7)
            title = PARAM_NAMES[e]
            if g is not None:
                title += f"\nsum = {float(g[obj, e]):.4g}"
            ax.set_title(title, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            sf.colorbar(im, ax=ax, shrink=0.8)
    return root
