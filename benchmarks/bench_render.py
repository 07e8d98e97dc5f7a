"""Benchmark of geomops.pose.render (the OpenMP software rasterizer).

Scene: 640x480 YCB intrinsics, 10 objects of 10,000 triangles each (UV spheres of radius 5 cm
with smooth normals and vertex colours) at 0.6-1.0 m, random positions: about 37 % of the
pixels covered, many small triangles.

There is no rasterizer peer in plain NumPy worth timing at this size, so the reference timed in
the same run is the memory floor: NumPy allocating and filling the same output buffers
(``floor``). ``ratio`` = render time / floor time.

Run:  PYTHONPATH=pyx python benchmarks/bench_render.py [--repeat 30] [--threads 1 2]
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


def timeit(fn, repeat):
    fn()  # warm-up (also fills the rasterizer's scratch cache)
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(ts)), 1e3 * float(np.min(ts))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    scene = make_scene()
    h, w = scene.camera.height, scene.camera.width
    cov = (render(scene).instance_index != 0).mean()
    print(f"# {platform.node()} | {platform.processor() or platform.machine()} | {os.cpu_count()} cores | "
          f"load {os.getloadavg()[0]:.2f} | {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"# 640x480, 10 objects x 10k triangles, coverage {100 * cov:.1f} %, repeat {args.repeat}")
    print(f"{'buffers':9s} {'threads':>7s} {'median ms':>10s} {'min ms':>8s} {'floor ms':>9s} {'ratio':>6s}")
    for buffers, names in (("all", tuple(SHAPES)), ("gradient", GRADIENT)):
        fl_med, _ = timeit(lambda: floor_fill(h, w, names), args.repeat)
        for nt in args.threads:
            med, mn = timeit(lambda: render(scene, num_threads=nt, buffers=buffers), args.repeat)
            print(f"{buffers:9s} {nt:7d} {med:10.2f} {mn:8.2f} {fl_med:9.2f} {med / fl_med:6.2f}")


if __name__ == "__main__":
    main()
