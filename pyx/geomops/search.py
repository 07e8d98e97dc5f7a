"""Neighbor search: Open3D-compatible spatial hash table, fixed-radius, radius and kNN search.

Semantics follow Open3D's ops (``open3d.ml.*.ops``): indices are global (not relative to the batch
item), queries of batch item ``b`` only see points of item ``b``, L2 distances are squared, L1 and
Linf distances are plain. ``fixed_radius_search`` includes points at exactly the radius (``<=``),
``radius_search`` excludes them (``<``). The call differs from Open3D's in a few places, e.g.
``fixed_radius_search`` takes one ``hash_table`` argument instead of Open3D's three arrays and the
row splits are optional: ``docs/search.md`` lists every difference.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Optional, Protocol, Union

import numpy as np
from numpy.typing import DTypeLike, NDArray

from . import _backend
from . import _device
from ._config import resolve_num_threads
from ._device import AnyArray, ArrayInput
from ._validate import (all_finite, as_array, check_bool, check_int, check_option, check_real, contiguous,
                        float_array, index_array, row_splits)

__all__ = ["NeighborSearchResult", "SpatialHashTable", "build_spatial_hash_table", "fixed_radius_search",
           "radius_search", "knn_search"]

if TYPE_CHECKING:
    from ._backend import Backend

METRICS = ("L1", "L2", "Linf")
Metric = Literal["L1", "L2", "Linf"]


HashTableInput = Union["SpatialHashTable", tuple[ArrayInput, ArrayInput, ArrayInput]]
"""A table of :func:`build_spatial_hash_table`, or Open3D's 3-tuple of arrays."""


class _SearchGrid(Protocol):
    """A binding's ``SearchGrid`` (``_cpu.pyi``, ``_cuda.pyi``)."""

    def matches(self, points: Any) -> bool: ...


class _SearchPlan(Protocol):
    """A binding's ``SearchPlan``: the count phase's result."""
    total: int

    def fill(self, index: Any, distance: Any = None) -> None: ...
_INT32_MAX = np.iinfo(np.int32).max
_INT64_MAX = int(np.iinfo(np.int64).max)


class NeighborSearchResult(NamedTuple):
    """Neighbor lists in compressed-row form.

    Attributes
    ----------
    neighbors_index : ndarray, [E] int32 or int64
        Global indices of the neighbors of all queries, query after query.
    neighbors_row_splits : ndarray, [Nq + 1] int64
        Neighbors of query ``i`` are ``neighbors_index[rs[i]:rs[i+1]]``.
    neighbors_distance : ndarray, [E] or [0], the points' dtype
        Distances (squared for L2) when requested, else an empty array.
    """

    neighbors_index: AnyArray
    neighbors_row_splits: AnyArray
    neighbors_distance: AnyArray


class _HashTableArrays(NamedTuple):
    hash_table_index: AnyArray
    hash_table_cell_splits: AnyArray
    hash_table_splits: AnyArray


class SpatialHashTable(_HashTableArrays):
    """Open3D's spatial hash table, plus what it was built with.

    Unpacks like Open3D's 3-tuple ``(hash_table_index [N] int32, hash_table_cell_splits [T+1] int32,
    hash_table_splits [B+1] int32)``. The attributes ``radius``, ``num_points``,
    ``points_row_splits`` and ``dtype`` let :func:`fixed_radius_search` reject a table built for
    another radius or point set (Open3D silently returns wrong neighbors then). The search index
    built from it on first use is cached on the table, so reusing a table saves that work.
    """

    radius: float
    num_points: int
    points_row_splits: NDArray[np.int64]
    dtype: np.dtype[Any]
    _grid: dict[tuple[str, str], _SearchGrid]

    def __getstate__(self) -> dict[str, Any]:  # the cached index is native memory: rebuilt after unpickling
        return {k: v for k, v in self.__dict__.items() if k != "_grid"}


# ---------------------------------------------------------------------------------------------
# validation helpers (private). They take NumPy and device arrays alike (same messages); device
# arrays are checked on their device and come back as DeviceArrays (see _validate).

