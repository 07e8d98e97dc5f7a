"""Neighbor-search benchmark: geomops vs Open3D 0.20 (CPU, when importable) and scipy's cKDTree.

Workload (spec continuous_conv.md §7): 100k points and 100k queries uniform in the unit cube
(float32, fixed seed), fixed-radius search with r = 0.0415 (about 28.6 neighbors per query),
kNN with k = 16 and radius search with every radius r, all with 2 threads.
Each timing is the median of --repeat runs (default 7) and includes building the index
(grid / hash table / k-d tree), as the ops do. Peak RSS of a 1M-point search (r scaled to keep
~28.6 neighbors) is measured in a fresh subprocess per library (VmHWM of /proc/self/status:
resource.getrusage's ru_maxrss is inherited across fork, so it would report the parent's peak).

Run: PYTHONPATH=pyx /tmp/o3d/bin/python benchmarks/bench_search.py   (Open3D venv), or with the
system python (no Open3D column then).
"""

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

import geomops

THREADS = 2
RADIUS = 0.0415
K = 16


def load_open3d():
    try:
        import torch
        import open3d.ml.torch as ml3d
    except Exception as exc:  # noqa: BLE001 - any import problem means "no peer"
        return None, f"{type(exc).__name__}: {exc}"
    torch.set_num_threads(THREADS)
    return (torch, ml3d), None


def cloud(n, seed):
    return np.random.default_rng(seed).random((n, 3)).astype(np.float32)


def timed(fns, repeat):
    """Median wall time of each callable; the libraries take turns so that load drifts on a shared
    machine hit all of them alike."""
    for fn in fns.values():
        fn()  # warm-up (page faults, thread pools)
    times = {lib: [] for lib in fns}
    for _ in range(repeat):
        for lib, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[lib].append(time.perf_counter() - t)
    return {lib: statistics.median(ts) for lib, ts in times.items()}


def cases(points, queries, o3d):
    """name -> {library: callable}."""
    radii = np.full(len(queries), RADIUS, np.float32)
    table = geomops.build_spatial_hash_table(points, RADIUS)
    out = {
        "build_spatial_hash_table": {
            "geomops": lambda: geomops.build_spatial_hash_table(points, RADIUS, num_threads=THREADS)},
        "fixed_radius_search (incl. index build)": {
            "geomops": lambda: geomops.fixed_radius_search(points, queries, RADIUS, num_threads=THREADS)},
        "fixed_radius_search, distances + sort": {
            "geomops": lambda: geomops.fixed_radius_search(points, queries, RADIUS, return_distances=True,
                                                           sort=True, num_threads=THREADS)},
        "fixed_radius_search, reused hash table": {
            "geomops": lambda: geomops.fixed_radius_search(points, queries, RADIUS, hash_table=table,
                                                           num_threads=THREADS)},
        "radius_search (per-query radii)": {
            "geomops": lambda: geomops.radius_search(points, queries, radii, num_threads=THREADS)},
        f"knn_search k={K}": {
            "geomops": lambda: geomops.knn_search(points, queries, K, num_threads=THREADS)},
    }
    from scipy.spatial import cKDTree
    out["fixed_radius_search (incl. index build)"]["cKDTree"] = \
        lambda: cKDTree(points).query_ball_point(queries, RADIUS, workers=THREADS)
    out["radius_search (per-query radii)"]["cKDTree"] = \
        lambda: cKDTree(points).query_ball_point(queries, radii, workers=THREADS)
    out[f"knn_search k={K}"]["cKDTree"] = lambda: cKDTree(points).query(queries, K, workers=THREADS)
    if o3d is not None:
        torch, ml3d = o3d
        tp, tq, tr = torch.from_numpy(points), torch.from_numpy(queries), torch.from_numpy(radii)
        ps = torch.LongTensor([0, len(points)])
        qs = torch.LongTensor([0, len(queries)])
        frs, knn, rad = ml3d.layers.FixedRadiusSearch(), ml3d.layers.KNNSearch(), ml3d.layers.RadiusSearch()
        out["build_spatial_hash_table"]["Open3D"] = \
            lambda: ml3d.ops.build_spatial_hash_table(tp, RADIUS, ps, 1 / 64)
        out["fixed_radius_search (incl. index build)"]["Open3D"] = lambda: frs(tp, tq, RADIUS)
        out["fixed_radius_search, distances + sort"]["Open3D"] = lambda: frs(tp, tq, RADIUS)
        o3d_table = ml3d.ops.build_spatial_hash_table(tp, RADIUS, ps, 1 / 64)
        out["fixed_radius_search, reused hash table"]["Open3D"] = lambda: ml3d.ops.fixed_radius_search(
            tp, tq, RADIUS, ps, qs, o3d_table.hash_table_splits, o3d_table.hash_table_index,
            o3d_table.hash_table_cell_splits)
        out["radius_search (per-query radii)"]["Open3D"] = lambda: rad(tp, tq, tr)
        out[f"knn_search k={K}"]["Open3D"] = lambda: knn(tp, tq, K)
    return out


