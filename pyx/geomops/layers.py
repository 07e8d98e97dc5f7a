"""Framework-free layers: Open3D-ML's continuous-convolution and neighbor-search layers for NumPy.

:class:`ContinuousConv`, :class:`ContinuousConvTranspose`, :class:`FixedRadiusSearch`,
:class:`RadiusSearch` and :class:`KNNSearch` take Open3D's constructor arguments and call
arguments. Each layer owns its parameters (plain NumPy arrays, also in :attr:`params`), and
``backward()`` returns the gradients of everything the call depended on::

    layer = ContinuousConv(in_channels=8, filters=16, kernel_size=3, seed=0)
    out = layer(feats, pts, pts, extents=0.1)       # remembers this call (per thread)
    grads = layer.backward(dloss_dout)
    layer.kernel -= lr * grads.kernel                # or: for k, g in layer.grads.items() ...

One layer may be shared by several threads: ``layer(...)`` remembers the last call *of the
calling thread*, and :meth:`ContinuousConv.forward` returns the call's context explicitly
instead (``out, ctx = layer.forward(...)``; ``layer.backward(g, ctx)``), for when one thread
interleaves calls. Pickling keeps the configuration and the parameters, never a call's arrays;
:meth:`save` / :meth:`load` write and read the parameters with :func:`numpy.savez`.

The search layers also take device arrays (``geomops.to_device``, CuPy, ...): their ops run on
the device and return DeviceArrays, and ``backward()`` returns DeviceArrays (computed on the
host). The convolution layers, whose parameters, activation and window function are NumPy,
refuse device arrays with a TypeError naming the argument (``geomops.torch.layers`` runs on CUDA
tensors).
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Collection, Sequence
from typing import IO, Any, Generic, Literal, NamedTuple, Optional, TypedDict, TypeVar, Union, cast, overload

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from . import _validate as V
from ._cconv_args import COORDINATE_MAPPINGS, INTERPOLATIONS
from . import _device
from . import _layer_args
from ._device import AnyArray
from .cconv import (CoordinateMapping, Interpolation, continuous_conv, continuous_conv_backward,
                    continuous_conv_transpose, continuous_conv_transpose_backward, invert_neighbors_list,
                    reduce_subarrays_sum)
from .search import (METRICS, Metric, NeighborSearchResult, SpatialHashTable, _index_dtype, fixed_radius_search,
                     knn_search, radius_search)

__all__ = ["ContinuousConv", "ContinuousConvTranspose", "FixedRadiusSearch", "RadiusSearch", "KNNSearch",
           "LayerContext", "ContinuousConvLayerGradients", "ContinuousConvTransposeLayerGradients",
           "NeighborSearchGradients"]

_POSITION_NAMES = ("inp_positions", "out_positions", "extents")

ArrayFunction = Callable[[NDArray[Any]], NDArray[Any]]
"""An elementwise function of an array (activation, window function, their derivatives)."""
Activation = Union[Literal["relu", "tanh", "sigmoid"], ArrayFunction]
"""A layer's ``activation``: a known name or an elementwise callable."""
_Derivative = Callable[[NDArray[Any], NDArray[Any]], NDArray[Any]]  # (pre-activation, output) -> derivative
_FloatArray = NDArray[np.floating[Any]]  # a layer's float32 or float64 arrays
_Rows = NDArray[np.integer[Any]]
# The layers run on the host: the ops they call return NumPy arrays here (``cast`` from AnyArray).
# ``ContinuousConv``'s op arguments (continuous_conv's positional ones), kept for the backward:
_ConvArgs = tuple[_FloatArray, _FloatArray, _FloatArray, _FloatArray, _FloatArray, _FloatArray, Optional[ArrayLike],
                  ArrayLike, Optional[ArrayLike], ArrayLike]
# ``ContinuousConvTranspose``'s (continuous_conv_transpose's positional ones):
_TransposeArgs = tuple[_FloatArray, _FloatArray, Optional[ArrayLike], _FloatArray, _FloatArray, _FloatArray,
                       _FloatArray, AnyArray, Optional[AnyArray], ArrayLike, AnyArray, Optional[AnyArray], AnyArray]
_Out = TypeVar("_Out")
_G = TypeVar("_G")
_Radius = TypeVar("_Radius", float, NDArray[np.float64])  # one radius, or one per entry


class _RadiusOptions(TypedDict):
    """The keyword arguments of a convolution layer's neighbor search."""
    metric: Metric
    ignore_query_point: bool
    return_distances: bool
    num_threads: Optional[int]


class _SearchOptions(_RadiusOptions):
    """The keyword arguments a search layer passes to its op."""
    index_dtype: np.dtype[Any]


class _ConvOptions(TypedDict):
    """The keyword arguments a convolution layer passes to its op."""
    align_corners: bool
    coordinate_mapping: CoordinateMapping
    interpolation: Interpolation
    normalize: bool
    max_temp_mem_MB: int
    num_threads: Optional[int]


# ---- activations -------------------------------------------------------------------------------
# Each known activation is (function, derivative(pre_activation, output)).

def _sigmoid(x: NDArray[Any]) -> NDArray[Any]:
    return 0.5 * (np.tanh(0.5 * x) + 1)  # no overflow for large |x|


_KNOWN_ACTIVATIONS: dict[str, tuple[ArrayFunction, _Derivative]] = {
    "relu": (lambda x: np.maximum(x, 0), lambda pre, out: (pre > 0).astype(pre.dtype)),
    "tanh": (np.tanh, lambda pre, out: 1 - out * out),
    "sigmoid": (_sigmoid, lambda pre, out: out * (1 - out)),
}
_KNOWN_CALLABLES: dict[object, str] = {np.tanh: "tanh"}


def _activation(activation: Optional[Activation], derivative: Optional[ArrayFunction]
                ) -> tuple[Optional[ArrayFunction], Optional[_Derivative]]:
    """``(function or None, derivative(pre, out) or None)`` of an ``activation``
    argument: None, a name ("relu", "tanh", "sigmoid") or any callable (np.tanh is known; for
    another callable the derivative comes from ``activation_derivative``)."""
    if derivative is not None and not callable(derivative):
        raise TypeError("activation_derivative must be callable or None")
    if activation is None:
        return None, None
    if isinstance(activation, str):
        if activation not in _KNOWN_ACTIVATIONS:
            raise ValueError(f"activation must be None, a callable or one of {tuple(_KNOWN_ACTIVATIONS)} but got "
                             f"{activation!r}")
        return _KNOWN_ACTIVATIONS[activation]
    if not callable(activation):
        raise TypeError(f"activation must be None, a name or a callable, got {type(activation).__name__}")
    if derivative is not None:
        return activation, (lambda pre, out: derivative(pre))
    known = _KNOWN_CALLABLES.get(activation)
    return activation, (_KNOWN_ACTIVATIONS[known][1] if known else None)


