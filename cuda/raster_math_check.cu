// Compile check: nvcc must build the rasterizer's shared per-pixel math (raster_math.h) as
// device code. No CUDA rasterizer yet; this kernel is never launched by geomops.
#include "gm_cuda.cuh"

#include "geomops/raster_math.h"

__global__ void gm_raster_math_check_kernel(const double* cam, int n, int32_t* out_xy, double* out_bary) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    gm_vec3 P0 = gm_make_vec3(cam[9 * i + 0], cam[9 * i + 1], cam[9 * i + 2]);
    gm_vec3 P1 = gm_make_vec3(cam[9 * i + 3], cam[9 * i + 4], cam[9 * i + 5]);
    gm_vec3 P2 = gm_make_vec3(cam[9 * i + 6], cam[9 * i + 7], cam[9 * i + 8]);
    gm_plane planes[GM_RASTER_NUM_PLANES];
    gm_raster_clip_planes(500.0, 500.0, 32.0, 24.0, 0.1, 64, 48, GM_RASTER_GUARD, planes);
    gm_vec3 poly[GM_RASTER_MAX_POLY], clipped[GM_RASTER_MAX_POLY];
    poly[0] = P0;
    poly[1] = P1;
    poly[2] = P2;
    int m = 3;
    if (gm_raster_outcode(planes, P0) | gm_raster_outcode(planes, P1) | gm_raster_outcode(planes, P2))
        m = gm_raster_clip_polygon(poly, 3, planes[0], clipped);
    else
        for (int k = 0; k < 3; ++k) clipped[k] = poly[k];
    int32_t x[3] = {0, 0, 0}, y[3] = {0, 0, 0};
    for (int k = 0; k < 3 && k < m; ++k)
        gm_raster_project(clipped[k], 500.0, 500.0, 32.0, 24.0, &x[k], &y[k]);
    int64_t area = gm_raster_area2(x, y);
    int64_t e = gm_raster_edge(x[0], y[0], x[1], y[1], 0, 0) + gm_raster_edge_bias(x[1] - x[0], y[1] - y[0]);
    out_xy[2 * i + 0] = (int32_t)(area > 0) + (int32_t)gm_raster_floor_div(e, GM_RASTER_SUBPIXEL);
    out_xy[2 * i + 1] = (int32_t)gm_raster_to_u8(0.5);
    double b[3], a, bb, ee;
    gm_raster_persp_bary(P0, P1, P2, 0.01, -0.02, b);
    gm_vec3 nrm = gm_cross3(gm_sub3(P1, P0), gm_sub3(P2, P0));
    gm_raster_inv_depth_plane(nrm, gm_dot3(nrm, P0), &a, &bb, &ee);
    double T[12] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0};
    float v[3] = {1.0f, 2.0f, 3.0f};
    gm_vec3 q = gm_mat3_apply(T, gm_transform_point(T, v));
    out_bary[3 * i + 0] = b[0] + a * q.x;
    out_bary[3 * i + 1] = b[1] + bb * q.y;
    out_bary[3 * i + 2] = b[2] + ee * q.z;
}
