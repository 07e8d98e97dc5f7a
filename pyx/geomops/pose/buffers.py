"""RenderResult: the per-pixel render buffers, from geomops' rasterizer or from your own renderer.

All buffers are C-contiguous NumPy arrays of shape (H, W[, C]), row 0 = top, pixel (r, c)
sampled at ``(u, v) = (c + 0.5, r + 0.5)`` (see :mod:`geomops.pose.scene`).

========================  ===================  ==========  =============================================
buffer                    dtype, shape         background  content
========================  ===================  ==========  =============================================
``rgb``                   uint8 (H, W, 4)      bg colour   shaded colour, alpha 255 on covered pixels
``depth``                 float32 (H, W)       3000        camera-frame Z of the visible surface
``instance_index``        int16 (H, W)         0           ``SceneObject.instance_index``
``object_coordinates``    float32 (H, W, 3)    3000        visible surface point in the object frame
``cam_coordinates``       float32 (H, W, 4)    3000        (X, Y, Z, 1) in the camera frame
``normals``               float32 (H, W, 4)    0           camera-frame unit normal; w = n . (-view dir)
``class_index``           int16 (H, W)         0           ``Mesh.class_index``
``triangle_id``           int32 (H, W)         -1          face index within the object's mesh
``barycentrics``          float32 (H, W, 3)    0           perspective-correct barycentrics of the face
========================  ===================  ==========  =============================================
"""

from __future__ import annotations

import numpy as np

from .._validate import as_array
from ._constants import BACKGROUND_DEPTH  # stillleben's "invalid" clear value for depth and coordinates
from ._constants import MAX_INSTANCE_INDEX

__all__ = ["RenderResult", "BACKGROUND_DEPTH"]

_OPTIONAL = ("cam_coordinates", "normals", "class_index", "triangle_id", "barycentrics")


