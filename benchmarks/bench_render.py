"""Benchmark of geomops.pose.render (the OpenMP software rasterizer) against Open3D's Embree ray caster.

Scene: 640x480 YCB intrinsics, 10 objects of 10,000 triangles each (UV spheres of radius 5 cm
with smooth normals and vertex colours) at 0.6-1.0 m, random positions: about 37 % of the
pixels covered, many small triangles.

Peer (issue 18): ``open3d.t.geometry.RaycastingScene`` (Embree, CPU wheel) on the same triangles
(transformed to the camera frame, float32), casting one ray per pixel centre with
``cast_rays(rays, nthreads=N)``; the ray tensor is made once, outside the timing. ``vs o3d`` =
Open3D time / render time with all buffers, target >= 1.5 at 1 and at 2 threads. Calls of both
are interleaved and the ratio uses the minimum over the repeats (the least disturbed call on
shared cores); medians are printed too.

The memory floor is also printed: NumPy allocating and filling the same output buffers
(``floor``), ``/floor`` = render median / floor median.

Run:  PYTHONPATH=pyx /tmp/o3d/bin/python benchmarks/bench_render.py [--repeat 40] [--threads 1 2]
(with an interpreter without Open3D only the geomops side runs).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from geomops.pose import Camera, Mesh, Scene, SceneObject, render

SHAPES = {"rgb": ((4,), np.uint8), "depth": ((), np.float32), "instance_index": ((), np.int16),
          "object_coordinates": ((3,), np.float32), "cam_coordinates": ((4,), np.float32),
          "normals": ((4,), np.float32), "class_index": ((), np.int16), "triangle_id": ((), np.int32),
          "barycentrics": ((3,), np.float32)}
GRADIENT = ("rgb", "depth", "instance_index", "object_coordinates")
TARGET = 1.5


def make_scene(num_objects=10, seed=0):
    cam = Camera(640, 480, 1066.778, 1067.487, 312.9869, 241.3109)
    mesh = Mesh.sphere(0.05, 100, 51)  # 2 * 100 * 50 = 10,000 triangles
    assert mesh.num_faces == 10_000
    rng = np.random.default_rng(seed)
    objs = []
    for _ in range(num_objects):
        T = np.eye(4)
        T[:3, 3] = [rng.uniform(-0.15, 0.15), rng.uniform(-0.1, 0.1), rng.uniform(0.6, 1.0)]
        objs.append(SceneObject(mesh, T))
    return Scene(cam, objs)


def floor_fill(h, w, names):
    out = []
    for n in names:
        tail, dt = SHAPES[n]
        a = np.empty((h, w) + tail, dt)
        a.fill(0)
        out.append(a)
    return out


def open3d_caster(scene):
    """``(cast, coverage)``: a function casting one ray per pixel centre of ``scene`` with Open3D's
    RaycastingScene on N threads, and the fraction of rays that hit; None without Open3D."""
    try:
        import open3d as o3d
    except ImportError as exc:
        print(f"# Open3D peer unavailable ({exc}); run with /tmp/o3d/bin/python (benchmarks/README.md)")
        return None
    rc = o3d.t.geometry.RaycastingScene()
    for k, obj in enumerate(scene.objects):
        T = scene.object_to_camera(k)
        v = np.asarray(obj.mesh.vertices, np.float64) @ T[:3, :3].T + T[:3, 3]
        rc.add_triangles(o3d.core.Tensor(v.astype(np.float32)),
                         o3d.core.Tensor(np.asarray(obj.mesh.faces, np.uint32)))
    cam = scene.camera
    u, v = np.meshgrid(np.arange(cam.width) + 0.5, np.arange(cam.height) + 0.5)
    rays = np.zeros((cam.height, cam.width, 6), np.float32)
    rays[..., 3] = (u - cam.cx) / cam.fx
    rays[..., 4] = (v - cam.cy) / cam.fy
    rays[..., 5] = 1.0
    rays = o3d.core.Tensor(rays)
    hit = np.isfinite(rc.cast_rays(rays, nthreads=1)["t_hit"].numpy()).mean()
    return (lambda nt: rc.cast_rays(rays, nthreads=nt)), hit


def interleaved(fns, repeat):
    """{name: (median ms, min ms)} of the functions in ``fns``, called in turn ``repeat`` times
    after one untimed warm-up each (which also fills the rasterizer's caches)."""
    for fn in fns.values():
        fn()
    ts = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            ts[name].append(time.perf_counter() - t0)
    return {name: (1e3 * float(np.median(t)), 1e3 * float(np.min(t))) for name, t in ts.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=40)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    scene = make_scene()
    h, w = scene.camera.height, scene.camera.width
    cov = (render(scene).instance_index != 0).mean()
    peer = open3d_caster(scene)
    print(f"# {platform.node()} | {platform.processor() or platform.machine()} | {os.cpu_count()} cores | "
          f"load {os.getloadavg()[0]:.2f} | {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"# 640x480, 10 objects x 10k triangles, coverage {100 * cov:.1f} %"
          + (f" (Open3D rays hitting: {100 * peer[1]:.1f} %)" if peer else "") + f", repeat {args.repeat}")
    print(f"{'buffers':9s} {'threads':>7s} {'median ms':>10s} {'min ms':>8s} {'floor ms':>9s} {'/floor':>6s} "
          f"{'o3d med':>8s} {'o3d min':>8s} {'vs o3d':>7s}")
    verdict = []
    for buffers, names in (("all", tuple(SHAPES)), ("gradient", GRADIENT)):
        for nt in args.threads:
            fns = {"render": lambda: render(scene, num_threads=nt, buffers=buffers),
                   "floor": lambda: floor_fill(h, w, names)}
            if peer and buffers == "all":
                fns["o3d"] = lambda: peer[0](nt)
            t = interleaved(fns, args.repeat)
            med, mn = t["render"]
            line = (f"{buffers:9s} {nt:7d} {med:10.2f} {mn:8.2f} {t['floor'][0]:9.2f} "
                    f"{med / t['floor'][0]:6.2f}")
            if "o3d" in t:
                ratio = t["o3d"][1] / mn
                line += f" {t['o3d'][0]:8.2f} {t['o3d'][1]:8.2f} {ratio:6.2f}x"
                verdict.append(f"{nt} thread{'s' if nt > 1 else ''}: {ratio:.2f}x "
                               f"{'yes' if ratio >= TARGET else 'NO'}")
            print(line)
    if verdict:
        print(f"# render (all buffers) vs Open3D RaycastingScene, target >= {TARGET}x: " + "; ".join(verdict))


if __name__ == "__main__":
    main()