def _points(x: object, name: str, dtype: Optional[DTypeLike] = None) -> AnyArray:
    if dtype is not None and x is not None and not isinstance(x, np.ndarray) and not _device.is_device_array(x):
        x = np.asarray(x)  # lists of Python floats take the points' dtype; arrays must match it
        if x.dtype.kind in "fiu":
            x = x.astype(dtype)
    a = float_array(x, name, shape=(None, 3), dtype=dtype, dtype_of=None if dtype is None else "points")
    if a.size and not all_finite(a):
        raise ValueError(f"{name} must be finite (no NaN or inf coordinates)")
    return a


def _default_splits(n: int, like: object) -> AnyArray:
    """The one-item row splits [0, n], where ``like`` is (host or its device)."""
    splits = np.array([0, n], np.int64)
    if isinstance(like, _device.DeviceArray):
        return _device.from_host(like._module, splits, like.device_id)
    return splits


def _item_splits(x: ArrayInput, name: str, total: int, total_of: str) -> AnyArray:
    """Validated row splits of batch items (at least one item)."""
    rs = row_splits(x, name, total=total, total_of=total_of)
    if rs.shape[0] < 2:
        raise ValueError(f"{name} must have at least 2 entries (batch size + 1, with at least one batch item), "
                         f"got {rs.shape[0]}")
    return rs


def _batch_splits(points_row_splits: Optional[ArrayInput], queries_row_splits: Optional[ArrayInput], num_points: int,
                  num_queries: int, like: object = None) -> tuple[AnyArray, AnyArray]:
    """Validated batch row splits; absent ones default to one item, on the device of ``like``
    (the points) when it is a DeviceArray."""
    ps = (_default_splits(num_points, like) if points_row_splits is None
          else _item_splits(points_row_splits, "points_row_splits", num_points, "points"))
    qs = (_default_splits(num_queries, like) if queries_row_splits is None
          else _item_splits(queries_row_splits, "queries_row_splits", num_queries, "queries"))
    if ps.shape[0] != qs.shape[0]:
        raise ValueError("points_row_splits and queries_row_splits must have the same length (batch size + 1), "
                         f"got {ps.shape[0]} and {qs.shape[0]}")
    return ps, qs


def _index_dtype(index_dtype: DTypeLike) -> np.dtype[Any]:
    try:
        dt = np.dtype(index_dtype)
    except TypeError:
        raise TypeError(f"index_dtype must be int32 or int64, got {index_dtype!r}") from None
    if dt not in (np.dtype(np.int32), np.dtype(np.int64)):
        raise TypeError(f"index_dtype must be int32 or int64, got {dt}")
    return dt


def _check_index_capacity(num_points: int, index_dtype: DTypeLike) -> None:
    """int32 indices must hold every point index; refuse instead of wrapping around."""
    if index_dtype == np.dtype(np.int32) and num_points - 1 > _INT32_MAX:
        raise ValueError(f"index_dtype int32 cannot hold the indices of {num_points} points "
                         f"(max index {_INT32_MAX}); use index_dtype=np.int64")


def _metric(metric: Metric) -> str:
    return check_option(metric, "metric", METRICS)


def _on(be: Backend, a: AnyArray) -> AnyArray:
    """A validated host array in backend ``be``'s memory (the array itself on the CPU)."""
    return be.from_host(a) if isinstance(a, np.ndarray) else a


def _on_backend(be: Backend, args: _SearchArgs) -> _SearchArgs:
    """The validated arguments with their arrays in backend ``be``'s memory."""
    return args._replace(points=_on(be, args.points), queries=_on(be, args.queries),
                         points_splits=_on(be, args.points_splits), queries_splits=_on(be, args.queries_splits))


def _fill(be: Backend, plan: _SearchPlan, row_splits_out: AnyArray, args: _SearchArgs) -> NeighborSearchResult:
    """The fill phase of a search whose count phase returned ``plan``: the outputs are allocated
    here, in the backend's memory, once the count is known (the op call brings them to the host
    for host inputs)."""
    index = be.empty((plan.total,), args.index_dtype)
    distance = be.empty((plan.total if args.return_distances else 0,), args.points.dtype)
    plan.fill(index, distance if args.return_distances else None)
    return NeighborSearchResult(index, row_splits_out, distance)


def _host(a: AnyArray) -> NDArray[Any]:
    """A small validated array (row splits) on the host."""
    return a if isinstance(a, np.ndarray) else a.get()


