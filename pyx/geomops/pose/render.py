"""The software rasterizer, on the CPU (OpenMP) or a GPU: ``render(scene) -> RenderResult``."""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Collection
from typing import Any, Literal, Optional, Union

import numpy as np
import numpy.typing as npt

from .. import _backend, _memory
from .._backend import Backend
from .._device import AnyArray
from .._config import resolve_num_threads
from .buffers import RenderResult
from .scene import Scene, _normal_matrix, _object_to_camera

__all__ = ["render", "release_render_cache"]

DEFAULT_COLOR = (0.7, 0.7, 0.7)  # vertex colour of meshes without colours
OPTIONAL_BUFFERS = ("cam_coordinates", "normals", "class_index", "triangle_id", "barycentrics")

BufferSelection = Union[Literal["all", "gradient"], Collection[str], None]
"""``render``'s ``buffers``: "all" (None too), "gradient" or names of optional buffers."""


def _buffer_names(buffers: BufferSelection) -> tuple[str, ...]:
    if buffers is None or (isinstance(buffers, str) and buffers == "all"):
        return OPTIONAL_BUFFERS
    if isinstance(buffers, str):
        if buffers == "gradient":
            return ()
        raise ValueError(f"buffers must be 'all', 'gradient' or a collection of names from {OPTIONAL_BUFFERS}, "
                         f"got {buffers!r}")
    try:
        names = tuple(buffers)
    except TypeError:
        raise TypeError(f"buffers must be 'all', 'gradient' or a collection of names, "
                        f"got {type(buffers).__name__}") from None
    for n in names:
        if n not in OPTIONAL_BUFFERS and n not in ("rgb", "depth", "instance_index", "object_coordinates"):
            raise ValueError(f"buffers: unknown buffer {n!r}; valid optional buffers are {OPTIONAL_BUFFERS} "
                             "(rgb, depth, instance_index and object_coordinates are always made)")
    return tuple(n for n in OPTIONAL_BUFFERS if n in names)


def release_render_cache() -> None:
    """Free the memory that :func:`render` keeps between calls on the CPU: the scratch memory
    (a few bytes per vertex and triangle of the largest scene rendered so far) and the
    reusable output block of the last frame (see :func:`render`). The GPU rasterizer keeps no
    scratch memory; the device copies of meshes are freed with their :class:`Mesh`."""
    global _host_block
    with _host_lock:
        _host_block = None
    _backend.cpu().kernels.raster_release_cache()


# The memory block behind the NumPy buffers of the last CPU frame. A frame's buffers are views
# of one block; once the caller has dropped every one of them (only this reference is left),
# the next frame of the same size reuses the block instead of allocating fresh pages, which
# the kernel would have to fault in and zero (glibc returns freed blocks this large to it).
_host_lock = threading.Lock()
_host_block: Optional[npt.NDArray[np.uint8]] = None
_HOST_ALIGN = 64
_BufferSpec = tuple[tuple[int, ...], npt.DTypeLike]  # shape, dtype
_LayoutEntry = tuple[str, tuple[int, ...], np.dtype[Any], int, int]  # name, shape, dtype, offset, bytes
_host_layouts: dict[tuple[tuple[str, _BufferSpec], ...], tuple[tuple[_LayoutEntry, ...], int]] = {}
"""specs -> the layout of each buffer in the block, the block's bytes"""


