"""geomops: continuous convolutions, neighbor search and pose gradients for plain NumPy.

The ops live in :mod:`geomops.ops` (re-exported here); the render-and-compare pose
gradients live in :mod:`geomops.pose`.
"""

__version__ = "0.1.0"

from ._config import (cuda_available, get_num_threads, set_num_threads,  # noqa: E402
                      show_config)
from .ops import *  # noqa: F401,F403,E402
from .ops import __all__ as _ops_all  # noqa: E402

__all__ = ["__version__", "cuda_available", "get_num_threads", "set_num_threads",
           "show_config", "ops", "pose", "layers"] + list(_ops_all)


def __getattr__(name):  # lazy submodule: importing geomops does not build the pose tools
    if name in ("pose", "layers"):
        import importlib
        return importlib.import_module("." + name, __name__)
    raise AttributeError(f"module 'geomops' has no attribute {name!r}")