def _grid_key(be: Backend) -> tuple[str, str]:
    """Where a cached search grid lives: a grid is only ever handed back to the kernels that
    built it (a CPU grid never reaches CUDA, nor one device's grid another)."""
    return be.kernels.__name__, be.device


# ---------------------------------------------------------------------------------------------
# build_spatial_hash_table

class _SearchArgs(NamedTuple):
    """Validated arguments shared by the three searches."""
    points: AnyArray
    queries: AnyArray
    points_splits: AnyArray
    queries_splits: AnyArray
    index_dtype: np.dtype[Any]
    metric: str
    ignore_query_point: bool
    return_distances: bool
    num_threads: int

    def to_backend(self, be: Backend) -> _SearchArgs:
        """These arguments with every NumPy array copied to ``be``'s memory (``be.from_host``;
        the same tuple on the CPU backend). For NumPy inputs run with ``device="cuda"``."""
        return self._replace(points=be.from_host(self.points), queries=be.from_host(self.queries),
                             points_splits=be.from_host(self.points_splits),
                             queries_splits=be.from_host(self.queries_splits))


def _search_args(points: ArrayInput, queries: ArrayInput, points_row_splits: Optional[ArrayInput],
                 queries_row_splits: Optional[ArrayInput], index_dtype: DTypeLike, metric: Metric,
                 ignore_query_point: bool, return_distances: bool, num_threads: Optional[int],
                 check: Optional[Callable[[AnyArray, AnyArray], Any]] = None) -> tuple[_SearchArgs, Any]:
    """Validate what every search takes; ``check(points, queries)`` validates op-specific
    arguments right after the point sets (so errors come in signature order)."""
    pts = _points(points, "points")
    qs = _points(queries, "queries", dtype=pts.dtype)
    extra = check(pts, qs) if check is not None else None
    ps, qsp = _batch_splits(points_row_splits, queries_row_splits, pts.shape[0], qs.shape[0], like=pts)
    dt = _index_dtype(index_dtype)
    _check_index_capacity(pts.shape[0], dt)
    args = _SearchArgs(pts, qs, ps, qsp, dt, _metric(metric), check_bool(ignore_query_point, "ignore_query_point"),
                       check_bool(return_distances, "return_distances"), resolve_num_threads(num_threads))
    return args, extra


