// Compiles the shared neighbor-search math (include/geomops/search_math.h) with nvcc into real
// kernels, so that header stays usable by the CUDA backend. The kernels are the per-candidate
// body the CUDA port will launch: one thread per candidate point -> its distance under every
// metric, its radius test against a k-d box bound, and its hash-table and grid cells.
#include "gm_cuda.cuh"

#include "geomops/search_math.h"

extern "C" __global__ void gm_search_math_f32_kernel(const float* pts, const float* q, double radius,
                                                     const int64_t* dims, int n, float* dist,
                                                     uint64_t* keys) {
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    const float dx = pts[3 * t] - q[0], dy = pts[3 * t + 1] - q[1], dz = pts[3 * t + 2] - q[2];
    const float thr = gm_search_threshold_f32((float)radius, GM_METRIC_L2);
    dist[4 * t] = gm_search_dist_f32(dx, dy, dz, GM_METRIC_L1);
    dist[4 * t + 1] = gm_search_dist_f32(dx, dy, dz, GM_METRIC_L2);
    dist[4 * t + 2] = gm_search_dist_f32(dx, dy, dz, GM_METRIC_LINF);
    dist[4 * t + 3] = gm_search_combine_f32(fabsf(dx), fabsf(dy), fabsf(dz), GM_METRIC_L2) < thr;
    const float inv = gm_search_hash_inv_voxel_f32(radius);
    keys[2 * t] = gm_search_hash_point_f32(pts[3 * t], pts[3 * t + 1], pts[3 * t + 2], inv);
    const int64_t cx = gm_search_grid_coord(pts[3 * t], 0.0, inv, 0, dims[0] - 1);
    const int64_t cy = gm_search_grid_coord(pts[3 * t + 1], 0.0, inv, 0, dims[1] - 1);
    const int64_t cz = gm_search_grid_coord(pts[3 * t + 2], 0.0, inv, 0, dims[2] - 1);
    keys[2 * t + 1] = gm_search_grid_key(cx, cy, cz, dims);
}

extern "C" __global__ void gm_search_math_f64_kernel(const double* pts, const double* q, double radius,
                                                     const int64_t* dims, int n, double* dist,
                                                     uint64_t* keys) {
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    const double dx = pts[3 * t] - q[0], dy = pts[3 * t + 1] - q[1], dz = pts[3 * t + 2] - q[2];
    const double thr = gm_search_threshold_f64(radius, GM_METRIC_L1);
    dist[4 * t] = gm_search_dist_f64(dx, dy, dz, GM_METRIC_L1);
    dist[4 * t + 1] = gm_search_dist_f64(dx, dy, dz, GM_METRIC_L2);
    dist[4 * t + 2] = gm_search_dist_f64(dx, dy, dz, GM_METRIC_LINF);
    dist[4 * t + 3] = gm_search_combine_f64(fabs(dx), fabs(dy), fabs(dz), GM_METRIC_L1) < thr;
    keys[2 * t] = gm_search_hash_point_f64(pts[3 * t], pts[3 * t + 1], pts[3 * t + 2],
                                           gm_search_hash_inv_voxel_f64(radius));
    int64_t cx, cy, cz;
    gm_search_grid_decode(keys[2 * t] % 1024, dims, &cx, &cy, &cz);
    keys[2 * t + 1] = (uint64_t)(cx + cy + cz);
}
