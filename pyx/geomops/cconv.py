"""Continuous convolutions on point clouds (the Open3D-ML op family), for plain NumPy.

Argument names, order and defaults follow Open3D's TensorFlow ops (``align_corners=True``), so
code written for ``open3d.ml.tf.ops`` switches by changing the import; ``open3d.ml.torch.ops``
defaults to ``align_corners=False`` (:mod:`geomops.torch` follows it). Differences, all on purpose:

* float32 **and** float64 (every float input of one call shares the dtype);
  ``neighbors_index`` int32 or int64; row splits int64 (int32 is converted).
* Deterministic: results are bitwise identical for any ``num_threads``, including the filter
  gradient (Open3D reduces it under a mutex in thread order).
* ``max_temp_mem_MB`` bounds the temporary memory on the CPU too (Open3D ignores it there);
  results never depend on it.
* One-call backward functions that also return the gradients w.r.t. both importances.
* Every input is validated: a bad argument raises ``TypeError``/``ValueError`` naming it.

Semantics (exactly those of Open3D's CPU kernels, see docs/cconv.md):
for output point ``i`` with neighbor entries ``n`` (input point ``j``),
``out[i] = (1/psi_i) * sum_n a_n * sum_corners w_c * F[s_c]^T inp_features[j]`` with
``a_n = inp_importance[j] * neighbors_importance[n]`` and ``psi_i`` the sum of the row's
``neighbors_importance`` (or its neighbor count) when ``normalize`` and nonzero, else 1.

A neighbor whose relative position is not finite (NaN or inf coordinates) contributes
nothing; it still counts in the normaliser.
"""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Optional, TypeVar, Union, cast, overload

import numpy as np
from numpy.typing import DTypeLike, NDArray

from . import _backend
from . import _validate as V
from ._cconv_args import COORDINATE_MAPPINGS, INTERPOLATIONS, ConvCall, gradient, options
from ._cconv_args import FORWARD_GRADIENTS, POSITION_GRADIENTS, TRANSPOSE_GRADIENTS, gradients_wanted
from ._cconv_args import prepare_forward, prepare_transpose
from ._cconv_args import Options
from ._config import resolve_num_threads
from ._device import AnyArray, ArrayInput

if TYPE_CHECKING:
    from ._backend import Backend

_F = TypeVar("_F", bound=Callable[..., Any])
_A = TypeVar("_A", bound=Optional[AnyArray])
_Inverted = tuple[AnyArray, AnyArray, AnyArray]  # index, row splits, permutation of an inverted list
CoordinateMapping = Literal["ball_to_cube_radial", "ball_to_cube_volume_preserving", "identity"]
Interpolation = Literal["linear", "linear_border", "nearest_neighbor"]

__all__ = [
    "continuous_conv", "continuous_conv_transpose", "continuous_conv_backprop_filter",
    "continuous_conv_transpose_backprop_filter", "continuous_conv_backward",
    "continuous_conv_transpose_backward", "invert_neighbors_list", "reduce_subarrays_sum",
    "ContinuousConvGradients", "ContinuousConvTransposeGradients", "InvertedNeighbors",
    "COORDINATE_MAPPINGS", "INTERPOLATIONS",
]

_DEVICE_DOC = """
    device : None or str, default None
        Where the op runs: None or "cpu" (the OpenMP kernels), "cuda" or "cuda:N" (the CUDA
        kernels; NumPy inputs are copied to the device and the results back)."""

_OPTIONS_DOC = """
    align_corners : bool, default True
        If True the outer filter cell centres lie on the boundary of the extent
        (``offset`` is then ignored); if False the cells tile the extent.
    coordinate_mapping : {"ball_to_cube_radial", "ball_to_cube_volume_preserving", "identity"}
        How relative positions (scaled by 1/extent) map into the filter cube.
    normalize : bool, default False
        Divide each output row by the sum of its ``neighbors_importance`` (or by its
        neighbor count when no importance is given); a sum of exactly 0 divides by 1.
    interpolation : {"linear", "linear_border", "nearest_neighbor"}
        Filter lookup: trilinear with clamped coordinates, trilinear with zero padding, or
        the nearest filter cell (rounding half away from zero).
    max_temp_mem_MB : int, default 64
        Upper bound on the temporary memory (patch matrices). A small minimum is always used,
        even with 0. Results do not depend on it.
    output_type : None, np.float32 or np.float64
        dtype of the result; None (default) uses the inputs' float dtype.
    num_threads : int or None
        OpenMP threads; None uses :func:`geomops.set_num_threads`'s value (default: all cores).
        Results are bitwise identical for any value.
    allow_tf32 : bool, default False
        CUDA only (ignored on the CPU): float32 calls may run their GEMMs on TF32 tensor cores
        (inputs rounded to a 10-bit mantissa: about 1e-3 relative error, several times faster).
        Still deterministic.""" + _DEVICE_DOC

_FORWARD_ARGS_DOC = """
    filters : ndarray, [D, H, W, Cin, Cout], float32 or float64
        Filter weights; D, H, W are the filter size along z, y, x.
    out_positions : ndarray, [No, 3]
        Output point positions.
    extents : float or ndarray, [1, 1], [1, 3], [No, 1] or [No, 3]
        Spatial size of the filter, shared or per output point, isotropic or per axis. > 0.
    offset : ndarray, [3]
        Offset in filter-cell units (used only with ``align_corners=False``).
    inp_positions : ndarray, [Ni, 3]
        Input point positions.
    inp_features : ndarray, [Ni, Cin]
        Input features.
    inp_importance : ndarray [Ni], or None / shape [0] (absent)
        Per input point scale of its features.
    neighbors_index : ndarray, [E], int32 or int64
        Input point index of each neighbor entry, grouped by output point.
    neighbors_importance : ndarray [E], or None / shape [0] (absent)
        Per neighbor entry scale (e.g. a window function).
    neighbors_row_splits : ndarray, [No + 1], int64 (int32 accepted)
        Exclusive prefix sum of the neighbor counts: row i is
        ``neighbors_index[neighbors_row_splits[i]:neighbors_row_splits[i+1]]``."""