def build_spatial_hash_table(points: ArrayInput, radius: float, points_row_splits: Optional[ArrayInput] = None,
                             hash_table_size_factor: float = 1 / 64, max_hash_table_size: int = 33554432,
                             num_threads: Optional[int] = None, *, device: Optional[str] = None,
                             stream: object = None) -> SpatialHashTable:
    """Build Open3D's spatial hash table of a point set for a fixed-radius search.

    The table is identical to Open3D's (same voxel size ``2*radius``, hash function and table sizes
    ``T_b = min(max(int(factor*n_b), 1), max_hash_table_size)``), except that the points inside a
    bin are in ascending index order (Open3D's order there is nondeterministic).

    Parameters
    ----------
    points : array_like, [N, 3] float32 or float64
        The point set.
    radius : float
        Search radius the table is meant for (>= 0).
    points_row_splits : array_like, [B+1] int64, optional
        Batch item ``b`` is ``points[rs[b]:rs[b+1]]``. Default: one item.
    hash_table_size_factor : float
        Table size per item relative to its point count (> 0). Default 1/64.
    max_hash_table_size : int
        Upper bound of each item's table size. Default 33554432.
    num_threads : int, optional
        OpenMP threads (default: :func:`geomops.get_num_threads`).
    device : {None, "cpu", "cuda", "cuda:N"}, keyword-only
        Where to run. None: where the array inputs are (the CPU for NumPy inputs). ``"cuda"`` with
        NumPy inputs copies them to the GPU and the results back. Device arrays (anything with
        ``__cuda_array_interface__`` or CUDA ``__dlpack__``: CuPy, PyTorch, JAX, DeviceArray) run on
        their device and give :class:`geomops.DeviceArray` results. See docs/cuda.md.
    stream : None, int or CUDA stream object, keyword-only
        CUDA only: run on this stream (a ``cudaStream_t`` as an int, or an object with
        ``__cuda_stream__``, ``.cuda_stream`` or ``.ptr``) and return without waiting; results are
        marked as pending on it. None: a stream of geomops', waited for before returning.

    Returns
    -------
    SpatialHashTable
        ``(hash_table_index [N] int32, hash_table_cell_splits [sum T_b + 1] int32,
        hash_table_splits [B+1] int32)`` with attributes ``radius``, ``num_points``,
        ``points_row_splits`` and ``dtype``.
    """
    with _backend.op_call(device, stream, points=points, points_row_splits=points_row_splits) as c:
        be = c.be
        pts = _points(c.args["points"], "points")
        radius = check_real(radius, "radius", nonnegative=True)
        factor = check_real(hash_table_size_factor, "hash_table_size_factor", positive=True)
        max_size = check_int(max_hash_table_size, "max_hash_table_size", minimum=1)
        n = pts.shape[0]
        ps = (np.array([0, n], np.int64) if points_row_splits is None
              else _item_splits(c.args["points_row_splits"], "points_row_splits", n, "points"))
        nt = resolve_num_threads(num_threads)
        if n > _INT32_MAX:
            raise ValueError(f"points: the hash table stores int32 indices and cannot hold {n} points")
        ps_host = _host(ps)
        sizes = [min(max(int(factor * int(cnt)), 1), max_size) for cnt in np.diff(ps_host)]
        total = sum(sizes)
        if total > _INT32_MAX - 1:
            raise ValueError(f"hash_table_size_factor / max_hash_table_size give {total} cells in all, more than "
                             "an int32 table can hold")
        table_splits = np.zeros(len(sizes) + 1, np.int64)
        table_splits[1:] = np.cumsum(sizes, dtype=np.int64)
        index = be.empty((n,), np.int32)
        cell_splits = be.empty((total + 1,), np.int32)
        be.kernels.search_build_hash_table(_on(be, pts), _on(be, ps), radius, _on(be, table_splits), index,
                                           cell_splits, nt)
        splits32 = table_splits.astype(np.int32)
        table = SpatialHashTable(*c.result((index, cell_splits, be.from_host(splits32) if c.on_device else splits32)))
    table.radius = radius
    table.num_points = n
    table.points_row_splits = ps_host
    table.dtype = pts.dtype
    return table


def _int32_vector(x: object, name: str) -> AnyArray:
    a = as_array(x, name) if _device.is_device_array(x) else np.asarray(x)
    if a.dtype != np.int32:
        raise TypeError(f"{name} must be int32 (as build_spatial_hash_table returns it), got dtype {a.dtype}")
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(a.shape)}")
    return contiguous(a)


def _table_arrays(hash_table: HashTableInput, num_points: int, num_items: int) -> tuple[AnyArray, AnyArray, AnyArray]:
    """Shapes, dtypes and ranges of a raw (index, cell_splits, splits) table."""
    if not isinstance(hash_table, (tuple, list)) or len(hash_table) != 3:
        raise TypeError("hash_table must be the 3-tuple (hash_table_index, hash_table_cell_splits, "
                        f"hash_table_splits) returned by build_spatial_hash_table, got {type(hash_table).__name__}")
    index = index_array(hash_table[0], "hash_table.hash_table_index", num_points=num_points, points_of="points",
                        allow=(np.dtype(np.int32),))
    cells = _int32_vector(hash_table[1], "hash_table.hash_table_cell_splits")
    splits = _int32_vector(hash_table[2], "hash_table.hash_table_splits")
    if index.shape[0] != num_points:
        raise ValueError(f"hash_table.hash_table_index has {index.shape[0]} entries (shape[0]) but points has "
                         f"{num_points} points (points.shape[0]); it needs one entry per point: the table was built "
                         "for another point set")
    if splits.shape[0] != num_items + 1:
        raise ValueError(f"hash_table.hash_table_splits has {splits.shape[0]} entries (shape[0]) but "
                         f"points_row_splits has {num_items + 1} (batch size + 1): the table was built for other "
                         "row splits")
    if isinstance(splits, _device.DeviceArray):
        s = _device.stats(splits)
        bad_splits = s.first != 0 or s.nonincreasing > 0 or s.last != cells.shape[0] - 1
    else:
        bad_splits = splits[0] != 0 or np.any(np.diff(splits) < 1) or splits[-1] != cells.shape[0] - 1
    if bad_splits:
        raise ValueError("hash_table.hash_table_splits must start at 0, grow by >= 1 per batch item and end at "
                         "len(hash_table_cell_splits) - 1")
    if isinstance(cells, _device.DeviceArray):
        c = _device.stats(cells) if cells.size else None
        bad_cells = c is None or c.first != 0 or c.decreasing > 0 or c.last != num_points
    else:
        bad_cells = cells[0] != 0 or np.any(np.diff(cells) < 0) or cells[-1] != num_points
    if bad_cells:
        raise ValueError(f"hash_table.hash_table_cell_splits must start at 0, be non-decreasing and end at "
                         f"{num_points} (points.shape[0])")
    return index, cells, splits.astype(np.int64)


