"""A/B timing of two builds of geomops (before/after a change), interleaved in one run.

Each round runs a worker process per build (order A B, then B A, ...) that times the public
calls below on the reference workloads and prints its timings; the report gives, per workload,
the median over rounds of each build's best time and the ratio B/A with its range over the
rounds. Interleaving matters here: on shared vCPUs the absolute speed drifts by up to 2x within
minutes, while the ratio of two builds timed seconds apart stays meaningful.

Workloads (``--quick`` divides the point counts by 10, keeping about 28 neighbors per point):

* ``cconv_fwd`` / ``cconv_bwd`` / ``cconv_fwd_f64``: 100k/100k points, 32 -> 64 channels, 4x4x4
  filter (``bench_cconv.py``'s reference workload), forward, ``continuous_conv_backward``, float64;
* ``frs`` / ``radius`` / ``knn16``: the three searches on 100k points (grid or tree built inside);
* ``render``: 640x480, 10 spheres of 10k triangles, all buffers (``bench_render.py``'s scene);
* ``posegrad``: image-space gradients + back-propagation at 640x480 with 5 objects.

Run from the repository root, e.g. a baseline worktree built in place against this checkout:

    git worktree add /tmp/base <commit> && (cd /tmp/base && python setup.py build_ext --inplace)
    python benchmarks/bench_ab.py --a /tmp/base/pyx --b pyx --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

WORKLOADS = ("cconv_fwd", "cconv_bwd", "cconv_fwd_f64", "frs", "radius", "knn16", "render", "posegrad")


def _best(fn, repeat):
    fn()  # warm-up (caches, page faults)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _cconv_inputs(np, geomops, n, dtype):
    rng = np.random.default_rng(0)
    pts = rng.random((n, 3)).astype(dtype)
    radius = 0.0415 * (100_000 / n) ** (1 / 3)
    nb = geomops.fixed_radius_search(pts, pts, radius)
    feats = rng.standard_normal((n, 32)).astype(dtype)
    filters = (0.1 * rng.standard_normal((4, 4, 4, 32, 64))).astype(dtype)
    args = (filters, pts, dtype(2 * radius), np.zeros(3, dtype), pts, feats, None,
            nb.neighbors_index, None, nb.neighbors_row_splits)
    g = rng.standard_normal((n, 64)).astype(dtype)
    return args, g, pts, radius


def _pose_scene(np, pose, num_objects, sphere):
    cam = pose.Camera(640, 480, 1066.778, 1067.487, 312.9869, 241.3109)
    mesh = pose.Mesh.sphere(0.05, 100, 51) if sphere else pose.Mesh.box(0.08)
    rng = np.random.default_rng(0)
    objs = []
    for _ in range(num_objects):
        T = np.eye(4)
        T[:3, 3] = [rng.uniform(-0.15, 0.15), rng.uniform(-0.1, 0.1), rng.uniform(0.6, 1.0)]
        objs.append(pose.SceneObject(mesh, T))
    return pose.Scene(cam, objs)


def worker(args):
    import numpy as np

    import geomops
    from geomops import pose

    geomops.set_num_threads(args.threads)
    n = 10_000 if args.quick else 100_000
    res = {"geomops": os.path.dirname(geomops.__file__)}
    want = set(args.only or WORKLOADS)
    cargs, g, pts, radius = _cconv_inputs(np, geomops, n, np.float32)
    if "cconv_fwd" in want:
        res["cconv_fwd"] = _best(lambda: geomops.continuous_conv(*cargs), args.repeat)
    if "cconv_bwd" in want:
        res["cconv_bwd"] = _best(lambda: geomops.continuous_conv_backward(*cargs, g), args.repeat)
    if "frs" in want:
        res["frs"] = _best(lambda: geomops.fixed_radius_search(pts, pts, radius), args.repeat)
    if "radius" in want:
        radii = np.full(n, radius, np.float32)
        res["radius"] = _best(lambda: geomops.radius_search(pts, pts, radii), args.repeat)
    if "knn16" in want:
        res["knn16"] = _best(lambda: geomops.knn_search(pts, pts, 16), args.repeat)
    if "cconv_fwd_f64" in want:
        cargs64, _, _, _ = _cconv_inputs(np, geomops, n, np.float64)
        res["cconv_fwd_f64"] = _best(lambda: geomops.continuous_conv(*cargs64), args.repeat)
    if "render" in want:
        scene = _pose_scene(np, pose, 10, sphere=True)
        res["render"] = _best(lambda: pose.render(scene), 5 * args.repeat)
    if "posegrad" in want:
        scene = _pose_scene(np, pose, 5, sphere=False)
        rr = pose.render(scene)
        grad = np.random.default_rng(1).standard_normal((3, 480, 640)).astype(np.float32)

        def step():
            pose.compute_image_space_gradients(scene, rr)
            pose.backpropagate_gradient_to_poses(scene, rr, grad)

        res["posegrad"] = _best(step, 5 * args.repeat)
    print(json.dumps(res))


def run_worker(pythonpath, args):
    env = dict(os.environ, PYTHONPATH=os.path.abspath(pythonpath))
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--threads", str(args.threads),
           "--repeat", str(args.repeat)] + (["--quick"] if args.quick else [])
    if args.only:
        cmd += ["--only", *args.only]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"worker for {pythonpath} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def isa_flags():
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return "?"
    return "AVX-512" if "avx512f" in flags else ("AVX2" if "avx2" in flags else "no AVX2")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", help="PYTHONPATH of build A (the baseline)")
    ap.add_argument("--b", help="PYTHONPATH of build B (the change)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3, help="timed calls per workload per worker (best kept)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", nargs="+", choices=WORKLOADS)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    if not args.a or not args.b:
        ap.error("--a and --b are required")
    runs = {"A": [], "B": []}
    for r in range(args.rounds):
        for tag in (("A", "B") if r % 2 == 0 else ("B", "A")):
            runs[tag].append(run_worker(args.a if tag == "A" else args.b, args))
    print(f"# {cpu_model()} ({isa_flags()}), {os.cpu_count()} cores, {args.threads} threads, "
          f"{time.strftime('%Y-%m-%d %H:%M')}, {args.rounds} rounds, best of {args.repeat}")
    print(f"# A = {runs['A'][0]['geomops']}\n# B = {runs['B'][0]['geomops']}")
    print(f"{'workload':14s} {'A ms':>9s} {'B ms':>9s} {'B/A':>6s} {'B/A range':>13s}")
    for w in args.only or WORKLOADS:
        a = [x[w] for x in runs["A"]]
        b = [x[w] for x in runs["B"]]
        ratios = [y / x for x, y in zip(a, b)]
        print(f"{w:14s} {1e3 * statistics.median(a):9.2f} {1e3 * statistics.median(b):9.2f} "
              f"{statistics.median(ratios):6.3f} {min(ratios):6.3f}-{max(ratios):.3f}")


if __name__ == "__main__":
    main()
