"""Device arrays: memory on a CUDA device, made and understood by geomops without any framework.

:class:`DeviceArray` is what geomops returns when an op runs on device inputs. It exposes the
CUDA array interface (v3) and DLPack (``__dlpack__`` / ``__dlpack_device__``), so CuPy, PyTorch,
JAX and Numba take it without a copy, and ``.get()`` copies it to a NumPy array.

:func:`as_device_array` is the other direction: any producer (an object with
``__cuda_array_interface__``, or with ``__dlpack__`` on a CUDA device) becomes a DeviceArray view
of the same memory, which keeps the producer alive.

Streams: a DeviceArray's ``_stream`` is the int handle of the stream its data is still being
written on (None: ready). Whoever reads the data orders itself after that stream: ``.get()``,
the value checks of input validation (:func:`stats`, which then mark the array ready), the
DLPack export (the consumer's stream waits for it) and :func:`geomops._backend.call_stream`.
A handle of 0 is the legacy default stream (1 in the CUDA array interface and DLPack, where 0 is
not allowed).
"""

from __future__ import annotations

import contextlib
import numbers
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple, NoReturn, Optional, Protocol, SupportsIndex, SupportsInt, Union, cast, overload

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from . import _memory

__all__ = ["DeviceArray", "to_device", "as_device_array", "is_device_array"]

# DLDeviceType values (DLPack)
KDL_CPU = 1
KDL_CUDA = 2
KDL_CUDA_MANAGED = 13
_CUDA_DL_DEVICES = (KDL_CUDA, KDL_CUDA_MANAGED)
# The DLPack version geomops reads and writes (DLManagedTensorVersioned).
DLPACK_VERSION = (1, 0)


def _protocol_stream(handle: Optional[int]) -> Optional[int]:
    """A stream handle as the CUDA array interface and DLPack spell it (0 is not allowed there)."""
    return None if handle is None else (handle or 1)


class BindingModule(Protocol):
    """A compiled binding module (``_cpu``, ``_cuda`` or ``_cuda_emu``; see their ``.pyi`` stubs), or
    :mod:`geomops._backend`'s view of one that passes ``stream=``: functions are looked up by name."""

    def __getattr__(self, name: str) -> Any: ...


