"""Device arrays: memory on a CUDA device, made and understood by geomops without any framework.

:class:`DeviceArray` is what geomops returns when an op runs on device inputs; it exposes the CUDA
array interface (v3), so other libraries can take it without a copy, and ``.get()`` copies it to
a NumPy array.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DeviceArray"]


class DeviceArray:
    """A C-contiguous array in CUDA device memory.

    Attributes
    ----------
    shape : tuple of int
    dtype : numpy.dtype
    device : str
        ``"cuda:N"``.

    ``np.asarray(d)`` raises a TypeError: device memory is copied to the host only on request,
    with :meth:`get`.
    """

    __slots__ = ("_owner", "_ptr", "_shape", "_dtype", "_device_id", "_module", "_stream", "__weakref__")

    def __init__(self, owner, ptr, shape, dtype, device_id, module, stream=None):
        self._owner = owner          # keeps the memory alive (a DeviceBuffer or the producer)
        self._ptr = int(ptr)
        self._shape = tuple(int(s) for s in shape)
        self._dtype = np.dtype(dtype)
        self._device_id = int(device_id)
        self._module = module        # the binding module that owns the device (_cuda or _cuda_emu)
        self._stream = stream        # int handle the data is being written on, or None (ready)

    # ---- description -------------------------------------------------------------------------
    @property
    def shape(self):
        return self._shape

    @property
    def dtype(self):
        return self._dtype

    @property
    def ndim(self):
        return len(self._shape)

    @property
    def size(self):
        n = 1
        for s in self._shape:
            n *= s
        return n

    @property
    def nbytes(self):
        return self.size * self._dtype.itemsize

    @property
    def device(self):
        return f"cuda:{self._device_id}"

    @property
    def device_id(self):
        return self._device_id

    @property
    def ptr(self):
        """Address of the first element (0 for an empty array)."""
        return self._ptr

    def __len__(self):
        if not self._shape:
            raise TypeError("len() of a 0-d DeviceArray")
        return self._shape[0]

    def __repr__(self):
        return f"DeviceArray(shape={self._shape}, dtype={self._dtype}, device='{self.device}')"

    # ---- interop -------------------------------------------------------------------------------
    @property
    def __cuda_array_interface__(self):
        return {"shape": self._shape, "typestr": self._dtype.str, "data": (self._ptr, False),
                "version": 3, "strides": None, "stream": self._stream}

    def __array__(self, dtype=None, copy=None):
        raise TypeError("a geomops.DeviceArray lives in GPU memory; call .get() to copy it to a NumPy array")

    def get(self):
        """Copy to a new NumPy array (waits for pending work on the array's stream)."""
        out = np.empty(self._shape, self._dtype)
        if out.nbytes:
            self._module.memcpy(out.ctypes.data, self._ptr, out.nbytes, self._stream or 0)
        return out

    def __reduce__(self):
        return (_from_pickle, (self.get(), self._device_id))


def _from_pickle(host, device_id):
    from . import _backend
    return _backend.resolve(f"cuda:{device_id}").from_host(host)


def empty(module, shape, dtype, device_id):
    """An uninitialised DeviceArray on ``device_id`` of binding module ``module``."""
    dtype = np.dtype(dtype)
    n = 1
    for s in shape:
        n *= int(s)
    buf = module.DeviceBuffer(n * dtype.itemsize, device_id)
    return DeviceArray(buf, buf.ptr, shape, dtype, device_id, module)


def from_host(module, a, device_id):
    """Copy a NumPy array to a new C-contiguous DeviceArray."""
    a = np.ascontiguousarray(a)
    d = empty(module, a.shape, a.dtype, device_id)
    if a.nbytes:
        module.memcpy(d.ptr, a.ctypes.data, a.nbytes)
    return d
