"""Shared helpers for the geomops benchmarks: timing, load average, machine facts, FMA peak.

Only the standard library and NumPy at import time; optional tools (threadpoolctl, torch)
are imported lazily and their absence is reported, never fatal.
"""
import json
import os
import platform
import statistics
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def import_geomops():
    """Import geomops, falling back to the in-place build under <repo>/pyx.

    Returns the module, or None (with the reason printed) when it cannot be imported.
    """
    try:
        import geomops
        return geomops
    except ImportError:
        pass
    sys.path.insert(0, os.path.join(REPO_ROOT, "pyx"))
    try:
        import geomops
        return geomops
    except ImportError as exc:
        print(f"geomops not importable ({exc}); build it with "
              "`python setup.py build_ext --inplace -j 2` and run with PYTHONPATH=pyx")
        return None


def loadavg():
    """The 1-minute load average as a short string (other agents share the cores)."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "n/a"


def time_runs(fn, repeat, warmup=1, setup=None):
    """Wall times (s) of `repeat` calls of fn() after `warmup` untimed calls.

    `setup()` runs untimed before every call (e.g. to rebuild an autograd graph).
    Returns (wall times, process CPU times (all threads), result of the last call).
    """
    result = None
    for _ in range(warmup):
        if setup is not None:
            setup()
        result = fn()
    times, cpu = [], []
    for _ in range(repeat):
        if setup is not None:
            setup()
        c0 = time.process_time()
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return times, cpu, result


class Timing:
    """Wall and CPU times of one benchmark step plus the load average seen around it.

    CPU time (summed over the process's threads) is less sensitive to other processes on
    the shared cores than wall time, but it also counts threads that spin while waiting.
    """

    def __init__(self, times, cpu_times, load_before, load_after):
        self.times = list(times)
        self.cpu_times = list(cpu_times)
        self.load = f"{load_before}/{load_after}"

    @property
    def cpu_median(self):
        return statistics.median(self.cpu_times)

    @property
    def median(self):
        return statistics.median(self.times)

    @property
    def min(self):
        return min(self.times)


def timed(fn, repeat, warmup=1, setup=None):
    """Like time_runs but returns (Timing, last result) with the load average recorded."""
    before = loadavg()
    times, cpu, result = time_runs(fn, repeat, warmup, setup)
    return Timing(times, cpu, before, loadavg()), result


def max_rel_diff(a, b):
    """max|a - b| / max|b| in float64 (0 when both are all zero)."""
    import numpy as np
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    return diff / scale if scale > 0 else diff


def _lscpu():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    info = {}
    for line in out.splitlines():
        if ":" in line:
            key, _, val = line.partition(":")
            info[key.strip()] = val.strip()
    return info


def machine_info():
    """Model, core count, clock (MHz) and AVX-512 flag, from lscpu and /proc/cpuinfo."""
    info = _lscpu()
    mhz = None
    for key in ("CPU max MHz", "CPU MHz"):
        if key in info:
            try:
                mhz = float(info[key])
                break
            except ValueError:
                pass
    if mhz is None:
        try:
            with open("/proc/cpuinfo") as fh:
                for line in fh:
                    if line.startswith("cpu MHz"):
                        mhz = float(line.split(":")[1])
                        break
        except OSError:
            pass
    flags = info.get("Flags", "")
    cores = int(info.get("CPU(s)", os.cpu_count() or 1))
    return {
        "model": info.get("Model name", platform.processor() or "unknown"),
        "family": info.get("CPU family", "?"),
        "cores": cores,
        "mhz": mhz,
        "avx512f": "avx512f" in flags.split(),
        "fma": "fma" in flags.split(),
        "hypervisor": info.get("Hypervisor vendor", ""),
    }


def theoretical_peak_gflops(info, fp64=False):
    """FMA peak in GFLOP/s: cores x clock x flop/cycle/core.

    Assumes two FMA pipes per core as wide as the widest vector ISA the flags show
    (AMD Zen 5 with AVX-512: 2 x 512-bit FMA -> 64 fp32 flop/cycle). This is an upper bound
    at the reported (nominal) clock; boost clocks inside a VM are not visible.
    """
    if not info.get("mhz"):
        return None, None
    bits = 512 if info["avx512f"] else (256 if info["fma"] else 128)
    lanes = bits // (64 if fp64 else 32)
    per_cycle = 2 * 2 * lanes  # 2 pipes x (mul + add)
    return info["cores"] * info["mhz"] * 1e-3 * per_cycle, per_cycle


_PEAK_SNIPPET = r"""
import json, sys, time
import numpy as np
n = int(sys.argv[1]); reps = int(sys.argv[2])
rng = np.random.default_rng(0)
a = rng.standard_normal((n, n), dtype=np.float32)
b = rng.standard_normal((n, n), dtype=np.float32)
a @ b
ts = []
for _ in range(reps):
    t0 = time.perf_counter(); a @ b; ts.append(time.perf_counter() - t0)
kern = None
try:
    from threadpoolctl import threadpool_info
    kern = [dict(api=d.get("internal_api"), arch=d.get("architecture"),
                 threads=d.get("num_threads"), version=d.get("version"))
            for d in threadpool_info() if d.get("user_api") == "blas"]
except ImportError:
    pass
print(json.dumps(dict(best=min(ts), flops=2.0 * n ** 3, kernels=kern)))
"""


def numpy_matmul_peak(n=3072, reps=3, unset_openblas_env=False):
    """Measured float32 GEMM GFLOP/s of numpy in a subprocess (best of reps).

    With unset_openblas_env=True, OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are removed from
    that subprocess's environment only (this machine sets them for old OpenBLAS builds;
    they force a slower kernel). Returns dict(gflops, kernels, env) or None on failure.
    """
    env = dict(os.environ)
    if unset_openblas_env:
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
    try:
        out = subprocess.run([sys.executable, "-c", _PEAK_SNIPPET, str(n), str(reps)],
                             capture_output=True, text=True, env=env, timeout=300)
        res = json.loads(out.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None
    return {"gflops": res["flops"] / res["best"] * 1e-9, "kernels": res["kernels"],
            "env": {k: env.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}}


def torch_matmul_peak(n=3072, reps=3):
    """Measured float32 GEMM GFLOP/s of torch.mm (best of reps), or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best * 1e-9


