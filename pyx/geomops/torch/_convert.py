"""Tensors in and out of geomops without copies."""

from __future__ import annotations

from typing import Any, Optional, TypeVar, Union, cast, overload

import numpy as np
import torch
from numpy.typing import DTypeLike, NDArray

from .._device import AnyArray

_T = TypeVar("_T")

IndexDType = Union[int, torch.dtype, DTypeLike]
"""An ``index_dtype``: the torch ScalarType codes 3 (int32) and 4 (int64), a torch or NumPy dtype."""

_INDEX_DTYPES: dict[object, np.dtype[Any]] = {3: np.dtype(np.int32), 4: np.dtype(np.int64),
                                              torch.int32: np.dtype(np.int32), torch.int64: np.dtype(np.int64)}


@overload
def array(t: torch.Tensor) -> Union[NDArray[Any], torch.Tensor]: ...
@overload
def array(t: _T) -> _T: ...


def array(t: object) -> object:
    """What geomops takes for ``t``: a NumPy view of a CPU tensor, the (detached) tensor itself
    on CUDA (geomops views it through DLPack), anything else unchanged."""
    if not isinstance(t, torch.Tensor):
        return t
    t = t.detach()
    if t.device.type == "cpu":
        return t.resolve_conj().resolve_neg().numpy()
    return t


@overload
def tensor(a: None) -> None: ...
@overload
def tensor(a: AnyArray) -> torch.Tensor: ...


def tensor(a: Optional[AnyArray]) -> Optional[torch.Tensor]:
    """A geomops result as a tensor sharing its memory (None stays None)."""
    if a is None:
        return None
    if isinstance(a, np.ndarray):
        return torch.from_numpy(a)
    return torch.from_dlpack(a)  # type: ignore[attr-defined]  # public torch API, missing from torch's __all__


def stream(*tensors: object) -> Optional[int]:
    """``stream=`` for a geomops call on these tensors: torch's current stream of their CUDA
    device (geomops orders its work on it, as torch's own ops do), or None on the CPU."""
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.device.type == "cuda":
            return torch.cuda.current_stream(t.device).cuda_stream
    return None


def index_dtype(value: IndexDType) -> np.dtype[Any]:
    """``index_dtype`` as a NumPy dtype: the torch ScalarType codes 3 (int32) and 4 (int64), torch
    dtypes or NumPy dtypes."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"index_dtype must be 3 (int32) or 4 (int64), got {value!r}")
    try:
        return _INDEX_DTYPES[value]
    except (KeyError, TypeError):
        pass
    try:
        dt = np.dtype(cast(DTypeLike, value))  # raises TypeError for what is no dtype
    except TypeError:
        dt = None
    if dt not in (np.dtype(np.int32), np.dtype(np.int64)):
        raise TypeError(f"index_dtype must be 3 (torch.int32) or 4 (torch.int64), got {value!r}")
    return dt


def tensor_argument(x: object, name: str) -> torch.Tensor:
    """``x``, an argument that must be a tensor (TypeError naming ``name`` otherwise)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    return x


@overload
def scalar(x: torch.Tensor, name: str) -> Union[int, float, bool]: ...
@overload
def scalar(x: _T, name: str) -> _T: ...


def scalar(x: object, name: str) -> object:
    """A Python number of a number or a one-element tensor (e.g. a radius)."""
    if isinstance(x, torch.Tensor):
        if x.numel() != 1:
            raise ValueError(f"{name} must be a scalar, got a tensor of shape {tuple(x.shape)}")
        return x.detach().reshape(()).item()
    return x
