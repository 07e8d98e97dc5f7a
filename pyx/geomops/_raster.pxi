# Bindings for the software rasterizer (cpu/raster.c). Inputs are validated by
# geomops.pose.render; this layer only copies pointers and numbers into the C structs.

from libc.stdlib cimport calloc as _rs_calloc, free as _rs_free
from libc.stdint cimport int16_t as _rs_i16, int32_t as _rs_i32, uint8_t as _rs_u8

from geomops._c_raster cimport (GM_MAX_INSTANCE_INDEX, GM_RASTER_BACKGROUND, GM_RASTER_MAX_SIZE,
                                gm_raster_cpu, gm_raster_object, gm_raster_params,
                                gm_raster_release_cache)

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
    cdef Py_ssize_t i, j, n = len(objects)
    cdef int status
    p.width = size[0]
    p.height = size[1]
    p.fx, p.fy, p.cx, p.cy, p.near_z, p.far_z = intrinsics
    for j in range(3):
        p.light_dir[j] = shading[0][j]
        p.light_color[j] = shading[1][j]
        p.ambient[j] = shading[2][j]
        p.background[j] = shading[3][j]
        p.default_color[j] = shading[4][j]
    p.rgb = <_rs_u8*>_addr(out["rgb"])
    p.depth = <float*>_addr(out["depth"])
    p.instance_index = <_rs_i16*>_addr(out["instance_index"])
    p.object_coordinates = <float*>_addr(out["object_coordinates"])
    p.cam_coordinates = NULL
    p.normals = NULL
    p.class_index = NULL
    p.triangle_id = NULL
    p.barycentrics = NULL
    if out.get("cam_coordinates") is not None:
        p.cam_coordinates = <float*>_addr(out["cam_coordinates"])
    if out.get("normals") is not None:
        p.normals = <float*>_addr(out["normals"])
    if out.get("class_index") is not None:
        p.class_index = <_rs_i16*>_addr(out["class_index"])
    if out.get("triangle_id") is not None:
        p.triangle_id = <_rs_i32*>_addr(out["triangle_id"])
    if out.get("barycentrics") is not None:
        p.barycentrics = <float*>_addr(out["barycentrics"])
    p.num_threads = num_threads
    p.num_objects = <_rs_i32>n
    if n > 0:
        objs = <gm_raster_object*>_rs_calloc(n, sizeof(gm_raster_object))
        if objs == NULL:
            raise MemoryError("geomops: could not allocate the object table")
    try:
        for i in range(n):
            verts, faces, colors, normals, transform, normal_matrix, inst, cls = objects[i]
            objs[i].vertices = <const float*>_addr(verts)
            objs[i].faces = <const _rs_i32*>_addr(faces)
            objs[i].colors = NULL
            objs[i].normals = NULL
            if colors is not None:
                objs[i].colors = <const float*>_addr(colors)
            if normals is not None:
                objs[i].normals = <const float*>_addr(normals)
            objs[i].num_vertices = verts.shape[0]
            objs[i].num_faces = faces.shape[0]
            for j in range(12):
                objs[i].transform[j] = transform[j]
            for j in range(9):
                objs[i].normal_matrix[j] = normal_matrix[j]
            objs[i].instance_index = inst
            objs[i].class_index = cls
        p.objects = objs
        with nogil:
            status = gm_raster_cpu(&p)
        _check(status)
    finally:
        _rs_free(objs)
