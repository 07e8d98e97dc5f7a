"""Input validation shared by every public op.

All checks happen here, in Python, before any pointer reaches C. Each helper returns an
array the kernels can use directly (C-contiguous, the expected dtype) or raises a
``TypeError`` / ``ValueError`` that names the argument and what was expected.

Every helper takes NumPy input (and lists, scalars) and device arrays alike, with the same
messages for the same problem. A device array (any producer, see
:func:`geomops._device.as_device_array`) comes back as a :class:`geomops._device.DeviceArray` on
its device: its values are checked there by small reductions (:func:`geomops._device.stats`),
and conversions (int to float, int32 row splits to int64, strided to contiguous) run there; it
is never copied to the host.
"""

from __future__ import annotations

import numbers
import operator
import os
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np
from numpy.typing import DTypeLike

from . import _device, _memory
from ._device import AnyArray, DeviceArray

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
INDEX_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))


def _describe(a: AnyArray) -> str:
    return f"shape {tuple(a.shape)} and dtype {a.dtype}"


def as_array(x: object, name: str) -> AnyArray:
    """``np.asarray`` that reports a useful error for objects that are not array-like; device
    arrays become DeviceArray views (C-contiguous; a strided one is copied on its device)."""
    if x is None:
        raise TypeError(f"{name} must be an array, got None")
    if _device.is_device_array(x):
        return _device.as_device_array(x, name)
    try:
        return np.asarray(x)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise TypeError(f"{name} must be array-like, got {type(x).__name__}: {exc}") from None


def is_absent(x: object) -> bool:
    """True for ``None`` or an empty 1-D array (Open3D's "not given" convention)."""
    if x is None:
        return True
    if _device.is_device_array(x):
        shape = _device.shape_of(x)
        return len(shape) == 1 and shape[0] == 0
    a = np.asarray(x)
    return a.ndim == 1 and a.shape[0] == 0


def contiguous(a: AnyArray, dtype: Optional[DTypeLike] = None, name: Optional[str] = None) -> AnyArray:
    """``np.ascontiguousarray(a, dtype)`` for NumPy arrays; a DeviceArray (always C-contiguous)
    is converted on its device when ``dtype`` differs. A copy that cannot fit in memory (e.g. of a
    broadcast view) raises MemoryError naming ``name`` and the bytes."""
    check_copy(a, dtype, name)
    if isinstance(a, DeviceArray):
        return a if dtype is None else a.astype(dtype)
    return np.asarray(a, dtype=dtype, order="C")  # unlike np.ascontiguousarray, keeps a 0-d array 0-d


def check_copy(a: AnyArray, dtype: Optional[DTypeLike], name: Optional[str]) -> None:
    """MemoryError (naming ``name`` and the bytes) when ``a`` would be copied, to C order or to
    ``dtype``, and the copy cannot fit: e.g. a broadcast view of a huge shape."""
    target = a.dtype if dtype is None else np.dtype(dtype)
    if isinstance(a, DeviceArray):
        if target != a.dtype:
            _memory.check_device(_memory.array_nbytes(a.shape, target), f"{name or 'an input'} as {target}")
    elif not (a.flags.c_contiguous and a.dtype == target):
        _memory.check_host(_memory.array_nbytes(a.shape, target),
                           f"a contiguous {target} copy of {name or 'an input'} (shape {a.shape})")


def value_range(a: AnyArray) -> tuple[Any, Any]:
    """``(min, max)`` of a non-empty integer array (NumPy scalars, or Python ints for a
    DeviceArray: a reduction on its device)."""
    if isinstance(a, DeviceArray):
        s = _device.stats(a)
        return s.min, s.max
    return a.min(), a.max()


def all_finite(a: AnyArray, *, above: Optional[float] = None, at_least: Optional[float] = None) -> bool:
    """True when every value of the float array ``a`` is finite and, if given, > ``above`` or
    >= ``at_least`` (a reduction on the device for a DeviceArray)."""
    if isinstance(a, DeviceArray):
        if a.size == 0:
            return True
        s = _device.stats(a.reshape(-1))
        ok = s.nonfinite == 0
        if above is not None:
            ok = ok and s.min > above
        if at_least is not None:
            ok = ok and s.min >= at_least
        return bool(ok)
    ok = bool(np.isfinite(a).all())
    if above is not None:
        ok = ok and bool((a > above).all())
    if at_least is not None:
        ok = ok and bool((a >= at_least).all())
    return ok


def mismatch(name: str, axis: int, got: int, what: str, other: str) -> ValueError:
    """The ValueError for two arguments that disagree: ``name`` has ``got`` ``what`` along
    ``axis`` but ``other`` (a phrase naming the other argument and its dimension) wants another
    count."""
    return ValueError(f"{name} has {got} {what} (shape[{axis}]) but {other}")


def _convertible(dtype: DTypeLike) -> bool:
    """Real numbers convert exactly enough to a float dtype (bool, ints, float16); complex,
    object, strings and datetimes do not."""
    return bool(dtype == np.bool_ or np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating))