def _grid_for_table(be: Backend, hash_table: HashTableInput, a: _SearchArgs, d: _SearchArgs,
                    radius: float) -> _SearchGrid:
    """The search grid for a user-supplied hash table, after checking the table fits the call
    (``a``: the validated arguments, ``d``: the same in the backend's memory)."""
    pts, ps, nt = a.points, a.points_splits, a.num_threads
    if isinstance(hash_table, SpatialHashTable) and hasattr(hash_table, "radius"):
        if hash_table.dtype != pts.dtype:
            raise ValueError(f"hash_table was built from {hash_table.dtype} points, but points are {pts.dtype}")
        if hash_table.num_points != pts.shape[0]:
            raise ValueError(f"hash_table was built for {hash_table.num_points} points, but points has "
                             f"{pts.shape[0]}: it belongs to another point set")
        ps_host = _host(ps)
        if not np.array_equal(hash_table.points_row_splits, ps_host):
            raise ValueError("hash_table was built with other points_row_splits "
                             f"({hash_table.points_row_splits.tolist()[:8]} vs {ps_host.tolist()[:8]})")
        with np.errstate(over="ignore"):  # a radius beyond float32's range is inf for float32 points
            other_radius = pts.dtype.type(hash_table.radius) != pts.dtype.type(radius)
        if other_radius:
            raise ValueError(f"hash_table was built for radius={hash_table.radius}, but radius={radius}: build a "
                             "table for this radius")
        grid: Optional[_SearchGrid] = getattr(hash_table, "_grid", {}).get(_grid_key(be))
        if grid is not None:
            if not grid.matches(d.points):
                raise ValueError("hash_table was built for another point set: points has its size but other "
                                 "coordinates")
            return grid
    index, cells, splits = _table_arrays(hash_table, pts.shape[0], ps.shape[0] - 1)
    if not be.kernels.search_verify_hash_table(d.points, d.points_splits, radius, _on(be, splits), _on(be, index),
                                               _on(be, cells), nt):
        raise ValueError(f"hash_table is not the spatial hash table of points for radius={radius}: it was built for "
                         "another radius, point set or points_row_splits")
    grid = be.kernels.search_grid_build(d.points, d.points_splits, radius, nt)
    if isinstance(hash_table, SpatialHashTable):
        if getattr(hash_table, "_grid", None) is None:
            hash_table._grid = {}
        hash_table._grid[_grid_key(be)] = grid
    return grid


# ---------------------------------------------------------------------------------------------
# fixed_radius_search

