# C declarations of the pose-gradient kernels (include/geomops/posegrad_types.h, posegrad.h): the
# CPU and CUDA launchers.

from libc.stddef cimport ptrdiff_t
from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t

cdef extern from "geomops/posegrad_types.h" nogil:
    int GM_PG_BORDER_ZERO, GM_PG_BORDER_REPLICATE
    int GM_PG_SEM_CUDA, GM_PG_SEM_CPU
    int GM_PG_ACC_GRAD, GM_PG_ACC_SINGULAR, GM_PG_ACC_PIXELS, GM_PG_ACC_STRIDE

    ctypedef struct gm_pg_image:
        int height, width
        const uint8_t* rgb_u8
        const float* rgb_f32
        int rgb_channels
        int border, semantics
        const int16_t* instance
        const float* depth
        int num_threads

    ctypedef struct gm_pg_image_grad_params:
        gm_pg_image img
        float* grad_x
        float* grad_y
        uint8_t* valid

    ctypedef struct gm_pg_backprop_params:
        gm_pg_image img
        const float* coords
        const float* g_f32
        const double* g_f64
        ptrdiff_t g_cstride, g_pstride
        int num_objects
        const double* transforms
        const double* projection
        int denom_row
        const int32_t* id_to_slot
        const int32_t* slot_start
        const int32_t* slot_objects
        double* accum
        float* contributions
        uint8_t* masks
        int32_t* bad_id
        int64_t* first_nonfinite

cdef extern from "geomops/posegrad.h" nogil:
    int gm_posegrad_image_gradients_cpu(const gm_pg_image_grad_params* p)
    int gm_posegrad_backprop_cpu(const gm_pg_backprop_params* p)
    int gm_posegrad_image_gradients_cuda(const gm_pg_image_grad_params* p, void* stream)
    int gm_posegrad_backprop_cuda(const gm_pg_backprop_params* p, void* stream)
