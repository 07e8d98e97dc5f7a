"""DLPack export (``DeviceArray.__dlpack__``) and import (``_device.as_device_array``).

The capsules are read here through ctypes with the structs of the DLPack spec written out again,
independently of geomops' Cython declarations, so a layout mistake on either side shows. Emulated
arrays (host memory) describe themselves as kDLCPU, so ``np.from_dlpack`` takes them; the
"foreign" CUDA producers are small classes whose capsules say kDLCUDA.
"""

import ctypes
import gc
import sys
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


# ---- the DLPack ABI, from the spec ---------------------------------------------------------------

class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", DLDevice), ("ndim", ctypes.c_int32), ("dtype", DLDataType),
                ("shape", ctypes.POINTER(ctypes.c_int64)), ("strides", ctypes.POINTER(ctypes.c_int64)),
                ("byte_offset", ctypes.c_uint64)]


class DLManagedTensor(ctypes.Structure):
    pass


DLManagedTensor._fields_ = [("dl_tensor", DLTensor), ("manager_ctx", ctypes.c_void_p),
                            ("deleter", ctypes.CFUNCTYPE(None, ctypes.POINTER(DLManagedTensor)))]


class DLPackVersion(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint32), ("minor", ctypes.c_uint32)]


class DLManagedTensorVersioned(ctypes.Structure):
    pass


DLManagedTensorVersioned._fields_ = [
    ("version", DLPackVersion), ("manager_ctx", ctypes.c_void_p),
    ("deleter", ctypes.CFUNCTYPE(None, ctypes.POINTER(DLManagedTensorVersioned))),
    ("flags", ctypes.c_uint64), ("dl_tensor", DLTensor)]

READ_ONLY, IS_COPIED = 1, 2

_api = ctypes.pythonapi
_api.PyCapsule_IsValid.restype = ctypes.c_int
_api.PyCapsule_IsValid.argtypes = [ctypes.py_object, ctypes.c_char_p]
_api.PyCapsule_GetPointer.restype = ctypes.c_void_p
_api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
_api.PyCapsule_GetName.restype = ctypes.c_char_p
_api.PyCapsule_GetName.argtypes = [ctypes.py_object]
_api.PyCapsule_SetName.restype = ctypes.c_int
_api.PyCapsule_SetName.argtypes = [ctypes.py_object, ctypes.c_char_p]
_USED = {b"dltensor": ctypes.c_char_p(b"used_dltensor"),
         b"dltensor_versioned": ctypes.c_char_p(b"used_dltensor_versioned")}  # names must outlive capsules


def capsule_name(cap):
    return _api.PyCapsule_GetName(cap)


def managed(cap):
    """The capsule's managed tensor (legacy or versioned) as a ctypes struct."""
    name = capsule_name(cap)
    kind = DLManagedTensorVersioned if name == b"dltensor_versioned" else DLManagedTensor
    return kind.from_address(_api.PyCapsule_GetPointer(cap, name))


def consume(cap):
    """What a consumer does: take the tensor, rename the capsule; returns the managed tensor."""
    m = managed(cap)
    name = capsule_name(cap)
    _api.PyCapsule_SetName(cap, _USED[name])
    return m


def tensor_info(t):
    return {"data": t.data or 0, "device": (t.device.device_type, t.device.device_id), "ndim": t.ndim,
            "dtype": (t.dtype.code, t.dtype.bits, t.dtype.lanes),
            "shape": tuple(t.shape[i] for i in range(t.ndim)),
            "strides": None if not t.strides else tuple(t.strides[i] for i in range(t.ndim)),
            "byte_offset": t.byte_offset}


def alive(be):
    return be.kernels._dlpack_alive()


# ---- export ------------------------------------------------------------------------------------

