# cython: language_level=3
"""Private OpenMP bindings of geomops.

One extension module; each kernel family lives in its own ``.pxi`` file, included below, with
its C declarations in the matching ``_c_<family>.pxd``. Every binding fills one plain
parameter struct from already-validated arrays (the public facade does all checking; it reaches
this module only through ``geomops._backend``), releases the GIL and calls the C launcher in
``cpu/``. Launchers return a status code, turned into an exception by ``_check``.
"""

cimport openmp

from geomops._c_common cimport GM_FLOAT32, GM_FLOAT64, buffer_address, check_status, install_interrupt_handler

cdef extern from "isa.h" nogil:
    int gm_cpu_isa()
    int gm_cpu_isa_supported(int isa)
    const char* gm_cpu_isa_name(int isa)
    int gm_cpu_isa_request_ignored()
    int GM_ISA_COUNT  # a macro in isa.h


install_interrupt_handler()


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


def cpu_kernel():
    """Name of the vector ISA the CPU kernels use ("avx512", "avx2" or "generic")."""
    return gm_cpu_isa_name(gm_cpu_isa()).decode()


def cpu_kernels_supported():
    """Names of the ISA variants this CPU can run (GEOMOPS_CPU_KERNEL may pick any of them)."""
    return [gm_cpu_isa_name(i).decode() for i in range(GM_ISA_COUNT) if gm_cpu_isa_supported(i)]


def cpu_kernel_request_ignored():
    """True when GEOMOPS_CPU_KERNEL named an ISA that is unknown or not supported here."""
    return gm_cpu_isa_request_ignored() != 0


cdef inline int _check(int status) except -1:
    return check_status(status, "CPU")


cdef inline size_t _addr(a) except? 0:
    return buffer_address(a)


include "_cconv.pxi"
include "_search.pxi"
include "_raster.pxi"
include "_posegrad.pxi"
