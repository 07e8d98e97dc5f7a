"""Thread-count control, CUDA availability and the configuration report."""

from __future__ import annotations

import os
import sys

from . import _cpu

_num_threads = None  # None: OpenMP's default (OMP_NUM_THREADS or the core count)

try:  # keep the exception: a broken link must not look like "not built"
    from . import _cuda
    CUDA_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - depends on the build
    _cuda = None
    CUDA_IMPORT_ERROR = exc

_device_count_cache = None


def set_num_threads(n):
    """Set the number of OpenMP threads used by geomops kernels (``None`` restores the default).

    Per-call ``num_threads=`` arguments override this value. Results do not depend on it:
    every kernel is bitwise deterministic for any thread count.
    """
    global _num_threads
    if n is not None:
        n = int(n)
        if n < 1:
            raise ValueError(f"num_threads must be >= 1 or None, got {n}")
    _num_threads = n


def get_num_threads():
    """The number of threads a kernel uses when ``num_threads=None`` is passed."""
    return _num_threads if _num_threads is not None else _cpu.max_threads()


def resolve_num_threads(num_threads):
    """Validate a per-call ``num_threads`` argument and return the effective count."""
    if num_threads is None:
        return get_num_threads()
    if isinstance(num_threads, bool) or not isinstance(num_threads, int):
        try:
            import operator
            num_threads = operator.index(num_threads)
        except TypeError:
            raise TypeError(f"num_threads must be an int or None, got {type(num_threads).__name__}") from None
    if num_threads < 1:
        raise ValueError(f"num_threads must be >= 1 or None, got {num_threads}")
    return int(num_threads)


def cuda_built():
    """True when the CUDA extension module was built and imported."""
    return _cuda is not None


def cuda_device_count():
    """Number of usable CUDA devices (0 without a build, driver or GPU). Never raises."""
    global _device_count_cache
    if _device_count_cache is None:
        count = 0
        if _cuda is not None:
            try:
                count, err = _cuda.device_count()
                if err:
                    count = 0
            except Exception:  # pragma: no cover - defensive: this function never raises
                count = 0
        _device_count_cache = count
    return _device_count_cache


def cuda_available():
    """True when geomops was built with CUDA and at least one CUDA device is usable. Never raises."""
    try:
        return cuda_device_count() > 0
    except Exception:  # pragma: no cover
        return False


def show_config(file=None):
    """Print the version, OpenMP thread count, CUDA build status and the devices found."""
    from . import __version__
    out = file or sys.stdout
    lines = [f"geomops {__version__}",
             f"  python          {sys.version.split()[0]}",
             f"  numpy           {__import__('numpy').__version__}",
             f"  OpenMP          version {_cpu.openmp_version()}, max threads {_cpu.max_threads()}, "
             f"geomops threads {get_num_threads()}"
             + (f" (OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']})" if 'OMP_NUM_THREADS' in os.environ else "")]
    if _cuda is None:
        lines.append(f"  CUDA module     not built ({CUDA_IMPORT_ERROR})")
    else:
        rt, drv = _cuda.versions()
        lines.append(f"  CUDA module     built (runtime {rt // 1000}.{rt % 1000 // 10}, "
                     f"driver {drv // 1000}.{drv % 1000 // 10 if drv else 0})")
        count, err = _cuda.device_count()
        if err:
            lines.append(f"  CUDA devices    none (CUDA error {err}: {_cuda.error_string(err)})")
        else:
            lines.append(f"  CUDA devices    {count}")
            for d in range(count):
                info = _cuda.device_info(d)
                cc = info["compute_capability"]
                lines.append(f"    [{d}] {info['name']} (sm_{cc[0]}{cc[1]}, "
                             f"{info['total_memory'] / 2**30:.1f} GiB)")
    print("\n".join(lines), file=out)