def fixed_radius_search(points: ArrayInput, queries: ArrayInput, radius: float,
                        points_row_splits: Optional[ArrayInput] = None, queries_row_splits: Optional[ArrayInput] = None,
                        hash_table: Optional[SpatialHashTable] = None, hash_table_size_factor: float = 1 / 64,
                        index_dtype: DTypeLike = np.int32, metric: Metric = 'L2', ignore_query_point: bool = False,
                        return_distances: bool = False, sort: bool = False, num_threads: Optional[int] = None, *,
                        device: Optional[str] = None, stream: object = None) -> NeighborSearchResult:
    """All points within a fixed radius of each query (inclusive: ``dist <= radius``).

    Parameters
    ----------
    points : array_like, [Np, 3] float32 or float64
        The point set searched.
    queries : array_like, [Nq, 3], same dtype as points
        The query positions.
    radius : float
        Search radius (>= 0, finite). Compared as ``sum(d**2) <= radius**2`` (L2),
        ``sum(|d|) <= radius`` (L1) or ``max(|d|) <= radius`` (Linf), in the points' precision.
    points_row_splits, queries_row_splits : array_like, [B+1] int64, optional
        Batch items; queries of item b only see points of item b. Default: one item.
    hash_table : SpatialHashTable or 3-tuple, optional
        A table from :func:`build_spatial_hash_table` for these points and this radius. It is
        checked (a table for another radius or point set raises ``ValueError``), and the search
        index derived from it is cached on a :class:`SpatialHashTable` for reuse.
    hash_table_size_factor : float
        Accepted for Open3D compatibility only: it is validated (> 0) and otherwise unused (the
        search grid does not depend on it; a ``hash_table`` keeps the size it was built with).
    index_dtype : {np.int32, np.int64}
        Dtype of ``neighbors_index``.
    metric : {"L2", "L1", "Linf"}
        Distance metric.
    ignore_query_point : bool
        Skip points whose three coordinates equal the query's exactly (so duplicates too).
    return_distances : bool
        Also return the distances (squared for L2).
    sort : bool
        Give each query's neighbors in ascending index order. Without it the order is fixed by the
        search (the same for any thread count) but not meaningful.
    num_threads : int, optional
        OpenMP threads (default: :func:`geomops.get_num_threads`).
    device : {None, "cpu", "cuda", "cuda:N"}, keyword-only
        Where to run. None: where the array inputs are (the CPU for NumPy inputs). ``"cuda"`` with
        NumPy inputs copies them to the GPU and the results back. Device arrays (anything with
        ``__cuda_array_interface__`` or CUDA ``__dlpack__``: CuPy, PyTorch, JAX, DeviceArray) run on
        their device and give :class:`geomops.DeviceArray` results. See docs/cuda.md.
    stream : None, int or CUDA stream object, keyword-only
        CUDA only: run on this stream (a ``cudaStream_t`` as an int, or an object with
        ``__cuda_stream__``, ``.cuda_stream`` or ``.ptr``) and return without waiting; results are
        marked as pending on it. None: a stream of geomops', waited for before returning.

    Returns
    -------
    NeighborSearchResult
        ``(neighbors_index [E], neighbors_row_splits [Nq+1] int64, neighbors_distance [E] or [0])``.
    """
    def check(pts: AnyArray, qs: AnyArray) -> float:
        r = check_real(radius, "radius", nonnegative=True)
        check_real(hash_table_size_factor, "hash_table_size_factor", positive=True)
        return r

    table0 = hash_table[0] if isinstance(hash_table, (tuple, list)) and len(hash_table) == 3 else None
    with _backend.op_call(device, stream, points=points, queries=queries, points_row_splits=points_row_splits,
                          queries_row_splits=queries_row_splits, hash_table=table0) as c:
        be = c.be
        a, r = _search_args(c.args["points"], c.args["queries"], c.args["points_row_splits"],
                            c.args["queries_row_splits"], index_dtype, metric, ignore_query_point, return_distances,
                            num_threads, check)
        sort = check_bool(sort, "sort")
        d = _on_backend(be, a)
        if hash_table is None:
            grid = be.kernels.search_grid_build(d.points, d.points_splits, r, a.num_threads)
        else:
            grid = _grid_for_table(be, hash_table, a, d, r)
        rs = be.empty((a.queries.shape[0] + 1,), np.int64)
        plan = be.kernels.search_fixed_radius_count(grid, d.queries, d.queries_splits, rs, a.metric,
                                                    a.ignore_query_point, a.return_distances, sort,
                                                    a.index_dtype == np.dtype(np.int64), a.num_threads)
        return c.result(_fill(be, plan, rs, a))


# ---------------------------------------------------------------------------------------------
# radius_search

