"""Benchmark of the pose-gradient pipeline: render, image gradients, pose back-propagation.

640x480 (default), 5 objects (spheres and boxes), YCB-Video intrinsics. Each stage is timed
separately (median of --repeat runs after one warm-up), for each thread count in --threads.
Peers timed in the same run, on the same buffers:

* ``numpy-reference``: tests/reference_pose.py, the NumPy port structured like stillleben
  (one whole-image dilation and Jacobian pass per object, vectorised over pixels);
* ``numpy-optimised``: the same math written for NumPy speed (the image terms once per image,
  per-object work cropped to the object's bounding box, closed-form 6-vector);
* ``torch``: stillleben's algorithm on CPU torch (conv2d + batched matmuls per object), only
  when torch is importable (it is not a geomops dependency; skipped otherwise).

Every peer's result is checked against geomops (max relative difference printed).

    PYTHONPATH=pyx python benchmarks/bench_pose.py [--width 640 --height 480 --threads 1 2]

``--device cuda`` (or ``cuda:N``) benchmarks the GPU instead: 1920x1080 (default there) with 20
spheres of about 10k triangles each (``Mesh.sphere(r, 100, 50)``: 9800 triangles), every buffer
and ``grad`` on the GPU, results staying there. Each stage is one public call, which waits for
its stream before returning (the device-side synchronisation per stage), timed by wall clock:
``render`` (all buffers, and the four gradient buffers only), ``compute_image_space_gradients``,
``backpropagate_gradient_to_poses`` (exact), and the two gradient calls together. The CPU
backend runs the same scene in the same process (all threads, fewer repeats) for the ratio; the
GPU results are checked against it (ids bit for bit, gradients to 1e-5). Targets (issue 17, on
an H100/H200): render < 2 ms, image gradients + back-propagation < 0.5 ms; printed as met / not
met. Without a usable GPU it stops at once and says why.

    PYTHONPATH=pyx python benchmarks/bench_pose.py --device cuda [--objects 20 --repeat 50]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

import reference_pose as ref  # noqa: E402
from geomops.pose import (Camera, Mesh, Scene, SceneObject, backpropagate_gradient_to_poses,  # noqa: E402
                          compute_image_space_gradients, render)


def make_scene(width, height, n_objects, seed=0):
    s = width / 640.0
    cam = Camera(width, height, 1066.778 * s, 1067.487 * s, 312.9869 * s, 241.3109 * s)
    rng = np.random.default_rng(seed)
    objs = []
    for k in range(n_objects):
        mesh = Mesh.sphere(0.08, 48, 24) if k % 2 == 0 else Mesh.box((0.12, 0.1, 0.08))
        x = -0.2 + 0.4 * k / max(n_objects - 1, 1)
        T = ref.pose_matrix(*rng.uniform(-1, 1, 3), t=(x, rng.uniform(-0.08, 0.08), 0.9 + 0.05 * k),
                            dtype=np.float64)
        objs.append(SceneObject(mesh, T))
    return Scene(cam, objs, background=(0.2, 0.3, 0.4))


def timeit(fn, repeat):
    """Median and minimum wall time in ms (on a shared machine the minimum is the uncontended cost)."""
    fn()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return T(float(np.median(ts)) * 1e3, float(np.min(ts)) * 1e3)


class T(tuple):
    """(median, min) in ms; prints as 'median/min'."""

    def __new__(cls, med, lo):
        return super().__new__(cls, (med, lo))

    med = property(lambda self: self[0])
    lo = property(lambda self: self[1])

    def __add__(self, other):
        return T(self.med + other.med, self.lo + other.lo)

    def fmt(self, width):
        return f"{self.med:.2f}/{self.lo:.2f}".rjust(width)


# ----------------------------------------------------------------------------------------------
# numpy-optimised peer: same math (exact mode, CUDA helper semantics), written for NumPy speed

def numpy_optimised(P, poses, ids, rgb, inst, depth, coords, g):
    gx, gy, valid = ref.image_gradients(rgb, inst, depth, "replicate", "cuda")
    sx = np.einsum("chw,chw->hw", g, gx, dtype=np.float64)
    sy = np.einsum("chw,chw->hw", g, gy, dtype=np.float64)
    h, w = inst.shape
    out = np.zeros((len(ids), 6))
    P = P.astype(np.float64)
    for k, (pose, oid) in enumerate(zip(poses, ids)):
        rows, cols = np.nonzero(inst == oid)
        if rows.size == 0:
            continue
        r0, r1 = max(rows.min() - 1, 0), min(rows.max() + 2, h)
        c0, c1 = max(cols.min() - 1, 0), min(cols.max() + 2, w)
        # the crop keeps one more pixel of context so the clamped 3x3 stencils see the same values
        R0, R1 = max(r0 - 1, 0), min(r1 + 1, h)
        C0, C1 = max(c0 - 1, 0), min(c1 + 1, w)
        mask, X = ref.dilate_object_mask(inst[R0:R1, C0:C1] == oid, valid[R0:R1, C0:C1], coords[R0:R1, C0:C1])
        inner = np.zeros_like(mask)
        inner[r0 - R0:r1 - R0, c0 - C0:c1 - C0] = True
        sel = mask & inner
        Xs = X[sel].astype(np.float64)
        a = sx[R0:R1, C0:C1][sel]
        b = sy[R0:R1, C0:C1][sel]
        T = np.asarray(pose, dtype=np.float64)
        R, t = T[:3, :3], T[:3, 3]
        y = Xs @ R.T + t
        c0_, c1_, d = (y @ P[0, :3] + P[0, 3], y @ P[1, :3] + P[1, 3], y @ P[3, :3] + P[3, 3])
        inv = 1.0 / d
        v = (a[:, None] * (P[0, :3] * inv[:, None] - np.outer(c0_ * inv * inv, P[3, :3]))
             + b[:, None] * (P[1, :3] * inv[:, None] - np.outer(c1_ * inv * inv, P[3, :3])))
        u = v @ R
        out[k, :3] = np.cross(Xs, u).sum(axis=0)
        out[k, 3:] = u.sum(axis=0)
    return out


# ----------------------------------------------------------------------------------------------
# torch peer: stillleben's algorithm (spec sections 3-5) on CPU torch, if torch is importable

def torch_peer(P, poses, ids, rgb, inst, depth, coords, g):
    import torch
    import torch.nn.functional as F
    img = torch.from_numpy(np.ascontiguousarray(rgb[..., :3])).float().permute(2, 0, 1) / 255.0
    _, h, w = img.shape
    wx = float(np.float32(1) / np.float32(4.0 / w))
    wy = float(np.float32(1) / np.float32(4.0 / h))
    kx = torch.tensor([wx, 0.0, -wx]).view(1, 1, 1, 3)
    ky = torch.tensor([wy, 0.0, -wy]).view(1, 1, 3, 1)
    gx = F.conv2d(img[:, None], kx, padding=(0, 1))[:, 0]
    gy = F.conv2d(img[:, None], ky, padding=(1, 0))[:, 0]
    valid_np = ref.valid_mask(inst, depth, "cuda")  # stillleben's helper is compiled C++/CUDA
    valid = torch.from_numpy(valid_np)
    gx[:, ~valid] = 0
    gy[:, ~valid] = 0
    G = torch.stack([gx, gy], dim=-1).view(3, -1, 2).permute(1, 0, 2)  # (HW, 3, 2)
    Pt = torch.from_numpy(P.astype(np.float32))
    gt = torch.from_numpy(np.ascontiguousarray(g, dtype=np.float32)).view(3, -1).t()  # (HW, 3)
    gens = torch.tensor([[[0, 0, 0], [0, 0, -1], [0, 1, 0]], [[0, 0, 1], [0, 0, 0], [-1, 0, 0]],
                         [[0, -1, 0], [1, 0, 0], [0, 0, 0]]], dtype=torch.float32)
    out = torch.zeros(len(ids), 6)
    for k, (pose, oid) in enumerate(zip(poses, ids)):
        mask_np, X_np = ref.dilate_object_mask(inst == oid, valid_np, coords, "cuda")
        sel = torch.from_numpy(np.flatnonzero(mask_np.ravel()))
        if sel.numel() == 0:
            continue
        T = torch.from_numpy(np.asarray(pose, dtype=np.float32))
        X = torch.from_numpy(np.ascontiguousarray(X_np.reshape(-1, 3)))[sel]
        Xh = torch.cat([X, torch.ones(X.shape[0], 1)], dim=1)
        y = Xh @ T.t()
        clip = y @ Pt.t()
        d = clip[:, 3]
        J = (Pt[None, :2, :3] / d[:, None, None]
             - Pt[3, :3][None, None, :] * (clip[:, :2] / d[:, None] ** 2)[:, :, None])  # (M, 2, 3)
        rot = torch.einsum("eij,mj->mie", gens, X)  # (M, 3, 3): G_e X as columns
        dyd = torch.cat([T[:3, :3][None] @ rot, T[:3, :3][None].expand(X.shape[0], 3, 3)], dim=2)
        A = torch.bmm(torch.bmm(G[sel], J), dyd)  # (M, 3, 6)
        out[k] = torch.bmm(gt[sel][:, None, :], A).sum(dim=(0, 1))
    return out.numpy().astype(np.float64)


# ----------------------------------------------------------------------------------------------

def machine_info():
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}, " \
           f"Python {platform.python_version()}, NumPy {np.__version__}"


# ----------------------------------------------------------------------------------------------
# --device cuda

GPU_TARGETS_MS = {"render": 2.0, "image gradients + backprop": 0.5}


def make_gpu_scene(width, height, n_objects, seed=0):
    """``n_objects`` vertex-coloured spheres of 9800 triangles in a grid filling the view."""
    s = width / 640.0
    cam = Camera(width, height, 1066.778 * s, 1067.487 * s, 312.9869 * s, 241.3109 * s)
    rng = np.random.default_rng(seed)
    cols = int(np.ceil(np.sqrt(n_objects * width / height)))
    rows = int(np.ceil(n_objects / cols))
    objs = []
    for k in range(n_objects):
        base = Mesh.sphere(0.05, 100, 50)
        colors = rng.random((base.num_vertices, 3)).astype(np.float32)
        mesh = Mesh(base.vertices, base.faces, vertex_colors=colors)
        r, c = divmod(k, cols)
        z = 1.0 + 0.02 * k
        x = ((c + 0.5) / cols - 0.5) * 0.55 * z
        y = ((r + 0.5) / rows - 0.5) * 0.3 * z
        objs.append(SceneObject(mesh, ref.pose_matrix(*rng.uniform(-1, 1, 3), t=(x, y, z), dtype=np.float64)))
    return Scene(cam, objs, background=(0.2, 0.3, 0.4))


def gpu_or_exit(device):
    """Stop with a clear message when geomops cannot use a GPU here."""
    import geomops
    try:
        geomops.to_device(np.zeros(1, np.float32), device)
    except (RuntimeError, ValueError) as exc:
        sys.exit(f"bench_pose: --device {device}: {exc}")


def main_gpu(args):
    import geomops
    from geomops import _backend
    gpu_or_exit(args.device)
    width, height = args.width or 1920, args.height or 1080
    n = args.objects or 20
    print(f"date     {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(f"machine  {machine_info()}")
    be = _backend.resolve(args.device)
    info = be.module.device_info(be.device_id)
    print(f"device   {args.device}: {info['name']}, compute capability {info['compute_capability']}")
    scene = make_gpu_scene(width, height, n)
    tris = sum(o.mesh.num_faces for o in scene.objects)
    buf = render(scene, device=args.device)
    host = buf.get()
    counts = np.bincount(host.instance_index.ravel(), minlength=n + 1)
    print(f"scene    {width}x{height}, {n} spheres, {tris} triangles, visible pixels per object "
          f"{counts[1:].tolist()}, background {counts[0]}")
    g_host = np.random.default_rng(1).standard_normal((3, height, width)).astype(np.float32)
    g = geomops.to_device(g_host, args.device)

    def both():
        compute_image_space_gradients(scene, buf)
        backpropagate_gradient_to_poses(scene, buf, g)

    gpu = {"render": timeit(lambda: render(scene, device=args.device), args.repeat),
           "render (gradient buffers)": timeit(lambda: render(scene, buffers="gradient", device=args.device),
                                               args.repeat),
           "image gradients": timeit(lambda: compute_image_space_gradients(scene, buf), args.repeat),
           "backprop (exact)": timeit(lambda: backpropagate_gradient_to_poses(scene, buf, g), args.repeat),
           "image gradients + backprop": timeit(both, args.repeat)}

    nt = os.cpu_count()

    def both_cpu():
        compute_image_space_gradients(scene, host, num_threads=nt)
        backpropagate_gradient_to_poses(scene, host, g_host, num_threads=nt)

    cpu = {"render": timeit(lambda: render(scene, num_threads=nt), args.cpu_repeat),
           "render (gradient buffers)": timeit(lambda: render(scene, buffers="gradient", num_threads=nt),
                                               args.cpu_repeat),
           "image gradients": timeit(lambda: compute_image_space_gradients(scene, host, num_threads=nt),
                                     args.cpu_repeat),
           "backprop (exact)": timeit(lambda: backpropagate_gradient_to_poses(scene, host, g_host, num_threads=nt),
                                      args.cpu_repeat),
           "image gradients + backprop": timeit(both_cpu, args.cpu_repeat)}

    want = render(scene, num_threads=nt)
    ids_equal = all(np.array_equal(getattr(host, k), getattr(want, k))
                    for k in ("instance_index", "class_index", "triangle_id", "rgb"))
    ours = backpropagate_gradient_to_poses(scene, buf, g).get()
    theirs = backpropagate_gradient_to_poses(scene, want, g_host, num_threads=nt)
    rel = float(np.abs(ours - theirs).max() / np.abs(theirs).max())
    print(f"check    ids and colours bitwise equal to the CPU's: {ids_equal}; gradients max rel diff {rel:.1e}")
    print()
    print(f"ms, median/min of {args.repeat} (GPU) and {args.cpu_repeat} (CPU, {nt} threads) runs")
    print(f"{'stage':30s}{'GPU':>16s}{'CPU':>18s}{'CPU/GPU (min)':>15s}   target")
    for stage, t in gpu.items():
        target = GPU_TARGETS_MS.get(stage)
        verdict = "" if target is None else f"< {target} ms: {'met' if t.lo < target else 'NOT met'}" \
                                            f" (median {'met' if t.med < target else 'NOT met'})"
        print(f"{stage:30s}{t.fmt(16)}{cpu[stage].fmt(18)}{cpu[stage].lo / t.lo:14.0f}x   {verdict}")
    ok = ids_equal and rel < 1e-5
    if not ok:
        sys.exit("bench_pose: the GPU results differ from the CPU's")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda / cuda:N (the GPU benchmark)")
    ap.add_argument("--width", type=int, default=None, help="default 640 (CPU), 1920 (GPU)")
    ap.add_argument("--height", type=int, default=None, help="default 480 (CPU), 1080 (GPU)")
    ap.add_argument("--objects", type=int, default=None, help="default 5 (CPU), 20 (GPU)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--peer-repeat", type=int, default=5)
    ap.add_argument("--cpu-repeat", type=int, default=3, help="CPU runs per stage with --device cuda")
    args = ap.parse_args()
    if args.device != "cpu":
        return main_gpu(args)
    args.width, args.height, args.objects = args.width or 640, args.height or 480, args.objects or 5

    print(f"date     {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(f"machine  {machine_info()}")
    print(f"load     {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1/5/15 min) before")
    scene = make_scene(args.width, args.height, args.objects)
    buf = render(scene)
    h, w = buf.instance_index.shape
    counts = np.bincount(buf.instance_index.ravel(), minlength=args.objects + 1)
    print(f"scene    {w}x{h}, {args.objects} objects, visible pixels per object {counts[1:].tolist()}, "
          f"background {counts[0]}")
    rng = np.random.default_rng(1)
    g = rng.standard_normal((3, h, w)).astype(np.float32)
    P = scene.camera.projection_matrix()
    poses = [o.pose for o in scene.objects]
    ids = [o.instance_index for o in scene.objects]

    rows = []
    for nt in args.threads:
        t_render = timeit(lambda: render(scene, num_threads=nt), args.repeat)
        t_img = timeit(lambda: compute_image_space_gradients(scene, buf, num_threads=nt), args.repeat)
        t_bp = timeit(lambda: backpropagate_gradient_to_poses(scene, buf, g, num_threads=nt), args.repeat)
        t_bpc = timeit(lambda: backpropagate_gradient_to_poses(scene, buf, g, mode="compat", num_threads=nt),
                       args.repeat)
        rows.append((nt, t_render, t_img, t_bp, t_bpc))

    ours = backpropagate_gradient_to_poses(scene, buf, g).astype(np.float64)
    ours_compat = backpropagate_gradient_to_poses(scene, buf, g, mode="compat").astype(np.float64)

    def check(res, want):
        return float(np.abs(res - want).max() / np.abs(want).max())

    peers = []
    t = timeit(lambda: ref.image_gradients(buf.rgb, buf.instance_index, buf.depth), args.peer_repeat)
    res = ref.backprop(P, poses, ids, buf.rgb, buf.instance_index, buf.depth, buf.object_coordinates, g, "exact")
    t_full = timeit(lambda: ref.backprop(P, poses, ids, buf.rgb, buf.instance_index, buf.depth,
                                         buf.object_coordinates, g, "exact"), args.peer_repeat)
    peers.append(("numpy-reference", t, t_full, check(res, ours)))
    res = numpy_optimised(P, poses, ids, buf.rgb, buf.instance_index, buf.depth, buf.object_coordinates, g)
    t_full = timeit(lambda: numpy_optimised(P, poses, ids, buf.rgb, buf.instance_index, buf.depth,
                                            buf.object_coordinates, g), args.peer_repeat)
    peers.append(("numpy-optimised", None, t_full, check(res, ours)))
    try:
        import torch  # noqa: F401
        torch.set_num_threads(max(args.threads))
        res = torch_peer(P, poses, ids, buf.rgb, buf.instance_index, buf.depth, buf.object_coordinates, g)
        t_full = timeit(lambda: torch_peer(P, poses, ids, buf.rgb, buf.instance_index, buf.depth,
                                           buf.object_coordinates, g), args.peer_repeat)
        peers.append((f"torch {torch.__version__} ({max(args.threads)} threads)", None, t_full,
                      check(res, ours)))
    except ImportError:
        print("torch    not importable: the stillleben-on-torch peer is skipped")

    print()
    print("geomops, ms median/min   threads       render   image-grad  backprop(exact) backprop(compat)  img+backprop")
    for nt, tr, ti, tb, tbc in rows:
        print(f"{'':25s}{nt:7d} {tr.fmt(12)} {ti.fmt(12)} {tb.fmt(16)} {tbc.fmt(16)} {(ti + tb).fmt(13)}")
    print()
    best_img = min(r[2].lo for r in rows)
    best_bp = min(r[3].lo for r in rows)
    best_full = min(r[2].lo + r[3].lo for r in rows)
    print("peer, ms median/min         image-grad   full gradient   peer min / geomops best min:"
          " backprop, img+backprop   max rel diff")
    for name, ti, tf, diff in peers:
        img_txt = ti.fmt(12) if ti is not None else f"{'-':>12s}"
        ratio_img = f", image-grad {ti.lo / best_img:.0f}x" if ti is not None else ""
        print(f"{name:26s}{img_txt}  {tf.fmt(14)}   {tf.lo / best_bp:7.0f}x, {tf.lo / best_full:5.0f}x{ratio_img}"
              f"   {diff:.1e}")
    print()
    print(f"compat vs exact on this scene (translation): {np.round(ours_compat[:, 3:] / ours[:, 3:], 2).tolist()}")
    print(f"load     {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1/5/15 min) after")


if __name__ == "__main__":
    main()
