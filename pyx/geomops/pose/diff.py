"""Render-and-compare pose gradients: stillleben's ``diff`` module without a DL framework.

Three functions, with stillleben's names and argument order:

* :func:`compute_image_space_gradients` -- how each pixel changes when the image moves in NDC.
* :func:`backpropagate_gradient_to_poses` -- dLoss/dImage -> dLoss/d(pose delta), one 6-vector
  (alpha, beta, gamma, a, b, c) per object.
* :func:`apply_pose_delta` -- ``pose @ D(delta)`` with SVD re-orthonormalisation.

Two modes. ``mode="compat"`` reproduces stillleben (to float32 rounding; the masks bit for bit):
its row-2 projection denominator, the camera pose ignored, zero-padded central differences.
``mode="exact"`` (the default) uses the true perspective Jacobian (clip w), honours
``scene.camera_pose`` and pads the differences by replicating the edge pixel, so the image
border creates no false gradient. The per-pixel work runs in one fused OpenMP pass
(``cpu/posegrad.c``); sums are float64 in a fixed order, identical for any thread count.

Every function runs where its array inputs are: on a GPU (``cuda/posegrad.cu``,
``cuda/pose_delta.cu``) for device buffers (``render(..., device="cuda")``, or
:meth:`RenderResult.from_buffers` of CuPy / PyTorch / nvdiffrast arrays), giving
:class:`geomops.DeviceArray` results; ``device="cuda"`` with NumPy inputs copies them in and the
results back. See docs/pose.md and docs/cuda.md.
"""

from __future__ import annotations

import warnings
import itertools
from collections.abc import Sequence
from typing import Any, Literal, Optional, Union, overload

import numpy as np
from numpy.typing import NDArray

from .. import _backend
from .._backend import Backend
from .. import _device
from .._config import resolve_num_threads
from .._device import AnyArray, ArrayInput, DeviceArray
from .._validate import check_bool, check_option
from ._constants import ACC_GRAD, ACC_SINGULAR, ACC_STRIDE
from ._constants import BORDERS as _BORDERS
from ._constants import MAX_INSTANCE_INDEX as _MAX_ID  # the instance buffer is int16
from ._constants import SEMANTICS as _SEMANTICS
from .buffers import _d_int16, _d_int_range, _d_run
from .scene import _object_to_camera

__all__ = ["compute_image_space_gradients", "backpropagate_gradient_to_poses", "apply_pose_delta"]

_MODES = ("exact", "compat")
GradientMode = Literal["exact", "compat"]
_LAYOUTS = ("CHW", "HWC")


# ----------------------------------------------------------------------------------------------
# input checks (everything is checked here; the kernels get C-contiguous arrays only). The
# buffers are NumPy arrays or DeviceArrays (device inputs, after op_call): the same checks with
# the same messages, run on the device for DeviceArrays (small reductions) without a host copy.

_BUFFERS = ("rgb", "depth", "instance_index", "object_coordinates")


def _buffer(render_result: Any, name: str) -> Any:
    if not hasattr(render_result, name):
        raise TypeError(f"render_result must have a '{name}' buffer (a RenderResult or an object with "
                        f"rgb, depth, instance_index and object_coordinates arrays); got "
                        f"{type(render_result).__name__}")
    value = getattr(render_result, name)
    if callable(value):  # stillleben-style accessor methods
        value = value()
    if value is None:
        raise ValueError(f"render_result.{name} is None; the pose gradients need it")
    if _device.is_device_array(value):
        return value  # viewed by op_call
    try:
        return np.asarray(value)
    except Exception as exc:  # pragma: no cover - exotic objects
        raise TypeError(f"render_result.{name} must be array-like: {exc}") from None


def _raw_buffers(render_result: Any, need_coords: bool) -> dict[str, Any]:
    """The buffers the call reads, by argument name for op_call (``render_result.rgb``, ...)."""
    names = _BUFFERS if need_coords else _BUFFERS[:3]
    return {f"render_result.{n}": _buffer(render_result, n) for n in names}


def _squeeze_hw1(a: AnyArray, name: str) -> AnyArray:
    if a.ndim == 3 and a.shape[2] == 1:  # stillleben gives (H,W,1)
        a = a.reshape(a.shape[:2]) if isinstance(a, DeviceArray) else a[:, :, 0]
    if a.ndim != 2:
        raise ValueError(f"{name} must have shape (H, W) or (H, W, 1), got shape {a.shape}")
    return a


def _float32(a: AnyArray) -> AnyArray:
    """``a`` as C-contiguous float32 (converted on its device for a DeviceArray)."""
    return a.astype(np.float32) if isinstance(a, DeviceArray) else np.ascontiguousarray(a, dtype=np.float32)


