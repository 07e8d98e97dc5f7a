"""The one place where a backend is chosen.

Every public function resolves its ``device=`` argument here and calls kernels only through
the returned :class:`Backend`; no other module imports ``_cpu`` or ``_cuda`` for kernels.

``device`` values: ``None`` (where the inputs are; today always the CPU), ``"cpu"``,
``"cuda"`` or ``"cuda:N"``. The CUDA backend is not available yet: asking for it raises a
``RuntimeError`` that says so.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple, Optional

from . import _cpu

__all__ = ["Backend", "resolve", "cpu"]

_CUDA_RE = re.compile(r"^cuda(?::(\d+))?$")


class Backend(NamedTuple):
    """A resolved backend: its ``name`` ("cpu" or "cuda"), the device ordinal (None on the CPU)
    and the compiled module whose functions run the kernels."""
    name: str
    device_id: Optional[int]
    kernels: Any

    @property
    def device(self) -> str:
        return self.name if self.device_id is None else f"{self.name}:{self.device_id}"


_CPU = Backend("cpu", None, _cpu)


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


def resolve(device=None) -> Backend:
    """The backend that runs a call with this ``device=`` argument."""
    kind, ordinal = parse_device(device)
    if kind in ("auto", "cpu"):
        return _CPU
    raise RuntimeError(f"device={device!r}: the CUDA backend of geomops is not available yet "
                       "(this build runs every op on the CPU; use device=None or 'cpu')")
