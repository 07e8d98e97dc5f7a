"""``open3d.ml.torch.ops`` on geomops: the same names, signatures, defaults and return types.

Every op takes and returns torch tensors (CPU or CUDA; the outputs are on the inputs' device and
share memory with geomops' results, no copies). The convolutions are ``torch.autograd.Function`` s
whose backward calls geomops' gradient kernels for exactly the inputs that need a gradient:
``filters``, ``inp_features``, the importances and (unlike Open3D) ``inp_positions``,
``out_positions`` and ``extents``. The searches' distances are differentiable w.r.t. ``points``,
``queries`` (and ``radii`` for normalised distances); ``reduce_subarrays_sum`` and
``invert_neighbors_list`` pass gradients to their values and attributes. float64 works wherever
float32 does (Open3D's ops are float32-only).

Differences from Open3D, all on purpose: results are deterministic (the neighbor order of a search
is fixed, the filter gradient is reduced in a fixed order); every argument is validated with an
error that names it; ``offset`` has no gradient (a backward that needs one raises instead of
returning nothing). See docs/torch.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional, TypedDict, TypeVar, Union, cast

import torch
from torch.autograd.function import once_differentiable

from .. import cconv as _cconv
from .. import search as _search
from .._device import AnyArray
from ..cconv import ContinuousConvGradients, ContinuousConvTransposeGradients, CoordinateMapping, Interpolation
from ..search import Metric, NeighborSearchResult, SpatialHashTable
from . import _convert as C
from . import return_types
from ._convert import IndexDType

__all__ = ["continuous_conv", "continuous_conv_transpose", "build_spatial_hash_table", "fixed_radius_search",
           "radius_search", "knn_search", "invert_neighbors_list", "reduce_subarrays_sum"]

_POSITIONS = frozenset(("inp_positions", "out_positions", "extents"))

# (needed names, the inputs as geomops arrays, the output gradient, options) -> {name: gradient}
_GradsOf = Callable[[set[str], list[Any], Any, dict[str, Any]], dict[str, Any]]
_Call = tuple[tuple[Any, ...], dict[str, Any]]  # positional and keyword arguments of a geomops op
_TensorGrads = tuple[Optional[torch.Tensor], ...]  # a backward's result: one per input of ``apply``
_SearchTuple = TypeVar("_SearchTuple", return_types.fixed_radius_search, return_types.radius_search,
                       return_types.knn_search)


class _ConvOptions(TypedDict):
    """The options of a convolution op (the first argument of the Functions' ``apply``)."""
    align_corners: bool
    coordinate_mapping: CoordinateMapping
    normalize: bool
    interpolation: Interpolation
    max_temp_mem_MB: int
    allow_tf32: bool


# ---- continuous convolutions -------------------------------------------------------------------

def _saved(ctx: Any, inputs: Sequence[object]) -> None:
    """Save a Function's inputs: tensors through ``save_for_backward``, the rest on ``ctx``."""
    ctx.save_for_backward(*(x if isinstance(x, torch.Tensor) else None for x in inputs))
    ctx.plain = {i: x for i, x in enumerate(inputs) if not isinstance(x, torch.Tensor)}


def _restored(ctx: Any) -> list[object]:
    return [ctx.plain.get(i, t) for i, t in enumerate(ctx.saved_tensors)]


def _needed(ctx: Any, names: Sequence[str], differentiable: frozenset[str], options: Mapping[str, object]
            ) -> set[str]:
    """The geomops gradient names the backward must compute (``ctx.needs_input_grad`` is shifted
    by the options argument of ``apply``)."""
    need = {n for n, flag in zip(names, ctx.needs_input_grad[1:]) if flag}
    if "offset" in need and not options["align_corners"]:
        raise RuntimeError("geomops gives no gradient w.r.t. offset (with align_corners=False it moves the filter "
                           "cells); pass offset.detach() or a tensor that does not require grad")
    return need & differentiable


def _gradients(needed: set[str], inputs: Sequence[object], names: Sequence[str], grads_of: _GradsOf,
               g: torch.Tensor, options: Mapping[str, object]) -> _TensorGrads:
    """Run the gradient op for ``needed`` (see :func:`_select`) and put the results in input order."""
    arrays: list[Any] = [C.array(x) for x in inputs]  # one per op argument, of its type
    result = grads_of(needed, arrays, C.array(g), dict(options, stream=C.stream(g, *inputs)))
    out: list[Optional[torch.Tensor]] = [None] * len(inputs)
    for i, name in enumerate(names):
        if name in needed:
            grad = C.tensor(result[name])
            if grad is not None and isinstance(inputs[i], torch.Tensor):
                grad = grad.reshape(inputs[i].shape)  # extents: [1, 1] <-> a 0-d tensor
            out[i] = grad
    return (None,) + tuple(out)


def _select(needed: set[str], backward: Callable[..., Union[ContinuousConvGradients, ContinuousConvTransposeGradients]],
            backprop_filter: Callable[..., AnyArray], backward_args: _Call, filter_args: _Call) -> dict[str, Any]:
    """Call the cheapest geomops gradient op for the names in ``needed``: the one-call backward
    with ``wrt`` when positions or extents are needed, the filter gradient alone when only it is,
    else the one-call backward with its default set. Returns ``{name: array}``."""
    if needed & _POSITIONS:
        return backward(*backward_args[0], wrt=sorted(needed), **backward_args[1])._asdict()
    if needed == {"filters"}:
        return {"filters": backprop_filter(*filter_args[0], **filter_args[1])}
    return backward(*backward_args[0], **backward_args[1])._asdict()


_FWD = ("filters", "out_positions", "extents", "offset", "inp_positions", "inp_features", "inp_importance",
        "neighbors_index", "neighbors_importance", "neighbors_row_splits")
_FWD_DIFF = frozenset(("filters", "out_positions", "extents", "inp_positions", "inp_features", "inp_importance",
                       "neighbors_importance"))


def _conv_grads(needed: set[str], a: list[Any], g: Any, opt: dict[str, Any]) -> dict[str, Any]:
    return _select(needed, _cconv.continuous_conv_backward, _cconv.continuous_conv_backprop_filter,
                   ((*a, g), opt), ((*a, g), opt))


class _ContinuousConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, options: _ConvOptions, *inputs: Optional[torch.Tensor]) -> torch.Tensor:
        _saved(ctx, inputs)
        ctx.options = options
        arrays: list[Any] = [C.array(x) for x in inputs]  # one per op argument, of its type
        return C.tensor(_cconv.continuous_conv(*arrays, **options, stream=C.stream(*inputs)))

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> _TensorGrads:
        needed = _needed(ctx, _FWD, _FWD_DIFF, ctx.options)
        if not needed:
            return (None,) * (1 + len(_FWD))
        return _gradients(needed, _restored(ctx), _FWD, _conv_grads, grad.contiguous(), ctx.options)