RSS_SNIPPET = r"""
import sys, numpy as np
def hwm():  # peak RSS of this process in KiB (ru_maxrss would include the parent's peak: it survives fork)
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM"))
n, lib, op = int(sys.argv[1]), sys.argv[2], sys.argv[3]
rng = np.random.default_rng(0)
points = rng.random((n, 3)).astype(np.float32)
queries = rng.random((n, 3)).astype(np.float32)
r = 0.0415 * (100000 / n) ** (1 / 3)
if lib == "Open3D":
    import torch, open3d.ml.torch as ml3d
    torch.set_num_threads(2)
    points, queries = torch.from_numpy(points), torch.from_numpy(queries)
elif lib == "cKDTree":
    from scipy.spatial import cKDTree
else:
    import geomops
base = hwm()
if lib == "geomops":
    res = (geomops.fixed_radius_search(points, queries, r, num_threads=2) if op == "frs"
           else geomops.knn_search(points, queries, 16, num_threads=2))
    count = res.neighbors_index.size
elif lib == "Open3D":
    res = ml3d.layers.FixedRadiusSearch()(points, queries, r) if op == "frs" else ml3d.layers.KNNSearch()(points, queries, 16)
    count = res.neighbors_index.shape[0]
else:
    tree = cKDTree(points)
    res = tree.query_ball_point(queries, r, workers=2) if op == "frs" else tree.query(queries, 16, workers=2)
    count = sum(map(len, res)) if op == "frs" else res[1].size
peak = hwm()
print(base, peak, count)
"""


def peak_rss(lib, op, n):
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-c", RSS_SNIPPET, str(n), lib, op], capture_output=True, text=True,
                         env=env, timeout=600)
    if out.returncode != 0:
        return None
    base, peak, count = map(int, out.stdout.split()[-3:])
    return base / 1024, peak / 1024, count


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = os.getloadavg()
    return (f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python "
            f"{platform.python_version()}, numpy {np.__version__}; load average {load[0]:.2f} {load[1]:.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--n", type=int, default=100000)
    ap.add_argument("--rss-n", type=int, default=1000000, help="points for the peak-RSS runs (0: skip)")
    args = ap.parse_args()

    o3d, why = load_open3d()
    points, queries = cloud(args.n, 0), cloud(args.n, 1)
    mean = geomops.fixed_radius_search(points, queries, RADIUS).neighbors_index.size / args.n
    print(f"# geomops search benchmark, {datetime.date.today()}")
    print(f"machine: {machine()}")
    print(f"workload: {args.n} points and queries, float32, r={RADIUS} ({mean:.1f} neighbors/query), k={K}, "
          f"{THREADS} threads, median of {args.repeat}")
    if o3d is None:
        print(f"Open3D: not importable ({why})")
    else:
        import open3d
        print(f"Open3D {open3d.__version__} (torch CPU ops)")
    libs = ["geomops", "Open3D", "cKDTree"]
    print()
    print("| case | " + " | ".join(f"{lib} [s]" for lib in libs) + " | Open3D / geomops | cKDTree / geomops |")
    print("|---|" + "---|" * (len(libs) + 2))
    for name, fns in cases(points, queries, o3d).items():
        t = timed(fns, args.repeat)
        cells = [f"{t[lib]:.4f}" if lib in t else "-" for lib in libs]
        ratios = [f"{t[peer] / t['geomops']:.1f}x" if peer in t else "-" for peer in ("Open3D", "cKDTree")]
        print(f"| {name} | " + " | ".join(cells + ratios) + " |", flush=True)

    if args.rss_n:
        print()
        print(f"peak RSS, {args.rss_n} points and queries (r scaled to ~28.6 neighbors), fresh process each:")
        print()
        print("| library | search | RSS before [MiB] | peak RSS [MiB] | peak - before [MiB] | neighbors |")
        print("|---|---|---|---|---|---|")
        for lib in libs:
            if lib == "Open3D" and o3d is None:
                continue
            for op in ("frs", "knn"):
                got = peak_rss(lib, op, args.rss_n)
                label = "fixed_radius_search" if op == "frs" else f"knn_search k={K}"
                if got is None:
                    print(f"| {lib} | {label} | failed | | | |")
                    continue
                base, peak, count = got
                print(f"| {lib} | {label} | {base:.0f} | {peak:.0f} | {peak - base:.0f} | {count} |", flush=True)


if __name__ == "__main__":
    main()
