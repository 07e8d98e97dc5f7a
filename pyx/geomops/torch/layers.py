"""``open3d.ml.torch.layers`` on geomops: ``torch.nn.Module`` s with Open3D's arguments.

:class:`ContinuousConv`, :class:`FixedRadiusSearch`, :class:`RadiusSearch` and :class:`KNNSearch`
take Open3D's constructor and ``forward`` arguments and keep its parameter and buffer names
(``kernel``, ``bias``, ``offset``, ``dense.weight``), so a ``state_dict`` saved from an Open3D
model loads. :class:`ContinuousConvTranspose` is new (Open3D has none). Fixed on the way:

* a window function also works with per-point extents (Open3D's layer raises a NameError);
* the window's input is the distance normalised once per metric: ``d/r^2`` for (squared) L2,
  ``d/r`` for L1 and Linf;
* the window, the convolution and the searches' distances are differentiable w.r.t. the
  positions and extents, so a loss can move points or learn radii;
* ``kernel_size=3`` means a cubic filter; nothing of a call is kept on the module (Open3D keeps
  the last call's neighbors and inputs), so a module can be shared by threads and pickles small.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Callable, Sequence
from typing import Optional, TypedDict, Union

import torch

from .. import _layer_args
from ..cconv import CoordinateMapping, Interpolation
from ..search import Metric
from . import _convert as C
from . import ops, return_types

TensorFunction = Callable[[torch.Tensor], torch.Tensor]
"""An activation or window function: any callable on tensors."""
Initializer = Callable[[torch.Tensor], object]
"""A parameter initialiser that fills its tensor in place (``torch.nn.init.*_``)."""


class _Options(TypedDict):
    """A convolution layer's options of its op."""
    align_corners: bool
    coordinate_mapping: CoordinateMapping
    normalize: bool
    interpolation: Interpolation
    allow_tf32: bool

__all__ = ["ContinuousConv", "ContinuousConvTranspose", "FixedRadiusSearch", "RadiusSearch", "KNNSearch"]


def _uniform_005(x: torch.Tensor) -> torch.Tensor:
    """Open3D's default kernel initialiser, U(-0.05, 0.05) (a function, so modules pickle)."""
    return torch.nn.init.uniform_(x, -0.05, 0.05)


def _kernel_size(kernel_size: Union[int, Sequence[int]]) -> tuple[int, ...]:
    if isinstance(kernel_size, int):
        return (kernel_size,) * 3
    ks = tuple(int(k) for k in kernel_size)
    if len(ks) == 1:
        ks = ks * 3
    if len(ks) != 3 or min(ks) < 1:
        raise ValueError(f"kernel_size must be an int or 3 positive ints (depth, height, width), got {kernel_size!r}")
    return ks


def _radius_scale(metric: Metric, radius: torch.Tensor) -> torch.Tensor:
    return radius * radius if metric == "L2" else radius