class DeviceArray:
    """A C-contiguous array in CUDA device memory.

    It owns its allocation, or keeps the producer it views alive. ``np.asarray(d)`` raises a
    TypeError: device memory is copied to the host only on request, with :meth:`get`. Other
    libraries take it without a copy through ``__cuda_array_interface__`` (CuPy, Numba) or
    DLPack (``torch.from_dlpack``, ``jax.dlpack.from_dlpack``, ``cupy.from_dlpack``).

    Attributes
    ----------
    shape : tuple of int
    dtype : numpy.dtype
    device : str
        ``"cuda:N"``.
    """

    __slots__ = ("_owner", "_ptr", "_shape", "_dtype", "_device_id", "_module", "_stream", "_readonly",
                 "__weakref__")

    def __init__(self, owner: object, ptr: SupportsInt, shape: Sequence[SupportsIndex], dtype: DTypeLike,
                 device_id: SupportsInt, module: BindingModule, stream: Optional[int] = None,
                 readonly: bool = False) -> None:
        self._owner = owner          # keeps the memory alive (a DeviceBuffer, a DLPackImport or the producer)
        self._ptr = int(ptr)
        self._shape = tuple(int(s) for s in shape)
        self._dtype = np.dtype(dtype)
        self._device_id = int(device_id)
        self._module = module        # the binding module that owns the device (_cuda or _cuda_emu)
        self._stream = stream        # int handle the data is being written on, or None (ready)
        self._readonly = bool(readonly)

    # ---- description -------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def dtype(self) -> np.dtype[Any]:
        return self._dtype

    @property
    def ndim(self) -> int:
        return len(self._shape)

    @property
    def size(self) -> int:
        n = 1
        for s in self._shape:
            n *= s
        return n

    @property
    def nbytes(self) -> int:
        return self.size * self._dtype.itemsize

    @property
    def device(self) -> str:
        return f"cuda:{self._device_id}"

    @property
    def device_id(self) -> int:
        return self._device_id

    @property
    def ptr(self) -> int:
        """Address of the first element (0 for an empty array)."""
        return self._ptr

    @property
    def readonly(self) -> bool:
        """True for a view of memory its producer marked read-only."""
        return self._readonly

    @property
    def emulated(self) -> bool:
        """True for arrays of the CUDA emulator ``geomops._cuda_emu`` (host memory, tests only)."""
        return bool(getattr(self._module, "EMULATED", False))

    def __len__(self) -> int:
        if not self._shape:
            raise TypeError("len() of a 0-d DeviceArray")
        return self._shape[0]

    def __repr__(self) -> str:
        return f"DeviceArray(shape={self._shape}, dtype={self._dtype}, device='{self.device}')"

    # ---- interop -------------------------------------------------------------------------------
    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        return {"shape": self._shape, "typestr": self._dtype.str, "data": (self._ptr, self._readonly),
                "version": 3, "strides": None, "stream": _protocol_stream(self._stream)}

    def __dlpack_device__(self) -> tuple[int, int]:
        """``(kDLCUDA, N)``; emulated arrays live in host memory and say ``(kDLCPU, 0)``."""
        return (KDL_CPU, 0) if self.emulated else (KDL_CUDA, self._device_id)

    def __dlpack__(self, *, stream: Optional[int] = None, max_version: Optional[tuple[int, int]] = None,
                   dl_device: Optional[tuple[int, int]] = None, copy: Optional[bool] = None) -> object:
        """Export as a DLPack capsule (the DLPack Python specification).

        Parameters
        ----------
        stream : int or None
            The consumer's stream (CUDA: None or 1 the legacy default stream, 2 the per-thread
            default stream, -1 no synchronisation, else a cudaStream_t handle; must be None for
            emulated arrays, which are CPU memory). It is made to wait for pending work on this
            array, so the data is ready there.
        max_version : tuple of int, optional
            The highest DLPack version the consumer reads: >= (1, 0) gives a "dltensor_versioned"
            capsule, None a legacy "dltensor" one.
        dl_device : tuple, optional
            The device the consumer wants: this array's own, or ``(kDLCPU, 0)`` for a host copy.
        copy : bool, optional
            True: export a copy; False: never copy (BufferError if a copy is needed).
        """
        own = self.__dlpack_device__()
        versioned = max_version is not None and int(max_version[0]) >= 1
        if dl_device is not None and (int(dl_device[0]), int(dl_device[1])) != own:
            if int(dl_device[0]) != KDL_CPU:
                raise BufferError(f"a DeviceArray on {self.device} can be exported to its own device or to the "
                                  f"CPU, not to DLPack device {tuple(dl_device)}")
            if copy is False:
                raise BufferError(f"exporting a DeviceArray on {self.device} to the CPU needs a copy, but copy=False")
            host = self.get()
            return self._module.dlpack_export(host, host.ctypes.data, host.shape, host.dtype, KDL_CPU, 0, versioned,
                                              copied=True)
        if own[0] == KDL_CPU:
            if stream is not None:
                raise ValueError(f"stream must be None for an emulated DeviceArray (CPU memory), got {stream!r}")
        else:
            consumer = _dlpack_consumer_stream(stream)
            if self._stream is not None and consumer != -1 and not copy:
                with device_scope(self._module, self._device_id):
                    self._module.stream_wait(consumer, self._stream, self._device_id)
        src = self.copy() if copy else self
        return self._module.dlpack_export(src, src.ptr, src.shape, src.dtype, own[0], own[1], versioned,
                                          readonly=src._readonly, copied=bool(copy))

    def __array__(self, dtype: Optional[DTypeLike] = None, copy: Optional[bool] = None) -> NoReturn:
        raise TypeError("a geomops.DeviceArray lives in GPU memory; call .get() to copy it to a NumPy array")

    # ---- copies and views ----------------------------------------------------------------------
    def get(self) -> NDArray[Any]:
        """Copy to a new NumPy array (waits for pending work on the array's stream)."""
        out = np.empty(self._shape, self._dtype)
        if out.nbytes:
            with device_scope(self._module, self._device_id):
                self._module.memcpy(out.ctypes.data, self._ptr, out.nbytes, work_stream(self))
            self._stream = None
        return out

    def copy(self) -> DeviceArray:
        """A new DeviceArray with the same contents, on the same device (ready on return)."""
        out = empty(self._module, self._shape, self._dtype, self._device_id)
        if out.nbytes:
            with device_scope(self._module, self._device_id):
                self._module.memcpy(out.ptr, self._ptr, out.nbytes, work_stream(self))
            self._stream = None
        return out

    @overload
    def reshape(self, shape: Sequence[SupportsIndex], /) -> DeviceArray: ...
    @overload
    def reshape(self, *shape: SupportsIndex) -> DeviceArray: ...

    def reshape(self, *shape: Any) -> DeviceArray:
        """A view with another shape of the same size (one entry may be -1)."""
        if len(shape) == 1 and not isinstance(shape[0], numbers.Integral):
            shape = tuple(shape[0])
        shape = [int(s) for s in shape]
        if shape.count(-1) > 1:
            raise ValueError("reshape: only one dimension can be -1")
        if -1 in shape:
            known = 1
            for s in shape:
                known *= s if s != -1 else 1
            if known == 0 or self.size % known:
                raise ValueError(f"cannot reshape a DeviceArray of size {self.size} into shape {tuple(shape)}")
            shape[shape.index(-1)] = self.size // known
        n = 1
        for s in shape:
            if s < 0:
                raise ValueError(f"reshape: negative dimension in {tuple(shape)}")
            n *= s
        if n != self.size:
            raise ValueError(f"cannot reshape a DeviceArray of size {self.size} into shape {tuple(shape)}")
        return DeviceArray(self._owner, self._ptr, shape, self._dtype, self._device_id, self._module,
                           self._stream, self._readonly)

    def astype(self, dtype: DTypeLike) -> DeviceArray:
        """This array converted to ``dtype`` (int32, int64, float32 or float64) on the device with
        NumPy's casting rules; the array itself when it already has that dtype."""
        dtype = np.dtype(dtype)
        if dtype == self._dtype:
            return self
        out = empty(self._module, self._shape, dtype, self._device_id)
        ws = work_stream(self)
        with device_scope(self._module, self._device_id):
            self._module.array_cast(self, out, stream=ws)
            # ready on return: the source may be released by the caller right away
            self._module.synchronize(ws)
        self._stream = None
        return out

    def __reduce__(self) -> tuple[Callable[..., DeviceArray], tuple[NDArray[Any], int, bool]]:
        return (_from_pickle, (self.get(), self._device_id, self.emulated))


