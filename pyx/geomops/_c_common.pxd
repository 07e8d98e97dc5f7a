# C declarations shared by every binding (include/geomops/common.h, cpu/isa.h), the status
# check and the one place where a Python buffer becomes a data pointer.

cdef extern from "geomops/common.h" nogil:
    int GM_FLOAT32, GM_FLOAT64
    int GM_OK, GM_ERR_NOMEM, GM_ERR_INVALID, GM_ERR_OVERFLOW, GM_ERR_UNSUPPORTED
    int GM_ERR_NO_DEVICE, GM_ERR_DEVICE


cdef inline size_t buffer_address(a) except? 0:
    """Data pointer of a validated array (0 for None).

    The facade guarantees dtype and C-contiguity; the pointer is valid while the caller holds
    the array. Host arrays expose ``__array_interface__``; device arrays (the CUDA backend)
    ``__cuda_array_interface__``: this is the only function that reads either."""
    if a is None:
        return 0
    iface = getattr(a, "__cuda_array_interface__", None)
    if iface is None:
        iface = a.__array_interface__
    return <size_t>iface["data"][0]


cdef inline int check_status(int status, str backend, str detail=None) except -1:
    """Turn a launcher status code into a Python exception (``backend`` names it: "CPU"/"CUDA";
    ``detail`` is the backend's own reason, e.g. the CUDA error text or the bytes asked for)."""
    if status == GM_OK:
        return 0
    why = f": {detail}" if detail else ""
    if status == GM_ERR_NOMEM:
        if detail:
            raise MemoryError(f"geomops ({backend}): {detail}")
        raise MemoryError(f"geomops: a {backend} kernel could not allocate its memory")
    if status == GM_ERR_OVERFLOW:
        raise OverflowError(f"geomops: a result count does not fit the requested index dtype{why}")
    if status == GM_ERR_UNSUPPORTED:
        raise NotImplementedError(f"geomops: option combination not supported by the {backend} backend{why}")
    if status == GM_ERR_NO_DEVICE:
        raise RuntimeError(f"geomops: no usable CUDA driver or device{why}")
    if status == GM_ERR_DEVICE:
        raise RuntimeError(f"geomops: a {backend} runtime call failed{why}")
    raise RuntimeError(f"geomops: kernel reported an invalid argument (status {status}){why}; "
                       "this is a bug in the input validation, please report it")
