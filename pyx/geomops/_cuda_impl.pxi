# The CUDA bindings, included by _cuda.pyx (kernels built by nvcc) and by _cuda_emu.pyx (the same
# kernels built for the host through cuda/emu/cuda_emu.h, for testing without a GPU). Every
# kernel family adds its own .pxi below; the functions mirror _cpu's names and arguments, with
# device pointers (arrays exposing __cuda_array_interface__) instead of host ones, plus a
# keyword-only ``stream`` (a cudaStream_t as an int; 0: the legacy default stream).

from libc.stdint cimport uintptr_t

from geomops._c_common cimport GM_OK, GM_ERR_NO_DEVICE, buffer_address, check_status, install_interrupt_handler
from geomops._c_cuda cimport *


install_interrupt_handler()


class CudaError(RuntimeError):
    """A CUDA runtime call failed."""


def last_error():
    """Why the last failing CUDA call of this thread failed ("" if none did)."""
    return gm_cuda_last_error().decode("utf-8", "replace")


cdef inline int _check(int status) except -1:
    return check_status(status, "CUDA", None if status == GM_OK else last_error())


cdef inline size_t _addr(a) except? 0:
    return buffer_address(a)


NO_DEVICE = GM_ERR_NO_DEVICE


def device_count():
    """Return ``(count, status, reason)``; never raises.

    ``status`` is 0 on success, else a GM_* code (GM_ERR_NO_DEVICE: no driver or device) and
    ``reason`` says why in plain words."""
    cdef int count = 0
    cdef int status
    with nogil:
        status = gm_cuda_device_count(&count)
    return count, status, ("" if status == GM_OK else last_error())


def device_info(int dev):
    """Return a dict with name, compute capability and total memory of device ``dev``."""
    cdef char name[256]
    cdef int major = 0, minor = 0, status
    cdef size_t mem = 0
    with nogil:
        status = gm_cuda_device_info(dev, name, 256, &major, &minor, &mem)
    if status != GM_OK:
        raise CudaError(last_error())
    return {"name": name.decode("utf-8", "replace"), "compute_capability": (major, minor),
            "total_memory": int(mem)}


def versions():
    """Return ``(runtime_version, driver_version)`` as CUDA encodes them (e.g. 13000); the
    driver version is 0 when no NVIDIA driver is installed."""
    cdef int rt = 0, drv = 0
    gm_cuda_versions(&rt, &drv)
    return rt, drv


def set_device(int dev):
    """Make ``dev`` the calling thread's current device."""
    _check(gm_cuda_set_device(dev))


cdef class DeviceBuffer:
    """``nbytes`` bytes of device memory on ``device``, freed when the object is collected."""
    cdef readonly uintptr_t ptr
    cdef readonly size_t nbytes
    cdef readonly int device

    def __cinit__(self, size_t nbytes, int device):
        cdef void* p = NULL
        cdef int status
        with nogil:
            status = gm_cuda_malloc(&p, nbytes, device)
        _check(status)
        self.ptr = <uintptr_t>p
        self.nbytes = nbytes
        self.device = device

    def __dealloc__(self):
        if self.ptr:
            gm_cuda_free(<void*>self.ptr, self.nbytes, self.device)
            self.ptr = 0

    def __reduce__(self):
        raise TypeError("device memory cannot be pickled; call .get() on the array first")


def release_cached_memory():
    """Free the device memory cached for reuse by freed arrays (geomops keeps it because
    cudaFree would synchronise the device)."""
    _check(gm_cuda_release_cached())


def memcpy(uintptr_t dst, uintptr_t src, size_t nbytes, uintptr_t stream=0):
    """Copy ``nbytes`` between host/device addresses (unified addressing), ordered on ``stream``;
    complete on return."""
    cdef int status
    with nogil:
        status = gm_cuda_memcpy(<void*>dst, <const void*>src, nbytes, <void*>stream)
    _check(status)


def memset(uintptr_t ptr, int value, size_t nbytes, uintptr_t stream=0):
    """Set ``nbytes`` bytes at ``ptr`` to ``value``, ordered on ``stream`` (asynchronous)."""
    _check(gm_cuda_memset(<void*>ptr, value, nbytes, <void*>stream))


cdef class Stream:
    """A non-blocking CUDA stream on ``device``, destroyed with the object."""
    cdef readonly uintptr_t handle
    cdef readonly int device

    def __cinit__(self, int device):
        cdef void* s = NULL
        _check(gm_cuda_stream_create(&s, device))
        self.handle = <uintptr_t>s
        self.device = device

    def synchronize(self):
        cdef int status
        cdef void* s = <void*>self.handle
        with nogil:
            status = gm_cuda_stream_synchronize(s)
        _check(status)

    def __dealloc__(self):
        if self.handle:
            gm_cuda_stream_destroy(<void*>self.handle)
            self.handle = 0


def synchronize(uintptr_t stream):
    """Wait for the work ordered on ``stream`` (an int handle; 0 is the legacy default stream)."""
    cdef int status
    with nogil:
        status = gm_cuda_stream_synchronize(<void*>stream)
    _check(status)


include "_cuda_dlpack.pxi"
include "_cuda_array.pxi"
# ---- kernel families ----------------------------------------------------------------------------
include "_cuda_search.pxi"
include "_cuda_cconv.pxi"
include "_cuda_raster.pxi"
include "_cuda_posegrad.pxi"
include "_cuda_pose.pxi"
