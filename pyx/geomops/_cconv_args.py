"""Validation of continuous-convolution arguments (shared by the forward and transpose ops).

Each ``prepare_*`` function returns a :class:`ConvCall`: every array validated, C-contiguous,
in the call's float dtype, with absent optional inputs as ``None``. Nothing in C checks again.
Device arrays are accepted wherever NumPy arrays are (same messages; see ``_validate``): a call
on device inputs gives a ConvCall of DeviceArrays, and :meth:`ConvCall.to_backend` moves a
validated NumPy call to a device.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Union

import numpy as np
from numpy.typing import DTypeLike

from . import _device
from ._device import AnyArray

if TYPE_CHECKING:
    from ._backend import Backend
from . import _validate as V
from ._config import resolve_num_threads

COORDINATE_MAPPINGS = ("ball_to_cube_radial", "ball_to_cube_volume_preserving", "identity")
INTERPOLATIONS = ("linear", "linear_border", "nearest_neighbor")

# The inputs the backward functions differentiate (``wrt``), in the order of their results.
POSITION_GRADIENTS = ("inp_positions", "out_positions", "extents")
FORWARD_GRADIENTS = ("filters", "inp_features", "inp_importance", "neighbors_importance") + POSITION_GRADIENTS
TRANSPOSE_GRADIENTS = ("filters", "inp_features", "out_importance", "neighbors_importance",
                       "inp_neighbors_importance_sum") + POSITION_GRADIENTS


@dataclass(frozen=True)
class Options:
    align_corners: bool
    coordinate_mapping: int
    interpolation: int
    normalize: bool
    max_temp_bytes: int
    output_dtype: Optional[np.dtype[Any]]  # None: the inputs' dtype
    num_threads: int


@dataclass(frozen=True)
class ConvCall:
    """Validated inputs of one forward (transpose=False) or transpose (transpose=True) call."""
    transpose: bool
    dtype: np.dtype[Any]
    filters: AnyArray
    out_positions: AnyArray
    inp_positions: AnyArray
    extents: AnyArray
    offset: AnyArray
    inp_features: AnyArray
    inp_importance: Optional[AnyArray] = None          # forward only
    out_importance: Optional[AnyArray] = None          # transpose only
    neighbors_index: AnyArray = dataclasses.field(kw_only=True)
    neighbors_importance: Optional[AnyArray] = None
    neighbors_row_splits: AnyArray = dataclasses.field(kw_only=True)
    inp_neighbors_index: Optional[AnyArray] = None     # transpose only (shape-checked, unused by the kernel)
    inp_neighbors_importance_sum: Optional[AnyArray] = None
    inp_neighbors_row_splits: Optional[AnyArray] = None

    def to_backend(self, be: Backend) -> ConvCall:
        """This call with every NumPy array copied to ``be``'s memory (``be.from_host``: the same
        call on the CPU backend). For NumPy inputs run with ``device="cuda"``."""
        moved: dict[str, Any] = {f.name: be.from_host(getattr(self, f.name)) for f in dataclasses.fields(self)
                 if isinstance(getattr(self, f.name), np.ndarray)}
        return dataclasses.replace(self, **moved)


def gradients_wanted(wrt: Union[None, str, Collection[str]], valid: Sequence[str]) -> frozenset[str]:
    """The names of the inputs whose gradients a backward function computes: ``wrt`` (a name or
    a collection of names from ``valid``) validated; None: every name of ``valid`` except the
    positions and extents (the gradients of geomops before ``wrt`` existed)."""
    if wrt is None:
        return frozenset(n for n in valid if n not in POSITION_GRADIENTS)
    names = (wrt,) if isinstance(wrt, str) else wrt
    try:
        names = tuple(names)
    except TypeError:
        raise TypeError(f"wrt must be None, a name or a collection of names from {valid}, "
                        f"got {type(wrt).__name__}") from None
    for n in names:
        if not isinstance(n, str):
            raise TypeError(f"wrt must hold names (str) from {valid}, got {n!r}")
        if n not in valid:
            raise ValueError(f"wrt contains {n!r}, which is not a differentiable input here; valid names: {valid}")
    return frozenset(names)


def options(align_corners: bool, coordinate_mapping: str, normalize: bool, interpolation: str, max_temp_mem_MB: int,
            output_type: Optional[DTypeLike], num_threads: Optional[int]) -> Options:
    align = V.check_bool(align_corners, "align_corners")
    norm = V.check_bool(normalize, "normalize")
    mapping = COORDINATE_MAPPINGS.index(V.check_option(coordinate_mapping, "coordinate_mapping",
                                                       COORDINATE_MAPPINGS))
    interp = INTERPOLATIONS.index(V.check_option(interpolation, "interpolation", INTERPOLATIONS))
    mb = V.check_int(max_temp_mem_MB, "max_temp_mem_MB", minimum=0)
    out_dtype = None
    if output_type is not None:
        try:
            out_dtype = np.dtype(output_type)
        except TypeError:
            raise TypeError(f"output_type must be None, np.float32 or np.float64, got {output_type!r}") from None
        if out_dtype not in V.FLOAT_DTYPES:
            raise TypeError(f"output_type must be None, np.float32 or np.float64, got {out_dtype}")
    return Options(align, mapping, interp, norm, min(mb, 1 << 40) * (1 << 20), out_dtype,
                   resolve_num_threads(num_threads))


def _typed(a: object) -> bool:
    """NumPy and device arrays carry a dtype; lists and scalars adapt to the call's."""
    return isinstance(a, np.ndarray) or _device.is_device_array(a)


