/* Per-vertex / per-pixel math of the rasterizer, shared by gcc (C11) and nvcc (C++).
 *
 * Coverage is decided exactly: projected vertices are snapped to a fixed-point grid with
 * 8 sub-pixel bits (GM_RASTER_SUBPIXEL: pixel centre c + 0.5 maps to c * 256) and the edge
 * functions are evaluated in int64, so a shared edge gives exactly the same values in both
 * triangles and the top-left rule assigns every pixel centre on it to exactly one of them.
 * Attributes are not taken from the snapped triangle: depth and barycentrics come from the
 * exact intersection of the pixel-centre ray with the triangle's plane (double precision),
 * which is the perspective-correct interpolation of the unclipped triangle
 * (docs/rendering.md "The rasterizer"). */
#ifndef GEOMOPS_RASTER_MATH_H
#define GEOMOPS_RASTER_MATH_H

#include <math.h>

#include "geomops/raster_types.h" /* GM_RASTER_SUBPIXEL */

#define GM_RASTER_NUM_PLANES 5  /* near, u >= -guard, u <= W + guard, v >= -guard, v <= H + guard */
#define GM_RASTER_MAX_POLY   10 /* 3 vertices + at most one more per clip plane (+ spare) */

typedef struct gm_vec3 {
    double x, y, z;
} gm_vec3;

/* Clip plane: inside iff a X + b Y + c Z + d >= 0 (camera frame). */
typedef struct gm_plane {
    double a, b, c, d;
} gm_plane;

GM_HD gm_vec3 gm_make_vec3(double x, double y, double z) {
    gm_vec3 r;
    r.x = x;
    r.y = y;
    r.z = z;
    return r;
}

GM_HD double gm_dot3(gm_vec3 a, gm_vec3 b) {
    return a.x * b.x + a.y * b.y + a.z * b.z;
}

GM_HD gm_vec3 gm_cross3(gm_vec3 a, gm_vec3 b) {
    return gm_make_vec3(a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x);
}

GM_HD gm_vec3 gm_sub3(gm_vec3 a, gm_vec3 b) {
    return gm_make_vec3(a.x - b.x, a.y - b.y, a.z - b.z);
}

/* T: row-major 3x4 (rotation/scale | translation). */
GM_HD gm_vec3 gm_transform_point(const double* T, const float* v) {
    double x = v[0], y = v[1], z = v[2];
    return gm_make_vec3(T[0] * x + T[1] * y + T[2] * z + T[3], T[4] * x + T[5] * y + T[6] * z + T[7],
                        T[8] * x + T[9] * y + T[10] * z + T[11]);
}

/* M: row-major 3x3. */
GM_HD gm_vec3 gm_mat3_apply(const double* M, gm_vec3 v) {
    return gm_make_vec3(M[0] * v.x + M[1] * v.y + M[2] * v.z, M[3] * v.x + M[4] * v.y + M[5] * v.z,
                        M[6] * v.x + M[7] * v.y + M[8] * v.z);
}

/* Image coordinate (pixel centres at +0.5) -> fixed point where pixel centre c sits at
 * c * GM_RASTER_SUBPIXEL. Rounds half up with floor(), independent of the FPU rounding mode. */
GM_HD int32_t gm_raster_snap(double u) {
    /* callers keep |u| below the guard band (2^21 px); the clamp only keeps rounding noise
     * and non-finite input from overflowing the int32 conversion */
    const double lim = 4194304.0; /* 2^22 px */
    if (!(u > -lim)) u = -lim;
    if (u > lim) u = lim;
    return (int32_t)floor(u * (double)GM_RASTER_SUBPIXEL - (double)(GM_RASTER_SUBPIXEL / 2) + 0.5);
}

GM_HD void gm_raster_project(gm_vec3 P, double fx, double fy, double cx, double cy, int32_t* x, int32_t* y) {
    double inv_z = 1.0 / P.z;
    *x = gm_raster_snap(fx * P.x * inv_z + cx);
    *y = gm_raster_snap(fy * P.y * inv_z + cy);
}

/* Edge function of the directed edge a -> b at p (fixed point, exact in int64 because all
 * coordinates are below 2^30 in magnitude). Positive on the interior side of a triangle with
 * positive gm_raster_area2. */
GM_HD int64_t gm_raster_edge(int64_t ax, int64_t ay, int64_t bx, int64_t by, int64_t px, int64_t py) {
    return (bx - ax) * (py - ay) - (by - ay) * (px - ax);
}

GM_HD int64_t gm_raster_area2(const int32_t* x, const int32_t* y) {
    return gm_raster_edge(x[0], y[0], x[1], y[1], x[2], y[2]);
}

/* Top-left rule for an edge with direction (dx, dy) of a positive-area triangle in y-down
 * image space: a top edge is horizontal with dx > 0, a left edge has dy < 0. Samples exactly on
 * an edge belong to the triangle only when the edge is top or left. */
GM_HD int gm_raster_is_top_left(int64_t dx, int64_t dy) {
    return dy < 0 || (dy == 0 && dx > 0);
}