_TR = ("filters", "out_positions", "out_importance", "extents", "offset", "inp_positions", "inp_features",
       "inp_neighbors_index", "inp_neighbors_importance_sum", "inp_neighbors_row_splits", "neighbors_index",
       "neighbors_importance", "neighbors_row_splits")
_TR_DIFF = frozenset(("filters", "out_positions", "out_importance", "extents", "inp_positions", "inp_features",
                      "inp_neighbors_importance_sum", "neighbors_importance"))


def _transpose_grads(needed: set[str], a: list[Any], g: Any, opt: dict[str, Any]) -> dict[str, Any]:
    without_index = a[:7] + a[8:]  # the filter gradient op takes no inp_neighbors_index
    return _select(needed, _cconv.continuous_conv_transpose_backward,
                   _cconv.continuous_conv_transpose_backprop_filter, ((*a, g), opt), ((*without_index, g), opt))


class _ContinuousConvTranspose(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, options: _ConvOptions, *inputs: Optional[torch.Tensor]) -> torch.Tensor:
        _saved(ctx, inputs)
        ctx.options = options
        arrays: list[Any] = [C.array(x) for x in inputs]  # one per op argument, of its type
        return C.tensor(_cconv.continuous_conv_transpose(*arrays, **options, stream=C.stream(*inputs)))

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> _TensorGrads:
        needed = _needed(ctx, _TR, _TR_DIFF, ctx.options)
        if not needed:
            return (None,) * (1 + len(_TR))
        return _gradients(needed, _restored(ctx), _TR, _transpose_grads, grad.contiguous(), ctx.options)


