"""Continuous convolution: geomops vs Open3D 0.20 (torch CPU ops), timed in the same process.

Reference workload (spec continuous_conv.md §7): 100k input and 100k output points uniform in
the unit cube (fixed seed), r = 0.0415 (about 28.6 neighbors each), 32 -> 64 channels, 4x4x4
filter, ball_to_cube_radial + linear, align_corners=True, float32, no importances.
Both libraries get the same neighbor lists (Open3D fixed_radius_search when available, else
scipy cKDTree), each row sorted ascending so the workload is identical from run to run.

Run (see benchmarks/README.md for the Open3D venv):
    PYTHONPATH=pyx /tmp/o3d/bin/python benchmarks/bench_cconv.py [--quick] [--repeat N]
        [--threads N] [--no-open3d] [--no-peak] [--no-f64] [--breakdown] [--json PATH]

Targets: forward >= 2x faster than Open3D; backward (filter + feature gradients) >= 2x faster
than Open3D's full backward; geomops float64 <= 2x slower than float32. GEMM floor (issue 18):
the forward within 1.5x of NumPy's `A @ B` of the forward's GEMM shape (N x S*Cin @ S*Cin x Cout)
and dtype, the backward within 1.5x of two such GEMMs, timed in the same process, on the GEMM
path that ran (GEOMOPS_CPU_KERNEL=avx2 forces the AVX2 path on an AVX-512 machine; pair it with
OPENBLAS_CORETYPE=Haswell so NumPy's floor is an AVX2 GEMM too). Breakdown: one extra call of
each op with geomops' phase timing on (_cpu.cconv_profile: thread CPU seconds in the patch fill
and in the GEMM); the shares of the process CPU time, times the median wall time.

Timing: every step gets 1 untimed warm-up call, then --repeat timed calls (default 5); the
table shows min and median, ratios use medians. Open3D's backward is timed alone: the forward
graph is built once, untimed, and `torch.autograd.grad(out, (filters, inp_features), g,
retain_graph=True)` is timed (Open3D's autograd Function always computes both gradients,
including its invert_neighbors_list + reduce_subarrays_sum + transpose conv).
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _bench_util as bu  # noqa: E402

R_FULL = 0.0415
N_FULL = 100_000
CIN, COUT = 32, 64
KSIZE = (4, 4, 4)
OPTS = dict(align_corners=True, coordinate_mapping="ball_to_cube_radial", normalize=False,
            interpolation="linear")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="10k points (radius scaled to keep ~28.6 neighbors)")
    p.add_argument("--points", type=int, default=None, help="override the point count")
    p.add_argument("--repeat", type=int, default=5, help="timed runs per step (default 5)")
    p.add_argument("--threads", type=int, default=2,
                   help="geomops num_threads and torch.set_num_threads (default 2)")
    p.add_argument("--no-open3d", action="store_true", help="skip the Open3D peer")
    p.add_argument("--no-peak", action="store_true", help="skip the matmul peak measurement")
    p.add_argument("--no-f64", action="store_true", help="skip the geomops float64 runs")
    p.add_argument("--no-floor", action="store_true",
                   help="skip NumPy's A @ B of the forward's GEMM shape (the GEMM floor)")
    p.add_argument("--breakdown", action="store_true",
                   help="also time both libraries' backward parts (invert, transpose)")
    p.add_argument("--morton", action="store_true",
                   help="store both point sets in Morton (z-curve) order: same points, "
                        "cache-friendly order (the reference workload is random order)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write all timings to this JSON file")
    return p.parse_args(argv)


def make_workload(n, seed):
    """Positions, features, filters and output gradient (float32), radius for ~28.6 nbrs."""
    rng = np.random.default_rng(seed)
    radius = R_FULL * (N_FULL / n) ** (1.0 / 3.0)
    w = {
        "inp_positions": rng.random((n, 3), dtype=np.float32),
        "out_positions": rng.random((n, 3), dtype=np.float32),
        "inp_features": rng.standard_normal((n, CIN), dtype=np.float32),
        # scaled like a fan-in init so outputs stay O(1)
        "filters": (rng.standard_normal(KSIZE + (CIN, COUT), dtype=np.float32)
                    / np.float32(np.sqrt(CIN * 28.6))),
        "out_grad": rng.standard_normal((n, COUT), dtype=np.float32),
        "extents": np.array([[2.0 * radius]], dtype=np.float32),
        "offset": np.zeros(3, dtype=np.float32),
    }
    return w, radius


def morton_order(points, bits=10):
    """Permutation that sorts points in [0,1)^3 along a Morton (z-order) curve."""
    q = np.clip((points * (1 << bits)).astype(np.int64), 0, (1 << bits) - 1)
    code = np.zeros(len(points), dtype=np.int64)
    for b in range(bits):
        for k in range(3):
            code |= ((q[:, k] >> b) & 1) << (3 * b + k)
    return np.argsort(code, kind="stable")


def sort_rows(index, splits):
    """Sort each CSR row's indices ascending (the search order is not reproducible)."""
    rows = np.repeat(np.arange(len(splits) - 1), np.diff(splits))
    order = np.lexsort((index, rows))
    return np.ascontiguousarray(index[order], dtype=np.int32)