/* Bias added to an edge function so that "inside" is simply value >= 0. */
GM_HD int64_t gm_raster_edge_bias(int64_t dx, int64_t dy) {
    return gm_raster_is_top_left(dx, dy) ? 0 : -1;
}

GM_HD int64_t gm_raster_floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

GM_HD void gm_raster_clip_planes(double fx, double fy, double cx, double cy, double near_z, int32_t width,
                                 int32_t height, double guard, gm_plane* planes) {
    planes[0].a = 0.0;
    planes[0].b = 0.0;
    planes[0].c = 1.0;
    planes[0].d = -near_z;
    /* u >= -guard  <=>  fx X + (cx + guard) Z >= 0 for Z > 0, and so on. */
    planes[1].a = fx;
    planes[1].b = 0.0;
    planes[1].c = cx + guard;
    planes[1].d = 0.0;
    planes[2].a = -fx;
    planes[2].b = 0.0;
    planes[2].c = (double)width + guard - cx;
    planes[2].d = 0.0;
    planes[3].a = 0.0;
    planes[3].b = fy;
    planes[3].c = cy + guard;
    planes[3].d = 0.0;
    planes[4].a = 0.0;
    planes[4].b = -fy;
    planes[4].c = (double)height + guard - cy;
    planes[4].d = 0.0;
}

GM_HD double gm_raster_plane_dist(gm_plane pl, gm_vec3 P) {
    return pl.a * P.x + pl.b * P.y + pl.c * P.z + pl.d;
}

/* Bit k set when P is outside plane k. */
GM_HD unsigned gm_raster_outcode(const gm_plane* planes, gm_vec3 P) {
    unsigned code = 0;
    for (int k = 0; k < GM_RASTER_NUM_PLANES; ++k)
        if (!(gm_raster_plane_dist(planes[k], P) >= 0.0)) code |= 1u << k;
    return code;
}

/* Point where the segment from the inside point a (da >= 0) to the outside point b (db < 0)
 * crosses the plane. Always parametrised from the inside end, so the two triangles sharing an
 * edge compute bit-identical points. */
GM_HD gm_vec3 gm_raster_intersect(gm_vec3 a, double da, gm_vec3 b, double db) {
    double t = da / (da - db);
    return gm_make_vec3(a.x + t * (b.x - a.x), a.y + t * (b.y - a.y), a.z + t * (b.z - a.z));
}

/* Sutherland-Hodgman step: clip the convex polygon in[0..n) against one plane into out
 * (capacity GM_RASTER_MAX_POLY). Returns the new vertex count. */
GM_HD int gm_raster_clip_polygon(const gm_vec3* in, int n, gm_plane pl, gm_vec3* out) {
    int m = 0;
    for (int i = 0; i < n; ++i) {
        gm_vec3 a = in[i], b = in[(i + 1) % n];
        double da = gm_raster_plane_dist(pl, a), db = gm_raster_plane_dist(pl, b);
        int ina = da >= 0.0, inb = db >= 0.0;
        if (ina && m < GM_RASTER_MAX_POLY) out[m++] = a;
        if (ina != inb && m < GM_RASTER_MAX_POLY)
            out[m++] = ina ? gm_raster_intersect(a, da, b, db) : gm_raster_intersect(b, db, a, da);
    }
    return m;
}

/* Perspective-correct barycentrics of the camera-space triangle (P0, P1, P2) at the pixel ray
 * d = (dx, dy, 1): b_k = d.C_k / sum_j d.C_j with C_0 = P1 x P2, C_1 = P2 x P0, C_2 = P0 x P1.
 * Returns sum_j d.C_j; the hit depth is Z = P0.(P1 x P2) / that sum. */
GM_HD double gm_raster_persp_bary(gm_vec3 P0, gm_vec3 P1, gm_vec3 P2, double dx, double dy, double* b) {
    gm_vec3 d = gm_make_vec3(dx, dy, 1.0);
    double f0 = gm_dot3(d, gm_cross3(P1, P2));
    double f1 = gm_dot3(d, gm_cross3(P2, P0));
    double f2 = gm_dot3(d, gm_cross3(P0, P1));
    double s = f0 + f1 + f2;
    double inv = 1.0 / s;
    b[0] = f0 * inv;
    b[1] = f1 * inv;
    b[2] = f2 * inv;
    return s;
}

/* Inverse depth on the pixel ray (dx, dy, 1) through the plane n . X = det
 * (n = (P1-P0) x (P2-P0), det = n . P0): 1/Z = (n . d) / det = a dx + b dy + e, affine in the
 * pixel position. Larger is closer; not positive when the ray misses the plane in front. */
GM_HD void gm_raster_inv_depth_plane(gm_vec3 n, double det, double* a, double* b, double* e) {
    double inv = 1.0 / det;
    *a = n.x * inv;
    *b = n.y * inv;
    *e = n.z * inv;
}

/* Shaded channel value -> uint8 with round-half-up (mode independent), clipped to [0, 255]. */
GM_HD uint8_t gm_raster_to_u8(double c) {
    if (!(c > 0.0)) return 0;
    if (c >= 1.0) return 255;
    return (uint8_t)floor(c * 255.0 + 0.5);
}

#endif /* GEOMOPS_RASTER_MATH_H */
