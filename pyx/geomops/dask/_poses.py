"""Pose refinement of many scenes, one Dask task per scene, gathered as a table."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal, Optional, Union

import numpy as np
from dask.base import compute
from dask.delayed import delayed
from numpy.typing import NDArray

from ..pose.diff import GradientMode
from ..pose.refine import AdamPoseStep, RefineResult, RefineTarget, refine_scene
from ._workers import task_device, task_threads

if TYPE_CHECKING:
    import pandas
    from ..pose.scene import Scene
    from dask.delayed import Delayed
    from distributed import Client

TableKind = Literal["auto", "pandas", "numpy", "rows"]
# a DataFrame, a structured array or a list of dicts, one row per object (see refinement_table)
Table = Union["pandas.DataFrame", NDArray[np.void], list[dict[str, Any]]]

TABLE_COLUMNS = ("scene", "object", "pose", "initial_loss", "loss", "iterations")


def _refine_task(scene: Scene, target: RefineTarget, iterations: int, step: Optional[AdamPoseStep], loss_tol: float,
                 mode: GradientMode, num_threads: Optional[int], device: Optional[str]) -> RefineResult:
    return refine_scene(scene, target, iterations, step=step, loss_tol=loss_tol, mode=mode,
                        num_threads=task_threads(num_threads), device=task_device(device))


def refine_poses_delayed(scenes: Iterable[Union[Scene, Delayed]], targets: Iterable[Union[RefineTarget, Delayed]],
                         iterations: int = 80, *, step: Optional[AdamPoseStep] = None, loss_tol: float = 0.0,
                         mode: GradientMode = "exact", num_threads: Optional[int] = None,
                         device: Optional[str] = None) -> list[Delayed]:
    """One lazy :func:`geomops.pose.refine_scene` per scene.

    Parameters
    ----------
    scenes : sequence of Scene (or of dask.delayed Scenes)
    targets : sequence of images (or RenderResults, or dask.delayed ones), one per scene
    iterations, step, loss_tol, mode
        As for :func:`geomops.pose.refine_scene`.
    num_threads, device
        As for :func:`map_conv` (``device="worker"``: the worker's GPU).

    Returns
    -------
    list of dask.delayed.Delayed
        Of :class:`geomops.pose.RefineResult`, in scene order.
    """
    scenes, targets = list(scenes), list(targets)
    if len(scenes) != len(targets):
        raise ValueError(f"scenes and targets must have the same length, got {len(scenes)} and {len(targets)}")
    if step is not None and not isinstance(step, AdamPoseStep):
        raise TypeError(f"step must be an AdamPoseStep or None, got {type(step).__name__}")
    task_device(None if device == "worker" else device)
    return [delayed(_refine_task, pure=True)(s, t, iterations, step, loss_tol, mode, num_threads, device)
            for s, t in zip(scenes, targets)]


def refinement_table(results: Iterable[RefineResult], keys: Optional[Iterable[Union[int, str]]] = None,
                     kind: TableKind = "auto") -> Table:
    """The results of :func:`refine_poses_delayed` as a table, one row per object.

    Columns: ``scene`` (``keys[i]``, or the scene's position), ``object`` (its position in
    ``scene.objects``), ``pose`` (the refined (4, 4) float64 pose), ``initial_loss``, ``loss``
    (at the refined poses) and ``iterations`` (pose updates made) of its scene.

    Parameters
    ----------
    results : sequence of RefineResult
    keys : sequence or None
        A label per scene (ints or strings).
    kind : {"auto", "pandas", "numpy", "rows"}
        ``"pandas"``: a DataFrame (``pose`` holds (4, 4) arrays); ``"numpy"``: a structured
        array (``pose`` a (4, 4) subarray field); ``"rows"``: a list of dicts; ``"auto"``:
        pandas when it can be imported, else numpy.
    """
    if kind not in ("auto", "pandas", "numpy", "rows"):
        raise ValueError(f"kind must be 'auto', 'pandas', 'numpy' or 'rows', got {kind!r}")
    results = list(results)
    if keys is not None:
        keys = list(keys)
        if len(keys) != len(results):
            raise ValueError(f"keys must have one label per scene ({len(results)}), got {len(keys)}")
    rows = [dict(scene=i if keys is None else keys[i], object=k, pose=pose, initial_loss=r.losses[0],
                 loss=r.losses[-1], iterations=r.iterations)
            for i, r in enumerate(results) for k, pose in enumerate(r.poses)]
    if kind == "auto":
        try:
            import pandas  # noqa: F401
            kind = "pandas"
        except ImportError:
            kind = "numpy"
    if kind == "rows":
        return rows
    if kind == "pandas":
        import pandas
        return pandas.DataFrame(rows, columns=list(TABLE_COLUMNS))
    scene_dtype = np.int64 if keys is None else np.asarray(keys).dtype
    dtype = np.dtype([("scene", scene_dtype), ("object", np.int64), ("pose", np.float64, (4, 4)),
                      ("initial_loss", np.float64), ("loss", np.float64), ("iterations", np.int64)])
    return np.array([tuple(row[c] for c in TABLE_COLUMNS) for row in rows], dtype=dtype)


def refine_poses(scenes: Iterable[Union[Scene, Delayed]], targets: Iterable[Union[RefineTarget, Delayed]],
                 iterations: int = 80, *, keys: Optional[Iterable[Union[int, str]]] = None,
                 client: Optional[Client] = None, retries: int = 0, table: TableKind = "auto",
                 step: Optional[AdamPoseStep] = None, loss_tol: float = 0.0, mode: GradientMode = "exact",
                 num_threads: Optional[int] = None, device: Optional[str] = None) -> Table:
    """Refine the poses of many scenes in parallel and gather the results as a table.

    One task per scene runs :func:`geomops.pose.refine_scene` (render, L2 loss to the
    scene's target image, pose gradients, :class:`geomops.pose.AdamPoseStep`) on a Dask
    cluster; results are bitwise those of calling it scene by scene.

    Parameters
    ----------
    scenes, targets, iterations, step, loss_tol, mode, num_threads
        As for :func:`refine_poses_delayed`.
    keys : sequence or None
        A label per scene for the table's ``scene`` column.
    client : distributed.Client or None
        The cluster; None: the default client if there is one, else dask's local scheduler.
    retries : int
        Dask retries of a failing task (with a client).
    table : {"auto", "pandas", "numpy", "rows"}
        See :func:`refinement_table`.
    device : None, "cpu", "cuda:N" or "worker"
        ``"worker"``: each task on its worker's GPU; the tasks are then submitted with
        ``resources={"GPU": 1}``, so only workers with a GPU resource take them, one at a time each.

    Returns
    -------
    DataFrame, structured ndarray or list of dicts
        One row per object (see :func:`refinement_table`).
    """
    tasks = refine_poses_delayed(scenes, targets, iterations, step=step, loss_tol=loss_tol, mode=mode,
                                 num_threads=num_threads, device=device)
    if client is None:
        try:
            from distributed import get_client
            client = get_client()
        except (ImportError, ValueError):
            client = None
    if client is None:
        results = compute(*tasks)
    else:
        resources = {"GPU": 1} if device == "worker" else None
        results = client.gather(client.compute(tasks, retries=retries, resources=resources))
    return refinement_table(results, keys, table)
