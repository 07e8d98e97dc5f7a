"""Every GEMM micro-kernel (AVX-512, AVX2+FMA, portable C) gives the same cconv results.

The kernel is chosen once per process, so each variant runs in a subprocess with
GEOMOPS_CPU_KERNEL set (it can only lower the ISA; unsupported requests fall back)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

SCRIPT = r"""
import json, sys
import numpy as np
import geomops
from geomops import _cpu
rng = np.random.default_rng(3)
ni, no, cin, cout = 60, 37, 5, 19      # odd sizes: every remainder path of the micro-kernels
xi = rng.random((ni, 3)); xo = rng.random((no, 3))
d = np.linalg.norm(xo[:, None] - xi[None], axis=-1) < 0.4
idx = np.nonzero(d)[1].astype(np.int64); rs = np.concatenate([[0], np.cumsum(d.sum(1))])
res = {"kernel": _cpu.gemm_kernel_name()}
for dt in ("float32", "float64"):
    f = rng.standard_normal((3, 2, 3, cin, cout)).astype(dt)
    feat = rng.standard_normal((ni, cin)).astype(dt)
    g = rng.standard_normal((no, cout)).astype(dt)
    imp = rng.random(len(idx)).astype(dt)
    args = (f, xo.astype(dt), np.array([[0.8]], dt), np.zeros(3, dt), xi.astype(dt), feat, None, idx, imp, rs)
    out = geomops.continuous_conv(*args)
    grads = geomops.continuous_conv_backward(*args, g, normalize=True)
    res[dt] = [out.tolist(), grads.filters.tolist(), grads.inp_features.tolist(),
               grads.neighbors_importance.tolist()]
print(json.dumps(res))
"""


def _run(kernel):
    env = dict(os.environ)
    env.pop("GEOMOPS_CPU_KERNEL", None)
    if kernel:
        env["GEOMOPS_CPU_KERNEL"] = kernel
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.parametrize("kernel", ["avx2", "generic"])
def test_micro_kernels_agree(kernel):
    best = _run(None)
    other = _run(kernel)
    if kernel == "generic":
        assert other["kernel"] == "generic"
    for dt, rtol in (("float32", 2e-5), ("float64", 1e-12)):
        for a, b in zip(best[dt], other[dt]):
            a, b = np.asarray(a), np.asarray(b)
            assert a.shape == b.shape
            np.testing.assert_allclose(b, a, rtol=rtol, atol=rtol * np.abs(a).max())
