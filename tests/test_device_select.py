"""Backend selection from a call's inputs (``_backend.select``) and the stream of a call
(``_backend.stream_handle``, ``_backend.call_stream``), with the exact error wording."""

import re

import numpy as np
import pytest

import geomops
from geomops import _backend, _device


@pytest.fixture(params=["emulated", pytest.param("cuda", marks=pytest.mark.cuda)])
def be(request):
    if request.param == "emulated":
        with _backend.cuda_emulation():
            yield _backend.resolve("cuda")
    else:
        yield _backend.resolve("cuda")


class OnDevice:
    """A foreign device array that only says where it is (DLPack device query)."""

    def __init__(self, ordinal):
        self.ordinal = ordinal

    def __dlpack_device__(self):
        return (2, self.ordinal)

    def __dlpack__(self, **kwargs):  # pragma: no cover - select never imports
        raise AssertionError("select must not consume the producer")


class CAIProducer:
    def __init__(self, base):
        self.base = base
        self.__cuda_array_interface__ = base.__cuda_array_interface__


def _exact(text):
    return "^" + re.escape(text) + "$"


# ---- select ------------------------------------------------------------------------------------

def test_host_inputs_run_on_the_cpu():
    be, on_device = _backend.select(None, a=np.ones(3), b=[1, 2], c=2.0, d=None)
    assert be is _backend.cpu() and on_device is False
    assert _backend.select("cpu", a=np.ones(3)) == (_backend.cpu(), False)
    assert _backend.select(None) == (_backend.cpu(), False)


def test_device_inputs_run_on_their_device(be):
    d = be.from_host(np.ones(3))
    got, on_device = _backend.select(None, a=d, b=CAIProducer(be.from_host(np.ones(2))), c=None)
    assert on_device is True and got.is_cuda and got.device_id == 0 and got.kernels is be.kernels
    for device in ("cuda", "cuda:0", " CUDA:0 "):
        got, on_device = _backend.select(device, a=d)
        assert on_device and got.device == "cuda:0"


def test_numpy_inputs_with_device_cuda_run_on_the_gpu(be):
    got, on_device = _backend.select("cuda", a=np.ones(3), b=[1.0])
    assert got.is_cuda and got.device_id == 0 and got.kernels is be.kernels and on_device is False


def test_device_cuda_without_a_device_says_why():
    if geomops.cuda_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(RuntimeError, match="device='cuda' cannot be used"):
        _backend.select("cuda", a=np.ones(3))


@pytest.mark.parametrize("host,kind", [(np.ones(3), "a NumPy array"), ([1, 2], "a Python list"),
                                       ((1, 2), "a Python tuple"), (0.5, "a Python float"), (3, "a Python int"),
                                       (np.float32(1), "a NumPy scalar")])
def test_mixed_host_and_device_inputs(be, host, kind):
    d = be.from_host(np.ones(3))
    for device in (None, "cuda", "cpu"):
        with pytest.raises(ValueError, match=_exact(
                f"neighbors_index is {kind} but filters is on cuda:0; pass every array input of one call on the "
                "same device (geomops.to_device() copies a NumPy array to the GPU, DeviceArray.get() copies one "
                "back)")):
            _backend.select(device, filters=d, neighbors_index=host)


def test_optional_absent_host_inputs_are_ignored(be):
    d = be.from_host(np.ones(3))
    got, on_device = _backend.select(None, optional=("inp_importance", "neighbors_importance"), filters=d,
                                     inp_importance=np.zeros(0), neighbors_importance=[], out_importance=None)
    assert on_device and got.is_cuda
    with pytest.raises(ValueError, match="^inp_importance is a NumPy array but filters is on cuda:0"):
        _backend.select(None, optional=("inp_importance",), filters=d, inp_importance=np.zeros(2))
    with pytest.raises(ValueError, match="^neighbors_index is a NumPy array but filters is on cuda:0"):
        _backend.select(None, filters=d, neighbors_index=np.zeros(0))  # not optional: an empty array is an input


