"""Impossible or too large allocations raise MemoryError naming the bytes (docs/architecture.md,
"Interrupts and memory limits"), on every backend: never a crash, a wrapped size or the OOM killer.

Sizes are faked cheaply: counts that only the count phase of a search computes (no neighbor is
ever searched), broadcast views that only a copy would materialise, and a memory limit lowered
for the test (the host's available memory seen by geomops._memory, the emulated device's
GEOMOPS_CUDA_EMU_MAX_BYTES, or an address-space limit in a subprocess for the C kernels'
temporaries)."""

import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import geomops
from geomops import _memory

LIMIT = 64 << 20  # the memory a test pretends to have


@pytest.fixture
def small_memory(monkeypatch):
    """Pretend the host has LIMIT bytes available and the emulated device LIMIT bytes in all."""
    monkeypatch.setattr(_memory, "available_bytes", lambda: LIMIT)
    monkeypatch.setattr(_memory, "CHECK_BYTES", 1 << 20)
    monkeypatch.setenv("GEOMOPS_CUDA_EMU_MAX_BYTES", str(LIMIT))


def bytes_in(message):
    """The byte counts a message names."""
    return [int(m) for m in re.findall(r"(\d+) bytes", message)]


def test_neighbor_count_over_int32(device, small_memory):
    # 50000 queries x k = 50000: 2.5e9 entries, more than int32 counts; the count phase gets the
    # total right in int64 and the int32 index output of 10 GB is refused before any search
    pts = np.random.default_rng(0).random((50000, 3), dtype=np.float32)
    with pytest.raises(MemoryError) as err:
        geomops.knn_search(pts, pts, 50000, index_dtype=np.int32, device=device)
    assert 2_500_000_000 * 4 in bytes_in(str(err.value)), str(err.value)


def test_size_over_int64(device):
    # the row splits of 2**62 points need 2**65 bytes: more than any allocation (and int64) holds
    with pytest.raises(MemoryError, match="more than any allocation can hold") as err:
        geomops.invert_neighbors_list(2**62, np.zeros(3, np.int32), np.array([0, 3], np.int64),
                                      np.zeros(0, np.float32), device=device)
    assert (2**62 + 1) * 8 in bytes_in(str(err.value))


def test_broadcast_input_copy(device):
    # a zero-stride view of 2**60 neighbor entries: its contiguous copy (4 EiB) is refused by name
    idx = np.broadcast_to(np.int32(0), (2**60,))
    pts = np.zeros((4, 3), np.float32)
    with pytest.raises(MemoryError, match="neighbors_index") as err:
        geomops.continuous_conv(np.ones((1, 1, 1, 2, 2), np.float32), pts[:1], 1.0, np.zeros(3, np.float32), pts,
                                np.ones((4, 2), np.float32), None, idx, None, np.array([0, 2**60]), device=device)
    assert 2**62 in bytes_in(str(err.value))


def test_outputs_of_one_call_count_together(device, small_memory):
    # host: each render buffer of a 2048 x 2048 image fits LIMIT, all of them together do not;
    # the emulated device refuses a single allocation above LIMIT (object_coordinates, 4096^2)
    from geomops.pose import Camera, Mesh, Scene, SceneObject
    side = 2048 if device == "cpu" else 4096
    pose = np.eye(4)
    pose[2, 3] = 2.0
    scene = Scene(Camera(side, side, side / 2, side / 2, side / 2, side / 2), [SceneObject(Mesh.box(0.3), pose)])
    with pytest.raises(MemoryError) as err:
        geomops.pose.render(scene, buffers="gradient", device=device)
    msg = str(err.value)
    assert any(b >= side * side * 4 for b in bytes_in(msg)), msg
    if device == "cpu":
        assert "with the call's other outputs" in msg


def test_next_call_works_after_memory_error(device, small_memory):
    pts = np.random.default_rng(1).random((6000, 3), dtype=np.float32)
    with pytest.raises(MemoryError):  # 36e6 entries: 144 MB of int32 indices
        geomops.knn_search(pts, pts, 6000, device=device)
    res = geomops.knn_search(pts, pts, 4, device=device)
    ref = geomops.knn_search(pts, pts, 4)
    idx = res.neighbors_index if isinstance(res.neighbors_index, np.ndarray) else res.neighbors_index.get()
    np.testing.assert_array_equal(idx, ref.neighbors_index)


@pytest.mark.skipif(sys.platform != "linux" or os.environ.get("GEOMOPS_SANITIZED") == "1",
                    reason="uses RLIMIT_AS (AddressSanitizer reserves terabytes of address space)")
def test_kernel_temporaries_over_the_limit():
    # kNN with ignore_query_point keeps every found row in a C temporary before the output
    # exists: 20000 x 20000 entries (2.4 GB) under a 1.5 GB address-space limit must fail in
    # gm_host_alloc with the size, not crash
    code = textwrap.dedent("""
        import resource
        import numpy as np
        import geomops
        pts = np.random.default_rng(0).random((20000, 3), dtype=np.float32)
        with open("/proc/self/statm") as f:
            vm = int(f.read().split()[0]) * 4096
        resource.setrlimit(resource.RLIMIT_AS, (vm + (1500 << 20),) * 2)
        try:
            geomops.knn_search(pts, pts, 20000, ignore_query_point=True, return_distances=True)
        except MemoryError as e:
            print("MemoryError:", e)
        res = geomops.knn_search(pts, pts, 3, ignore_query_point=True)
        print("next call:", res.neighbors_index.shape)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, OMP_NUM_THREADS="2"))
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()[:2]
    assert first.startswith("MemoryError:") and "host memory" in first, out.stdout
    assert max(bytes_in(first)) >= 20000 * 20000 * 4, first
    assert second == "next call: (40000,)", out.stdout
