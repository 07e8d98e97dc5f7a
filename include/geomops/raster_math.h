/* Per-vertex / per-pixel math of the rasterizer, shared by gcc (C11) and nvcc (C++).
 *
 * Coverage is decided exactly: projected vertices are snapped to a fixed-point grid with
 * 8 sub-pixel bits (GM_RASTER_SUBPIXEL: pixel centre c + 0.5 maps to c * 256) and the edge
 * functions are evaluated in int64, so a shared edge gives exactly the same values in both
 * triangles and the top-left rule assigns every pixel centre on it to exactly one of them.
 * Attributes are not taken from the snapped triangle: depth and barycentrics come from the
 * exact intersection of the pixel-centre ray with the triangle's plane (double precision),
 * which is the perspective-correct interpolation of the unclipped triangle
 * (docs/rendering.md "The rasterizer").
 *
 * Both backends must pick the same pixels and the same winners bit for bit, so every product
 * that feeds a sum is rounded on its own (gm_raster_mul): the device would otherwise fuse it
 * into an FMA, whose single rounding moves snapped vertices, clip points and depths by an ulp.
 * Host includers compile with contraction off (the pragma at the top of cpu/raster.c). */
#ifndef GEOMOPS_RASTER_MATH_H
#define GEOMOPS_RASTER_MATH_H

#include <float.h>
#include <math.h>

#include "geomops/raster_types.h" /* GM_RASTER_SUBPIXEL, gm_raster_params */

#define GM_RASTER_NUM_PLANES 5  /* near, u >= -guard, u <= W + guard, v >= -guard, v <= H + guard */
#define GM_RASTER_MAX_POLY   10 /* 3 vertices + at most one more per clip plane (+ spare) */
#define GM_RASTER_MAX_PIECES (GM_RASTER_MAX_POLY - 2) /* fan triangles of one clipped face */

/* Vertex outcode bits: bit k (k < GM_RASTER_NUM_PLANES) outside clip plane k, then beyond far
 * (for the trivial reject only); all bits: a non-finite vertex, whose faces are dropped. */
#define GM_RASTER_PLANE_MASK ((1u << GM_RASTER_NUM_PLANES) - 1u)
#define GM_RASTER_FAR_BIT    (1u << GM_RASTER_NUM_PLANES)
#define GM_RASTER_ALL_BITS   (GM_RASTER_PLANE_MASK | GM_RASTER_FAR_BIT)

typedef struct gm_vec3 {
    double x, y, z;
} gm_vec3;

/* Clip plane: inside iff a X + b Y + c Z + d >= 0 (camera frame). */
typedef struct gm_plane {
    double a, b, c, d;
} gm_plane;

/* a * b, rounded before any following addition (never fused into an FMA). */
GM_HD double gm_raster_mul(double a, double b) {
#if defined(__CUDA_ARCH__)
    return __dmul_rn(a, b);
#else
    return a * b;
#endif
}

/* a * x + b with two roundings. */
GM_HD double gm_raster_axpb(double a, double x, double b) {
    return gm_raster_mul(a, x) + b;
}

GM_HD gm_vec3 gm_make_vec3(double x, double y, double z) {
    gm_vec3 r;
    r.x = x;
    r.y = y;
    r.z = z;
    return r;
}

GM_HD double gm_dot3(gm_vec3 a, gm_vec3 b) {
    return gm_raster_mul(a.x, b.x) + gm_raster_mul(a.y, b.y) + gm_raster_mul(a.z, b.z);
}

GM_HD gm_vec3 gm_cross3(gm_vec3 a, gm_vec3 b) {
    return gm_make_vec3(gm_raster_mul(a.y, b.z) - gm_raster_mul(a.z, b.y),
                        gm_raster_mul(a.z, b.x) - gm_raster_mul(a.x, b.z),
                        gm_raster_mul(a.x, b.y) - gm_raster_mul(a.y, b.x));
}

GM_HD gm_vec3 gm_sub3(gm_vec3 a, gm_vec3 b) {
    return gm_make_vec3(a.x - b.x, a.y - b.y, a.z - b.z);
}

