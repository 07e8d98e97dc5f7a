"""Every ISA variant of the CPU kernels (AVX-512, AVX2+FMA, portable C) runs when asked for and
gives the same cconv results.

The ISA is chosen once per process (GEOMOPS_CPU_KERNEL, read on first use), so each variant runs
in a subprocess. It selects the GEMM micro-kernels and the patch fill together. Variants may
differ in the last bits (FMA contraction), so they are compared with the default ISA within
float tolerances; each variant on its own is bitwise identical for 1 and 2 threads."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from geomops import _cpu

SCRIPT = r"""
import json, sys
import numpy as np
import geomops
from geomops import _cpu
rng = np.random.default_rng(3)
ni, no, cin, cout = 301, 203, 5, 19    # odd sizes: every remainder path of the micro-kernels;
xi = rng.random((ni, 3)); xo = rng.random((no, 3))  # large enough for 2 threads to be used
d = np.linalg.norm(xo[:, None] - xi[None], axis=-1) < 0.3
idx = np.nonzero(d)[1].astype(np.int64); rs = np.concatenate([[0], np.cumsum(d.sum(1))])
res = {}
for dt in ("float32", "float64"):
    f = rng.standard_normal((3, 2, 3, cin, cout)).astype(dt)
    feat = rng.standard_normal((ni, cin)).astype(dt)
    g = rng.standard_normal((no, cout)).astype(dt)
    imp = rng.random(len(idx)).astype(dt)
    isum = geomops.reduce_subarrays_sum(imp, rs)
    inv = geomops.invert_neighbors_list(ni, idx, rs, imp)
    args = (f, xo.astype(dt), np.array([[0.8]], dt), np.zeros(3, dt), xi.astype(dt), feat, None, idx, imp, rs)
    targs = (f, xi.astype(dt), None, np.array([[0.8]], dt), np.zeros(3, dt), xo.astype(dt),
             rng.standard_normal((no, cin)).astype(dt), idx, isum, rs, inv.neighbors_index,
             inv.neighbors_attributes, inv.neighbors_row_splits)
    for nt in (1, 2):
        grads = geomops.continuous_conv_backward(*args, g, normalize=True, num_threads=nt)
        out = {"out": geomops.continuous_conv(*args, num_threads=nt),
               "transpose": geomops.continuous_conv_transpose(*targs, normalize=True, num_threads=nt),
               "filters": grads.filters, "inp_features": grads.inp_features,
               "neighbors_importance": grads.neighbors_importance}
        for name, a in out.items():
            res[f"{dt}/{nt}/{name}"] = a
np.savez(sys.argv[1], **res)
print(json.dumps({"kernel": _cpu.cpu_kernel(), "ignored": _cpu.cpu_kernel_request_ignored()}))
"""

SUPPORTED = _cpu.cpu_kernels_supported()


def _run(path, kernel):
    """Run SCRIPT with GEOMOPS_CPU_KERNEL=kernel (None: unset): (kernel info, results)."""
    env = dict(os.environ)
    env.pop("GEOMOPS_CPU_KERNEL", None)
    if kernel is not None:
        env["GEOMOPS_CPU_KERNEL"] = kernel
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(path)], env=env, capture_output=True, text=True,
                         check=True)
    with np.load(path) as f:
        return json.loads(out.stdout.strip().splitlines()[-1]), dict(f)


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("isa") / "default.npz", None)


def test_default_is_the_best_supported(default_run):
    info, _ = default_run
    assert info == {"kernel": SUPPORTED[-1], "ignored": False}


@pytest.mark.parametrize("kernel", SUPPORTED)
def test_each_variant_runs_and_agrees(kernel, default_run, tmp_path):
    info, res = _run(tmp_path / f"{kernel}.npz", kernel)
    assert info == {"kernel": kernel, "ignored": False}
    _, best = default_run
    assert res.keys() == best.keys()
    for key, a in res.items():
        dt, nt, name = key.split("/")
        if nt == "2":  # each variant is deterministic: bitwise the same for 1 and 2 threads
            np.testing.assert_array_equal(a, res[f"{dt}/1/{name}"], err_msg=key)
        b = best[key]
        assert a.dtype == b.dtype and a.shape == b.shape, key
        rtol = 2e-5 if dt == "float32" else 1e-12
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max(), err_msg=key)


UNSUPPORTED = [k for k in ("generic", "avx2", "avx512") if k not in SUPPORTED] + ["avx9000"]


@pytest.mark.parametrize("kernel", UNSUPPORTED)
def test_unsupported_request_falls_back_to_the_best(kernel, default_run, tmp_path):
    info, res = _run(tmp_path / "other.npz", kernel)
    assert info == {"kernel": SUPPORTED[-1], "ignored": True}
    _, best = default_run
    for key, a in res.items():
        np.testing.assert_array_equal(a, best[key], err_msg=key)
