"""``python -m geomops demo``: the library end to end on generated data, with timings and figures."""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Optional, TextIO, TypeVar, cast

import numpy as np
import numpy.typing as npt

T = TypeVar("T")

if TYPE_CHECKING:
    from ._device import AnyArray

    _Host = npt.NDArray[Any]  # what the ops return for NumPy inputs
    # continuous_conv's positional arguments (filters first)
    _ConvArgs = tuple[_Host, _Host, _Host, _Host, _Host, _Host, None, AnyArray, None, AnyArray]

FIGURES = ("neighbors.png", "filter.png", "training_loss.png", "pose_error.png", "pose_gradients.png")


class Progress:
    """A progress bar over ``total`` steps on a terminal: tqdm when it is installed, a plain line
    otherwise; silent when ``enabled`` is false. ``write`` prints a line without breaking the bar."""

    def __init__(self, total: int, desc: str, enabled: bool, stream: TextIO = sys.stderr) -> None:
        self.total, self.desc, self.enabled, self.stream = total, desc, enabled, stream
        self.done = 0
        self._bar: Any = None
        if enabled:
            try:
                tqdm = importlib.import_module("tqdm")
            except ImportError:
                self._draw()
            else:
                self._bar = tqdm.tqdm(total=total, desc=desc, file=stream, leave=False)

    def _draw(self) -> None:
        width = 30
        fill = width * self.done // max(self.total, 1)
        self.stream.write(f"\r{self.desc}: [{'#' * fill}{'.' * (width - fill)}] {self.done}/{self.total}")
        self.stream.flush()

    def _clear(self) -> None:
        self.stream.write("\r" + " " * (len(self.desc) + 45) + "\r")
        self.stream.flush()

    def update(self) -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.update(1)
        elif self.enabled:
            self._draw()

    def write(self, line: str) -> None:
        if self._bar is not None:
            self._bar.write(line, file=sys.stdout)
        elif self.enabled:
            self._clear()
            print(line, flush=True)
            self._draw()
        else:
            print(line)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.enabled:
            self._clear()