/* T: row-major 3x4 (rotation/scale | translation). */
GM_HD gm_vec3 gm_transform_point(const double* T, const float* v) {
    double x = v[0], y = v[1], z = v[2];
    return gm_make_vec3(gm_raster_mul(T[0], x) + gm_raster_mul(T[1], y) + gm_raster_mul(T[2], z) + T[3],
                        gm_raster_mul(T[4], x) + gm_raster_mul(T[5], y) + gm_raster_mul(T[6], z) + T[7],
                        gm_raster_mul(T[8], x) + gm_raster_mul(T[9], y) + gm_raster_mul(T[10], z) + T[11]);
}

/* M: row-major 3x3. */
GM_HD gm_vec3 gm_mat3_apply(const double* M, gm_vec3 v) {
    return gm_make_vec3(gm_raster_mul(M[0], v.x) + gm_raster_mul(M[1], v.y) + gm_raster_mul(M[2], v.z),
                        gm_raster_mul(M[3], v.x) + gm_raster_mul(M[4], v.y) + gm_raster_mul(M[5], v.z),
                        gm_raster_mul(M[6], v.x) + gm_raster_mul(M[7], v.y) + gm_raster_mul(M[8], v.z));
}

/* Image coordinate (pixel centres at +0.5) -> fixed point where pixel centre c sits at
 * c * GM_RASTER_SUBPIXEL. Rounds half up with floor(), independent of the FPU rounding mode. */
GM_HD int32_t gm_raster_snap(double u) {
    /* callers keep |u| below the guard band (2^21 px); the clamp only keeps rounding noise
     * and non-finite input from overflowing the int32 conversion */
    const double lim = 4194304.0; /* 2^22 px */
    if (!(u > -lim)) u = -lim;
    if (u > lim) u = lim;
    return (int32_t)floor(gm_raster_mul(u, (double)GM_RASTER_SUBPIXEL) - (double)(GM_RASTER_SUBPIXEL / 2) +
                          0.5);
}

GM_HD void gm_raster_project(gm_vec3 P, double fx, double fy, double cx, double cy, int32_t* x, int32_t* y) {
    double inv_z = 1.0 / P.z;
    *x = gm_raster_snap(gm_raster_axpb(gm_raster_mul(fx, P.x), inv_z, cx));
    *y = gm_raster_snap(gm_raster_axpb(gm_raster_mul(fy, P.y), inv_z, cy));
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
    return gm_raster_mul(pl.a, P.x) + gm_raster_mul(pl.b, P.y) + gm_raster_mul(pl.c, P.z) + pl.d;
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
    return gm_make_vec3(a.x + gm_raster_mul(t, b.x - a.x), a.y + gm_raster_mul(t, b.y - a.y),
                        a.z + gm_raster_mul(t, b.z - a.z));
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
    /* clamped first (NaN -> 0): 0 and 1 give 0 and 255. No branch, and truncation rather than
     * floor (the same on these positive values), so the CPU vectorizes it (gm_raster_light). */
    const double cl = c > 0.0 ? (c < 1.0 ? c : 1.0) : 0.0;
    return (uint8_t)(int32_t)gm_raster_axpb(cl, 255.0, 0.5);
} /* ---- the stages of the rasterizer shared by both backends ------------------------------------ */

/* One piece of a (possibly clipped) triangle, ready for coverage tests (72 bytes). */
typedef struct gm_raster_tri {
    int32_t x[3], y[3];     /* fixed-point vertices, positive orientation */
    int16_t c0, c1, r0, r1; /* pixel bounding box, clamped to the image */
    int32_t gface;          /* global face id (faces of all objects in submission order) */
    float ilo, ihi;         /* inverse-depth range of the piece (widened slightly) */
    double a, b, e;         /* 1/Z = a dx + b dy + e on the pixel ray (dx, dy, 1) */
} gm_raster_tri;

/* What triangle setup needs to know about the camera and the image. */
typedef struct gm_raster_view {
    double fx, fy, cx, cy, far_z;
    int32_t width, height;
    gm_plane planes[GM_RASTER_NUM_PLANES];
} gm_raster_view;

