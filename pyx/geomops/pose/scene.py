"""The scene data model: Camera, Mesh, Light, SceneObject, Scene.

Conventions (the same as stillleben, so buffers line up pixel for pixel):

* **Camera frame** is OpenCV's: x right, y down, z forward (the camera looks along +z).
  Right-handed. Depth is the camera-frame Z (positive in front of the camera).
* **Pixel centres sit at +0.5.** Pixel (row r, column c) is sampled at image coordinates
  ``(u, v) = (c + 0.5, r + 0.5)``, with ``u = fx * X / Z + cx`` and ``v = fy * Y / Z + cy``.
  Row 0 is the top of the image. An OpenCV user whose pixel centres are integers sees a
  0.5 px shift unless ``cx``/``cy`` are adjusted by +0.5.
* **Poses** are 4x4 homogeneous matrices: ``SceneObject.pose`` maps object to world,
  ``Scene.camera_pose`` maps camera to world (identity by default, i.e. world = camera).
  The object-to-camera transform is ``inv(camera_pose) @ pose``.
* **Instance indices** are 1-based (0 is background in the buffers) and must fit int16.
"""

from __future__ import annotations

import math
import numbers
import operator
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Optional, SupportsIndex, TypeVar, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._device import AnyArray
from .._validate import as_array, check_real
from ._constants import MAX_IMAGE_SIZE
from ._constants import MAX_INSTANCE_INDEX as MAX_INDEX  # int16 instance/class buffers

if TYPE_CHECKING:
    from typing import Self

    from .._backend import Backend

__all__ = ["Camera", "Mesh", "Light", "SceneObject", "Scene"]

_S = TypeVar("_S", bound=np.generic)
_Row3 = tuple[float, float, float]
# What pickle hands __setstate__ for a slotted class: (None, {slot: value}), or the dict itself.
_SlotState = Union[tuple[None, dict[str, Any]], dict[str, Any]]


def _check_size(value: Any, name: str) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a positive int, got bool")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be a positive int, got {type(value).__name__}") from None
    if v < 1:
        raise ValueError(f"{name} must be a positive int, got {v}")
    if v > MAX_IMAGE_SIZE:
        raise ValueError(f"{name} must be <= {MAX_IMAGE_SIZE}, got {v}")
    return int(v)