def _apply(function: type[torch.autograd.Function], *args: object) -> torch.Tensor:
    """``function.apply(*args)``, typed (torch does not annotate ``Function.apply``)."""
    return cast(torch.Tensor, function.apply(*args))  # type: ignore[no-untyped-call]  # unannotated in torch


def _conv_options(align_corners: bool, coordinate_mapping: CoordinateMapping, normalize: bool,
                  interpolation: Interpolation, max_temp_mem_MB: int, allow_tf32: bool) -> _ConvOptions:
    return dict(align_corners=align_corners, coordinate_mapping=coordinate_mapping, normalize=normalize,
                interpolation=interpolation, max_temp_mem_MB=max_temp_mem_MB, allow_tf32=allow_tf32)


def continuous_conv(filters: torch.Tensor, out_positions: torch.Tensor, extents: torch.Tensor, offset: torch.Tensor,
                    inp_positions: torch.Tensor, inp_features: torch.Tensor, inp_importance: Optional[torch.Tensor],
                    neighbors_index: torch.Tensor, neighbors_importance: Optional[torch.Tensor],
                    neighbors_row_splits: torch.Tensor,
                    align_corners: bool = False, coordinate_mapping: CoordinateMapping = 'ball_to_cube_radial',
                    normalize: bool = False, interpolation: Interpolation = 'linear', max_temp_mem_MB: int = 64,
                    allow_tf32: bool = False) -> torch.Tensor:
    """Continuous convolution (``open3d.ml.torch.ops.continuous_conv``), differentiable.

    Arguments and semantics as :func:`geomops.continuous_conv` (see there for shapes), with the
    torch op's default ``align_corners=False``. Absent importances: None or an empty tensor.
    Gradients flow to ``filters``, ``inp_features``, ``inp_importance``,
    ``neighbors_importance``, ``inp_positions``, ``out_positions`` and ``extents``.

    Returns
    -------
    Tensor [No, Cout]
    """
    opt = _conv_options(align_corners, coordinate_mapping, normalize, interpolation, max_temp_mem_MB, allow_tf32)
    return _apply(_ContinuousConv, opt, filters, out_positions, extents, offset, inp_positions, inp_features,
                  inp_importance, neighbors_index, neighbors_importance, neighbors_row_splits)


def continuous_conv_transpose(filters: torch.Tensor, out_positions: torch.Tensor,
                              out_importance: Optional[torch.Tensor],
                              extents: torch.Tensor, offset: torch.Tensor, inp_positions: torch.Tensor,
                              inp_features: torch.Tensor, inp_neighbors_index: torch.Tensor,
                              inp_neighbors_importance_sum: Optional[torch.Tensor],
                              inp_neighbors_row_splits: torch.Tensor,
                              neighbors_index: torch.Tensor, neighbors_importance: Optional[torch.Tensor],
                              neighbors_row_splits: torch.Tensor, align_corners: bool = False,
                              coordinate_mapping: CoordinateMapping = 'ball_to_cube_radial', normalize: bool = False,
                              interpolation: Interpolation = 'linear', max_temp_mem_MB: int = 64,
                              allow_tf32: bool = False) -> torch.Tensor:
    """Transpose continuous convolution (``open3d.ml.torch.ops.continuous_conv_transpose``), differentiable.

    Arguments and semantics as :func:`geomops.continuous_conv_transpose`, with the torch op's
    default ``align_corners=False``. Gradients flow to ``filters``, ``inp_features``,
    ``out_importance``, ``neighbors_importance``, ``inp_neighbors_importance_sum`` (as an
    independent input), ``inp_positions``, ``out_positions`` and ``extents``.

    Returns
    -------
    Tensor [No, Cout]
    """
    opt = _conv_options(align_corners, coordinate_mapping, normalize, interpolation, max_temp_mem_MB, allow_tf32)
    return _apply(_ContinuousConvTranspose, opt, filters, out_positions, out_importance, extents, offset,
                  inp_positions, inp_features, inp_neighbors_index, inp_neighbors_importance_sum,
                  inp_neighbors_row_splits, neighbors_index, neighbors_importance, neighbors_row_splits)


