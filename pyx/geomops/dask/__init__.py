"""geomops on Dask: many point clouds and many scenes on a cluster (docs/scale_out.md).

Needs ``dask[distributed]`` (``pip install "geomops[dask]"``); ``import geomops`` never
imports it.

* :class:`CloudConv`, :func:`map_conv`, :func:`conv_gradient` -- neighbor search + continuous
  convolution over a ``dask.bag`` or a list of (delayed) clouds of any sizes, or over a
  ``dask.array`` of stacked clouds (``map_blocks``), keeping the partitioning; the training
  step's loss and filter gradient summed over clouds in a fixed order (bitwise the serial loop).
* :func:`refine_poses` -- render-and-compare pose refinement of many scenes, one task per
  scene, gathered as a table (:func:`refine_poses_delayed`, :func:`refinement_table`).
* :func:`configure` / :class:`GeomopsWorkerPlugin` -- per worker, the OpenMP threads of a task
  (workers x threads x OpenMP threads never exceed the cores) and its GPU (``device="worker"``);
  :func:`task_threads` and :func:`task_device` give them to your own tasks.

Every helper passes ``num_threads`` and ``device`` explicitly to the ops, and geomops' results
do not depend on the thread count, so a cluster computes bitwise what the serial loop computes
(on the CPU).
"""

try:
    import dask  # noqa: F401
    import distributed  # noqa: F401
except ImportError as exc:
    raise ImportError(f"geomops.dask needs dask[distributed] ({exc}); install it with "
                      "pip install \"geomops[dask]\"") from exc

from ._clouds import CloudConv, GradientSum, conv_gradient, l2_loss, map_conv
from ._poses import refine_poses, refine_poses_delayed, refinement_table
from ._workers import (DEVICE_ENV, GeomopsWorkerPlugin, WorkerSettings, configure, pick_device, split_threads,
                       task_device, task_threads, worker_settings)

__all__ = ["CloudConv", "GradientSum", "map_conv", "conv_gradient", "l2_loss", "refine_poses",
           "refine_poses_delayed", "refinement_table", "configure", "GeomopsWorkerPlugin", "WorkerSettings",
           "split_threads", "pick_device", "task_threads", "task_device", "worker_settings", "DEVICE_ENV"]
