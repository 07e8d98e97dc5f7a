"""The one place where a backend is chosen.

Every public function resolves its ``device=`` argument here and calls kernels only through
the returned :class:`Backend`; no other module imports ``_cpu``, ``_cuda`` or ``_cuda_emu`` for
kernels.

``device`` values: ``None`` (where the inputs are), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any, Optional

import numpy as np

from . import _cpu
from . import _device

__all__ = ["Backend", "resolve", "cpu", "parse_device", "cuda_emulation"]

_CUDA_RE = re.compile(r"^cuda(?::(\d+))?$")


class Backend:
    """A resolved backend: ``name`` ("cpu" or "cuda"), the device ordinal (None on the CPU),
    ``kernels`` (the compiled module whose functions run the kernels) and the allocation and
    copy functions of its memory."""

    __slots__ = ("name", "device_id", "kernels")

    def __init__(self, name: str, device_id: Optional[int], kernels: Any):
        self.name = name
        self.device_id = device_id
        self.kernels = kernels

    @property
    def device(self) -> str:
        return self.name if self.device_id is None else f"{self.name}:{self.device_id}"

    @property
    def is_cuda(self) -> bool:
        return self.name == "cuda"

    def empty(self, shape, dtype):
        """An uninitialised output array in this backend's memory."""
        if not self.is_cuda:
            return np.empty(shape, dtype)
        return _device.empty(self.kernels, shape, dtype, self.device_id)

    def from_host(self, a):
        """A NumPy array moved to this backend's memory (the same array on the CPU)."""
        if not self.is_cuda or a is None:
            return a
        return _device.from_host(self.kernels, a, self.device_id)

    def to_host(self, a):
        """An array of this backend as a NumPy array (the same array on the CPU)."""
        if a is None or isinstance(a, np.ndarray):
            return a
        return a.get()

    def __repr__(self):
        emu = " (emulated)" if self.is_cuda and getattr(self.kernels, "EMULATED", False) else ""
        return f"Backend({self.device!r}{emu})"


_CPU = Backend("cpu", None, _cpu)
_emulate_cuda = False  # tests only: "cuda" runs the host-compiled kernels of _cuda_emu


def cpu() -> Backend:
    """The OpenMP backend."""
    return _CPU


def parse_device(device) -> tuple[str, Optional[int]]:
    """Validate a ``device=`` argument: ``(kind, ordinal)`` with kind ``"cpu"``, ``"cuda"`` or
    ``"auto"`` (None). Raises TypeError/ValueError naming ``device``."""
    if device is None:
        return "auto", None
    if not isinstance(device, str):
        raise TypeError(f"device must be None, 'cpu', 'cuda' or 'cuda:N', got {type(device).__name__}")
    text = device.strip().lower()
    if text == "cpu":
        return "cpu", None
    m = _CUDA_RE.match(text)
    if m is None:
        raise ValueError(f"device must be None, 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    return "cuda", int(m.group(1)) if m.group(1) is not None else 0


def cuda_module():
    """The CUDA binding module in use: ``_cuda``, or ``_cuda_emu`` under :func:`cuda_emulation`.
    Raises RuntimeError, saying why, when no CUDA device can be used."""
    if _emulate_cuda:
        from . import _cuda_emu
        return _cuda_emu
    from . import _config
    count, reason = _config.cuda_status()
    if count == 0:
        raise RuntimeError(f"device='cuda' cannot be used: {reason}")
    return _config._cuda


@contextlib.contextmanager
def cuda_emulation(enabled=True):
    """Within the block, ``device="cuda"`` runs the CUDA backend's kernels compiled for the host
    (``geomops._cuda_emu``: sequential, host memory). For tests on machines without a GPU."""
    global _emulate_cuda
    old = _emulate_cuda
    _emulate_cuda = enabled
    try:
        yield
    finally:
        _emulate_cuda = old


def resolve(device=None) -> Backend:
    """The backend that runs a call with this ``device=`` argument."""
    kind, ordinal = parse_device(device)
    if kind in ("auto", "cpu"):
        return _CPU
    module = cuda_module()
    if not getattr(module, "EMULATED", False):
        from . import _config
        count = _config.cuda_device_count()
        if ordinal >= count:
            raise ValueError(f"device={device!r}: there are {count} CUDA device(s), numbered 0 to {count - 1}")
    elif ordinal != 0:
        raise ValueError(f"device={device!r}: the CUDA emulator has one device, cuda:0")
    return Backend("cuda", ordinal, module)
