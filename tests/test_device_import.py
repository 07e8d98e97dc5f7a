"""Import of foreign device arrays through the CUDA array interface (``_device.as_device_array``)
and ``_device.is_device_array``.

The producers are small classes exposing ``__cuda_array_interface__`` over emulated device memory
(``geomops._cuda_emu``), or real device memory in the tests marked ``cuda``.
"""

import gc
import weakref

import numpy as np
import pytest

from geomops import _backend, _device
from geomops._device import DeviceArray


@pytest.fixture(params=["emulated", pytest.param("cuda", marks=pytest.mark.cuda)])
def be(request):
    if request.param == "emulated":
        with _backend.cuda_emulation():
            yield _backend.resolve("cuda")
    else:
        yield _backend.resolve("cuda")


class CAIProducer:
    """A foreign device array: its interface dict describes memory that ``base`` owns."""

    def __init__(self, base, cai):
        self.base = base
        self.__cuda_array_interface__ = cai


def describe(be, host, view, *, version=3, stream=None, readonly=False, force_strides=False, **extra):
    """A producer for ``view`` (a NumPy view of ``host``) over a device copy of ``host``."""
    base = be.from_host(host)
    offset = view.__array_interface__["data"][0] - host.__array_interface__["data"][0]
    cai = {"shape": view.shape, "typestr": view.dtype.str, "data": (base.ptr + offset, readonly), "version": version,
           "strides": view.strides if force_strides or not view.flags.c_contiguous else None}
    if version >= 3:
        cai["stream"] = stream
    cai.update(extra)
    return CAIProducer(base, cai)


def test_contiguous_is_a_zero_copy_view_keeping_the_producer(be):
    host = np.arange(12, dtype=np.float32).reshape(3, 4)
    prod = describe(be, host, host)
    ref = weakref.ref(prod)
    v = _device.as_device_array(prod, "x")
    assert isinstance(v, DeviceArray) and v.ptr == prod.base.ptr and v.shape == (3, 4) and v.dtype == np.float32
    assert v.device == "cuda:0" and v._stream is None and not v.readonly
    del prod
    gc.collect()
    assert ref() is not None  # the view keeps the producer, which owns the memory
    np.testing.assert_array_equal(v.get(), host)
    del v
    gc.collect()
    assert ref() is None


@pytest.mark.parametrize("view", [lambda a: a[:, 1::2], lambda a: a.T, lambda a: a[::-1], lambda a: a[1:, ::-3],
                                  lambda a: a[:, :1]], ids=["step", "transpose", "reversed", "offset-neg", "column"])
def test_strided_is_copied_contiguous(be, view):
    host = np.arange(30, dtype=np.int64).reshape(5, 6)
    v_host = view(host)
    prod = describe(be, host, v_host, force_strides=True)
    v = _device.as_device_array(prod, "x")
    np.testing.assert_array_equal(v.get(), v_host)
    if not v_host.flags.c_contiguous:
        assert v.ptr != prod.__cuda_array_interface__["data"][0]


def test_c_strides_given_explicitly_stay_a_view(be):
    host = np.arange(6, dtype=np.float64).reshape(2, 3)
    prod = describe(be, host, host, force_strides=True)
    assert prod.__cuda_array_interface__["strides"] == (24, 8)
    assert _device.as_device_array(prod, "x").ptr == prod.base.ptr
    single = np.arange(3.0)[None, :]  # a size-1 dimension may have any stride
    prod = describe(be, single, single, strides=(999, 8))
    assert _device.as_device_array(prod, "x").ptr == prod.base.ptr


def test_unaligned_byte_strides_are_copied(be):
    raw = np.arange(40, dtype=np.uint8)
    view = np.lib.stride_tricks.as_strided(raw[1:].view(np.uint8), shape=(3, 2), strides=(5, 1))
    prod = CAIProducer(be.from_host(raw), {"shape": (3, 2), "typestr": "|u1", "version": 3, "stream": None,
                                           "data": (0, False), "strides": (5, 1)})
    prod.__cuda_array_interface__["data"] = (prod.base.ptr + 1, False)
    np.testing.assert_array_equal(_device.as_device_array(prod, "x").get(), view)
    halves = np.arange(20, dtype=np.float16)
    prod = describe(be, halves, halves[1::3], force_strides=True)  # 2-byte elements, 6-byte strides
    np.testing.assert_array_equal(_device.as_device_array(prod, "x").get(), halves[1::3])


