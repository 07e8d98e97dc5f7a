# cython: language_level=3
"""Private OpenMP bindings of geomops.

One extension module; each kernel family lives in its own ``.pxi`` file, included below.
Every binding fills one plain parameter struct from already-validated NumPy arrays (the
public facade in ``ops.py`` / ``pose`` does all checking), releases the GIL and calls the
C launcher in ``cpu/``. Launchers return a status code, turned into an exception here.
"""

cimport openmp

cdef extern from "geomops/common.h":
    int GM_OK, GM_ERR_NOMEM, GM_ERR_INVALID, GM_ERR_OVERFLOW, GM_ERR_UNSUPPORTED


def max_threads():
    """OpenMP's default thread count (``omp_get_max_threads()``)."""
    return openmp.omp_get_max_threads()


def openmp_version():
    """The ``_OPENMP`` date macro of the compiler that built the module."""
    return GM_OPENMP_VERSION


cdef extern from *:
    """
    #ifdef _OPENMP
    #define GM_OPENMP_VERSION _OPENMP
    #else
    #define GM_OPENMP_VERSION 0
    #endif
    """
    int GM_OPENMP_VERSION


cdef int _check(int status) except -1:
    """Turn a launcher status code into a Python exception."""
    if status == GM_OK:
        return 0
    if status == GM_ERR_NOMEM:
        raise MemoryError("geomops: a kernel could not allocate its temporary memory")
    if status == GM_ERR_OVERFLOW:
        raise OverflowError("geomops: a result count does not fit the requested index dtype")
    if status == GM_ERR_UNSUPPORTED:
        raise NotImplementedError("geomops: option combination not supported by the CPU backend")
    raise RuntimeError(f"geomops: kernel reported an invalid argument (status {status}); "
                       "this is a bug in the input validation, please report it")


cdef inline size_t _addr(a) except? 0:
    """Data pointer of a validated NumPy array (0 for None). The facades guarantee dtype and
    C-contiguity; the pointer is valid while the caller holds the array."""
    if a is None:
        return 0
    return <size_t>a.__array_interface__["data"][0]


include "_cconv.pxi"
include "_search.pxi"
include "_raster.pxi"
include "_posegrad.pxi"