GM_HD void gm_raster_view_init(const gm_raster_params* p, gm_raster_view* v) {
    v->fx = p->fx;
    v->fy = p->fy;
    v->cx = p->cx;
    v->cy = p->cy;
    v->far_z = p->far_z;
    v->width = p->width;
    v->height = p->height;
    gm_raster_clip_planes(p->fx, p->fy, p->cx, p->cy, p->near_z, p->width, p->height, GM_RASTER_GUARD,
                          v->planes);
}

/* Ray direction component of pixel column (or row) index i: (i + 0.5 - c) / f. */
GM_HD double gm_raster_ray(int32_t i, double c, double f) {
    return ((double)i + 0.5 - c) / f;
}

/* Vertex x (object frame) under T: camera-frame point, outcode and, when inside every clip
 * plane, its snapped projection (else 0, 0). */
GM_HD void gm_raster_vertex(const gm_raster_view* v, const double* T, const float* x, gm_vec3* P,
                            unsigned* code, int32_t* sx, int32_t* sy) {
    gm_vec3 Q = gm_transform_point(T, x);
    unsigned c = gm_raster_outcode(v->planes, Q);
    if (!(Q.z <= v->far_z)) c |= GM_RASTER_FAR_BIT; /* for trivial reject only */
    if (!(fabs(Q.x) <= DBL_MAX && fabs(Q.y) <= DBL_MAX && fabs(Q.z) <= DBL_MAX)) c = GM_RASTER_ALL_BITS;
    int32_t X = 0, Y = 0;
    if (!(c & GM_RASTER_PLANE_MASK)) gm_raster_project(Q, v->fx, v->fy, v->cx, v->cy, &X, &Y);
    *P = Q;
    *code = c;
    *sx = X;
    *sy = Y;
}

/* Whether the sample at fixed-point (px, py) is covered by the piece (top-left rule). */
GM_HD int gm_raster_covers(const gm_raster_tri* t, int64_t px, int64_t py) {
    int64_t acc = 0;
    for (int k = 0; k < 3; ++k) {
        const int k1 = k == 2 ? 0 : k + 1;
        acc |= gm_raster_edge(t->x[k], t->y[k], t->x[k1], t->y[k1], px, py) +
               gm_raster_edge_bias((int64_t)t->x[k1] - t->x[k], (int64_t)t->y[k1] - t->y[k]);
    }
    return acc >= 0;
}

/* True when some candidate sample of the piece's (small) bounding box is covered. */
GM_HD int gm_raster_covers_any(const gm_raster_tri* t) {
    for (int32_t r = t->r0; r <= t->r1; ++r)
        for (int32_t c = t->c0; c <= t->c1; ++c)
            if (gm_raster_covers(t, (int64_t)c * GM_RASTER_SUBPIXEL, (int64_t)r * GM_RASTER_SUBPIXEL))
                return 1;
    return 0;
}

/* Orient and bound the piece with fixed-point vertices (x, y) and camera depths z of face gface
 * (inverse-depth plane `plane`). Returns 0 when it covers no sample of the image. */