AnyArray = Union[NDArray[Any], DeviceArray]
"""An array of a backend: a NumPy array on the CPU, a :class:`DeviceArray` on CUDA."""


class SupportsCudaArrayInterface(Protocol):
    """A device array of another library (CuPy, Numba, PyTorch) seen through the CUDA array interface."""

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]: ...


class SupportsDLPack(Protocol):
    """A DLPack producer (PyTorch, CuPy, JAX); on a CUDA device it is a device array."""

    def __dlpack_device__(self) -> tuple[int, int]: ...


ArrayInput = Union[ArrayLike, DeviceArray, SupportsCudaArrayInterface, SupportsDLPack]
"""What an op's array argument accepts: anything ``np.asarray`` takes, or a device array."""


def _from_pickle(host: NDArray[Any], device_id: int, emulated: bool = False) -> DeviceArray:
    if emulated:
        from . import _cuda_emu
        return from_host(_cuda_emu, host, device_id)
    from . import _backend
    return cast(DeviceArray, _backend.resolve(f"cuda:{device_id}").from_host(host))


def _dlpack_consumer_stream(stream: Optional[int]) -> int:
    """The consumer's stream of a CUDA ``__dlpack__`` call as a handle (-1: do not synchronise)."""
    if stream is None:
        return 1  # the spec: None means the legacy default stream
    if isinstance(stream, bool) or not isinstance(stream, numbers.Integral):
        raise TypeError(f"stream must be None or an int (a cudaStream_t handle), got {type(stream).__name__}")
    stream = int(stream)
    if stream == 0:
        raise ValueError("stream=0 is ambiguous in DLPack; use 1 (legacy default stream) or 2 (per-thread default "
                         "stream)")
    if stream < -1:
        raise ValueError(f"stream must be -1, 1, 2 or a cudaStream_t handle, got {stream}")
    return stream


# ---- streams and devices -----------------------------------------------------------------------

@contextlib.contextmanager
def device_scope(module: BindingModule, device_id: int) -> Iterator[None]:
    """Make ``device_id`` current for the block (kernels launch on the current device), then
    restore the previous device, which other libraries rely on."""
    prev = module.get_device()
    if prev == device_id:
        yield
        return
    module.set_device(device_id)
    try:
        yield
    finally:
        module.set_device(prev)


