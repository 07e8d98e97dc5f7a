"""The one place where a backend is chosen.

Every public function resolves its ``device=`` argument here and calls kernels only through
the returned :class:`Backend`; no other module imports ``_cpu``, ``_cuda`` or ``_cuda_emu`` for
kernels.

``device`` values: ``None`` (where the inputs are), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
:func:`select` applies the placement rules to a call's inputs; :func:`call_stream` gives the
stream a call runs on.
"""

from __future__ import annotations

import contextlib
import functools
import numbers
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, Literal, Optional, SupportsIndex, TypeVar, cast

import numpy as np
from numpy.typing import DTypeLike, NDArray

from . import _cpu
from . import _device
from . import _memory
from ._device import AnyArray, BindingModule, CudaStream, DeviceArray

_T = TypeVar("_T")

__all__ = ["Backend", "resolve", "select", "call_stream", "CallStream", "stream_handle", "cpu", "parse_device",
           "cuda_emulation"]

_CUDA_RE = re.compile(r"^cuda(?::(\d+))?$")


class Backend:
    """A resolved backend: ``name`` ("cpu" or "cuda"), the device ordinal (None on the CPU),
    ``kernels`` (the compiled module whose functions run the kernels; inside an op call on CUDA a
    view of it that passes the call's ``stream=`` to every kernel function) and the allocation and
    copy functions of its memory."""

    __slots__ = ("name", "device_id", "kernels", "module")

    name: str
    device_id: Optional[int]
    kernels: BindingModule
    module: BindingModule

    def __init__(self, name: str, device_id: Optional[int], kernels: BindingModule) -> None:
        self.name = name
        self.device_id = device_id
        self.kernels = kernels
        self.module = kernels  # the binding module itself (memory, copies, streams)

    @property
    def device(self) -> str:
        return self.name if self.device_id is None else f"{self.name}:{self.device_id}"

    @property
    def is_cuda(self) -> bool:
        return self.name == "cuda"

    def on_stream(self, handle: int) -> "Backend":
        """This backend with ``kernels`` passing ``stream=handle`` to every kernel call (CUDA)."""
        if not self.is_cuda:
            return self
        be = Backend(self.name, self.device_id, _StreamKernels(self.module, handle))
        be.module = self.module
        return be

    def empty(self, shape: Sequence[SupportsIndex], dtype: DTypeLike) -> AnyArray:
        """An uninitialised output array in this backend's memory."""
        if not self.is_cuda:
            return _memory.host_empty(shape, dtype)
        assert self.device_id is not None
        return _device.empty(self.module, shape, dtype, self.device_id)

    def from_host(self, a: _T) -> _T | DeviceArray:
        """A NumPy array moved to this backend's memory (the same array on the CPU)."""
        if not self.is_cuda or a is None or not isinstance(a, np.ndarray):
            return a  # host backend, absent, or already a device array
        assert self.device_id is not None
        return _device.from_host(self.module, a, self.device_id)

    def to_host(self, a: Optional[AnyArray]) -> Optional[NDArray[Any]]:
        """An array of this backend as a NumPy array (the same array on the CPU)."""
        if a is None or isinstance(a, np.ndarray):
            return a
        return a.get()

    def __repr__(self) -> str:
        emu = " (emulated)" if self.is_cuda and getattr(self.module, "EMULATED", False) else ""
        return f"Backend({self.device!r}{emu})"


class _StreamKernels:
    """A binding module whose functions get ``stream=handle`` (classes and constants pass through)."""

    __slots__ = ("_module", "_handle")

    def __init__(self, module: BindingModule, handle: int) -> None:
        self._module = module
        self._handle = handle

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._module, name)
        if callable(value) and not isinstance(value, type):
            return functools.partial(value, stream=self._handle)
        return value


_CPU = Backend("cpu", None, _cpu)
_emulate_cuda = False  # tests only: "cuda" runs the host-compiled kernels of _cuda_emu


def cpu() -> Backend:
    """The OpenMP backend."""
    return _CPU


