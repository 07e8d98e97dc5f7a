/* Constants and parameter structs of the software rasterizer of geomops.pose, shared by every
 * backend (the CPU launcher in raster.h, the bindings and the Python facade read them from here).
 *
 * Conventions (same as stillleben, docs/rendering.md "Conventions"): camera frame x right, y down,
 * z forward; pixel (r, c) is sampled at (u, v) = (c + 0.5, r + 0.5) with u = fx X/Z + cx,
 * v = fy Y/Z + cy. All output buffers are C-contiguous (H, W[, C]) and fully written (background
 * included). */
#ifndef GEOMOPS_RASTER_TYPES_H
#define GEOMOPS_RASTER_TYPES_H

#include "geomops/common.h"

#define GM_RASTER_TILE       32        /* tile edge in pixels (tiles are the unit of parallelism) */
#define GM_RASTER_SUBPIXEL   256       /* fixed-point units per pixel (8 sub-pixel bits) */
#define GM_RASTER_GUARD      1048576.0 /* guard band in pixels beyond each image border */
#define GM_RASTER_BACKGROUND 3000.0f   /* depth / coordinate clear value (stillleben's "invalid") */
#define GM_RASTER_MAX_SIZE   32768     /* largest width / height */

/* Largest instance (and class) index: the buffers are int16. 0 is the background. */
#define GM_MAX_INSTANCE_INDEX 32767

/* One mesh instance. The mesh arrays are the (read-only) Mesh buffers. */
typedef struct gm_raster_object {
    const float* vertices; /* (V, 3) object frame */
    const int32_t* faces;  /* (F, 3) vertex ids, validated in [0, V) */
    const float* colors;   /* (V, 3) in [0, 1], or NULL (default_color) */
    const float* normals;  /* (V, 3) unit normals for smooth shading, or NULL (flat) */
    int64_t num_vertices;
    int64_t num_faces;
    double transform[12];    /* object -> camera, row-major 3x4 */
    double normal_matrix[9]; /* inverse transpose of transform's 3x3 block, row-major */
    int32_t instance_index;  /* written to instance_index, in [1, GM_MAX_INSTANCE_INDEX] (validated) */
    int32_t class_index;     /* written to class_index */
} gm_raster_object;

typedef struct gm_raster_params {
    int32_t width, height;
    double fx, fy, cx, cy, near_z, far_z;
    int32_t num_objects;
    const gm_raster_object* objects;
    /* Lambert shader: c = clip(color * (ambient + light_color * max(0, n . light_dir)), 0, 1) */
    double light_dir[3]; /* unit, towards the light, camera frame */
    double light_color[3];
    double ambient[3];
    double background[3];    /* rgb of uncovered pixels (alpha 0 there) */
    double default_color[3]; /* vertex colour of meshes without colours */
    /* outputs, (H, W, C) C-contiguous; the first four are required, the rest may be NULL */
    uint8_t* rgb;              /* (H, W, 4) */
    float* depth;              /* (H, W) camera Z, background GM_RASTER_BACKGROUND */
    int16_t* instance_index;   /* (H, W), background 0 */
    float* object_coordinates; /* (H, W, 3), background GM_RASTER_BACKGROUND */
    float* cam_coordinates;    /* (H, W, 4) (X, Y, Z, 1), background GM_RASTER_BACKGROUND */
    float* normals;            /* (H, W, 4) camera-frame normal + facing term, background 0 */
    int16_t* class_index;      /* (H, W), background 0 */
    int32_t* triangle_id;      /* (H, W) face index within the mesh, background -1 */
    float* barycentrics;       /* (H, W, 3) perspective-correct, background 0 */
    int num_threads;
} gm_raster_params;

#endif /* GEOMOPS_RASTER_TYPES_H */