# ---- list utilities ----------------------------------------------------------------------------

def _entry_rows(row_splits: torch.Tensor, num_entries: int) -> torch.Tensor:
    """The row of every entry of a compressed list (on the row splits' device)."""
    rs = row_splits.to(torch.int64)
    return torch.repeat_interleave(torch.arange(rs.shape[0] - 1, device=rs.device), rs[1:] - rs[:-1],
                                   output_size=num_entries)


class _ReduceSubarraysSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, values: torch.Tensor, row_splits: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(row_splits if isinstance(row_splits, torch.Tensor) else None)
        ctx.row_splits = None if isinstance(row_splits, torch.Tensor) else row_splits
        out = _cconv.reduce_subarrays_sum(C.array(values), C.array(row_splits), stream=C.stream(values, row_splits))
        ctx.num_values = len(values)  # after the op checked that values is 1-d
        return C.tensor(out)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Optional[torch.Tensor], None]:
        if not ctx.needs_input_grad[0] or ctx.num_values == 0:
            return None, None
        rs = ctx.saved_tensors[0] if ctx.row_splits is None else torch.as_tensor(ctx.row_splits)
        return grad[_entry_rows(rs.to(grad.device), ctx.num_values)], None


def reduce_subarrays_sum(values: torch.Tensor, row_splits: torch.Tensor) -> torch.Tensor:
    """Sum of each subarray ``values[row_splits[i]:row_splits[i+1]]`` (differentiable in ``values``).

    See :func:`geomops.reduce_subarrays_sum`. Returns a Tensor [len(row_splits) - 1] (an empty
    ``values`` gives an empty tensor, Open3D's convention for absent importances)."""
    return _apply(_ReduceSubarraysSum, values, row_splits)


def invert_neighbors_list(num_points: int, inp_neighbors_index: torch.Tensor, inp_neighbors_row_splits: torch.Tensor,
                          inp_neighbors_attributes: torch.Tensor) -> return_types.invert_neighbors_list:
    """Invert a neighbor list (``open3d.ml.torch.ops.invert_neighbors_list``).

    See :func:`geomops.invert_neighbors_list` (each output row lists its entries in ascending
    order of their input position: deterministic). The attributes are permuted with torch
    indexing, so gradients flow back to them.

    Returns
    -------
    invert_neighbors_list
        Named tuple ``(neighbors_index, neighbors_row_splits, neighbors_attributes)``.
    """
    index = C.tensor_argument(inp_neighbors_index, "inp_neighbors_index")
    attrs = C.tensor_argument(inp_neighbors_attributes, "inp_neighbors_attributes")
    if index.ndim != 1:  # geomops' message, before the permutation below needs the length
        raise ValueError(f"inp_neighbors_index must have 1 dimension, got shape {tuple(index.shape)} and dtype "
                         f"{C.array(index).dtype}")
    n = index.shape[0]
    has_attrs = not (attrs.ndim == 1 and attrs.shape[0] == 0)
    if has_attrs and (attrs.ndim < 1 or attrs.shape[0] != n):
        raise ValueError(f"inp_neighbors_attributes must have shape [{n}, ...] (one row per entry of "
                         f"inp_neighbors_index) or [0], got shape {tuple(attrs.shape)}")
    # the permutation comes back as the attribute of each entry, then moves the real attributes
    positions = torch.arange(n, dtype=torch.int64, device=index.device)
    inv = _cconv.invert_neighbors_list(num_points, C.array(index), C.array(inp_neighbors_row_splits),
                                       C.array(positions), stream=C.stream(index))
    perm = C.tensor(inv.neighbors_attributes)
    out_attrs = attrs[perm.to(attrs.device)] if has_attrs else attrs.clone()
    return return_types.invert_neighbors_list(C.tensor(inv.neighbors_index), C.tensor(inv.neighbors_row_splits),
                                              out_attrs)


# ---- neighbor searches -------------------------------------------------------------------------