def _size(a: object) -> int:
    if isinstance(a, np.ndarray):
        return a.size
    n = 1
    for s in _device.shape_of(a):
        n *= s
    return n


def _call_dtype(**arrays: Any) -> np.dtype[Any]:
    """The float dtype of the call: from the ndarray and device-array float inputs (lists and
    scalars adapt to it)."""
    typed = {n: a for n, a in arrays.items() if _typed(a) and _size(a) > 0}
    if not typed:
        typed = {n: a for n, a in arrays.items() if _typed(a)}
    if not typed:
        return np.dtype(np.float32) if not any(
            np.asarray(a).dtype == np.float64 for a in arrays.values() if a is not None) else np.dtype(np.float64)
    return V.common_float_dtype(**typed)


def adapt(x: object, name: str, dtype: DTypeLike) -> object:
    """Python lists and scalars take the call's dtype; ndarrays and device arrays must already
    have it."""
    if x is None or isinstance(x, np.ndarray) or _device.is_device_array(x):
        return x
    try:
        with np.errstate(over="raise"):  # a finite number beyond float32 would become inf
            return np.asarray(x, dtype=dtype)
    except FloatingPointError:
        raise ValueError(f"{name} has values beyond the range of {np.dtype(dtype)}, the dtype of the call's "
                         "float inputs") from None
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array-like: {exc}") from None


def _float(x: object, name: str, dtype: DTypeLike, shape: Sequence[Optional[int]]) -> AnyArray:
    return V.float_array(adapt(x, name, dtype), name, shape=shape, dtype=dtype)


def _filters(filters: object, dtype: DTypeLike) -> AnyArray:
    f = V.float_array(adapt(filters, "filters", dtype), "filters", dtype=dtype)
    if f.ndim != 5:
        raise ValueError(f"filters must be a 5-D array [D, H, W, Cin, Cout] (depth, height, width, input "
                         f"channels, output channels), got a {f.ndim}-D array of shape {tuple(f.shape)}")
    if min(f.shape) < 1:
        raise ValueError(f"filters must have shape [depth, height, width, in_channels, out_channels] with "
                         f"each filter dimension >= 1, got shape {tuple(f.shape)}")
    return f


def _extents(extents: object, dtype: DTypeLike, rows: int, rows_of: str) -> AnyArray:
    """Extents: a scalar or [1|rows, 1|3], ``rows`` the points of argument ``rows_of``."""
    e = V.as_array(adapt(extents, "extents", dtype), "extents")
    if e.ndim == 0:
        e = e.reshape(1, 1)
    e = V.float_array(e, "extents", dtype=dtype)
    forms = f"a scalar or have shape [1, 1], [1, 3], [{rows}, 1] or [{rows}, 3] ({rows_of}.shape[0] = {rows})"
    if e.ndim == 2 and e.shape[1] in (1, 3) and e.shape[0] not in (1, rows):
        raise V.mismatch("extents", 0, e.shape[0], "rows", f"{rows_of} has {rows} points ({rows_of}.shape[0]); "
                         f"extents must be {forms}")
    if e.ndim != 2 or e.shape[1] not in (1, 3) or e.shape[0] not in (1, rows):
        raise ValueError(f"extents must be {forms}, got shape {tuple(e.shape)}")
    if e.size and not V.all_finite(e, above=0):
        raise ValueError("extents must be finite and > 0")
    return e


