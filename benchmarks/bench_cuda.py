"""CUDA backend: continuous convolution and neighbor searches on the GPU, vs plain PyTorch.

Workload: bench_cconv.py's, scaled to 1M input and 1M output points uniform in the unit cube
(fixed seed), r = 0.0415 * (100k / n)^(1/3) (about 28.6 neighbors each), 32 -> 64 channels,
4x4x4 filter, ball_to_cube_radial + linear, align_corners=True, float32, no importances,
max_temp_mem_MB=64. Every input lives on the GPU before timing (geomops.to_device); results stay
there (geomops.DeviceArray), so no host copy is timed.

Timed (1 untimed warm-up, then --repeat runs; the table shows medians):
  * fixed_radius_search of the 1M output points in the 1M input points, the hash table included;
  * knn_search with k=16;
  * continuous_conv forward, and continuous_conv_backward (filter + feature gradients), fp32 and
    with allow_tf32=True;
  * the plain PyTorch peer when torch with CUDA is importable: gather, trilinear scatter with
    index_add_, matmul; autograd for the backward (its graph is built untimed, as in
    bench_cconv.py). Its results are compared with geomops'.

Targets (issue 16, H100/H200): forward < 10 ms, backward < 25 ms, fixed_radius_search incl. the
table < 5 ms, kNN k=16 < 10 ms. GFLOP/s counts the GEMM flops (2 No S Cin Cout per product);
GB/s counts each input read once and each output written once (a lower bound of the traffic).

Run (about a minute on an H200):
    PYTHONPATH=pyx python benchmarks/bench_cuda.py [--points N] [--repeat N] [--no-torch] [--json PATH]
Without a CUDA device it stops at once and says why.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _bench_util as bu  # noqa: E402

R_100K = 0.0415
N_FULL = 1_000_000
CIN, COUT = 32, 64
KSIZE = (4, 4, 4)
K_NN = 16
OPTS = dict(align_corners=True, coordinate_mapping="ball_to_cube_radial", normalize=False,
            interpolation="linear", max_temp_mem_MB=64)
TARGETS_MS = {"forward": 10.0, "backward": 25.0, "fixed_radius_search": 5.0, "knn_search": 10.0}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--points", type=int, default=N_FULL, help="input and output points (default 1M)")
    p.add_argument("--repeat", type=int, default=5, help="timed runs per step (default 5)")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch peer")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write all timings to this JSON file")
    return p.parse_args(argv)


def device_or_exit(gm):
    """The CUDA binding module, or exit with a clear message when geomops cannot use a GPU here."""
    from geomops import _config
    count, reason = _config.cuda_status()
    if count == 0:
        sys.exit(f"bench_cuda: no CUDA device: {reason}")
    if not hasattr(gm, "to_device"):
        sys.exit("bench_cuda: this geomops has no device arrays (geomops.to_device): build it from a tree "
                 "with the whole CUDA backend")
    return _config._cuda


def make_workload(n, seed):
    rng = np.random.default_rng(seed)
    radius = R_100K * (100_000 / n) ** (1.0 / 3.0)
    w = {
        "inp_positions": rng.random((n, 3), dtype=np.float32),
        "out_positions": rng.random((n, 3), dtype=np.float32),
        "inp_features": rng.standard_normal((n, CIN), dtype=np.float32),
        "filters": (rng.standard_normal(KSIZE + (CIN, COUT), dtype=np.float32)
                    / np.float32(np.sqrt(CIN * 28.6))),
        "out_grad": rng.standard_normal((n, COUT), dtype=np.float32),
        "extents": np.array([[2.0 * radius]], dtype=np.float32),
        "offset": np.zeros(3, dtype=np.float32),
    }
    return w, radius


def synchronizer(cuda):
    """sync(result): wait for the device work that writes a result (a DeviceArray or a tuple of
    them), on the stream its CUDA array interface names."""
    def sync(result):
        items = result if isinstance(result, tuple) else (result,)
        for a in items:
            iface = getattr(a, "__cuda_array_interface__", None)
            if iface is not None and iface.get("stream") is not None:
                cuda.synchronize(iface["stream"])
    return sync


def torch_peer(torch, w, index, splits, radius):
    """Plain PyTorch continuous conv on the GPU (ball_to_cube_radial, linear, align_corners):
    gather the neighbors, scatter the 8 trilinear corners into patches with index_add_, matmul."""
    dev = torch.device("cuda")
    t = {k: torch.from_numpy(v).to(dev) for k, v in w.items()}
    idx = torch.from_numpy(index.astype(np.int64)).to(dev)
    counts = torch.from_numpy(np.diff(splits)).to(dev)
    num_out = w["out_positions"].shape[0]
    rows = torch.repeat_interleave(torch.arange(num_out, device=dev), counts)
    D, H, W = KSIZE
    S = D * H * W
    last = torch.tensor([W - 1, H - 1, D - 1], device=dev, dtype=torch.float32)
    extent = float(w["extents"][0, 0])

    def conv(filters, feats):
        u = (t["inp_positions"][idx] - t["out_positions"][rows]) * (2.0 / extent)
        m = u.abs().amax(dim=1, keepdim=True)
        scale = torch.where(m < 1e-8, torch.zeros_like(m), 0.5 * u.norm(dim=1, keepdim=True) / m.clamp_min(1e-8))
        v = (u * scale + 0.5) * last
        lo = torch.minimum(v.trunc().clamp_min(0.0), last)
        a = (v - lo).clamp(0.0, 1.0)
        i0 = lo.long()
        i1 = torch.minimum(i0 + 1, last.long())
        f = feats[idx]
        patch = feats.new_zeros((num_out * S, CIN))
        for c in range(8):
            bits = [(c >> k) & 1 for k in range(3)]
            weight = torch.ones_like(a[:, 0])
            cell = torch.zeros_like(i0[:, 0])
            for k in (2, 1, 0):  # z, y, x: cell = (z * H + y) * W + x
                weight = weight * (a[:, k] if bits[k] else 1.0 - a[:, k])
                cell = cell * (D, H, W)[2 - k] + (i1[:, k] if bits[k] else i0[:, k])
            patch.index_add_(0, rows * S + cell, f * weight[:, None])
        return patch.view(num_out, S * CIN) @ filters.reshape(S * CIN, COUT)

    state = {}

    def forward():
        with torch.no_grad():
            return conv(t["filters"], t["inp_features"])

    def build_graph():
        fl = t["filters"].clone().requires_grad_(True)
        x = t["inp_features"].clone().requires_grad_(True)
        state.update(f=fl, x=x, out=conv(fl, x))

    def backward():
        return torch.autograd.grad(state["out"], (state["f"], state["x"]), t["out_grad"], retain_graph=True)

    return forward, build_graph, backward


def main(argv=None):
    args = parse_args(argv)
    gm = bu.import_geomops()
    if gm is None:
        return 1
    cuda = device_or_exit(gm)
    sync = synchronizer(cuda)
    n, rep = args.points, max(1, args.repeat)
    gm.show_config()

    w, radius = make_workload(n, args.seed)
    d = {k: gm.to_device(v, device="cuda") for k, v in w.items()}
    T, res = {}, {}

    def run(name, fn, setup=None):
        def timed_call():
            result = fn()
            sync(result)
            return result
        tm, out = bu.timed(timed_call, rep, 1, setup)
        T[name] = tm
        print(f"  {name:<34} min {tm.min * 1e3:9.3f} ms  median {tm.median * 1e3:9.3f} ms", flush=True)
        return out

    print(f"\nworkload: {n} inp / {n} out points, r={radius:.5f}, {CIN}->{COUT} ch, filter {KSIZE}, "
          f"float32, repeat={rep} after 1 warm-up")
    nb = run("fixed_radius_search (incl. table)",
             lambda: gm.fixed_radius_search(d["inp_positions"], d["out_positions"], radius))
    run(f"knn_search k={K_NN}", lambda: gm.knn_search(d["inp_positions"], d["out_positions"], K_NN))
    index, splits = nb.neighbors_index, nb.neighbors_row_splits
    E = int(splits.get()[-1])
    print(f"  neighbors: {E} entries, mean {E / n:.2f} per output point")

    args_fwd = (d["filters"], d["out_positions"], d["extents"], d["offset"], d["inp_positions"],
                d["inp_features"], None, index, None, splits)
    for tf32 in (False, True):
        tag = " tf32" if tf32 else ""
        res["fwd" + tag] = run("geomops forward" + tag, lambda: gm.continuous_conv(*args_fwd, **OPTS, allow_tf32=tf32))
        res["bwd" + tag] = run("geomops backward" + tag, lambda: gm.continuous_conv_backward(
            *args_fwd, d["out_grad"], **OPTS, allow_tf32=tf32))

    torch = None
    if not args.no_torch:
        try:
            import torch
            if not torch.cuda.is_available():
                print("PyTorch peer skipped: torch has no CUDA device")
                torch = None
        except ImportError as exc:
            print(f"PyTorch peer skipped: {exc}")
    if torch is not None:
        forward, build_graph, backward = torch_peer(torch, w, index.get(), splits.get(), radius)

        def torch_run(name, fn):
            def timed_call():
                result = fn()
                torch.cuda.synchronize()
                return result
            tm, out = bu.timed(timed_call, rep, 1)
            T[name] = tm
            print(f"  {name:<34} min {tm.min * 1e3:9.3f} ms  median {tm.median * 1e3:9.3f} ms", flush=True)
            return out

        try:
            res["torch fwd"] = torch_run("torch forward", forward).cpu().numpy()
            build_graph()
            res["torch gf"], res["torch gx"] = (o.cpu().numpy() for o in torch_run("torch backward", backward))
        except torch.cuda.OutOfMemoryError as exc:
            print(f"PyTorch peer stopped: out of memory ({exc})")
        del forward, build_graph, backward
        torch.cuda.empty_cache()

    print("\ncorrectness (max|a-b| / max|b|):")
    checks = {}
    pairs = [("forward vs torch", res["fwd"], res.get("torch fwd")),
             ("filter grad vs torch", res["bwd"].filters, res.get("torch gf")),
             ("feature grad vs torch", res["bwd"].inp_features, res.get("torch gx")),
             ("forward tf32 vs fp32", res["fwd tf32"], res["fwd"]),
             ("filter grad tf32 vs fp32", res["bwd tf32"].filters, res["bwd"].filters),
             ("feature grad tf32 vs fp32", res["bwd tf32"].inp_features, res["bwd"].inp_features)]
    for label, a, b in pairs:
        if a is not None and b is not None:
            a = a if isinstance(a, np.ndarray) else a.get()
            b = b if isinstance(b, np.ndarray) else b.get()
            checks[label] = bu.max_rel_diff(a, b)
            print(f"  {label:<28} {checks[label]:.2e}")

    S = KSIZE[0] * KSIZE[1] * KSIZE[2]
    flops_f = 2.0 * n * S * CIN * COUT
    f4 = 4.0
    fwd_bytes = f4 * (6 * n + n * CIN + S * CIN * COUT + n * COUT) + 4.0 * E + 8.0 * (n + 1)
    # the forward's inputs and out_grad (the size of its output) read, both gradients written
    bwd_bytes = fwd_bytes + f4 * (n * CIN + S * CIN * COUT)
    rows = [
        ("fixed_radius_search", "fixed_radius_search (incl. table)", None, None,
         f4 * 6 * n + 4.0 * E + 8.0 * (n + 1)),
        ("knn_search", f"knn_search k={K_NN}", None, None, f4 * 6 * n + 4.0 * n * K_NN + 8.0 * (n + 1)),
        ("forward", "geomops forward", "torch forward", flops_f, fwd_bytes),
        ("forward", "geomops forward tf32", "torch forward", flops_f, fwd_bytes),
        ("backward", "geomops backward", "torch backward", 2 * flops_f, bwd_bytes),
        ("backward", "geomops backward tf32", "torch backward", 2 * flops_f, bwd_bytes),
    ]
    print("\n| step | median (ms) | GFLOP/s | GB/s | PyTorch median (ms) | PyTorch / geomops | target | met |")
    print("|---|---|---|---|---|---|---|---|")
    summary = {}
    for key, name, peer, flops, nbytes in rows:
        tm = T.get(name)
        if tm is None:
            continue
        ms = tm.median * 1e3
        gf = "-" if flops is None else f"{flops / tm.median * 1e-9:.0f}"
        gbs = f"{nbytes / tm.median * 1e-9:.0f}"
        tp = T.get(peer) if peer else None
        tps = "-" if tp is None else f"{tp.median * 1e3:.1f}"
        ratio = "-" if tp is None else f"{tp.median / tm.median:.1f}x"
        target = TARGETS_MS[key]
        met = "yes" if ms < target else "NO"
        print(f"| {name} | {ms:.2f} | {gf} | {gbs} | {tps} | {ratio} | < {target:g} ms | {met} |")
        summary[name] = dict(ms=ms, met=ms < target)

    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(n=n, radius=radius, entries=E, checks=checks, summary=summary,
                           timings={k: dict(times=v.times) for k, v in T.items()},
                           date=time.strftime("%Y-%m-%d %H:%M:%S")), fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