def _distances(result: Union[return_types.fixed_radius_search, return_types.radius_search, return_types.knn_search],
               points: torch.Tensor, queries: torch.Tensor, metric: Metric, radii: Optional[torch.Tensor] = None
               ) -> torch.Tensor:
    """The search's distances, differentiable w.r.t. the points, queries (and ``radii`` of
    normalised distances) when one of them requires grad: the same values, with the derivative of
    the distance recomputed from the positions (L2 squared; L1 and Linf: torch's subgradients)."""
    dist = result.neighbors_distance
    tensors = [t for t in (points, queries, radii) if isinstance(t, torch.Tensor)]
    if not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors)) or dist.numel() == 0:
        return dist
    index = result.neighbors_index.to(torch.int64)
    rows = _entry_rows(result.neighbors_row_splits, index.shape[0])
    diff = queries[rows] - points[index]
    if metric == "L2":
        d = (diff * diff).sum(dim=1)
    elif metric == "L1":
        d = diff.abs().sum(dim=1)
    else:
        d = diff.abs().amax(dim=1)
    if radii is not None:
        r = radii[rows]
        d = d / (r * r if metric == "L2" else r)
    d = d.to(dist.dtype)
    return dist + (d - d.detach())  # the search's values, the recomputed derivative


def _search_result(kind: type[_SearchTuple], result: NeighborSearchResult, points: torch.Tensor, queries: torch.Tensor,
                   metric: Metric, radii: Optional[torch.Tensor] = None) -> _SearchTuple:
    r = [C.tensor(x) for x in result]
    r[2] = _distances(kind(*r), points, queries, metric, radii)
    return kind(*r)