def test_inputs_on_two_devices(be):
    d = be.from_host(np.ones(3))
    with pytest.raises(ValueError, match=_exact(
            "filters is on cuda:0 but inp_features is on cuda:1; all device inputs of one call must be on the same "
            "device")):
        _backend.select(None, filters=d, inp_features=OnDevice(1))


def test_device_cpu_with_a_device_input(be):
    with pytest.raises(ValueError, match=_exact(
            "device='cpu' but points is on cuda:0; copy it to the host first (DeviceArray.get()) or pass "
            "device=None to run on cuda:0")):
        _backend.select("cpu", points=be.from_host(np.ones((2, 3))), queries=OnDevice(0))


def test_device_cuda_n_with_inputs_elsewhere(be):
    with pytest.raises(ValueError, match=_exact(
            "device='cuda:1' but points is on cuda:0; pass device=None to run where the inputs are, or move them "
            "with geomops.to_device(x, 'cuda:1')")):
        _backend.select("cuda:1", points=be.from_host(np.ones((2, 3))))


@pytest.mark.parametrize("device,exc", [(3, TypeError), ("gpu", ValueError), ("cuda:x", ValueError)])
def test_bad_device_values(device, exc):
    with pytest.raises(exc, match="device must be None, 'cpu', 'cuda' or 'cuda:N'"):
        _backend.select(device, a=np.ones(2))


def test_select_does_not_import_dlpack_producers(be):
    got, on_device = _backend.select(None, a=OnDevice(0))
    assert on_device and got.device == "cuda:0"


# ---- streams -----------------------------------------------------------------------------------

class ProtoStream:
    def __init__(self, handle, method=True):
        self.handle_ = handle
        if method:
            self.__cuda_stream__ = lambda: (0, handle)
        else:
            self.__cuda_stream__ = (0, handle)


class TorchLikeStream:
    def __init__(self, handle):
        self.cuda_stream = handle


class CupyLikeStream:
    def __init__(self, handle):
        self.ptr = handle


def test_stream_handle_accepts():
    assert _backend.stream_handle(None) is None
    assert _backend.stream_handle(0) == 0
    assert _backend.stream_handle(np.int64(7)) == 7
    assert _backend.stream_handle(ProtoStream(11)) == 11
    assert _backend.stream_handle(ProtoStream(12, method=False)) == 12
    assert _backend.stream_handle(TorchLikeStream(13)) == 13
    assert _backend.stream_handle(CupyLikeStream(14)) == 14
    with _backend.cuda_emulation():
        s = _backend.resolve("cuda").kernels.Stream(0)
        assert _backend.stream_handle(s) == s.handle


@pytest.mark.parametrize("stream,exc,text", [
    (True, TypeError, "stream must be None, an int cudaStream_t handle or a CUDA stream object, got bool"),
    ("s", TypeError, "stream must be None, an int cudaStream_t handle or a CUDA stream object (with "
                     "__cuda_stream__, .cuda_stream or .ptr), got str"),
    (1.5, TypeError, "stream must be None, an int cudaStream_t handle or a CUDA stream object (with "
                     "__cuda_stream__, .cuda_stream or .ptr), got float"),
    (-1, ValueError, "stream must be a cudaStream_t handle (an int >= 0), got -1"),
    (1 << 64, ValueError, f"stream must be a cudaStream_t handle (an int >= 0), got {1 << 64}"),
])
def test_stream_handle_rejects(stream, exc, text):
    with pytest.raises(exc, match=_exact(text)):
        _backend.stream_handle(stream)


def test_stream_protocol_with_a_bad_value():
    class Bad:
        __cuda_stream__ = "nope"
    with pytest.raises(TypeError, match="stream.__cuda_stream__ must give"):
        _backend.stream_handle(Bad())