_utility_lock = threading.Lock()
class CudaStream(Protocol):
    """What geomops uses of a binding module's ``Stream`` (``_cuda.pyi``)."""
    handle: int

    def synchronize(self) -> None: ...


_utility_streams: dict[tuple[str, int], CudaStream] = {}


def utility_stream(module: BindingModule, device_id: int) -> int:
    """Handle of the stream of ``device_id`` that imports and value checks run on when the array
    has no pending stream (one per device, created on first use, never synchronised implicitly
    with other streams)."""
    key = (module.__name__, device_id)
    s = _utility_streams.get(key)
    if s is None:
        with _utility_lock:
            s = _utility_streams.get(key)
            if s is None:
                with device_scope(module, device_id):
                    s = module.Stream(device_id)
                _utility_streams[key] = s
    return s.handle


def work_stream(a: DeviceArray) -> int:
    """The stream to read ``a`` on: its pending stream, else the device's utility stream."""
    return a._stream if a._stream is not None else utility_stream(a._module, a._device_id)


class ArrayStats(NamedTuple):
    """Summary of a non-empty 1-D device array (see :func:`stats`)."""
    min: float  # int for integer arrays
    max: float
    nonfinite: int
    decreasing: int
    nonincreasing: int
    first: float
    last: float


def stats(a: DeviceArray) -> ArrayStats:
    """Minimum, maximum, count of NaN/inf values, counts of decreasing / non-increasing
    neighbours, first and last element of the non-empty 1-D int32/int64/float32/float64
    DeviceArray ``a``, computed by a fixed-order reduction on the device: only these scalars
    come back to the host. For float arrays min/max are over the finite values."""
    ws = work_stream(a)
    with device_scope(a._module, a._device_id):
        s = a._module.array_stats(a, stream=ws)
    a._stream = None  # the reduction waited for everything queued on ws
    return ArrayStats(*s)


# ---- making DeviceArrays -----------------------------------------------------------------------

def empty(module: BindingModule, shape: Sequence[SupportsIndex], dtype: DTypeLike, device_id: int) -> DeviceArray:
    """An uninitialised DeviceArray on ``device_id`` of binding module ``module``."""
    dtype = np.dtype(dtype)
    nbytes = _memory.array_nbytes(shape, dtype)
    _memory.check_device(nbytes, f"an array of shape {tuple(int(s) for s in shape)} and dtype {dtype}")
    buf = module.DeviceBuffer(nbytes, device_id)
    return DeviceArray(buf, buf.ptr, shape, dtype, device_id, module)


def from_host(module: BindingModule, a: ArrayLike, device_id: int) -> DeviceArray:
    """Copy a NumPy array to a new C-contiguous DeviceArray."""
    if isinstance(a, np.ndarray) and not a.flags.c_contiguous:
        _memory.check_host(a.nbytes, f"a contiguous copy of an array of shape {a.shape}")
    a = np.asarray(a, order="C")  # (np.ascontiguousarray makes 0-d arrays 1-d)
    d = empty(module, a.shape, a.dtype, device_id)
    if a.nbytes:
        module.memcpy(d.ptr, a.ctypes.data, a.nbytes)
    return d


def to_device(a: object, device: str = "cuda") -> DeviceArray:
    """Copy an array to a CUDA device.

    Parameters
    ----------
    a : array_like or device array
        A NumPy array (or anything ``np.asarray`` takes) is copied to the device. A device array
        already on ``device`` is returned as a DeviceArray view (no copy); one on another device
        is copied there.
    device : str
        ``"cuda"`` (device 0) or ``"cuda:N"``.

    Returns
    -------
    DeviceArray
        C-contiguous, with ``a``'s shape and dtype.

    Raises
    ------
    RuntimeError
        When no CUDA device can be used (the message says why).
    """
    from . import _backend
    kind, ordinal = _backend.parse_device(device)
    if kind != "cuda":
        raise ValueError(f"to_device copies to a CUDA device: device must be 'cuda' or 'cuda:N', got {device!r}")
    if is_device_array(a):
        d = as_device_array(a, "a")
        if d.device_id == ordinal:
            return d
        be = _backend.resolve(device)
        assert be.device_id is not None
        out = empty(be.kernels, d.shape, d.dtype, be.device_id)
        if out.nbytes:  # a peer copy (unified addressing)
            be.kernels.memcpy(out.ptr, d.ptr, out.nbytes, work_stream(d))
        return out
    be = _backend.resolve(device)
    host = np.asarray(a)
    if host.dtype.kind not in "biufc":
        raise TypeError(f"to_device copies numeric and bool arrays, got dtype {host.dtype}")
    return cast(DeviceArray, be.from_host(host))