def neighbors(w, radius, ml3d, torch):
    """CSR neighbor lists (int32 index, int64 row splits) of out_positions in inp_positions."""
    import time
    t0 = time.perf_counter()
    if ml3d is not None:
        nb = ml3d.layers.FixedRadiusSearch(return_distances=False)(
            torch.from_numpy(w["inp_positions"]), torch.from_numpy(w["out_positions"]), radius)
        index = nb.neighbors_index.numpy()
        splits = nb.neighbors_row_splits.numpy().astype(np.int64)
        how = "Open3D fixed_radius_search"
    else:
        from scipy.spatial import cKDTree
        lists = cKDTree(w["inp_positions"]).query_ball_point(w["out_positions"], radius)
        counts = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
        splits = np.zeros(len(lists) + 1, dtype=np.int64)
        np.cumsum(counts, out=splits[1:])
        index = np.fromiter((i for x in lists for i in x), dtype=np.int32, count=splits[-1])
        how = "scipy cKDTree.query_ball_point"
    elapsed = time.perf_counter() - t0
    return sort_rows(index, splits), splits, how, elapsed


# ---------------------------------------------------------------------------------------------
# the two libraries' calls

def o3d_calls(w, nb_index, nb_splits, torch, ml3d):
    """Closures for Open3D's forward and backward, plus a result getter."""
    t = {k: torch.from_numpy(v) for k, v in w.items()}
    idx = torch.from_numpy(nb_index)
    spl = torch.from_numpy(nb_splits)
    empty = torch.empty(0, dtype=torch.float32)

    def fwd(filters=t["filters"], feats=t["inp_features"]):
        return ml3d.ops.continuous_conv(filters, t["out_positions"], t["extents"], t["offset"],
                                        t["inp_positions"], feats, empty, idx, empty, spl,
                                        max_temp_mem_MB=64, **OPTS)

    def forward():
        with torch.no_grad():
            return fwd()

    state = {}

    def build_graph():
        f = t["filters"].clone().requires_grad_(True)
        x = t["inp_features"].clone().requires_grad_(True)
        state.update(f=f, x=x, out=fwd(f, x))

    def backward():
        return torch.autograd.grad(state["out"], (state["f"], state["x"]), t["out_grad"],
                                   retain_graph=True)

    def invert():
        return ml3d.ops.invert_neighbors_list(w["inp_positions"].shape[0], idx, spl, empty)

    def transpose(inv):
        # the feature-gradient transpose exactly as Open3D's backward composes it (§2.6)
        return ml3d.ops.continuous_conv_transpose(
            t["filters"].transpose(3, 4).contiguous(), t["inp_positions"], empty,
            t["extents"], t["offset"], t["out_positions"], t["out_grad"], idx, empty, spl,
            inv.neighbors_index, empty, inv.neighbors_row_splits, max_temp_mem_MB=64, **OPTS)

    return dict(forward=forward, build_graph=build_graph, backward=backward, invert=invert,
                transpose=transpose)


def gm_args(w, nb_index, nb_splits, dtype):
    c = {k: np.ascontiguousarray(v, dtype=dtype) for k, v in w.items()}
    args = (c["filters"], c["out_positions"], c["extents"], c["offset"], c["inp_positions"],
            c["inp_features"], None, nb_index, None, nb_splits)
    return args, c["out_grad"]