@pytest.mark.parametrize("versioned", [False, True])
def test_export_capsule_layout(be, versioned):
    d = be.from_host(np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    cap = d.__dlpack__(max_version=(1, 0)) if versioned else d.__dlpack__()
    assert capsule_name(cap) == (b"dltensor_versioned" if versioned else b"dltensor")
    m = managed(cap)
    info = tensor_info(m.dl_tensor)
    assert info == {"data": d.ptr, "device": d.__dlpack_device__(), "ndim": 3, "dtype": (2, 32, 1),
                    "shape": (2, 3, 4), "strides": (12, 4, 1), "byte_offset": 0}
    if versioned:
        assert (m.version.major, m.version.minor) == (1, 0) and m.flags == 0


def test_dlpack_device(be):
    d = be.from_host(np.ones(2))
    assert d.__dlpack_device__() == ((1, 0) if be.kernels.EMULATED else (2, 0))


@pytest.mark.parametrize("dtype,code", [(np.bool_, (6, 8, 1)), (np.int8, (0, 8, 1)), (np.uint16, (1, 16, 1)),
                                        (np.int64, (0, 64, 1)), (np.float16, (2, 16, 1)), (np.float64, (2, 64, 1)),
                                        (np.complex64, (5, 64, 1))])
def test_export_dtype_codes(be, dtype, code):
    cap = be.from_host(np.zeros(3, dtype)).__dlpack__()
    assert tensor_info(managed(cap).dl_tensor)["dtype"] == code


@pytest.mark.parametrize("versioned", [False, True])
def test_consumer_runs_the_deleter_once(be, versioned):
    d = be.from_host(np.arange(5.0))
    base = alive(be)
    refs = sys.getrefcount(d)
    cap = d.__dlpack__(max_version=(1, 0) if versioned else None)
    held = (alive(be), sys.getrefcount(d))
    m = consume(cap)
    m.deleter(ctypes.byref(m))
    after = (alive(be), sys.getrefcount(d))
    del cap  # consumed ("used_..."): the capsule must not run the deleter again
    gc.collect()
    assert held == (base + 1, refs + 1)
    assert after == (base, refs)
    assert (alive(be), sys.getrefcount(d)) == (base, refs)


@pytest.mark.parametrize("versioned", [False, True])
def test_unconsumed_capsule_releases_when_collected(be, versioned):
    d = be.from_host(np.arange(5.0))
    ref = weakref.ref(d)
    base = alive(be)
    cap = d.__dlpack__(max_version=(1, 0) if versioned else None)
    del d
    kept = ref() is not None  # the capsule keeps the array (and its memory) alive
    del cap
    gc.collect()
    assert kept and ref() is None and alive(be) == base


def test_flags_readonly_and_copy(be):
    host = np.arange(6, dtype=np.int32)
    d = be.from_host(host)
    ro = DeviceArray(d, d.ptr, d.shape, d.dtype, d.device_id, d._module, readonly=True)
    cap = ro.__dlpack__(max_version=(1, 1))
    assert managed(cap).flags == READ_ONLY
    cap = d.__dlpack__(max_version=(1, 0), copy=True)
    m = managed(cap)
    assert m.flags == IS_COPIED and m.dl_tensor.data != d.ptr
    copy = (ctypes.c_int32 * 6).from_address(m.dl_tensor.data) if be.kernels.EMULATED else None
    if copy is not None:
        assert list(copy) == host.tolist()


def test_export_to_the_cpu_copies(be):
    host = np.arange(6, dtype=np.float64).reshape(2, 3)
    d = be.from_host(host)
    cap = d.__dlpack__(max_version=(1, 0), dl_device=(1, 0), copy=True if not be.kernels.EMULATED else None)
    m = managed(cap)
    info = tensor_info(m.dl_tensor)
    assert info["device"] == (1, 0) and info["shape"] == (2, 3)
    got = np.ctypeslib.as_array((ctypes.c_double * 6).from_address(info["data"])).reshape(2, 3)
    np.testing.assert_array_equal(got, host)
    if not be.kernels.EMULATED:
        assert m.flags & IS_COPIED
        with pytest.raises(BufferError, match="copy=False"):
            d.__dlpack__(dl_device=(1, 0), copy=False)


def test_export_refuses_other_devices(be):
    d = be.from_host(np.ones(2))
    with pytest.raises(BufferError, match="own device or to the CPU"):
        d.__dlpack__(dl_device=(2, 5))


def test_export_stream_argument(be):
    d = be.from_host(np.ones(2))
    if be.kernels.EMULATED:
        with pytest.raises(ValueError, match="stream must be None for an emulated DeviceArray"):
            d.__dlpack__(stream=1)
        return
    with pytest.raises(ValueError, match="stream=0 is ambiguous"):
        d.__dlpack__(stream=0)
    with pytest.raises(TypeError, match="stream must be None or an int"):
        d.__dlpack__(stream="s")
    with pytest.raises(ValueError, match="stream must be -1"):
        d.__dlpack__(stream=-2)
    pending = be.kernels.Stream(0)
    consumer = be.kernels.Stream(0)
    for s in (None, 1, 2, -1, consumer.handle):
        d._stream = pending.handle  # the consumer's stream waits for it (not with -1)
        assert capsule_name(d.__dlpack__(stream=s)) == b"dltensor"


def test_numpy_from_dlpack_shares_emulated_memory():
    with _backend.cuda_emulation():
        be = _backend.resolve("cuda")
        host = np.arange(12, dtype=np.float32).reshape(3, 4)
        d = be.from_host(host)
        base = alive(be)
        view = np.from_dlpack(d)  # NumPy asks for a versioned capsule
        np.testing.assert_array_equal(view, host)
        view[1, 2] = -5.0  # zero copy: the same memory
        assert d.get()[1, 2] == -5.0

        class Legacy:  # a consumer path through a legacy capsule
            def __dlpack_device__(self):
                return d.__dlpack_device__()

            def __dlpack__(self, **kwargs):
                return d.__dlpack__()

        legacy = np.from_dlpack(Legacy())
        assert legacy.ctypes.data == d.ptr
        assert alive(be) == base + 2
        del view, legacy
        gc.collect()
        assert alive(be) == base
        copied = np.from_dlpack(d, copy=True)
        assert copied.ctypes.data != d.ptr
        np.testing.assert_array_equal(copied, d.get())


# ---- import --------------------------------------------------------------------------------------

class DLProducer:
    """A foreign CUDA producer: a capsule over ``base``'s memory saying kDLCUDA, optionally with
    another shape / strides (elements) / byte_offset / dtype patched in."""

    def __init__(self, base, *, shape=None, strides=None, byte_offset=0, dtype=None, readonly=False, legacy_only=False,
                 old_signature=False, version=(1, 0), device=(2, 0)):
        self.base, self.shape, self.strides, self.byte_offset = base, shape, strides, byte_offset
        self.dtype, self.readonly, self.legacy_only, self.version = dtype, readonly, legacy_only, version
        self.device = device
        self.calls = []
        if old_signature:
            self.__dlpack__ = self._old_dlpack

    def __dlpack_device__(self):
        return self.device

    def _capsule(self, versioned):
        b = self.base
        cap = b._module.dlpack_export(b, b.ptr, b.shape, b.dtype, self.device[0], self.device[1], versioned,
                                      readonly=self.readonly)
        m = managed(cap)
        t = m.dl_tensor
        if versioned:
            m.version.major, m.version.minor = self.version
        if self.shape is not None:
            for i, s in enumerate(self.shape):
                t.shape[i] = s
        if self.strides is not None:
            for i, s in enumerate(self.strides):
                t.strides[i] = s
        elif self.shape is not None:
            t.strides = None  # NULL: C-contiguous
        t.byte_offset = self.byte_offset
        if self.dtype is not None:
            t.dtype.code, t.dtype.bits, t.dtype.lanes = self.dtype
        return cap

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        self.calls.append({"stream": stream, "max_version": max_version})
        return self._capsule(max_version is not None and max_version[0] >= 1 and not self.legacy_only)

    def _old_dlpack(self, stream=None):
        self.calls.append({"stream": stream})
        return self._capsule(False)


@pytest.mark.parametrize("legacy_only", [False, True])
def test_import_contiguous_is_a_view(be, legacy_only):
    host = np.arange(12, dtype=np.float64).reshape(3, 4)
    base = be.from_host(host)
    prod = DLProducer(base, legacy_only=legacy_only)
    assert _device.is_device_array(prod)
    start = alive(be)
    v = _device.as_device_array(prod, "x")
    assert isinstance(v, DeviceArray) and v.ptr == base.ptr and v.shape == (3, 4) and v.dtype == np.float64
    assert v.device == "cuda:0"
    np.testing.assert_array_equal(v.get(), host)
    call = prod.calls[0]
    assert call["max_version"] == (1, 0) and isinstance(call["stream"], int) and call["stream"] not in (0, None)
    assert alive(be) == start + 1  # the view holds the producer's tensor
    del v
    gc.collect()
    assert alive(be) == start  # its deleter ran, once


def test_import_from_a_producer_without_max_version(be):
    host = np.arange(4, dtype=np.int32)
    prod = DLProducer(be.from_host(host), old_signature=True)
    v = _device.as_device_array(prod, "x")
    np.testing.assert_array_equal(v.get(), host)
    assert len(prod.calls) == 1 and "max_version" not in prod.calls[0]


def test_import_byte_offset(be):
    host = np.arange(10, dtype=np.int64)
    base = be.from_host(host)
    v = _device.as_device_array(DLProducer(base, shape=(7,), byte_offset=3 * 8), "x")
    assert v.ptr == base.ptr + 24
    np.testing.assert_array_equal(v.get(), host[3:])


def test_import_strided_is_copied_contiguous(be):
    host = np.arange(24, dtype=np.float32).reshape(4, 6)
    base = be.from_host(host)
    start = alive(be)
    v = _device.as_device_array(DLProducer(base, shape=(4, 3), strides=(6, 2), byte_offset=4), "x")
    assert v.ptr != base.ptr + 4 and v.shape == (4, 3)
    np.testing.assert_array_equal(v.get(), host[:, 1::2])
    gc.collect()
    assert alive(be) == start  # the copy does not hold the producer
    # a transposed (Fortran-order) view
    t = _device.as_device_array(DLProducer(base, shape=(6, 4), strides=(1, 6)), "x")
    np.testing.assert_array_equal(t.get(), host.T)
    # strides of size-1 dimensions do not matter: still a view
    one = _device.as_device_array(DLProducer(be.from_host(host[:1]), shape=(1, 6), strides=(99, 1)), "x")
    assert one.ptr != 0 and one.shape == (1, 6)


def test_import_readonly(be):
    base = be.from_host(np.arange(3.0))
    v = _device.as_device_array(DLProducer(base, readonly=True), "x")
    assert v.readonly and v.__cuda_array_interface__["data"] == (base.ptr, True)
    assert managed(v.__dlpack__(max_version=(1, 0))).flags == READ_ONLY
    assert not _device.as_device_array(DLProducer(base, legacy_only=True, readonly=True), "x").readonly


@pytest.mark.parametrize("dtype,text", [((4, 16, 1), "bfloat16"), ((2, 32, 2), "float32x2"), ((0, 128, 1), "int128"),
                                        ((9, 8, 1), "code9_8")])
def test_import_unsupported_dtype(be, dtype, text):
    base = be.from_host(np.zeros(4, np.float32))
    start = alive(be)
    with pytest.raises(TypeError, match=f"^x has dtype {text}, which geomops does not support$"):
        _device.as_device_array(DLProducer(base, dtype=dtype), "x")
    gc.collect()
    assert alive(be) == start  # the consumed tensor was released


def test_import_refuses_a_newer_major_version_without_consuming(be):
    base = be.from_host(np.zeros(4, np.float32))
    prod = DLProducer(base, version=(2, 0))
    cap = prod._capsule(True)
    with pytest.raises(BufferError, match="version 2.0"):
        be.kernels.dlpack_import(cap)
    assert capsule_name(cap) == b"dltensor_versioned"  # not consumed: the capsule still owns it
    with pytest.raises(BufferError, match="version 2.0"):
        _device.as_device_array(prod, "x")


def test_import_consumes_a_capsule_once(be):
    cap = be.from_host(np.zeros(2)).__dlpack__()
    holder, info = be.kernels.dlpack_import(cap)
    assert capsule_name(cap) == b"used_dltensor" and info["shape"] == (2,) and not info["versioned"]
    with pytest.raises(TypeError, match="unconsumed DLPack capsule"):
        be.kernels.dlpack_import(cap)
    with pytest.raises(TypeError, match="pickled"):
        __import__("pickle").dumps(holder)


def test_host_dlpack_producers_are_not_device_arrays(be):
    a = np.arange(3.0)
    assert not _device.is_device_array(a)  # NumPy has __dlpack__ on kDLCPU
    host_prod = DLProducer(be.from_host(a), device=(1, 0))
    assert not _device.is_device_array(host_prod)
    with pytest.raises(TypeError, match="x is not a device array"):
        _device.as_device_array(host_prod, "x")
    assert _device.is_device_array(DLProducer(be.from_host(a), device=(13, 0)))  # kDLCUDAManaged
