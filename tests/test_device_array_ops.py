"""The device reductions behind validation (``_device.stats``, cuda/array_ops.cu) and the strided
copy, compared with NumPy, for sizes around the reduction's partition boundaries."""

import numpy as np
import pytest

from geomops import _backend, _device


@pytest.fixture(params=["emulated", pytest.param("cuda", marks=pytest.mark.cuda)])
def be(request):
    if request.param == "emulated":
        with _backend.cuda_emulation():
            yield _backend.resolve("cuda")
    else:
        yield _backend.resolve("cuda")


SIZES = [1, 2, 3, 255, 256, 257, 65535, 65536, 65537, 200003]


def reference(a):
    pairs = a[1:], a[:-1]
    if a.dtype.kind == "f":
        finite = a[np.isfinite(a)]
        lo = float(finite.min()) if finite.size else float("inf")
        hi = float(finite.max()) if finite.size else float("-inf")
        nonfinite = int(a.size - finite.size)
    else:
        lo, hi, nonfinite = int(a.min()), int(a.max()), 0
    return (lo, hi, nonfinite, int(np.sum(pairs[0] < pairs[1])), int(np.sum(pairs[0] <= pairs[1])), a[0].item(),
            a[-1].item())


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float32, np.float64])
def test_stats_match_numpy(be, n, dtype):
    rng = np.random.default_rng(n)
    if np.dtype(dtype).kind == "f":
        a = rng.standard_normal(n).astype(dtype)
        a[rng.integers(0, n, n // 50)] = np.nan
        a[rng.integers(0, n, n // 70)] = -np.inf
    else:
        a = rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max, n, dtype=dtype, endpoint=True)
    got = _device.stats(be.from_host(a))
    want = reference(a)
    assert tuple(got) == want


@pytest.mark.parametrize("n", [1, 256, 65537])
def test_stats_of_monotone_arrays(be, n):
    up = np.arange(n, dtype=np.int64)
    s = _device.stats(be.from_host(up))
    assert (s.min, s.max, s.decreasing, s.nonincreasing, s.first, s.last) == (0, n - 1, 0, 0, 0, n - 1)
    flat = np.repeat(np.array([0, 5], np.int32), [n, 1])
    s = _device.stats(be.from_host(flat))
    assert (s.decreasing, s.nonincreasing) == (0, n - 1)
    down = up[::-1].copy()
    s = _device.stats(be.from_host(down))
    assert (s.decreasing, s.nonincreasing) == (n - 1, n - 1)


def test_stats_all_nonfinite_and_extremes(be):
    s = _device.stats(be.from_host(np.array([np.nan, np.inf], np.float32)))
    assert (s.min, s.max, s.nonfinite) == (float("inf"), float("-inf"), 2)
    ext = np.array([np.iinfo(np.int64).max, np.iinfo(np.int64).min], np.int64)
    s = _device.stats(be.from_host(ext))
    assert (s.min, s.max, s.first, s.last) == (ext[1], ext[0], ext[0], ext[1])
    tiny = np.array([5e-324, -0.0, 1.7976931348623157e308])
    s = _device.stats(be.from_host(tiny))
    assert (s.min, s.max) == (-0.0, 1.7976931348623157e308)


def test_stats_rejects_what_it_does_not_summarise(be):
    with pytest.raises(TypeError, match="unsupported dtype int16"):
        be.kernels.array_stats(be.from_host(np.ones(3, np.int16)))
    with pytest.raises(ValueError, match="empty"):
        be.kernels.array_stats(be.from_host(np.ones(0, np.int32)))


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, np.complex128])
def test_strided_copy_of_every_itemsize(be, dtype):
    host = (np.arange(4 * 5 * 6) % 251).astype(dtype).reshape(4, 5, 6)
    base = be.from_host(host)
    view = host[::-2, 1:, ::3]
    offset = view.__array_interface__["data"][0] - host.__array_interface__["data"][0]
    out = _device.empty(be.kernels, view.shape, view.dtype, 0)
    be.kernels.array_copy_strided(base.ptr + offset, out.ptr, view.itemsize, view.shape, view.strides)
    np.testing.assert_array_equal(out.get(), view)


def test_strided_copy_limits(be):
    with pytest.raises(ValueError, match="at most"):
        be.kernels.array_copy_strided(0, 0, 8, (1,) * (be.kernels.MAX_DIMS + 1), (8,) * (be.kernels.MAX_DIMS + 1))
    out = _device.empty(be.kernels, (0, 3), np.float64, 0)
    be.kernels.array_copy_strided(0, out.ptr, 8, (0, 3), (24, 8))  # nothing to copy


def test_pointer_device(be):
    d = be.from_host(np.ones(3))
    assert be.kernels.pointer_device(d.ptr) == (0, True)
    assert be.kernels.pointer_device(0) == (be.kernels.get_device(), True)
