"""Benchmark of geomops.dask: many point clouds through neighbor search + continuous convolution,
serially and on local Dask clusters.

Workload: 64 clouds of 100k points uniform in the unit cube (float32), each searched in itself
with r = 0.0415 (about 28 neighbors per point) and convolved 8 -> 16 channels with a 3x3x3
filter (``geomops.dask.CloudConv``, normalize=True). Runs:

* ``serial``: the plain loop ``conv.forward(points, features)`` in this process, all cores;
* ``LocalCluster(2 workers x 1 thread)`` and ``(1 worker x 2 threads)``: ``map_conv`` over a
  list of delayed clouds, one task per cloud, each task with ``task_threads()`` OpenMP threads
  (``geomops.dask.configure``: cores / concurrent tasks).

The clouds are made on the workers from a seed and persisted before the timing (no transfer
of inputs is timed); the outputs stay on the workers (``persist`` + ``wait``; only a hash per
cloud comes back, compared with the serial run's for bitwise equality). Reported per run: wall
time, clouds/s and points/s, and the overhead per task against the serial loop on the same
cores, ``(wall - serial wall) / tasks``; and Dask's fixed cost per task, measured with the
same number of tiny clouds (100 points) whose geomops work is negligible.

Run:  PYTHONPATH=pyx python benchmarks/bench_dask.py [--clouds 64] [--points 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import statistics
import time

import numpy as np

from _bench_util import import_geomops, loadavg, machine_info

RADIUS = 0.0415


def make_cloud(seed, n, cin, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return rng.random((n, 3), dtype=np.float32).astype(dtype), rng.standard_normal((n, cin), dtype=np.float32)


def digest(a):
    return hashlib.sha1(np.ascontiguousarray(a).tobytes()).hexdigest()


def serial_run(conv, clouds, n, cin):
    """Wall time of the plain loop (cloud generation not timed) and the outputs' hashes."""
    conv.forward(*make_cloud(clouds, 1000, cin))  # warm-up (thread pool, first allocations), as the clusters get
    wall, hashes = 0.0, []
    for seed in range(clouds):
        pts, feats = make_cloud(seed, n, cin)
        t0 = time.perf_counter()
        out = conv.forward(pts, feats)
        wall += time.perf_counter() - t0
        hashes.append(digest(out))
    return wall, hashes


def cluster_run(workers, threads, conv, clouds, n, cin, repeat):
    import dask
    from distributed import Client, LocalCluster, wait

    from geomops.dask import configure, map_conv

    with LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True, dashboard_address=None,
                      scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}, host="127.0.0.1") as lc, \
            Client(lc) as client:
        settings = configure(client)
        per_task = sorted({s.threads for s in settings.values()})

        def timed(count, size):
            inputs = client.persist([dask.delayed(make_cloud, pure=True)(s, size, cin) for s in range(count)])
            wait(inputs)
            times, outs = [], None
            for _ in range(repeat):
                outs = map_conv(conv, inputs)
                t0 = time.perf_counter()
                outs = client.persist(outs)
                wait(outs)
                times.append(time.perf_counter() - t0)
            hashes = client.gather(client.compute([dask.delayed(digest)(o) for o in outs]))
            return times, hashes

        tiny, _ = timed(clouds, 100)
        times, hashes = timed(clouds, n)
    return times, tiny, hashes, per_task


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clouds", type=int, default=64)
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3, help="timed repetitions of each cluster run (median)")
    ap.add_argument("--configs", default="2x1,1x2", help="workers x threads per worker, comma-separated")
    args = ap.parse_args(argv)
    geomops = import_geomops()
    if geomops is None:
        return 1
    from geomops.dask import CloudConv

    cin, cout = 8, 16
    filters = np.random.default_rng(0).uniform(-0.05, 0.05, (3, 3, 3, cin, cout)).astype(np.float32)
    conv = CloudConv(filters, 2 * RADIUS)
    info = machine_info()
    print(f"machine: {info['model']}, {info['cores']} cores, Python {platform.python_version()}, "
          f"NumPy {np.__version__}, geomops threads {geomops.get_num_threads()}")
    import dask
    import distributed
    print(f"dask {dask.__version__}, distributed {distributed.__version__}; load before {loadavg()}")
    print(f"workload: {args.clouds} clouds x {args.points} points, r={RADIUS}, {cin}->{cout} channels, 3x3x3")

    serial, reference = serial_run(conv, args.clouds, args.points, cin)
    total = args.clouds * args.points
    rows = [("serial (this process)", serial, None, f"{geomops.get_num_threads()}", True)]
    for config in args.configs.split(","):
        w, t = (int(x) for x in config.lower().split("x"))
        times, tiny, hashes, per_task = cluster_run(w, t, conv, args.clouds, args.points, cin, args.repeat)
        name = f"LocalCluster({w} worker{'s' if w > 1 else ''} x {t} thread{'s' if t > 1 else ''})"
        rows.append((name, statistics.median(times), statistics.median(tiny), "/".join(map(str, per_task)),
                     hashes == reference))
    print(f"load after {loadavg()}\n")
    print("| run | OpenMP threads per task | wall (s) | clouds/s | Mpoints/s | overhead per task vs serial (ms) "
          "| wall per tiny task (ms) | bitwise = serial |")
    print("|---|---|---|---|---|---|---|---|")
    for name, wall, tiny, threads, same in rows:
        over = "" if tiny is None else f"{1e3 * (wall - serial) / args.clouds:.1f}"
        tiny_ms = "" if tiny is None else f"{1e3 * tiny / args.clouds:.2f}"
        print(f"| {name} | {threads} | {wall:.3f} | {args.clouds / wall:.1f} | {total / wall / 1e6:.2f} | {over} | "
              f"{tiny_ms} | {'yes' if same else 'NO'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