def _row_splits(rs: Optional[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    return rs if rs is not None else torch.tensor([0, x.shape[0]], dtype=torch.int64, device=x.device)


class _ConvBase(torch.nn.Module):
    offset: torch.Tensor  # a buffer

    def __init__(self, in_channels: int, filters: int, kernel_size: Union[int, Sequence[int]],
                 activation: Optional[TensorFunction], use_bias: bool, kernel_initializer: Initializer,
                 bias_initializer: Initializer, align_corners: bool, coordinate_mapping: CoordinateMapping,
                 interpolation: Interpolation, normalize: bool, radius_search_ignore_query_points: bool,
                 radius_search_metric: Metric, offset: Optional[torch.Tensor],
                 window_function: Optional[TensorFunction], use_dense_layer_for_center: bool,
                 dense_kernel_initializer: Initializer, allow_tf32: bool) -> None:
        super().__init__()
        if activation is not None and not callable(activation):
            raise TypeError(f"activation must be None or a callable, got {type(activation).__name__}")
        if window_function is not None and not callable(window_function):
            raise TypeError(f"window_function must be None or a callable, got {type(window_function).__name__}")
        _layer_args.radius_search_metric(radius_search_metric)
        self.in_channels = in_channels
        self.filters = filters
        self.kernel_size = _kernel_size(kernel_size)
        self.activation = activation
        self.use_bias = use_bias
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self.align_corners = align_corners
        self.coordinate_mapping = coordinate_mapping
        self.interpolation = interpolation
        self.normalize = normalize
        self.radius_search_ignore_query_points = radius_search_ignore_query_points
        self.radius_search_metric = radius_search_metric
        self.dense_kernel_initializer = dense_kernel_initializer
        self.allow_tf32 = allow_tf32
        self.window_function = window_function
        if offset is None:
            offset = torch.zeros(3, dtype=torch.float32)
        self.register_buffer("offset", torch.as_tensor(offset))
        want_dist = window_function is not None
        self.fixed_radius_search = FixedRadiusSearch(metric=radius_search_metric,
                                                     ignore_query_point=radius_search_ignore_query_points,
                                                     return_distances=want_dist)
        self.radius_search = RadiusSearch(metric=radius_search_metric,
                                          ignore_query_point=radius_search_ignore_query_points,
                                          return_distances=want_dist, normalize_distances=want_dist)
        self.use_dense_layer_for_center = use_dense_layer_for_center
        if use_dense_layer_for_center:
            self.dense = torch.nn.Linear(in_channels, filters, bias=False)
            dense_kernel_initializer(self.dense.weight)
        self.kernel = torch.nn.Parameter(torch.empty(*self.kernel_size, in_channels, filters))
        kernel_initializer(self.kernel)
        if use_bias:
            self.bias = torch.nn.Parameter(torch.empty(filters))
            bias_initializer(self.bias)
        self._avg_neighbors: Optional[float] = None

    def _options(self) -> _Options:
        return dict(align_corners=self.align_corners, coordinate_mapping=self.coordinate_mapping,
                    normalize=self.normalize, interpolation=self.interpolation, allow_tf32=self.allow_tf32)

    def _search(self, points: torch.Tensor, queries: torch.Tensor, extents: torch.Tensor,
                hash_table: Optional[return_types.build_spatial_hash_table], names: tuple[str, str]
                ) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """Neighbors of each query within extents/2 and, with a window function, their importance
        (differentiable w.r.t. the positions and extents). ``names``: the layer's arguments that
        are the points and the queries (the search's errors name them)."""
        metric = self.radius_search_metric
        radius = 0.5 * extents
        try:
            if extents.ndim == 0:
                nns: Union[return_types.fixed_radius_search, return_types.radius_search] = \
                    self.fixed_radius_search(points, queries=queries, radius=radius, hash_table=hash_table)
            else:  # one per query (_inputs refused other ranks)
                nns = self.radius_search(points, queries=queries, radii=radius)
        except (TypeError, ValueError) as exc:  # in the layer's words: which argument it came from
            which = re.match(r"(points|queries|radius|radii) ", str(exc))
            if which is None:
                raise
            roles = {"points": f"{names[0]} (the search's points)", "queries": f"{names[1]} (the search's queries)"}
            arg = roles.get(which.group(1), "extents (the search radius is extents / 2)")
            # the other point set, where the message compares the two, by its layer name too
            body = re.sub(r"\b(points|queries)\b",
                          lambda m: m.group(0) if m.group(0) == which.group(1) else roles[m.group(0)], str(exc))
            raise type(exc)(f"{arg}: {body}") from None
        if extents.ndim == 0:
            u = nns.neighbors_distance / _radius_scale(metric, radius) if self.window_function is not None else None
        else:
            u = nns.neighbors_distance  # already normalised
        importance = self.window_function(u) if self.window_function is not None and u is not None else None
        return nns.neighbors_index, nns.neighbors_row_splits, importance

    def _finish(self, out: torch.Tensor, inp_features: torch.Tensor) -> torch.Tensor:
        if self.use_dense_layer_for_center:
            out = out + self.dense(inp_features)
        if self.use_bias:
            out = out + self.bias
        if self.activation is not None:
            out = self.activation(out)
        return out

    def _inputs(self, inp_features: object, inp_positions: object, out_positions: object,
                extents: Union[float, torch.Tensor], per: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                                        torch.Tensor]:
        """The features, positions and extents (a number becomes a tensor like the input
        positions) with their shapes checked in the layer's words (the ops would name their own
        arguments): features against ``in_channels`` and the positions, extents against the
        points they belong to."""
        f = C.tensor_argument(inp_features, "inp_features")
        xi = C.tensor_argument(inp_positions, "inp_positions")
        xo = C.tensor_argument(out_positions, "out_positions")
        if f.ndim == 2:
            _layer_args.feature_channels(f.shape, self.in_channels)
        for name, x in (("inp_positions", xi), ("out_positions", xo)):
            if x.ndim != 2 or x.shape[1] != 3:  # geomops' message; the layer reads the point counts
                raise ValueError(f"{name} must have shape [N, 3], got shape {tuple(x.shape)} and dtype "
                                 f"{str(x.dtype).removeprefix('torch.')}")
        if not isinstance(extents, torch.Tensor):
            if isinstance(extents, bool) or not isinstance(extents, numbers.Real):
                raise TypeError(f"extents must be a real number or a torch.Tensor, got {type(extents).__name__}")
            # the positions' float dtype, else the layer's (positions of another dtype are then
            # reported by the op, naming them)
            dtype = xi.dtype if xi.dtype in (torch.float32, torch.float64) else self.kernel.dtype
            extents = torch.tensor(extents, dtype=dtype, device=xi.device)
        if f.ndim == 2:
            _layer_args.position_rows(xi.shape, f.shape)
        owner, pts = ("out_positions", xo) if per == "output" else ("inp_positions", xi)
        if extents.ndim:
            _layer_args.scalar_or_vector(tuple(extents.shape), "extents", pts.shape[0],
                                         f"{per} point: {owner} has {pts.shape[0]}")
        return f, xi, xo, extents

    @staticmethod
    def _rank2(extents: torch.Tensor) -> torch.Tensor:
        return extents.reshape(1, 1) if extents.ndim == 0 else extents.reshape(-1, 1)

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, filters={self.filters}, kernel_size={self.kernel_size}, "
                f"align_corners={self.align_corners}, normalize={self.normalize}")


class ContinuousConv(_ConvBase):
    """Continuous convolution (``open3d.ml.torch.layers.ContinuousConv``).

    Arguments as Open3D's layer (defaults: ``align_corners=True``, ``normalize=True``,
    ``coordinate_mapping='ball_to_cube_radial'``, ``interpolation='linear'``, kernel initialised
    U(-0.05, 0.05), ``allow_tf32=False``); ``kernel_size`` may be one int (a cube); ``activation``
    and ``window_function`` are any callables on tensors. The window function gets the neighbor
    distances normalised so that 1 is the search radius (``d/r^2`` for squared L2 distances, ``d/r``
    for L1 and Linf), also with per-point extents. Extra keyword arguments are ignored, as in Open3D.

    ``forward(inp_features, inp_positions, out_positions, extents, inp_importance=None,
    fixed_radius_search_hash_table=None, user_neighbors_index=None, user_neighbors_row_splits=None,
    user_neighbors_importance=None)``: ``extents`` is a scalar (hash-grid fixed-radius search with
    radius extents/2) or one per output point (radius search). Returns [No, filters].
    Gradients reach the parameters, the features, the importances, the positions and the extents.
    """

    def __init__(self, in_channels: int, filters: int, kernel_size: Union[int, Sequence[int]],
                 activation: Optional[TensorFunction] = None, use_bias: bool = True,
                 kernel_initializer: Initializer = _uniform_005, bias_initializer: Initializer = torch.nn.init.zeros_,
                 align_corners: bool = True, coordinate_mapping: CoordinateMapping = 'ball_to_cube_radial',
                 interpolation: Interpolation = 'linear', normalize: bool = True,
                 radius_search_ignore_query_points: bool = False, radius_search_metric: Metric = 'L2',
                 offset: Optional[torch.Tensor] = None, window_function: Optional[TensorFunction] = None,
                 use_dense_layer_for_center: bool = False,
                 dense_kernel_initializer: Initializer = torch.nn.init.xavier_uniform_, allow_tf32: bool = False,
                 **kwargs: object) -> None:
        super().__init__(in_channels, filters, kernel_size, activation, use_bias, kernel_initializer,
                         bias_initializer, align_corners, coordinate_mapping, interpolation, normalize,
                         radius_search_ignore_query_points, radius_search_metric, offset, window_function,
                         use_dense_layer_for_center, dense_kernel_initializer, allow_tf32)

    def forward(self, inp_features: torch.Tensor, inp_positions: torch.Tensor, out_positions: torch.Tensor,
                extents: Union[float, torch.Tensor], inp_importance: Optional[torch.Tensor] = None,
                fixed_radius_search_hash_table: Optional[return_types.build_spatial_hash_table] = None,
                user_neighbors_index: Optional[torch.Tensor] = None,
                user_neighbors_row_splits: Optional[torch.Tensor] = None,
                user_neighbors_importance: Optional[torch.Tensor] = None) -> torch.Tensor:
        inp_features, inp_positions, out_positions, extents = self._inputs(inp_features, inp_positions,
                                                                           out_positions, extents, "output")
        if user_neighbors_index is not None and user_neighbors_row_splits is not None:
            index, row_splits, importance = user_neighbors_index, user_neighbors_row_splits, user_neighbors_importance
        else:
            index, row_splits, importance = self._search(inp_positions, out_positions, extents,
                                                         fixed_radius_search_hash_table,
                                                         ("inp_positions", "out_positions"))
        self._avg_neighbors = index.shape[0] / max(out_positions.shape[0], 1)
        out = ops.continuous_conv(self.kernel, out_positions, self._rank2(extents), self.offset, inp_positions,
                                  inp_features, inp_importance, index, importance, row_splits, **self._options())
        return self._finish(out, inp_features)


class ContinuousConvTranspose(_ConvBase):
    """Transpose continuous convolution: each input point scatters its features to the output
    points within its extent (new: Open3D has no such layer).

    Constructor arguments as :class:`ContinuousConv`. ``forward(inp_features, inp_positions,
    out_positions, extents, out_importance=None, fixed_radius_search_hash_table=None,
    user_neighbors_index=None, user_neighbors_row_splits=None, user_neighbors_importance=None)``:
    ``extents`` is a scalar or one per **input** point; the hash table is one of
    ``out_positions``; user neighbor lists are those of the input points (for each input point,
    the output points it reaches), inverted inside. With the positions swapped and the same kernel
    and options its features are the adjoint of :class:`ContinuousConv` 's. With ``normalize``
    each input point's contribution is divided by its neighbor count (or its window-importance sum).
    """

    def __init__(self, in_channels: int, filters: int, kernel_size: Union[int, Sequence[int]],
                 activation: Optional[TensorFunction] = None, use_bias: bool = True,
                 kernel_initializer: Initializer = _uniform_005, bias_initializer: Initializer = torch.nn.init.zeros_,
                 align_corners: bool = True, coordinate_mapping: CoordinateMapping = 'ball_to_cube_radial',
                 interpolation: Interpolation = 'linear', normalize: bool = True,
                 radius_search_ignore_query_points: bool = False, radius_search_metric: Metric = 'L2',
                 offset: Optional[torch.Tensor] = None, window_function: Optional[TensorFunction] = None,
                 use_dense_layer_for_center: bool = False,
                 dense_kernel_initializer: Initializer = torch.nn.init.xavier_uniform_, allow_tf32: bool = False,
                 **kwargs: object) -> None:
        super().__init__(in_channels, filters, kernel_size, activation, use_bias, kernel_initializer,
                         bias_initializer, align_corners, coordinate_mapping, interpolation, normalize,
                         radius_search_ignore_query_points, radius_search_metric, offset, window_function,
                         use_dense_layer_for_center, dense_kernel_initializer, allow_tf32)

    def forward(self, inp_features: torch.Tensor, inp_positions: torch.Tensor, out_positions: torch.Tensor,
                extents: Union[float, torch.Tensor], out_importance: Optional[torch.Tensor] = None,
                fixed_radius_search_hash_table: Optional[return_types.build_spatial_hash_table] = None,
                user_neighbors_index: Optional[torch.Tensor] = None,
                user_neighbors_row_splits: Optional[torch.Tensor] = None,
                user_neighbors_importance: Optional[torch.Tensor] = None) -> torch.Tensor:
        inp_features, inp_positions, out_positions, extents = self._inputs(inp_features, inp_positions,
                                                                           out_positions, extents, "input")
        if user_neighbors_index is not None and user_neighbors_row_splits is not None:
            index, row_splits, importance = user_neighbors_index, user_neighbors_row_splits, user_neighbors_importance
            if importance is not None and importance.ndim == 1 and importance.shape[0] == 0:
                importance = None
        else:
            index, row_splits, importance = self._search(out_positions, inp_positions, extents,
                                                         fixed_radius_search_hash_table,
                                                         ("out_positions", "inp_positions"))
        self._avg_neighbors = index.shape[0] / max(inp_positions.shape[0], 1)
        empty = torch.empty(0, dtype=inp_features.dtype, device=inp_features.device)
        inv = ops.invert_neighbors_list(out_positions.shape[0], index, row_splits,
                                        importance if importance is not None else empty)
        importance_sum = ops.reduce_subarrays_sum(importance, row_splits) if importance is not None else None
        inv_importance = inv.neighbors_attributes if importance is not None else None
        out = ops.continuous_conv_transpose(self.kernel, out_positions, out_importance, self._rank2(extents),
                                            self.offset, inp_positions, inp_features, index, importance_sum,
                                            row_splits, inv.neighbors_index, inv_importance,
                                            inv.neighbors_row_splits, **self._options())
        return self._finish(out, inp_features)


class FixedRadiusSearch(torch.nn.Module):
    """Fixed-radius search (``open3d.ml.torch.layers.FixedRadiusSearch``).

    ``FixedRadiusSearch(metric='L2', ignore_query_point=False, return_distances=False,
    max_hash_table_size=33554432, index_dtype=torch.int32)``;
    ``forward(points, queries, radius, points_row_splits=None, queries_row_splits=None,
    hash_table_size_factor=1/64, hash_table=None)`` returns the named tuple
    ``fixed_radius_search(neighbors_index, neighbors_row_splits, neighbors_distance)``.
    Without a ``hash_table`` geomops searches its own grid (no Open3D table is built, so
    ``hash_table_size_factor`` and ``max_hash_table_size`` do not matter); a given table is
    checked and used. Distances are differentiable w.r.t. points and queries.
    """

    def __init__(self, metric: Metric = 'L2', ignore_query_point: bool = False, return_distances: bool = False,
                 max_hash_table_size: int = 33554432, index_dtype: torch.dtype = torch.int32,
                 **kwargs: object) -> None:
        super().__init__()
        if index_dtype not in (torch.int32, torch.int64):
            raise TypeError(f"index_dtype must be torch.int32 or torch.int64, got {index_dtype!r}")
        self.metric = metric
        self.ignore_query_point = ignore_query_point
        self.return_distances = return_distances
        self.max_hash_table_size = max_hash_table_size
        self.index_dtype = index_dtype

    def forward(self, points: torch.Tensor, queries: torch.Tensor, radius: Union[float, torch.Tensor],
                points_row_splits: Optional[torch.Tensor] = None, queries_row_splits: Optional[torch.Tensor] = None,
                hash_table_size_factor: float = 1 / 64,
                hash_table: Optional[return_types.build_spatial_hash_table] = None
                ) -> return_types.fixed_radius_search:
        table = None
        if hash_table is not None:
            table = ops._hash_table(hash_table.hash_table_index, hash_table.hash_table_cell_splits,
                                    hash_table.hash_table_splits)
        return ops._fixed_radius_search(points, queries, radius, _row_splits(points_row_splits, points),
                                        _row_splits(queries_row_splits, queries), table, self.index_dtype, self.metric,
                                        self.ignore_query_point, self.return_distances)


class RadiusSearch(torch.nn.Module):
    """Per-query radius search (``open3d.ml.torch.layers.RadiusSearch``).

    ``RadiusSearch(metric='L2', ignore_query_point=False, return_distances=False,
    normalize_distances=False, index_dtype=torch.int32)``; ``forward(points, queries, radii,
    points_row_splits=None, queries_row_splits=None)`` returns the named tuple
    ``radius_search(neighbors_index, neighbors_row_splits, neighbors_distance)``. Distances are
    differentiable w.r.t. points, queries and (normalised) radii.
    """

    def __init__(self, metric: Metric = 'L2', ignore_query_point: bool = False, return_distances: bool = False,
                 normalize_distances: bool = False, index_dtype: torch.dtype = torch.int32,
                 **kwargs: object) -> None:
        super().__init__()
        if index_dtype not in (torch.int32, torch.int64):
            raise TypeError(f"index_dtype must be torch.int32 or torch.int64, got {index_dtype!r}")
        self.metric = metric
        self.ignore_query_point = ignore_query_point
        self.return_distances = return_distances
        self.normalize_distances = normalize_distances
        self.index_dtype = index_dtype

    def forward(self, points: torch.Tensor, queries: torch.Tensor, radii: torch.Tensor,
                points_row_splits: Optional[torch.Tensor] = None,
                queries_row_splits: Optional[torch.Tensor] = None) -> return_types.radius_search:
        return ops.radius_search(points, queries, radii, _row_splits(points_row_splits, points),
                                 _row_splits(queries_row_splits, queries), index_dtype=self.index_dtype,
                                 metric=self.metric, ignore_query_point=self.ignore_query_point,
                                 return_distances=self.return_distances,
                                 normalize_distances=self.normalize_distances)


class KNNSearch(torch.nn.Module):
    """k-nearest-neighbor search (``open3d.ml.torch.layers.KNNSearch``).

    ``KNNSearch(metric='L2', ignore_query_point=False, return_distances=False,
    index_dtype=torch.int32)``; ``forward(points, queries, k, points_row_splits=None,
    queries_row_splits=None)`` returns the named tuple ``knn_search(neighbors_index,
    neighbors_row_splits, neighbors_distance)``. Distances are differentiable w.r.t. points and
    queries.
    """

    def __init__(self, metric: Metric = 'L2', ignore_query_point: bool = False, return_distances: bool = False,
                 index_dtype: torch.dtype = torch.int32, **kwargs: object) -> None:
        super().__init__()
        if index_dtype not in (torch.int32, torch.int64):
            raise TypeError(f"index_dtype must be torch.int32 or torch.int64, got {index_dtype!r}")
        self.metric = metric
        self.ignore_query_point = ignore_query_point
        self.return_distances = return_distances
        self.index_dtype = index_dtype

    def forward(self, points: torch.Tensor, queries: torch.Tensor, k: int,
                points_row_splits: Optional[torch.Tensor] = None,
                queries_row_splits: Optional[torch.Tensor] = None) -> return_types.knn_search:
        return ops.knn_search(points, queries, k, _row_splits(points_row_splits, points),
                              _row_splits(queries_row_splits, queries), index_dtype=self.index_dtype,
                              metric=self.metric, ignore_query_point=self.ignore_query_point,
                              return_distances=self.return_distances)
