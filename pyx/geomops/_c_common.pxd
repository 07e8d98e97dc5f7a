# C declarations shared by every binding (include/geomops/common.h, cpu/isa.h), the status
# check and the one place where a Python buffer becomes a data pointer.

from cpython.exc cimport PyErr_Occurred

cdef extern from "geomops/common.h" nogil:
    int GM_FLOAT32, GM_FLOAT64
    int GM_OK, GM_ERR_NOMEM, GM_ERR_INVALID, GM_ERR_OVERFLOW, GM_ERR_UNSUPPORTED
    int GM_ERR_NO_DEVICE, GM_ERR_DEVICE, GM_ERR_INTERRUPTED

cdef extern from "geomops/interrupt.h" nogil:
    ctypedef int (*gm_interrupt_handler)() noexcept nogil
    void gm_interrupt_set_handler(gm_interrupt_handler handler)
    void gm_interrupt_reset()

cdef extern from "geomops/host_alloc.h" nogil:
    double gm_host_nomem_take()

cdef extern from *:
    """
    #include "pythread.h"
    /* The interrupt handler of the bindings (geomops/interrupt.h), run by a polling launcher on
     * the thread that called it. Python runs signal handlers on its main thread only, so other
     * threads return at once; the main thread takes the GIL just to run the pending handlers.
     * What they raise (KeyboardInterrupt) stays set: the binding's status check raises it. */
    static unsigned long gm_py_main_thread;
    static int gm_py_interrupt_handler(void) {
        if (PyThread_get_thread_ident() != gm_py_main_thread) return 0;
        PyGILState_STATE gil = PyGILState_Ensure();
        const int stop = PyErr_CheckSignals() < 0;
        PyGILState_Release(gil);
        return stop;
    }
    """
    unsigned long gm_py_main_thread
    int gm_py_interrupt_handler() noexcept nogil


cdef inline int install_interrupt_handler() except -1:
    """Let this module's long kernels be interrupted by Ctrl-C (called once, at import)."""
    global gm_py_main_thread
    import threading
    gm_py_main_thread = threading.main_thread().ident
    gm_interrupt_set_handler(gm_py_interrupt_handler)
    return 0


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
    gm_interrupt_reset()
    if PyErr_Occurred() != NULL:
        return -1  # a signal handler raised (KeyboardInterrupt) while the kernel polled: raise it
    if status == GM_OK:
        return 0
    if status == GM_ERR_INTERRUPTED:
        raise KeyboardInterrupt
    why = f": {detail}" if detail else ""
    if status == GM_ERR_NOMEM:
        host_bytes = gm_host_nomem_take()
        if host_bytes > 0:
            from geomops._memory import nbytes_text
            raise MemoryError(f"geomops ({backend}): could not allocate {nbytes_text(host_bytes)} of host "
                              "memory for a kernel's temporaries")
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