GM_HD int gm_raster_make_piece(const gm_raster_view* v, const int32_t* x, const int32_t* y, const double* z,
                               int32_t gface, const double* plane, gm_raster_tri* t) {
    const int64_t area = gm_raster_area2(x, y);
    if (area == 0) return 0; /* degenerate in fixed point: covers no sample */
    t->x[0] = x[0];
    t->y[0] = y[0];
    if (area > 0) {
        t->x[1] = x[1];
        t->y[1] = y[1];
        t->x[2] = x[2];
        t->y[2] = y[2];
    } else {
        t->x[1] = x[2];
        t->y[1] = y[2];
        t->x[2] = x[1];
        t->y[2] = y[1];
    }
    int64_t minx = x[0], maxx = x[0], miny = y[0], maxy = y[0];
    for (int k = 1; k < 3; ++k) {
        if (x[k] < minx) minx = x[k];
        if (x[k] > maxx) maxx = x[k];
        if (y[k] < miny) miny = y[k];
        if (y[k] > maxy) maxy = y[k];
    }
    /* pixel c is sampled at c * SUB: the candidates are ceil(min / SUB) .. floor(max / SUB) */
    int64_t c0 = -gm_raster_floor_div(-minx, GM_RASTER_SUBPIXEL),
            c1 = gm_raster_floor_div(maxx, GM_RASTER_SUBPIXEL);
    int64_t r0 = -gm_raster_floor_div(-miny, GM_RASTER_SUBPIXEL),
            r1 = gm_raster_floor_div(maxy, GM_RASTER_SUBPIXEL);
    if (c0 < 0) c0 = 0;
    if (r0 < 0) r0 = 0;
    if (c1 > v->width - 1) c1 = v->width - 1;
    if (r1 > v->height - 1) r1 = v->height - 1;
    if (c0 > c1 || r0 > r1) return 0;
    t->c0 = (int16_t)c0;
    t->c1 = (int16_t)c1;
    t->r0 = (int16_t)r0;
    t->r1 = (int16_t)r1;
    /* small triangles often fall between sample points: drop them here, not in every tile */
    if ((c1 - c0 + 1) * (r1 - r0 + 1) <= 4 && !gm_raster_covers_any(t)) return 0;
    t->gface = gface;
    t->a = plane[0];
    t->b = plane[1];
    t->e = plane[2];
    /* depths are finite and positive here (vertices in front of the near plane): plain
     * comparisons give fmin / fmax, without their calls */
    const double z12lo = z[1] < z[2] ? z[1] : z[2], z12hi = z[1] > z[2] ? z[1] : z[2];
    const double zlo = z[0] < z12lo ? z[0] : z12lo, zhi = z[0] > z12hi ? z[0] : z12hi;
    /* widened by 1e-6 (more than the float rounding) so the clamp never bites inside */
    t->ilo = (float)((1.0 / zhi) * (1.0 - 1e-6));
    t->ihi = (float)((1.0 / zlo) * (1.0 + 1e-6));
    return 1;
}

/* A face with vertex outcodes code[0..2] is invisible when all three vertices are outside one
 * plane (or beyond far), or one is not finite. Callers may test this before gathering the
 * vertices; gm_raster_face_pieces tests it again. */
GM_HD int gm_raster_trivial_reject(const unsigned* code) {
    return (code[0] & code[1] & code[2]) || code[0] == GM_RASTER_ALL_BITS || code[1] == GM_RASTER_ALL_BITS ||
           code[2] == GM_RASTER_ALL_BITS;
}

/* Triangle setup of face gface with camera-frame vertices P, outcodes `code` and snapped
 * projections (sx, sy): trivial reject, clipping against the planes its vertices violate (near
 * plane, guard band) into a fan, orientation, bounds. Writes the pieces, in fan order, to out
 * (capacity GM_RASTER_MAX_PIECES) and returns their count. */