class RenderResult:
    """The render buffers of one frame (see the module docstring for the table).

    The constructor stores the arrays it is given after a light check of dtypes and shapes
    (it is what :func:`geomops.pose.render` uses). To wrap buffers from another renderer,
    use :meth:`from_buffers`, which validates and converts everything.

    Attributes ``cam_coordinates``, ``normals``, ``class_index``, ``triangle_id`` and
    ``barycentrics`` may be ``None`` (not provided).
    """

    __slots__ = ("rgb", "depth", "instance_index", "object_coordinates") + _OPTIONAL

    def __init__(self, rgb, depth, instance_index, object_coordinates, cam_coordinates=None, normals=None,
                 class_index=None, triangle_id=None, barycentrics=None):
        depth = _exact(depth, "depth", np.float32, None)
        h, w = depth.shape
        self.depth = depth
        self.rgb = _exact(rgb, "rgb", np.uint8, (h, w, 4))
        self.instance_index = _exact(instance_index, "instance_index", np.int16, (h, w))
        self.object_coordinates = _exact(object_coordinates, "object_coordinates", np.float32, (h, w, 3))
        self.cam_coordinates = _exact(cam_coordinates, "cam_coordinates", np.float32, (h, w, 4), True)
        self.normals = _exact(normals, "normals", np.float32, (h, w, 4), True)
        self.class_index = _exact(class_index, "class_index", np.int16, (h, w), True)
        self.triangle_id = _exact(triangle_id, "triangle_id", np.int32, (h, w), True)
        self.barycentrics = _exact(barycentrics, "barycentrics", np.float32, (h, w, 3), True)

    @property
    def height(self):
        return self.depth.shape[0]

    @property
    def width(self):
        return self.depth.shape[1]

    @property
    def shape(self):
        """``(height, width)``."""
        return self.depth.shape

    def rgb_float(self):
        """(H, W, 3) float32 colour in [0, 1] (``rgb[..., :3] / 255``, as the gradients use it)."""
        return self.rgb[..., :3].astype(np.float32) / np.float32(255.0)

    def mask(self, instance_index):
        """(H, W) bool: pixels whose instance index equals ``instance_index``."""
        return self.instance_index == int(instance_index)

    def __repr__(self):
        have = [n for n in _OPTIONAL if getattr(self, n) is not None]
        return f"RenderResult({self.height}x{self.width}, optional buffers: {', '.join(have) or 'none'})"

    # ------------------------------------------------------------------------------------------
    @classmethod
    def from_buffers(cls, *, rgb, depth, instance_index, object_coordinates, cam_coordinates=None,
                     normals=None, class_index=None, triangle_id=None, barycentrics=None):
        """Wrap buffers rendered elsewhere (pyrender, Blender, nvdiffrast, ...), with validation.

        Parameters
        ----------
        rgb : (H, W, 3) or (H, W, 4), uint8 or float in [0, 1]
            Float input is converted with ``round(255 * x)``; missing alpha becomes 255.
        depth : (H, W) or (H, W, 1), float
            Camera-frame Z (positive, not NDC depth, not ray length). Stored as float32.
        instance_index : (H, W) or (H, W, 1), any integer dtype
            0 = background; values must lie in [0, 32767] (int16). Stored as int16.
        object_coordinates : (H, W, 3), float
            Visible surface point in the object frame. Stored as float32.
        cam_coordinates : (H, W, 3) or (H, W, 4), float, optional
            Camera-frame point; a 4th channel of 1 is added to (H, W, 3) input.
        normals : (H, W, 3) or (H, W, 4), float, optional
            A 4th channel of 0 is added to (H, W, 3) input.
        class_index : (H, W) or (H, W, 1), integer in [0, 32767], optional
        triangle_id : (H, W) or (H, W, 1), integer fitting int32, optional
        barycentrics : (H, W, 3), float, optional

        NaN and infinity: ``depth`` and ``object_coordinates`` must be finite at foreground
        pixels (``instance_index != 0``), because the gradients read them there; background
        pixels may hold anything (NaN, inf, 0, 3000) and are stored as given, since nothing
        reads them. Float ``rgb`` must be finite. The optional buffers are stored as given.

        Every output array is a new C-contiguous copy.

        Raises
        ------
        TypeError
            Wrong dtype (message names the argument).
        ValueError
            Shapes that disagree (message names the argument and the expected shape), ids out
            of the int16 range, non-finite foreground values, float rgb outside [0, 1].
        """
        inst = _int_plane(instance_index, "instance_index", None, np.int16, 0, MAX_INSTANCE_INDEX)
        h, w = inst.shape
        d = _float_buf(depth, "depth", (h, w), squeeze=True)
        fg = inst != 0
        _finite_where(d, fg, "depth")
        oc = _float_buf(object_coordinates, "object_coordinates", (h, w, 3))
        _finite_where(oc, fg, "object_coordinates")
        out_rgb = _rgb(rgb, (h, w))
        cam = None
        if cam_coordinates is not None:
            cam = _float_buf(cam_coordinates, "cam_coordinates", (h, w, (3, 4)))
            if cam.shape[2] == 3:
                cam = np.concatenate([cam, np.ones((h, w, 1), np.float32)], axis=2)
        nrm = None
        if normals is not None:
            nrm = _float_buf(normals, "normals", (h, w, (3, 4)))
            if nrm.shape[2] == 3:
                nrm = np.concatenate([nrm, np.zeros((h, w, 1), np.float32)], axis=2)
        cls_idx = None if class_index is None else \
            _int_plane(class_index, "class_index", (h, w), np.int16, 0, MAX_INSTANCE_INDEX)
        tri = None if triangle_id is None else \
            _int_plane(triangle_id, "triangle_id", (h, w), np.int32, -1, np.iinfo(np.int32).max)
        bary = None if barycentrics is None else _float_buf(barycentrics, "barycentrics", (h, w, 3))
        return cls(out_rgb, d, inst, oc, cam, nrm, cls_idx, tri, bary)