# ---- device arrays of other producers ----------------------------------------------------------

def _cai_of(obj: object) -> Optional[dict[str, Any]]:
    """``obj.__cuda_array_interface__`` or None (also when reading it fails, e.g. a CPU tensor)."""
    try:
        return getattr(obj, "__cuda_array_interface__", None)
    except Exception:
        return None


def _dlpack_device_of(obj: object) -> Optional[tuple[int, int]]:
    """``obj.__dlpack_device__()`` as ``(type, id)``, or None."""
    fn = getattr(obj, "__dlpack_device__", None)
    if fn is None or not callable(fn):
        return None
    try:
        dev = fn()
        return int(dev[0]), int(dev[1])
    except Exception:
        return None


_HOST_TYPES = (np.ndarray, np.generic, list, tuple, str, bytes, numbers.Number)


def is_device_array(obj: object) -> bool:
    """True for a DeviceArray and for any object in CUDA device memory: with
    ``__cuda_array_interface__`` (CuPy, Numba, PyTorch), or with ``__dlpack__`` whose
    ``__dlpack_device__()`` is a CUDA device (PyTorch, CuPy, JAX). NumPy arrays, lists, scalars
    and host DLPack producers are not."""
    if isinstance(obj, DeviceArray):
        return True
    if obj is None or isinstance(obj, _HOST_TYPES):
        return False
    if _cai_of(obj) is not None:
        return True
    dev = _dlpack_device_of(obj)
    return dev is not None and dev[0] in _CUDA_DL_DEVICES


def locate(obj: object) -> tuple[str, int, Optional[BindingModule]]:
    """``(device, device_id, module)`` of a device array: its ``"cuda:N"``, the ordinal and the
    binding module its memory belongs to (None: the module :func:`_backend.cuda_module` gives)."""
    if isinstance(obj, DeviceArray):
        return obj.device, obj.device_id, obj._module
    dev = _dlpack_device_of(obj)
    if dev is not None and dev[0] in _CUDA_DL_DEVICES:
        return f"cuda:{dev[1]}", dev[1], None
    from . import _backend
    module = _backend.cuda_module()
    cai = _cai_of(obj)
    assert cai is not None, "locate() takes a device array"
    dev_id, _ = module.pointer_device(int(cai["data"][0]))
    return f"cuda:{dev_id}", dev_id, module


def _is_c_contiguous(shape: Sequence[int], strides: Sequence[int], itemsize: int) -> bool:
    """Whether byte ``strides`` describe a C-contiguous layout (sizes 0 and 1 take any stride)."""
    if any(n == 0 for n in shape):
        return True
    expected = itemsize
    for n, s in zip(reversed(shape), reversed(strides)):
        if n != 1 and s != expected:
            return False
        expected *= n
    return True


def _contiguous(view: DeviceArray, strides: tuple[int, ...], name: str) -> DeviceArray:
    """``view`` (a DeviceArray whose real layout has byte ``strides``) copied into a new
    C-contiguous DeviceArray on the device."""
    m = view._module
    if len(view.shape) > m.MAX_DIMS:
        raise ValueError(f"{name}: a strided device array of {len(view.shape)} dimensions cannot be copied "
                         f"(at most {m.MAX_DIMS})")
    out = empty(m, view.shape, view.dtype, view.device_id)
    ws = work_stream(view)
    with device_scope(m, view.device_id):
        m.array_copy_strided(view.ptr, out.ptr, view.dtype.itemsize, view.shape, strides, stream=ws)
        # ready on return: the producer may release its memory once the view is gone
        m.synchronize(ws)
    return out