_TRANSPOSE_ARGS_DOC = """
    filters : ndarray, [D, H, W, Cin, Cout], float32 or float64
        Filter weights (Cin = channels of ``inp_features``; not transposed internally).
    out_positions : ndarray, [No, 3]
        Output point positions.
    out_importance : ndarray [No], or None / shape [0] (absent)
        Per output point scale of the result.
    extents : float or ndarray, [1, 1], [1, 3], [Ni, 1] or [Ni, 3]
        Filter extent, shared or **per input point**. > 0.
    offset : ndarray, [3]
        Offset in filter-cell units (used only with ``align_corners=False``).
    inp_positions : ndarray, [Ni, 3]
        Input point positions.
    inp_features : ndarray, [Ni, Cin]
        Input features.
    inp_neighbors_index : ndarray, [E], int32 or int64
        The forward-direction list (input point -> output points); only its length and range
        are checked.
    inp_neighbors_importance_sum : ndarray [Ni], or None / shape [0] (absent)
        Per input point sum of its forward-direction neighbor importances (the normaliser of
        ``normalize``). Must be given exactly when ``neighbors_importance`` is given.
    inp_neighbors_row_splits : ndarray, [Ni + 1], int64
        Row splits of the forward-direction list (its counts normalise without importance).
    neighbors_index : ndarray, [E], int32 or int64
        Input point index of each entry, grouped by output point (the inverted list).
    neighbors_importance : ndarray [E], or None / shape [0] (absent)
        Per entry importance of the inverted list.
    neighbors_row_splits : ndarray, [No + 1], int64
        Row splits of ``neighbors_index``."""


def _doc(**parts: str) -> Callable[[_F], _F]:
    def deco(fn: _F) -> _F:
        assert fn.__doc__ is not None
        fn.__doc__ = fn.__doc__.format(**parts)
        return fn
    return deco


class ContinuousConvGradients(NamedTuple):
    """Gradients of ``sum(continuous_conv(...) * out_features_gradient)``; None where not asked
    for (``wrt``) or where the input is absent."""
    filters: Optional[AnyArray]
    inp_features: Optional[AnyArray]
    inp_importance: Optional[AnyArray]
    neighbors_importance: Optional[AnyArray]
    inp_positions: Optional[AnyArray] = None
    out_positions: Optional[AnyArray] = None
    extents: Optional[AnyArray] = None


class ContinuousConvTransposeGradients(NamedTuple):
    """Gradients of ``sum(continuous_conv_transpose(...) * out_features_gradient)``; None where
    not asked for (``wrt``) or where the input is absent."""
    filters: Optional[AnyArray]
    inp_features: Optional[AnyArray]
    out_importance: Optional[AnyArray]
    neighbors_importance: Optional[AnyArray]
    inp_neighbors_importance_sum: Optional[AnyArray]
    inp_positions: Optional[AnyArray] = None
    out_positions: Optional[AnyArray] = None
    extents: Optional[AnyArray] = None


class InvertedNeighbors(NamedTuple):
    """Result of :func:`invert_neighbors_list`."""
    neighbors_index: AnyArray
    neighbors_row_splits: AnyArray
    neighbors_attributes: AnyArray


# ---- kernel calls ----------------------------------------------------------------------------
# Written against a Backend (``be.kernels``: the binding module, ``be.empty``: its arrays), so the
# same code runs on NumPy arrays (CPU) and on device arrays (CUDA): no array math here, every
# formula is a kernel of both backends.

def _run(be: Backend, mode: int, call: ConvCall, opt: Options, *, normalize: Optional[bool] = None,
         g: Optional[AnyArray] = None, output: _A, was_zero: Optional[AnyArray] = None, allow_tf32: bool = False,
         entry_position_grads: Optional[AnyArray] = None, entry_extent_grads: Optional[AnyArray] = None) -> _A:
    """Run cconv kernel ``mode`` of backend ``be`` on ``call`` into ``output``."""
    be.kernels.cconv_run(mode, int(call.transpose), call.filters, call.out_positions, call.inp_positions,
                         call.extents, call.offset, call.inp_features, call.inp_importance,
                         call.out_importance, call.neighbors_index, call.neighbors_importance,
                         call.neighbors_row_splits, call.inp_neighbors_importance_sum,
                         call.inp_neighbors_row_splits, int(opt.align_corners), opt.coordinate_mapping,
                         opt.interpolation, int(opt.normalize if normalize is None else normalize), g,
                         output, opt.max_temp_bytes, opt.num_threads, was_zero, allow_tf32,
                         entry_position_grads, entry_extent_grads)
    return output


def _apply(be: Backend, call: ConvCall, opt: Options, normalize: Optional[bool] = None,
           allow_tf32: bool = False) -> AnyArray:
    out = be.empty((call.out_positions.shape[0], call.filters.shape[4]), call.dtype)
    return _run(be, 0, call, opt, normalize=normalize, output=out, allow_tf32=allow_tf32)


def _backprop_filter(be: Backend, call: ConvCall, opt: Options, g: AnyArray, normalize: Optional[bool] = None,
                     allow_tf32: bool = False) -> AnyArray:
    out = be.empty(call.filters.shape, call.dtype)
    return _run(be, 1, call, opt, normalize=normalize, g=g, output=out, allow_tf32=allow_tf32)


def _neighbor_products(be: Backend, call: ConvCall, opt: Options, g: AnyArray, allow_tf32: bool = False) -> AnyArray:
    out = be.empty((call.neighbors_index.shape[0],), np.float64)
    return _run(be, 2, call, opt, g=g, output=out, allow_tf32=allow_tf32)