def test_version_2_and_3_and_the_stream(be):
    host = np.arange(4, dtype=np.int32)
    v2 = _device.as_device_array(describe(be, host, host, version=2), "x")
    assert v2._stream is None
    np.testing.assert_array_equal(v2.get(), host)
    # v3 with a stream: recorded on the view, so that readers wait for it
    pending = be.kernels.Stream(0)
    handle = pending.handle or 1
    v3 = _device.as_device_array(describe(be, host, host, stream=handle), "x")
    assert v3._stream == handle and v3.__cuda_array_interface__["stream"] == handle
    np.testing.assert_array_equal(v3.get(), host)  # waited for the stream
    assert v3._stream is None
    # the stream key of a v2 interface is not part of v2: ignored
    assert _device.as_device_array(describe(be, host, host, version=2, stream=0), "x")._stream is None


@pytest.mark.parametrize("stream", [0, -4, True, "1", 1.0])
def test_bad_stream_in_the_interface(be, stream):
    host = np.zeros(2)
    with pytest.raises(ValueError, match=r"^x: the __cuda_array_interface__ stream must be None or a positive int"):
        _device.as_device_array(describe(be, host, host, stream=stream), "x")


def test_readonly_flag(be):
    host = np.arange(3.0)
    v = _device.as_device_array(describe(be, host, host, readonly=True), "x")
    assert v.readonly and v.__cuda_array_interface__["data"][1] is True


def test_bad_interfaces(be):
    host = np.zeros(3, np.float32)
    with pytest.raises(TypeError, match="^x: masked device arrays"):
        _device.as_device_array(describe(be, host, host, mask=object()), "x")
    with pytest.raises(TypeError, match="^x has non-native byte order"):
        _device.as_device_array(describe(be, host, host, typestr=">f4"), "x")
    with pytest.raises(TypeError, match="^x has the unknown __cuda_array_interface__ typestr"):
        _device.as_device_array(describe(be, host, host, typestr="<q9"), "x")


def test_empty_array_with_a_null_pointer(be):
    prod = CAIProducer(None, {"shape": (0, 3), "typestr": "<f8", "data": (0, False), "version": 3, "stream": None,
                              "strides": None})
    v = _device.as_device_array(prod, "x")
    assert v.shape == (0, 3) and v.ptr == 0 and v.device == "cuda:0"
    assert v.get().shape == (0, 3)


class Raising:
    @property
    def __cuda_array_interface__(self):
        raise RuntimeError("Can't get __cuda_array_interface__ on a tensor that requires grad")


class CpuTensorLike:
    """Like a torch CPU tensor: the interface raises AttributeError, DLPack says kDLCPU."""

    @property
    def __cuda_array_interface__(self):
        raise AttributeError("not on CUDA")

    def __dlpack_device__(self):
        return (1, 0)


def test_is_device_array(be):
    host = np.arange(3.0)
    d = be.from_host(host)
    assert _device.is_device_array(d)
    assert _device.is_device_array(describe(be, host, host))
    for x in (host, [1.0, 2.0], (1, 2), 3.0, 2, np.float32(1), None, "abc", CpuTensorLike(), Raising(), object()):
        assert not _device.is_device_array(x), x
    with pytest.raises(TypeError, match="^y is not a device array"):
        _device.as_device_array(host, "y")
    assert _device.as_device_array(d, "y") is d


def test_locate(be):
    host = np.arange(3.0)
    prod = describe(be, host, host)
    assert _device.locate(prod) == ("cuda:0", 0, be.kernels)
    d = be.from_host(host)
    assert _device.locate(d) == ("cuda:0", 0, be.kernels)
    assert _device.shape_of(prod) == (3,) and _device.shape_of(d) == (3,)


@pytest.mark.cuda
def test_host_memory_is_refused_on_a_gpu():
    host = np.arange(3.0)
    prod = CAIProducer(host, {"shape": (3,), "typestr": "<f8", "data": (host.ctypes.data, False), "version": 3,
                              "stream": None, "strides": None})
    with pytest.raises(ValueError, match="^x: its __cuda_array_interface__ points to host memory"):
        _device.as_device_array(prod, "x")