def _offset(offset: object, dtype: DTypeLike) -> AnyArray:
    o = V.float_array(adapt(offset, "offset", dtype), "offset", dtype=dtype)
    if o.shape != (3,):
        raise ValueError(f"offset must have shape [3], got shape {tuple(o.shape)}")
    return o


def _positions(x: object, name: str, dtype: DTypeLike) -> AnyArray:
    return _float(x, name, dtype, (None, 3))


def _features(x: object, num_points: int, in_channels: int, dtype: DTypeLike) -> AnyArray:
    """inp_features: [num_inp_points, Cin], both sizes named after the arguments they come from."""
    feat = V.float_array(adapt(x, "inp_features", dtype), "inp_features", dtype=dtype)
    if feat.ndim != 2:
        raise ValueError(f"inp_features must be a 2-D array [num_inp_points, in_channels] = [{num_points}, "
                         f"{in_channels}], got shape {tuple(feat.shape)}")
    if feat.shape[0] != num_points:
        raise V.mismatch("inp_features", 0, feat.shape[0], "rows",
                         f"inp_positions has {num_points} points (inp_positions.shape[0])")
    if feat.shape[1] != in_channels:
        raise V.mismatch("inp_features", 1, feat.shape[1], "channels",
                         f"filters expects {in_channels} (filters.shape[3], Cin)")
    return feat


def _neighbors(index: object, splits: object, importance: object, *, num_rows: int, rows_of: str, num_points: int,
               points_of: str, dtype: DTypeLike, index_name: str = "neighbors_index",
               splits_name: str = "neighbors_row_splits",
               importance_name: str = "neighbors_importance") -> tuple[AnyArray, AnyArray, Optional[AnyArray]]:
    idx = V.index_array(index, index_name)
    rs = V.row_splits(splits, splits_name, num_rows=num_rows, rows_of=rows_of, total=idx.shape[0],
                      total_of=index_name)
    V.check_index_range(idx, index_name, num_points, points_of)
    imp = V.optional_float(adapt(importance, importance_name, dtype), importance_name, length=idx.shape[0],
                           dtype=dtype, length_of=index_name)
    return idx, rs, imp


def _common(dtype: np.dtype[Any], filters: object, out_positions: object, extents: object, offset: object,
            inp_positions: object, inp_features: object, neighbors_index: object, neighbors_row_splits: object,
            neighbors_importance: object, *, extents_per_input: bool
            ) -> tuple[AnyArray, AnyArray, AnyArray, AnyArray, AnyArray, AnyArray, AnyArray, AnyArray,
                       Optional[AnyArray]]:
    """Validate the inputs the forward and transpose ops share. Extents rows index the output
    points (forward) or the input points (transpose, ``extents_per_input``)."""
    f = _filters(filters, dtype)
    xo = _positions(out_positions, "out_positions", dtype)
    xi = _positions(inp_positions, "inp_positions", dtype)
    no, ni = xo.shape[0], xi.shape[0]
    feat = _features(inp_features, ni, f.shape[3], dtype)
    e = _extents(extents, dtype, *((ni, "inp_positions") if extents_per_input else (no, "out_positions")))
    o = _offset(offset, dtype)
    idx, rs, imp = _neighbors(neighbors_index, neighbors_row_splits, neighbors_importance,
                              num_rows=no, rows_of="out_positions", num_points=ni,
                              points_of="inp_positions", dtype=dtype)
    return f, xo, xi, feat, e, o, idx, rs, imp


def prepare_forward(filters: object, out_positions: object, extents: object, offset: object, inp_positions: object,
                    inp_features: object, inp_importance: object, neighbors_index: object,
                    neighbors_importance: object, neighbors_row_splits: object,
                    extra: Optional[dict[str, object]] = None) -> ConvCall:
    """Validate the forward op's inputs. ``extra``: dict of further float arrays for the dtype check."""
    dtype = _call_dtype(filters=filters, out_positions=out_positions, extents=extents, offset=offset,
                        inp_positions=inp_positions, inp_features=inp_features,
                        inp_importance=None if V.is_absent(inp_importance) else inp_importance,
                        neighbors_importance=None if V.is_absent(neighbors_importance) else neighbors_importance,
                        **(extra or {}))
    f, xo, xi, feat, e, o, idx, rs, imp = _common(dtype, filters, out_positions, extents, offset, inp_positions,
                                                  inp_features, neighbors_index, neighbors_row_splits,
                                                  neighbors_importance, extents_per_input=False)
    ii = V.optional_float(adapt(inp_importance, "inp_importance", dtype), "inp_importance",
                          length=xi.shape[0], dtype=dtype, length_of="inp_positions")
    return ConvCall(False, dtype, f, xo, xi, e, o, feat, inp_importance=ii, neighbors_index=idx,
                    neighbors_importance=imp, neighbors_row_splits=rs)