def _entry_grads(be: Backend, call: ConvCall, opt: Options, g: AnyArray, products: bool, positions: bool,
                 extents: bool, allow_tf32: bool = False
                 ) -> tuple[Optional[AnyArray], Optional[AnyArray], Optional[AnyArray]]:
    """Per neighbor entry, in one pass over ``g F^T`` (float64, each where wanted: None skips it):
    the neighbor products (the importance gradients' input, [E]), d L / d(relative position)
    ([E, 3]) and d L / d(its extent) ([E, extents columns])."""
    entries = call.neighbors_index.shape[0]
    out = be.empty((entries,), np.float64) if products else None
    pos = be.empty((entries, 3), np.float64) if positions else None
    ext = be.empty((entries, call.extents.shape[1]), np.float64) if extents else None
    _run(be, 2, call, opt, g=g, output=out, allow_tf32=allow_tf32, entry_position_grads=pos,
         entry_extent_grads=ext)
    return out, pos, ext


def _position_grads(be: Backend, call: ConvCall, want: Collection[str], inverted: _Inverted,
                    entry_positions: Optional[AnyArray], entry_extents: Optional[AnyArray], num_threads: int
                    ) -> tuple[Optional[AnyArray], Optional[AnyArray], Optional[AnyArray]]:
    """Sum the entries' position / extent derivatives into the points (the ``want``ed ones of
    inp_positions, out_positions, extents; None for the others)."""
    d_inp = be.empty(call.inp_positions.shape, call.dtype) if "inp_positions" in want else None
    d_out = be.empty(call.out_positions.shape, call.dtype) if "out_positions" in want else None
    d_ext = be.empty(call.extents.shape, call.dtype) if "extents" in want else None
    be.kernels.cconv_position_grads(int(call.transpose), call.neighbors_index, call.neighbors_row_splits, *inverted,
                                    entry_positions, entry_extents, d_out, d_inp, d_ext, num_threads)
    return d_inp, d_out, d_ext


def _normalizers(be: Backend, call: ConvCall, opt: Options) -> tuple[AnyArray, AnyArray]:
    """What each normalised row divides by (float64: psi_i of the forward op's output rows, phi_j
    of the transpose's input points) and where its normaliser was exactly 0 (it then divides by
    1 and has no derivative). The kernel owns both formulas and the zero rule."""
    rows = (call.inp_positions if call.transpose else call.out_positions).shape[0]
    divisor = be.empty((rows,), np.float64)
    was_zero = be.empty((rows,), np.bool_)
    _run(be, 3, call, opt, output=divisor, was_zero=was_zero)
    return divisor, was_zero


@overload
def _cast(be: Backend, a: AnyArray, opt: Options) -> AnyArray: ...
@overload
def _cast(be: Backend, a: None, opt: Options) -> None: ...
@overload
def _cast(be: Backend, a: Optional[AnyArray], opt: Options) -> Optional[AnyArray]: ...


def _cast(be: Backend, a: Optional[AnyArray], opt: Options) -> Optional[AnyArray]:
    if a is None or opt.output_dtype is None or a.dtype == opt.output_dtype:
        return a
    out = be.empty(a.shape, opt.output_dtype)
    be.kernels.cconv_cast(a, out, opt.num_threads)
    return out


def _invert(be: Backend, num_points: int, index: AnyArray, row_splits: AnyArray) -> _Inverted:
    out_index = be.empty(index.shape, index.dtype)
    out_splits = be.empty((num_points + 1,), np.int64)
    perm = be.empty(index.shape, np.int64)
    be.kernels.invert_neighbors(num_points, index, row_splits, out_index, out_splits, perm)
    return out_index, out_splits, perm


def _row_sums(be: Backend, values: AnyArray, row_splits: AnyArray, num_threads: int) -> AnyArray:
    sums = be.empty((row_splits.shape[0] - 1,), values.dtype)
    be.kernels.reduce_subarrays_sum(values, row_splits, sums, num_threads)
    return sums


def _swap_channels(be: Backend, filters: AnyArray, num_threads: int) -> AnyArray:
    """The filters with Cin and Cout swapped ([D, H, W, Cout, Cin]): the gradient identities' filter."""
    f = filters.shape
    out = be.empty((f[0], f[1], f[2], f[4], f[3]), filters.dtype)
    be.kernels.cconv_swap_channels(filters, out, num_threads)
    return out


def _inverted_weights(be: Backend, call: ConvCall, divisor: Optional[AnyArray], inverted: _Inverted,
                      num_threads: int) -> AnyArray:
    """The entry weights of the inverted list that carries the feature gradient: imp_n / psi_r
    (forward) or imp_n / phi_j (transpose), in the inverted list's order."""
    inv_index, inv_splits, perm = inverted
    out = be.empty(call.neighbors_index.shape, call.dtype)
    be.kernels.cconv_inverted_weights(int(call.transpose), call.neighbors_index, call.neighbors_row_splits,
                                      call.neighbors_importance, divisor, inv_index, inv_splits, perm, out,
                                      num_threads)
    return out


_OPTIONAL = ("inp_importance", "neighbors_importance", "out_importance", "inp_neighbors_importance_sum")