def _kernel_size(kernel_size: Union[int, Sequence[int]]) -> tuple[int, ...]:
    """``kernel_size`` as 3 ints (z, y, x); one int means a cube, as in Open3D."""
    sizes = np.atleast_1d(np.asarray(kernel_size)).tolist()
    if len(sizes) == 1:
        sizes = sizes * 3
    if len(sizes) != 3:
        raise ValueError(f"kernel_size must be an int or have 3 entries (depth, height, width), got {kernel_size!r}")
    return tuple(V.check_int(k, "kernel_size", minimum=1) for k in sizes)


def _float_param(x: object, name: str, dtype: np.dtype[Any], *, length: Optional[int] = None,
                 per: Optional[str] = None) -> _FloatArray:
    """``x`` (a real scalar, or with ``length`` also a [length] array) as a finite array of the
    layer's ``dtype``; ``per`` says what the entries are one per, for the messages."""
    a = V.as_array(x, name)
    if a.dtype == np.bool_ or not V._convertible(a.dtype):
        raise TypeError(f"{name} must be real (float or int), got dtype {a.dtype}")
    _layer_args.scalar_or_vector(a.shape, name, length, per)
    with np.errstate(over="ignore"):  # out of dtype's range: reported below as not finite
        out = np.asarray(a, dtype=dtype, order="C")  # keeps a 0-d array 0-d
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name} must be finite in {np.dtype(dtype)} (found NaN, inf or a value beyond its range)")
    return cast("_FloatArray", out)


def _user_lists(index: object, row_splits: object, importance: object, rows: tuple[str, _FloatArray],
                points: tuple[str, _FloatArray], dtype: np.dtype[Any]
                ) -> tuple[AnyArray, AnyArray, Optional[_FloatArray]]:
    """Validated user neighbor lists (messages name the user_* arguments): for each row of
    ``rows = (name, array)``, indices into ``points = (name, array)``."""
    if row_splits is None:
        raise ValueError("user_neighbors_row_splits must be given with user_neighbors_index")
    idx = V.index_array(index, "user_neighbors_index", num_points=points[1].shape[0], points_of=points[0])
    rs = V.row_splits(row_splits, "user_neighbors_row_splits", num_rows=rows[1].shape[0], rows_of=rows[0],
                      total=idx.shape[0], total_of="user_neighbors_index")
    imp = V.optional_float(importance, "user_neighbors_importance", length=idx.shape[0], dtype=dtype,
                           length_of="user_neighbors_index")
    return idx, rs, cast("Optional[_FloatArray]", imp)


def _kernel_bytes(ks: tuple[int, ...], in_channels: int, filters: int, dtype: np.dtype[Any]) -> None:
    """Refuse (MemoryError naming the arguments) a kernel the host cannot hold; the float64 draws of
    the initialisation come first."""
    n = ks[0] * ks[1] * ks[2] * in_channels * filters
    V.check_host_bytes(n * (8 + np.dtype(dtype).itemsize),
                       f"the kernel of kernel_size={ks}, in_channels={in_channels}, filters={filters}")
    if n * 8 > np.iinfo(np.intp).max:
        raise MemoryError(f"the kernel of kernel_size={ks}, in_channels={in_channels}, filters={filters} needs "
                          f"{n * 8} bytes, more than an address space holds")


# ---- the derivative of neighbor distances ------------------------------------------------------

def _entry_rows(row_splits: ArrayLike) -> _Rows:
    """The row (query) of every entry of a compressed neighbor list."""
    rs = np.asarray(row_splits)
    return np.repeat(np.arange(rs.shape[0] - 1), np.diff(rs))


def _distance_derivative(metric: Metric, queries: NDArray[np.float64], points: NDArray[np.float64], rows: _Rows,
                         cols: _Rows) -> NDArray[np.float64]:
    """``d dist_n / d queries[rows[n]]`` for each entry, shape [E, 3] (the derivative w.r.t.
    ``points[cols[n]]`` is its negative). L2 distances are squared; L1 and Linf take the sign
    (Linf: of the first largest coordinate); the derivative at a kink is that one-sided choice."""
    diff = queries[rows] - points[cols]
    if metric == "L2":
        return 2 * diff
    if metric == "L1":
        return np.sign(diff)
    out = np.zeros_like(diff)
    k = np.argmax(np.abs(diff), axis=1)
    e = np.arange(diff.shape[0])
    out[e, k] = np.sign(diff[e, k])
    return out


def _scatter_rows(values: NDArray[np.float64], index: _Rows, n: int) -> NDArray[np.float64]:
    """``out[index[e]] += values[e]`` for [E, 3] values into [n, 3] (float64 bincount)."""
    out = np.empty((n, 3), np.float64)
    for c in range(3):
        out[:, c] = np.bincount(index, weights=values[:, c], minlength=n)
    return out


@overload
def _distance_grads(metric: Metric, queries: ArrayLike, points: ArrayLike, index: ArrayLike, row_splits: ArrayLike,
                    grad_distance: ArrayLike, *, rows: None = None
                    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]: ...
@overload
def _distance_grads(metric: Metric, queries: ArrayLike, points: ArrayLike, index: ArrayLike, row_splits: None,
                    grad_distance: ArrayLike, *, rows: _Rows) -> tuple[NDArray[np.float64], NDArray[np.float64]]: ...