def _host_buffers(specs: dict[str, _BufferSpec]) -> dict[str, AnyArray]:
    """NumPy buffers for ``specs`` (name -> (shape, dtype)), uninitialised: views of one block,
    reused from the previous frame when nothing refers to it any more. A new block is checked
    first, buffer by buffer with the call's other outputs (:func:`geomops._memory.host_reserve`:
    MemoryError naming the bytes)."""
    global _host_block
    key = tuple(specs.items())
    cached_layout = _host_layouts.get(key)
    if cached_layout is None:
        entries: list[_LayoutEntry] = []
        total = 0
        for name, (shape, dtype) in specs.items():
            nbytes = math.prod(shape) * np.dtype(dtype).itemsize
            entries.append((name, shape, np.dtype(dtype), total, nbytes))
            total += -(-nbytes // _HOST_ALIGN) * _HOST_ALIGN
        if len(_host_layouts) >= 64:  # many image sizes: keep the table small
            _host_layouts.clear()
        cached_layout = _host_layouts[key] = (tuple(entries), total)
    layout, total = cached_layout
    block = None
    with _host_lock:
        # references: _host_block, `cached` and getrefcount's argument (views refer to the
        # block itself: NumPy's view bases skip intermediate views)
        cached = _host_block
        if cached is not None and cached.nbytes == total + _HOST_ALIGN and sys.getrefcount(cached) == 3:
            block, _host_block = cached, None
        del cached
    if block is None:
        for _, shape, dtype, _, _ in layout:
            _memory.host_reserve(shape, dtype)
        block = np.empty(total + _HOST_ALIGN, np.uint8)
    skip = -block.ctypes.data % _HOST_ALIGN
    out: dict[str, AnyArray] = {name: block[skip + off:skip + off + nbytes].view(dtype).reshape(shape)
           for name, shape, dtype, off, nbytes in layout}
    with _host_lock:
        _host_block = block
    return out


def render(scene: Scene, num_threads: Optional[int] = None, buffers: BufferSelection = "all", *,
           device: Optional[str] = None, stream: object = None) -> RenderResult:
    """Rasterize a scene into all render buffers.

    Parameters
    ----------
    scene : Scene
        Every object needs a :class:`Mesh`. Object-to-camera is ``inv(scene.camera_pose) @ pose``
        (:meth:`Scene.object_to_camera`); ``camera_pose`` must be affine and invertible.
    num_threads : int, optional
        OpenMP threads (default: :func:`geomops.get_num_threads`). The result is bitwise the
        same for any thread count. Ignored on a GPU.
    buffers : {"all", "gradient"} or collection of str
        Which optional buffers to make: ``"all"`` (default), ``"gradient"`` (none: only the
        four that the pose gradients read), or names from ``cam_coordinates``, ``normals``,
        ``class_index``, ``triangle_id``, ``barycentrics``. Buffers not made are ``None``.
    device : {None, "cpu", "cuda", "cuda:N"}, keyword-only
        Where to rasterize. None or ``"cpu"``: the OpenMP rasterizer, NumPy buffers.
        ``"cuda"``/``"cuda:N"``: the GPU rasterizer; the buffers stay on the GPU
        (:class:`geomops.DeviceArray`; ``result.get()`` copies them to the host), ready for the
        pose gradients there. Each mesh is copied to the device on first use and the copy is
        kept with the :class:`Mesh`, so rendering the same meshes again uploads nothing.
    stream : None, int or CUDA stream object, keyword-only
        GPU only: order the work on this stream (a ``cudaStream_t`` as an int, or an object with
        ``__cuda_stream__``, ``.cuda_stream`` or ``.ptr``) and mark the buffers as pending on it.
        None: a stream of geomops', waited for before returning. See docs/cuda.md.

    Returns
    -------
    RenderResult
        ``rgb`` uint8 (H, W, 4), ``depth`` float32 (H, W), ``instance_index`` int16 (H, W),
        ``object_coordinates`` float32 (H, W, 3), ``cam_coordinates`` float32 (H, W, 4),
        ``normals`` float32 (H, W, 4), ``class_index`` int16 (H, W), ``triangle_id`` int32 (H, W),
        ``barycentrics`` float32 (H, W, 3); backgrounds as documented in :mod:`geomops.pose.buffers`.
        NumPy arrays on the CPU, DeviceArrays on a GPU (``result.device`` says which).

    Notes
    -----
    * Pixel (r, c) is sampled at its centre ``(u, v) = (c + 0.5, r + 0.5)`` (no anti-aliasing).
      Coverage uses vertices snapped to 1/256 px and exact integer edge functions with a
      top-left fill rule: a pixel centre on an edge shared by two triangles belongs to exactly
      one of them, so closed meshes have neither cracks nor doubly drawn pixels.
    * Triangles are clipped against the near plane ``Z = near`` (and a guard band 2^20 px
      outside the image); pixels whose surface lies beyond ``far`` are not drawn.
    * Both sides of every triangle are drawn (no back-face culling).
    * Depth, barycentrics and coordinates are perspective-correct: they come from intersecting
      the pixel-centre ray with the unclipped triangle's plane in double precision (then rounded
      to float32). Barycentrics refer to the face's vertex order and are clamped to be
      non-negative (this only matters for samples within 1/512 px of an edge).
    * Visibility: strict ``<`` depth test on camera Z; on equal depth the earlier object in
      ``scene.objects`` (and the earlier face within a mesh) wins.
    * Shading: two-sided Lambert with the scene's :class:`Light` and the mesh's vertex colours
      (grey 0.7 without colours); flat face normals unless the mesh has vertex normals.
      Background pixels get the background colour with alpha 0, covered pixels alpha 255.
    * On the CPU the buffers of a frame are views of one memory block. Once every buffer of
      a frame (and every view of one) has been dropped, the next frame of the same size and
      buffer set reuses its block instead of fresh memory; :func:`release_render_cache` frees it.
    * The GPU rasterizer follows the same rules with the same per-vertex, per-face and per-pixel
      functions: instance, class and triangle ids and colours equal the CPU's bit for bit, float
      buffers to 1e-6 relative.
    """
    with _backend.op_call(device, stream) as c:
        be = c.be
        if not isinstance(scene, Scene):
            raise TypeError(f"scene must be a geomops.pose.Scene, got {type(scene).__name__}")
        nt = resolve_num_threads(num_threads)
        args = _raster_inputs(be, scene, _buffer_names(buffers))
        be.kernels.raster_render(*args, nt)
        out = args[-1]
        if be.is_cuda:  # the buffers stay on the device: pending on an explicit stream
            c._cs.mark(*out.values())
        return RenderResult(**out)


def _raster_inputs(be: Backend, scene: Scene, wanted: Collection[str]
                   ) -> tuple[tuple[int, int], tuple[float, ...], list[tuple[Any, ...]], tuple[tuple[float, ...], ...],
                              dict[str, AnyArray]]:
    """The arguments of ``be.kernels.raster_render`` but ``num_threads``:
    ``(size, intrinsics, objects, shading, out)`` for a validated Scene, with the mesh arrays in
    the memory of backend ``be`` (on a GPU the mesh's cached device copies) and the output
    buffers allocated there (``out``: the four gradient buffers and the optional ones named in
    ``wanted``)."""
    cam = scene.camera
    scene_objects = scene.objects
    transforms = _object_to_camera(scene.camera_pose, [obj.pose for obj in scene_objects])
    objects = []
    extents: dict[int, float] = {}  # id(mesh) -> largest vertex coordinate magnitude
    for k, (obj, T) in enumerate(zip(scene_objects, transforms)):
        mesh = obj.mesh
        if mesh is None:
            raise ValueError(f"scene.objects[{k}] has no mesh (mesh=None is only for user-provided buffers); "
                             "render() needs a Mesh for every object")
        rows = T[:3].tolist()  # Python floats: cheaper than NumPy calls on 12 numbers
        if not all(math.isfinite(v) for row in rows for v in row):
            raise ValueError(f"scene.objects[{k}].pose gives a non-finite object-to-camera transform")
        if obj.pose[3].tolist() != [0.0, 0.0, 0.0, 1.0]:
            raise ValueError(f"scene.objects[{k}].pose must be affine (last row [0, 0, 0, 1]), got {obj.pose[3]}")
        if mesh.num_vertices:
            ext = extents.get(id(mesh))
            if ext is None:  # meshes are often shared between objects
                lo, hi = mesh.bounding_box()
                ext = extents[id(mesh)] = max(abs(v) for v in lo.tolist() + hi.tolist())
            reach = max((abs(r[0]) + abs(r[1]) + abs(r[2])) * ext + abs(r[3]) for r in rows)  # inf: fails below
            if not reach < 1e150:
                raise ValueError(f"scene.objects[{k}]: the pose moves the mesh beyond the representable range "
                                 f"(object-to-camera coordinates up to {reach:.3g})")
        try:
            normal_matrix = _normal_matrix(T, "pose")
        except ValueError:
            normal_matrix = (0.0,) * 9  # degenerate (flattening) pose: flat normals
        assert obj.instance_index is not None  # Scene.add_object numbers every object
        objects.append((*mesh._arrays_on(be), tuple(v for row in rows for v in row),
                        normal_matrix, int(obj.instance_index), int(mesh.class_index)))
    h, w = cam.height, cam.width
    shapes: dict[str, _BufferSpec] = {
        "rgb": ((h, w, 4), np.uint8), "depth": ((h, w), np.float32), "instance_index": ((h, w), np.int16),
        "object_coordinates": ((h, w, 3), np.float32), "cam_coordinates": ((h, w, 4), np.float32),
        "normals": ((h, w, 4), np.float32), "class_index": ((h, w), np.int16),
        "triangle_id": ((h, w), np.int32), "barycentrics": ((h, w, 3), np.float32)}
    names = ("rgb", "depth", "instance_index", "object_coordinates") + tuple(wanted)
    if be.is_cuda:
        out = {name: be.empty(*shapes[name]) for name in names}
    else:
        out = _host_buffers({name: shapes[name] for name in names})
    light = scene.light
    shading = (tuple(light.direction.tolist()), tuple(light.color.tolist()), tuple(light.ambient.tolist()),
               tuple(scene.background.tolist()), DEFAULT_COLOR)
    return (w, h), (cam.fx, cam.fy, cam.cx, cam.cy, cam.near, cam.far), objects, shading, out