def prepare_transpose(filters: object, out_positions: object, out_importance: object, extents: object,
                      offset: object, inp_positions: object, inp_features: object, inp_neighbors_index: object,
                      inp_neighbors_importance_sum: object, inp_neighbors_row_splits: object,
                      neighbors_index: object, neighbors_importance: object, neighbors_row_splits: object,
                      extra: Optional[dict[str, object]] = None) -> ConvCall:
    """Validate the transpose op's inputs (``inp_neighbors_index`` may be None for the filter gradient)."""
    absent_imp = V.is_absent(neighbors_importance)
    absent_sum = V.is_absent(inp_neighbors_importance_sum)
    if absent_imp != absent_sum:
        raise ValueError("neighbors_importance and inp_neighbors_importance_sum must be both given or both "
                         "absent (None or shape [0]); got "
                         + ("inp_neighbors_importance_sum without neighbors_importance" if absent_imp
                            else "neighbors_importance without inp_neighbors_importance_sum"))
    dtype = _call_dtype(filters=filters, out_positions=out_positions, extents=extents, offset=offset,
                        inp_positions=inp_positions, inp_features=inp_features,
                        out_importance=None if V.is_absent(out_importance) else out_importance,
                        neighbors_importance=None if absent_imp else neighbors_importance,
                        inp_neighbors_importance_sum=None if absent_sum else inp_neighbors_importance_sum,
                        **(extra or {}))
    f, xo, xi, feat, e, o, idx, rs, imp = _common(dtype, filters, out_positions, extents, offset, inp_positions,
                                                  inp_features, neighbors_index, neighbors_row_splits,
                                                  neighbors_importance, extents_per_input=True)
    no, ni = xo.shape[0], xi.shape[0]
    oi = V.optional_float(adapt(out_importance, "out_importance", dtype), "out_importance", length=no, dtype=dtype,
                          length_of="out_positions")
    isum = V.optional_float(adapt(inp_neighbors_importance_sum, "inp_neighbors_importance_sum", dtype),
                            "inp_neighbors_importance_sum", length=ni, dtype=dtype, length_of="inp_positions")
    e_count = idx.shape[0]
    inv_idx = None
    if inp_neighbors_index is not None:
        inv_idx = V.index_array(inp_neighbors_index, "inp_neighbors_index")
        if inv_idx.shape[0] != e_count:
            raise V.mismatch("inp_neighbors_index", 0, inv_idx.shape[0], "entries",
                             f"neighbors_index has {e_count} (neighbors_index.shape[0]); both lists hold the same "
                             "neighbor entries")
        V.check_index_range(inv_idx, "inp_neighbors_index", no, "out_positions")
    inv_rs = V.row_splits(inp_neighbors_row_splits, "inp_neighbors_row_splits", num_rows=ni, rows_of="inp_positions",
                          total=e_count, total_of="neighbors_index")
    return ConvCall(True, dtype, f, xo, xi, e, o, feat, out_importance=oi, neighbors_index=idx,
                    neighbors_importance=imp, neighbors_row_splits=rs, inp_neighbors_index=inv_idx,
                    inp_neighbors_importance_sum=isum, inp_neighbors_row_splits=inv_rs)


def gradient(out_features_gradient: object, call: ConvCall) -> AnyArray:
    """Validate out_features_gradient: [num_out_points, out_channels] in the call's dtype (the
    shape of the op's output)."""
    name = "out_features_gradient"
    no, cout = call.out_positions.shape[0], call.filters.shape[4]
    g = V.float_array(adapt(out_features_gradient, name, call.dtype), name, dtype=call.dtype)
    if g.ndim != 2:
        raise ValueError(f"{name} must have the op's output shape [num_out_points, out_channels] = [{no}, {cout}], "
                         f"got shape {tuple(g.shape)}")
    if g.shape[0] != no:
        raise V.mismatch(name, 0, g.shape[0], "rows", f"the op's output has {no} (out_positions.shape[0])")
    if g.shape[1] != cout:
        raise V.mismatch(name, 1, g.shape[1], "channels", f"the op's output has {cout} (filters.shape[4], Cout)")
    return g