def progress_enabled(stream: TextIO = sys.stderr) -> bool:
    """Progress bars only on a terminal (not in CI logs or pipes)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _timed(label: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, float]:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    dt = time.perf_counter() - t0
    print(f"  {label:<44s} {dt * 1e3:9.1f} ms")
    return out, dt


def _point_cloud(rng: np.random.Generator, n: int, dtype: npt.DTypeLike) -> npt.NDArray[Any]:
    """Points on a noisy torus inside the unit cube, with smooth features."""
    t, s = rng.uniform(0, 2 * np.pi, (2, n))
    R, r = 0.3, 0.12
    pts = np.stack([(R + r * np.cos(s)) * np.cos(t), (R + r * np.cos(s)) * np.sin(t), r * np.sin(s)], 1)
    pts += 0.5 + rng.normal(scale=0.005, size=pts.shape)
    return pts.astype(dtype)


class CconvDemoResult(NamedTuple):
    """What :func:`cconv_demo` computed (for the figures and the tests)."""
    losses: list[float]
    points: npt.NDArray[Any]
    neighbors: Any  # NeighborSearchResult
    radius: float
    filters: npt.NDArray[Any]  # the fitted filter [3, 3, 3, Cin, Cout]
    hidden: npt.NDArray[Any]  # the filter it was fitted to


def cconv_demo(num_points: int = 20000, num_threads: Optional[int] = None, dtype: npt.DTypeLike = np.float32,
               show_progress: bool = False, steps: int = 12) -> CconvDemoResult:
    """Search, convolve, back-propagate, then fit a filter to a hidden one by gradient descent."""
    from ._config import get_num_threads
    from .cconv import continuous_conv, continuous_conv_backprop_filter, continuous_conv_backward
    from .search import fixed_radius_search
    rng = np.random.default_rng(0)
    print(f"Continuous convolution on a {num_points}-point cloud ({np.dtype(dtype).name}, "
          f"{get_num_threads() if num_threads is None else num_threads} threads)")
    pts = _point_cloud(rng, num_points, dtype)
    radius = 0.03
    cin, cout = 8, 16
    feats = np.concatenate([np.sin(8 * pts), np.cos(8 * pts), np.ones((num_points, 2))], 1).astype(dtype)
    nb, _ = _timed("fixed_radius_search (r = 0.03)", fixed_radius_search, pts, pts, radius,
                   num_threads=num_threads)
    counts = np.diff(nb.neighbors_row_splits)
    print(f"    {nb.neighbors_index.size} neighbor pairs, {counts.mean():.1f} per point (min {counts.min()}, "
          f"max {counts.max()})")
    extents = np.array([[2 * radius]], dtype)
    offset = np.zeros(3, dtype)
    common: dict[str, Any] = dict(num_threads=num_threads, normalize=True)

    def args(f: npt.NDArray[Any]) -> _ConvArgs:
        return (f, pts, extents, offset, pts, feats, None, nb.neighbors_index, None, nb.neighbors_row_splits)

    # Fit a filter to reproduce the output of a hidden one, by gradient descent.
    hidden = rng.normal(scale=0.3, size=(3, 3, 3, cin, cout)).astype(dtype)
    target, _ = cast("tuple[_Host, float]", _timed("continuous_conv forward (3x3x3, 8 -> 16 ch)", continuous_conv,
                                                   *args(hidden), **common))
    guess = (0.5 * hidden).astype(dtype)
    out = cast("_Host", continuous_conv(*args(guess), **common))
    grads, _ = _timed("continuous_conv_backward (filters + features)", continuous_conv_backward,
                      *args(guess), (out - target) / num_points, **common)
    filters = np.zeros_like(hidden)
    print(f"    |d filters| = {np.linalg.norm(cast('_Host', grads.filters)):.3e}, "
          f"|d features| = {np.linalg.norm(cast('_Host', grads.inp_features)):.3e}")
    print("  fitting the filter to the hidden one with gradient descent (loss = mean squared error):")
    lr = 2.0
    losses: list[float] = []
    t0 = time.perf_counter()
    bar = Progress(steps, "  fitting", show_progress)
    for step in range(steps):
        out = cast("_Host", continuous_conv(*args(filters), **common))
        diff = out - target
        losses.append(float(np.mean(diff.astype(np.float64) ** 2)))
        if len(losses) > 1 and losses[-1] > losses[-2]:
            lr *= 0.5  # too long a step (sparse clouds have few neighbors per point): shorten it
        g = cast("_Host", continuous_conv_backprop_filter(*args(filters), 2 * diff / diff.size * cout, **common))
        filters = filters - lr * g
        bar.update()
        if step % 3 == 0 or step == steps - 1:
            bar.write(f"    step {step:2d}: loss {losses[-1]:.4e}")
    bar.close()
    dt = time.perf_counter() - t0
    print(f"    {steps} steps in {dt:.2f} s; loss reduced {losses[0] / losses[-1]:.1f}x")
    return CconvDemoResult(losses, pts, nb, radius, filters, hidden)


def _rotation(rx: float, ry: float, rz: float) -> npt.NDArray[np.float64]:
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    Rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    Ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    Rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return np.asarray(Rz @ Ry @ Rx, dtype=np.float64)


class PoseDemoResult(NamedTuple):
    """What :func:`pose_demo` computed (for the figures and the tests)."""
    rot_deg: float  # final errors
    trans_mm: float
    history: dict[str, list[float]]  # per step: "loss", "rot_deg", "trans_mm"
    contributions: npt.NDArray[Any]  # (6, H, W) per-pixel gradient maps at the start
    grad: npt.NDArray[Any]  # (6,) the gradient at the start
    instance_index: npt.NDArray[Any]  # (H, W) the object's pixels at the start


def pose_demo(num_threads: Optional[int] = None, iterations: int = 80,
              show_progress: bool = False) -> PoseDemoResult:
    """Render-and-compare pose refinement of a coloured box with the software rasterizer."""
    from .pose.diff import apply_pose_delta, backpropagate_gradient_to_poses
    from .pose.render import render
    from .pose.scene import Camera, Mesh, Scene, SceneObject
    print("\nRender-and-compare pose refinement (software rasterizer, 160x120, exact gradients)")
    s = 160 / 640
    cam = Camera(160, 120, 1066.778 * s, 1067.487 * s, 312.9869 * s, 241.3109 * s)
    mesh = Mesh.box((0.12, 0.1, 0.08))
    true_pose = np.eye(4)
    true_pose[:3, :3] = _rotation(0.5, -0.4, 0.3)
    true_pose[:3, 3] = (0.01, -0.01, 0.5)
    signs = np.random.default_rng(0).choice([-1, 1], 6)
    current = cast("_Host", apply_pose_delta(true_pose, signs * np.array([0.15, 0.1, 0.12, 0.015, 0.01, 0.03])))

    def scene_at(p: npt.NDArray[np.float64]) -> Any:
        return Scene(cam, [SceneObject(mesh, p)], background=(0.2, 0.3, 0.4))

    target = cast("_Host", render(scene_at(true_pose), num_threads=num_threads).rgb)[..., :3] / 255.0
    # Adam-scaled steps: rotation and translation gradients differ by orders of magnitude
    base = np.array([0.01] * 3 + [0.003] * 3)
    m, v = np.zeros(6), np.zeros(6)
    t_render = t_grad = 0.0
    history: dict[str, list[float]] = {"loss": [], "rot_deg": [], "trans_mm": []}
    maps = grad0 = inst0 = np.zeros(0)
    bar = Progress(iterations, "  refining", show_progress)
    rot = trans = 0.0
    for it in range(iterations):
        scene = scene_at(current)
        t0 = time.perf_counter()
        rr = render(scene, num_threads=num_threads)
        t1 = time.perf_counter()
        diff = cast("_Host", rr.rgb)[..., :3] / 255.0 - target
        g_img = np.ascontiguousarray(diff.transpose(2, 0, 1))
        if it == 0:  # the per-pixel maps of the first step, for the figure
            g, con = cast("tuple[_Host, _Host]", backpropagate_gradient_to_poses(
                scene, rr, g_img, num_threads=num_threads, return_contributions=True))
            maps, grad0, inst0 = con[0], g[0], cast("_Host", rr.instance_index).copy()
        else:
            g = cast("_Host", backpropagate_gradient_to_poses(scene, rr, g_img, num_threads=num_threads))
        g = g[0].astype(np.float64)
        t_render += t1 - t0
        t_grad += time.perf_counter() - t1
        dR = true_pose[:3, :3].T @ current[:3, :3]
        rot = float(np.degrees(np.arccos(np.clip((np.trace(dR) - 1) / 2, -1, 1))))
        trans = float(1000 * np.linalg.norm(current[:3, 3] - true_pose[:3, 3]))
        loss = float(0.5 * np.sum(diff ** 2))
        history["loss"].append(loss)
        history["rot_deg"].append(rot)
        history["trans_mm"].append(trans)
        bar.update()
        if it % 20 == 0 or it == iterations - 1:
            bar.write(f"    step {it:2d}: loss {loss:8.3f}, rotation error {rot:6.2f} deg, "
                      f"translation error {trans:6.2f} mm")
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        step = base * 0.985 ** it * (m / (1 - 0.9 ** (it + 1))) / (np.sqrt(v / (1 - 0.999 ** (it + 1))) + 1e-12)
        current = cast("_Host", apply_pose_delta(current, -step))
    bar.close()
    print(f"    per step: render {t_render / max(iterations, 1) * 1e3:.2f} ms, "
          f"pose gradient {t_grad / max(iterations, 1) * 1e3:.2f} ms")
    return PoseDemoResult(rot, trans, history, maps, grad0, inst0)


def save_figures(cc: CconvDemoResult, pz: PoseDemoResult, out_dir: Path,
                 show_progress: bool = False) -> list[Path]:
    """Write the demo's PNG figures (:data:`FIGURES`) into ``out_dir``; returns their paths."""
    from matplotlib.figure import Figure

    from . import plot

    def neighbors() -> Figure:
        fig = Figure(figsize=(11, 5), layout="constrained")
        q = int(np.argmax(np.diff(cc.neighbors.neighbors_row_splits)))  # the most crowded query
        for k, zoom in enumerate((False, True)):
            ax = fig.add_subplot(1, 2, k + 1, projection="3d")
            plot.plot_neighbors(cc.points, cc.neighbors, q, radius=cc.radius, zoom=zoom, ax=ax)
        fig.suptitle("fixed_radius_search on the torus: one query's neighbors (right: zoomed in)")
        return fig

    def filters() -> Figure:
        fig = Figure(figsize=(9, 5), layout="constrained")
        top, bottom = fig.subfigures(2, 1, squeeze=False)[:, 0]
        lim = float(np.abs(cc.hidden[..., 0, 0]).max())  # one colour scale for both
        plot.plot_filter(cc.filters, fig=top, vmax=lim, title=f"fitted filter, in channel 0 -> out channel 0: after "
                         f"{len(cc.losses)} steps the outputs' loss is {cc.losses[0] / cc.losses[-1]:.1f}x lower "
                         "(same colour scale as below)")
        plot.plot_filter(cc.hidden, fig=bottom, vmax=lim, title="hidden filter that made the target outputs")
        return fig

    def loss() -> Figure:
        fig = Figure(figsize=(5, 3.5), layout="constrained")
        ax = fig.add_subplot()
        ax.semilogy(cc.losses, "o-")
        ax.set_xlabel("gradient-descent step")
        ax.set_ylabel("mean squared error")
        ax.set_title("fitting the filter (continuous_conv_backprop_filter)")
        return fig

    def pose_error() -> Figure:
        fig = Figure(figsize=(5.5, 3.5), layout="constrained")
        ax = fig.add_subplot()
        ax.semilogy(pz.history["rot_deg"], label="rotation error (deg)")
        ax.semilogy(pz.history["trans_mm"], label="translation error (mm)")
        ax.set_xlabel("refinement step")
        ax.legend()
        ax.set_title("render-and-compare pose refinement")
        return fig

    def gradients() -> Figure:
        fig = plot.plot_pose_gradients(pz.contributions, pz.grad, outline=pz.instance_index)
        fig.suptitle("per-pixel pose-gradient maps at the first step (black: the object's outline)")
        return fig

    makers = (neighbors, filters, loss, pose_error, gradients)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    bar = Progress(len(makers), "  figures", show_progress)
    for name, make in zip(FIGURES, makers):
        path = out_dir / name
        make().savefig(path, dpi=80)
        paths.append(path)
        bar.update()
    bar.close()
    return paths


def run_demo(num_points: int = 20000, num_threads: Optional[int] = None, out_dir: Optional[str] = "geomops-demo",
             show_progress: Optional[bool] = None, pose_iterations: int = 80) -> int:
    """The demo: print the configuration and the timings, write the figures to ``out_dir``
    (``None``: no figures). ``show_progress=None``: progress bars when stderr is a terminal."""
    from ._config import show_config
    if show_progress is None:
        show_progress = progress_enabled()
    show_config()
    print()
    t0 = time.perf_counter()
    cc = cconv_demo(num_points=num_points, num_threads=num_threads, show_progress=show_progress)
    pz = pose_demo(num_threads=num_threads, iterations=pose_iterations, show_progress=show_progress)
    if out_dir is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("\nfigures skipped: matplotlib is not installed (pip install matplotlib, or "
                  "pip install \"geomops[plot]\")")
        else:
            paths = save_figures(cc, pz, Path(out_dir), show_progress)
            print(f"\nfigures written to {out_dir}/: " + ", ".join(p.name for p in paths))
    print(f"\ndemo finished in {time.perf_counter() - t0:.1f} s")
    return 0