def _radii(radii: ArrayInput, num_queries: int, dtype: DTypeLike) -> AnyArray:
    """One radius per query: an array [num_queries], or a scalar given to every query."""
    if (isinstance(radii, np.ndarray) and radii.ndim == 0 or _is_device_scalar(radii)
            or isinstance(radii, (numbers.Real, np.generic)) and not isinstance(radii, (bool, np.bool_))):
        radii = check_real(radii, "radii", nonnegative=True)  # one radius for all: checked even without queries
    if isinstance(radii, np.ndarray) or _device.is_device_array(radii):
        r = float_array(radii, "radii", dtype=dtype, dtype_of="points")
    else:  # Python floats / lists take the points' dtype
        r = np.asarray(radii)
        if r.dtype == np.bool_ or not (np.issubdtype(r.dtype, np.floating) or np.issubdtype(r.dtype, np.integer)):
            raise TypeError(f"radii must be a real number or an array of them, got dtype {r.dtype}")
        # one radius for every query from a scalar (np.ascontiguousarray would make it [1])
        r = np.full(num_queries, r, dtype) if r.ndim == 0 else np.ascontiguousarray(r, dtype=dtype)
    if r.ndim != 1:
        raise ValueError(f"radii must be a scalar or have shape [{num_queries}] (one radius per query), got shape "
                         f"{tuple(r.shape)}")
    if r.shape[0] != num_queries:
        raise ValueError(f"radii has {r.shape[0]} entr{'y' if r.shape[0] == 1 else 'ies'} (shape[0]) but queries has "
                         f"{num_queries} points (queries.shape[0]); pass one radius per query, or a scalar for all")
    if r.size and not all_finite(r, at_least=0):
        raise ValueError("radii must be finite and >= 0 (found a negative, NaN or inf radius)")
    return r


def _is_device_scalar(x: object) -> bool:
    return _device.is_device_array(x) and _device.shape_of(x) == ()


def radius_search(points: ArrayInput, queries: ArrayInput, radii: ArrayInput,
                  points_row_splits: Optional[ArrayInput] = None, queries_row_splits: Optional[ArrayInput] = None,
                  index_dtype: DTypeLike = np.int32, metric: Metric = 'L2', ignore_query_point: bool = False,
                  return_distances: bool = False, normalize_distances: bool = False, sort: bool = False,
                  num_threads: Optional[int] = None, *, device: Optional[str] = None,
                  stream: object = None) -> NeighborSearchResult:
    """All points strictly within a per-query radius of each query (``dist < radii[i]``).

    Parameters
    ----------
    points : array_like, [Np, 3] float32 or float64
        The point set searched.
    queries : array_like, [Nq, 3], same dtype as points
        The query positions.
    radii : float or array_like, [Nq], same dtype as points
        One radius per query (>= 0, finite), or a scalar used for every query (Open3D needs an
        array). A Python float or list is converted to the points' dtype; an ndarray of the
        other float dtype is rejected.
    points_row_splits, queries_row_splits : array_like, [B+1] int64, optional
        Batch items; queries of item b only see points of item b.
    index_dtype : {np.int32, np.int64}
        Dtype of ``neighbors_index``.
    metric : {"L2", "L1", "Linf"}
        Distance metric (Open3D offers L1 and L2 only).
    ignore_query_point : bool
        Skip points whose three coordinates equal the query's exactly.
    return_distances : bool
        Also return the distances (squared for L2).
    normalize_distances : bool
        Divide the returned distances by ``r**2`` (L2) or ``r`` (L1, Linf).
    sort : bool
        Give each query's neighbors in ascending index order.
    num_threads : int, optional
        OpenMP threads.
    device : {None, "cpu", "cuda", "cuda:N"}, keyword-only
        Where to run. None: where the array inputs are (the CPU for NumPy inputs). ``"cuda"`` with
        NumPy inputs copies them to the GPU and the results back. Device arrays (anything with
        ``__cuda_array_interface__`` or CUDA ``__dlpack__``: CuPy, PyTorch, JAX, DeviceArray) run on
        their device and give :class:`geomops.DeviceArray` results. See docs/cuda.md.
    stream : None, int or CUDA stream object, keyword-only
        CUDA only: run on this stream (a ``cudaStream_t`` as an int, or an object with
        ``__cuda_stream__``, ``.cuda_stream`` or ``.ptr``) and return without waiting; results are
        marked as pending on it. None: a stream of geomops', waited for before returning.

    Returns
    -------
    NeighborSearchResult
    """
    with _backend.op_call(device, stream, points=points, queries=queries, radii=radii,
                          points_row_splits=points_row_splits, queries_row_splits=queries_row_splits) as c:
        be = c.be
        a, r = _search_args(c.args["points"], c.args["queries"], c.args["points_row_splits"],
                            c.args["queries_row_splits"], index_dtype, metric, ignore_query_point, return_distances,
                            num_threads, lambda pts, qs: _radii(c.args["radii"], qs.shape[0], pts.dtype))
        normalize = check_bool(normalize_distances, "normalize_distances")
        sort = check_bool(sort, "sort")
        d = _on_backend(be, a)
        rs = be.empty((a.queries.shape[0] + 1,), np.int64)
        plan = be.kernels.search_radius_count(d.points, d.points_splits, d.queries, d.queries_splits, _on(be, r),
                                              rs, a.metric, a.ignore_query_point, a.return_distances, normalize,
                                              sort, a.index_dtype == np.dtype(np.int64), a.num_threads)
        return c.result(_fill(be, plan, rs, a))


