"""Render-and-compare pose gradients (stillleben's ``diff`` module, framework-free).

* :mod:`.scene`   -- Camera, Mesh, SceneObject, Scene (the data model)
* :mod:`.buffers` -- RenderResult (render buffers, also from an external renderer)
* :mod:`.render`  -- the software rasterizer (OpenMP on the CPU, or CUDA)
* :mod:`.diff`    -- image-space gradients, pose back-propagation, apply_pose_delta
* :mod:`.refine`  -- the normalised (Adam) pose step and a render-and-compare loop
"""

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:  # the names bound below, for type checkers
    from .buffers import *  # noqa: F401,F403
    from .diff import *  # noqa: F401,F403
    from .render import *  # noqa: F401,F403
    from .scene import *  # noqa: F401,F403

# Load the submodules by name: the function ``render`` shadows the submodule attribute
# ``geomops.pose.render`` once it is star-imported.
_modules = [_importlib.import_module("." + _name, __name__)
            for _name in ("scene", "buffers", "render", "diff", "refine")]
__all__ = [_n for _m in _modules for _n in _m.__all__]
globals().update({_n: getattr(_m, _n) for _m in _modules for _n in _m.__all__})
del _modules
