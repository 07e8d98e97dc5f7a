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

The buffers of one RenderResult are all NumPy arrays or all :class:`geomops.DeviceArray` on one
GPU (``render(scene, device="cuda")`` and :meth:`RenderResult.from_buffers` with device arrays);
:attr:`RenderResult.device` says which and :meth:`RenderResult.get` copies device buffers to the
host.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, Optional, SupportsInt, TypeVar, Union, cast, overload

import numpy as np
from numpy.typing import NDArray

from .. import _backend
from .. import _device
from .._device import AnyArray, ArrayInput, DeviceArray, SupportsCudaArrayInterface, SupportsDLPack
from .._validate import as_array
from ._constants import BACKGROUND_DEPTH  # stillleben's "invalid" clear value for depth and coordinates
from ._constants import MAX_INSTANCE_INDEX

__all__ = ["RenderResult", "BACKGROUND_DEPTH"]

_OPTIONAL = ("cam_coordinates", "normals", "class_index", "triangle_id", "barycentrics")

if TYPE_CHECKING:
    from typing import Self

_S = TypeVar("_S", bound=np.generic)
_R = TypeVar("_R")
# What the internal constructor stores: NumPy arrays or device arrays (no conversion).
_Buffer = Union[NDArray[Any], DeviceArray, SupportsCudaArrayInterface, SupportsDLPack]
# An expected shape; a tuple entry lists the sizes allowed on that axis.
_ShapeSpec = tuple[Union[int, tuple[int, ...]], ...]