def _from_cai(obj: object, cai: dict[str, Any], name: str) -> DeviceArray:
    from . import _backend
    if cai.get("mask") is not None:
        raise TypeError(f"{name}: masked device arrays (a __cuda_array_interface__ 'mask') are not supported")
    try:
        dtype = np.dtype(cai["typestr"])
    except TypeError:
        raise TypeError(f"{name} has the unknown __cuda_array_interface__ typestr {cai['typestr']!r}") from None
    if not dtype.isnative:
        raise TypeError(f"{name} has non-native byte order (typestr {cai['typestr']!r})")
    shape = tuple(int(s) for s in cai["shape"])
    ptr, readonly = cai["data"]
    ptr = int(ptr)
    stream = cai.get("stream") if int(cai.get("version", 0)) >= 3 else None
    if stream is not None:
        if isinstance(stream, bool) or not isinstance(stream, numbers.Integral) or int(stream) < 1:
            raise ValueError(f"{name}: the __cuda_array_interface__ stream must be None or a positive int "
                             f"(1: legacy default stream), got {stream!r}")
        stream = int(stream)
    module = _backend.cuda_module()
    size = 1
    for s in shape:
        size *= s
    dev, is_device = module.pointer_device(ptr if size else 0)
    if not is_device:
        raise ValueError(f"{name}: its __cuda_array_interface__ points to host memory, not to CUDA device memory")
    view = DeviceArray(obj, ptr if size else 0, shape, dtype, dev, module, stream=stream, readonly=bool(readonly))
    strides = cai.get("strides")
    if strides is not None and not _is_c_contiguous(shape, strides, dtype.itemsize):
        return _contiguous(view, tuple(int(s) for s in strides), name)
    return view


def _from_dlpack(obj: Any, dev: tuple[int, int], name: str) -> DeviceArray:
    from . import _backend
    module = _backend.cuda_module()
    handle = utility_stream(module, dev[1])
    consumer = handle or 1  # a handle of 0 is the legacy default stream, 1 in DLPack
    try:
        capsule = obj.__dlpack__(stream=consumer, max_version=DLPACK_VERSION)
    except TypeError:  # a producer older than DLPack 1.0 (no max_version)
        capsule = obj.__dlpack__(stream=consumer)
    holder, info = module.dlpack_import(capsule)
    if info["device_type"] not in _CUDA_DL_DEVICES:
        raise ValueError(f"{name}: its DLPack tensor is on DLPack device {info['device_type']}, not on a CUDA device")
    dtype = module.dlpack_dtype(info["code"], info["bits"], info["lanes"])
    if dtype is None:
        name_dt = info["dtype_name"] + (f"x{info['lanes']}" if info["lanes"] != 1 else "")
        raise TypeError(f"{name} has dtype {name_dt}, which geomops does not support")
    shape = info["shape"]
    view = DeviceArray(holder, info["data"], shape, dtype, info["device_id"], module, stream=handle,
                       readonly=info["readonly"])
    if info["strides"] is not None:
        strides = tuple(s * dtype.itemsize for s in info["strides"])
        if not _is_c_contiguous(shape, strides, dtype.itemsize):
            return _contiguous(view, strides, name)
    return view


def as_device_array(obj: object, name: str = "array") -> DeviceArray:
    """A DeviceArray of the device array ``obj``, without copying its data.

    ``obj`` is a DeviceArray (returned as is), an object with ``__dlpack__`` on a CUDA device
    (its capsule is consumed; the view keeps it alive and runs its deleter once, when collected)
    or an object with ``__cuda_array_interface__`` (v2 or v3; the view keeps ``obj`` alive). A
    producer's stream is recorded on the view (``_stream``), so that readers wait for it.
    Non-C-contiguous data is copied into a new contiguous array on the device.

    Raises TypeError naming ``name`` when ``obj`` is not a device array or has a dtype NumPy
    cannot describe (bfloat16, vector lanes).
    """
    if isinstance(obj, DeviceArray):
        return obj
    dev = _dlpack_device_of(obj)
    if dev is not None and dev[0] in _CUDA_DL_DEVICES:
        return _from_dlpack(obj, dev, name)
    cai = _cai_of(obj)
    if cai is not None:
        return _from_cai(obj, cai, name)
    raise TypeError(f"{name} is not a device array (an object with __cuda_array_interface__ or a CUDA "
                    f"__dlpack__), got {type(obj).__name__}")


def shape_of(obj: object) -> tuple[int, ...]:
    """The shape of a device array, read without importing it where the protocol allows."""
    if isinstance(obj, DeviceArray):
        return obj.shape
    cai = _cai_of(obj)
    if cai is not None:
        return tuple(int(s) for s in cai["shape"])
    shape = getattr(obj, "shape", None)
    if shape is not None:
        return tuple(int(s) for s in shape)
    return as_device_array(obj).shape
