"""Every ISA variant of the search kernels (AVX-512, AVX2, generic) gives bitwise identical results.

The searches use no FMA (one rounding per operation), so unlike the cconv GEMM the variants must
agree to the last bit. The ISA is chosen once per process, so each variant runs in a subprocess
with GEOMOPS_CPU_KERNEL set, and its results are compared with those of the default choice."""

import os
import subprocess
import sys

import numpy as np
import pytest

from geomops import _cpu

SCRIPT = r"""
import sys
import numpy as np
import geomops
from geomops import _cpu
rng = np.random.default_rng(5)
out = {}
for dt in (np.float32, np.float64):
    tag = np.dtype(dt).name
    pts = rng.random((2500, 3)).astype(dt)
    q = rng.random((900, 3)).astype(dt)
    q[:150] = pts[:150]                                  # exact matches for ignore_query_point
    ps = np.array([0, 800, 800, 2500]); qs = np.array([0, 300, 450, 900])   # an item without points
    radii = rng.uniform(0.02, 0.12, 900).astype(dt)
    for metric in ("L1", "L2", "Linf"):
        for ign in (False, True):
            for it in (np.int32, np.int64):
                k = f"{tag}_{metric}_{ign}_{it.__name__}"
                res = {
                    "frs": geomops.fixed_radius_search(pts, q, 0.08, ps, qs, metric=metric, ignore_query_point=ign,
                                                       return_distances=True, sort=ign, index_dtype=it),
                    "rad": geomops.radius_search(pts, q, radii, ps, qs, metric=metric, ignore_query_point=ign,
                                                 return_distances=True, normalize_distances=ign, sort=ign,
                                                 index_dtype=it),
                    "knn5": geomops.knn_search(pts, q, 5, ps, qs, metric=metric, ignore_query_point=ign,
                                               return_distances=True, index_dtype=it),
                    "knn60": geomops.knn_search(pts, q, 60, ps, qs, metric=metric, ignore_query_point=ign,
                                                return_distances=True, index_dtype=it),
                }
                for name, r in res.items():
                    for i, a in enumerate(r):
                        out[f"{name}_{k}_{i}"] = a
    table = geomops.build_spatial_hash_table(pts, 0.08, ps)
    out[f"hash_{tag}"] = np.concatenate([np.asarray(a, np.int64) for a in table])
np.savez(sys.argv[1], kernel=np.array(_cpu.cpu_kernel()), **out)
"""


def _run(kernel, path):
    env = dict(os.environ)
    env.pop("GEOMOPS_CPU_KERNEL", None)
    if kernel:
        env["GEOMOPS_CPU_KERNEL"] = kernel
    subprocess.run([sys.executable, "-c", SCRIPT, str(path)], env=env, check=True, capture_output=True, text=True)
    return np.load(path)


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    return _run(None, tmp_path_factory.mktemp("isa") / "default.npz")


@pytest.mark.parametrize("kernel", _cpu.cpu_kernels_supported())
def test_search_isa_variants_are_bitwise_identical(kernel, default_run, tmp_path):
    res = _run(kernel, tmp_path / f"{kernel}.npz")
    assert str(res["kernel"]) == kernel
    assert sorted(res.files) == sorted(default_run.files)
    differ = [name for name in default_run.files if name != "kernel" and
              (res[name].dtype != default_run[name].dtype or res[name].shape != default_run[name].shape or
               res[name].tobytes() != default_run[name].tobytes())]
    assert not differ, f"{kernel} differs from the default ISA in {differ[:10]}"