def _check_index(value: Any, name: str, *, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, got bool")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None
    if not minimum <= v <= MAX_INDEX:
        raise ValueError(f"{name} must be in [{minimum}, {MAX_INDEX}] (it is stored in an int16 buffer), got {v}")
    return int(v)


def _pose_array(x: object, name: str) -> NDArray[np.float64]:
    a = as_array(x, name)
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise TypeError(f"{name} must be a real (4, 4) array, got dtype {a.dtype}")
    if a.shape != (4, 4):
        raise ValueError(f"{name} must have shape (4, 4), got shape {a.shape}")
    a = np.array(a, dtype=np.float64, order="C")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite, got non-finite entries {a[~np.isfinite(a)][:3]}")
    return a


def _cofactors(T: NDArray[np.float64], name: str) -> tuple[tuple[_Row3, _Row3, _Row3], float]:
    """``(cof, det)`` of the 3x3 block A of T as Python floats: the rows of cof are
    adj(A).T = (A[1] x A[2], A[2] x A[0], A[0] x A[1]), rounded as np.cross rounds them without
    its per-call overhead (render needs one per object), and det = A[0] . cof[0] by np.einsum.
    Raises ValueError when A is singular."""
    (a0, a1, a2), (b0, b1, b2), (c0, c1, c2) = T[:3, :3].tolist()
    cof = ((b1 * c2 - b2 * c1, b2 * c0 - b0 * c2, b0 * c1 - b1 * c0),
           (c1 * a2 - c2 * a1, c2 * a0 - c0 * a2, c0 * a1 - c1 * a0),
           (a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0))
    with np.errstate(over="ignore", invalid="ignore"):  # overflow: reported below
        det = float(np.einsum("i,i->", T[0, :3], np.array(cof[0])))  # its summation order, not ours
    entries = (a0, a1, a2, b0, b1, b2, c0, c1, c2)
    scale = max(abs(v) for v in entries)
    if not math.isfinite(det) and all(math.isfinite(v) for v in entries):
        raise ValueError(f"{name} has entries too large to invert (up to {scale:.3g}: its 3x3 block's "
                         "determinant overflows)")
    tiny = 1e-12 * scale * scale * scale  # inf for a huge scale (float ** would raise OverflowError)
    if not math.isfinite(det) or scale == 0.0 or abs(det) <= tiny:
        raise ValueError(f"{name} must be invertible (its 3x3 block is singular)")
    return cof, det


def _inv_affine(T: NDArray[np.float64], name: str) -> NDArray[np.float64]:
    """Inverse of a (4, 4) affine matrix without LAPACK/BLAS (their thread pool would spin on
    the cores the OpenMP kernel needs)."""
    cof, det = _cofactors(T, name)
    inv = np.eye(4)
    inv[:3, :3] = np.array(cof).T / det
    inv[:3, 3] = -np.einsum("ij,j->i", inv[:3, :3], T[:3, 3])
    return inv


def _normal_matrix(T: NDArray[np.float64], name: str) -> tuple[float, ...]:
    """The inverse transpose of T's 3x3 block, row-major, as a tuple of 9 floats: bitwise
    ``_inv_affine(T, name)[:3, :3].T.ravel()``. Raises ValueError when it is singular."""
    cof, det = _cofactors(T, name)
    return tuple(v / det for row in cof for v in row)


def _object_to_camera(camera_pose: NDArray[np.float64],
                      poses: Iterable[NDArray[np.float64]]) -> NDArray[np.float64]:
    """The object-to-camera transforms ``inv(camera_pose) @ pose`` of ``poses`` ((4, 4) float64
    each, or one (N, 4, 4) array), as one (N, 4, 4) float64 array: the one formula behind
    :meth:`Scene.object_to_camera`, :func:`geomops.pose.render` and the exact-mode pose gradients.

    The inverse is the affine cofactor formula and the products are einsum: no LAPACK/BLAS, whose
    thread pools would spin on the cores the OpenMP kernels need. Raises ValueError when
    ``camera_pose`` is not affine or not invertible.
    """
    if not np.array_equal(camera_pose[3], [0.0, 0.0, 0.0, 1.0]):
        raise ValueError(f"scene.camera_pose must be affine (last row [0, 0, 0, 1]), got {camera_pose[3]}")
    world_to_cam = _inv_affine(camera_pose, "scene.camera_pose")
    stacked = np.asarray(poses if isinstance(poses, np.ndarray) else list(poses), dtype=np.float64)
    # one batched einsum: each product sums j = 0..3 in order, bitwise the per-pose einsum's
    out: NDArray[np.float64] = np.einsum("ij,njk->nik", world_to_cam, stacked.reshape(-1, 4, 4))
    return out


# ----------------------------------------------------------------------------------------------
class Camera:
    """Pinhole camera in the OpenCV frame (x right, y down, z forward).

    Parameters
    ----------
    width, height : int
        Image size in pixels.
    fx, fy : float
        Focal lengths in pixels (> 0).
    cx, cy : float
        Principal point in pixels, **in the +0.5 pixel-centre convention**: pixel (r, c) is
        sampled at ``u = c + 0.5, v = r + 0.5`` where ``u = fx X/Z + cx``, ``v = fy Y/Z + cy``.
        ``cx = width / 2`` puts the optical axis on the boundary between the two middle columns
        of an even-width image.
    near, far : float
        Clip distances (camera Z), ``0 < near < far``. The rasterizer clips at ``near`` and
        ``far``; the GL-style projection matrix (compat gradients) uses both.

    Notes
    -----
    ``projection_matrix()`` follows stillleben's float32 construction. A camera made with
    :meth:`from_projection` returns the user's matrix as given instead.
    """

    __slots__ = ("_width", "_height", "_fx", "_fy", "_cx", "_cy", "_near", "_far", "_P")

    _width: int
    _height: int
    _fx: float
    _fy: float
    _cx: float
    _cy: float
    _near: float
    _far: float
    _P: Optional[NDArray[np.float32]]

    def __init__(self, width: int, height: int, fx: float, fy: float, cx: float, cy: float, near: float = 0.1,
                 far: float = 10.0) -> None:
        self._width = _check_size(width, "width")
        self._height = _check_size(height, "height")
        self._fx = check_real(fx, "fx", positive=True)
        self._fy = check_real(fy, "fy", positive=True)
        self._cx = check_real(cx, "cx")
        self._cy = check_real(cy, "cy")
        self._near = check_real(near, "near", positive=True)
        self._far = check_real(far, "far", positive=True)
        if not self._near < self._far:
            raise ValueError(f"near must be < far, got near={self._near}, far={self._far}")
        self._P = None

    # -- constructors ----------------------------------------------------------------------
    @classmethod
    def from_fov(cls, width: int, height: int, hfov_deg: float = 58.0, near: float = 0.1, far: float = 10.0) -> Self:
        """stillleben's default camera: ``cx = W/2, cy = H/2, fx = fy = W / (2 tan(hfov/2))``."""
        w = _check_size(width, "width")
        h = _check_size(height, "height")
        hfov = check_real(hfov_deg, "hfov_deg", positive=True)
        if not hfov < 180.0:
            raise ValueError(f"hfov_deg must be in (0, 180), got {hfov}")
        f = w / (2.0 * math.tan(math.radians(hfov) / 2.0))
        return cls(w, h, f, f, w / 2.0, h / 2.0, near=near, far=far)

    @classmethod
    def from_projection(cls, P: ArrayLike, width: int, height: int) -> Self:
        """A camera from a 4x4 GL-style projection matrix (like stillleben's ``set_camera_projection``).

        ``projection_matrix()`` then returns ``P`` as given (as float32). The intrinsics are
        derived from it: ``fx = P[0,0] W/2``, ``cx = (P[0,2] + 1) W/2``, ``fy = P[1,1] H/2``,
        ``cy = (P[1,2] + 1) H/2``, ``near = -P[2,3] / (P[2,2] + 1)``, ``far = -P[2,3] / (P[2,2] - 1)``.

        Raises
        ------
        ValueError
            When ``P`` is not finite or not of the pinhole form
            ``[[a,0,b,0],[0,c,d,0],[0,0,e,g],[0,0,1,0]]`` with ``a, c > 0`` and ``0 < near < far``
            (the rasterizer and the gradients assume clip w = camera Z).
        """
        w = _check_size(width, "width")
        h = _check_size(height, "height")
        a = as_array(P, "P")
        if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
            raise TypeError(f"P must be a real (4, 4) array, got dtype {a.dtype}")
        if a.shape != (4, 4):
            raise ValueError(f"P must have shape (4, 4), got shape {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError("P must be finite")
        keep = np.array(a, dtype=np.float32, order="C")
        p = keep.astype(np.float64)
        zero_at = [(0, 1), (0, 3), (1, 0), (1, 3), (2, 0), (2, 1), (3, 0), (3, 1), (3, 3)]
        if any(p[i, j] != 0 for i, j in zero_at) or p[3, 2] != 1:
            raise ValueError("P must be a pinhole projection [[a,0,b,0],[0,c,d,0],[0,0,e,g],[0,0,1,0]] "
                             "(OpenCV frame, clip w = camera Z); got\n" + repr(keep))
        if not (p[0, 0] > 0 and p[1, 1] > 0):
            raise ValueError(f"P[0,0] and P[1,1] must be > 0 (focal lengths), got {p[0, 0]} and {p[1, 1]}")
        e, g = p[2, 2], p[2, 3]
        near = -g / (e + 1.0) if e != -1.0 else float("nan")
        far = -g / (e - 1.0) if e != 1.0 else float("nan")
        if not (np.isfinite(near) and np.isfinite(far) and 0 < near < far):
            raise ValueError(f"P[2,2] and P[2,3] must encode 0 < near < far, got near={near}, far={far}")
        cam = cls(w, h, p[0, 0] * w / 2.0, p[1, 1] * h / 2.0, (p[0, 2] + 1.0) * w / 2.0,
                  (p[1, 2] + 1.0) * h / 2.0, near=near, far=far)
        keep.setflags(write=False)
        cam._P = keep
        return cam

    # -- properties ------------------------------------------------------------------------
    width = property(lambda self: self._width, doc="Image width in pixels.")
    height = property(lambda self: self._height, doc="Image height in pixels.")
    fx = property(lambda self: self._fx, doc="Horizontal focal length in pixels.")
    fy = property(lambda self: self._fy, doc="Vertical focal length in pixels.")
    cx = property(lambda self: self._cx, doc="Principal point u (pixel centres at +0.5).")
    cy = property(lambda self: self._cy, doc="Principal point v (pixel centres at +0.5).")
    near = property(lambda self: self._near, doc="Near clip distance (camera Z).")
    far = property(lambda self: self._far, doc="Far clip distance (camera Z).")

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)``, the shape of the render buffers."""
        return (self._height, self._width)

    def intrinsics(self) -> NDArray[np.float64]:
        """The 3x3 matrix ``K = [[fx,0,cx],[0,fy,cy],[0,0,1]]`` (float64, +0.5 pixel-centre convention)."""
        return np.array([[self._fx, 0.0, self._cx], [0.0, self._fy, self._cy], [0.0, 0.0, 1.0]])

    def projection_matrix(self) -> NDArray[np.float32]:
        """(4, 4) float32 GL-style projection matrix, row-major, clip w = camera Z.

        Built in float32 exactly as stillleben builds it: ``n, f = near, far``,
        ``L = -cx n / fx``, ``R = (W - cx) n / fx``, ``T = -cy n / fy``, ``B = (H - cy) n / fy``, then
        ``[[2n/(R-L), 0, (R+L)/(L-R), 0], [0, 2n/(B-T), (T+B)/(T-B), 0],
        [0, 0, (f+n)/(f-n), (2 f n)/(n-f)], [0, 0, 1, 0]]``. Up to float32 rounding this is
        ``[[2fx/W, 0, 2cx/W-1, 0], [0, 2fy/H, 2cy/H-1, 0], ...]``, so ``x_ndc = 2u/W - 1``.
        Returns a fresh copy; a camera from :meth:`from_projection` returns the stored matrix.
        """
        if self._P is not None:
            return self._P.copy()
        f32 = np.float32
        n, f = f32(self._near), f32(self._far)
        W, H = f32(self._width), f32(self._height)
        fx, fy, cx, cy = f32(self._fx), f32(self._fy), f32(self._cx), f32(self._cy)
        L = -cx * n / fx
        R = (W - cx) * n / fx
        T = -cy * n / fy
        B = (H - cy) * n / fy
        two = f32(2.0)
        P = np.zeros((4, 4), dtype=np.float32)
        P[0, 0] = two * n / (R - L)
        P[1, 1] = two * n / (B - T)
        P[0, 2] = (R + L) / (L - R)
        P[1, 2] = (T + B) / (T - B)
        P[2, 2] = (f + n) / (f - n)
        P[2, 3] = (two * f * n) / (n - f)
        P[3, 2] = f32(1.0)
        return P

    def __setstate__(self, state: _SlotState) -> None:  # a pickled camera keeps its projection matrix read-only
        _restore_slots(self, state)

    def __repr__(self) -> str:
        return (f"Camera(width={self._width}, height={self._height}, fx={self._fx!r}, fy={self._fy!r}, "
                f"cx={self._cx!r}, cy={self._cy!r}, near={self._near!r}, far={self._far!r}"
                + (", from_projection" if self._P is not None else "") + ")")


# ----------------------------------------------------------------------------------------------
def _colors_array(x: object, num_vertices: int, name: str = "vertex_colors") -> NDArray[np.float32]:
    a = np.asarray(as_array(x, name))  # a device array: np.asarray's TypeError says to call .get()
    if a.ndim != 2 or a.shape[0] != num_vertices or a.shape[1] not in (3, 4):
        raise ValueError(f"{name} must have shape ({num_vertices}, 3) or ({num_vertices}, 4) (one row per vertex: "
                         f"vertices has {num_vertices}), got shape {a.shape}")
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a[:, :3], dtype=np.float32) / np.float32(255.0)
    if not np.issubdtype(a.dtype, np.floating):
        raise TypeError(f"{name} must be float in [0, 1] or uint8, got dtype {a.dtype}")
    with np.errstate(over="ignore", invalid="ignore"):  # out of float32's range: reported below
        c = np.ascontiguousarray(a[:, :3], dtype=np.float32)
    if c.size and not (np.all(np.isfinite(c)) and c.min() >= 0.0 and c.max() <= 1.0):
        raise ValueError(f"{name} must be finite and in [0, 1] (float) or uint8")
    return c


def _readonly(a: NDArray[_S]) -> NDArray[_S]:
    a.setflags(write=False)
    return a


def _restore_slots(obj: object, state: _SlotState) -> None:
    """Unpickle a slotted object (the default state ``(None, {slot: value})``) with its arrays
    read-only again: pickle gives back writeable copies."""
    for name, value in (state[1] if isinstance(state, tuple) else state).items():
        object.__setattr__(obj, name, _readonly(value) if isinstance(value, np.ndarray) else value)


class Mesh:
    """A triangle mesh in its object frame.

    Parameters
    ----------
    vertices : array_like, (V, 3)
        Vertex positions (stored as float32, must be finite).
    faces : array_like of int, (F, 3)
        Vertex indices of each triangle, in ``[0, V)`` (stored as int32). The winding is free
        (the rasterizer draws both sides); the normal of ``(a, b, c)`` is ``(b-a) x (c-a)``.
    vertex_colors : array_like, (V, 3) or (V, 4), optional
        Float in [0, 1] or uint8 (divided by 255); alpha is dropped. Stored as float32 (V, 3).
        Default: mid grey (0.7).
    normals : array_like, (V, 3), optional
        Per-vertex normals for smooth shading (normalised on input). Without them the
        rasterizer uses flat face normals.
    class_index : int
        Written to the ``class_index`` buffer, in [0, 32767].

    The arrays are stored read-only: make a new Mesh to change them. Rendering on a GPU keeps a
    copy of them in each device's memory, made on first use and freed with the Mesh (it is not
    pickled).
    """

    __slots__ = ("_vertices", "_faces", "_colors", "_normals", "_class_index", "_bbox", "_device_arrays")

    _vertices: NDArray[np.float32]
    _faces: NDArray[np.int32]
    _colors: Optional[NDArray[np.float32]]
    _normals: Optional[NDArray[np.float32]]
    _class_index: int
    _bbox: Optional[tuple[NDArray[np.float64], NDArray[np.float64]]]
    # (binding module name, device id) -> the device copies of the four arrays (None stays None)
    _device_arrays: Optional[dict[tuple[str, Optional[int]], tuple[Optional[AnyArray], ...]]]

    def __init__(self, vertices: ArrayLike, faces: ArrayLike, vertex_colors: Optional[ArrayLike] = None,
                 normals: Optional[ArrayLike] = None, class_index: int = 0) -> None:
        v = np.asarray(as_array(vertices, "vertices"))  # a device array: np.asarray's TypeError says .get()
        if not (np.issubdtype(v.dtype, np.floating) or np.issubdtype(v.dtype, np.integer)):
            raise TypeError(f"vertices must be a real (V, 3) array, got dtype {v.dtype}")
        if v.ndim != 2 or v.shape[1] != 3:
            raise ValueError(f"vertices must have shape (V, 3), got shape {v.shape}")
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported just below
            v = np.array(v, dtype=np.float32, order="C")
        if not np.all(np.isfinite(v)):
            raise ValueError("vertices must be finite (within float32 range)")
        f = np.asarray(as_array(faces, "faces"))
        if f.size == 0 and f.ndim <= 2:
            f = f.reshape(0, 3)
        if not np.issubdtype(f.dtype, np.integer):
            raise TypeError(f"faces must be an integer (F, 3) array, got dtype {f.dtype}")
        if f.ndim != 2 or f.shape[1] != 3:
            raise ValueError(f"faces must have shape (F, 3), got shape {f.shape}")
        if f.size:
            lo, hi = int(f.min()), int(f.max())
            if lo < 0 or hi >= v.shape[0]:
                bad = lo if lo < 0 else hi
                raise ValueError(f"faces contains vertex index {bad}, outside [0, {v.shape[0]}) of vertices")
        if f.shape[0] > np.iinfo(np.int32).max // 2:
            raise ValueError(f"faces has too many triangles ({f.shape[0]})")
        f = np.array(f, dtype=np.int32, order="C")
        colors = None if vertex_colors is None else _colors_array(vertex_colors, v.shape[0])
        nrm = None
        if normals is not None:
            n = np.asarray(as_array(normals, "normals"))
            if not np.issubdtype(n.dtype, np.floating):
                raise TypeError(f"normals must be a float (V, 3) array, got dtype {n.dtype}")
            if n.shape != (v.shape[0], 3):
                raise ValueError(f"normals must have shape ({v.shape[0]}, 3) (one row per vertex: vertices has "
                                 f"{v.shape[0]}), got shape {n.shape}")
            n = n.astype(np.float64)
            if not np.all(np.isfinite(n)):
                raise ValueError("normals must be finite")
            with np.errstate(over="ignore"):
                length = np.linalg.norm(n, axis=1, keepdims=True)
            big = ~np.isfinite(length[:, 0])
            if big.any():  # rows with huge components: normalise a rescaled copy of them instead
                n[big] /= np.abs(n[big]).max(axis=1, keepdims=True)
                length[big] = np.linalg.norm(n[big], axis=1, keepdims=True)
            nrm = np.ascontiguousarray(np.where(length > 0, n / np.where(length > 0, length, 1.0), 0.0),
                                       dtype=np.float32)
        self._vertices = _readonly(v)
        self._faces = _readonly(f)
        self._colors = None if colors is None else _readonly(colors)
        self._normals = None if nrm is None else _readonly(nrm)
        self._class_index = _check_index(class_index, "class_index", minimum=0)
        self._bbox = None
        self._device_arrays = None

    vertices = property(lambda self: self._vertices, doc="(V, 3) float32 vertex positions (read-only).")
    faces = property(lambda self: self._faces, doc="(F, 3) int32 triangle vertex indices (read-only).")
    vertex_colors = property(lambda self: self._colors,
                             doc="(V, 3) float32 colours in [0, 1], or None (read-only).")
    normals = property(lambda self: self._normals, doc="(V, 3) float32 unit vertex normals, or None.")
    class_index = property(lambda self: self._class_index, doc="Class index written to the class buffer.")

    @property
    def num_vertices(self) -> int:
        return int(self._vertices.shape[0])

    @property
    def num_faces(self) -> int:
        return int(self._faces.shape[0])

    def bounding_box(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """``(min (3,), max (3,))`` float64 corners of the axis-aligned box (zeros for no vertices)."""
        if self._bbox is None:  # the arrays are read-only, so the box can be cached
            if self.num_vertices == 0:
                self._bbox = (np.zeros(3), np.zeros(3))
            else:
                self._bbox = (self._vertices.min(axis=0).astype(np.float64),
                              self._vertices.max(axis=0).astype(np.float64))
        return self._bbox[0].copy(), self._bbox[1].copy()

    def _arrays_on(self, be: Backend) -> tuple[Optional[AnyArray], ...]:
        """``(vertices, faces, vertex_colors, normals)`` in the memory of backend ``be``: the
        arrays themselves on the CPU; on a GPU copies made on first use and kept per (binding
        module, device), which the read-only arrays make safe to reuse, so a render loop does
        not upload its meshes every frame."""
        arrays = (self._vertices, self._faces, self._colors, self._normals)
        if not be.is_cuda:
            return arrays
        key = (be.module.__name__, be.device_id)
        cache = self._device_arrays
        if cache is None:
            cache = self._device_arrays = {}
        copies = cache.get(key)
        if copies is None:
            copies = cache[key] = tuple(be.from_host(a) for a in arrays)
        return copies

    def __getstate__(self) -> dict[str, Any]:  # the device copies stay behind (device memory is not pickled)
        return {name: getattr(self, name) for name in self.__slots__ if name != "_device_arrays"}

    def __setstate__(self, state: _SlotState) -> None:
        if isinstance(state, tuple):  # (None, slots) of pickles made before __getstate__ existed
            state = state[1]
        for name, value in state.items():
            if isinstance(value, np.ndarray):
                value = _readonly(value)
            object.__setattr__(self, name, value)
        self._device_arrays = None

    def __repr__(self) -> str:
        return (f"Mesh({self.num_vertices} vertices, {self.num_faces} faces, "
                f"colors={'yes' if self._colors is not None else 'no'}, class_index={self._class_index})")

    # -- primitives --------------------------------------------------------------------------
    @classmethod
    def box(cls, size: ArrayLike = 1.0, class_index: int = 0) -> Self:
        """An axis-aligned box centred at the origin: 8 vertices, 12 triangles, outward winding.

        ``size`` is the edge length, a scalar or (3,). Each corner is coloured by its octant
        (the RGB cube: corner (±x, ±y, ±z) gets colour (x>0, y>0, z>0) mapped to 0.15/0.9), so
        the faces carry colour gradients. Flat shading (no vertex normals).
        """
        s = np.asarray(as_array(size, "size")).astype(np.float64) if not isinstance(size, numbers.Real) \
            else np.full(3, float(size))
        if s.shape == ():
            s = np.full(3, float(s))
        if s.shape != (3,):
            raise ValueError(f"size must be a scalar or have shape (3,), got shape {s.shape}")
        if not (np.all(np.isfinite(s)) and np.all(s > 0)):
            raise ValueError(f"size must be finite and > 0, got {s}")
        bits = np.array([[(i >> 0) & 1, (i >> 1) & 1, (i >> 2) & 1] for i in range(8)], dtype=np.float64)
        verts = (bits - 0.5) * s
        # Each quad (a, b, c, d) is counter-clockwise seen from outside.
        quads = [(0, 2, 3, 1),  # z-
                 (4, 5, 7, 6),  # z+
                 (0, 1, 5, 4),  # y-
                 (2, 6, 7, 3),  # y+
                 (0, 4, 6, 2),  # x-
                 (1, 3, 7, 5)]  # x+
        faces: list[tuple[int, int, int]] = []
        for a, b, c, d in quads:
            faces += [(a, b, c), (a, c, d)]
        colors = 0.15 + 0.75 * bits
        return cls(verts, np.array(faces), vertex_colors=colors, class_index=class_index)

    @classmethod
    def sphere(cls, radius: float = 1.0, segments: int = 32, rings: int = 16, class_index: int = 0) -> Self:
        """A closed UV sphere centred at the origin, with smooth normals and a colour pattern.

        ``segments`` (>= 3) vertices around each of the ``rings - 1`` latitude circles
        (``rings >= 2``) plus the two poles; ``2 * segments * (rings - 1)`` triangles, outward
        winding, no duplicated seam vertices (watertight). The colours are sinusoids of the
        position (period about 1/3 of the diameter per channel), giving strong, smooth image
        gradients for render-and-compare tests.
        """
        r = check_real(radius, "radius", positive=True)
        seg = _check_count(segments, "segments", 3)
        rng = _check_count(rings, "rings", 2)
        theta = np.pi * np.arange(1, rng) / rng                 # polar angle of the inner rings
        phi = 2.0 * np.pi * np.arange(seg) / seg
        st, ct = np.sin(theta)[:, None], np.cos(theta)[:, None]
        ring = np.stack([st * np.cos(phi), ct * np.ones_like(phi), st * np.sin(phi)], axis=-1).reshape(-1, 3)
        unit = np.concatenate([[[0.0, 1.0, 0.0]], ring, [[0.0, -1.0, 0.0]]])
        top, bottom = 0, unit.shape[0] - 1
        faces: list[NDArray[np.intp]] = []
        j = np.arange(seg)
        jn = (j + 1) % seg
        first = 1
        faces.append(np.stack([np.full(seg, top), first + jn, first + j], axis=1))
        for i in range(rng - 2):
            a, b = first + i * seg + j, first + i * seg + jn
            c, d = first + (i + 1) * seg + j, first + (i + 1) * seg + jn
            faces.append(np.stack([a, b, d], axis=1))
            faces.append(np.stack([a, d, c], axis=1))
        last = first + (rng - 2) * seg
        faces.append(np.stack([np.full(seg, bottom), last + j, last + jn], axis=1))
        k = 3.0 * np.pi
        colors = 0.5 + 0.4 * np.sin(k * unit + np.array([0.0, 2.1, 4.2]))
        return cls(unit * r, np.concatenate(faces), vertex_colors=colors, normals=unit, class_index=class_index)

    @classmethod
    def load(cls, path: Union[str, os.PathLike[str]], class_index: int = 0) -> Self:
        """Read a triangle mesh from a PLY (ASCII or binary) or OBJ file.

        Polygons are triangulated with a fan. PLY ``red/green/blue`` (and ``nx/ny/nz``) vertex
        properties become vertex colours (and normals); OBJ ``v x y z r g b`` colours are read
        too. Other attributes (texture coordinates, materials) are ignored.
        """
        from .mesh_io import read_mesh
        data = read_mesh(path)
        return cls(data["vertices"], data["faces"], vertex_colors=data.get("colors"),
                   normals=data.get("normals"), class_index=class_index)


def _check_count(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, got bool")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None
    if v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v}")
    if v > 4096:
        raise ValueError(f"{name} must be <= 4096, got {v}")
    return int(v)


# ----------------------------------------------------------------------------------------------
class Light:
    """Directional light for the built-in Lambert shader (camera frame).

    Parameters
    ----------
    direction : (3,)
        Direction from the surface **towards** the light, in the camera frame (normalised on
        input). The default ``(0, -1, -1)`` lights from above (y is down) and from the camera side.
    color : (3,)
        Diffuse light colour, >= 0.
    ambient : (3,) or float
        Ambient term, >= 0.

    A pixel's colour is ``clip(vertex_color * (ambient + color * max(0, n . direction)), 0, 1)``
    with ``n`` the surface normal turned towards the camera (both sides are lit the same way),
    then ``round(255 * c)``.
    """

    __slots__ = ("_direction", "_color", "_ambient")

    _direction: NDArray[np.float64]
    _color: NDArray[np.float64]
    _ambient: NDArray[np.float64]

    def __init__(self, direction: ArrayLike = (0.0, -1.0, -1.0), color: ArrayLike = (0.8, 0.8, 0.8),
                 ambient: ArrayLike = 0.25) -> None:
        d = _vec3(direction, "direction")
        with np.errstate(over="ignore"):
            length = float(np.linalg.norm(d))
        if not np.isfinite(length):  # huge components: normalise a rescaled copy instead
            d = d / np.abs(d).max()
            length = float(np.linalg.norm(d))
        if not length > 0:
            raise ValueError("direction must be a non-zero vector")
        self._direction = _readonly(d / length)
        self._color = _readonly(_vec3(color, "color", nonnegative=True))
        self._ambient = _readonly(_vec3(ambient, "ambient", nonnegative=True))

    direction = property(lambda self: self._direction, doc="(3,) unit vector towards the light (camera frame).")
    color = property(lambda self: self._color, doc="(3,) diffuse colour.")
    ambient = property(lambda self: self._ambient, doc="(3,) ambient colour.")

    def __setstate__(self, state: _SlotState) -> None:  # a pickled light keeps its arrays read-only
        _restore_slots(self, state)

    def __repr__(self) -> str:
        return f"Light(direction={self._direction.tolist()}, color={self._color.tolist()}, " \
               f"ambient={self._ambient.tolist()})"


def _vec3(x: object, name: str, *, nonnegative: bool = False, unit_range: bool = False) -> NDArray[np.float64]:
    a = np.asarray(as_array(x, name))  # a device array: np.asarray's TypeError says to call .get()
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)) or a.dtype == np.bool_:
        raise TypeError(f"{name} must be real, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if a.ndim == 0:
        a = np.full(3, float(a))
    if a.shape != (3,):
        raise ValueError(f"{name} must be a scalar or have shape (3,), got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite, got {a}")
    if nonnegative and np.any(a < 0):
        raise ValueError(f"{name} must be >= 0, got {a}")
    if unit_range and (np.any(a < 0) or np.any(a > 1)):
        raise ValueError(f"{name} must be in [0, 1], got {a}")
    return a


# ----------------------------------------------------------------------------------------------
class SceneObject:
    """A mesh placed in the world.

    Parameters
    ----------
    mesh : Mesh or None
        ``None`` is allowed for users who bring their own render buffers (gradients only);
        :func:`geomops.pose.render` refuses such objects.
    pose : array_like, (4, 4)
        Object-to-world transform (stored as float64; must be finite).
    instance_index : int, optional
        1-based id written to the ``instance_index`` buffer, in [1, 32767]. When ``None``,
        :class:`Scene` assigns the object's 1-based position (as stillleben's ``add_object``).
    """

    __slots__ = ("_mesh", "_pose", "_instance_index")

    _mesh: Optional[Mesh]
    _pose: NDArray[np.float64]
    _instance_index: Optional[int]

    def __init__(self, mesh: Optional[Mesh], pose: Optional[ArrayLike] = None,
                 instance_index: Optional[int] = None) -> None:
        if mesh is not None and not isinstance(mesh, Mesh):
            raise TypeError(f"mesh must be a geomops.pose.Mesh or None, got {type(mesh).__name__}")
        self._mesh = mesh
        self._pose = np.eye(4) if pose is None else _pose_array(pose, "pose")
        self._instance_index = None if instance_index is None else \
            _check_index(instance_index, "instance_index", minimum=1)

    mesh = property(lambda self: self._mesh, doc="The Mesh, or None.")

    @property
    def pose(self) -> NDArray[np.float64]:
        """(4, 4) float64 object-to-world transform (a copy; assign to change it)."""
        return self._pose.copy()

    @pose.setter
    def pose(self, value: ArrayLike) -> None:
        self._pose = _pose_array(value, "pose")

    @property
    def instance_index(self) -> Optional[int]:
        """1-based instance id (``None`` until the object is added to a Scene, if not given)."""
        return self._instance_index

    @instance_index.setter
    def instance_index(self, value: int) -> None:
        self._instance_index = _check_index(value, "instance_index", minimum=1)

    def __repr__(self) -> str:
        return f"SceneObject({self._mesh!r}, instance_index={self._instance_index})"


class Scene:
    """A camera, a camera pose, a list of objects, a background colour and a light.

    Parameters
    ----------
    camera : Camera
    objects : iterable of SceneObject, optional
        Added in order with :meth:`add_object` (objects without an instance index get their
        1-based position). Several objects may share an instance index.
    camera_pose : array_like, (4, 4), optional
        Camera-to-world transform; identity by default (world = camera, as stillleben's diff
        module assumes).
    background : (3,) floats in [0, 1]
        RGB of pixels no object covers.
    light : Light, optional
        The built-in shader's light (default ``Light()``).
    """

    def __init__(self, camera: Camera, objects: Union[SceneObject, Iterable[SceneObject]] = (),
                 camera_pose: Optional[ArrayLike] = None, background: ArrayLike = (0.0, 0.0, 0.0),
                 light: Optional[Light] = None) -> None:
        if not isinstance(camera, Camera):
            raise TypeError(f"camera must be a geomops.pose.Camera, got {type(camera).__name__}")
        self._camera = camera
        self._camera_pose = np.eye(4) if camera_pose is None else _pose_array(camera_pose, "camera_pose")
        self.background = background
        if light is None:
            light = Light()
        if not isinstance(light, Light):
            raise TypeError(f"light must be a geomops.pose.Light or None, got {type(light).__name__}")
        self._light = light
        self._objects: list[SceneObject] = []
        if isinstance(objects, SceneObject):
            objects = [objects]
        for obj in objects:
            self.add_object(obj)

    camera = property(lambda self: self._camera, doc="The Camera.")

    @property
    def light(self) -> Light:
        """The Light of the built-in shader."""
        return self._light

    @light.setter
    def light(self, value: Light) -> None:
        if not isinstance(value, Light):
            raise TypeError(f"light must be a geomops.pose.Light, got {type(value).__name__}")
        self._light = value

    @property
    def objects(self) -> list[SceneObject]:
        """The objects in insertion order (a new list; use :meth:`add_object` to add)."""
        return list(self._objects)

    @property
    def camera_pose(self) -> NDArray[np.float64]:
        """(4, 4) float64 camera-to-world transform (a copy)."""
        return self._camera_pose.copy()

    @camera_pose.setter
    def camera_pose(self, value: ArrayLike) -> None:
        self._camera_pose = _pose_array(value, "camera_pose")

    @property
    def background(self) -> NDArray[np.float64]:
        """(3,) float64 background RGB in [0, 1]."""
        return self._background.copy()

    @background.setter
    def background(self, value: ArrayLike) -> None:
        self._background = _vec3(value, "background", unit_range=True)

    def add_object(self, obj: SceneObject) -> SceneObject:
        """Append a SceneObject; give it its 1-based position as instance index if it has none."""
        if not isinstance(obj, SceneObject):
            raise TypeError(f"objects must be geomops.pose.SceneObject instances, got {type(obj).__name__}")
        if obj.instance_index is None:
            pos = len(self._objects) + 1
            if pos > MAX_INDEX:
                raise ValueError(f"instance_index: too many objects to number automatically (> {MAX_INDEX})")
            obj.instance_index = pos
        self._objects.append(obj)
        return obj

    def projection_matrix(self) -> NDArray[np.float32]:
        """The camera's (4, 4) float32 projection matrix (see :meth:`Camera.projection_matrix`)."""
        return self._camera.projection_matrix()

    def instance_indices(self) -> NDArray[np.int64]:
        """(N,) int64 instance index of each object, in ``objects`` order."""
        return np.array([o.instance_index for o in self._objects], dtype=np.int64)

    def object_to_camera(self, obj: Union[SceneObject, SupportsIndex]) -> NDArray[np.float64]:
        """(4, 4) float64 ``inv(camera_pose) @ pose`` of a SceneObject or of ``objects[obj]``:
        the transform :func:`geomops.pose.render` and the exact-mode gradients use, bit for bit.

        Raises ValueError when ``camera_pose`` is not affine or not invertible."""
        if not isinstance(obj, SceneObject):
            obj = self._objects[operator.index(obj)]
        transform: NDArray[np.float64] = _object_to_camera(self._camera_pose, [obj.pose])[0]
        return transform

    def __repr__(self) -> str:
        return f"Scene({self._camera!r}, {len(self._objects)} objects)"