GM_HD int gm_raster_face_pieces(const gm_raster_view* v, const gm_vec3* P, const unsigned* code,
                                const int32_t* sx, const int32_t* sy, int32_t gface, gm_raster_tri* out) {
    if (gm_raster_trivial_reject(code)) return 0;
    const gm_vec3 n = gm_cross3(gm_sub3(P[1], P[0]), gm_sub3(P[2], P[0]));
    const double det = gm_dot3(n, P[0]);
    /* planes (nearly) through the eye project to a line: snapped slivers of them would need
     * depths far outside the triangle */
    const double nn_pp = gm_dot3(n, n) * gm_dot3(P[0], P[0]);
    /* sqrt(x) <= x + 1 with room to spare for the roundings, so the first test, without the
     * sqrt's latency, only accepts what the exact one accepts */
    if (!(fabs(det) > 1e-10 * (nn_pp + 1.0)) && !(fabs(det) > 1e-10 * sqrt(nn_pp))) return 0;
    double plane[3];
    gm_raster_inv_depth_plane(n, det, &plane[0], &plane[1], &plane[2]);
    const unsigned any_out = (code[0] | code[1] | code[2]) & GM_RASTER_PLANE_MASK;
    if (!any_out) {
        const double z[3] = {P[0].z, P[1].z, P[2].z};
        return gm_raster_make_piece(v, sx, sy, z, gface, plane, out);
    }
    gm_vec3 buf_a[GM_RASTER_MAX_POLY], buf_b[GM_RASTER_MAX_POLY];
    gm_vec3* cur = buf_a;
    gm_vec3* nxt = buf_b;
    int m = 3;
    cur[0] = P[0];
    cur[1] = P[1];
    cur[2] = P[2];
    for (int k = 0; k < GM_RASTER_NUM_PLANES && m >= 3; ++k) {
        if (!(any_out & (1u << k))) continue;
        m = gm_raster_clip_polygon(cur, m, v->planes[k], nxt);
        gm_vec3* tmp = cur;
        cur = nxt;
        nxt = tmp;
    }
    if (m < 3) return 0;
    int32_t px[GM_RASTER_MAX_POLY], py[GM_RASTER_MAX_POLY];
    for (int i = 0; i < m; ++i) gm_raster_project(cur[i], v->fx, v->fy, v->cx, v->cy, &px[i], &py[i]);
    int count = 0;
    for (int i = 1; i + 1 < m; ++i) {
        const int32_t x[3] = {px[0], px[i], px[i + 1]};
        const int32_t y[3] = {py[0], py[i], py[i + 1]};
        const double z[3] = {cur[0].z, cur[i].z, cur[i + 1].z};
        count += gm_raster_make_piece(v, x, y, z, gface, plane, out + count);
    }
    return count;
}

/* The tiles a piece's bounding box overlaps: columns tx0..tx1, rows ty0..ty1. */
GM_HD void gm_raster_piece_tiles(const gm_raster_tri* t, int32_t* tx0, int32_t* tx1, int32_t* ty0,
                                 int32_t* ty1) {
    *tx0 = t->c0 / GM_RASTER_TILE;
    *tx1 = t->c1 / GM_RASTER_TILE;
    *ty0 = t->r0 / GM_RASTER_TILE;
    *ty1 = t->r1 / GM_RASTER_TILE;
}

/* gm_raster_piece_inv_depth with the piece's a, ilo and ihi given (loop-invariant for the CPU). */
GM_HD double gm_raster_inv_depth_at(double a, double lo, double hi, double rx, double rowb) {
    const double iz = gm_raster_axpb(a, rx, rowb);
    return iz < lo ? lo : (iz > hi ? hi : iz);
}

/* The piece's inverse depth on the ray (rx, ry) of a covered sample, given rowb = b ry + e
 * (gm_raster_axpb(t->b, ry, t->e)), clamped to its range: only samples within 1/512 px of the
 * true edge can leave it. NaN stays NaN and fails the depth test. */
GM_HD double gm_raster_piece_inv_depth(const gm_raster_tri* t, double rx, double rowb) {
    return gm_raster_inv_depth_at(t->a, (double)t->ilo, (double)t->ihi, rx, rowb);
}

/* ---- per-pixel output --------------------------------------------------------------------- */

/* Background of pixel i; bg: the background colour as uint8 (gm_raster_to_u8 of p->background). */
GM_HD void gm_raster_clear_pixel(const gm_raster_params* p, int64_t i, const uint8_t* bg) {
    const float B = GM_RASTER_BACKGROUND;
    p->rgb[4 * i + 0] = bg[0];
    p->rgb[4 * i + 1] = bg[1];
    p->rgb[4 * i + 2] = bg[2];
    p->rgb[4 * i + 3] = 0;
    p->depth[i] = B;
    p->instance_index[i] = 0;
    p->object_coordinates[3 * i + 0] = B;
    p->object_coordinates[3 * i + 1] = B;
    p->object_coordinates[3 * i + 2] = B;
    if (p->class_index) p->class_index[i] = 0;
    if (p->triangle_id) p->triangle_id[i] = -1;
    if (p->barycentrics)
        for (int k = 0; k < 3; ++k) p->barycentrics[3 * i + k] = 0.0f;
    if (p->cam_coordinates)
        for (int k = 0; k < 4; ++k) p->cam_coordinates[4 * i + k] = B;
    if (p->normals)
        for (int k = 0; k < 4; ++k) p->normals[4 * i + k] = 0.0f;
}