def parse_device(device: Optional[str]) -> tuple[Literal["auto", "cpu"], None] | tuple[Literal["cuda"], int]:
    """Validate a ``device=`` argument: ``(kind, ordinal)`` with kind ``"cpu"``, ``"cuda"`` or
    ``"auto"`` (None). Raises TypeError/ValueError naming ``device``."""
    if device is None:
        return "auto", None
    if not isinstance(device, str):
        raise TypeError(f"device must be None, 'cpu', 'cuda' or 'cuda:N', got {type(device).__name__}")
    text = device.strip().lower()
    if text == "cpu":
        return "cpu", None
    m = _CUDA_RE.match(text)
    if m is None:
        raise ValueError(f"device must be None, 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    return "cuda", int(m.group(1)) if m.group(1) is not None else 0


def cuda_module() -> BindingModule:
    """The CUDA binding module in use: ``_cuda``, or ``_cuda_emu`` under :func:`cuda_emulation`.
    Raises RuntimeError, saying why, when no CUDA device can be used."""
    if _emulate_cuda:
        from . import _cuda_emu
        return _cuda_emu
    from . import _config
    count, reason = _config.cuda_status()
    if count == 0:
        raise RuntimeError(f"device='cuda' cannot be used: {reason}")
    assert _config._cuda is not None
    return _config._cuda


@contextlib.contextmanager
def cuda_emulation(enabled: bool = True) -> Iterator[None]:
    """Within the block, ``device="cuda"`` runs the CUDA backend's kernels compiled for the host
    (``geomops._cuda_emu``: sequential, host memory). For tests on machines without a GPU."""
    global _emulate_cuda
    old = _emulate_cuda
    _emulate_cuda = enabled
    try:
        yield
    finally:
        _emulate_cuda = old


def _cuda_backend(device: Optional[str], ordinal: Optional[int], module: Optional[BindingModule] = None) -> Backend:
    """The CUDA backend of device ``ordinal`` (``device`` is the argument, for messages)."""
    assert ordinal is not None
    module = module if module is not None else cuda_module()
    if not getattr(module, "EMULATED", False):
        from . import _config
        count = _config.cuda_device_count()
        if ordinal >= count:
            raise ValueError(f"device={device!r}: there are {count} CUDA device(s), numbered 0 to {count - 1}")
    elif ordinal != 0:
        raise ValueError(f"device={device!r}: the CUDA emulator has one device, cuda:0")
    return Backend("cuda", ordinal, module)


def resolve(device: Optional[str] = None) -> Backend:
    """The backend that runs a call with this ``device=`` argument."""
    kind, ordinal = parse_device(device)
    if kind in ("auto", "cpu"):
        return _CPU
    return _cuda_backend(device, ordinal)


def _host_kind(x: object) -> str:
    """How a host input is described in placement errors."""
    if isinstance(x, np.ndarray):
        return "a NumPy array"
    if isinstance(x, np.generic):
        return "a NumPy scalar"
    if isinstance(x, (list, tuple, int, float, bool, complex)):
        return f"a Python {type(x).__name__}"
    return f"a host object ({type(x).__name__})"


def _absent_host(x: object) -> bool:
    """Open3D's "not given" for an optional host input: an empty 1-D array."""
    try:
        a = np.asarray(x)
    except Exception:
        return False
    return a.ndim == 1 and a.shape[0] == 0


def select(device: Optional[str], *, optional: Iterable[str] = (), **named_inputs: object) -> tuple[Backend, bool]:
    """The backend of a call and whether its inputs are on the device.

    Parameters
    ----------
    device : None, "cpu", "cuda" or "cuda:N"
        The call's ``device=`` argument.
    optional : iterable of str
        Names of optional inputs: for them an empty 1-D host array (Open3D's "absent") is ignored
        like None.
    **named_inputs
        The call's array inputs by argument name. None is ignored; device arrays
        (:func:`geomops._device.is_device_array`) are on their device; everything else (NumPy
        arrays, lists, scalars) is on the host.

    Returns
    -------
    (Backend, on_device)
        ``on_device`` is True when the inputs are device arrays (the op returns DeviceArrays) and
        False when they are on the host (NumPy results, also with ``device="cuda"``, where the op
        copies the inputs in and the results out).

    Rules (each violation is a ValueError naming the arguments): device inputs must all be on one
    device and cannot be mixed with host inputs; ``device=None`` runs where the inputs are (the
    CPU when there is no device input); ``device="cpu"`` takes no device input; ``"cuda"`` runs
    on the inputs' device (cuda:0 for host inputs); ``"cuda:N"`` requires them on cuda:N.
    """
    from . import _device
    kind, ordinal = parse_device(device)
    optional = set(optional)
    on_device, on_host = [], []
    for name, x in named_inputs.items():
        if x is None:
            continue
        if _device.is_device_array(x):
            on_device.append((name,) + _device.locate(x))
        elif not (name in optional and _absent_host(x)):
            on_host.append((name, _host_kind(x)))
    if not on_device:
        return resolve(device), False
    name0, dev0, id0, module0 = on_device[0]
    for name, dev, _, _ in on_device[1:]:
        if dev != dev0:
            raise ValueError(f"{name0} is on {dev0} but {name} is on {dev}; all device inputs of one call must be "
                             "on the same device")
    if on_host:
        hname, hkind = on_host[0]
        raise ValueError(f"{hname} is {hkind} but {name0} is on {dev0}; pass every array input of one call on the "
                         "same device (geomops.to_device() copies a NumPy array to the GPU, DeviceArray.get() "
                         "copies one back)")
    if kind == "cpu":
        raise ValueError(f"device='cpu' but {name0} is on {dev0}; copy it to the host first (DeviceArray.get()) "
                         f"or pass device=None to run on {dev0}")
    explicit = kind == "cuda" and device is not None and ":" in device
    if explicit and ordinal != id0:
        raise ValueError(f"device={device!r} but {name0} is on {dev0}; pass device=None to run where the inputs "
                         f"are, or move them with geomops.to_device(x, {device!r})")
    module = next((m for _, _, _, m in on_device if m is not None), None)
    return _cuda_backend(device if device is not None else dev0, id0, module), True


# ---- streams -----------------------------------------------------------------------------------

def stream_handle(stream: Any) -> Optional[int]:
    """Validate a ``stream=`` argument: None, or the int cudaStream_t handle it designates.

    Accepted: an int handle (0: the legacy default stream; 1 and 2: the legacy and per-thread
    default streams as CUDA spells them), an object with ``__cuda_stream__`` (the CUDA Python
    stream protocol: an attribute or method giving ``(version, handle)``), or a stream object
    with an int ``.cuda_stream`` (PyTorch) or ``.ptr`` (CuPy). TypeError/ValueError name
    ``stream`` otherwise."""
    if stream is None:
        return None
    if isinstance(stream, numbers.Integral) and not isinstance(stream, bool):
        handle = int(stream)
    elif isinstance(stream, bool):
        raise TypeError("stream must be None, an int cudaStream_t handle or a CUDA stream object, got bool")
    elif getattr(stream, "__cuda_stream__", None) is not None:
        proto = stream.__cuda_stream__
        if callable(proto):
            proto = proto()
        try:
            _, handle = proto
            handle = int(handle)
        except (TypeError, ValueError):
            raise TypeError(f"stream.__cuda_stream__ must give (version, handle), got {proto!r}") from None
    else:
        for attr in ("cuda_stream", "ptr"):
            value = getattr(stream, attr, None)
            if isinstance(value, numbers.Integral) and not isinstance(value, bool):
                handle = int(value)
                break
        else:
            if type(stream).__module__.startswith("geomops.") and type(stream).__name__ == "Stream":
                handle = int(stream.handle)
            else:
                raise TypeError("stream must be None, an int cudaStream_t handle or a CUDA stream object (with "
                                f"__cuda_stream__, .cuda_stream or .ptr), got {type(stream).__name__}")
    if not 0 <= handle < 1 << 64:
        raise ValueError(f"stream must be a cudaStream_t handle (an int >= 0), got {handle}")
    return handle


_pool_lock = threading.Lock()
_stream_pools: dict[tuple[str, Optional[int]], list[CudaStream]] = {}


def _acquire_stream(be: Backend) -> CudaStream:
    key = (be.module.__name__, be.device_id)
    with _pool_lock:
        pool = _stream_pools.setdefault(key, [])
        if pool:
            return pool.pop()
    return cast(CudaStream, be.module.Stream(be.device_id))


def _release_stream(be: Backend, s: CudaStream) -> None:
    with _pool_lock:
        _stream_pools[(be.module.__name__, be.device_id)].append(s)


class CallStream:
    """The stream one op call runs on (made by :func:`call_stream`).

    Attributes
    ----------
    backend : Backend
    handle : int
        The cudaStream_t to pass to the bindings' ``stream=`` (0 on the CPU).
    explicit : bool
        True when the caller gave the stream: the call then returns without waiting and its
        outputs are marked as pending on it.
    """

    __slots__ = ("backend", "handle", "explicit", "_outputs")

    def __init__(self, backend: Backend, handle: int, explicit: bool) -> None:
        self.backend = backend
        self.handle = handle
        self.explicit = explicit
        self._outputs: list[DeviceArray] = []

    def empty(self, shape: Sequence[SupportsIndex], dtype: DTypeLike) -> AnyArray:
        """An output array of the call (``backend.empty``), marked with the stream on exit when
        the stream is the caller's."""
        out = self.backend.empty(shape, dtype)
        self.mark(out)
        return out

    def mark(self, *arrays: object) -> None:
        """Register further output DeviceArrays of the call (see :meth:`empty`)."""
        from . import _device
        self._outputs.extend(a for a in arrays if isinstance(a, _device.DeviceArray))

    def wait_for(self, *arrays: object) -> None:
        """Order the call's stream after the pending work of its input DeviceArrays (those with
        a ``_stream`` other than this one); the host does not block."""
        from . import _device
        for a in arrays:
            if isinstance(a, _device.DeviceArray) and a._stream is not None and a._stream != self.handle:
                a._module.stream_wait(self.handle, a._stream, a.device_id)


class _CallStreamContext:
    __slots__ = ("_be", "_handle", "_inputs", "_pooled", "_prev_device", "_cs")

    _cs: CallStream

    def __init__(self, be: Backend, stream: object, inputs: Sequence[object]) -> None:
        self._be = be
        self._inputs = inputs
        self._handle = stream_handle(stream)
        if self._handle is not None and not be.is_cuda:
            raise ValueError(f"stream={stream!r} is only used on a CUDA device, but this call runs on the CPU")
        self._pooled: Optional[CudaStream] = None
        self._prev_device: Optional[int] = None

    def __enter__(self) -> CallStream:
        be = self._be
        if not be.is_cuda:
            self._cs = CallStream(be, 0, False)
            return self._cs
        module = be.module
        self._prev_device = module.get_device()
        if self._prev_device != be.device_id:
            module.set_device(be.device_id)
        try:
            handle = self._handle
            if handle is None:
                self._pooled = _acquire_stream(be)
                handle = self._pooled.handle
            self._cs = CallStream(be, handle, self._handle is not None)
            self._cs.wait_for(*self._inputs)
        except BaseException:
            self._finish()
            raise
        return self._cs

    def __exit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> Literal[False]:
        if not self._be.is_cuda:
            return False
        try:
            if exc_type is None:
                if self._cs.explicit:
                    for out in self._cs._outputs:
                        out._stream = self._cs.handle
                else:
                    assert self._pooled is not None
                    self._pooled.synchronize()
            elif self._pooled is not None:
                try:  # let the failed call's queued work drain before the stream is reused
                    self._pooled.synchronize()
                except Exception:
                    pass
        finally:
            self._finish()
        return False

    def _finish(self) -> None:
        if self._pooled is not None:
            _release_stream(self._be, self._pooled)
            self._pooled = None
        if self._prev_device is not None and self._prev_device != self._be.device_id:
            self._be.module.set_device(self._prev_device)


def call_stream(be: Backend, stream: object = None, inputs: Sequence[object] = ()) -> _CallStreamContext:
    """Context manager giving the :class:`CallStream` one op call runs on.

    ``stream=None``: a stream of a small per-device pool; the block's work is waited for on exit,
    so the outputs are ready when the op returns. An explicit ``stream`` (see
    :func:`stream_handle`): the work is ordered on it and not waited for; the outputs made with
    :meth:`CallStream.empty` (or registered with :meth:`CallStream.mark`) are marked as pending
    on it (``DeviceArray._stream``), so readers wait for it. ``inputs``: the call's input
    DeviceArrays; the stream first waits for their pending streams. The backend's device is
    current inside the block (the previous one is restored). On the CPU backend the block gets a
    handle of 0 and ``stream`` must be None (ValueError).
    """
    return _CallStreamContext(be, stream, inputs)


# ---- one op call -------------------------------------------------------------------------------

class OpCall:
    """What a public op needs to run on the right backend (made by :func:`op_call`).

    Attributes
    ----------
    be : Backend
        The backend; on CUDA its ``kernels`` pass the call's stream to every kernel function.
    on_device : bool
        The inputs are device arrays: results stay on the device (DeviceArrays). False for host
        inputs, also with ``device="cuda"`` (results are copied back to NumPy).
    args : dict
        The array inputs given to :func:`op_call`, foreign device arrays (CuPy, torch, ...)
        turned into DeviceArray views.
    """

    __slots__ = ("be", "on_device", "args", "_cs")

    be: Backend
    on_device: bool
    args: dict[str, Any]
    _cs: CallStream

    def result(self, x: _T) -> _T:
        """The op's result for the caller: device results of host inputs copied to NumPy; named
        tuples, tuples and lists converted element by element."""
        if not self.be.is_cuda:
            return x
        if isinstance(x, tuple) and hasattr(x, "_fields"):
            return type(x)(*(self.result(v) for v in x))
        if isinstance(x, (tuple, list)):
            return type(x)(self.result(v) for v in x)
        if isinstance(x, _device.DeviceArray):
            if self.on_device:
                self._cs.mark(x)
                return x
            return cast(_T, x.get())
        return x


def _is_placed(x: object) -> bool:
    """Arrays whose place (host or device) decides the backend: NumPy arrays and device arrays.
    Python scalars and lists fit any backend (they are converted after validation)."""
    return isinstance(x, np.ndarray) or _device.is_device_array(x)


@contextlib.contextmanager
def op_call(device: Optional[str] = None, stream: object = None, *, optional: Iterable[str] = (),
            **inputs: Any) -> Iterator[OpCall]:
    """Run one public op: choose its backend from ``device`` and the inputs (:func:`select`),
    open its stream (:func:`call_stream`), and hand back an :class:`OpCall`.

    ``inputs`` are the op's array arguments by name (None and absent optionals are ignored;
    Python scalars and lists never conflict with device inputs)."""
    if stream is None and (device is None or device == "cpu") and all(
            v is None or type(v) is np.ndarray for v in inputs.values()):
        # the common case, NumPy arrays on the CPU: nothing to place, no stream (what select and
        # call_stream would conclude, without their cost on small calls)
        be = resolve(device)
        with _memory.call_scope():
            call = OpCall()
            call.be = be
            call.on_device = False
            call.args = dict(inputs)
            call._cs = CallStream(be, 0, False)
            yield call
        return
    placed = {k: v for k, v in inputs.items() if v is not None and _is_placed(v)}
    be, on_device = select(device, optional=optional, **placed)
    args = dict(inputs)
    device_inputs = []
    if on_device:
        for k, v in placed.items():
            if _device.is_device_array(v):
                args[k] = _device.as_device_array(v, k)
                device_inputs.append(args[k])
    with call_stream(be, stream, inputs=device_inputs) as cs, _memory.call_scope():
        call = OpCall()
        call.be = be.on_stream(cs.handle)
        call.on_device = on_device
        call.args = args
        call._cs = cs
        yield call
