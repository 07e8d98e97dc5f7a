# Bindings for the software rasterizer (cpu/raster.c). Inputs are validated by
# geomops.pose.render; this layer only copies pointers and numbers into the C structs.

from libc.stdlib cimport calloc as _rs_calloc, free as _rs_free

from geomops._c_raster cimport (GM_MAX_INSTANCE_INDEX, GM_RASTER_BACKGROUND, GM_RASTER_MAX_SIZE,
                                gm_raster_cpu, gm_raster_object, gm_raster_params,
                                gm_raster_release_cache)

include "_raster_fill.pxi"

# Constants of include/geomops/raster_types.h, for the Python facade (geomops.pose._constants).
MAX_INSTANCE_INDEX = GM_MAX_INSTANCE_INDEX
RASTER_MAX_SIZE = GM_RASTER_MAX_SIZE
RASTER_BACKGROUND = GM_RASTER_BACKGROUND


def raster_release_cache():
    """Free the rasterizer's cached scratch memory (it is kept between calls for speed)."""
    with nogil:
        gm_raster_release_cache()


def raster_render(tuple size, tuple intrinsics, list objects, tuple shading, dict out, int num_threads):
    """Render into the preallocated buffers in ``out`` (see geomops.pose.render).

    The optional buffers (cam_coordinates, normals, class_index, triangle_id, barycentrics)
    may be missing or None in ``out``: they are then neither computed nor written.

    size = (width, height); intrinsics = (fx, fy, cx, cy, near, far);
    objects = [(vertices, faces, colors|None, normals|None, transform (12,), normal_matrix (9,),
    instance_index, class_index)] with C-contiguous float32/int32/float64 arrays;
    shading = (light_dir, light_color, ambient, background, default_color), each 3 floats.
    """
    cdef gm_raster_params p
    cdef gm_raster_object* objs = NULL
    cdef Py_ssize_t n = len(objects)
    cdef int status
    if n > 0:
        objs = <gm_raster_object*>_rs_calloc(n, sizeof(gm_raster_object))
        if objs == NULL:
            raise MemoryError("geomops: could not allocate the object table")
    try:
        _rs_fill(&p, objs, size, intrinsics, objects, shading, out)
        p.num_threads = num_threads
        with nogil:
            status = gm_raster_cpu(&p)
        _check(status)
    finally:
        _rs_free(objs)