def test_call_stream_on_the_cpu():
    cpu = _backend.cpu()
    with _backend.call_stream(cpu) as cs:
        assert cs.handle == 0 and not cs.explicit
        out = cs.empty((2,), np.float32)
        assert isinstance(out, np.ndarray)
    with pytest.raises(ValueError, match=_exact("stream=5 is only used on a CUDA device, but this call runs on the CPU")):
        _backend.call_stream(cpu, 5)
    with pytest.raises(TypeError, match="^stream must be None"):
        _backend.call_stream(cpu, "x")


def test_call_stream_default_is_pooled_and_synchronised(be):
    key = (be.kernels.__name__, 0)
    with _backend.call_stream(be) as cs:
        assert not cs.explicit
        out = cs.empty((3,), np.float64)
        with _backend.call_stream(be) as inner:  # concurrent calls take distinct streams
            if not be.kernels.EMULATED:  # (emulated streams are all NULL)
                assert inner.handle != cs.handle
        free_inside = list(_backend._stream_pools[key])
    assert isinstance(out, _device.DeviceArray) and out._stream is None
    pool = _backend._stream_pools[key]
    assert len(pool) == len(free_inside) + 1
    assert all(isinstance(s, be.kernels.Stream) for s in pool)
    assert len({id(s) for s in pool}) == len(pool)


class SpyStream:
    def __init__(self):
        self.handle = 4321
        self.synced = 0

    def synchronize(self):
        self.synced += 1


def test_call_stream_default_waits_on_exit_even_after_an_error(be, monkeypatch):
    spy = SpyStream()
    released = []
    monkeypatch.setattr(_backend, "_acquire_stream", lambda b: spy)
    monkeypatch.setattr(_backend, "_release_stream", lambda b, s: released.append(s))
    with _backend.call_stream(be) as cs:
        assert cs.handle == 4321
        out = cs.empty((1,), np.float32)
    assert spy.synced == 1 and released == [spy] and out._stream is None
    with pytest.raises(KeyError):
        with _backend.call_stream(be):
            raise KeyError("boom")
    assert spy.synced == 2 and released == [spy, spy]


def test_call_stream_explicit_marks_outputs(be):
    keep = be.kernels.Stream(0)  # a real handle on a GPU; the emulator ignores handles
    handle = keep.handle or 4242
    with _backend.call_stream(be, handle) as cs:
        assert cs.explicit and cs.handle == handle
        out = cs.empty((3,), np.float32)
        other = be.empty((2,), np.int64)
        cs.mark(other, np.zeros(2))
        assert out._stream is None  # marked on exit
    assert out._stream == handle and other._stream == handle
    assert out.__cuda_array_interface__["stream"] == handle
    out.get()
    assert out._stream is None


def test_call_stream_explicit_not_marked_on_error(be):
    keep = be.kernels.Stream(0)
    handle = keep.handle or 4242
    with pytest.raises(KeyError):
        with _backend.call_stream(be, TorchLikeStream(handle)) as cs:
            out = cs.empty((1,), np.float32)
            raise KeyError("boom")
    assert out._stream is None


def test_call_stream_waits_for_pending_inputs(be, monkeypatch):
    waits = []
    monkeypatch.setattr(be.kernels, "stream_wait", lambda w, p, dev: waits.append((w, p, dev)))
    keep = be.kernels.Stream(0)
    handle = keep.handle or 4242
    a = be.from_host(np.ones(2))
    b = be.from_host(np.ones(2))
    c = be.from_host(np.ones(2))
    b._stream = 99
    c._stream = handle  # already on the call's stream: no wait
    with _backend.call_stream(be, handle, inputs=(a, b, c, np.ones(2), None)):
        pass
    assert waits == [(handle, 99, 0)]


def test_call_stream_restores_the_current_device(be, monkeypatch):
    calls = []
    monkeypatch.setattr(be.kernels, "get_device", lambda: 3)
    monkeypatch.setattr(be.kernels, "set_device", lambda dev: calls.append(dev))
    with _backend.call_stream(be, 4242):
        assert calls == [0]
    assert calls == [0, 3]