def _default_splits(rs: Optional[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    return rs if rs is not None else torch.tensor([0, x.shape[0]], dtype=torch.int64, device=x.device)


def build_spatial_hash_table(points: torch.Tensor, radius: Union[float, torch.Tensor], points_row_splits: torch.Tensor,
                             hash_table_size_factor: Union[float, torch.Tensor], max_hash_table_size: int = 33554432
                             ) -> return_types.build_spatial_hash_table:
    """Open3D's spatial hash table of ``points`` for ``fixed_radius_search`` (see
    :func:`geomops.build_spatial_hash_table`).

    Returns
    -------
    build_spatial_hash_table
        Named tuple ``(hash_table_index, hash_table_cell_splits, hash_table_splits)``, int32.
    """
    table = _search.build_spatial_hash_table(C.array(points), C.scalar(radius, "radius"), C.array(points_row_splits),
                                             C.scalar(hash_table_size_factor, "hash_table_size_factor"),
                                             max_hash_table_size, stream=C.stream(points))
    out = return_types.build_spatial_hash_table(*(C.tensor(a) for a in table))
    # fixed_radius_search given these very tensors reuses the table (its checks and its search index)
    setattr(out.hash_table_index, "_geomops_table", (table, out.hash_table_cell_splits.data_ptr(),
                                                     out.hash_table_splits.data_ptr()))
    return out


def _hash_table(index: torch.Tensor, cell_splits: torch.Tensor, splits: torch.Tensor) -> SpatialHashTable:
    """A geomops table of the three arrays: the one :func:`build_spatial_hash_table` made, when
    these are its tensors, else the arrays themselves (checked against the points by the search)."""
    made: Optional[tuple[SpatialHashTable, int, int]] = getattr(index, "_geomops_table", None)
    if made is not None and made[1] == cell_splits.data_ptr() and made[2] == splits.data_ptr():
        return made[0]
    return _search.SpatialHashTable(cast(AnyArray, C.array(index)), cast(AnyArray, C.array(cell_splits)),
                                    cast(AnyArray, C.array(splits)))  # CUDA tensors: viewed by the search


def _fixed_radius_search(points: torch.Tensor, queries: torch.Tensor, radius: Union[float, torch.Tensor],
                         points_row_splits: torch.Tensor,
                         queries_row_splits: torch.Tensor, table: Optional[SpatialHashTable], index_dtype: IndexDType,
                         metric: Metric, ignore_query_point: bool, return_distances: bool
                         ) -> return_types.fixed_radius_search:
    result = _search.fixed_radius_search(C.array(points), C.array(queries), C.scalar(radius, "radius"),
                                         C.array(points_row_splits), C.array(queries_row_splits), table,
                                         index_dtype=C.index_dtype(index_dtype), metric=metric,
                                         ignore_query_point=ignore_query_point, return_distances=return_distances,
                                         stream=C.stream(points, queries))
    return _search_result(return_types.fixed_radius_search, result, points, queries, metric)


def fixed_radius_search(points: torch.Tensor, queries: torch.Tensor, radius: Union[float, torch.Tensor],
                        points_row_splits: torch.Tensor, queries_row_splits: torch.Tensor,
                        hash_table_splits: torch.Tensor, hash_table_index: torch.Tensor,
                        hash_table_cell_splits: torch.Tensor, index_dtype: IndexDType = 3, metric: Metric = 'L2',
                        ignore_query_point: bool = False, return_distances: bool = False
                        ) -> return_types.fixed_radius_search:
    """All points within ``radius`` (inclusive) of each query (``open3d.ml.torch.ops.fixed_radius_search``).

    Takes the three arrays of :func:`build_spatial_hash_table` (in this order: splits, index,
    cell splits, as Open3D's op); the table is checked against the points and radius (a table of
    another point set or radius raises ValueError). ``index_dtype``: 3 (int32) or 4 (int64), or a
    torch dtype. Distances (squared for L2) are differentiable w.r.t. points and queries. See
    :func:`geomops.fixed_radius_search`.

    Returns
    -------
    fixed_radius_search
        Named tuple ``(neighbors_index, neighbors_row_splits, neighbors_distance)``.
    """
    table = _hash_table(hash_table_index, hash_table_cell_splits, hash_table_splits)
    return _fixed_radius_search(points, queries, radius, points_row_splits, queries_row_splits, table, index_dtype,
                                metric, ignore_query_point, return_distances)


def radius_search(points: torch.Tensor, queries: torch.Tensor, radii: torch.Tensor, points_row_splits: torch.Tensor,
                  queries_row_splits: torch.Tensor, index_dtype: IndexDType = 3, metric: Metric = 'L2',
                  ignore_query_point: bool = False, return_distances: bool = False, normalize_distances: bool = False
                  ) -> return_types.radius_search:
    """All points strictly within ``radii[i]`` of query i (``open3d.ml.torch.ops.radius_search``).

    See :func:`geomops.radius_search` (geomops also has "Linf"). Distances are differentiable
    w.r.t. points, queries and, when normalised, radii.

    Returns
    -------
    radius_search
        Named tuple ``(neighbors_index, neighbors_row_splits, neighbors_distance)``.
    """
    result = _search.radius_search(C.array(points), C.array(queries), C.array(radii), C.array(points_row_splits),
                                   C.array(queries_row_splits), index_dtype=C.index_dtype(index_dtype), metric=metric,
                                   ignore_query_point=ignore_query_point, return_distances=return_distances,
                                   normalize_distances=normalize_distances, stream=C.stream(points, queries))
    return _search_result(return_types.radius_search, result, points, queries, metric,
                          radii if normalize_distances and isinstance(radii, torch.Tensor) else None)


def knn_search(points: torch.Tensor, queries: torch.Tensor, k: int, points_row_splits: torch.Tensor,
               queries_row_splits: torch.Tensor,
               index_dtype: IndexDType = 3, metric: Metric = 'L2', ignore_query_point: bool = False,
               return_distances: bool = False) -> return_types.knn_search:
    """The k nearest points of each query, sorted by distance (``open3d.ml.torch.ops.knn_search``).

    See :func:`geomops.knn_search`. Distances are differentiable w.r.t. points and queries.

    Returns
    -------
    knn_search
        Named tuple ``(neighbors_index, neighbors_row_splits, neighbors_distance)``.
    """
    result = _search.knn_search(C.array(points), C.array(queries), C.scalar(k, "k"), C.array(points_row_splits),
                                C.array(queries_row_splits), index_dtype=C.index_dtype(index_dtype), metric=metric,
                                ignore_query_point=ignore_query_point, return_distances=return_distances,
                                stream=C.stream(points, queries))
    return _search_result(return_types.knn_search, result, points, queries, metric)