def _distance_grads(metric: Metric, queries: ArrayLike, points: ArrayLike, index: ArrayLike,
                    row_splits: Optional[ArrayLike], grad_distance: ArrayLike, *, rows: Optional[_Rows] = None
                    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Gradients of ``sum(distance * grad_distance)`` w.r.t. queries and points (float64)."""
    rows = _entry_rows(cast("ArrayLike", row_splits)) if rows is None else rows  # the overloads: one is given
    cols = np.asarray(index, np.int64)
    queries, points = np.asarray(queries, np.float64), np.asarray(points, np.float64)
    d = _distance_derivative(metric, queries, points, rows, cols) * np.asarray(grad_distance, np.float64)[:, None]
    return _scatter_rows(d, rows, queries.shape[0]), -_scatter_rows(d, cols, points.shape[0])


def _radius_scale(metric: Metric, radius: _Radius) -> _Radius:
    """What a distance is divided by to be 1 at the search radius: r^2 for (squared) L2, r otherwise."""
    return radius * radius if metric == "L2" else radius


def _d_scale_d_radius(metric: Metric, radius: _Radius) -> Union[float, NDArray[np.float64]]:
    return 2 * radius if metric == "L2" else np.ones_like(radius)


_Method = TypeVar("_Method", bound=Callable[..., Any])


def _ieee(method: _Method) -> _Method:
    """Run a layer's forward/backward with NumPy's floating-point warnings off: like the ops'
    kernels, the NumPy steps (dense center, bias, activation, gradients) let NaN and inf in the
    feature data propagate and overflow round to inf, as IEEE arithmetic says; positions and
    extents are checked."""
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return method(*args, **kwargs)
    return cast("_Method", wrapper)


# ---- the layer base ----------------------------------------------------------------------------

class LayerContext:
    """What one call of a layer keeps for its backward (returned by ``forward``; opaque)."""

    __slots__ = ("layer", "data")

    def __init__(self, layer: _Layer[Any], **data: object) -> None:
        self.layer = layer
        self.data = data

    def __getattr__(self, name: str) -> Any:
        try:
            return self.data[name]
        except KeyError:
            raise AttributeError(name) from None

    def __reduce__(self) -> Any:
        raise TypeError("a LayerContext holds one call's arrays and is not pickled; pickle the layer instead")


class _Layer(Generic[_Out]):
    """Shared machinery: per-thread last call, params/grads dicts, pickling, np.savez save/load."""

    forward: Callable[..., tuple[_Out, LayerContext]]

    _PARAM_NAMES: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._local = threading.local()

    def __call__(self, *args: Any, **kwargs: Any) -> _Out:
        """Apply the layer and remember the call (per thread) for :meth:`backward` (see :meth:`forward`)."""
        out, ctx = self.forward(*args, **kwargs)
        self._local.context = ctx
        return out

    def _context(self, context: Optional[LayerContext]) -> LayerContext:
        if context is None:
            context = getattr(self._local, "context", None)
            if context is None:
                raise RuntimeError(f"call the layer in this thread before backward() (or pass the context that "
                                   f"{type(self).__name__}.forward returned)")
        elif not isinstance(context, LayerContext) or context.layer is not self:
            raise ValueError("context must be a LayerContext returned by this layer's forward()")
        return context

    def _store_grads(self, grads: _G) -> _G:
        self._local.grads = {n: getattr(grads, n) for n in self._PARAM_NAMES if getattr(grads, n) is not None}
        return grads

    @property
    def params(self) -> dict[str, _FloatArray]:
        """The parameters by name (the arrays themselves: update them in place)."""
        return {n: getattr(self, n) for n in self._PARAM_NAMES if getattr(self, n) is not None}

    @property
    def grads(self) -> dict[str, _FloatArray]:
        """The parameters' gradients of the last :meth:`backward` of the calling thread, by name."""
        grads: Optional[dict[str, _FloatArray]] = getattr(self._local, "grads", None)
        if grads is None:
            raise RuntimeError("no backward() has run in this thread yet")
        return grads

    def save(self, file: Union[str, os.PathLike[str], IO[bytes]]) -> None:
        """Write the parameters with :func:`numpy.savez` (a path or a file object)."""
        np.savez(file, **cast("dict[str, Any]", self.params))  # (no parameter is named allow_pickle)

    def load(self, file: Union[str, os.PathLike[str], IO[bytes]]) -> None:
        """Read parameters written by :meth:`save` into this layer's arrays (in place, so references
        held elsewhere, e.g. by an optimiser, stay valid). Names, shapes and dtypes must match."""
        params = self.params
        with np.load(file) as data:
            names = set(data.files)
            if names != set(params):
                raise ValueError(f"the file has parameters {sorted(names)}, but this layer has {sorted(params)}")
            for name, arr in params.items():
                value = data[name]
                if value.shape != arr.shape or value.dtype != arr.dtype:
                    raise ValueError(f"parameter {name!r}: the file has shape {value.shape} and dtype {value.dtype}, "
                                     f"the layer {arr.shape} and {arr.dtype}")
                arr[...] = value

    def __getstate__(self) -> dict[str, Any]:  # the configuration and the parameters, never a call's arrays
        state = self.__dict__.copy()
        state.pop("_local", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()


# ---- continuous convolutions -------------------------------------------------------------------

class ContinuousConvLayerGradients(NamedTuple):
    """Gradients returned by :meth:`ContinuousConv.backward` (None: not asked for or not given)."""
    kernel: Optional[_FloatArray]
    bias: Optional[_FloatArray]
    dense_kernel: Optional[_FloatArray]
    inp_features: Optional[_FloatArray]
    inp_importance: Optional[_FloatArray]
    inp_positions: Optional[_FloatArray] = None
    out_positions: Optional[_FloatArray] = None
    extents: Optional[_FloatArray] = None


class ContinuousConvTransposeLayerGradients(NamedTuple):
    """Gradients returned by :meth:`ContinuousConvTranspose.backward` (None: not asked for or not given)."""
    kernel: Optional[_FloatArray]
    bias: Optional[_FloatArray]
    dense_kernel: Optional[_FloatArray]
    inp_features: Optional[_FloatArray]
    out_importance: Optional[_FloatArray]
    inp_positions: Optional[_FloatArray] = None
    out_positions: Optional[_FloatArray] = None
    extents: Optional[_FloatArray] = None


class _ConvLayer(_Layer[_FloatArray]):
    """What ContinuousConv and ContinuousConvTranspose share: parameters, options, activation,
    the neighbor search and the window function."""

    _PARAM_NAMES = ("kernel", "bias", "dense_kernel")
    _IMPORTANCE = "inp_importance"

    def __init__(self, in_channels: int, filters: int, kernel_size: Union[int, Sequence[int]], *,
                 activation: Optional[Activation] = None, use_bias: bool = True, align_corners: bool = True,
                 coordinate_mapping: CoordinateMapping = "ball_to_cube_radial", interpolation: Interpolation = "linear",
                 normalize: bool = True, radius_search_ignore_query_points: bool = False,
                 radius_search_metric: Metric = "L2", offset: Optional[ArrayLike] = None,
                 window_function: Optional[ArrayFunction] = None, use_dense_layer_for_center: bool = False,
                 dtype: DTypeLike = np.float32, seed: Optional[int] = None, max_temp_mem_MB: int = 64,
                 num_threads: Optional[int] = None, activation_derivative: Optional[ArrayFunction] = None,
                 window_function_derivative: Optional[ArrayFunction] = None) -> None:
        super().__init__()
        self.in_channels = V.check_int(in_channels, "in_channels", minimum=1)
        self.filters = V.check_int(filters, "filters", minimum=1)
        self.kernel_size = ks = _kernel_size(kernel_size)
        self.activation = activation
        self.activation_derivative = activation_derivative
        self._act, self._act_derivative = _activation(activation, activation_derivative)
        try:
            self.dtype = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
        if self.dtype not in V.FLOAT_DTYPES:
            raise TypeError(f"dtype must be float32 or float64, got {self.dtype}")
        _kernel_bytes(ks, self.in_channels, self.filters, self.dtype)
        V.check_bool(use_bias, "use_bias")
        V.check_bool(use_dense_layer_for_center, "use_dense_layer_for_center")
        V.check_bool(align_corners, "align_corners")
        V.check_bool(normalize, "normalize")
        V.check_option(coordinate_mapping, "coordinate_mapping", COORDINATE_MAPPINGS)
        V.check_option(interpolation, "interpolation", INTERPOLATIONS)
        _layer_args.radius_search_metric(radius_search_metric)
        if window_function is not None and not callable(window_function):
            raise TypeError("window_function must be callable or None")
        if window_function_derivative is not None and not callable(window_function_derivative):
            raise TypeError("window_function_derivative must be callable or None")
        self.conv_options: _ConvOptions = dict(align_corners=align_corners, coordinate_mapping=coordinate_mapping,
                                               interpolation=interpolation, normalize=normalize,
                                               max_temp_mem_MB=max_temp_mem_MB, num_threads=num_threads)
        self.radius_search_ignore_query_points = V.check_bool(radius_search_ignore_query_points,
                                                              "radius_search_ignore_query_points")
        self.radius_search_metric = radius_search_metric
        self.window_function = window_function
        self.window_function_derivative = window_function_derivative
        self.num_threads = num_threads
        rng = np.random.default_rng(seed)
        self.kernel = rng.uniform(-0.05, 0.05, ks + (self.in_channels, self.filters)).astype(self.dtype)
        self.bias = np.zeros(self.filters, self.dtype) if use_bias else None
        self.dense_kernel = (rng.uniform(-0.05, 0.05, (self.in_channels, self.filters)).astype(self.dtype)
                             if use_dense_layer_for_center else None)
        self.offset: _FloatArray = np.zeros(3, self.dtype) if offset is None else \
            _float_param(offset, "offset", self.dtype, length=3, per="axis")
        if self.offset.ndim == 0:
            raise ValueError("offset must have shape [3] (x, y, z), got a scalar")
        self._avg_neighbors: Optional[float] = None

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        # the built-in activations are lambdas: rebuilt from the arguments on unpickling
        state.pop("_act", None)
        state.pop("_act_derivative", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._act, self._act_derivative = _activation(self.activation, self.activation_derivative)

    # -- inputs --------------------------------------------------------------------------------

    def _host_only(self, **arrays: object) -> None:
        """Refuse device arrays up front (TypeError naming the argument): the layer's parameters,
        dense center, bias, activation and window function are NumPy arrays and functions."""
        for name, x in arrays.items():
            if _device.is_device_array(x):
                layer = type(self).__name__
                op = "continuous_conv" if layer == "ContinuousConv" else "continuous_conv_transpose"
                raise TypeError(f"{name} is a device array ({type(x).__name__}): geomops.layers.{layer} runs on "
                                f"NumPy arrays; pass a host copy (DeviceArray.get()), or on the GPU use "
                                f"geomops.torch.layers.{layer} with CUDA tensors or the op geomops.{op} with "
                                "device arrays")

    def _inputs(self, inp_features: ArrayLike, inp_positions: ArrayLike, out_positions: ArrayLike, extents: ArrayLike,
                per: Literal["input", "output"]) -> tuple[_FloatArray, _FloatArray, _FloatArray, _FloatArray]:
        """Validated features, positions and extents (a scalar or one per ``per`` point)."""
        dt, layer = self.dtype, "the layer"
        feats = cast("_FloatArray", V.float_array(inp_features, "inp_features", ndim=2, dtype=dt, dtype_of=layer))
        _layer_args.feature_channels(feats.shape, self.in_channels)
        xi = cast("_FloatArray", V.float_array(inp_positions, "inp_positions", shape=(None, 3), dtype=dt,
                                               dtype_of=layer))
        _layer_args.position_rows(xi.shape, feats.shape)
        xo = cast("_FloatArray", V.float_array(out_positions, "out_positions", shape=(None, 3), dtype=dt,
                                               dtype_of=layer))
        for name, x in (("inp_positions", xi), ("out_positions", xo)):
            if not V.all_finite(x):  # the neighbor search needs finite coordinates
                raise ValueError(f"{name} must be finite (no NaN or inf coordinates)")
        n, whose = (xo.shape[0], "out_positions") if per == "output" else (xi.shape[0], "inp_positions")
        ext = _float_param(extents, "extents", dt, length=n, per=f"{per} point: {whose} has {n}")
        if not np.all(ext > 0):
            raise ValueError(f"extents must be > 0, got a minimum of {ext.min()}")
        return feats, xi, xo, ext

    def _search(self, points: _FloatArray, queries: _FloatArray, ext: _FloatArray,
                hash_table: Optional[SpatialHashTable]
                ) -> tuple[AnyArray, AnyArray, Optional[_FloatArray], Optional[_FloatArray]]:
        """Neighbors of each query among ``points`` within extents/2, and the window's importance
        and its input (the normalised distances) when there is a window function."""
        metric = self.radius_search_metric
        if hash_table is not None and ext.ndim:
            raise ValueError(f"fixed_radius_search_hash_table is used with scalar extents only, but extents has shape "
                             f"{ext.shape} (one per point: the layer runs radius_search)")
        want_dist = self.window_function is not None
        common: _RadiusOptions = dict(metric=metric, ignore_query_point=self.radius_search_ignore_query_points,
                      return_distances=want_dist, num_threads=self.num_threads)
        if ext.ndim == 0:
            radius = float(ext) / 2
            try:
                nb = fixed_radius_search(points, queries, radius, hash_table=hash_table, **common)
            except (TypeError, ValueError) as exc:
                if hash_table is None or "hash_table" not in str(exc):
                    raise
                raise type(exc)(f"fixed_radius_search_hash_table does not fit this call: {exc} (the layer searches "
                                f"with radius extents / 2 = {radius})") from None
            u = cast("_FloatArray", nb.neighbors_distance) / _radius_scale(metric, radius) if want_dist else None
        else:
            radii = (ext / 2).astype(self.dtype)
            nb = radius_search(points, queries, radii, normalize_distances=want_dist, **common)
            u = cast("_FloatArray", nb.neighbors_distance) if want_dist else None
        importance = self._window(u) if u is not None else None  # u is None without a window function
        return nb.neighbors_index, nb.neighbors_row_splits, importance, u

    def _window(self, u: _FloatArray) -> _FloatArray:
        assert self.window_function is not None
        w = np.asarray(self.window_function(u), dtype=self.dtype)
        if w.shape != u.shape:
            raise ValueError(f"window_function must return one value per neighbor (shape {u.shape}), got shape "
                             f"{w.shape}")
        return np.ascontiguousarray(w)

    def _finish(self, pre: _FloatArray, feats: _FloatArray) -> tuple[_FloatArray, _FloatArray]:
        """Dense center, bias and activation after the convolution ``pre``: (pre-activation, output)."""
        if self.dense_kernel is not None:
            pre = pre + feats @ self.dense_kernel
        if self.bias is not None:
            pre = pre + self.bias
        out = pre if self._act is None else np.asarray(self._act(pre), dtype=self.dtype)
        if out.shape != pre.shape:
            raise ValueError(f"activation must keep the shape {pre.shape}, got shape {out.shape}")
        return pre, out

    def _check_dense(self, xi: _FloatArray, xo: _FloatArray) -> None:
        if self.dense_kernel is not None and xo.shape[0] != xi.shape[0]:
            raise ValueError(f"out_positions has {xo.shape[0]} points (shape[0]) but inp_positions has {xi.shape[0]} "
                             "(inp_positions.shape[0]): use_dense_layer_for_center needs the same input and output "
                             "points")

    # -- backward helpers ----------------------------------------------------------------------

    def _wrt(self, wrt: Optional[Union[str, Collection[str]]]) -> set[str]:
        allowed = ("kernel", "bias", "dense_kernel", "inp_features", self._IMPORTANCE) + _POSITION_NAMES
        if wrt is None:
            return set(allowed[:5])
        if isinstance(wrt, str):
            wrt = {wrt}
        else:
            try:
                wrt = set(wrt)
            except TypeError:
                raise TypeError(f"wrt must be None, a name or a collection of names, got {type(wrt).__name__}") \
                    from None
        bad = sorted(repr(n) for n in wrt - set(allowed))
        if bad:
            raise ValueError(f"wrt may name {allowed}, got {', '.join(bad)}")
        return wrt

    def _grad_in(self, out_features_gradient: ArrayLike, ctx: LayerContext) -> _FloatArray:
        """The gradient w.r.t. the pre-activation output (the activation's derivative applied)."""
        self._host_only(out_features_gradient=out_features_gradient)
        g = cast("_FloatArray", V.float_array(out_features_gradient, "out_features_gradient", ndim=2,
                                              dtype=self.dtype, dtype_of="the layer"))
        if g.shape != ctx.out.shape:
            raise ValueError(f"out_features_gradient has shape {g.shape} but the call's output has shape "
                             f"{ctx.out.shape} ({ctx.out.shape[0]} output points, filters={self.filters})")
        if self._act is not None:
            if self._act_derivative is None:
                raise TypeError(f"backward() needs the derivative of activation={self.activation!r}: pass "
                                "activation_derivative= (a function of the pre-activation values) to the layer")
            g = g * self._act_derivative(ctx.pre, ctx.out)
        return np.ascontiguousarray(g, dtype=self.dtype)

    def _through_window(self, ctx: LayerContext, positions: Collection[str]) -> bool:
        """Whether position/extent gradients must be chained through the window function."""
        if not positions or ctx.window_input is None:
            return False
        if self.window_function_derivative is None:
            raise ValueError("position and extent gradients of a layer with a window_function need its derivative: "
                             "pass window_function_derivative= (a function of the normalised distances) to the layer")
        return True

    def _window_chain(self, ctx: LayerContext, d_importance: NDArray[np.floating[Any]], queries: _FloatArray,
                      points: _FloatArray, rows: _Rows
                      ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[Any]]:
        """Position and extent gradients through the window function: ``d_importance`` (one per
        entry of the searched list, rows = queries) to (d queries, d points, d extents)."""
        u = ctx.window_input
        assert self.window_function_derivative is not None  # _through_window checked it
        du = np.asarray(self.window_function_derivative(u), np.float64) * d_importance
        metric = self.radius_search_metric
        ext = ctx.extents
        radius = np.float64(ext) / 2 if ext.ndim == 0 else ext.astype(np.float64)[rows] / 2
        scale = _radius_scale(metric, radius)
        # u = dist / scale(r), r = extent / 2
        d_q, d_p = _distance_grads(metric, queries, points, ctx.index, None, du / scale, rows=rows)
        d_r = -du * u / scale * _d_scale_d_radius(metric, radius)
        if ext.ndim == 0:
            d_ext = np.asarray(d_r.sum() / 2)
        else:
            d_ext = np.bincount(rows, weights=d_r / 2, minlength=ext.shape[0])
        return d_q, d_p, d_ext


class ContinuousConv(_ConvLayer):
    """Continuous convolution layer with neighbor search, bias and activation (Open3D's layer).

    Parameters
    ----------
    in_channels : int
        Channels of the input features (Cin).
    filters : int
        Output channels (Cout).
    kernel_size : int or 3 ints
        Filter resolution (depth, height, width) = (z, y, x); one int is a cube. The kernel has
        shape ``(*kernel_size, in_channels, filters)``.
    activation : None, "relu", "tanh", "sigmoid" or a callable
        Applied after the bias. ``backward()`` needs its derivative: known for the names and
        ``np.tanh``; for another callable pass ``activation_derivative``.
    use_bias : bool, default True
    align_corners, coordinate_mapping, interpolation, normalize
        As in :func:`geomops.continuous_conv`; the defaults are Open3D's layer defaults
        (``align_corners=True``, ``normalize=True``).
    radius_search_ignore_query_points : bool, default False
        Drop neighbors with exactly the query's coordinates.
    radius_search_metric : {"L1", "L2", "Linf"}, default "L2"
    offset : array-like [3] or None
        Filter offset in cell units (only with ``align_corners=False``).
    window_function : callable or None
        Maps normalised neighbor distances (``d/r^2`` for squared L2 distances, ``d/r`` for L1
        and Linf, so 1 is the search radius ``r = extents/2``) to ``neighbors_importance``; also
        with per-point extents.
    use_dense_layer_for_center : bool, default False
        Add ``inp_features @ dense_kernel`` (requires the same input and output points).
    dtype : np.float32 or np.float64
    seed : int or None
        Seed of the initialisation, uniform in [-0.05, 0.05] (Open3D's kernel default).
    max_temp_mem_MB, num_threads
        Passed to the ops.
    activation_derivative : callable or None
        ``f(pre_activation) -> d activation / d pre_activation`` (elementwise) for a callable
        ``activation`` geomops does not know.
    window_function_derivative : callable or None
        ``f(u) -> d window / d u`` (elementwise); needed only for position and extent gradients
        of a layer with a ``window_function``.
    """

    @_ieee
    def forward(self, inp_features: ArrayLike, inp_positions: ArrayLike, out_positions: ArrayLike, extents: ArrayLike,
                inp_importance: Optional[ArrayLike] = None,
                fixed_radius_search_hash_table: Optional[SpatialHashTable] = None,
                user_neighbors_index: Optional[ArrayLike] = None, user_neighbors_row_splits: Optional[ArrayLike] = None,
                user_neighbors_importance: Optional[ArrayLike] = None) -> tuple[_FloatArray, LayerContext]:
        """Apply the layer; return ``(out_features, context)`` without remembering the call.

        Parameters
        ----------
        inp_features : ndarray [Ni, in_channels]
        inp_positions : ndarray [Ni, 3]
        out_positions : ndarray [No, 3]
        extents : float or ndarray [No]
            Filter extent (the search radius is extents / 2): a scalar uses the hash-grid
            fixed-radius search, one value per output point the k-d tree radius search.
        inp_importance : ndarray [Ni] or None
        fixed_radius_search_hash_table : optional table from
            :func:`geomops.build_spatial_hash_table` of ``inp_positions`` (scalar extents only).
        user_neighbors_index, user_neighbors_row_splits, user_neighbors_importance : optional
            Neighbor lists (for each output point, its input points) to use instead of searching.

        Returns
        -------
        (out_features [No, filters], LayerContext)
        """
        self._host_only(inp_features=inp_features, inp_positions=inp_positions, out_positions=out_positions,
                        extents=extents, inp_importance=inp_importance, user_neighbors_index=user_neighbors_index,
                        user_neighbors_row_splits=user_neighbors_row_splits,
                        user_neighbors_importance=user_neighbors_importance)
        feats, xi, xo, ext = self._inputs(inp_features, inp_positions, out_positions, extents, "output")
        self._check_dense(xi, xo)
        u = None
        if user_neighbors_index is not None:
            idx, rs, imp = _user_lists(user_neighbors_index, user_neighbors_row_splits, user_neighbors_importance,
                                       ("out_positions", xo), ("inp_positions", xi), self.dtype)
        else:
            idx, rs, imp, u = self._search(xi, xo, ext, fixed_radius_search_hash_table)
        ext2 = ext.reshape(1, 1) if ext.ndim == 0 else ext.reshape(-1, 1)
        args: _ConvArgs = (self.kernel, xo, ext2, self.offset, xi, feats, inp_importance, idx, imp, rs)
        pre = cast("_FloatArray", continuous_conv(*args, **self.conv_options))
        pre, out = self._finish(pre, feats)
        rs_arr = np.asarray(rs)
        self._avg_neighbors = float(rs_arr[-1]) / max(len(rs_arr) - 1, 1)
        ctx = LayerContext(self, args=args, pre=pre, out=out, feats=feats, extents=ext, index=idx, row_splits=rs,
                           window_input=u)
        return out, ctx

    @_ieee
    def backward(self, out_features_gradient: ArrayLike, context: Optional[LayerContext] = None, *,
                 wrt: Optional[Union[str, Collection[str]]] = None) -> ContinuousConvLayerGradients:
        """Gradients of ``sum(out * out_features_gradient)`` for a call.

        Parameters
        ----------
        out_features_gradient : ndarray [No, filters]
        context : LayerContext or None
            What :meth:`forward` returned; None: the last ``layer(...)`` call of this thread.
        wrt : collection of str or None
            Among "kernel", "bias", "dense_kernel", "inp_features", "inp_importance" (the
            default set, None) and "inp_positions", "out_positions", "extents" (the exact
            derivative of the implemented function, through the convolution's coordinate
            mapping and interpolation and, with a window function, through the window;
            the neighbor search itself is piecewise constant). Only what is named is computed.

        Returns
        -------
        ContinuousConvLayerGradients
            ``(kernel, bias, dense_kernel, inp_features, inp_importance, inp_positions,
            out_positions, extents)``; None where not asked for or not present. ``extents``
            has the shape of the call's extents (a 0-d array for a scalar).
        """
        ctx = self._context(context)
        wrt = self._wrt(wrt)
        g = self._grad_in(out_features_gradient, ctx)
        args: _ConvArgs = ctx.args
        positions = wrt & set(_POSITION_NAMES)
        window = self._through_window(ctx, positions)
        op = {"kernel": "filters", "inp_features": "inp_features", "inp_importance": "inp_importance"}
        if positions:
            names = {op[n] for n in wrt if n in op} | positions | ({"neighbors_importance"} if window else set())
            grads = continuous_conv_backward(*args, g, wrt=names, **self.conv_options)
        elif wrt & set(op):
            grads = continuous_conv_backward(*args, g, **self.conv_options)
        else:
            grads = None
        feats = ctx.feats

        def pick(name: str, field: str) -> Optional[_FloatArray]:
            return getattr(grads, field) if grads is not None and name in wrt else None

        d_feats = pick("inp_features", "inp_features")
        d_dense = None
        if self.dense_kernel is not None:
            if "dense_kernel" in wrt:
                d_dense = feats.T @ g
            if d_feats is not None:
                d_feats = d_feats + g @ self.dense_kernel.T
        d_bias = g.sum(axis=0) if self.bias is not None and "bias" in wrt else None
        d_xi, d_xo, d_ext = (pick(n, n) for n in _POSITION_NAMES)
        if d_ext is not None:
            d_ext = d_ext.reshape(ctx.extents.shape)
        if window:
            assert grads is not None  # position gradients were asked for
            xo, xi = args[1], args[4]
            rows = _entry_rows(ctx.row_splits)
            d_q, d_p, d_e = self._window_chain(ctx, cast("_FloatArray", grads.neighbors_importance), xo, xi, rows)
            dt = self.dtype
            d_xo = None if d_xo is None else (d_xo + d_q).astype(dt)
            d_xi = None if d_xi is None else (d_xi + d_p).astype(dt)
            d_ext = None if d_ext is None else (d_ext + d_e).astype(dt)
        result = ContinuousConvLayerGradients(pick("kernel", "filters"), d_bias, d_dense, d_feats,
                                              pick("inp_importance", "inp_importance"), d_xi, d_xo, d_ext)
        return self._store_grads(result)

    def __repr__(self) -> str:
        return (f"ContinuousConv(in_channels={self.in_channels}, filters={self.filters}, "
                f"kernel_size={self.kernel_size}, activation={self.activation!r}, dtype={self.dtype.name})")


class ContinuousConvTranspose(_ConvLayer):
    """Transpose continuous convolution layer: each input point scatters its features to the
    output points within its extent.

    Open3D's frameworks have no such layer; this one takes the same constructor arguments as
    :class:`ContinuousConv` (see there) and its features are the adjoint of that layer's: with
    the positions swapped and the same kernel and options, ``<conv(f), g> == <f, transpose(g)>``
    (bias, dense center and activation aside). Extents are a scalar or one per **input** point.
    With ``normalize`` (the default, as for :class:`ContinuousConv`) each input point's
    contribution is divided by its neighbor count (or its window-importance sum).
    """

    _IMPORTANCE = "out_importance"

    @_ieee
    def forward(self, inp_features: ArrayLike, inp_positions: ArrayLike, out_positions: ArrayLike, extents: ArrayLike,
                out_importance: Optional[ArrayLike] = None,
                fixed_radius_search_hash_table: Optional[SpatialHashTable] = None,
                user_neighbors_index: Optional[ArrayLike] = None, user_neighbors_row_splits: Optional[ArrayLike] = None,
                user_neighbors_importance: Optional[ArrayLike] = None) -> tuple[_FloatArray, LayerContext]:
        """Apply the layer; return ``(out_features, context)`` without remembering the call.

        Parameters
        ----------
        inp_features : ndarray [Ni, in_channels]
        inp_positions : ndarray [Ni, 3]
        out_positions : ndarray [No, 3]
        extents : float or ndarray [Ni]
            Filter extent of each input point (search radius extents / 2): a scalar uses the
            hash-grid fixed-radius search, one value per input point the k-d tree radius search.
        out_importance : ndarray [No] or None
            Per output point scale of the result.
        fixed_radius_search_hash_table : optional table from
            :func:`geomops.build_spatial_hash_table` of ``out_positions`` (scalar extents only).
        user_neighbors_index, user_neighbors_row_splits, user_neighbors_importance : optional
            Neighbor lists **of the input points** (for each input point, the output points it
            scatters to) to use instead of searching.

        Returns
        -------
        (out_features [No, filters], LayerContext)
        """
        self._host_only(inp_features=inp_features, inp_positions=inp_positions, out_positions=out_positions,
                        extents=extents, out_importance=out_importance, user_neighbors_index=user_neighbors_index,
                        user_neighbors_row_splits=user_neighbors_row_splits,
                        user_neighbors_importance=user_neighbors_importance)
        feats, xi, xo, ext = self._inputs(inp_features, inp_positions, out_positions, extents, "input")
        self._check_dense(xi, xo)
        u = None
        if user_neighbors_index is not None:
            idx, rs, imp = _user_lists(user_neighbors_index, user_neighbors_row_splits, user_neighbors_importance,
                                       ("inp_positions", xi), ("out_positions", xo), self.dtype)
        else:
            idx, rs, imp, u = self._search(xo, xi, ext, fixed_radius_search_hash_table)
        idx = V.index_array(idx, "neighbors_index")
        # the inverted list (output -> input points); its permutation carries the importances
        inv = invert_neighbors_list(xo.shape[0], idx, rs, np.arange(idx.shape[0], dtype=np.int64))
        perm = cast("NDArray[np.int64]", inv.neighbors_attributes)
        inv_imp = imp_sum = None
        if imp is not None:
            inv_imp = np.ascontiguousarray(imp[perm])
            imp_sum = reduce_subarrays_sum(imp, rs)
        ext2 = ext.reshape(1, 1) if ext.ndim == 0 else ext.reshape(-1, 1)
        args: _TransposeArgs = (self.kernel, xo, out_importance, ext2, self.offset, xi, feats, idx, imp_sum, rs,
                inv.neighbors_index, inv_imp, inv.neighbors_row_splits)
        pre = cast("_FloatArray", continuous_conv_transpose(*args, **self.conv_options))
        pre, out = self._finish(pre, feats)
        rs_arr = np.asarray(rs)
        self._avg_neighbors = float(rs_arr[-1]) / max(len(rs_arr) - 1, 1)
        ctx = LayerContext(self, args=args, pre=pre, out=out, feats=feats, extents=ext, index=idx, row_splits=rs,
                           perm=perm, window_input=u)
        return out, ctx

    @_ieee
    def backward(self, out_features_gradient: ArrayLike, context: Optional[LayerContext] = None, *,
                 wrt: Optional[Union[str, Collection[str]]] = None) -> ContinuousConvTransposeLayerGradients:
        """Gradients of ``sum(out * out_features_gradient)`` for a call.

        ``wrt`` names among "kernel", "bias", "dense_kernel", "inp_features", "out_importance"
        (the default set, None) and "inp_positions", "out_positions", "extents"; as for
        :meth:`ContinuousConv.backward` (the importances of a window function are chained
        through both the inverted list and the per-input-point normaliser).

        Returns
        -------
        ContinuousConvTransposeLayerGradients
        """
        ctx = self._context(context)
        wrt = self._wrt(wrt)
        g = self._grad_in(out_features_gradient, ctx)
        args: _TransposeArgs = ctx.args
        positions = wrt & set(_POSITION_NAMES)
        window = self._through_window(ctx, positions)
        op = {"kernel": "filters", "inp_features": "inp_features", "out_importance": "out_importance"}
        if positions:
            names = {op[n] for n in wrt if n in op} | positions
            if window:
                names |= {"neighbors_importance", "inp_neighbors_importance_sum"}
            grads = continuous_conv_transpose_backward(*args, g, wrt=names, **self.conv_options)
        elif wrt & set(op):
            grads = continuous_conv_transpose_backward(*args, g, **self.conv_options)
        else:
            grads = None

        def pick(name: str, field: str) -> Optional[_FloatArray]:
            return getattr(grads, field) if grads is not None and name in wrt else None

        feats = ctx.feats
        d_feats = pick("inp_features", "inp_features")
        d_dense = None
        if self.dense_kernel is not None:
            if "dense_kernel" in wrt:
                d_dense = feats.T @ g
            if d_feats is not None:
                d_feats = d_feats + g @ self.dense_kernel.T
        d_bias = g.sum(axis=0) if self.bias is not None and "bias" in wrt else None
        d_xi, d_xo, d_ext = (pick(n, n) for n in _POSITION_NAMES)
        if d_ext is not None:
            d_ext = d_ext.reshape(ctx.extents.shape)
        if window:
            assert grads is not None  # position gradients were asked for
            # importance n of the searched list feeds the inverted list (at perm) and its row's sum
            rows = _entry_rows(ctx.row_splits)
            d_imp = np.empty(ctx.perm.shape[0], np.float64)
            d_imp[ctx.perm] = grads.neighbors_importance
            d_imp += np.asarray(grads.inp_neighbors_importance_sum, np.float64)[rows]
            xo, xi = args[1], args[5]
            d_q, d_p, d_e = self._window_chain(ctx, d_imp, xi, xo, rows)
            dt = self.dtype
            d_xi = None if d_xi is None else (d_xi + d_q).astype(dt)
            d_xo = None if d_xo is None else (d_xo + d_p).astype(dt)
            d_ext = None if d_ext is None else (d_ext + d_e).astype(dt)
        result = ContinuousConvTransposeLayerGradients(pick("kernel", "filters"), d_bias, d_dense, d_feats,
                                                       pick("out_importance", "out_importance"), d_xi, d_xo, d_ext)
        return self._store_grads(result)

    def __repr__(self) -> str:
        return (f"ContinuousConvTranspose(in_channels={self.in_channels}, filters={self.filters}, "
                f"kernel_size={self.kernel_size}, activation={self.activation!r}, dtype={self.dtype.name})")


# ---- neighbor searches -------------------------------------------------------------------------

class NeighborSearchGradients(NamedTuple):
    """Gradients of ``sum(neighbors_distance * grad)`` returned by a search layer's ``backward``
    (the neighbor set is piecewise constant; only the distances have a derivative). DeviceArrays
    when the call searched device arrays, else NumPy arrays."""
    points: AnyArray
    queries: AnyArray
    radii: Optional[AnyArray] = None


def _host(a: object) -> NDArray[Any]:
    """A NumPy array of ``a``: a copy of a device array, ``np.asarray`` of anything else."""
    return _device.as_device_array(a).get() if _device.is_device_array(a) else np.asarray(a)


def _kept(a: ArrayLike) -> AnyArray:
    """What a search layer keeps of an input for its backward: a device array as a DeviceArray
    view (the backward copies it), anything else as a NumPy array."""
    return _device.as_device_array(a) if _device.is_device_array(a) else np.asarray(a)


class _SearchLayer(_Layer[NeighborSearchResult]):
    def __init__(self, metric: Metric, ignore_query_point: bool, return_distances: bool, index_dtype: DTypeLike,
                 num_threads: Optional[int]) -> None:
        super().__init__()
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS} but got {metric!r}")
        self.metric = metric
        self.ignore_query_point = V.check_bool(ignore_query_point, "ignore_query_point")
        self.return_distances = V.check_bool(return_distances, "return_distances")
        self.index_dtype = _index_dtype(index_dtype)
        self.num_threads = num_threads

    def _common(self) -> _SearchOptions:
        return dict(index_dtype=self.index_dtype, metric=self.metric, ignore_query_point=self.ignore_query_point,
                    return_distances=self.return_distances, num_threads=self.num_threads)

    def _result(self, result: NeighborSearchResult, points: ArrayLike, queries: ArrayLike,
                radii: Optional[AnyArray] = None) -> tuple[NeighborSearchResult, LayerContext]:
        ctx = LayerContext(self, points=_kept(points), queries=_kept(queries), result=result, radii=radii)
        return result, ctx

    @_ieee
    def backward(self, grad_distance: ArrayLike, context: Optional[LayerContext] = None) -> NeighborSearchGradients:
        """Gradients of ``sum(neighbors_distance * grad_distance)`` for a call (which must have
        returned distances).

        Returns
        -------
        NeighborSearchGradients
            ``(points [Np, 3], queries [Nq, 3], radii [Nq] or None)``; ``radii`` only for a
            :class:`RadiusSearch` with ``normalize_distances``. L2 distances are squared; the
            derivative of L1 (Linf) at a zero coordinate difference (a tie) is one-sided. For a
            call on device arrays the gradients are computed on the host (from copies of the
            call's arrays) and returned as DeviceArrays on the call's device.
        """
        ctx = self._context(context)
        if not self.return_distances:
            raise RuntimeError("backward() gives the gradients of the distances: construct the layer with "
                               "return_distances=True")
        res = ctx.result
        g = V.float_array(grad_distance, "grad_distance", ndim=1)
        if g.shape != res.neighbors_distance.shape:
            raise V.mismatch("grad_distance", 0, g.shape[0], "entries",
                             f"the call's neighbors_distance has {res.neighbors_distance.shape[0]}: one gradient "
                             "per neighbor")
        dist = _host(res.neighbors_distance)
        g = np.asarray(_host(g), np.float64)
        rows = _entry_rows(_host(res.neighbors_row_splits))
        pts, qs = _host(ctx.points), _host(ctx.queries)
        d_radii = None
        if ctx.radii is not None:  # normalised distances: u = dist / scale(r), r in the distances' dtype
            radii = np.asarray(_host(ctx.radii), dist.dtype)
            r = np.broadcast_to(np.asarray(radii, np.float64), (qs.shape[0],))[rows]  # a scalar: every query
            scale = _radius_scale(self.metric, r)
            d_radii = np.bincount(rows, weights=-g * dist * _d_scale_d_radius(self.metric, r) / scale,
                                  minlength=qs.shape[0]).astype(pts.dtype)
            g = g / scale
        d_q, d_p = _distance_grads(self.metric, qs, pts, _host(res.neighbors_index), None, g, rows=rows)
        grads = (d_p.astype(pts.dtype), d_q.astype(pts.dtype), d_radii)
        on = res.neighbors_distance
        if isinstance(on, _device.DeviceArray):  # a call on device arrays: results where its results are
            grads = tuple(None if x is None else _device.from_host(on._module, x, on.device_id) for x in grads)
        return self._store_grads(NeighborSearchGradients(*grads))


class FixedRadiusSearch(_SearchLayer):
    """Fixed-radius neighbor search layer (Open3D's ``FixedRadiusSearch``).

    Parameters
    ----------
    metric : {"L2", "L1", "Linf"}, default "L2"
    ignore_query_point : bool, default False
    return_distances : bool, default False
    max_hash_table_size : int, default 33554432
        Accepted (and validated) for Open3D compatibility, like ``hash_table_size_factor`` of
        :meth:`forward`: geomops' search builds no Open3D hash table (a ``hash_table`` you
        pass is checked and used).
    index_dtype : np.int32 or np.int64, default np.int32
    num_threads : int or None
    """

    def __init__(self, metric: Metric = "L2", ignore_query_point: bool = False, return_distances: bool = False,
                 max_hash_table_size: int = 33554432, index_dtype: DTypeLike = np.int32,
                 num_threads: Optional[int] = None) -> None:
        super().__init__(metric, ignore_query_point, return_distances, index_dtype, num_threads)
        self.max_hash_table_size = V.check_int(max_hash_table_size, "max_hash_table_size", minimum=1)

    @_ieee
    def forward(self, points: ArrayLike, queries: ArrayLike, radius: float,
                points_row_splits: Optional[ArrayLike] = None, queries_row_splits: Optional[ArrayLike] = None,
                hash_table_size_factor: float = 1 / 64,
                hash_table: Optional[SpatialHashTable] = None) -> tuple[NeighborSearchResult, LayerContext]:
        """All points within ``radius`` (inclusive) of each query: ``(NeighborSearchResult, context)``.
        See :func:`geomops.fixed_radius_search`."""
        result = fixed_radius_search(points, queries, radius, points_row_splits, queries_row_splits, hash_table,
                                     hash_table_size_factor, **self._common())
        return self._result(result, points, queries)


class RadiusSearch(_SearchLayer):
    """Per-query radius neighbor search layer (Open3D's ``RadiusSearch``).

    Parameters
    ----------
    metric : {"L2", "L1", "Linf"}, default "L2"
    ignore_query_point, return_distances, normalize_distances : bool, default False
    index_dtype : np.int32 or np.int64, default np.int32
    num_threads : int or None
    """

    def __init__(self, metric: Metric = "L2", ignore_query_point: bool = False, return_distances: bool = False,
                 normalize_distances: bool = False, index_dtype: DTypeLike = np.int32,
                 num_threads: Optional[int] = None) -> None:
        super().__init__(metric, ignore_query_point, return_distances, index_dtype, num_threads)
        self.normalize_distances = V.check_bool(normalize_distances, "normalize_distances")

    @_ieee
    def forward(self, points: ArrayLike, queries: ArrayLike, radii: ArrayLike,
                points_row_splits: Optional[ArrayLike] = None, queries_row_splits: Optional[ArrayLike] = None
                ) -> tuple[NeighborSearchResult, LayerContext]:
        """All points strictly within ``radii[i]`` of query i: ``(NeighborSearchResult, context)``.
        See :func:`geomops.radius_search`."""
        result = radius_search(points, queries, radii, points_row_splits, queries_row_splits,
                               normalize_distances=self.normalize_distances, **self._common())
        # in the points' dtype, as the search used them (a float64 scalar for float32 points is rounded;
        # device radii are converted when the backward copies them)
        radii_kept = None
        if self.normalize_distances:
            radii_kept = _kept(radii) if _device.is_device_array(radii) else np.asarray(
                radii, result.neighbors_distance.dtype)
        return self._result(result, points, queries, radii_kept)


class KNNSearch(_SearchLayer):
    """k-nearest-neighbor search layer (Open3D's ``KNNSearch``).

    Parameters
    ----------
    metric : {"L2", "L1", "Linf"}, default "L2"
    ignore_query_point, return_distances : bool, default False
    index_dtype : np.int32 or np.int64, default np.int32
    num_threads : int or None
    """

    def __init__(self, metric: Metric = "L2", ignore_query_point: bool = False, return_distances: bool = False,
                 index_dtype: DTypeLike = np.int32, num_threads: Optional[int] = None) -> None:
        super().__init__(metric, ignore_query_point, return_distances, index_dtype, num_threads)

    @_ieee
    def forward(self, points: ArrayLike, queries: ArrayLike, k: int, points_row_splits: Optional[ArrayLike] = None,
                queries_row_splits: Optional[ArrayLike] = None) -> tuple[NeighborSearchResult, LayerContext]:
        """The k nearest points of each query: ``(NeighborSearchResult, context)``.
        See :func:`geomops.knn_search`."""
        result = knn_search(points, queries, k, points_row_splits, queries_row_splits, **self._common())
        return self._result(result, points, queries)