class RenderResult:
    """The render buffers of one frame (see the module docstring for the table).

    The constructor stores the arrays it is given after a light check of dtypes and shapes
    (it is what :func:`geomops.pose.render` uses): NumPy arrays, or device arrays (any object
    with ``__cuda_array_interface__`` or a CUDA ``__dlpack__``) all on one GPU. To wrap buffers
    from another renderer, use :meth:`from_buffers`, which validates and converts everything.

    Attributes ``cam_coordinates``, ``normals``, ``class_index``, ``triangle_id`` and
    ``barycentrics`` may be ``None`` (not provided).
    """

    __slots__ = ("rgb", "depth", "instance_index", "object_coordinates") + _OPTIONAL

    rgb: AnyArray  # uint8; float32 on a device (and after .get()) when from_buffers was given float rgb
    depth: NDArray[np.float32] | DeviceArray
    instance_index: NDArray[np.int16] | DeviceArray
    object_coordinates: NDArray[np.float32] | DeviceArray
    cam_coordinates: Optional[NDArray[np.float32] | DeviceArray]
    normals: Optional[NDArray[np.float32] | DeviceArray]
    class_index: Optional[NDArray[np.int16] | DeviceArray]
    triangle_id: Optional[NDArray[np.int32] | DeviceArray]
    barycentrics: Optional[NDArray[np.float32] | DeviceArray]

    def __init__(self, rgb: _Buffer, depth: _Buffer, instance_index: _Buffer, object_coordinates: _Buffer,
                 cam_coordinates: Optional[_Buffer] = None, normals: Optional[_Buffer] = None,
                 class_index: Optional[_Buffer] = None, triangle_id: Optional[_Buffer] = None,
                 barycentrics: Optional[_Buffer] = None) -> None:
        _one_place(rgb=rgb, depth=depth, instance_index=instance_index, object_coordinates=object_coordinates,
                   cam_coordinates=cam_coordinates, normals=normals, class_index=class_index,
                   triangle_id=triangle_id, barycentrics=barycentrics)
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

    @classmethod
    def _wrap(cls, **buffers: Optional[AnyArray]) -> Self:
        """A RenderResult of buffers already checked (from_buffers on a device, get())."""
        self = cls.__new__(cls)
        for name in cls.__slots__:
            setattr(self, name, buffers.get(name))
        return self

    @property
    def height(self) -> int:
        return self.depth.shape[0]

    @property
    def width(self) -> int:
        return self.depth.shape[1]

    @property
    def shape(self) -> tuple[int, ...]:
        """``(height, width)``."""
        return tuple(self.depth.shape)

    @property
    def device(self) -> str:
        """Where the buffers are, ``"cpu"`` (NumPy arrays) or ``"cuda:N"`` (DeviceArrays)."""
        return self.depth.device if isinstance(self.depth, DeviceArray) else "cpu"

    def get(self) -> Self:
        """The buffers on the host: a RenderResult of NumPy copies of device buffers (the same
        dtypes and shapes), or this RenderResult itself when its buffers are NumPy arrays."""
        if not isinstance(self.depth, DeviceArray):
            return self
        return type(self)._wrap(**{name: None if getattr(self, name) is None else getattr(self, name).get()
                                   for name in self.__slots__})

    def _host_only(self, what: str) -> None:
        if isinstance(self.depth, DeviceArray):
            raise TypeError(f"RenderResult.{what}() works on host buffers, but these are on {self.device}; "
                            f"call .get() first")

    def rgb_float(self) -> NDArray[np.float32]:
        """(H, W, 3) float32 colour in [0, 1] (``rgb[..., :3] / 255``, as the gradients use it;
        float rgb as it is). Host buffers only."""
        self._host_only("rgb_float")
        rgb = cast("NDArray[Any]", self.rgb)  # host buffers (checked above)
        if rgb.dtype != np.uint8:
            return np.ascontiguousarray(rgb[..., :3], dtype=np.float32)
        return rgb[..., :3].astype(np.float32) / np.float32(255.0)

    def mask(self, instance_index: SupportsInt) -> NDArray[np.bool_]:
        """(H, W) bool: pixels whose instance index equals ``instance_index``. Host buffers only."""
        self._host_only("mask")
        return cast("NDArray[np.bool_]", self.instance_index == int(instance_index))  # host buffers

    def __repr__(self) -> str:
        have = [n for n in _OPTIONAL if getattr(self, n) is not None]
        where = f", on {self.device}" if self.device != "cpu" else ""
        return f"RenderResult({self.height}x{self.width}, optional buffers: {', '.join(have) or 'none'}{where})"

    # ------------------------------------------------------------------------------------------
    @classmethod
    def from_buffers(cls, *, rgb: ArrayInput, depth: ArrayInput, instance_index: ArrayInput,
                     object_coordinates: ArrayInput, cam_coordinates: Optional[ArrayInput] = None,
                     normals: Optional[ArrayInput] = None, class_index: Optional[ArrayInput] = None,
                     triangle_id: Optional[ArrayInput] = None, barycentrics: Optional[ArrayInput] = None) -> Self:
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

        Host buffers (NumPy arrays, lists): every output array is a new C-contiguous copy, rgb
        uint8 (H, W, 4).

        Device buffers (CuPy, PyTorch CUDA tensors, nvdiffrast output, DeviceArray: anything with
        ``__cuda_array_interface__`` or a CUDA ``__dlpack__``): every buffer must be on the same
        GPU (a host buffer among them is a ValueError naming both), and the result's buffers are
        DeviceArrays there. The checks above run on the device with the same messages (small
        reductions; only scalars come back). A buffer that already has the layout the gradient
        kernels read is kept **without a copy**, as a view of the producer's memory (do not
        overwrite it while the RenderResult is in use): rgb uint8 or float32 with 3 or 4
        channels, depth float32 (H, W) or (H, W, 1), instance_index and class_index int16,
        triangle_id int32, the float buffers float32 (cam_coordinates and normals with 4
        channels). Other dtypes are converted on the device (integer ids after the range check,
        float64 to float32, a 4th channel added to cam_coordinates and normals); a
        non-contiguous buffer is first copied into a contiguous one there. Unlike on the host,
        float rgb stays float32 (3 or 4 channels, not rounded to 8 bits): the gradients read it
        as it is.

        Raises
        ------
        TypeError
            Wrong dtype (message names the argument).
        ValueError
            Shapes that disagree (message names the argument and the expected shape), ids out
            of the int16 range, non-finite foreground values, float rgb outside [0, 1].
        """
        given = dict(rgb=rgb, depth=depth, instance_index=instance_index, object_coordinates=object_coordinates,
                     cam_coordinates=cam_coordinates, normals=normals, class_index=class_index,
                     triangle_id=triangle_id, barycentrics=barycentrics)
        for name in ("rgb", "depth", "instance_index", "object_coordinates"):
            if given[name] is None:  # before placement: the same error for host and device buffers
                raise TypeError(f"{name} must be an array, got None")
        if _one_place(**given):
            return cls._wrap(**_device_buffers(**given))
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
def _one_place(**buffers: Any) -> bool:
    """True when the given buffers (None skipped) are device arrays, False when they are on the
    host; a ValueError names them when they are mixed or on two devices."""
    _, on_device = _backend.select(None, **{k: v for k, v in buffers.items() if v is not None})
    return on_device


@overload
def _exact(a: object, name: str, dtype: type[_S], shape: Optional[tuple[int, ...]],
           optional: Literal[False] = False) -> NDArray[_S] | DeviceArray: ...
@overload
def _exact(a: object, name: str, dtype: type[_S], shape: Optional[tuple[int, ...]],
           optional: bool) -> Optional[NDArray[_S] | DeviceArray]: ...


def _exact(a: object, name: str, dtype: type[_S], shape: Optional[tuple[int, ...]],
           optional: bool = False) -> Optional[NDArray[_S] | DeviceArray]:
    """Light check for the internal constructor: exact dtype and shape, C-contiguous."""
    if a is None:
        if optional:
            return None
        raise TypeError(f"{name} must be an array, got None")
    if _device.is_device_array(a):
        a = _device.as_device_array(a, name)
    if not isinstance(a, (np.ndarray, DeviceArray)) or a.dtype != dtype:
        got = a.dtype if isinstance(a, (np.ndarray, DeviceArray)) else type(a).__name__
        raise TypeError(f"{name} must be a {np.dtype(dtype)} ndarray, got {got} "
                        "(use RenderResult.from_buffers to convert foreign buffers)")
    if shape is None:
        if a.ndim != 2:
            raise ValueError(f"{name} must have shape (H, W), got {a.shape}")
    elif a.shape != shape:
        raise ValueError(f"{name} has shape {tuple(a.shape)} but depth is {shape[0]}x{shape[1]} (H x W): it must "
                         f"have shape {shape}")
    return a if isinstance(a, DeviceArray) else np.ascontiguousarray(a)


def _mismatch(name: str, a: Any, shape: Any, exp: str) -> ValueError:
    """The ValueError for buffer ``a`` whose shape disagrees with the (H, W) of instance_index."""
    if a.ndim >= 2 and tuple(a.shape[:2]) != tuple(shape[:2]):
        return ValueError(f"{name} has shape {tuple(a.shape)} but instance_index is {shape[0]}x{shape[1]} (H x W): "
                          f"it must have shape {exp}")
    return ValueError(f"{name} must have shape {exp}, got shape {tuple(a.shape)}")


def _shape_text(shape: _ShapeSpec) -> str:
    parts = []
    for s in shape:
        parts.append(" or ".join(map(str, s)) if isinstance(s, tuple) else str(s))
    return "(" + ", ".join(parts) + ")"


def _squeeze_plane(a: NDArray[_S], name: str, shape: Optional[_ShapeSpec]) -> NDArray[_S]:
    """(H, W) or (H, W, 1) -> (H, W); ``shape`` None means any H, W."""
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim != 2 or (shape is not None and a.shape != shape):
        if shape is None:
            raise ValueError(f"{name} must have shape (H, W) or (H, W, 1), got shape {tuple(a.shape)}")
        raise _mismatch(name, a, shape, f"{shape} or {shape + (1,)}")
    return a


def _int_plane(x: object, name: str, shape: Optional[_ShapeSpec], dtype: type[_S], lo: int, hi: int) -> NDArray[_S]:
    a = cast("NDArray[Any]", as_array(x, name))  # from_buffers' host path: no input is on a device
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{name} must have an integer dtype, got {a.dtype}")
    a = _squeeze_plane(a, name, shape)
    if a.size:
        amin, amax = int(a.min()), int(a.max())
        if amin < lo or amax > hi:
            bad = amin if amin < lo else amax
            raise ValueError(f"{name} contains {bad}, outside the valid range [{lo}, {hi}]")
    return np.ascontiguousarray(a, dtype=dtype).copy() if a.dtype == dtype else np.ascontiguousarray(a.astype(dtype))


def _float_buf(x: object, name: str, shape: _ShapeSpec, squeeze: bool = False) -> NDArray[np.float32]:
    a = cast("NDArray[Any]", as_array(x, name))  # from_buffers' host path: no input is on a device
    if not np.issubdtype(a.dtype, np.floating):
        raise TypeError(f"{name} must have a float dtype, got {a.dtype}")
    if squeeze:
        a = _squeeze_plane(a, name, shape)
    else:
        ok = a.ndim == len(shape) and all(
            (g in s) if isinstance(s, tuple) else g == s for g, s in zip(a.shape, shape))
        if not ok:
            raise _mismatch(name, a, shape, _shape_text(shape))
    with np.errstate(over="ignore"):  # beyond float32's range rounds to inf (checked where it is read)
        return np.array(a, dtype=np.float32, order="C")


def _finite_where(a: NDArray[np.floating[Any]], fg: NDArray[np.bool_], name: str) -> None:
    vals = a[fg]
    if vals.size and not np.all(np.isfinite(vals)):
        if a.ndim == 3:
            bad = np.argwhere(fg & ~np.all(np.isfinite(a), axis=2))[0]
        else:
            bad = np.argwhere(fg & ~np.isfinite(a))[0]
        raise ValueError(f"{name} must be finite at foreground pixels (instance_index != 0); "
                         f"pixel (row {bad[0]}, col {bad[1]}) is not")


def _rgb(x: object, hw: tuple[int, int]) -> NDArray[np.uint8]:
    a = cast("NDArray[Any]", as_array(x, "rgb"))  # from_buffers' host path: no input is on a device
    h, w = hw
    if a.ndim != 3 or a.shape[:2] != (h, w) or a.shape[2] not in (3, 4):
        raise _mismatch("rgb", a, hw, f"({h}, {w}, 3) or ({h}, {w}, 4)")
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


# ----------------------------------------------------------------------------------------------
# from_buffers on device arrays: the checks above, run on the device, and conversions there

def _device_buffers(rgb: object, depth: object, instance_index: object, object_coordinates: object,
                    cam_coordinates: object, normals: object, class_index: object, triangle_id: object,
                    barycentrics: object) -> dict[str, DeviceArray]:
    inst = _d_int_plane(instance_index, "instance_index", None, np.int16, 0, MAX_INSTANCE_INDEX)
    h, w = inst.shape
    d = _d_float_buf(depth, "depth", (h, w), squeeze=True)
    _d_finite_where(d, inst, "depth")
    oc = _d_float_buf(object_coordinates, "object_coordinates", (h, w, 3))
    _d_finite_where(oc, inst, "object_coordinates")
    out = dict(rgb=_d_rgb(rgb, (h, w)), depth=d, instance_index=inst, object_coordinates=oc)
    for name, x, fill in (("cam_coordinates", cam_coordinates, 1.0), ("normals", normals, 0.0)):
        if x is not None:
            out[name] = _d_four_channels(_d_float_buf(x, name, (h, w, (3, 4))), fill)
    if class_index is not None:
        out["class_index"] = _d_int_plane(class_index, "class_index", (h, w), np.int16, 0, MAX_INSTANCE_INDEX)
    if triangle_id is not None:
        out["triangle_id"] = _d_int_plane(triangle_id, "triangle_id", (h, w), np.int32, -1,
                                          np.iinfo(np.int32).max)
    if barycentrics is not None:
        out["barycentrics"] = _d_float_buf(barycentrics, "barycentrics", (h, w, 3))
    return out


def _d_squeeze_plane(a: DeviceArray, name: str, shape: Optional[_ShapeSpec]) -> DeviceArray:
    if a.ndim == 3 and a.shape[2] == 1:
        a = a.reshape(a.shape[:2])
    if a.ndim != 2 or (shape is not None and a.shape != shape):
        if shape is None:
            raise ValueError(f"{name} must have shape (H, W) or (H, W, 1), got shape {tuple(a.shape)}")
        raise _mismatch(name, a, shape, f"{shape} or {shape + (1,)}")
    return a


def _d_int_range(a: DeviceArray) -> tuple[int, int]:
    """``(min, max)`` of a non-empty integer DeviceArray as Python ints, by a reduction on the
    device (dtypes the reduction does not take are widened there first)."""
    dt = a.dtype
    if dt in (np.dtype(np.int32), np.dtype(np.int64)):
        wide = a
    elif dt.itemsize <= 2:
        wide = a.astype(np.int32)
    elif dt == np.dtype(np.uint32):
        wide = a.astype(np.int64)
    else:  # uint64: float64 keeps the sign of the comparison (large values lose their last digits)
        wide = a.astype(np.float64)
    s = _device.stats(wide.reshape(-1))
    return int(s.min), int(s.max)


def _d_int_plane(x: object, name: str, shape: Optional[_ShapeSpec], dtype: type[np.integer[Any]], lo: int,
                 hi: int) -> DeviceArray:
    a = _device.as_device_array(x, name)
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{name} must have an integer dtype, got {a.dtype}")
    a = _d_squeeze_plane(a, name, shape)
    if a.size:
        amin, amax = _d_int_range(a)
        if amin < lo or amax > hi:
            bad = amin if amin < lo else amax
            raise ValueError(f"{name} contains {bad}, outside the valid range [{lo}, {hi}]")
    return _d_int16(a) if np.dtype(dtype) == np.int16 else a.astype(dtype)  # a itself when it has the dtype


def _d_int16(a: DeviceArray) -> DeviceArray:
    """The integer DeviceArray ``a`` as int16 (range-checked by the caller), converted on its
    device; ``a`` itself when it is int16."""
    if a.dtype == np.int16:
        return a
    out = _device.empty(a._module, a.shape, np.int16, a.device_id)
    _d_run(a._module.array_cast_int16, a, out)
    return out


def _d_float_buf(x: object, name: str, shape: _ShapeSpec, squeeze: bool = False) -> DeviceArray:
    a = _device.as_device_array(x, name)
    if not np.issubdtype(a.dtype, np.floating):
        raise TypeError(f"{name} must have a float dtype, got {a.dtype}")
    if squeeze:
        a = _d_squeeze_plane(a, name, shape)
    else:
        ok = a.ndim == len(shape) and all(
            (g in s) if isinstance(s, tuple) else g == s for g, s in zip(a.shape, shape))
        if not ok:
            raise _mismatch(name, a, shape, _shape_text(shape))
    return a.astype(np.float32)


def _d_run(fn: Callable[..., _R], a: DeviceArray, *others: DeviceArray, **kwargs: object) -> _R:
    """``fn(a, *others, stream=s, **kwargs)`` on ``a``'s device, on the stream ``a`` is read on,
    after the pending work of ``others``; ``s`` is synchronised before returning."""
    m, dev = a._module, a.device_id
    ws = _device.work_stream(a)
    with _device.device_scope(m, dev):
        for o in others:
            if o._stream is not None and o._stream != ws:
                m.stream_wait(ws, o._stream, dev)
        result = fn(a, *others, stream=ws, **kwargs)
        m.synchronize(ws)
    return result


def _d_finite_where(a: DeviceArray, inst: DeviceArray, name: str) -> None:
    _, first = _d_run(a._module.array_masked_nonfinite, a, inst)
    if first >= 0:
        w = inst.shape[1]
        raise ValueError(f"{name} must be finite at foreground pixels (instance_index != 0); "
                         f"pixel (row {first // w}, col {first % w}) is not")


def _d_four_channels(a: DeviceArray, fill: float) -> DeviceArray:
    """(H, W, 3) float32 -> (H, W, 4) with the 4th channel ``fill``, on the device."""
    if a.shape[2] == 4:
        return a
    h, w = a.shape[:2]
    out = _device.empty(a._module, (h, w, 4), np.float32, a.device_id)
    _d_run(lambda src, dst, stream: src._module.array_pad_columns(src, dst, fill, stream=stream),
           a.reshape(h * w, 3), out.reshape(h * w, 4))
    return out


def _d_rgb(x: object, hw: tuple[int, int]) -> DeviceArray:
    a = _device.as_device_array(x, "rgb")
    h, w = hw
    if a.ndim != 3 or a.shape[:2] != (h, w) or a.shape[2] not in (3, 4):
        raise _mismatch("rgb", a, hw, f"({h}, {w}, 3) or ({h}, {w}, 4)")
    if a.dtype == np.uint8:
        return a
    if not np.issubdtype(a.dtype, np.floating):
        raise TypeError(f"rgb must be uint8 or float in [0, 1], got dtype {a.dtype}")
    f = a if a.dtype in (np.float32, np.float64) else a.astype(np.float32)
    if f.size:
        s = _device.stats(f.reshape(-1))
        if not (s.nonfinite == 0 and s.min >= 0 and s.max <= 1):
            raise ValueError("rgb as float must be finite and in [0, 1] (or pass uint8)")
    return f.astype(np.float32)