/* Length of the pixel ray (dx, dy, 1). */
GM_HD double gm_raster_ray_norm(double dx, double dy) {
    return sqrt(gm_raster_mul(dx, dx) + gm_raster_mul(dy, dy) + 1.0);
}

/* Shading, in three stages so that the CPU can run the middle one as a vector loop over the
 * covered pixels of a tile row (gm_raster_shade_pixel runs them for one pixel).
 *
 * Stage 1: what the pixel ray (dx, dy, 1) sees on face `face` of object o (cam: the object's
 * camera-frame vertices): barycentrics b (clamped), object coordinates oc, vertex colour col
 * and the normal n, not normalised (the interpolated vertex normal through normal_matrix
 * when the mesh has normals and that is not zero, else the face's winding normal). */
GM_HD_INLINE void gm_raster_surface(const gm_raster_params* p, const gm_raster_object* o, const gm_vec3* cam,
                                    int32_t face, double dx, double dy, double* b, double* oc, double* col,
                                    gm_vec3* n) {
    const int32_t* fv = o->faces + 3 * (int64_t)face;
    const gm_vec3 P0 = cam[fv[0]], P1 = cam[fv[1]], P2 = cam[fv[2]];
    gm_raster_persp_bary(P0, P1, P2, dx, dy, b);
    /* samples snapped in from just outside an edge: keep attributes convex combinations */
    if (!(b[0] >= 0.0 && b[1] >= 0.0 && b[2] >= 0.0)) {
        double sum = 0.0;
        for (int k = 0; k < 3; ++k) {
            b[k] = b[k] > 0.0 ? b[k] : 0.0;
            sum += b[k];
        }
        for (int k = 0; k < 3; ++k) b[k] = sum > 0.0 ? b[k] / sum : 1.0 / 3.0;
    }

    for (int j = 0; j < 3; ++j) oc[j] = col[j] = 0.0;
    gm_vec3 sn = gm_make_vec3(0.0, 0.0, 0.0);
    for (int k = 0; k < 3; ++k) {
        const float* v = o->vertices + 3 * (int64_t)fv[k];
        for (int j = 0; j < 3; ++j) oc[j] += gm_raster_mul(b[k], v[j]);
        if (o->colors) {
            const float* c = o->colors + 3 * (int64_t)fv[k];
            for (int j = 0; j < 3; ++j) col[j] += gm_raster_mul(b[k], c[j]);
        }
        if (o->normals) {
            const float* nv = o->normals + 3 * (int64_t)fv[k];
            sn.x += gm_raster_mul(b[k], nv[0]);
            sn.y += gm_raster_mul(b[k], nv[1]);
            sn.z += gm_raster_mul(b[k], nv[2]);
        }
    }
    if (!o->colors)
        for (int j = 0; j < 3; ++j) col[j] = p->default_color[j];

    int smooth = 0;
    if (o->normals) {
        *n = gm_mat3_apply(o->normal_matrix, sn);
        smooth = gm_dot3(*n, *n) > 0.0;
    }
    if (!smooth) *n = gm_cross3(gm_sub3(P1, P0), gm_sub3(P2, P0)); /* flat (winding) normal */
}

/* Stage 2, without branches: the normal (nx, ny, nz) made unit in place, the facing term
 * n . (-view dir) and the two-sided Lambert shading of vertex colour (r, g, b), in place (before
 * gm_raster_to_u8), for the pixel ray (dx, dy, 1) of length dnorm (gm_raster_ray_norm). */