def float_array(x: object, name: str, *, ndim: Optional[int] = None, shape: Optional[Sequence[Optional[int]]] = None,
                dtype: Optional[DTypeLike] = None, dtype_of: Optional[str] = None) -> AnyArray:
    """Return ``x`` as a C-contiguous float32/float64 array.

    ``shape`` may contain ``None`` for free dimensions. ``dtype`` (if given) is the dtype the
    caller requires (bool, integer and float16 arrays are converted to it; a float array of the
    other precision is refused, naming ``dtype_of``, the argument that fixed the dtype, when
    given); otherwise the array keeps its own float dtype.
    """
    a = as_array(x, name)
    if a.dtype not in FLOAT_DTYPES:
        if dtype is None or not _convertible(a.dtype):
            raise TypeError(f"{name} must be float32 or float64, got dtype {a.dtype}")
    if dtype is not None and a.dtype != dtype:
        if a.dtype in FLOAT_DTYPES:
            if dtype_of is not None:
                raise TypeError(f"{name} has dtype {a.dtype} but {dtype_of} has dtype {np.dtype(dtype)}; "
                                "all float inputs of one call must share a dtype")
            raise TypeError(f"{name} has dtype {a.dtype} but the op's float inputs are {np.dtype(dtype)}; "
                            "all float inputs of one call must share a dtype")
        check_copy(a, dtype, name)
        a = a.astype(dtype)
    check_shape(a, name, ndim=ndim, shape=shape)
    return contiguous(a, name=name)


def check_shape(a: AnyArray, name: str, *, ndim: Optional[int] = None,
                shape: Optional[Sequence[Optional[int]]] = None) -> None:
    if shape is not None:
        ndim = len(shape)
    if ndim is not None and a.ndim != ndim:
        exp = f"shape {_shape_text(shape)}" if shape is not None else f"{ndim} dimension{'s' * (ndim != 1)}"
        raise ValueError(f"{name} must have {exp}, got {_describe(a)}")
    if shape is not None:
        for got, want in zip(a.shape, shape):
            if want is not None and got != want:
                raise ValueError(f"{name} must have shape {_shape_text(shape)}, got {_describe(a)}")


def _shape_text(shape: Sequence[Optional[int]]) -> str:
    return "[" + ", ".join("N" if s is None else str(s) for s in shape) + "]"


def common_float_dtype(**arrays: object) -> np.dtype[Any]:
    """The float dtype shared by the given arrays (``None`` values are skipped).

    Raises a TypeError listing each argument's dtype when they disagree or are not float.
    """
    dtypes: dict[str, np.dtype[Any]] = {}
    for name, a in arrays.items():
        if a is None:
            continue
        dt = as_array(a, name).dtype if _device.is_device_array(a) else np.asarray(a).dtype
        dtypes[name] = dt
    bad = {n: d for n, d in dtypes.items() if d not in FLOAT_DTYPES}
    if bad:
        n, d = next(iter(bad.items()))
        raise TypeError(f"{n} must be float32 or float64, got dtype {d}")
    kinds = set(dtypes.values())
    if len(kinds) > 1:
        listing = ", ".join(f"{n}={d}" for n, d in dtypes.items())
        raise TypeError(f"all float inputs of one call must share a dtype (float32 or float64); got {listing}")
    return kinds.pop() if kinds else np.dtype(np.float32)


def index_array(x: object, name: str, *, num_points: Optional[int] = None, points_of: Optional[str] = None,
                allow: Sequence[np.dtype[Any]] = INDEX_DTYPES) -> AnyArray:
    """A 1-D C-contiguous int32/int64 array; optionally checks 0 <= idx < num_points, where
    ``points_of`` names the argument whose rows the indices refer to."""
    a = as_array(x, name)
    if a.dtype not in allow:
        raise TypeError(f"{name} must be " + " or ".join(str(d) for d in allow) + f", got dtype {a.dtype}")
    check_shape(a, name, ndim=1)
    a = contiguous(a, name=name)
    if num_points is not None:
        check_index_range(a, name, num_points, points_of)
    return a


def check_index_range(a: AnyArray, name: str, num_points: int, points_of: Optional[str] = None) -> None:
    """Raise unless every index of ``a`` is in [0, num_points); the message names the argument
    ``points_of`` whose rows they index (e.g. "inp_positions")."""
    if not a.size:
        return
    lo, hi = value_range(a)
    if lo < 0 or hi >= num_points:
        bad = int(lo) if lo < 0 else int(hi)
        whose = (f"{points_of} has {num_points} points ({points_of}.shape[0])" if points_of is not None
                 else "the point set it indexes")
        raise ValueError(f"{name} contains {bad}, outside the valid range [0, {num_points}): {whose}")


