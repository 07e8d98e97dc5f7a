# cython: language_level=3
"""Private CUDA bindings. Only the device queries exist so far; kernels come in later issues.

Every query returns or raises with geomops' status codes (``_c_common.pxd``); the reason of a
failure comes from ``gm_cuda_last_error()`` in plain words (no driver, no device, ...)."""

from geomops._c_common cimport GM_OK, GM_ERR_NO_DEVICE
from geomops._c_cuda cimport (gm_cuda_device_count, gm_cuda_device_info, gm_cuda_last_error,
                              gm_cuda_versions)


class CudaError(RuntimeError):
    """A CUDA runtime call failed."""


def last_error():
    """Why the last failing CUDA query of this thread failed ("" if none did)."""
    return gm_cuda_last_error().decode("utf-8", "replace")


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


NO_DEVICE = GM_ERR_NO_DEVICE
