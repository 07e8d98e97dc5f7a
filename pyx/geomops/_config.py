"""Thread-count control, CUDA availability and the configuration report."""

from __future__ import annotations

import operator
import os
import sys
from types import ModuleType
from typing import Optional, SupportsIndex, TextIO

import numpy as np

from . import _cpu

_num_threads: Optional[int] = None  # None: OpenMP's default (OMP_NUM_THREADS or the core count)
MAX_THREADS = 1 << 16  # more threads than any machine has cores; beyond, thread creation fails

_cuda: Optional[ModuleType]
CUDA_IMPORT_ERROR: Optional[ImportError]

try:  # keep the exception: a broken link must not look like "not built"
    from . import _cuda
    CUDA_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - depends on the build
    _cuda = None
    CUDA_IMPORT_ERROR = exc

_device_count_cache: Optional[tuple[int, str]] = None


def set_num_threads(n: Optional[int]) -> None:
    """Set the number of OpenMP threads used by geomops kernels (``None`` restores the default).

    Per-call ``num_threads=`` arguments override this value. Results do not depend on it:
    every kernel is bitwise deterministic for any thread count.
    """
    global _num_threads
    _num_threads = None if n is None else resolve_num_threads(n)


def get_num_threads() -> int:
    """The number of threads a kernel uses when ``num_threads=None`` is passed."""
    return _num_threads if _num_threads is not None else _cpu.max_threads()


def resolve_num_threads(num_threads: Optional[SupportsIndex]) -> int:
    """Validate a per-call ``num_threads`` argument and return the effective count."""
    if num_threads is None:
        return get_num_threads()
    if isinstance(num_threads, (bool, np.bool_)):
        raise TypeError(f"num_threads must be an int or None, got {type(num_threads).__name__}")
    if not isinstance(num_threads, int):
        try:
            num_threads = operator.index(num_threads)
        except TypeError:
            raise TypeError(f"num_threads must be an int or None, got {type(num_threads).__name__}") from None
    if num_threads < 1:
        raise ValueError(f"num_threads must be >= 1 or None, got {num_threads}")
    if num_threads > MAX_THREADS:  # OpenMP exits the process when it cannot create the threads
        raise ValueError(f"num_threads must be <= {MAX_THREADS}, got {num_threads}")
    return int(num_threads)


def cuda_built() -> bool:
    """True when the CUDA extension module was built and imported."""
    return _cuda is not None


def cuda_status() -> tuple[int, str]:
    """``(device_count, reason)``: the usable CUDA devices and, when there are none, why, in plain
    words ("geomops was built without CUDA", "no NVIDIA driver is installed ...", ...). Never raises."""
    global _device_count_cache
    if _cuda is None:
        return 0, f"geomops was built without the CUDA module ({CUDA_IMPORT_ERROR})"
    if _device_count_cache is None:
        try:
            count, status, reason = _cuda.device_count()
        except Exception as exc:  # pragma: no cover - defensive: this function never raises
            count, status, reason = 0, -1, f"the CUDA device query failed: {exc}"
        if status != 0:
            count = 0
        elif count == 0:
            reason = "the NVIDIA driver found no CUDA device"
        _device_count_cache = (count, reason)
    return _device_count_cache


def cuda_device_count() -> int:
    """Number of usable CUDA devices (0 without a build, driver or GPU). Never raises."""
    return cuda_status()[0]


def cuda_available() -> bool:
    """True when geomops was built with CUDA and at least one CUDA device is usable. Never raises."""
    try:
        return cuda_device_count() > 0
    except Exception:  # pragma: no cover
        return False


def _version_text(v: int) -> str:
    return f"{v // 1000}.{v % 1000 // 10}" if v else "none"


def show_config(file: Optional[TextIO] = None) -> None:
    """Print the version, OpenMP thread count, CPU kernel ISA, CUDA build status and the devices found."""
    from . import __version__
    out = file or sys.stdout
    omp_env = f" (OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']})" if "OMP_NUM_THREADS" in os.environ else ""
    isa_note = " (GEOMOPS_CPU_KERNEL ignored: not supported here)" if _cpu.cpu_kernel_request_ignored() else ""
    lines = [f"geomops {__version__}",
             f"  python          {sys.version.split()[0]}",
             f"  numpy           {__import__('numpy').__version__}",
             f"  OpenMP          version {_cpu.openmp_version()}, max threads {_cpu.max_threads()}, "
             f"geomops threads {get_num_threads()}{omp_env}",
             f"  CPU kernels     {_cpu.cpu_kernel()} (supported: {', '.join(_cpu.cpu_kernels_supported())})"
             + isa_note]
    if _cuda is None:
        lines.append(f"  CUDA module     not built ({CUDA_IMPORT_ERROR})")
    else:
        rt, drv = _cuda.versions()
        driver = f"supports CUDA {_version_text(drv)}" if drv else "not installed"
        lines.append(f"  CUDA module     built (runtime {_version_text(rt)}, driver {driver})")
        count, reason = cuda_status()
        if count == 0:
            lines.append(f"  CUDA devices    none: {reason}")
        else:
            lines.append(f"  CUDA devices    {count}")
            for d in range(count):
                info = _cuda.device_info(d)
                cc = info["compute_capability"]
                lines.append(f"    [{d}] {info['name']} (sm_{cc[0]}{cc[1]}, "
                             f"{info['total_memory'] / 2**30:.1f} GiB)")
    print("\n".join(lines), file=out)