def _named(names: Iterable[str], scope: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments ``names`` from a function's ``locals()``, by name (for op_call)."""
    return {n: scope[n] for n in names}


def _args(c: _backend.OpCall, names: Iterable[str]) -> list[Any]:
    """The call's inputs (device inputs as DeviceArray views) in signature order."""
    return [c.args[n] for n in names]


_FWD = ("filters", "out_positions", "extents", "offset", "inp_positions", "inp_features", "inp_importance",
        "neighbors_index", "neighbors_importance", "neighbors_row_splits")
_TR = ("filters", "out_positions", "out_importance", "extents", "offset", "inp_positions", "inp_features",
       "inp_neighbors_index", "inp_neighbors_importance_sum", "inp_neighbors_row_splits", "neighbors_index",
       "neighbors_importance", "neighbors_row_splits")
_TR_BPF = tuple(n for n in _TR if n != "inp_neighbors_index")


# ---- forward and transpose -------------------------------------------------------------------

@_doc(args=_FORWARD_ARGS_DOC, options=_OPTIONS_DOC)
def continuous_conv(filters: ArrayInput, out_positions: ArrayInput, extents: ArrayInput, offset: ArrayInput,
                    inp_positions: ArrayInput, inp_features: ArrayInput, inp_importance: Optional[ArrayInput],
                    neighbors_index: ArrayInput, neighbors_importance: Optional[ArrayInput],
                    neighbors_row_splits: ArrayInput, *,
                    align_corners: bool = True, coordinate_mapping: CoordinateMapping = "ball_to_cube_radial",
                    normalize: bool = False, interpolation: Interpolation = "linear", max_temp_mem_MB: int = 64,
                    output_type: Optional[DTypeLike] = None, num_threads: Optional[int] = None,
                    allow_tf32: bool = False, device: Optional[str] = None, stream: object = None) -> AnyArray:
    """Continuous convolution of point features (Open3D's ``continuous_conv``).

    Parameters
    ----------{args}
{options}

    Returns
    -------
    out_features : ndarray, [No, Cout]
        float32 or float64 (the inputs' dtype unless ``output_type`` is given). Rows without
        neighbors are 0.

    Examples
    --------
    >>> import numpy as np, geomops
    >>> pts = np.random.default_rng(0).random((1000, 3), dtype=np.float32)
    >>> nb = geomops.fixed_radius_search(pts, pts, 0.1)
    >>> filters = np.ones((3, 3, 3, 4, 8), np.float32)
    >>> feats = np.ones((1000, 4), np.float32)
    >>> out = geomops.continuous_conv(filters, pts, 0.2, np.zeros(3, np.float32), pts, feats, None,
    ...                               nb.neighbors_index, None, nb.neighbors_row_splits)
    >>> out.shape
    (1000, 8)
    """
    names = _FWD
    with _backend.op_call(device, stream, optional=_OPTIONAL, **_named(names, locals())) as c:
        be = c.be
        (filters, out_positions, extents, offset, inp_positions, inp_features, inp_importance,
         neighbors_index, neighbors_importance, neighbors_row_splits) = _args(c, _FWD)
        opt = options(align_corners, coordinate_mapping, normalize, interpolation, max_temp_mem_MB,
                      output_type, num_threads)
        tf32 = V.check_bool(allow_tf32, "allow_tf32")
        call = prepare_forward(filters, out_positions, extents, offset, inp_positions, inp_features,
                               inp_importance, neighbors_index, neighbors_importance, neighbors_row_splits)
        call = call.to_backend(be)
        return c.result(_cast(be, _apply(be, call, opt, allow_tf32=tf32), opt))


@_doc(args=_TRANSPOSE_ARGS_DOC, options=_OPTIONS_DOC)
def continuous_conv_transpose(filters: ArrayInput, out_positions: ArrayInput, out_importance: Optional[ArrayInput],
                              extents: ArrayInput, offset: ArrayInput, inp_positions: ArrayInput,
                              inp_features: ArrayInput, inp_neighbors_index: ArrayInput,
                              inp_neighbors_importance_sum: Optional[ArrayInput], inp_neighbors_row_splits: ArrayInput,
                              neighbors_index: ArrayInput, neighbors_importance: Optional[ArrayInput],
                              neighbors_row_splits: ArrayInput, *, align_corners: bool = True,
                              coordinate_mapping: CoordinateMapping = 'ball_to_cube_radial', normalize: bool = False,
                              interpolation: Interpolation = 'linear', max_temp_mem_MB: int = 64,
                              output_type: Optional[DTypeLike] = None, num_threads: Optional[int] = None,
                              allow_tf32: bool = False, device: Optional[str] = None,
                              stream: object = None) -> AnyArray:
    """Transpose continuous convolution (Open3D's ``continuous_conv_transpose``).

    With the lists of a forward call inverted (:func:`invert_neighbors_list`) this is the
    adjoint of :func:`continuous_conv` w.r.t. the features: relative positions are
    ``out_positions[i] - inp_positions[j]``, extents are indexed by the input point, and
    ``normalize`` divides each entry by ``inp_neighbors_importance_sum[j]`` (or by the count
    ``inp_neighbors_row_splits[j+1] - inp_neighbors_row_splits[j]`` without importance).

    Parameters
    ----------{args}
{options}

    Returns
    -------
    out_features : ndarray, [No, Cout]
    """
    names = _TR
    with _backend.op_call(device, stream, optional=_OPTIONAL, **_named(names, locals())) as c:
        be = c.be
        (filters, out_positions, out_importance, extents, offset, inp_positions, inp_features,
         inp_neighbors_index, inp_neighbors_importance_sum, inp_neighbors_row_splits,
         neighbors_index, neighbors_importance, neighbors_row_splits) = _args(c, _TR)
        opt = options(align_corners, coordinate_mapping, normalize, interpolation, max_temp_mem_MB,
                      output_type, num_threads)
        tf32 = V.check_bool(allow_tf32, "allow_tf32")
        call = prepare_transpose(filters, out_positions, out_importance, extents, offset, inp_positions,
                                 inp_features, inp_neighbors_index, inp_neighbors_importance_sum,
                                 inp_neighbors_row_splits, neighbors_index, neighbors_importance,
                                 neighbors_row_splits)
        call = call.to_backend(be)
        return c.result(_cast(be, _apply(be, call, opt, allow_tf32=tf32), opt))


# ---- filter gradients ------------------------------------------------------------------------

@_doc(args=_FORWARD_ARGS_DOC, options=_OPTIONS_DOC)
def continuous_conv_backprop_filter(filters: ArrayInput, out_positions: ArrayInput, extents: ArrayInput,
                                    offset: ArrayInput, inp_positions: ArrayInput, inp_features: ArrayInput,
                                    inp_importance: Optional[ArrayInput], neighbors_index: ArrayInput,
                                    neighbors_importance: Optional[ArrayInput], neighbors_row_splits: ArrayInput,
                                    out_features_gradient: ArrayInput, *, align_corners: bool = True,
                                    coordinate_mapping: CoordinateMapping = 'ball_to_cube_radial',
                                    normalize: bool = False, interpolation: Interpolation = 'linear',
                                    max_temp_mem_MB: int = 64, output_type: Optional[DTypeLike] = None,
                                    num_threads: Optional[int] = None, allow_tf32: bool = False,
                                    device: Optional[str] = None, stream: object = None) -> AnyArray:
    """Gradient of ``sum(continuous_conv(...) * out_features_gradient)`` w.r.t. ``filters``.

    ``filters`` is used for its shape only. Bitwise deterministic for any thread count.

    Parameters
    ----------{args}
    out_features_gradient : ndarray, [No, Cout]
        Gradient of the objective w.r.t. the forward op's output.
{options}

    Returns
    -------
    filters_gradient : ndarray, [D, H, W, Cin, Cout]
    """
    names = _FWD + ("out_features_gradient",)
    with _backend.op_call(device, stream, optional=_OPTIONAL, **_named(names, locals())) as c:
        be = c.be
        (filters, out_positions, extents, offset, inp_positions, inp_features, inp_importance,
         neighbors_index, neighbors_importance, neighbors_row_splits) = _args(c, _FWD)
        out_features_gradient = c.args['out_features_gradient']
        opt = options(align_corners, coordinate_mapping, normalize, interpolation, max_temp_mem_MB,
                      output_type, num_threads)
        tf32 = V.check_bool(allow_tf32, "allow_tf32")
        call = prepare_forward(filters, out_positions, extents, offset, inp_positions, inp_features,
                               inp_importance, neighbors_index, neighbors_importance, neighbors_row_splits,
                               extra={"out_features_gradient": out_features_gradient})
        g = be.from_host(gradient(out_features_gradient, call))
        call = call.to_backend(be)
        return c.result(_cast(be, _backprop_filter(be, call, opt, g, allow_tf32=tf32), opt))


@_doc(args=_TRANSPOSE_ARGS_DOC, options=_OPTIONS_DOC)
def continuous_conv_transpose_backprop_filter(filters: ArrayInput, out_positions: ArrayInput,
                                              out_importance: Optional[ArrayInput], extents: ArrayInput,
                                              offset: ArrayInput, inp_positions: ArrayInput, inp_features: ArrayInput,
                                              inp_neighbors_importance_sum: Optional[ArrayInput],
                                              inp_neighbors_row_splits: ArrayInput, neighbors_index: ArrayInput,
                                              neighbors_importance: Optional[ArrayInput],
                                              neighbors_row_splits: ArrayInput, out_features_gradient: ArrayInput, *,
                                              align_corners: bool = True,
                                              coordinate_mapping: CoordinateMapping = 'ball_to_cube_radial',
                                              normalize: bool = False, interpolation: Interpolation = 'linear',
                                              max_temp_mem_MB: int = 64, output_type: Optional[DTypeLike] = None,
                                              num_threads: Optional[int] = None, allow_tf32: bool = False,
                                              device: Optional[str] = None, stream: object = None) -> AnyArray:
    """Gradient of ``sum(continuous_conv_transpose(...) * out_features_gradient)`` w.r.t. ``filters``.

    Same arguments as :func:`continuous_conv_transpose` without ``inp_neighbors_index``.

    Parameters
    ----------{args}
    out_features_gradient : ndarray, [No, Cout]
        Gradient of the objective w.r.t. the transpose op's output.
{options}

    Returns
    -------
    filters_gradient : ndarray, [D, H, W, Cin, Cout]
    """
    names = _TR_BPF + ("out_features_gradient",)
    with _backend.op_call(device, stream, optional=_OPTIONAL, **_named(names, locals())) as c:
        be = c.be
        (filters, out_positions, out_importance, extents, offset, inp_positions, inp_features,
         inp_neighbors_importance_sum, inp_neighbors_row_splits, neighbors_index,
         neighbors_importance, neighbors_row_splits) = _args(c, _TR_BPF)
        out_features_gradient = c.args['out_features_gradient']
        opt = options(align_corners, coordinate_mapping, normalize, interpolation, max_temp_mem_MB,
                      output_type, num_threads)
        tf32 = V.check_bool(allow_tf32, "allow_tf32")
        call = prepare_transpose(filters, out_positions, out_importance, extents, offset, inp_positions,
                                 inp_features, None, inp_neighbors_importance_sum, inp_neighbors_row_splits,
                                 neighbors_index, neighbors_importance, neighbors_row_splits,
                                 extra={"out_features_gradient": out_features_gradient})
        g = be.from_host(gradient(out_features_gradient, call))
        call = call.to_backend(be)
        return c.result(_cast(be, _backprop_filter(be, call, opt, g, allow_tf32=tf32), opt))


# ---- one-call backward -----------------------------------------------------------------------

def _wrt_doc(names: Sequence[str]) -> str:
    listed = textwrap.fill(", ".join(f'"{n}"' for n in names), 90, initial_indent=" " * 8,
                           subsequent_indent=" " * 8)
    return f"""
    wrt : None, str or collection of str, default None
        The inputs to differentiate, names from:
{listed}.
        None: ``filters``, ``inp_features`` and the importances given (no position or extent
        gradient). Gradients not asked for are not computed (None in the result); nor are those
        of absent importances."""


# The feature gradient of each op is the other op over the inverted lists, with the filters'
# channels swapped and each entry's weight (importance over normaliser) folded into its importance.
_FeatureCall = Callable[["Backend", ConvCall, Options, AnyArray, Optional[AnyArray], _Inverted], ConvCall]


def _transpose_of_forward(be: Backend, call: ConvCall, opt: Options, g: AnyArray, divisor: Optional[AnyArray],
                          inverted: _Inverted) -> ConvCall:
    """d inp_features of the forward op: a transpose conv over the inverted lists, with each
    entry's weight a_n / psi_i as its importance so no normalisation is redone."""
    nt = opt.num_threads
    weights = None
    if call.neighbors_importance is not None or opt.normalize:
        weights = _inverted_weights(be, call, divisor, inverted, nt)
    return ConvCall(True, call.dtype, _swap_channels(be, call.filters, nt), out_positions=call.inp_positions,
                    inp_positions=call.out_positions, extents=call.extents, offset=call.offset, inp_features=g,
                    out_importance=call.inp_importance, neighbors_index=inverted[0], neighbors_importance=weights,
                    neighbors_row_splits=inverted[1], inp_neighbors_row_splits=call.neighbors_row_splits)


def _forward_of_transpose(be: Backend, call: ConvCall, opt: Options, g: AnyArray, divisor: Optional[AnyArray],
                          inverted: _Inverted) -> ConvCall:
    """d inp_features of the transpose op: a forward conv over the inverted lists, with each
    entry's weight c_n = imp_n / phi_j (gm_cconv_entry_weight) as its importance."""
    nt = opt.num_threads
    return ConvCall(False, call.dtype, _swap_channels(be, call.filters, nt), out_positions=call.inp_positions,
                    inp_positions=call.out_positions, extents=call.extents, offset=call.offset, inp_features=g,
                    inp_importance=call.out_importance, neighbors_index=inverted[0],
                    neighbors_importance=_inverted_weights(be, call, divisor, inverted, nt),
                    neighbors_row_splits=inverted[1])


def _backward(be: Backend, call: ConvCall, opt: Options, g: AnyArray, want: frozenset[str],
              importances: Mapping[str, Optional[AnyArray]], feature_call: _FeatureCall, tf32: bool
              ) -> tuple[Optional[AnyArray], ...]:
    """The ``want``ed gradients of either op (``call.transpose``), cast to the output dtype, in
    the order of its gradients tuple: filters, inp_features, ``importances`` (the op's, by
    name, in its order; the point importance first), inp_positions, out_positions, extents."""
    nt = opt.num_threads
    want_imp = [a is not None and n in want for n, a in importances.items()]
    want_pos = want.intersection(POSITION_GRADIENTS)
    d_filters = _backprop_filter(be, call, opt, g, allow_tf32=tf32) if "filters" in want else None
    divisor = was_zero = None
    if opt.normalize and ("inp_features" in want or any(want_imp)):
        divisor, was_zero = _normalizers(be, call, opt)
    inverted = None
    if "inp_features" in want or any(want_imp) or want_pos:
        inverted = _invert(be, call.inp_positions.shape[0], call.neighbors_index, call.neighbors_row_splits)

    d_features = None
    if "inp_features" in want:
        assert inverted is not None
        d_features = _apply(be, feature_call(be, call, opt, g, divisor, inverted), opt, normalize=False,
                            allow_tf32=tf32)

    d_imp: list[Optional[AnyArray]] = [None] * len(importances)
    d_inp_pos = d_out_pos = d_ext = None
    if any(want_imp) or want_pos:
        assert inverted is not None
        # per entry: d <out_i, g_i> / d (entry weight) before scaling (for the gm_cconv_bwd_*
        # importance formulas) and d L / d (relative position, extent)
        dots, entry_pos, entry_ext = _entry_grads(be, call, opt, g, any(want_imp), bool(want_pos),
                                                  "extents" in want, allow_tf32=tf32)
        if any(want_imp):
            arrays = list(importances.values())
            d_imp = [be.empty(a.shape, call.dtype) if w and a is not None else None
                     for a, w in zip(arrays, want_imp)]
            outputs = d_imp + [None] * (3 - len(d_imp))  # the forward op has no importance sum
            be.kernels.cconv_importance_grads(int(call.transpose), call.neighbors_index, call.neighbors_row_splits,
                                              call.neighbors_importance, arrays[0], divisor, was_zero, *inverted,
                                              dots, *outputs, nt)
        if want_pos:
            d_inp_pos, d_out_pos, d_ext = _position_grads(be, call, want, inverted, entry_pos, entry_ext, nt)
    return tuple(_cast(be, x, opt) for x in (d_filters, d_features, *d_imp, d_inp_pos, d_out_pos, d_ext))


@_doc(args=_FORWARD_ARGS_DOC, options=_OPTIONS_DOC, wrt=_wrt_doc(FORWARD_GRADIENTS))
def continuous_conv_backward(filters: ArrayInput, out_positions: ArrayInput, extents: ArrayInput, offset: ArrayInput,
                             inp_positions: ArrayInput, inp_features: ArrayInput, inp_importance: Optional[ArrayInput],
                             neighbors_index: ArrayInput, neighbors_importance: Optional[ArrayInput],
                             neighbors_row_splits: ArrayInput, out_features_gradient: ArrayInput, *,
                             align_corners: bool = True, coordinate_mapping: CoordinateMapping = 'ball_to_cube_radial',
                             normalize: bool = False, interpolation: Interpolation = 'linear',
                             max_temp_mem_MB: int = 64, output_type: Optional[DTypeLike] = None,
                             num_threads: Optional[int] = None, allow_tf32: bool = False,
                             wrt: Optional[Union[str, Collection[str]]] = None, device: Optional[str] = None,
                             stream: object = None) -> ContinuousConvGradients:
    """All gradients of ``sum(continuous_conv(...) * out_features_gradient)`` in one call.

    The feature gradient is a transpose convolution over the inverted neighbor lists (as in
    Open3D); the importance gradients (new in geomops) let users learn window functions.
    With ``normalize`` the ``neighbors_importance`` gradient includes the derivative through the
    normaliser (rows whose importance sum is exactly 0 are divided by 1 and get no such term).
    Positions and extents get gradients when asked for (``wrt``; docs/cconv.md, "Gradients
    w.r.t. positions and extents": the exact derivative of the branch the forward op takes at
    its kinks); ``offset`` gets none.

    Parameters
    ----------{args}
    out_features_gradient : ndarray, [No, Cout]
        Gradient of the objective w.r.t. the forward op's output.{wrt}
{options}

    Returns
    -------
    ContinuousConvGradients
        Named tuple ``(filters [D,H,W,Cin,Cout], inp_features [Ni,Cin], inp_importance [Ni],
        neighbors_importance [E], inp_positions [Ni,3], out_positions [No,3], extents (the shape
        of the validated extents: a scalar gives [1, 1]))``; a field is None when not asked for
        or when that importance was not given.
    """
    names = _FWD + ("out_features_gradient",)
    with _backend.op_call(device, stream, optional=_OPTIONAL, **_named(names, locals())) as c:
        be = c.be
        (filters, out_positions, extents, offset, inp_positions, inp_features, inp_importance,
         neighbors_index, neighbors_importance, neighbors_row_splits) = _args(c, _FWD)
        out_features_gradient = c.args['out_features_gradient']
        opt = options(align_corners, coordinate_mapping, normalize, interpolation, max_temp_mem_MB,
                      output_type, num_threads)
        tf32 = V.check_bool(allow_tf32, "allow_tf32")
        want = gradients_wanted(wrt, FORWARD_GRADIENTS)
        call = prepare_forward(filters, out_positions, extents, offset, inp_positions, inp_features,
                               inp_importance, neighbors_index, neighbors_importance, neighbors_row_splits,
                               extra={"out_features_gradient": out_features_gradient})
        g = be.from_host(gradient(out_features_gradient, call))
        call = call.to_backend(be)
        importances = {"inp_importance": call.inp_importance, "neighbors_importance": call.neighbors_importance}
        return c.result(ContinuousConvGradients(*_backward(be, call, opt, g, want, importances, _transpose_of_forward,
                                                           tf32)))


@_doc(args=_TRANSPOSE_ARGS_DOC, options=_OPTIONS_DOC, wrt=_wrt_doc(TRANSPOSE_GRADIENTS))
def continuous_conv_transpose_backward(filters: ArrayInput, out_positions: ArrayInput,
                                       out_importance: Optional[ArrayInput], extents: ArrayInput, offset: ArrayInput,
                                       inp_positions: ArrayInput, inp_features: ArrayInput,
                                       inp_neighbors_index: ArrayInput,
                                       inp_neighbors_importance_sum: Optional[ArrayInput],
                                       inp_neighbors_row_splits: ArrayInput, neighbors_index: ArrayInput,
                                       neighbors_importance: Optional[ArrayInput], neighbors_row_splits: ArrayInput,
                                       out_features_gradient: ArrayInput, *, align_corners: bool = True,
                                       coordinate_mapping: CoordinateMapping = 'ball_to_cube_radial',
                                       normalize: bool = False, interpolation: Interpolation = 'linear',
                                       max_temp_mem_MB: int = 64, output_type: Optional[DTypeLike] = None,
                                       num_threads: Optional[int] = None, allow_tf32: bool = False,
                                       wrt: Optional[Union[str, Collection[str]]] = None, device: Optional[str] = None,
                                       stream: object = None) -> ContinuousConvTransposeGradients:
    """All gradients of ``sum(continuous_conv_transpose(...) * out_features_gradient)``.

    Partial derivatives w.r.t. each explicit input; ``inp_neighbors_importance_sum`` is treated
    as an independent input (its gradient is nonzero only with ``normalize``, importance given
    and a nonzero sum). To learn a window function through the forward lists, chain the
    ``neighbors_importance`` and ``inp_neighbors_importance_sum`` gradients yourself. Positions
    and extents (per input point here) get gradients when asked for (``wrt``).

    Parameters
    ----------{args}
    out_features_gradient : ndarray, [No, Cout]
        Gradient of the objective w.r.t. the transpose op's output.{wrt}
{options}

    Returns
    -------
    ContinuousConvTransposeGradients
        Named tuple ``(filters, inp_features [Ni,Cin], out_importance [No],
        neighbors_importance [E], inp_neighbors_importance_sum [Ni], inp_positions [Ni,3],
        out_positions [No,3], extents (the validated extents' shape))``; a field is None when not
        asked for or when that input is absent.
    """
    names = _TR + ("out_features_gradient",)
    with _backend.op_call(device, stream, optional=_OPTIONAL, **_named(names, locals())) as c:
        be = c.be
        (filters, out_positions, out_importance, extents, offset, inp_positions, inp_features,
         inp_neighbors_index, inp_neighbors_importance_sum, inp_neighbors_row_splits,
         neighbors_index, neighbors_importance, neighbors_row_splits) = _args(c, _TR)
        out_features_gradient = c.args['out_features_gradient']
        opt = options(align_corners, coordinate_mapping, normalize, interpolation, max_temp_mem_MB,
                      output_type, num_threads)
        tf32 = V.check_bool(allow_tf32, "allow_tf32")
        want = gradients_wanted(wrt, TRANSPOSE_GRADIENTS)
        call = prepare_transpose(filters, out_positions, out_importance, extents, offset, inp_positions,
                                 inp_features, inp_neighbors_index, inp_neighbors_importance_sum,
                                 inp_neighbors_row_splits, neighbors_index, neighbors_importance,
                                 neighbors_row_splits, extra={"out_features_gradient": out_features_gradient})
        g = be.from_host(gradient(out_features_gradient, call))
        call = call.to_backend(be)
        importances = {"out_importance": call.out_importance, "neighbors_importance": call.neighbors_importance,
                       "inp_neighbors_importance_sum": call.inp_neighbors_importance_sum}
        return c.result(ContinuousConvTransposeGradients(*_backward(be, call, opt, g, want, importances,
                                                                    _forward_of_transpose, tf32)))


# ---- list utilities --------------------------------------------------------------------------

@_doc(device=_DEVICE_DOC)
def invert_neighbors_list(num_points: int, inp_neighbors_index: ArrayInput, inp_neighbors_row_splits: ArrayInput,
                          inp_neighbors_attributes: ArrayInput, *, device: Optional[str] = None,
                          stream: object = None) -> InvertedNeighbors:
    """Invert a neighbor list: for every point, the rows of the input list that contain it.

    Parameters
    ----------
    num_points : int
        Number of points the input list indexes (rows of the result).
    inp_neighbors_index : ndarray, [E], int32 or int64
        Values in ``[0, num_points)``.
    inp_neighbors_row_splits : ndarray, [R + 1], int64 (int32 accepted)
    inp_neighbors_attributes : ndarray, [E, ...] of any numeric dtype, or shape [0] (none)
        Per entry attributes carried along (e.g. ``neighbors_importance``).{device}

    Returns
    -------
    InvertedNeighbors
        ``(neighbors_index [E] (row ids, input index dtype), neighbors_row_splits
        [num_points + 1] int64, neighbors_attributes [E, ...] or [0])``. Each output row lists its
        entries in ascending order of their position in the input list (Open3D's order is
        nondeterministic), so the result is reproducible.
    """
    with _backend.op_call(device, stream, optional=("inp_neighbors_attributes",),
                          inp_neighbors_index=inp_neighbors_index,
                          inp_neighbors_row_splits=inp_neighbors_row_splits,
                          inp_neighbors_attributes=inp_neighbors_attributes) as c:
        be = c.be
        num_points = V.check_int(num_points, "num_points", minimum=0)
        idx = V.index_array(c.args["inp_neighbors_index"], "inp_neighbors_index")
        rs = V.row_splits(c.args["inp_neighbors_row_splits"], "inp_neighbors_row_splits", total=idx.shape[0],
                          total_of="inp_neighbors_index")
        if idx.size:
            lo, hi = V.value_range(idx)
            if lo < 0 or hi >= num_points:
                bad = int(lo) if lo < 0 else int(hi)
                raise ValueError(f"inp_neighbors_index contains {bad}, outside [0, num_points={num_points})")
        if rs.shape[0] - 1 > np.iinfo(idx.dtype).max:
            raise ValueError("inp_neighbors_row_splits has more rows than inp_neighbors_index's dtype can index")
        attrs = V.as_array(c.args["inp_neighbors_attributes"], "inp_neighbors_attributes")
        if not (np.issubdtype(attrs.dtype, np.number) or attrs.dtype == np.bool_):
            raise TypeError(f"inp_neighbors_attributes must be numeric, got dtype {attrs.dtype}")
        has_attrs = not (attrs.ndim == 1 and attrs.shape[0] == 0)
        if has_attrs and (attrs.ndim < 1 or attrs.shape[0] != idx.shape[0]):
            raise ValueError(f"inp_neighbors_attributes must have shape [{idx.shape[0]}, ...] (one row per "
                             f"entry of inp_neighbors_index) or [0], got shape {tuple(attrs.shape)}")
        try:
            out_index, out_splits, perm = _invert(be, num_points, be.from_host(idx), be.from_host(rs))
        except MemoryError as exc:  # say which argument asked for it
            raise MemoryError(f"num_points={num_points}: the inverted row splits ([num_points + 1] int64): {exc}") \
                from None
        if not has_attrs:
            out_attrs = be.from_host(np.empty(0, attrs.dtype)) if c.on_device else attrs.copy()
        elif be.is_cuda:
            out_attrs = be.empty(attrs.shape, attrs.dtype)
            be.kernels.array_gather_rows(be.from_host(V.contiguous(attrs)), out_attrs, perm)
        else:
            assert isinstance(attrs, np.ndarray)
            out_attrs = attrs[perm]
        return c.result(InvertedNeighbors(out_index, out_splits, out_attrs))


@_doc(device=_DEVICE_DOC)
def reduce_subarrays_sum(values: ArrayInput, row_splits: ArrayInput, *, num_threads: Optional[int] = None,
                         device: Optional[str] = None, stream: object = None) -> AnyArray:
    """Sum of each subarray ``values[row_splits[i]:row_splits[i+1]]``.

    Parameters
    ----------
    values : ndarray, [E], float32, float64, int32 or int64
    row_splits : ndarray, [R + 1], int64 (int32 accepted); must end with E unless ``values`` is
        empty.
    num_threads : int or None{device}

    Returns
    -------
    sums : ndarray, [R], dtype of ``values`` (0 for an empty subarray). Float sums use a
        float64 accumulator. An empty ``values`` (shape [0]) returns an empty array of the same
        dtype whatever ``row_splits`` is (Open3D's convention: "no importance" stays absent
        when passed through this op).
    """
    with _backend.op_call(device, stream, values=values, row_splits=row_splits) as c:
        be = c.be
        v = V.as_array(c.args["values"], "values")
        allowed = (np.float32, np.float64, np.int32, np.int64)
        if v.dtype not in [np.dtype(t) for t in allowed]:
            raise TypeError(f"values must be float32, float64, int32 or int64, got dtype {v.dtype}")
        V.check_shape(v, "values", ndim=1)
        if v.shape[0] == 0:
            return c.result(be.empty((0,), v.dtype))
        rs = V.row_splits(c.args["row_splits"], "row_splits", total=v.shape[0], total_of="values")
        v = V.contiguous(v)
        if v.dtype.kind == "f":
            return c.result(_row_sums(be, be.from_host(v), be.from_host(rs), resolve_num_threads(num_threads)))
        if be.is_cuda:
            sums = be.empty((rs.shape[0] - 1,), v.dtype)
            be.kernels.array_segment_sum_int(be.from_host(v), be.from_host(rs), sums)
            return c.result(sums)
        assert isinstance(v, np.ndarray) and isinstance(rs, np.ndarray)
        csum = np.concatenate([np.zeros(1, v.dtype), np.cumsum(v, dtype=v.dtype)])
        return cast("NDArray[Any]", (csum[rs[1:]] - csum[rs[:-1]]).astype(v.dtype))