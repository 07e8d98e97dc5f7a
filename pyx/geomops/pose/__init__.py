"""Render-and-compare pose gradients (stillleben's ``diff`` module, framework-free).

* :mod:`.scene`   -- Camera, Mesh, SceneObject, Scene (the data model)
* :mod:`.buffers` -- RenderResult (render buffers, also from an external renderer)
* :mod:`.render`  -- the OpenMP software rasterizer
* :mod:`.diff`    -- image-space gradients, pose back-propagation, apply_pose_delta
"""

from .scene import *  # noqa: F401,F403
from .buffers import *  # noqa: F401,F403
from .render import *  # noqa: F401,F403
from .diff import *  # noqa: F401,F403
from . import scene as _scene, buffers as _buffers, render as _render, diff as _diff

__all__ = list(_scene.__all__) + list(_buffers.__all__) + list(_render.__all__) + list(_diff.__all__)