_FMA_PROBE_C = r"""
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <omp.h>
/* 12 independent 512-bit FMA chains per thread: enough to cover latency x pipes. */
int main(int argc, char **argv) {
    long iters = atol(argv[1]); int nt = atoi(argv[2]);
    double best = 1e30; float sink = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = omp_get_wtime();
        #pragma omp parallel num_threads(nt) reduction(+:sink)
        {
            __m512 a[12]; __m512 b = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
            for (int k = 0; k < 12; k++) a[k] = _mm512_set1_ps((float)k);
            for (long i = 0; i < iters; i++) {
                #pragma GCC unroll 12
                for (int k = 0; k < 12; k++) a[k] = _mm512_fmadd_ps(a[k], b, c);
            }
            for (int k = 0; k < 12; k++) sink += _mm512_reduce_add_ps(a[k]);
        }
        double t = omp_get_wtime() - t0; if (t < best) best = t;
    }
    printf("%.6f %g\n", (double)iters * 12 * 16 * 2 * nt / best * 1e-9, (double)sink);
    return 0;
}
"""


def fma_loop_peak(threads, iters=100_000_000):
    """Measured fp32 FMA throughput (GFLOP/s) of an AVX-512 register-only loop, or None.

    Compiled on the fly with gcc (needs AVX-512F). This is the attainable FMA peak at the clock
    the cores really run at (the nominal clock in /proc/cpuinfo is not the boost clock).
    """
    import shutil
    import tempfile
    if shutil.which("gcc") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = os.path.join(tmp, "fma.c"), os.path.join(tmp, "fma")
        with open(src, "w") as fh:
            fh.write(_FMA_PROBE_C)
        try:
            subprocess.run(["gcc", "-O2", "-mavx512f", "-mfma", "-fopenmp", src, "-o", exe],
                           check=True, capture_output=True, timeout=60)
            out = subprocess.run([exe, str(iters), str(threads)], capture_output=True,
                                 text=True, timeout=120, check=True).stdout
            return float(out.split()[0])
        except (OSError, subprocess.SubprocessError, ValueError, IndexError):
            return None


def versions():
    """Versions of the already imported libraries that matter for the numbers (numpy always)."""
    import numpy  # noqa: F401
    out = {"python": platform.python_version()}
    for name in ("numpy", "scipy", "torch", "open3d", "geomops"):
        mod = sys.modules.get(name)
        if mod is not None:
            out[name] = getattr(mod, "__version__", "?")
    return out