# ---------------------------------------------------------------------------------------------
# knn_search

def knn_search(points: ArrayInput, queries: ArrayInput, k: int, points_row_splits: Optional[ArrayInput] = None,
               queries_row_splits: Optional[ArrayInput] = None, index_dtype: DTypeLike = np.int32,
               metric: Metric = 'L2', ignore_query_point: bool = False, return_distances: bool = False,
               num_threads: Optional[int] = None, *, device: Optional[str] = None,
               stream: object = None) -> NeighborSearchResult:
    """The k nearest points of each query.

    Each query gets ``min(k, n_b)`` neighbors (``n_b``: points in its batch item) sorted by
    distance, ties broken by the smaller index. ``ignore_query_point`` then removes the found
    points equal to the query, as Open3D does (so k=1 with queries == points gives no neighbor).

    Parameters
    ----------
    points : array_like, [Np, 3] float32 or float64
        The point set searched.
    queries : array_like, [Nq, 3], same dtype as points
        The query positions.
    k : int
        Number of neighbors (> 0).
    points_row_splits, queries_row_splits : array_like, [B+1] int64, optional
        Batch items; queries of item b only see points of item b.
    index_dtype : {np.int32, np.int64}
        Dtype of ``neighbors_index``.
    metric : {"L2", "L1", "Linf"}
        Distance metric (Open3D offers L1 and L2 only).
    ignore_query_point : bool
        Remove found points whose three coordinates equal the query's exactly.
    return_distances : bool
        Also return the distances (squared for L2, plain for L1 / Linf).
    num_threads : int, optional
        OpenMP threads.
    device : {None, "cpu", "cuda", "cuda:N"}, keyword-only
        Where to run. None: where the array inputs are (the CPU for NumPy inputs). ``"cuda"`` with
        NumPy inputs copies them to the GPU and the results back. Device arrays (anything with
        ``__cuda_array_interface__`` or CUDA ``__dlpack__``: CuPy, PyTorch, JAX, DeviceArray) run on
        their device and give :class:`geomops.DeviceArray` results. See docs/cuda.md.
    stream : None, int or CUDA stream object, keyword-only
        CUDA only: run on this stream (a ``cudaStream_t`` as an int, or an object with
        ``__cuda_stream__``, ``.cuda_stream`` or ``.ptr``) and return without waiting; results are
        marked as pending on it. None: a stream of geomops', waited for before returning.

    Returns
    -------
    NeighborSearchResult
    """
    def check(pts: AnyArray, qs: AnyArray) -> int:
        kk = check_int(k, "k")
        if kk < 1:
            raise ValueError(f"k must be greater than zero, got {kk}")
        return min(kk, _INT64_MAX)  # a query gets min(k, n_b) neighbors: any larger k means "all"

    with _backend.op_call(device, stream, points=points, queries=queries, points_row_splits=points_row_splits,
                          queries_row_splits=queries_row_splits) as c:
        be = c.be
        a, kk = _search_args(c.args["points"], c.args["queries"], c.args["points_row_splits"],
                             c.args["queries_row_splits"], index_dtype, metric, ignore_query_point, return_distances,
                             num_threads, check)
        d = _on_backend(be, a)
        rs = be.empty((a.queries.shape[0] + 1,), np.int64)
        plan = be.kernels.search_knn_count(d.points, d.points_splits, d.queries, d.queries_splits, kk, rs, a.metric,
                                           a.ignore_query_point, a.return_distances,
                                           a.index_dtype == np.dtype(np.int64), a.num_threads)
        return c.result(_fill(be, plan, rs, a))
