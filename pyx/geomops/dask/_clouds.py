"""Neighbor search + continuous convolution mapped over many point clouds with Dask."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Callable, Literal, NamedTuple, Optional, TypedDict, Union, cast

import numpy as np
from dask.delayed import delayed
from numpy.typing import ArrayLike, NDArray

from .. import _validate as V
from .._cconv_args import COORDINATE_MAPPINGS, INTERPOLATIONS
from .._device import AnyArray, ArrayInput, DeviceArray, is_device_array, to_device
from ..cconv import CoordinateMapping, Interpolation, continuous_conv, continuous_conv_backward
from ..search import METRICS, Metric, fixed_radius_search
from ._workers import task_device, task_threads

if TYPE_CHECKING:
    import dask.array as da
    import dask.bag as db
    from dask.delayed import Delayed

# a Bag of clouds, a dask array of stacked points, or a list (or tuple) of clouds or delayed clouds
_Clouds = Union["db.Bag", "da.Array", Sequence[object]]
_Gradient = tuple[float, NDArray[Any]]  # one cloud's (loss, d loss / d filters)
# the conv's positional arguments: filters, out/inp positions, extents, offset, features, neighbors
_ConvArgs = tuple[ArrayInput, ArrayInput, ArrayInput, ArrayInput, ArrayInput, ArrayInput, None, AnyArray, None,
                  AnyArray]


class _ConvOptions(TypedDict):
    align_corners: bool
    coordinate_mapping: CoordinateMapping
    normalize: bool
    interpolation: Interpolation
    max_temp_mem_MB: int
    num_threads: Optional[int]
    device: Optional[str]


def l2_loss(out: NDArray[Any], target: ArrayLike) -> tuple[float, NDArray[Any]]:
    """``0.5 * sum((out - target)^2)`` (float64) and its gradient ``out - target`` (out's dtype)."""
    t = np.asarray(target)
    if t.shape != out.shape:
        raise ValueError(f"target must have the shape of the cloud's conv output {out.shape}, got {t.shape}")
    d = out.astype(np.float64) - t.astype(np.float64)
    return 0.5 * float(np.sum(d * d)), d.astype(out.dtype)


@dataclasses.dataclass(frozen=True, eq=False)
class CloudConv:
    """What runs on each point cloud: a fixed-radius neighbor search of the cloud in itself and
    a continuous convolution of its features over those neighbors (every point is an input and
    an output point), plus the filter gradient of a loss for training.

    The options mean what they mean for :func:`geomops.continuous_conv`; the search radius is
    ``extent / 2`` (as in :class:`geomops.layers.ContinuousConv`). Immutable: for a training
    step make a new one with ``dataclasses.replace(conv, filters=new_filters)``. Pickles (with
    cloudpickle when ``loss`` is a lambda).

    Parameters
    ----------
    filters : ndarray [D, H, W, Cin, Cout], float32 or float64
        The clouds' points and features must have this dtype. Stored as a read-only copy.
    extent : float
        Filter extent (> 0); neighbors within ``extent / 2``.
    offset : ndarray [3] or None
        Filter offset (only with ``align_corners=False``); None: zeros.
    normalize : bool, default True
        Divide each output row by its neighbor count (the layers' default).
    align_corners, coordinate_mapping, interpolation, max_temp_mem_MB
        As in :func:`geomops.continuous_conv`.
    metric : {"L2", "L1", "Linf"}
        The search metric.
    ignore_query_point : bool
        Leave each point out of its own neighbors.
    loss : callable or None
        ``loss(out, target) -> (value, d value / d out)`` for :meth:`loss_and_gradient`;
        None: :func:`l2_loss`.
    """

    filters: np.ndarray
    extent: float
    offset: Optional[np.ndarray] = None
    normalize: bool = True
    align_corners: bool = True
    coordinate_mapping: CoordinateMapping = "ball_to_cube_radial"
    interpolation: Interpolation = "linear"
    metric: Metric = "L2"
    ignore_query_point: bool = False
    max_temp_mem_MB: int = 64
    loss: Optional[Callable[[np.ndarray, Any], Any]] = None

    def __post_init__(self) -> None:
        filters = V.float_array(self.filters, "filters", ndim=5)
        if isinstance(filters, DeviceArray):  # the conv keeps a read-only host copy and pickles it to the workers
            raise TypeError("filters must be a NumPy array, got a device array; pass filters.get()")
        filters = filters.copy()
        filters.setflags(write=False)
        extent = V.check_real(self.extent, "extent", positive=True)
        offset = np.zeros(3, filters.dtype) if self.offset is None else \
            cast("NDArray[Any]", V.float_array(np.asarray(self.offset, filters.dtype), "offset", shape=(3,))).copy()
        offset.setflags(write=False)
        V.check_option(self.coordinate_mapping, "coordinate_mapping", COORDINATE_MAPPINGS)
        V.check_option(self.interpolation, "interpolation", INTERPOLATIONS)
        V.check_option(self.metric, "metric", METRICS)
        if self.loss is not None and not callable(self.loss):
            raise TypeError(f"loss must be callable or None, got {type(self.loss).__name__}")
        for name, value in (("filters", filters), ("extent", extent), ("offset", offset),
                            ("normalize", V.check_bool(self.normalize, "normalize")),
                            ("align_corners", V.check_bool(self.align_corners, "align_corners")),
                            ("ignore_query_point", V.check_bool(self.ignore_query_point, "ignore_query_point")),
                            ("max_temp_mem_MB", V.check_int(self.max_temp_mem_MB, "max_temp_mem_MB", minimum=0))):
            object.__setattr__(self, name, value)

    # rebuilt by the constructor, so the arrays are read-only again
    def __reduce__(self) -> tuple[type[CloudConv], tuple[object, ...]]:
        return type(self), tuple(getattr(self, f.name) for f in dataclasses.fields(self))

    @property
    def dtype(self) -> np.dtype[Any]:
        """The float dtype of the filters (and of the clouds)."""
        return self.filters.dtype

    @property
    def out_channels(self) -> int:
        return int(self.filters.shape[4])

    @property
    def radius(self) -> float:
        """The search radius, ``extent / 2``."""
        return self.extent / 2

    def _call(self, points: ArrayInput, features: ArrayInput, num_threads: Optional[int],
              device: Optional[str]) -> tuple[_ConvArgs, _ConvOptions]:
        """The search and the conv's arguments and options, every array on ``device``."""
        def put(a: ArrayInput) -> ArrayInput:
            return a if device in (None, "cpu") or is_device_array(a) else to_device(np.asarray(a), device)
        pts = put(points)
        nb = fixed_radius_search(pts, pts, self.radius, metric=self.metric, ignore_query_point=self.ignore_query_point,
                                 num_threads=num_threads, device=device)
        extents = np.full((1, 1), self.extent, self.dtype)
        args = (put(self.filters), pts, put(extents), put(cast("NDArray[Any]", self.offset)), pts, put(features), None,
                nb.neighbors_index, None, nb.neighbors_row_splits)
        options: _ConvOptions = dict(align_corners=self.align_corners, coordinate_mapping=self.coordinate_mapping,
                                     normalize=self.normalize, interpolation=self.interpolation,
                                     max_temp_mem_MB=self.max_temp_mem_MB, num_threads=num_threads, device=device)
        return args, options

    def forward(self, points: ArrayInput, features: ArrayInput, *, num_threads: Optional[int] = None,
                device: Optional[str] = None) -> NDArray[Any]:
        """The conv output of one cloud, ``[N, Cout]`` NumPy (copied back from a GPU).

        ``points`` [N, 3] and ``features`` [N, Cin] in the filters' dtype; ``device`` as for the
        ops (a GPU: the cloud is copied there once and searched and convolved there).
        """
        args, options = self._call(points, features, num_threads, device)
        return _host(continuous_conv(*args, **options))

    def loss_and_gradient(self, points: ArrayInput, features: ArrayInput, target: Any, *,
                          num_threads: Optional[int] = None, device: Optional[str] = None) -> _Gradient:
        """``(loss, d loss / d filters)`` of one cloud: the loss (float) of its conv output
        against ``target`` and the filter gradient (NumPy, the filters' shape and dtype)."""
        args, options = self._call(points, features, num_threads, device)
        out = _host(continuous_conv(*args, **options))
        value, grad = (self.loss or l2_loss)(out, target)
        grad = V.float_array(grad, "the loss gradient", shape=out.shape, dtype=self.dtype)
        if device not in (None, "cpu"):
            grad = to_device(grad, device)
        grads = continuous_conv_backward(*args, grad, wrt={"filters"}, **options)
        return float(value), _host(cast("AnyArray", grads.filters))  # asked for with wrt


def _host(a: AnyArray) -> NDArray[Any]:
    return a.get() if isinstance(a, DeviceArray) else a


class GradientSum(NamedTuple):
    """The training step's reduction over clouds (:func:`conv_gradient`).

    Attributes
    ----------
    loss : float
        The sum of the clouds' losses, added in cloud order in float64.
    filters : ndarray, float64, the filters' shape
        The sum of the clouds' filter gradients, added in cloud order to float64 zeros
        (``total = zeros; for g in gradients: total += g``), so the result is bitwise that of
        the serial loop whatever the partitioning, scheduling or retries.
    clouds : int
        The number of clouds summed.
    """
    loss: float
    filters: np.ndarray
    clouds: int


def _cloud(item: object, with_target: bool) -> tuple[ArrayInput, ArrayInput, Any]:
    """``(points, features, target or None)`` of a cloud given as ``(points, features[, target])``
    or a mapping with those keys."""
    if isinstance(item, Mapping):
        parts: tuple[Any, Any, Any] = (item.get("points"), item.get("features"), item.get("target"))
    elif isinstance(item, (tuple, list)) and len(item) in (2, 3):
        parts = (item[0], item[1], item[2] if len(item) == 3 else None)
    else:
        raise TypeError("a cloud must be (points, features), (points, features, target) or a mapping with keys "
                        f"'points', 'features' (and 'target'), got {type(item).__name__}")
    if parts[0] is None or parts[1] is None:
        raise ValueError("a cloud mapping needs the keys 'points' and 'features'")
    if with_target and parts[2] is None:
        raise ValueError("conv_gradient needs a target for every cloud: (points, features, target)")
    return parts


# ---- task functions (module level, so they pickle by reference) ----------------------------------

def _forward_clouds(clouds: Iterable[object], conv: CloudConv, num_threads: Optional[int],
                    device: Optional[str]) -> list[NDArray[Any]]:
    nt, dev = task_threads(num_threads), task_device(device)
    return [conv.forward(*_cloud(c, False)[:2], num_threads=nt, device=dev) for c in clouds]


def _forward_cloud(cloud: object, conv: CloudConv, num_threads: Optional[int], device: Optional[str]) -> NDArray[Any]:
    return _forward_clouds([cloud], conv, num_threads, device)[0]


def _forward_block(points: NDArray[Any], features: NDArray[Any], conv: CloudConv, num_threads: Optional[int],
                   device: Optional[str]) -> NDArray[Any]:
    """map_blocks: [b, N, 3] and [b, N, Cin] -> [b, N, Cout], one cloud at a time."""
    nt, dev = task_threads(num_threads), task_device(device)
    out = np.empty(points.shape[:2] + (conv.out_channels,), conv.dtype)
    for i in range(points.shape[0]):
        out[i] = conv.forward(points[i], features[i], num_threads=nt, device=dev)
    return out


def _gradient_clouds(clouds: Iterable[object], conv: CloudConv, num_threads: Optional[int],
                     device: Optional[str]) -> list[_Gradient]:
    nt, dev = task_threads(num_threads), task_device(device)
    return [conv.loss_and_gradient(*_cloud(c, True), num_threads=nt, device=dev) for c in clouds]


def _gradient_block(points: NDArray[Any], features: NDArray[Any], targets: NDArray[Any], conv: CloudConv,
                    num_threads: Optional[int], device: Optional[str]) -> list[_Gradient]:
    nt, dev = task_threads(num_threads), task_device(device)
    return [conv.loss_and_gradient(points[i], features[i], targets[i], num_threads=nt, device=dev)
            for i in range(points.shape[0])]


def _fold(acc: Optional[GradientSum], results: Iterable[_Gradient], shape: tuple[int, ...]) -> GradientSum:
    """``acc`` (a GradientSum or None) plus each ``(loss, gradient)`` of ``results`` in order."""
    if acc is None:
        loss, total, count = 0.0, np.zeros(shape, np.float64), 0
    else:  # a copy: acc is another task's result and stays unchanged
        loss, total, count = acc.loss, acc.filters.copy(), acc.clouds
    for value, grad in results:
        loss += value
        total += grad
        count += 1
    return GradientSum(loss, total, count)


# ---- the collections ------------------------------------------------------------------------------

def _kind(clouds: object) -> Literal["bag", "array", "list"]:
    import dask.array as da
    import dask.bag as db
    if isinstance(clouds, db.Bag):
        return "bag"
    if isinstance(clouds, da.Array):
        return "array"
    if isinstance(clouds, (list, tuple)):
        return "list"
    raise TypeError("clouds must be a dask.bag.Bag of clouds, a list of clouds or of dask.delayed clouds, or a "
                    f"dask.array.Array of stacked points, got {type(clouds).__name__}")


def _check_conv(conv: object) -> None:
    if not isinstance(conv, CloudConv):
        raise TypeError(f"conv must be a geomops.dask.CloudConv, got {type(conv).__name__}")


def _blocks(conv: CloudConv, points: da.Array, features: Optional[da.Array],
            targets: Optional[da.Array] = None) -> list[da.Array]:
    """The dask arrays of stacked clouds, checked and with one chunk along every axis but the
    first (whose chunks are kept): ``(points, features[, targets])``."""
    import dask.array as da
    arrays: dict[str, Optional[da.Array]] = {"points": points, "features": features}
    if targets is not None:
        arrays["targets"] = targets
    out = []
    for name, a in arrays.items():
        if not isinstance(a, da.Array):
            raise TypeError(f"with a dask array of points, {name} must be a dask array too, got {type(a).__name__}")
        if a.ndim != 3 or a.shape[:2] != points.shape[:2]:
            raise ValueError(f"{name} must have shape [B, N, C] with the points' B and N {points.shape[:2]}, got "
                             f"{a.shape}")
        out.append(a.rechunk({0: points.chunks[0], 1: -1, 2: -1}))
    features = cast("da.Array", features)  # checked in the loop
    if points.shape[2] != 3:
        raise ValueError(f"points must have shape [B, N, 3], got {points.shape}")
    if features.shape[2] != conv.filters.shape[3]:
        raise ValueError(f"features must have the filters' {conv.filters.shape[3]} input channels, got "
                         f"{features.shape[2]}")
    return out


def _shared(conv: CloudConv) -> Delayed:
    """``conv`` as one graph key that every task reads (sent once per worker, not once per task)."""
    return cast("Delayed", delayed(conv, traverse=False))


def map_conv(conv: CloudConv, clouds: _Clouds, features: Optional[da.Array] = None, *,
             num_threads: Optional[int] = None, device: Optional[str] = None) -> Union[db.Bag, list[Delayed], da.Array]:
    """Search + convolution of every cloud, lazily, keeping the collection's partitioning.

    Parameters
    ----------
    conv : CloudConv
    clouds : dask.bag.Bag, list, or dask.array.Array
        A Bag of clouds, or a list of clouds (each ``(points, features)``, or a mapping with
        keys ``points`` and ``features``; items may be ``dask.delayed``), of any sizes. Or a
        dask array ``[B, N, 3]`` of B stacked clouds of N points (then ``features`` is the
        ``[B, N, Cin]`` dask array).
    features : dask.array.Array or None
        Only with a dask array of points.
    num_threads : int or None
        OpenMP threads per task; None: :func:`task_threads` (the worker's share of the cores).
    device : None, "cpu", "cuda:N" or "worker"
        Where each task runs its ops; ``"worker"``: the GPU that :func:`configure` chose for
        the worker running it (compute with ``resources={"GPU": 1}`` so that only GPU workers
        take the tasks).

    Returns
    -------
    dask.bag.Bag, list of dask.delayed.Delayed, or dask.array.Array
        The ``[N, Cout]`` outputs: a Bag with the same partitions, a list of one Delayed per
        cloud, or a ``[B, N, Cout]`` dask array with the points' chunks along B (computed by
        ``map_blocks``). Bitwise what :meth:`CloudConv.forward` gives cloud by cloud.
    """
    _check_conv(conv)
    task_device(None if device == "worker" else device)  # a bad device fails here, not in every task
    kind = _kind(clouds)
    if kind == "array":
        points, features = _blocks(conv, cast("da.Array", clouds), features)  # _kind checked it
        # (dask wraps Array.map_blocks in functools.wraps, whose typeshed stub does not bind self)
        return cast("da.Array", points.map_blocks(_forward_block, features, conv=conv,  # type: ignore[arg-type]
                                                  num_threads=num_threads, device=device,
                                                  chunks=(points.chunks[0], points.chunks[1], (conv.out_channels,)),
                                                  dtype=conv.dtype, meta=np.empty((0, 0, 0), conv.dtype)))
    if features is not None:
        raise TypeError("features is only given with a dask array of points; clouds carry their own features")
    shared = _shared(conv)
    if kind == "bag":
        bag = cast("db.Bag", clouds)  # _kind checked it
        return cast("db.Bag", bag.map_partitions(_forward_clouds, shared, num_threads, device))
    return [delayed(_forward_cloud, pure=True)(c, shared, num_threads, device) for c in clouds]


def conv_gradient(conv: CloudConv, clouds: _Clouds, features: Optional[da.Array] = None,
                  targets: Optional[da.Array] = None, *, num_threads: Optional[int] = None,
                  device: Optional[str] = None) -> Delayed:
    """The loss and filter gradient summed over clouds (one training step's reduction), lazily.

    Each cloud's ``(loss, d loss / d filters)`` comes from :meth:`CloudConv.loss_and_gradient`
    in parallel; they are then added in cloud order by a chain of small tasks, one per
    partition, each adding its partition's results to the previous partial sum. So the result
    is bitwise the serial loop ``for cloud: total += gradient(cloud)`` (see :class:`GradientSum`)
    for any partitioning, worker count or retry.

    Parameters
    ----------
    conv : CloudConv
    clouds : dask.bag.Bag, list, or dask.array.Array
        As for :func:`map_conv`, each cloud with its target: ``(points, features, target)``
        (target ``[N, Cout]``, or whatever ``conv.loss`` takes) or a mapping with a ``target``
        key; for a dask array of points, ``features`` and ``targets`` are dask arrays.
    features, targets : dask.array.Array or None
        Only with a dask array of points.
    num_threads, device
        As for :func:`map_conv`.

    Returns
    -------
    dask.delayed.Delayed
        Of a :class:`GradientSum`.
    """
    _check_conv(conv)
    task_device(None if device == "worker" else device)
    kind = _kind(clouds)
    shape = conv.filters.shape
    shared = _shared(conv)
    if kind == "array":
        if targets is None:
            raise TypeError("targets (a dask array [B, N, Cout]) must be given with a dask array of points")
        points, features, targets = _blocks(conv, cast("da.Array", clouds), features, targets)  # _kind checked it
        parts = [delayed(_gradient_block, pure=True)(p, f, t, shared, num_threads, device)
                 for p, f, t in zip(points.to_delayed().ravel(), features.to_delayed().ravel(),
                                    targets.to_delayed().ravel())]
    else:
        if features is not None or targets is not None:
            raise TypeError("features and targets are only given with a dask array of points; clouds carry their "
                            "own")
        items = cast("db.Bag", clouds).to_delayed() if kind == "bag" else [[c] for c in clouds]  # _kind checked it
        parts = [delayed(_gradient_clouds, pure=True)(p, shared, num_threads, device) for p in items]
    acc: Optional[Delayed] = None
    for part in parts:
        acc = delayed(_fold, pure=True)(acc, part, shape)
    return acc if acc is not None else delayed(_fold, pure=True)(None, [], shape)