GM_HD_INLINE void gm_raster_light(const gm_raster_params* p, double dx, double dy, double dnorm, double* nx,
                                  double* ny, double* nz, double* facing, double* r, double* g, double* b) {
    const double len = sqrt(gm_raster_mul(*nx, *nx) + gm_raster_mul(*ny, *ny) + gm_raster_mul(*nz, *nz));
    const double d = len > 0.0 ? len : 1.0; /* a zero normal stays as it is (x / 1 = x) */
    const double x = *nx / d, y = *ny / d, z = *nz / d;
    const double f = -(gm_raster_mul(x, dx) + gm_raster_mul(y, dy) + z) / dnorm;
    /* light the side that faces the camera */
    const double sx = f < 0.0 ? -x : x, sy = f < 0.0 ? -y : y, sz = f < 0.0 ? -z : z;
    double lam = gm_raster_mul(sx, p->light_dir[0]) + gm_raster_mul(sy, p->light_dir[1]) +
                 gm_raster_mul(sz, p->light_dir[2]);
    lam = lam < 0.0 ? 0.0 : lam;
    *r = gm_raster_mul(*r, gm_raster_axpb(p->light_color[0], lam, p->ambient[0]));
    *g = gm_raster_mul(*g, gm_raster_axpb(p->light_color[1], lam, p->ambient[1]));
    *b = gm_raster_mul(*b, gm_raster_axpb(p->light_color[2], lam, p->ambient[2]));
    *nx = x;
    *ny = y;
    *nz = z;
    *facing = f;
}

/* Stage 3: write every buffer of pixel i, covered by face `face` of object o at depth z on the
 * ray (dx, dy, 1), from the results of stages 1 and 2 (n: unit normal, rgb: shaded colour). */
GM_HD_INLINE void gm_raster_write_pixel(const gm_raster_params* p, const gm_raster_object* o, int64_t i,
                                        int32_t face, double z, double dx, double dy, const double* b,
                                        const double* oc, gm_vec3 n, double facing, const double* rgb) {
    for (int j = 0; j < 3; ++j) p->rgb[4 * i + j] = gm_raster_to_u8(rgb[j]);
    p->rgb[4 * i + 3] = 255;
    p->depth[i] = (float)z;
    p->instance_index[i] = (int16_t)o->instance_index;
    for (int k = 0; k < 3; ++k) p->object_coordinates[3 * i + k] = (float)oc[k];
    if (p->class_index) p->class_index[i] = (int16_t)o->class_index;
    if (p->triangle_id) p->triangle_id[i] = face;
    if (p->barycentrics)
        for (int k = 0; k < 3; ++k) p->barycentrics[3 * i + k] = (float)b[k];
    if (p->cam_coordinates) {
        p->cam_coordinates[4 * i + 0] = (float)(z * dx);
        p->cam_coordinates[4 * i + 1] = (float)(z * dy);
        p->cam_coordinates[4 * i + 2] = (float)z;
        p->cam_coordinates[4 * i + 3] = 1.0f;
    }
    if (p->normals) {
        p->normals[4 * i + 0] = (float)n.x;
        p->normals[4 * i + 1] = (float)n.y;
        p->normals[4 * i + 2] = (float)n.z;
        p->normals[4 * i + 3] = (float)facing;
    }
}

/* Write every buffer of pixel i (ray (dx, dy, 1)), covered by face `face` of object o at depth
 * z. cam: the object's camera-frame vertices. */
GM_HD_INLINE void gm_raster_shade_pixel(const gm_raster_params* p, const gm_raster_object* o,
                                        const gm_vec3* cam, int64_t i, int32_t face, double z, double dx,
                                        double dy) {
    double b[3], oc[3], col[3], facing;
    gm_vec3 n;
    gm_raster_surface(p, o, cam, face, dx, dy, b, oc, col, &n);
    gm_raster_light(p, dx, dy, gm_raster_ray_norm(dx, dy), &n.x, &n.y, &n.z, &facing, &col[0], &col[1],
                    &col[2]);
    gm_raster_write_pixel(p, o, i, face, z, dx, dy, b, oc, n, facing, col);
}

#endif /* GEOMOPS_RASTER_MATH_H */