def gm_calls(gm, w, nb_index, nb_splits, dtype, threads):
    args, g = gm_args(w, nb_index, nb_splits, dtype)
    kw = dict(OPTS, max_temp_mem_MB=64, num_threads=threads)
    filt, outp, ext, off, inpp = args[:5]

    def invert():
        return gm.invert_neighbors_list(inpp.shape[0], nb_index, nb_splits, np.empty(0, dtype))

    def transpose(inv):
        # the feature gradient as a public transpose call (what continuous_conv_backward does)
        return gm.continuous_conv_transpose(
            np.ascontiguousarray(filt.swapaxes(3, 4)), inpp, None, ext, off, outp, g, nb_index,
            None, nb_splits, inv.neighbors_index, None, inv.neighbors_row_splits, **kw)

    return dict(
        forward=lambda: gm.continuous_conv(*args, **kw),
        backward=lambda: gm.continuous_conv_backward(*args, g, **kw),
        backprop_filter=lambda: gm.continuous_conv_backprop_filter(*args, g, **kw),
        invert=invert, transpose=transpose,
    )


# ---------------------------------------------------------------------------------------------
# reporting

def profile_shares(fn):
    """(fill, GEMM, other) shares of the process CPU time of one call of fn, from geomops' phase
    timing (thread CPU seconds, so other processes on the cores do not distort it)."""
    import time
    from geomops import _cpu
    _cpu.cconv_profile(True)
    c0 = time.process_time()
    fn()
    total = time.process_time() - c0
    fill, gemm = _cpu.cconv_profile(False)
    if total <= 0:
        return None
    return fill / total, gemm / total, max(0.0, 1.0 - (fill + gemm) / total)


def fmt_t(tm):
    return "-" if tm is None else f"{tm.min:8.4f} {tm.median:8.4f}"


def gflops(flops, tm):
    return None if tm is None else flops / tm.median * 1e-9


