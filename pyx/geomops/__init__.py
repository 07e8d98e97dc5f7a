"""geomops: continuous convolutions, neighbor search and pose gradients for plain NumPy.

The ops live in :mod:`geomops.ops` (re-exported here); the render-and-compare pose
gradients live in :mod:`geomops.pose`. On a CUDA device they take and return device arrays
(:class:`DeviceArray`, :func:`to_device`; see docs/cuda.md).
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

__version__ = "0.1.0"


def _check_compiled() -> None:
    """Fail with instructions, not a circular-import message, when the compiled module is missing
    (typically: the source folder ``pyx`` is on ``sys.path`` but was never built in place)."""
    import importlib
    import os
    try:
        importlib.import_module("._cpu", __name__)
    except ImportError as exc:
        here = os.path.dirname(os.path.abspath(__file__))
        built = [n for n in os.listdir(here) if n.startswith("_cpu.") and n.endswith((".so", ".pyd"))]
        if built:
            raise ImportError(f"geomops: the compiled module {built[0]} in {here} failed to load ({exc}). "
                              "Rebuild it (`python -m pip install .`, or `python setup.py build_ext --inplace` "
                              "for a development checkout).") from exc
        raise ImportError(f"geomops is imported from {here}, a source folder without the compiled module "
                          "geomops._cpu. Either install geomops (`python -m pip install .`) and run without "
                          "that folder on PYTHONPATH, or build it in place first "
                          "(`python setup.py build_ext --inplace`).") from exc


_check_compiled()
del _check_compiled

from ._config import (cuda_available as cuda_available, get_num_threads as get_num_threads,  # noqa: E402
                      set_num_threads as set_num_threads, show_config as show_config)
from ._device import DeviceArray as DeviceArray, to_device as to_device  # noqa: E402
from .ops import *  # noqa: F401,F403,E402

if TYPE_CHECKING:
    # mypy reads only literal __all__ lists: instead of the computed one below it sees the
    # explicit re-exports (`import x as x`) and those of `from .ops import *`
    from . import layers as layers, ops as ops, plot as plot, pose as pose
else:
    from .ops import __all__ as _ops_all
    __all__ = ["__version__", "DeviceArray", "cuda_available", "get_num_threads", "set_num_threads",
               "show_config", "to_device", "ops", "pose", "layers", "plot"] + list(_ops_all)


def __getattr__(name: str) -> ModuleType:  # lazy: importing geomops imports no matplotlib and no dask
    if name in ("pose", "layers", "plot", "dask"):
        import importlib
        return importlib.import_module("." + name, __name__)
    raise AttributeError(f"module 'geomops' has no attribute {name!r}")
