"""Checks before large allocations (docs/architecture.md, "Interrupts and memory limits").

An output or a converted copy of an input whose size is impossible (more bytes than any
allocation can hold, or an int64 overflow) or larger than the memory the system can still give
raises MemoryError naming what it was for and the bytes, before anything is allocated: on Linux
a request that fits the address space but not the memory would otherwise succeed and wake the
OOM killer when its pages are touched. Inside one op call (:func:`call_scope`, opened by
``_backend.op_call``) the outputs count together: a render's buffers may each fit while all of
them do not. The C kernels check their own temporaries the same way
(include/geomops/host_alloc.h).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Optional, SupportsIndex, SupportsInt, Union

import numpy as np
import numpy.typing as npt

CHECK_BYTES = 256 << 20  # smaller requests are not compared with the available memory
MAX_BYTES = (1 << 63) - 1  # what a size (ssize_t) can describe

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")
_call = threading.local()  # depth: nested op calls; total: host bytes allocated by the outermost


@contextlib.contextmanager
def call_scope() -> Iterator[None]:
    """Count the host outputs of one op call together (nested calls join the outermost)."""
    depth = getattr(_call, "depth", 0)
    if depth == 0:
        _call.total = 0
    _call.depth = depth + 1
    try:
        yield
    finally:
        _call.depth = depth


def nbytes_text(nbytes: SupportsInt) -> str:
    """``nbytes`` in words: ``"123456789 bytes (117.7 MiB)"``."""
    nbytes = int(nbytes)
    value, unit = float(nbytes), None  # type: float, Optional[str]
    for u in _UNITS:
        if value < 1024:
            break
        value /= 1024
        unit = u
    return f"{nbytes} bytes" if unit is None else f"{nbytes} bytes ({value:.1f} {unit})"


def available_bytes() -> Optional[int]:
    """MemAvailable + SwapFree of /proc/meminfo in bytes, or None where it cannot be read."""
    fields: dict[str, int] = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                name, _, rest = line.partition(":")
                if name in ("MemAvailable", "SwapFree"):
                    fields[name] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    if "MemAvailable" not in fields:
        return None
    return fields["MemAvailable"] + fields.get("SwapFree", 0)


def array_nbytes(shape: Sequence[SupportsIndex], dtype: npt.DTypeLike) -> int:
    """Bytes of an array of ``shape`` and ``dtype``, as a Python int (never overflows)."""
    n = np.dtype(dtype).itemsize
    for s in shape:
        n *= int(s)  # Python ints: no overflow
    return n


def check_host(nbytes: SupportsInt, what: Union[str, Callable[[], str]], *,
               together: Optional[SupportsInt] = None) -> None:
    """Raise MemoryError when ``nbytes`` of host memory for ``what`` cannot be allocated
    (``together``: the bytes including the call's other outputs, compared with what is available).
    ``what`` may be a function giving the text, called only for the message."""
    nbytes = int(nbytes)
    if nbytes > MAX_BYTES:
        raise MemoryError(f"geomops: {_text(what)} would need {nbytes_text(nbytes)}, more than any allocation "
                          "can hold")
    total = nbytes if together is None else int(together)
    if total >= CHECK_BYTES:
        avail = available_bytes()
        if avail is not None and total > avail:
            also = "" if total == nbytes else f" ({nbytes_text(total)} with the call's other outputs)"
            raise MemoryError(f"geomops: {_text(what)} would need {nbytes_text(nbytes)} of host memory{also}, "
                              f"more than the {nbytes_text(avail)} available")


def _text(what: Union[str, Callable[[], str]]) -> str:
    return what if isinstance(what, str) else what()


def check_device(nbytes: SupportsInt, what: str) -> None:
    """Raise MemoryError when ``nbytes`` cannot even be asked of a device allocator (the device
    itself reports when it has too little memory)."""
    nbytes = int(nbytes)
    if nbytes > MAX_BYTES:
        raise MemoryError(f"geomops: {what} would need {nbytes_text(nbytes)} of device memory, more than any "
                          "allocation can hold")


def host_reserve(shape: Sequence[SupportsIndex], dtype: npt.DTypeLike, what: str = "an output array") -> None:
    """:func:`check_host` of an output of ``shape`` and ``dtype`` (with the call's other outputs),
    counted with them; for outputs that the caller allocates itself (e.g. as views of one block)."""
    nbytes = array_nbytes(shape, dtype)
    together: Optional[int] = None
    if getattr(_call, "depth", 0):
        together = _call.total + nbytes
    # the message is formatted only when it is raised (this runs for every output array)
    check_host(nbytes, lambda: f"{what} of shape {tuple(int(s) for s in shape)} and dtype {np.dtype(dtype)}",
               together=together)
    if together is not None:
        _call.total = together


def host_empty(shape: Sequence[SupportsIndex], dtype: npt.DTypeLike,
               what: str = "an output array") -> npt.NDArray[Any]:
    """``np.empty(shape, dtype)`` after :func:`host_reserve` (of the call's outputs together)."""
    host_reserve(shape, dtype, what)
    return np.empty(shape, np.dtype(dtype))