def _image_buffers(args: dict[str, Any],
                   need_coords: bool) -> tuple[AnyArray, AnyArray, AnyArray, Optional[AnyArray]]:
    """(rgb, depth, instance, coords) as C-contiguous kernel inputs, shapes cross-checked
    (``args``: op_call's arrays by name, see :func:`_raw_buffers`)."""
    rgb = args["render_result.rgb"]
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
        raise ValueError(f"render_result.rgb must have shape (H, W, 3) or (H, W, 4), got shape {rgb.shape}")
    if rgb.dtype == np.uint8:
        pass
    elif rgb.dtype in (np.float32, np.float64):
        rgb = rgb.astype(np.float32) if isinstance(rgb, DeviceArray) else rgb.astype(np.float32, copy=False)
    else:
        raise TypeError(f"render_result.rgb must be uint8 (0..255) or float32/float64 (0..1), got dtype {rgb.dtype}")
    h, w = rgb.shape[:2]
    if h < 1 or w < 1:
        raise ValueError(f"render_result.rgb must have at least one pixel, got shape {rgb.shape}")

    depth = _squeeze_hw1(args["render_result.depth"], "render_result.depth")
    if depth.dtype not in (np.float32, np.float64):
        raise TypeError(f"render_result.depth must be float32 camera Z, got dtype {depth.dtype}")
    inst = _squeeze_hw1(args["render_result.instance_index"], "render_result.instance_index")
    if inst.dtype != np.int16:
        if not np.issubdtype(inst.dtype, np.integer):
            raise TypeError(f"render_result.instance_index must be int16 (other integer dtypes are "
                            f"converted), got dtype {inst.dtype}")
        if inst.size:
            lo, hi = _d_int_range(inst) if isinstance(inst, DeviceArray) else (inst.min(), inst.max())
            if lo < -32768 or hi > _MAX_ID:
                raise ValueError("render_result.instance_index has values outside the int16 range "
                                 f"[-32768, {_MAX_ID}] (min {lo}, max {hi})")
        inst = _d_int16(inst) if isinstance(inst, DeviceArray) else inst.astype(np.int16)
    for name, a in (("depth", depth), ("instance_index", inst)):
        if a.shape != (h, w):
            raise ValueError(f"render_result.{name} has shape {tuple(a.shape)} but render_result.rgb is {h}x{w} "
                             f"(H x W); all buffers must share (H, W)")
    coords = None
    if need_coords:
        coords = args["render_result.object_coordinates"]
        if coords.shape != (h, w, 3):
            raise ValueError(f"render_result.object_coordinates has shape {tuple(coords.shape)} but render_result.rgb "
                             f"is {h}x{w} (H x W): it must be ({h}, {w}, 3)")
        if coords.dtype not in (np.float32, np.float64):
            raise TypeError(f"render_result.object_coordinates must be float32, got dtype {coords.dtype}")
        coords = _float32(coords)
    if isinstance(inst, DeviceArray):
        return rgb, depth.astype(np.float32), inst, coords
    return (np.ascontiguousarray(rgb), np.ascontiguousarray(depth, dtype=np.float32),
            np.ascontiguousarray(inst), coords)


def _check_camera_size(scene: Any, h: int, w: int) -> None:
    cam = getattr(scene, "camera", None)
    cw, ch = getattr(cam, "width", None), getattr(cam, "height", None)
    if cw is not None and ch is not None and (int(cw), int(ch)) != (w, h):
        raise ValueError(f"render_result buffers are {w}x{h} (W x H) but scene.camera is {int(cw)}x{int(ch)}")


