# C declarations of the software rasterizer (include/geomops/raster_types.h, raster.h): the CPU
# and CUDA launchers.

from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t

cdef extern from "geomops/raster_types.h" nogil:
    int GM_MAX_INSTANCE_INDEX
    int GM_RASTER_MAX_SIZE
    float GM_RASTER_BACKGROUND

    ctypedef struct gm_raster_object:
        const float* vertices
        const int32_t* faces
        const float* colors
        const float* normals
        int64_t num_vertices
        int64_t num_faces
        double transform[12]
        double normal_matrix[9]
        int32_t instance_index
        int32_t class_index

    ctypedef struct gm_raster_params:
        int32_t width, height
        double fx, fy, cx, cy, near_z, far_z
        int32_t num_objects
        const gm_raster_object* objects
        double light_dir[3]
        double light_color[3]
        double ambient[3]
        double background[3]
        double default_color[3]
        uint8_t* rgb
        float* depth
        int16_t* instance_index
        float* object_coordinates
        float* cam_coordinates
        float* normals
        int16_t* class_index
        int32_t* triangle_id
        float* barycentrics
        int num_threads

cdef extern from "geomops/raster.h" nogil:
    int gm_raster_cpu(const gm_raster_params* p)
    void gm_raster_release_cache()
    int gm_raster_cuda(const gm_raster_params* p, void* stream)