def row_splits(x: object, name: str, *, num_rows: Optional[int] = None, rows_of: Optional[str] = None,
               total: Optional[int] = None, total_of: Optional[str] = None) -> AnyArray:
    """Validated int64 row splits: 1-D, starts at 0, non-decreasing, ends at ``total``.

    int32 input is accepted and converted. ``num_rows`` fixes the length to num_rows + 1;
    ``rows_of`` names the argument with that many rows and ``total_of`` the array the splits
    cut (of length ``total``), for the messages.
    """
    a = as_array(x, name)
    if a.dtype not in INDEX_DTYPES:
        raise TypeError(f"{name} must be int64 (int32 is converted), got dtype {a.dtype}")
    check_shape(a, name, ndim=1)
    if num_rows is not None and a.shape[0] != num_rows + 1:
        if rows_of is not None:
            raise mismatch(name, 0, a.shape[0], "entries", f"{rows_of} has {num_rows} rows ({rows_of}.shape[0]); "
                           f"row splits need {rows_of}.shape[0] + 1 = {num_rows + 1} entries")
        raise ValueError(f"{name} must have {num_rows + 1} entries (number of rows + 1), got {a.shape[0]}")
    if a.shape[0] < 1:
        raise ValueError(f"{name} must have at least one entry (it starts with 0)")
    a = contiguous(a, np.int64, name)
    if isinstance(a, DeviceArray):
        s = _device.stats(a)
        first, last, decreasing = s.first, s.last, s.decreasing > 0
    else:
        first, last = int(a[0]), int(a[-1])
        decreasing = a.shape[0] > 1 and bool(np.any(a[1:] < a[:-1]))
    if first != 0:
        raise ValueError(f"{name} must start with 0, got {first}")
    if decreasing:
        raise ValueError(f"{name} must be non-decreasing (monotone row splits)")
    if total is not None and last != total:
        if total_of is not None:
            raise ValueError(f"{name} ends with {last} but {total_of} has {total} entries ({total_of}.shape[0]); "
                             "the last row split must equal it")
        raise ValueError(f"{name} must end with {total} (the length of the array it splits), got {last}")
    return a


def optional_float(x: object, name: str, *, length: int, dtype: DTypeLike,
                   length_of: Optional[str] = None) -> Optional[AnyArray]:
    """``None`` for absent inputs (None or shape [0]); else a [length] array of ``dtype``.
    ``length_of`` names the argument (and dimension) the length comes from, for the message."""
    if is_absent(x):
        return None
    a = float_array(x, name, dtype=dtype)
    if a.ndim == 1 and a.shape[0] != length and length_of is not None:
        raise mismatch(name, 0, a.shape[0], "entries", f"{length_of} has {length} ({length_of}.shape[0]); "
                       f"{name} needs one entry per row of {length_of}, or shape [0] (absent)")
    if a.ndim != 1 or a.shape[0] != length:
        raise ValueError(f"{name} must have shape [{length}] or [0] (absent), got {_describe(a)}")
    return a


def check_option(value: object, name: str, valid: Sequence[str]) -> str:
    """Validate a string option against a tuple of valid values."""
    if not isinstance(value, str) or value not in valid:
        raise ValueError(f"{name} must be one of {tuple(valid)} but got {value!r}")
    return value


def check_bool(value: object, name: str) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be a bool, got {type(value).__name__}")


def check_int(value: Any, name: str, *, minimum: Optional[int] = None) -> int:
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None
    if minimum is not None and v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v}")
    return v


def check_real(value: object, name: str, *, positive: bool = False, nonnegative: bool = False) -> float:
    if isinstance(value, np.ndarray) or _device.is_device_array(value):
        shape = tuple(value.shape) if isinstance(value, np.ndarray) else tuple(_device.shape_of(value))
        if shape != ():
            raise TypeError(f"{name} must be a real number, got an array of shape {shape}")
        if isinstance(value, np.ndarray):
            value = value.item()
        else:
            value = _device.as_device_array(value, name).get().item()  # one element
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    if positive and not v > 0:
        raise ValueError(f"{name} must be > 0, got {v}")
    if nonnegative and v < 0:
        raise ValueError(f"{name} must be >= 0, got {v}")
    return v


_LARGE_REQUEST = 1 << 30  # smaller requests are not checked (no system call on the common path)


def host_memory_available() -> int:
    """Bytes of host memory the system can still give (Linux: ``MemAvailable`` of
    /proc/meminfo; elsewhere the physical memory)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):  # pragma: no cover - no way to know
        return 1 << 62


def check_host_bytes(nbytes: int, what: str) -> None:
    """Raise MemoryError (naming ``what`` and the size) before allocating ``nbytes`` of host memory
    that the system does not have: with overcommit the allocation itself succeeds and the process
    is killed when the kernel writes the memory."""
    if nbytes > _LARGE_REQUEST and nbytes > host_memory_available():
        raise MemoryError(f"{what} needs {nbytes} bytes, more than the {host_memory_available()} bytes of memory "
                          "available")
