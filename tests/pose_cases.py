"""Scenes that exercise every path of the rasterizer (clipping, camera poses, objects behind the
camera or beyond far, ties, many objects, odd image sizes, empty scenes), and the argument
tuples of the raster / posegrad bindings built from them, for comparing backends kernel by
kernel (tests/test_cuda_pose_*.py)."""

from __future__ import annotations

import math

import numpy as np

from geomops.pose import Camera, Light, Mesh, Scene, SceneObject
from geomops.pose.diff import _object_ids, _projection, _slot_tables, _transforms
from geomops.pose.render import _raster_inputs

RENDER_BUFFERS = ("rgb", "depth", "instance_index", "object_coordinates", "cam_coordinates", "normals",
                  "class_index", "triangle_id", "barycentrics")
INT_BUFFERS = ("rgb", "instance_index", "class_index", "triangle_id")


def rotation(ax, ay, az):
    cx, sx, cy, sy, cz, sz = math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), math.cos(az), math.sin(az)
    Rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    Ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    Rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


def pose(angles=(0.0, 0.0, 0.0), t=(0.0, 0.0, 1.0)):
    T = np.eye(4)
    T[:3, :3] = rotation(*angles)
    T[:3, 3] = t
    return T


def coloured_sphere(radius, segments, rings, rng, with_normals=True):
    s = Mesh.sphere(radius, segments, rings)
    colors = rng.random((s.num_vertices, 3)).astype(np.float32)
    normals = s.vertices / np.linalg.norm(s.vertices, axis=1, keepdims=True) if with_normals else None
    return Mesh(s.vertices, s.faces, vertex_colors=colors, normals=normals, class_index=3)


def scene(name, width=64, height=48, seed=0):
    """A named scene (see SCENES)."""
    rng = np.random.default_rng(seed)
    cam = Camera(width, height, fx=0.9 * width, fy=0.95 * width, cx=0.5 * width + 0.3, cy=0.5 * height - 0.2)
    light = Light(direction=(0.3, -0.5, -0.8), color=(0.9, 0.8, 0.7), ambient=0.2)
    box = Mesh.box(0.3, class_index=2)
    objs = []
    camera_pose = None
    if name in ("basic", "camera_pose", "odd"):
        objs = [SceneObject(box, pose((0.3, 0.5, 0.1), (-0.1, 0.05, 1.2))),
                SceneObject(coloured_sphere(0.2, 10, 6, rng), pose((0.1, -0.4, 0.2), (0.15, -0.05, 1.0))),
                SceneObject(Mesh.sphere(0.15, 8, 5), pose((0.0, 0.0, 0.0), (0.0, 0.1, 0.9)))]
        if name == "camera_pose":
            camera_pose = pose((0.05, -0.1, 0.2), (0.05, -0.02, -0.1))
    elif name == "near_clip":  # boxes straddling the near plane (0.1) and reaching behind the camera
        objs = [SceneObject(Mesh.box(0.5), pose((0.2, 0.3, 0.0), (0.3, 0.0, 0.12))),
                SceneObject(coloured_sphere(0.3, 12, 8, rng), pose((0.0, 0.0, 0.0), (-0.25, 0.1, 0.05))),
                SceneObject(box, pose((0.1, 0.1, 0.1), (0.0, 0.0, 0.9)))]
    elif name == "behind":  # one object wholly behind the camera, one across the z = 0 plane
        objs = [SceneObject(box, pose((0.0, 0.0, 0.0), (0.0, 0.0, -1.0))),
                SceneObject(Mesh.box(2.0), pose((0.4, 0.2, 0.0), (1.3, 0.0, 0.0))),
                SceneObject(box, pose((0.5, 0.5, 0.5), (0.0, 0.0, 1.5)))]
    elif name == "far":  # beyond and across the far plane (10)
        objs = [SceneObject(Mesh.box(2.0), pose((0.3, 0.2, 0.0), (0.0, 0.0, 10.0))),
                SceneObject(box, pose((0.0, 0.0, 0.0), (0.0, 0.0, 20.0))),
                SceneObject(box, pose((0.1, 0.2, 0.0), (0.2, 0.0, 3.0)))]
    elif name == "guard":  # huge triangles reaching far outside the image (guard-band clipping)
        big = Mesh(np.array([[-1e4, -1e4, 0.0], [1e4, -1e4, 0.0], [0.0, 1e4, 0.0]], np.float32),
                   np.array([[0, 1, 2]], np.int32))
        objs = [SceneObject(big, pose((0.3, 0.0, 0.0), (0.0, 0.0, 2.0))),
                SceneObject(box, pose((0.0, 0.4, 0.0), (0.0, 0.0, 1.0)))]
    elif name == "ties":  # identical objects and coplanar faces: the first object / face wins
        objs = [SceneObject(box, pose((0.2, 0.3, 0.0), (0.0, 0.0, 1.0)), instance_index=5),
                SceneObject(box, pose((0.2, 0.3, 0.0), (0.0, 0.0, 1.0)), instance_index=2),
                SceneObject(Mesh.sphere(0.2, 8, 5), pose((0.0, 0.0, 0.0), (0.05, 0.0, 1.0)), instance_index=9)]
    elif name == "many":  # 100 small objects
        small_box, small_sphere = Mesh.box(0.08), Mesh.sphere(0.06, 6, 4)
        for k in range(100):
            m = small_box if k % 3 else small_sphere
            t = (rng.uniform(-0.5, 0.5), rng.uniform(-0.4, 0.4), rng.uniform(0.8, 2.0))
            objs.append(SceneObject(m, pose(tuple(rng.uniform(-3, 3, 3)), t)))
    elif name == "empty":
        objs = []
    elif name == "no_faces":
        objs = [SceneObject(Mesh(np.zeros((3, 3), np.float32), np.zeros((0, 3), np.int32)), pose()),
                SceneObject(box, pose((0.2, 0.1, 0.0), (0.0, 0.0, 1.0)))]
    else:
        raise ValueError(name)
    return Scene(cam, objs, camera_pose=camera_pose, background=(0.1, 0.2, 0.3), light=light)