def _matrix4(value: object, name: str) -> NDArray[np.float64]:
    try:
        m = np.asarray(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a 4x4 numeric matrix, got {type(value).__name__}") from None
    if m.dtype.kind not in "iuf":  # complex would lose its imaginary part, object and bool make no pose
        raise TypeError(f"{name} must be a real 4x4 matrix, got dtype {m.dtype}")
    m = m.astype(np.float64)
    if m.shape != (4, 4):
        raise ValueError(f"{name} must have shape (4, 4), got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError(f"{name} must be finite, got non-finite entries")
    return m


def _projection(scene: Any) -> NDArray[np.float64]:
    cam = getattr(scene, "camera", None)
    if cam is None or not hasattr(cam, "projection_matrix"):
        raise TypeError("scene.camera must provide projection_matrix() (a geomops.pose.Camera)")
    return _matrix4(cam.projection_matrix(), "scene.camera.projection_matrix()")


def _objects(scene: Any) -> list[Any]:
    objs = getattr(scene, "objects", None)
    if objs is None:
        raise TypeError(f"scene must have an 'objects' list (a geomops.pose.Scene), got {type(scene).__name__}")
    return list(objs)


def _object_ids(objs: Sequence[Any]) -> NDArray[np.int64]:
    ids = np.empty(len(objs), dtype=np.int64)
    for i, obj in enumerate(objs):
        v = getattr(obj, "instance_index", None)
        if v is None or isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"scene.objects[{i}].instance_index must be an int, got {v!r}")
        if not 1 <= int(v) <= _MAX_ID:
            raise ValueError(f"scene.objects[{i}].instance_index is {int(v)}; it must be in [1, {_MAX_ID}] "
                             "(0 is the background and the instance buffer is int16)")
        ids[i] = int(v)
    return ids


def _slot_tables(ids: NDArray[np.int64]) -> tuple[NDArray[np.int32], NDArray[np.int32], NDArray[np.int32]]:
    """id -> slot, and the objects of each slot (several objects may share an id)."""
    # plain Python: a scene has a handful of objects, and np.unique's overhead dominated the call
    idl = ids.tolist()
    uniq = sorted(set(idl))
    slot_of = {v: k for k, v in enumerate(uniq)}
    id_to_slot = np.full(_MAX_ID + 1, -1, dtype=np.int32)
    id_to_slot[uniq] = np.arange(len(uniq), dtype=np.int32)
    slots = [slot_of[v] for v in idl]
    slot_objects = np.array(sorted(range(len(idl)), key=slots.__getitem__), dtype=np.int32)  # stable
    counts = [0] * (len(uniq) + 1)
    for k in slots:
        counts[k + 1] += 1
    slot_start = np.array(list(itertools.accumulate(counts)), dtype=np.int32)
    return id_to_slot, slot_start, slot_objects


def _transforms(scene: Any, objs: Sequence[Any], honour_camera_pose: bool) -> NDArray[np.float64]:
    """(N, 12) float64 object -> camera transforms: R row-major, then t.

    Exact mode: ``inv(scene.camera_pose) @ pose`` by the one helper that render and
    ``Scene.object_to_camera`` use (a scene without a camera pose has the identity).
    Compat mode reproduces stillleben, which ignores the camera pose (world = camera) and
    stores poses as float32: the transform is the pose rounded to float32."""
    poses = _poses(objs)
    if honour_camera_pose:
        cp = getattr(scene, "camera_pose", None)
        cp = np.eye(4) if cp is None else _matrix4(cp, "scene.camera_pose")
        poses = _object_to_camera(cp, poses)
    else:
        poses = poses.astype(np.float32).astype(np.float64)
    out = np.empty((len(objs), 12), dtype=np.float64)
    out[:, :9] = poses[:, :3, :3].reshape(-1, 9)
    out[:, 9:] = poses[:, :3, 3]
    return out


def _poses(objs: Sequence[Any]) -> NDArray[np.float64]:
    """The objects' poses as one (N, 4, 4) float64 array, checked as :func:`_matrix4` checks each
    (which names the first bad one when the quick check of them all together fails)."""
    raw = [getattr(obj, "pose", None) for obj in objs]
    if all(type(m) is np.ndarray and m.shape == (4, 4) and m.dtype.kind in "iuf" for m in raw):
        stacked = np.array(raw, dtype=np.float64).reshape(-1, 4, 4)
        if np.isfinite(stacked).all():
            return stacked
    return np.array([_matrix4(m, f"scene.objects[{i}].pose") for i, m in enumerate(raw)],
                    dtype=np.float64).reshape(-1, 4, 4)


def _grad_input(grad: object, layout: str, h: int, w: int) -> tuple[AnyArray, int, int]:
    """Returns (array, channel stride, pixel stride) in elements."""
    if grad is None:
        raise TypeError("grad must be a float32 array of shape (3, H, W), got None")
    g = grad if isinstance(grad, DeviceArray) else np.asarray(grad)
    if g.dtype not in (np.float32, np.float64):
        raise TypeError(f"grad must be float32 or float64 (dLoss/dImage), got dtype {g.dtype}")
    want = (3, h, w) if layout == "CHW" else (h, w, 3)
    if g.shape != want:
        hint = "" if layout == "HWC" or g.shape != (h, w, 3) else " (pass layout='HWC' for an (H, W, 3) array)"
        raise ValueError(f"grad has shape {tuple(g.shape)} but render_result.rgb is {h}x{w} (H x W): layout={layout!r} "
                         f"needs grad of shape {want}{hint}")
    if not isinstance(g, DeviceArray):
        g = np.ascontiguousarray(g)
    return (g, h * w, 1) if layout == "CHW" else (g, 1, 3)


def _first_nonfinite(coords: AnyArray, mask: AnyArray) -> int:
    """The first pixel (row-major index) where ``coords`` ((H, W, 3) object coordinates, NumPy or
    DeviceArray, float32) holds a NaN or an infinity and the int16 (H, W) ``mask`` is nonzero; -1
    when there is none. For a DeviceArray the check runs on its device (a reduction, then the
    masked count kernel only when something is not finite)."""
    h, w = mask.shape
    if not isinstance(coords, DeviceArray):
        with np.errstate(over="ignore", invalid="ignore"):
            # one pass; NaN and inf survive the sum (an overflowing sum only costs the exact check).
            # Not np.dot: OpenBLAS's threads keep spinning after it, on the cores the kernel needs.
            if np.isfinite(coords.reshape(-1).sum()):
                return -1
        hits = np.flatnonzero(~np.isfinite(coords).all(axis=2) & (mask != 0))
        return int(hits[0]) if hits.size else -1
    if _device.stats(coords.reshape(-1)).nonfinite == 0:
        return -1
    assert isinstance(mask, DeviceArray)  # the caller passes the mask on the coordinates' device
    return int(_d_run(coords._module.array_masked_nonfinite, coords.reshape(h * w, 3), mask.reshape(h * w))[1])


def _pixel(first: int, w: int) -> str:
    return f"pixel (row {first // w}, col {first % w})"


def _raise_nonfinite_grad(first: int, w: int, object_pixel: bool) -> None:
    """dLoss/dImage must be finite where the back-propagation reads it (the valid pixels of the
    objects' dilated masks): a NaN or inf there makes that object's gradient NaN. The kernel
    reports the first such pixel; ``object_pixel``: whether an object covers it (else the
    dilation of a neighbouring object's mask reads it)."""
    if object_pixel:
        raise ValueError(f"grad (dLoss/dImage) is not finite (NaN or inf) at {_pixel(first, w)}, an object "
                         "pixel (render_result.instance_index != 0); it must be finite where the objects are")
    raise ValueError(f"grad (dLoss/dImage) is not finite (NaN or inf) at {_pixel(first, w)}, next to an object: "
                     "the 1-pixel dilation of the object masks reads it there; it must be finite there")


def _mask_pass(be: Backend, rgb: AnyArray, depth: AnyArray, inst: AnyArray, coords: AnyArray, sem: int,
               ids: NDArray[np.int64], nt: int) -> tuple[AnyArray, int]:
    """The per-object pixel sets S_k (after the dilation) as (N, H, W) 0/1 bytes in ``be``'s
    memory (uint8 on the CPU, bool on a GPU): one pass of the backprop kernel with a zero
    dLoss/dImage. The arrays are the kernel inputs, already in ``be``'s memory."""
    h, w = inst.shape
    n = len(ids)
    identity = np.tile(np.array([1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1], dtype=np.float64), (n, 1))
    tr, pj, id_to_slot, slot_start, slot_objects = _upload_tables(be, identity, np.eye(4).ravel(),
                                                                  *_slot_tables(ids))
    masks = be.empty((n, h, w), np.bool_) if be.is_cuda else np.zeros((n, h, w), dtype=np.uint8)
    accum = be.empty((n, ACC_STRIDE), np.float64)
    g = be.from_host(np.zeros((3, h, w), dtype=np.float32))
    bad, _ = be.kernels.posegrad_backprop(rgb, _BORDERS["zero"], sem, inst, depth, coords, g, h * w, 1, tr, pj, 3,
                                          id_to_slot, slot_start, slot_objects, accum, None, masks, nt)
    return masks, bad


def _explain_nonfinite(coords: AnyArray, inst: AnyArray) -> None:
    """Called when a pose gradient came out NaN or inf although ``grad`` was finite where it was
    read: raise a ValueError when ``object_coordinates`` is not finite at an object pixel. Returns
    when it is (the geometry itself is singular there: the caller's warning says so)."""
    first = _first_nonfinite(coords, inst)
    if first >= 0:
        raise ValueError(f"render_result.object_coordinates is not finite (NaN or inf) at "
                         f"{_pixel(first, inst.shape[1])}, an object pixel (render_result.instance_index != 0); "
                         "the gradients read it there")


def _resolve_options(mode: str, helper_semantics: str, border: Optional[str]) -> tuple[int, int]:
    check_option(mode, "mode", _MODES)
    check_option(helper_semantics, "helper_semantics", tuple(_SEMANTICS))
    if border is None:
        border = "zero" if mode == "compat" else "replicate"
    check_option(border, "border", tuple(_BORDERS))
    return _SEMANTICS[helper_semantics], _BORDERS[border]


def _upload_tables(be: Backend, *arrays: NDArray[Any]) -> Sequence[AnyArray]:
    """The small host arrays of a call (transforms, projection, id tables) in ``be``'s memory:
    on a GPU in one allocation and one copy, as views of it (16-byte aligned)."""
    if not be.is_cuda:
        return arrays
    offsets, total = [], 0
    for a in arrays:
        total = -(-total // 16) * 16
        offsets.append(total)
        total += a.nbytes
    packed = np.zeros(total, np.uint8)
    for a, o in zip(arrays, offsets):
        packed[o:o + a.nbytes] = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
    d = be.from_host(packed)
    assert isinstance(d, DeviceArray)
    return [DeviceArray(d, d.ptr + o if a.size else 0, a.shape, a.dtype, d.device_id, be.module)
            for a, o in zip(arrays, offsets)]


# ----------------------------------------------------------------------------------------------
# public functions

def compute_image_space_gradients(scene: Any, render_result: Any, *, border: str = "zero",
                                  helper_semantics: str = "cuda", num_threads: Optional[int] = None,
                                  device: Optional[str] = None, stream: object = None) -> tuple[AnyArray, AnyArray, AnyArray]:
    """Gradient of the image intensity w.r.t. the 2-D position of its content, in NDC units.

    Central differences (not a Sobel filter, despite stillleben's helper name), scaled to NDC
    and negated, so that ``grad_x[c, r, k]`` is the change of pixel (r, k) when the image content
    moves by +1 in NDC x::

        grad_x[c, r, k] = wx * I[c, r, k-1] - wx * I[c, r, k+1],  wx = 1 / fl32(4 / W)
        grad_y[c, r, k] = wy * I[c, r-1, k] - wy * I[c, r+1, k],  wy = 1 / fl32(4 / H)

    with ``I = rgb[..., :3] / 255`` in float32. Pixels on an occluded object boundary (an object
    pixel with a closer pixel of another object in its 3x3 neighbourhood) are invalid and get 0.

    Parameters
    ----------
    scene : Scene or None
        Only used to check that the camera size matches the buffers (stillleben ignores it).
    render_result : RenderResult
        Reads ``rgb`` (H,W,3|4) uint8 (or float in [0, 1]), ``depth`` (H,W) float32 camera Z and
        ``instance_index`` (H,W) int16 (``(H,W,1)`` accepted).
    border : {"zero", "replicate"}, keyword-only
        Samples outside the image: ``"zero"`` (default, stillleben's zero padding: large false
        gradients on the image border) or ``"replicate"`` (the edge pixel repeated: none).
    helper_semantics : {"cuda", "cpu"}, keyword-only
        Valid mask at the image border as stillleben's CUDA helper (default: neighbours clamped
        to the image) or CPU helper (border pixels always valid).
    num_threads : int, optional
        OpenMP threads (default: :func:`geomops.get_num_threads`). Ignored on a GPU.
    device : {None, "cpu", "cuda", "cuda:N"}, keyword-only
        Where to run. None: where the buffers are (a GPU for device buffers, e.g. from
        ``render(..., device="cuda")``; the CPU for NumPy buffers). ``"cuda"`` with NumPy buffers
        copies them to the GPU and the results back. All buffers must be in one place (a
        ValueError names them otherwise).
    stream : None, int or CUDA stream object, keyword-only
        GPU only: order the work on this stream and return without waiting (results marked
        pending on it). None: a stream of geomops', waited for. See docs/cuda.md.

    Returns
    -------
    grad_x, grad_y : ndarray or DeviceArray, float32, shape (3, H, W)
    valid : ndarray or DeviceArray, bool, shape (H, W)
        NumPy arrays for NumPy buffers, :class:`geomops.DeviceArray` on the buffers' GPU for
        device buffers (``valid`` is then a bool DeviceArray, one byte per pixel, 0 or 1).
    """
    _backend.parse_device(device)
    sem = _SEMANTICS[check_option(helper_semantics, "helper_semantics", tuple(_SEMANTICS))]
    bord = _BORDERS[check_option(border, "border", tuple(_BORDERS))]
    nt = resolve_num_threads(num_threads)
    raw = _raw_buffers(render_result, need_coords=False)
    with _backend.op_call(device, stream, **raw) as c:
        be = c.be
        rgb, depth, inst, _ = _image_buffers(c.args, need_coords=False)
        h, w = inst.shape
        if scene is not None:
            _check_camera_size(scene, h, w)
        grad_x = be.empty((3, h, w), np.float32)
        grad_y = be.empty((3, h, w), np.float32)
        # the kernels write 0/1 bytes: a bool array on the device, a uint8 one viewed as bool here
        valid = be.empty((h, w), np.bool_ if be.is_cuda else np.uint8)
        be.kernels.posegrad_image_gradients(be.from_host(rgb), bord, sem, be.from_host(inst), be.from_host(depth),
                                            grad_x, grad_y, valid, nt)
        if not be.is_cuda:
            assert isinstance(valid, np.ndarray)
            return grad_x, grad_y, valid.view(np.bool_)
        return c.result((grad_x, grad_y, valid))


@overload
def backpropagate_gradient_to_poses(scene: Any, render_result: Any, grad: ArrayInput,
                                    visualize_grad: Literal[False] = False, *, mode: GradientMode = "exact",
                                    helper_semantics: str = "cuda", border: Optional[str] = None,
                                    return_contributions: Literal[False] = False, layout: str = "CHW",
                                    num_threads: Optional[int] = None, device: Optional[str] = None,
                                    stream: object = None) -> AnyArray: ...


@overload
def backpropagate_gradient_to_poses(scene: Any, render_result: Any, grad: ArrayInput, visualize_grad: bool = False,
                                    *, mode: GradientMode = "exact", helper_semantics: str = "cuda",
                                    border: Optional[str] = None, return_contributions: bool = False,
                                    layout: str = "CHW", num_threads: Optional[int] = None,
                                    device: Optional[str] = None,
                                    stream: object = None) -> Union[AnyArray, tuple[Any, ...]]: ...


def backpropagate_gradient_to_poses(scene: Any, render_result: Any, grad: ArrayInput, visualize_grad: bool = False,
                                    *, mode: GradientMode = "exact", helper_semantics: str = "cuda",
                                    border: Optional[str] = None, return_contributions: bool = False,
                                    layout: str = "CHW", num_threads: Optional[int] = None,
                                    device: Optional[str] = None,
                                    stream: object = None) -> Union[AnyArray, tuple[Any, ...]]:
    """Back-propagate dLoss/dImage to one pose-delta gradient per object.

    For each object k (instance id ``id_k``), with S_k its pixels after stillleben's 1-pixel
    dilation into valid neighbours::

        grad[k] = sum_{p in S_k} sum_c grad[c, p] * (gx[c, p] d(x_ndc)/dy + gy[c, p] d(y_ndc)/dy) dy/d(delta)

    where y = T_k [X(p); 1] is the camera-frame point of the object coordinate X(p) (own, or
    borrowed from a neighbour for grown pixels) and delta = (alpha, beta, gamma, a, b, c) is
    the right-multiplied local update of :func:`apply_pose_delta`. Descending the loss is
    ``apply_pose_delta(pose, -lr * grad[k])``.

    Parameters
    ----------
    scene : Scene
        ``scene.camera.projection_matrix()``, ``scene.objects`` (each with ``pose`` (4,4) and
        ``instance_index`` in [1, 32767]) and, in exact mode, ``scene.camera_pose``.
    render_result : RenderResult
        ``rgb``, ``depth``, ``instance_index`` and ``object_coordinates`` (H,W,3) float32.
        Every non-zero id in ``instance_index`` must belong to an object (else ValueError).
    grad : ndarray, float32 or float64, shape (3, H, W)
        dLoss/dImage for the image ``rgb[..., :3] / 255``. ``(H, W, 3)`` only with ``layout="HWC"``.
    visualize_grad : bool
        Also return a matplotlib Figure of the per-pixel contributions (a 2x3 grid of maps per
        object, diverging colours centred at 0, cropped to the objects with their outlines; see
        :func:`geomops.plot.plot_pose_gradients`). Needs matplotlib (the ``plot`` extra).
    mode : {"exact", "compat"}, keyword-only
        ``"exact"`` (default): true perspective Jacobian (divides by clip w), honours
        ``scene.camera_pose`` (object -> camera = inv(camera_pose) @ pose as in
        :meth:`Scene.object_to_camera`; the camera pose must be affine), border default
        ``"replicate"``. ``"compat"``: stillleben's numbers -- the row-2 (clip z) denominator, which
        is singular at Z = 2fn/(f+n) (about 0.198 m) and wrong-signed in front of it (a warning is
        issued when a visible object is there); the camera pose ignored; border default ``"zero"``.
    helper_semantics : {"cuda", "cpu"}, keyword-only
        Border and scan-order behaviour of stillleben's valid-mask and dilation helpers: ``"cuda"``
        (default) clamps neighbours to the image and takes the last neighbour in (dx, dy) scan
        order; ``"cpu"`` leaves border pixels out of every mask and scans (dy, dx).
    border : {None, "zero", "replicate"}, keyword-only
        Padding of the central differences; None picks the mode's default.
    return_contributions : bool, keyword-only
        Also return the per-pixel terms, float32 (N, 6, H, W) (zero outside each object's mask).
    layout : {"CHW", "HWC"}, keyword-only
        Layout of ``grad``.
    num_threads : int, optional
        OpenMP threads. The result is bitwise identical for any count. Ignored on a GPU.
    device : {None, "cpu", "cuda", "cuda:N"}, keyword-only
        Where to run. None: where the buffers and ``grad`` are (a GPU for device arrays, e.g.
        from ``render(..., device="cuda")`` or :meth:`RenderResult.from_buffers`; the CPU for
        NumPy arrays). ``"cuda"`` with NumPy inputs copies them to the GPU and the results back.
        The buffers and ``grad`` must be in one place: a ValueError names them otherwise. On a
        GPU the per-object sums are bitwise identical from run to run and equal the CPU's up to
        the order of additions (1e-12 relative); the per-pixel contributions are the CPU's.
    stream : None, int or CUDA stream object, keyword-only
        GPU only: order the work on this stream and mark the results pending on it (the call
        still waits for the kernel once, to read back the unknown-id check and the warning
        counts). None: a stream of geomops'. See docs/cuda.md.

    Returns
    -------
    grad : ndarray or DeviceArray, shape (N, 6)
        In ``scene.objects`` order, components (alpha, beta, gamma, a, b, c); float32 for a
        float32 ``grad`` input, float64 for float64 (sums are float64 either way). Objects
        without visible pixels get a zero row (no message). A DeviceArray for device inputs.
    contributions : ndarray or DeviceArray, float32, shape (N, 6, H, W)
        Only with ``return_contributions=True``; a DeviceArray for device inputs.
    figure : matplotlib.figure.Figure
        Only with ``visualize_grad=True``; it comes last: ``(grad, [contributions,] figure)``.
        Device results are copied to the host for it.
    """
    _backend.parse_device(device)
    visualize_grad = check_bool(visualize_grad, "visualize_grad")
    return_contributions = check_bool(return_contributions, "return_contributions")
    sem, bord = _resolve_options(mode, helper_semantics, border)
    check_option(layout, "layout", _LAYOUTS)
    nt = resolve_num_threads(num_threads)
    if visualize_grad:
        from . import plotting
        plotting.require_matplotlib()  # fail before the work, with the install hint

    raw = _raw_buffers(render_result, need_coords=True)
    with _backend.op_call(device, stream, grad=grad, **raw) as c:
        be = c.be
        rgb, depth, inst, coords = _image_buffers(c.args, need_coords=True)
        assert coords is not None
        h, w = inst.shape
        _check_camera_size(scene, h, w)
        g, cstride, pstride = _grad_input(c.args["grad"], layout, h, w)
        proj = _projection(scene)
        objs = _objects(scene)
        ids = _object_ids(objs)
        transforms = _transforms(scene, objs, honour_camera_pose=(mode == "exact"))
        tables = _upload_tables(be, transforms, proj.ravel(), *_slot_tables(ids))

        n = len(objs)
        accum = be.empty((n, ACC_STRIDE), np.float64)
        want_maps = return_contributions or visualize_grad
        contributions = None
        if want_maps:  # the CUDA kernel writes every element, the CPU one only the masks' pixels
            contributions = be.empty((n, 6, h, w), np.float32) if be.is_cuda else np.zeros((n, 6, h, w), np.float32)
        tr, pj, id_to_slot, slot_start, slot_objects = tables
        up = be.from_host
        # the kernel also finds the first pixel where it reads a grad that is not finite (no extra pass)
        bad, nonfinite = be.kernels.posegrad_backprop(up(rgb), bord, sem, up(inst), up(depth), up(coords), up(g),
                                                      cstride, pstride, tr, pj, 2 if mode == "compat" else 3,
                                                      id_to_slot, slot_start, slot_objects, accum, contributions,
                                                      None, nt)
        if bad:
            known = sorted(set(int(i) for i in ids))
            raise ValueError(f"render_result.instance_index contains id {bad}, which no object in scene.objects "
                             f"has (object ids: {known[:20]}{' ...' if len(known) > 20 else ''}); 0 is the "
                             "background")
        if nonfinite >= 0:
            _raise_nonfinite_grad(nonfinite, w, bool(_to_host(be, inst).reshape(-1)[nonfinite] != 0))
        accum_host = _to_host(be, accum)  # (N, ACC_STRIDE): read for the warning anyway
        if not np.isfinite(accum_host[:, ACC_GRAD:ACC_GRAD + 6]).all():
            _explain_nonfinite(up(coords), up(inst))
        _warn_singular(accum_host, mode)

        with np.errstate(over="ignore"):  # float64 sums beyond float32's range round to inf, as IEEE says
            result = accum_host[:, ACC_GRAD:ACC_GRAD + 6].astype(g.dtype)
        out: list[Any] = [up(result) if c.on_device else result]
        if return_contributions:
            out.append(contributions)
        out = c.result(out)
    if visualize_grad:
        from ..plot import plot_pose_gradients
        maps = _to_host(be, out[1] if return_contributions else contributions)
        out.append(plot_pose_gradients(maps, grad=result, outline=be.to_host(inst), instance_ids=[int(i) for i in ids]))
    return out[0] if len(out) == 1 else tuple(out)


def _warn_singular(accum: NDArray[np.float64], mode: str) -> None:
    bad = np.nonzero(accum[:, ACC_SINGULAR] > 0)[0]
    if bad.size == 0:
        return
    listing = ", ".join(f"{int(k)} ({int(accum[k, ACC_SINGULAR])} px)" for k in bad[:10])
    if mode == "compat":
        msg = (f"objects {listing} are visible where stillleben's row-2 projection denominator is <= 0 "
               "(camera Z <= 2fn/(f+n), about 0.198 m for near=0.1, far=10): compat mode returns what "
               "stillleben returns there (inf/NaN or gradients of the wrong sign); use mode='exact'")
    else:
        msg = (f"objects {listing} have pixels whose object coordinates map to camera Z <= 0 under their "
               "pose; the poses do not match the render buffers, and those pixels give non-finite or "
               "meaningless gradients")
    warnings.warn(msg, RuntimeWarning, stacklevel=3)


def _object_masks(scene: Any, render_result: Any, *, helper_semantics: str = "cuda", num_threads: Optional[int] = None,
                  device: Optional[str] = None) -> AnyArray:
    """The per-object pixel sets S_k (after the dilation) as bool (N, H, W). For tests/inspection."""
    _backend.parse_device(device)
    sem = _SEMANTICS[check_option(helper_semantics, "helper_semantics", tuple(_SEMANTICS))]
    raw = _raw_buffers(render_result, need_coords=True)
    with _backend.op_call(device, None, **raw) as c:
        be = c.be
        rgb, depth, inst, coords = _image_buffers(c.args, need_coords=True)
        assert coords is not None
        ids = _object_ids(_objects(scene))
        up = be.from_host
        masks, bad = _mask_pass(be, up(rgb), up(depth), up(inst), up(coords), sem, ids,
                                resolve_num_threads(num_threads))
        if bad:
            raise ValueError(f"render_result.instance_index contains id {bad}, which no object in scene.objects has")
        if be.is_cuda:
            return c.result(masks)
        assert isinstance(masks, np.ndarray)
        return masks.view(np.bool_)


def apply_pose_delta(pose: ArrayInput, delta: ArrayInput, orthonormalize: bool = True, *, fix_reflection: bool = False,
                     device: Optional[str] = None, stream: object = None) -> AnyArray:
    """Apply a pose delta (alpha, beta, gamma, a, b, c) to a 4x4 pose (right multiplication).

    ``new = pose @ D`` with::

        D = [[1, -gamma,  beta,  a],
             [gamma,  1, -alpha, b],
             [-beta, alpha,  1,  c],
             [0,      0,     0,  1]]

    so the delta is expressed in the object frame. With ``orthonormalize`` the rotation block
    is replaced by its nearest orthogonal matrix U V^T (SVD); the translation is kept.

    Parameters
    ----------
    pose : ndarray or device array, float32 or float64, shape (4, 4) or (B, 4, 4)
    delta : array_like or device array, shape (6,) for a single pose; (B, 6) or (1, 6)
        (broadcast) for a batch. Any real dtype (integers work); converted to the pose's dtype.
    orthonormalize : bool
        Re-orthonormalise the rotation block (default True, as stillleben).
    fix_reflection : bool, keyword-only
        When U V^T is a reflection (det < 0, possible only when the input rotation block already
        has det <= 0), flip the last column of U so that the result is a rotation. Off by
        default, like stillleben.
    device : {None, "cpu", "cuda", "cuda:N"}, keyword-only
        Where to run. None: where ``pose`` and ``delta`` are. NumPy inputs on the CPU use
        NumPy (LAPACK's SVD); device arrays (or ``device="cuda"``) use one GPU thread per pose
        with a 3x3 Jacobi SVD in float64 (``svd3_math.h``), which gives NumPy's result to 1e-6.
        ``"cuda"`` with NumPy inputs copies them in and the result back. ``pose`` and ``delta``
        must be in one place (a ValueError names them otherwise; a Python list ``delta`` goes
        anywhere).
    stream : None, int or CUDA stream object, keyword-only
        GPU only: order the work on this stream and return without waiting (the result is
        marked pending on it). See docs/cuda.md.

    Returns
    -------
    ndarray (DeviceArray for device inputs) of the pose's shape and dtype (float32 stays
    float32, float64 stays float64; the arithmetic is float64 internally).
    """
    kind, _ = _backend.parse_device(device)
    if kind != "cuda" and not _device.is_device_array(pose) and not _device.is_device_array(delta):
        if stream is not None:
            _backend.stream_handle(stream)
            raise ValueError(f"stream={stream!r} is only used on a CUDA device, but this call runs on the CPU")
        return _apply_pose_delta_host(pose, delta, orthonormalize, fix_reflection)
    with _backend.op_call(device, stream, pose=pose, delta=delta) as c:
        be = c.be
        p, d, orthonormalize, fix_reflection = _pose_delta_inputs(c.args["pose"], c.args["delta"], orthonormalize,
                                                                  fix_reflection)
        if d.dtype not in (np.float32, np.float64):  # the kernel reads float deltas
            d = d.astype(np.float64)
        out = be.empty(p.shape, p.dtype)
        be.kernels.pose_delta(be.from_host(np.ascontiguousarray(p)) if isinstance(p, np.ndarray) else p,
                              be.from_host(np.ascontiguousarray(d)) if isinstance(d, np.ndarray) else d,
                              out, orthonormalize, fix_reflection)
        return c.result(out)


def _to_host(be: Backend, a: Optional[AnyArray]) -> NDArray[Any]:
    """``be.to_host`` of an array that is there (never None)."""
    host = be.to_host(a)
    assert host is not None
    return host


def _all_finite(a: AnyArray) -> bool:
    """Whether a float array (NumPy, or a DeviceArray: a reduction on its device) is finite."""
    if isinstance(a, DeviceArray):
        return a.size == 0 or _device.stats(a.reshape(-1)).nonfinite == 0
    return bool(np.all(np.isfinite(a)))


def _pose_delta_inputs(pose: Any, delta: Any, orthonormalize: object,
                       fix_reflection: object) -> tuple[AnyArray, AnyArray, bool, bool]:
    """The checked ``(pose, delta, orthonormalize, fix_reflection)`` of apply_pose_delta; the
    arrays NumPy arrays or DeviceArrays (checked on the device), as given."""
    try:
        p = pose if isinstance(pose, DeviceArray) else np.asarray(pose)
    except Exception:
        raise TypeError(f"pose must be a float array, got {type(pose).__name__}") from None
    if p.dtype not in (np.float32, np.float64):
        raise TypeError(f"pose must be float32 or float64, got dtype {p.dtype}")
    if p.ndim not in (2, 3) or p.shape[-2:] != (4, 4):
        raise ValueError(f"pose must have shape (4, 4) or (B, 4, 4), got shape {p.shape}")
    try:
        d = delta if isinstance(delta, DeviceArray) else np.asarray(delta)
    except Exception:
        raise TypeError(f"delta must be a real array, got {type(delta).__name__}") from None
    if not (np.issubdtype(d.dtype, np.floating) or np.issubdtype(d.dtype, np.integer)):
        raise TypeError(f"delta must be a real (float or integer) array, got dtype {d.dtype}")
    batched = p.ndim == 3
    if not batched and d.shape != (6,):
        raise ValueError(f"delta must have shape (6,) for a (4, 4) pose, got shape {d.shape}")
    if batched and (d.ndim != 2 or d.shape[1] != 6 or d.shape[0] not in (1, p.shape[0])):
        raise ValueError(f"delta must have shape ({p.shape[0]}, 6) or (1, 6) for pose of shape {p.shape}, "
                         f"got shape {d.shape}")
    orthonormalize = check_bool(orthonormalize, "orthonormalize")
    fix_reflection = check_bool(fix_reflection, "fix_reflection")
    if not _all_finite(p):
        raise ValueError("pose must be finite, got non-finite entries")
    if np.issubdtype(d.dtype, np.floating) and not _all_finite(d if d.dtype in (np.float32, np.float64)
                                                               else d.astype(np.float64)):
        raise ValueError("delta must be finite, got non-finite entries")
    return p, d, orthonormalize, fix_reflection


def _apply_pose_delta_host(pose: Any, delta: Any, orthonormalize: object, fix_reflection: object) -> NDArray[Any]:
    """apply_pose_delta in NumPy (float64, LAPACK's SVD)."""
    p, d, orthonormalize, fix_reflection = _pose_delta_inputs(pose, delta, orthonormalize, fix_reflection)
    assert isinstance(p, np.ndarray) and isinstance(d, np.ndarray)  # host inputs stay NumPy
    d64 = d.astype(np.float64)
    p64 = p.astype(np.float64).reshape(-1, 4, 4)
    d64 = d64.reshape(-1, 6)
    al, be, ga, a, b, c = (d64[:, k] for k in range(6))
    D = np.zeros((d64.shape[0], 4, 4))
    D[:, 0] = np.stack([np.ones_like(al), -ga, be, a], axis=1)
    D[:, 1] = np.stack([ga, np.ones_like(al), -al, b], axis=1)
    D[:, 2] = np.stack([-be, al, np.ones_like(al), c], axis=1)
    D[:, 3, 3] = 1.0
    new = p64 @ D
    if orthonormalize:
        u, _, vt = np.linalg.svd(new[:, :3, :3])
        if fix_reflection:
            flip = np.linalg.det(u @ vt) < 0
            u[flip, :, 2] *= -1.0
        new[:, :3, :3] = u @ vt
    with np.errstate(over="ignore"):  # float64 values beyond float32's range round to inf, as IEEE says
        return new.reshape(p.shape).astype(p.dtype)
