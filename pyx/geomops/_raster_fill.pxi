# Filling the rasterizer's parameter struct (include/geomops/raster_types.h) from the arguments
# of raster_render: shared by the CPU (_raster.pxi) and CUDA (_cuda_raster.pxi) bindings, which
# differ only in the launcher they call and the memory the arrays live in.

from libc.stdint cimport int16_t as _rs_i16, int32_t as _rs_i32, uint8_t as _rs_u8


cdef inline Py_ssize_t _rs_rows(a) except -1:
    """First dimension of a host (``__array_interface__``) or device (``__cuda_array_interface__``)
    array."""
    iface = getattr(a, "__cuda_array_interface__", None)
    if iface is None:
        iface = a.__array_interface__
    return iface["shape"][0]


cdef int _rs_fill(gm_raster_params* p, gm_raster_object* objs, tuple size, tuple intrinsics, list objects,
                  tuple shading, dict out) except -1:
    """Everything but num_threads; objs: room for len(objects) entries (NULL when empty)."""
    cdef Py_ssize_t i, j, n = len(objects)
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
    p.num_objects = <_rs_i32>n
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
        objs[i].num_vertices = _rs_rows(verts)
        objs[i].num_faces = _rs_rows(faces)
        for j in range(12):
            objs[i].transform[j] = transform[j]
        for j in range(9):
            objs[i].normal_matrix[j] = normal_matrix[j]
        objs[i].instance_index = inst
        objs[i].class_index = cls
    p.objects = objs
    return 0
