# CUDA bindings of the software rasterizer (cuda/raster.cu): _cpu's raster functions with device
# arrays and a ``stream``. The struct is filled by the code the CPU binding uses.

from libc.stdint cimport uintptr_t as _cr_uintptr
from libc.stdlib cimport calloc as _cr_calloc, free as _cr_free

from geomops._c_raster cimport (GM_MAX_INSTANCE_INDEX, GM_RASTER_BACKGROUND, GM_RASTER_MAX_SIZE,
                                gm_raster_cuda, gm_raster_object, gm_raster_params)

include "_raster_fill.pxi"

MAX_INSTANCE_INDEX = GM_MAX_INSTANCE_INDEX
RASTER_MAX_SIZE = GM_RASTER_MAX_SIZE
RASTER_BACKGROUND = GM_RASTER_BACKGROUND


def raster_release_cache():
    """The CPU binding's cache release, for the same interface: the CUDA rasterizer keeps no
    scratch memory between calls (its temporaries are stream-ordered allocations, returned to
    CUDA's memory pool at the end of each call), so there is nothing to release."""


def raster_render(tuple size, tuple intrinsics, list objects, tuple shading, dict out, int num_threads, *,
                  _cr_uintptr stream=0):
    """Render into the preallocated device buffers in ``out``: ``_cpu.raster_render`` with device
    arrays (the mesh arrays of ``objects`` and the buffers; transforms, normal matrices and
    shading stay Python numbers). ``num_threads`` is ignored. Ordered on ``stream``; synchronises
    it once (to size the temporaries), the buffers are complete when its work is."""
    cdef gm_raster_params p
    cdef gm_raster_object* objs = NULL
    cdef Py_ssize_t n = len(objects)
    cdef int status
    cdef void* s = <void*>stream
    if n > 0:
        objs = <gm_raster_object*>_cr_calloc(n, sizeof(gm_raster_object))
        if objs == NULL:
            raise MemoryError("geomops: could not allocate the object table")
    try:
        _rs_fill(&p, objs, size, intrinsics, objects, shading, out)
        p.num_threads = 1
        with nogil:
            status = gm_raster_cuda(&p, s)
        _check(status)
    finally:
        _cr_free(objs)