def main(argv=None):
    args = parse_args(argv)
    n = args.points or (10_000 if args.quick else N_FULL)
    rep = max(1, args.repeat)

    torch = ml3d = None
    if not args.no_open3d:
        try:
            import torch
            import open3d.ml.torch as ml3d
            torch.set_num_threads(args.threads)
        except ImportError as exc:
            print(f"Open3D peer unavailable ({exc}); run with /tmp/o3d/bin/python "
                  "(see benchmarks/README.md) or pass --no-open3d")
            torch = ml3d = None

    gm = bu.import_geomops()
    have_gm = gm is not None and all(hasattr(gm, f) for f in (
        "continuous_conv", "continuous_conv_backward", "continuous_conv_backprop_filter"))
    if gm is not None and not have_gm:
        print("geomops has no continuous_conv yet: timing the Open3D half only")
    if not have_gm and ml3d is None:
        print("nothing to time")
        return 1

    info = bu.machine_info()
    peak32, per_cycle = bu.theoretical_peak_gflops(info)
    print(f"machine: {info['model']} (family {info['family']}), {info['cores']} cores, "
          f"{info['mhz']} MHz, avx512f={info['avx512f']}, hypervisor={info['hypervisor']}")
    print(f"threads: geomops num_threads={args.threads}, torch.set_num_threads({args.threads}) "
          "(Open3D's TBB loops use all cores)")
    print(f"load average at start: {bu.loadavg()}")
    if have_gm:
        from geomops import _cpu
        ignored = " (request ignored: not supported here)" if _cpu.cpu_kernel_request_ignored() else ""
        print(f"geomops GEMM path: {_cpu.cpu_kernel()} (supported: {', '.join(_cpu.cpu_kernels_supported())}; "
              f"GEOMOPS_CPU_KERNEL={os.environ.get('GEOMOPS_CPU_KERNEL')}{ignored}); NumPy floor with "
              f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}")

    w, radius = make_workload(n, args.seed)
    if args.morton:
        for key in ("inp_positions", "out_positions"):
            w[key] = np.ascontiguousarray(w[key][morton_order(w[key])])
    nb_index, nb_splits, how, t_search = neighbors(w, radius, ml3d, torch)
    E = int(nb_splits[-1])
    vers = bu.versions()
    print("versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()))
    S = KSIZE[0] * KSIZE[1] * KSIZE[2]
    print(f"workload: {n} inp / {n} out points, r={radius:.4f}, mean neighbors {E / n:.2f}, "
          f"{CIN}->{COUT} ch, filter {KSIZE}, neighbors by {how} ({t_search:.3f} s), "
          f"point order: {'Morton' if args.morton else 'random'}")
    flops_f = 2.0 * n * S * CIN * COUT  # one GEMM: forward, filter grad or feature grad
    print(f"GEMM flops: forward {flops_f * 1e-9:.1f} GFLOP, backward (filter+feature) "
          f"{2 * flops_f * 1e-9:.1f} GFLOP; repeat={rep} after 1 warm-up\n")

    T = {}       # name -> Timing
    res = {}     # name -> result arrays for correctness

    def run(name, fn, setup=None):
        tm, out = bu.timed(fn, rep, 1, setup)
        T[name] = tm
        # a 2-thread step whose CPU time is close to its wall time ran on ~1 core: contended
        busy = tm.cpu_median / tm.median if tm.median > 0 else 0.0
        parallel = args.threads > 1 and "invert" not in name  # invert is serial in both
        flag = "  CONTENDED? (cpu/wall %.2f)" % busy if parallel and busy < 1.5 else ""
        print(f"  {name:<30} min {tm.min:8.4f} s  median {tm.median:8.4f} s  "
              f"cpu {tm.cpu_median:7.3f} s  (load {tm.load}){flag}", flush=True)
        return out

    if ml3d is not None:
        o = o3d_calls(w, nb_index, nb_splits, torch, ml3d)
        res["o3d_fwd"] = run("open3d forward", o["forward"]).numpy()
        o["build_graph"]()
        gf, gx = run("open3d backward (full)", o["backward"])
        res["o3d_gf"], res["o3d_gx"] = gf.numpy(), gx.numpy()
        if args.breakdown:
            inv = run("open3d invert_neighbors_list", o["invert"])
            with torch.no_grad():
                res["o3d_tr"] = run("open3d transpose (feat grad)",
                                    lambda: o["transpose"](inv)).numpy()
        del o

    if have_gm:
        c32 = gm_calls(gm, w, nb_index, nb_splits, np.float32, args.threads)
        res["gm_fwd"] = run("geomops forward f32", c32["forward"])
        bw = run("geomops backward f32", c32["backward"])
        res["gm_gf"], res["gm_gx"] = bw.filters, bw.inp_features
        res["gm_bpf"] = run("geomops backprop_filter f32", c32["backprop_filter"])
        if args.breakdown:
            inv = run("geomops invert_neighbors_list", c32["invert"])
            res["gm_tr"] = run("geomops transpose (feat grad)", lambda: c32["transpose"](inv))
        if not args.no_f64:
            c64 = gm_calls(gm, w, nb_index, nb_splits, np.float64, args.threads)
            res["gm64_fwd"] = run("geomops forward f64", c64["forward"])
            bw64 = run("geomops backward f64", c64["backward"])
            res["gm64_gf"], res["gm64_gx"] = bw64.filters, bw64.inp_features
        if not args.no_floor:
            rng = np.random.default_rng(1)
            for dt, tag in ((np.float32, "f32"), (np.float64, "f64")):
                if tag == "f64" and args.no_f64:
                    continue
                a = rng.standard_normal((n, S * CIN)).astype(dt)
                b = rng.standard_normal((S * CIN, COUT)).astype(dt)
                run(f"numpy A @ B {tag} (floor)", lambda: a @ b)
                del a, b
        prof = {}  # op -> (fill, GEMM, other) shares of the process CPU time
        for name, fn in (("forward f32", c32["forward"]), ("backward f32", c32["backward"])):
            prof[name] = profile_shares(fn)
        if not args.no_f64:
            for name, fn in (("forward f64", c64["forward"]), ("backward f64", c64["backward"])):
                prof[name] = profile_shares(fn)

    # ---------------------------------------------------------------- correctness
    print("\ncorrectness (max|a-b| / max|b|):")
    checks = {}
    pairs = [("forward", "gm_fwd", "o3d_fwd"), ("filter grad", "gm_gf", "o3d_gf"),
             ("feature grad", "gm_gx", "o3d_gx"),
             ("open3d transpose vs its backward", "o3d_tr", "o3d_gx"),
             ("geomops transpose vs its backward", "gm_tr", "gm_gx"), ("backprop_filter vs o3d", "gm_bpf", "o3d_gf"),
             ("backprop_filter vs backward", "gm_bpf", "gm_gf"),
             ("f32 vs f64 forward", "gm_fwd", "gm64_fwd"), ("f32 vs f64 filter grad", "gm_gf",
                                                             "gm64_gf"),
             ("f32 vs f64 feature grad", "gm_gx", "gm64_gx"),
             ("open3d vs geomops f64 forward", "o3d_fwd", "gm64_fwd")]
    for label, a, b in pairs:
        if a in res and b in res:
            d = bu.max_rel_diff(res[a], res[b])
            checks[label] = d
            print(f"  {label:<32} {d:.2e}")
    if not checks:
        print("  (needs both libraries)")

    # ---------------------------------------------------------------- table
    def g(name):
        return T.get(name)

    def ratio(a, b):
        return None if a is None or b is None else a.median / b.median

    rows = [
        ("forward", g("open3d forward"), g("geomops forward f32"), ">= 2.0", 2.0, "o3d"),
        ("backward (filter+feature)", g("open3d backward (full)"), g("geomops backward f32"),
         ">= 2.0", 2.0, "o3d"),
        ("backprop_filter only", g("open3d backward (full)"), g("geomops backprop_filter f32"),
         "(info: vs o3d full bwd)", None, "o3d"),
    ]
    def ratio_cpu(a, b):
        return None if a is None or b is None else a.cpu_median / b.cpu_median

    print("\nratios from median wall times ('met' uses these); CPU-time ratios for reference")
    print("| step | Open3D min / median (s) | geomops min / median (s) | "
          "Open3D/geomops | CPU-time ratio | target | met |")
    print("|---|---|---|---|---|---|---|")
    summary = {}
    for label, to, tg, target, need, _ in rows:
        r = ratio(to, tg)
        met = "-" if r is None or need is None else ("yes" if r >= need else "NO")
        rs = "-" if r is None else f"{r:.2f}x"
        rc = ratio_cpu(to, tg)
        rcs = "-" if rc is None else f"{rc:.2f}x"
        print(f"| {label} | {fmt_t(to)} | {fmt_t(tg)} | {rs} | {rcs} | {target} | {met} |")
        summary[label] = r
    for label, n64, n32 in (("float64/float32 forward", "geomops forward f64",
                             "geomops forward f32"),
                            ("float64/float32 backward", "geomops backward f64",
                             "geomops backward f32")):
        r = ratio(g(n64), g(n32))
        met = "-" if r is None else ("yes" if r <= 2.0 else "NO")
        rs = "-" if r is None else f"{r:.2f}x"
        rc = ratio_cpu(g(n64), g(n32))
        rcs = "-" if rc is None else f"{rc:.2f}x"
        print(f"| {label} | - | {fmt_t(g(n64))} | {rs} (f64/f32) | {rcs} | <= 2.0 | {met} |")
        summary[label] = r

    # ---------------------------------------------------------------- GEMM floor, breakdown
    if have_gm:
        print(f"\nGEMM floor (issue 18): op median / NumPy A @ B median ({n} x {S * CIN} @ {S * CIN} x {COUT}, "
              f"same dtype, same process); GEMM path {_cpu.cpu_kernel()}")
        print("| step | geomops median (s) | floor median (s) | ratio | CPU-time ratio | target | met |")
        print("|---|---|---|---|---|---|---|")
        for tag in ("f32", "f64"):
            fl = g(f"numpy A @ B {tag} (floor)")
            for label, name, gemms in (("forward", f"geomops forward {tag}", 1),
                                       ("backward (filter+feature)", f"geomops backward {tag}", 2)):
                tm = g(name)
                if tm is None or fl is None:
                    continue
                r = tm.median / (gemms * fl.median)
                summary[f"floor {label} {tag}"] = r
                rc = tm.cpu_median / (gemms * fl.cpu_median) if fl.cpu_median > 0 else float("nan")
                print(f"| {label} {tag} | {tm.median:.4f} | {gemms} x {fl.median:.4f} | {r:.2f}x | {rc:.2f}x | <= 1.5 | "
                      f"{'yes' if r <= 1.5 else 'NO'} |")
        print("\nbreakdown (geomops phase timing, one extra call each): share of CPU time -> seconds of the "
              "median wall time")
        for name, sh in prof.items():
            tm = g(f"geomops {name}")
            if sh is None or tm is None:
                continue
            parts = ", ".join(f"{lab} {100 * x:4.1f}% ({x * tm.median:.4f} s)"
                              for lab, x in zip(("fill", "GEMM", "other"), sh))
            print(f"  {name:<13} {parts}")

    # ---------------------------------------------------------------- GFLOP/s
    peaks = {}
    if not args.no_peak:
        peaks["fma_loop"] = bu.fma_loop_peak(info["cores"]) if info["avx512f"] else None
        peaks["numpy_env"] = bu.numpy_matmul_peak(unset_openblas_env=False)
        peaks["numpy_unset"] = bu.numpy_matmul_peak(unset_openblas_env=True)
        if torch is not None:
            peaks["torch"] = bu.torch_matmul_peak()
    print("\nGEMM-part throughput (flops / median time) and fp32 peaks:")
    if peak32:
        print(f"  theoretical at nominal clock: {peak32:.0f} GFLOP/s = {info['cores']} cores x "
              f"{info['mhz']:.0f} MHz x {per_cycle} flop/cycle (2 x 512-bit FMA pipes)")
    fma = peaks.get("fma_loop")
    if fma:
        clk = fma / (info["cores"] * per_cycle) if per_cycle else float("nan")
        print(f"  measured AVX-512 FMA loop, {info['cores']} threads: {fma:.0f} GFLOP/s "
              f"(=> effective clock ~{clk:.2f} GHz at {per_cycle} flop/cycle/core)")
    for key, label in (("numpy_env", "numpy f32 matmul 3072^2, env as set"),
                       ("numpy_unset", "numpy f32 matmul 3072^2, OPENBLAS_CORETYPE/L2_SIZE unset"),
                       ("torch", "torch.mm f32 3072^2")):
        pk = peaks.get(key)
        if pk is None:
            continue
        if isinstance(pk, dict):
            kern = ", ".join(f"{k['api']} {k['version']} {k['arch']} x{k['threads']}"
                             for k in (pk["kernels"] or [])) or "threadpoolctl n/a"
            print(f"  {label}: {pk['gflops']:.0f} GFLOP/s  [{kern}; "
                  f"OPENBLAS_CORETYPE={pk['env']['OPENBLAS_CORETYPE']}]")
        else:
            print(f"  {label}: {pk:.0f} GFLOP/s")
    ref = fma or peak32
    ref_name = "of measured FMA peak" if fma else "of nominal-clock peak"
    gf_rows = [("open3d forward", flops_f), ("open3d backward (full)", 2 * flops_f),
               ("geomops forward f32", flops_f), ("geomops backward f32", 2 * flops_f),
               ("geomops backprop_filter f32", flops_f), ("geomops forward f64", flops_f),
               ("geomops backward f64", 2 * flops_f)]
    for name, fl in gf_rows:
        if name in T:
            v = gflops(fl, T[name])
            pct = f" ({100 * v / ref:.0f}% {ref_name})" if ref else ""
            print(f"  {name:<30} {v:7.1f} GFLOP/s{pct}")
    print(f"\nload average at end: {bu.loadavg()}")

    if args.json:
        out = dict(n=n, radius=radius, morton=args.morton, gemm_path=_cpu.cpu_kernel() if have_gm else None,
                   breakdown=prof if have_gm else None, mean_neighbors=E / n, versions=vers, machine=info,
                   theoretical_peak_gflops=peak32, peaks=peaks, checks=checks, ratios=summary,
                   timings={k: dict(times=v.times, cpu_times=v.cpu_times, load=v.load)
                            for k, v in T.items()})
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
