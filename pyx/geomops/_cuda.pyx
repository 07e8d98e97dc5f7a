# cython: language_level=3
"""Private CUDA bindings. Only the device query exists so far; kernels come in later issues."""

cdef extern from "geomops/cuda_api.h" nogil:
    int gm_cuda_device_count(int* count)
    int gm_cuda_device_info(int dev, char* name, int name_len, int* major, int* minor, size_t* total_mem)
    int gm_cuda_versions(int* runtime_version, int* driver_version)
    const char* gm_cuda_error_string(int code)


class CudaError(RuntimeError):
    """A CUDA runtime call failed."""


def error_string(int code):
    return gm_cuda_error_string(code).decode("utf-8", "replace")


def device_count():
    """Return ``(count, error_code)``; never raises. ``error_code`` is 0 on success."""
    cdef int count = 0
    cdef int err
    with nogil:
        err = gm_cuda_device_count(&count)
    return count, err


def device_info(int dev):
    """Return a dict with name, compute capability and total memory of device ``dev``."""
    cdef char name[256]
    cdef int major = 0, minor = 0, err
    cdef size_t mem = 0
    with nogil:
        err = gm_cuda_device_info(dev, name, 256, &major, &minor, &mem)
    if err:
        raise CudaError(f"CUDA error {err}: {error_string(err)}")
    return {"name": name.decode("utf-8", "replace"), "compute_capability": (major, minor),
            "total_memory": int(mem)}


def versions():
    """Return ``(runtime_version, driver_version)`` as CUDA encodes them (e.g. 13000)."""
    cdef int rt = 0, drv = 0
    gm_cuda_versions(&rt, &drv)
    return rt, drv