# ----------------------------------------------------------------------------------------------
def _exact(a, name, dtype, shape, optional=False):
    """Light check for the internal constructor: exact dtype and shape, C-contiguous."""
    if a is None:
        if optional:
            return None
        raise TypeError(f"{name} must be an array, got None")
    if not isinstance(a, np.ndarray) or a.dtype != dtype:
        got = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
        raise TypeError(f"{name} must be a {np.dtype(dtype)} ndarray, got {got} "
                        "(use RenderResult.from_buffers to convert foreign buffers)")
    if shape is None:
        if a.ndim != 2:
            raise ValueError(f"{name} must have shape (H, W), got {a.shape}")
    elif a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    return np.ascontiguousarray(a)


def _shape_text(shape):
    parts = []
    for s in shape:
        parts.append(" or ".join(map(str, s)) if isinstance(s, tuple) else str(s))
    return "(" + ", ".join(parts) + ")"


def _squeeze_plane(a, name, shape):
    """(H, W) or (H, W, 1) -> (H, W); ``shape`` None means any H, W."""
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim != 2 or (shape is not None and a.shape != shape):
        exp = "(H, W) or (H, W, 1)" if shape is None else f"{shape} or {shape + (1,)}"
        raise ValueError(f"{name} must have shape {exp}, got shape {a.shape}")
    return a


def _int_plane(x, name, shape, dtype, lo, hi):
    a = as_array(x, name)
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{name} must have an integer dtype, got {a.dtype}")
    a = _squeeze_plane(a, name, shape)
    if a.size:
        amin, amax = int(a.min()), int(a.max())
        if amin < lo or amax > hi:
            bad = amin if amin < lo else amax
            raise ValueError(f"{name} contains {bad}, outside the valid range [{lo}, {hi}]")
    return np.ascontiguousarray(a, dtype=dtype).copy() if a.dtype == dtype else np.ascontiguousarray(a.astype(dtype))


def _float_buf(x, name, shape, squeeze=False):
    a = as_array(x, name)
    if not np.issubdtype(a.dtype, np.floating):
        raise TypeError(f"{name} must have a float dtype, got {a.dtype}")
    if squeeze:
        a = _squeeze_plane(a, name, shape)
    else:
        ok = a.ndim == len(shape) and all(
            (g in s) if isinstance(s, tuple) else g == s for g, s in zip(a.shape, shape))
        if not ok:
            raise ValueError(f"{name} must have shape {_shape_text(shape)}, got shape {a.shape}")
    return np.array(a, dtype=np.float32, order="C")


def _finite_where(a, fg, name):
    vals = a[fg]
    if vals.size and not np.all(np.isfinite(vals)):
        if a.ndim == 3:
            bad = np.argwhere(fg & ~np.all(np.isfinite(a), axis=2))[0]
        else:
            bad = np.argwhere(fg & ~np.isfinite(a))[0]
        raise ValueError(f"{name} must be finite at foreground pixels (instance_index != 0); "
                         f"pixel (row {bad[0]}, col {bad[1]}) is not")


def _rgb(x, hw):
    a = as_array(x, "rgb")
    h, w = hw
    if a.ndim != 3 or a.shape[:2] != (h, w) or a.shape[2] not in (3, 4):
        raise ValueError(f"rgb must have shape ({h}, {w}, 3) or ({h}, {w}, 4), got shape {a.shape}")
    if a.dtype == np.uint8:
        u8 = a
    elif np.issubdtype(a.dtype, np.floating):
        if a.size and not (np.all(np.isfinite(a)) and a.min() >= 0 and a.max() <= 1):
            raise ValueError("rgb as float must be finite and in [0, 1] (or pass uint8)")
        u8 = np.rint(a.astype(np.float64) * 255.0).astype(np.uint8)
    else:
        raise TypeError(f"rgb must be uint8 or float in [0, 1], got dtype {a.dtype}")
    out = np.empty((h, w, 4), np.uint8)
    out[:, :, :a.shape[2]] = u8
    if a.shape[2] == 3:
        out[:, :, 3] = 255
    return out