SCENES = ("basic", "camera_pose", "near_clip", "behind", "far", "guard", "ties", "many", "empty", "no_faces")


def raster_args(be, sc, buffers=RENDER_BUFFERS):
    """(size, intrinsics, objects, shading, out) of ``raster_render`` for backend ``be``, as
    ``render`` makes them: the mesh arrays in its memory, the outputs allocated there (the
    optional ones named in ``buffers``)."""
    return _raster_inputs(be, sc, tuple(n for n in RENDER_BUFFERS[4:] if n in buffers))


def render_with(be, sc, buffers=RENDER_BUFFERS):
    """Render through ``be.kernels.raster_render``; returns the buffers as NumPy arrays."""
    size, intr, objects, shading, out = raster_args(be, sc, buffers)
    be.kernels.raster_render(size, intr, objects, shading, out, 1)
    return {k: be.to_host(v) for k, v in out.items() if v is not None}


def backprop_inputs(sc, rr, mode="exact", layout="CHW", grad_dtype=np.float32, seed=1):
    """Host arrays of ``posegrad_backprop`` (as the facade prepares them) for render buffers rr."""
    rng = np.random.default_rng(seed)
    rgb, depth, inst, coords = rr["rgb"], rr["depth"], rr["instance_index"], rr["object_coordinates"]
    h, w = inst.shape
    g = rng.standard_normal((3, h, w) if layout == "CHW" else (h, w, 3)).astype(grad_dtype)
    cstride, pstride = (h * w, 1) if layout == "CHW" else (1, 3)
    objs = list(sc.objects)
    ids = _object_ids(objs)
    transforms = _transforms(sc, objs, honour_camera_pose=(mode == "exact"))
    id_to_slot, slot_start, slot_objects = _slot_tables(ids)
    proj = _projection(sc).ravel()
    return dict(rgb=rgb, depth=depth, inst=inst, coords=coords, g=g, cstride=cstride, pstride=pstride,
                transforms=transforms, proj=proj, denom_row=2 if mode == "compat" else 3, id_to_slot=id_to_slot,
                slot_start=slot_start, slot_objects=slot_objects)
