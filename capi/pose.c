/* The pose functions of the C API: rendering (pyx/geomops/pose/render.py with the checks of
 * scene.py's Camera, Mesh, Light and SceneObject), the image-space gradients and the
 * back-propagation to poses (pose/diff.py, the id -> slot tables built here), apply_pose_delta
 * (gm_pose_delta_apply of svd3_math.h on both backends) and the projection matrix. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capi.h"
#include "geomops/pose_delta.h"
#include "geomops/posegrad.h"
#include "geomops/raster.h"
#include "geomops/svd3_math.h"

/* ---- shared checks ---------------------------------------------------------------------------- */

static geomops_status chk_size(int32_t v, const char* name) {
    if (v < 1)
        return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "%s must be a positive int, got %d", name, (int)v);
    if (v > GEOMOPS_MAX_IMAGE_SIZE)
        return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "%s must be <= %d, got %d", name,
                       GEOMOPS_MAX_IMAGE_SIZE, (int)v);
    return GEOMOPS_OK;
}

/* Camera's checks: sizes, focal lengths, principal point, clip distances. */
static geomops_status chk_camera(int32_t width, int32_t height, double fx, double fy, double cx, double cy,
                                 double z_near, double z_far) {
    GM_TRY(chk_size(width, "width"));
    GM_TRY(chk_size(height, "height"));
    GM_TRY(gm_chk_real(fx, "fx", 1, 0));
    GM_TRY(gm_chk_real(fy, "fy", 1, 0));
    GM_TRY(gm_chk_real(cx, "cx", 0, 0));
    GM_TRY(gm_chk_real(cy, "cy", 0, 0));
    GM_TRY(gm_chk_real(z_near, "z_near", 1, 0));
    GM_TRY(gm_chk_real(z_far, "z_far", 1, 0));
    if (!(z_near < z_far))
        return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "z_near must be < z_far, got z_near=%g, z_far=%g",
                       z_near, z_far);
    return GEOMOPS_OK;
}

/* Light's and Scene's _vec3 checks. */
static geomops_status chk_vec3(const double* v, const char* name, int nonnegative, int unit_range) {
    for (int i = 0; i < 3; ++i) {
        if (!isfinite(v[i]))
            return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "%s must be finite, got [%g, %g, %g]", name, v[0],
                           v[1], v[2]);
        if ((nonnegative || unit_range) && v[i] < 0)
            return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "%s must be >= 0, got [%g, %g, %g]", name, v[0],
                           v[1], v[2]);
        if (unit_range && v[i] > 1)
            return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "%s must be in [0, 1], got [%g, %g, %g]", name,
                           v[0], v[1], v[2]);
    }
    return GEOMOPS_OK;
}

static geomops_status chk_matrix(const double* m, const char* name) {
    for (int i = 0; i < 16; ++i)
        if (!isfinite(m[i]))
            return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "%s must be finite, got non-finite entries", name);
    return GEOMOPS_OK;
}

/* Element `i` of a table of versioned structs read with the stride of element 0. */
static geomops_status read_element(void* dst, size_t full, const void* table, int64_t i,
                                   const char* table_name, const char* type) {
    size_t stride;
    memcpy(&stride, table, sizeof stride);
    char name[64];
    snprintf(name, sizeof name, "%s[%lld]", table_name, (long long)i);
    const void* elem = (const char*)table + (size_t)i * stride;
    size_t size;
    memcpy(&size, elem, sizeof size);
    if (size != stride)
        return gm_fail(GEOMOPS_ERROR_STRUCT_SIZE,
                       "%s->size is %zu but %s[0]->size is %zu: every element of a table "
                       "must have the same size",
                       name, size, table_name, stride);
    return gm_read_struct(dst, &full, 1, elem, name, type);
}

/* ---- rendering -------------------------------------------------------------------------------- */

/* scene.py's _inv_affine: the inverse transpose of the 3x3 block (cofactors / det), or zeros
 * for a singular block (flat normals then). */
static void normal_matrix(const double* T, double* out) {
    const double* a0 = T;
    const double* a1 = T + 4;
    const double* a2 = T + 8;
    double cof[9];
    const double* rows[3][2] = {{a1, a2}, {a2, a0}, {a0, a1}};
    for (int r = 0; r < 3; ++r) {
        const double *a = rows[r][0], *b = rows[r][1];
        cof[3 * r + 0] = a[1] * b[2] - a[2] * b[1];
        cof[3 * r + 1] = a[2] * b[0] - a[0] * b[2];
        cof[3 * r + 2] = a[0] * b[1] - a[1] * b[0];
    }
    double det = 0.0;
    for (int i = 0; i < 3; ++i) det += a0[i] * cof[i];
    double scale = 0.0;
    for (int r = 0; r < 3; ++r)
        for (int j = 0; j < 3; ++j) scale = fmax(scale, fabs(T[4 * r + j]));
    if (!isfinite(det) || fabs(det) <= 1e-12 * scale * scale * scale || scale == 0.0) {
        memset(out, 0, 9 * sizeof(double));
        return;
    }
    for (int k = 0; k < 9; ++k) out[k] = cof[k] / det;
}

static geomops_status instance_prepare(const gm_ctx* c, const geomops_mesh_instance* m, int64_t k,
                                       gm_raster_object* o) {
    char name[96];
#define GM_NAME(field) (snprintf(name, sizeof name, "instances[%lld].%s", (long long)k, field), name)
    GM_TRY(gm_chk_count(m->num_vertices, GM_NAME("num_vertices")));
    GM_TRY(gm_chk_count(m->num_faces, GM_NAME("num_faces")));
    if (gm_mul(m->num_vertices, 3) < 0 || m->num_faces > INT32_MAX / 2)
        return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "instances[%lld] has too many vertices or faces",
                       (long long)k);
    const int64_t nv = m->num_vertices * 3, nf = m->num_faces * 3;
    GM_TRY(gm_chk_array(c, m->vertices, nv, GM_NAME("vertices")));
    GM_TRY(gm_chk_array(c, m->faces, nf, GM_NAME("faces")));
    GM_TRY(gm_chk_optional(c, m->colors, GM_NAME("colors")));
    GM_TRY(gm_chk_optional(c, m->normals, GM_NAME("normals")));
    if (m->instance_index < 1 || m->instance_index > GEOMOPS_MAX_INSTANCE_INDEX)
        return gm_fail(
            GEOMOPS_ERROR_INVALID_ARGUMENT,
            "instances[%lld].instance_index must be in [1, %d] (it is stored in an int16 buffer), got %d",
            (long long)k, GEOMOPS_MAX_INSTANCE_INDEX, (int)m->instance_index);
    if (m->class_index < 0 || m->class_index > GEOMOPS_MAX_INSTANCE_INDEX)
        return gm_fail(
            GEOMOPS_ERROR_INVALID_ARGUMENT,
            "instances[%lld].class_index must be in [0, %d] (it is stored in an int16 buffer), got %d",
            (long long)k, GEOMOPS_MAX_INSTANCE_INDEX, (int)m->class_index);
    const double* T = m->object_to_camera;
    for (int i = 0; i < 16; ++i)
        if (!isfinite(T[i]))
            return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "instances[%lld].object_to_camera must be finite",
                           (long long)k);
    if (T[12] != 0.0 || T[13] != 0.0 || T[14] != 0.0 || T[15] != 1.0)
        return gm_fail(
            GEOMOPS_ERROR_INVALID_ARGUMENT,
            "instances[%lld].object_to_camera must be affine (last row [0, 0, 0, 1]), got [%g, %g, %g, %g]",
            (long long)k, T[12], T[13], T[14], T[15]);
    if (nv > 0) {
        gm_array_stats s;
        GM_TRY(gm_stats(c, m->vertices, GM_DT_FLOAT32, nv, &s));
        if (s.nonfinite)
            return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "instances[%lld].vertices must be finite",
                           (long long)k);
        const double reach_scale = fmax(fabs(s.fmin), fabs(s.fmax));
        for (int r = 0; r < 3; ++r) {
            const double reach =
                (fabs(T[4 * r]) + fabs(T[4 * r + 1]) + fabs(T[4 * r + 2])) * reach_scale + fabs(T[4 * r + 3]);
            if (!(reach < 1e150))
                return gm_fail(
                    GEOMOPS_ERROR_INVALID_ARGUMENT,
                    "instances[%lld]: object_to_camera moves the mesh beyond the representable range "
                    "(object-to-camera coordinates up to %.3g)",
                    (long long)k, reach);
        }
    }
    if (nf > 0) {
        gm_array_stats s;
        GM_TRY(gm_stats(c, m->faces, GM_DT_INT32, nf, &s));
        if (s.imin < 0 || s.imax >= m->num_vertices)
            return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT,
                           "instances[%lld].faces contains vertex index %lld, outside [0, %lld) of vertices",
                           (long long)k, (long long)(s.imin < 0 ? s.imin : s.imax),
                           (long long)m->num_vertices);
    }
    if (m->colors && nv > 0) {
        gm_array_stats s;
        GM_TRY(gm_stats(c, m->colors, GM_DT_FLOAT32, nv, &s));
        if (s.nonfinite || s.fmin < 0.0 || s.fmax > 1.0)
            return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT,
                           "instances[%lld].colors must be finite and in [0, 1]", (long long)k);
    }
    if (m->normals && nv > 0) {
        snprintf(name, sizeof name, "instances[%lld].normals must be finite", (long long)k);
        GM_TRY(gm_chk_finite(c, m->normals, GM_FLOAT32, nv, GM_ANY, name));
    }
#undef GM_NAME
    memset(o, 0, sizeof *o);
    o->vertices = (const float*)gm_nz(c, m->vertices);
    o->faces = (const int32_t*)gm_nz(c, m->faces);
    o->colors = m->colors;
    o->normals = m->normals;
    o->num_vertices = m->num_vertices;
    o->num_faces = m->num_faces;
    for (int r = 0; r < 3; ++r)
        for (int j = 0; j < 4; ++j) o->transform[4 * r + j] = T[4 * r + j];
    normal_matrix(T, o->normal_matrix);
    o->instance_index = m->instance_index;
    o->class_index = m->class_index;
    return GEOMOPS_OK;
}

static geomops_status render_run(const gm_ctx* c, const geomops_render_args* a,
                                 const geomops_render_buffers* b, gm_raster_object* objs) {
    GM_TRY(chk_camera(a->width, a->height, a->fx, a->fy, a->cx, a->cy, a->z_near, a->z_far));
    GM_TRY(chk_vec3(a->light_direction, "light_direction", 0, 0));
    const double* d = a->light_direction;
    const double length = sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
    if (!(length > 0))
        return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "light_direction must be a non-zero vector");
    GM_TRY(chk_vec3(a->light_color, "light_color", 1, 0));
    GM_TRY(chk_vec3(a->ambient, "ambient", 1, 0));
    GM_TRY(chk_vec3(a->background, "background", 0, 1));
    const int64_t px = (int64_t)a->width * a->height;
    GM_TRY(gm_chk_array(c, b->rgb, px * 4, "buffers->rgb"));
    GM_TRY(gm_chk_array(c, b->depth, px, "buffers->depth"));
    GM_TRY(gm_chk_array(c, b->instance_index, px, "buffers->instance_index"));
    GM_TRY(gm_chk_array(c, b->object_coordinates, px * 3, "buffers->object_coordinates"));
    GM_TRY(gm_chk_optional(c, b->cam_coordinates, "buffers->cam_coordinates"));
    GM_TRY(gm_chk_optional(c, b->normals, "buffers->normals"));
    GM_TRY(gm_chk_optional(c, b->class_index, "buffers->class_index"));
    GM_TRY(gm_chk_optional(c, b->triangle_id, "buffers->triangle_id"));
    GM_TRY(gm_chk_optional(c, b->barycentrics, "buffers->barycentrics"));
    for (int32_t k = 0; k < a->num_instances; ++k) {
        geomops_mesh_instance m = GEOMOPS_MESH_INSTANCE_INIT;
        GM_TRY(read_element(&m, sizeof m, a->instances, k, "instances", "geomops_mesh_instance"));
        GM_TRY(instance_prepare(c, &m, k, &objs[k]));
    }
    gm_raster_params p;
    memset(&p, 0, sizeof p);
    p.width = a->width;
    p.height = a->height;
    p.fx = a->fx;
    p.fy = a->fy;
    p.cx = a->cx;
    p.cy = a->cy;
    p.near_z = a->z_near;
    p.far_z = a->z_far;
    p.num_objects = a->num_instances;
    p.objects = objs;
    for (int j = 0; j < 3; ++j) {
        p.light_dir[j] = d[j] / length;
        p.light_color[j] = a->light_color[j];
        p.ambient[j] = a->ambient[j];
        p.background[j] = a->background[j];
        p.default_color[j] = 0.7; /* render.py's DEFAULT_COLOR */
    }
    p.rgb = b->rgb;
    p.depth = b->depth;
    p.instance_index = b->instance_index;
    p.object_coordinates = b->object_coordinates;
    p.cam_coordinates = b->cam_coordinates;
    p.normals = b->normals;
    p.class_index = b->class_index;
    p.triangle_id = b->triangle_id;
    p.barycentrics = b->barycentrics;
    p.num_threads = c->num_threads;
    int st = c->cuda ? GM_CUDA_ONLY(gm_raster_cuda(&p, c->stream)) : gm_raster_cpu(&p);
    return gm_kernel(st, "the rasterizer");
}

GEOMOPS_API geomops_status geomops_render(const geomops_exec* exec, const geomops_render_args* args,
                                          const geomops_render_buffers* buffers) {
    gm_enter("geomops_render");
    gm_ctx c;
    GM_TRY(gm_begin(&c, exec));
    geomops_render_args a = GEOMOPS_RENDER_ARGS_INIT;
    geomops_render_buffers b = GEOMOPS_RENDER_BUFFERS_INIT;
    gm_raster_object* objs = NULL;
    geomops_status st = GM_READ(&a, args, "args", geomops_render_args);
    if (st == GEOMOPS_OK) st = GM_READ(&b, buffers, "buffers", geomops_render_buffers);
    if (st == GEOMOPS_OK && a.num_instances < 0)
        st = gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "args->num_instances must be >= 0, got %d",
                     (int)a.num_instances);
    if (st == GEOMOPS_OK && a.num_instances > 0 && !a.instances)
        st = gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "args->instances is NULL (num_instances = %d)",
                     (int)a.num_instances);
    if (st == GEOMOPS_OK && a.num_instances > 0) {
        objs = (gm_raster_object*)gm_host_tmp(a.num_instances, sizeof *objs, "the object table", &st);
        if (objs) memset(objs, 0, (size_t)a.num_instances * sizeof *objs);
    }
    if (st == GEOMOPS_OK) st = render_run(&c, &a, &b, objs);
    gm_host_free(objs);
    gm_end(&c);
    return st;
}

GEOMOPS_API geomops_status geomops_release_render_cache(void) {
    gm_enter("geomops_release_render_cache");
    gm_raster_release_cache();
    return GEOMOPS_OK;
}

GEOMOPS_API geomops_status geomops_projection_matrix(int32_t width, int32_t height, double fx, double fy,
                                                     double cx, double cy, double z_near, double z_far,
                                                     double projection[16]) {
    gm_enter("geomops_projection_matrix");
    GM_TRY(chk_camera(width, height, fx, fy, cx, cy, z_near, z_far));
    if (!projection) return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "projection is NULL");
    /* float32 throughout, operation for operation as Camera.projection_matrix() */
    const float n = (float)z_near, f = (float)z_far, W = (float)width, H = (float)height;
    const float ffx = (float)fx, ffy = (float)fy, fcx = (float)cx, fcy = (float)cy, two = 2.0f;
    const float L = -fcx * n / ffx;
    const float R = (W - fcx) * n / ffx;
    const float T = -fcy * n / ffy;
    const float B = (H - fcy) * n / ffy;
    float P[16] = {0};
    P[0] = two * n / (R - L);
    P[5] = two * n / (B - T);
    P[2] = (R + L) / (L - R);
    P[6] = (T + B) / (T - B);
    P[10] = (f + n) / (f - n);
    P[11] = (two * f * n) / (n - f);
    P[14] = 1.0f;
    for (int i = 0; i < 16; ++i) projection[i] = (double)P[i];
    return GEOMOPS_OK;
}

/* ---- image-space gradients and back-propagation ------------------------------------------------ */

typedef struct pose_opts {
    int mode, semantics, border, layout;
} pose_opts;

static geomops_status pose_options(const geomops_pose_gradient_options* in, int backprop, pose_opts* o) {
    geomops_pose_gradient_options opt = GEOMOPS_POSE_GRADIENT_OPTIONS_INIT;
    if (in) GM_TRY(GM_READ(&opt, in, "options", geomops_pose_gradient_options));
    GM_TRY(
        gm_chk_enum(opt.mode, 0, 1, "options->mode", "GEOMOPS_POSE_MODE_EXACT or GEOMOPS_POSE_MODE_COMPAT"));
    GM_TRY(gm_chk_enum(opt.helper_semantics, 0, 1, "options->helper_semantics",
                       "GEOMOPS_HELPER_CUDA or GEOMOPS_HELPER_CPU"));
    GM_TRY(gm_chk_enum(opt.border, -1, 1, "options->border",
                       "GEOMOPS_BORDER_DEFAULT, GEOMOPS_BORDER_ZERO or GEOMOPS_BORDER_REPLICATE"));
    GM_TRY(gm_chk_enum(opt.layout, 0, 1, "options->layout", "GEOMOPS_LAYOUT_CHW or GEOMOPS_LAYOUT_HWC"));
    o->mode = opt.mode;
    o->semantics = opt.helper_semantics == GEOMOPS_HELPER_CPU ? GM_PG_SEM_CPU : GM_PG_SEM_CUDA;
    int border = opt.border;
    if (border == GEOMOPS_BORDER_DEFAULT)
        border =
            backprop && opt.mode == GEOMOPS_POSE_MODE_EXACT ? GEOMOPS_BORDER_REPLICATE : GEOMOPS_BORDER_ZERO;
    o->border = border == GEOMOPS_BORDER_REPLICATE ? GM_PG_BORDER_REPLICATE : GM_PG_BORDER_ZERO;
    o->layout = opt.layout;
    return GEOMOPS_OK;
}

/* A float buffer of `n` elements as float32: itself, or a converted temporary (Python's
 * astype(np.float32)). */
static geomops_status as_f32(const gm_ctx* c, gm_arena* ar, int dtype, const void* p, int64_t n,
                             const char* name, const float** out) {
    int dt;
    char field[64];
    snprintf(field, sizeof field, "image->%s_type", name);
    GM_TRY(gm_chk_float_type(dtype, field, &dt));
    snprintf(field, sizeof field, "image->%s", name);
    GM_TRY(gm_chk_array(c, p, n, field));
    if (dt == GM_FLOAT32) {
        *out = (const float*)p;
        return GEOMOPS_OK;
    }
    geomops_status st = GEOMOPS_OK;
    float* tmp = (float*)gm_arena_alloc(ar, n, sizeof(float), "a float32 copy", &st);
    if (st == GEOMOPS_OK) st = gm_cast(c, GM_FLOAT64, p, GM_FLOAT32, tmp, n);
    *out = tmp;
    return st;
}

/* diff.py's _image_buffers: the image part of both kernels' params (+ the coordinates). */
static geomops_status image_prepare(const gm_ctx* c, gm_arena* ar, const geomops_image* in, int need_coords,
                                    const pose_opts* o, gm_pg_image* im, const float** coords) {
    geomops_image a = GEOMOPS_IMAGE_INIT;
    GM_TRY(GM_READ(&a, in, "image", geomops_image));
    if (a.width < 1 || a.height < 1)
        return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT,
                       "image must have at least one pixel, got width %d, height %d", (int)a.width,
                       (int)a.height);
    GM_TRY(gm_chk_enum(a.rgb_channels, 3, 4, "image->rgb_channels", "3 or 4"));
    const int64_t px = (int64_t)a.width * a.height;
    memset(im, 0, sizeof *im);
    im->height = a.height;
    im->width = a.width;
    im->rgb_channels = a.rgb_channels;
    if (a.rgb_type == GEOMOPS_UINT8) {
        GM_TRY(gm_chk_array(c, a.rgb, px * a.rgb_channels, "image->rgb"));
        im->rgb_u8 = (const uint8_t*)a.rgb;
    } else if (a.rgb_type == GEOMOPS_FLOAT32 || a.rgb_type == GEOMOPS_FLOAT64) {
        GM_TRY(as_f32(c, ar, a.rgb_type, a.rgb, px * a.rgb_channels, "rgb", &im->rgb_f32));
    } else {
        return gm_fail(
            GEOMOPS_ERROR_INVALID_ARGUMENT,
            "image->rgb_type must be GEOMOPS_UINT8 (0..255), GEOMOPS_FLOAT32 or GEOMOPS_FLOAT64 (0..1), "
            "got %d",
            a.rgb_type);
    }
    const float* depth = NULL;
    GM_TRY(as_f32(c, ar, a.depth_type, a.depth, px, "depth", &depth));
    im->depth = depth;
    GM_TRY(gm_chk_array(c, a.instance_index, px, "image->instance_index"));
    im->instance = a.instance_index;
    im->border = o->border;
    im->semantics = o->semantics;
    im->num_threads = c->num_threads;
    if (need_coords)
        GM_TRY(as_f32(c, ar, a.object_coordinates_type, a.object_coordinates, px * 3, "object_coordinates",
                      coords));
    return GEOMOPS_OK;
}

GEOMOPS_API geomops_status geomops_compute_image_space_gradients(const geomops_exec* exec,
                                                                 const geomops_image* image,
                                                                 const geomops_pose_gradient_options* options,
                                                                 float* grad_x, float* grad_y,
                                                                 uint8_t* valid) {
    gm_enter("geomops_compute_image_space_gradients");
    gm_ctx c;
    GM_TRY(gm_begin(&c, exec));
    gm_arena ar;
    gm_arena_init(&ar, &c);
    pose_opts o;
    gm_pg_image_grad_params p;
    memset(&p, 0, sizeof p);
    geomops_status st = pose_options(options, 0, &o);
    if (st == GEOMOPS_OK) st = image_prepare(&c, &ar, image, 0, &o, &p.img, NULL);
    const int64_t px = (int64_t)p.img.width * p.img.height;
    if (st == GEOMOPS_OK) st = gm_chk_array(&c, grad_x, 3 * px, "grad_x");
    if (st == GEOMOPS_OK) st = gm_chk_array(&c, grad_y, 3 * px, "grad_y");
    if (st == GEOMOPS_OK) st = gm_chk_array(&c, valid, px, "valid");
    if (st == GEOMOPS_OK) {
        p.grad_x = grad_x;
        p.grad_y = grad_y;
        p.valid = valid;
        int s = c.cuda ? GM_CUDA_ONLY(gm_posegrad_image_gradients_cuda(&p, c.stream))
                       : gm_posegrad_image_gradients_cpu(&p);
        st = gm_kernel(s, "the image-space gradients");
    }
    st = gm_arena_free(&ar, st);
    gm_end(&c);
    return st;
}

/* diff.py's _slot_tables: id -> slot (ascending ids), and the objects of each slot in order. */
static void slot_tables(const int32_t* ids, int32_t n, int32_t* id_to_slot, int32_t* slot_start,
                        int32_t* slot_objects, int32_t* num_slots) {
    for (int32_t i = 0; i <= GEOMOPS_MAX_INSTANCE_INDEX; ++i) id_to_slot[i] = -1;
    for (int32_t k = 0; k < n; ++k) id_to_slot[ids[k]] = 0;
    int32_t slots = 0;
    for (int32_t i = 0; i <= GEOMOPS_MAX_INSTANCE_INDEX; ++i)
        if (id_to_slot[i] == 0) id_to_slot[i] = slots++;
    for (int32_t s = 0; s <= slots; ++s) slot_start[s] = 0;
    for (int32_t k = 0; k < n; ++k) slot_start[id_to_slot[ids[k]] + 1]++;
    for (int32_t s = 0; s < slots; ++s) slot_start[s + 1] += slot_start[s];
    /* a stable counting sort of the objects by slot */
    for (int32_t k = 0; k < n; ++k) {
        const int32_t s = id_to_slot[ids[k]];
        slot_objects[slot_start[s]++] = k;
    }
    for (int32_t s = slots; s > 0; --s) slot_start[s] = slot_start[s - 1];
    slot_start[0] = 0;
    *num_slots = slots;
}

/* The host tables of the objects: transforms (N, 12), slot tables, ids. */
typedef struct pose_tables {
    double* transforms;
    int32_t* ids;
    int32_t* id_to_slot;
    int32_t* slot_start;
    int32_t* slot_objects;
    int32_t num_slots;
} pose_tables;

static geomops_status objects_prepare(int32_t n, const geomops_pose_object* objects, int compat,
                                      pose_tables* t) {
    const int32_t id_count = GEOMOPS_MAX_INSTANCE_INDEX + 1;
    geomops_status st = GEOMOPS_OK;
    const char* what = "the object tables";
    t->transforms = (double*)gm_host_tmp((int64_t)n * 12 + 1, sizeof(double), what, &st);
    if (st == GEOMOPS_OK) t->ids = (int32_t*)gm_host_tmp((int64_t)n + 1, sizeof(int32_t), what, &st);
    if (st == GEOMOPS_OK) t->id_to_slot = (int32_t*)gm_host_tmp(id_count, sizeof(int32_t), what, &st);
    if (st == GEOMOPS_OK) t->slot_start = (int32_t*)gm_host_tmp((int64_t)n + 2, sizeof(int32_t), what, &st);
    if (st == GEOMOPS_OK) t->slot_objects = (int32_t*)gm_host_tmp((int64_t)n + 1, sizeof(int32_t), what, &st);
    if (st != GEOMOPS_OK) return st;
    for (int32_t k = 0; k < n; ++k) {
        geomops_pose_object o = GEOMOPS_POSE_OBJECT_INIT;
        GM_TRY(read_element(&o, sizeof o, objects, k, "objects", "geomops_pose_object"));
        if (o.instance_index < 1 || o.instance_index > GEOMOPS_MAX_INSTANCE_INDEX)
            return gm_fail(
                GEOMOPS_ERROR_INVALID_ARGUMENT,
                "objects[%d].instance_index is %d; it must be in [1, %d] (0 is the background and the "
                "instance buffer is int16)",
                (int)k, (int)o.instance_index, GEOMOPS_MAX_INSTANCE_INDEX);
        char name[64];
        snprintf(name, sizeof name, "objects[%d].object_to_camera", (int)k);
        GM_TRY(chk_matrix(o.object_to_camera, name));
        t->ids[k] = o.instance_index;
        double* out = t->transforms + 12 * (size_t)k;
        for (int r = 0; r < 3; ++r) {
            for (int j = 0; j < 3; ++j) out[3 * r + j] = o.object_to_camera[4 * r + j];
            out[9 + r] = o.object_to_camera[4 * r + 3];
        }
        if (compat) /* stillleben stores poses as float32 */
            for (int i = 0; i < 12; ++i) out[i] = (double)(float)out[i];
    }
    slot_tables(t->ids, n, t->id_to_slot, t->slot_start, t->slot_objects, &t->num_slots);
    return GEOMOPS_OK;
}

static void tables_free(pose_tables* t) {
    gm_host_free(t->transforms);
    gm_host_free(t->ids);
    gm_host_free(t->id_to_slot);
    gm_host_free(t->slot_start);
    gm_host_free(t->slot_objects);
}

/* A host table in context memory: itself on the CPU, a device copy on CUDA. */
static const void* on_ctx(const gm_ctx* c, gm_arena* ar, const void* host, size_t bytes, geomops_status* st) {
    if (!c->cuda || *st != GEOMOPS_OK) return host;
    void* d = gm_arena_alloc(ar, (int64_t)bytes, 1, "an object table", st);
    if (*st == GEOMOPS_OK) *st = gm_from_host(c, d, host, bytes);
    return d;
}

static geomops_status backprop_run(const gm_ctx* c, gm_arena* ar, const geomops_image* image, int32_t n,
                                   const geomops_pose_object* objects, const double* projection,
                                   int grad_type, const void* grad, const pose_opts* o,
                                   const geomops_pose_gradients* out, pose_tables* t) {
    gm_pg_backprop_params p;
    memset(&p, 0, sizeof p);
    GM_TRY(image_prepare(c, ar, image, 1, o, &p.img, &p.coords));
    const int64_t h = p.img.height, w = p.img.width, px = h * w;
    if (n < 0) return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "num_objects must be >= 0, got %d", (int)n);
    if (n > 0 && !objects)
        return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "objects is NULL (num_objects = %d)", (int)n);
    if (!projection) return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "projection is NULL");
    GM_TRY(chk_matrix(projection, "projection"));
    int gdt;
    GM_TRY(gm_chk_float_type(grad_type, "grad_type", &gdt));
    GM_TRY(gm_chk_array(c, grad, 3 * px, "grad"));
    GM_TRY(gm_chk_array(c, out->gradients, (int64_t)n * 6, "outputs->gradients"));
    GM_TRY(gm_chk_optional(c, out->contributions, "outputs->contributions"));
    GM_TRY(gm_chk_optional(c, out->singular_pixels, "outputs->singular_pixels"));
    if (out->contributions && gm_mul(gm_mul((int64_t)n, 6), px) < 0)
        return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT,
                       "outputs->contributions would have more than 2^63 elements");
    GM_TRY(objects_prepare(n, objects, o->mode == GEOMOPS_POSE_MODE_COMPAT, t));

    geomops_status st = GEOMOPS_OK;
    double* accum_host =
        (double*)gm_host_tmp((int64_t)n * GM_PG_ACC_STRIDE + 1, sizeof(double), "the per-object sums", &st);
    if (!accum_host) return st;
    double* accum = c->cuda ? (double*)gm_arena_alloc(ar, (int64_t)n * GM_PG_ACC_STRIDE, sizeof(double),
                                                      "the per-object sums", &st)
                            : accum_host;
    if (gdt == GM_FLOAT32)
        p.g_f32 = (const float*)grad;
    else
        p.g_f64 = (const double*)grad;
    p.g_cstride = o->layout == GEOMOPS_LAYOUT_CHW ? (ptrdiff_t)px : 1;
    p.g_pstride = o->layout == GEOMOPS_LAYOUT_CHW ? 1 : 3;
    p.num_objects = n;
    p.transforms = (const double*)on_ctx(c, ar, t->transforms, (size_t)n * 12 * sizeof(double), &st);
    p.projection = (const double*)on_ctx(c, ar, projection, 16 * sizeof(double), &st);
    p.denom_row = o->mode == GEOMOPS_POSE_MODE_COMPAT ? 2 : 3;
    p.id_to_slot =
        (const int32_t*)on_ctx(c, ar, t->id_to_slot, (GEOMOPS_MAX_INSTANCE_INDEX + 1) * sizeof(int32_t), &st);
    p.slot_start =
        (const int32_t*)on_ctx(c, ar, t->slot_start, ((size_t)t->num_slots + 1) * sizeof(int32_t), &st);
    p.slot_objects = (const int32_t*)on_ctx(c, ar, t->slot_objects, (size_t)n * sizeof(int32_t), &st);
    p.accum = accum;
    p.contributions = out->contributions;
    int32_t bad = 0;
    int64_t nonfinite = -1;
    p.bad_id = &bad;
    p.first_nonfinite = &nonfinite;
    if (st == GEOMOPS_OK && out->contributions) /* the CPU kernel adds into it */
        st = gm_zero(c, out->contributions, (size_t)n * 6 * (size_t)px * sizeof(float));
    if (st == GEOMOPS_OK) {
        int s =
            c->cuda ? GM_CUDA_ONLY(gm_posegrad_backprop_cuda(&p, c->stream)) : gm_posegrad_backprop_cpu(&p);
        st = gm_kernel(s, "the pose back-propagation");
    }
    if (st == GEOMOPS_OK && bad)
        st = gm_fail(
            GEOMOPS_ERROR_INVALID_ARGUMENT,
            "image->instance_index contains id %d, which no object in objects has; 0 is the background",
            (int)bad);
    if (st == GEOMOPS_OK && nonfinite >= 0) { /* an object pixel, or one the dilation reads */
        int16_t id = 0;
        if (c->cuda)
            st = gm_to_host(c, &id, p.img.instance + nonfinite, sizeof id);
        else
            id = p.img.instance[nonfinite];
        if (st == GEOMOPS_OK)
            st =
                gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT,
                        "grad (dLoss/dImage) is not finite (NaN or inf) at pixel (row %lld, col %lld), %s",
                        (long long)(nonfinite / w), (long long)(nonfinite % w),
                        id ? "an object pixel (image->instance_index != 0); it must be finite where the "
                             "objects are"
                           : "next to an object: the 1-pixel dilation of the object masks reads it there; it "
                             "must be finite there");
    }
    if (st == GEOMOPS_OK && c->cuda)
        st = gm_to_host(c, accum_host, accum, (size_t)n * GM_PG_ACC_STRIDE * sizeof(double));
    /* gradients = accum[:, 0:6] in grad's dtype, singular pixel counts = accum[:, 6] */
    void* grads_host = NULL;
    int64_t* singular_host = NULL;
    if (st == GEOMOPS_OK) {
        grads_host = gm_host_tmp((int64_t)n * 6 + 1, gm_fsize(gdt), "the per-object results", &st);
        if (st == GEOMOPS_OK)
            singular_host =
                (int64_t*)gm_host_tmp((int64_t)n + 1, sizeof(int64_t), "the per-object results", &st);
    }
    if (st == GEOMOPS_OK) {
        for (int32_t k = 0; k < n; ++k) {
            const double* acc = accum_host + (size_t)k * GM_PG_ACC_STRIDE;
            for (int i = 0; i < 6; ++i) {
                if (gdt == GM_FLOAT32)
                    ((float*)grads_host)[6 * k + i] = (float)acc[GM_PG_ACC_GRAD + i];
                else
                    ((double*)grads_host)[6 * k + i] = acc[GM_PG_ACC_GRAD + i];
            }
            singular_host[k] = (int64_t)acc[GM_PG_ACC_SINGULAR];
        }
        st = gm_from_host(c, out->gradients, grads_host, (size_t)n * 6 * gm_fsize(gdt));
        if (st == GEOMOPS_OK && out->singular_pixels)
            st = gm_from_host(c, out->singular_pixels, singular_host, (size_t)n * sizeof(int64_t));
    }
    gm_host_free(grads_host);
    gm_host_free(singular_host);
    gm_host_free(accum_host);
    return st;
}

GEOMOPS_API geomops_status geomops_backpropagate_gradient_to_poses(
    const geomops_exec* exec, const geomops_image* image, int32_t num_objects,
    const geomops_pose_object* objects, const double* projection, int grad_type, const void* grad,
    const geomops_pose_gradient_options* options, const geomops_pose_gradients* outputs) {
    gm_enter("geomops_backpropagate_gradient_to_poses");
    gm_ctx c;
    GM_TRY(gm_begin(&c, exec));
    gm_arena ar;
    gm_arena_init(&ar, &c);
    pose_opts o;
    pose_tables t;
    memset(&t, 0, sizeof t);
    geomops_pose_gradients out = GEOMOPS_POSE_GRADIENTS_INIT;
    geomops_status st = pose_options(options, 1, &o);
    if (st == GEOMOPS_OK) st = GM_READ(&out, outputs, "outputs", geomops_pose_gradients);
    if (st == GEOMOPS_OK)
        st = backprop_run(&c, &ar, image, num_objects, objects, projection, grad_type, grad, &o, &out, &t);
    tables_free(&t);
    st = gm_arena_free(&ar, st);
    gm_end(&c);
    return st;
}

/* ---- apply_pose_delta -------------------------------------------------------------------------- */

GEOMOPS_API geomops_status geomops_apply_pose_delta(const geomops_exec* exec,
                                                    const geomops_pose_delta_args* args, void* out) {
    gm_enter("geomops_apply_pose_delta");
    gm_ctx c;
    GM_TRY(gm_begin(&c, exec));
    geomops_pose_delta_args a = GEOMOPS_POSE_DELTA_ARGS_INIT;
    int dt = 0, ddt = 0;
    geomops_status st = GM_READ(&a, args, "args", geomops_pose_delta_args);
    if (st == GEOMOPS_OK) st = gm_chk_float_type(a.dtype, "args->dtype (of pose and out)", &dt);
    if (st == GEOMOPS_OK) st = gm_chk_float_type(a.delta_type, "args->delta_type", &ddt);
    if (st == GEOMOPS_OK) st = gm_chk_count(a.batch, "args->batch");
    if (st == GEOMOPS_OK && a.delta_batch != a.batch && a.delta_batch != 1)
        st = gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT,
                     "delta must have shape (%lld, 6) or (1, 6) for poses of shape (%lld, 4, 4), got "
                     "delta_batch = %lld",
                     (long long)a.batch, (long long)a.batch, (long long)a.delta_batch);
    if (st == GEOMOPS_OK) st = gm_chk_flag(a.orthonormalize, "args->orthonormalize");
    if (st == GEOMOPS_OK) st = gm_chk_flag(a.fix_reflection, "args->fix_reflection");
    if (st == GEOMOPS_OK && gm_mul(a.batch, 16) < 0)
        st = gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "args->batch is too large");
    if (st == GEOMOPS_OK) st = gm_chk_array(&c, a.pose, a.batch * 16, "pose");
    if (st == GEOMOPS_OK) st = gm_chk_array(&c, a.delta, a.batch > 0 ? a.delta_batch * 6 : 0, "delta");
    if (st == GEOMOPS_OK) st = gm_chk_array(&c, out, a.batch * 16, "out");
    if (st == GEOMOPS_OK)
        st = gm_chk_finite(&c, a.pose, dt, a.batch * 16, GM_ANY,
                           "pose must be finite, got non-finite entries");
    if (st == GEOMOPS_OK && a.batch > 0)
        st = gm_chk_finite(&c, a.delta, ddt, a.delta_batch * 6, GM_ANY,
                           "delta must be finite, got non-finite entries");
    if (st == GEOMOPS_OK && a.batch > 0) {
        if (c.cuda) {
            gm_pose_delta_params p;
            memset(&p, 0, sizeof p);
            p.batch = a.batch;
            p.delta_batch = a.delta_batch;
            p.dtype = dt;
            p.delta_dtype = ddt;
            p.pose = a.pose;
            p.delta = a.delta;
            p.out = out;
            p.orthonormalize = a.orthonormalize;
            p.fix_reflection = a.fix_reflection;
            st = gm_kernel(GM_CUDA_ONLY(gm_pose_delta_cuda(&p, c.stream)), "apply_pose_delta");
        } else {
            const int64_t batch = a.batch;
#pragma omp parallel for schedule(static) num_threads(c.num_threads) if (batch > 4096)
            for (int64_t b = 0; b < batch; ++b) {
                const int64_t db = a.delta_batch == 1 ? 0 : b;
                double pose[16], delta[6], res[16];
                for (int k = 0; k < 16; ++k)
                    pose[k] = dt == GM_FLOAT32 ? (double)((const float*)a.pose)[16 * b + k]
                                               : ((const double*)a.pose)[16 * b + k];
                for (int k = 0; k < 6; ++k)
                    delta[k] = ddt == GM_FLOAT32 ? (double)((const float*)a.delta)[6 * db + k]
                                                 : ((const double*)a.delta)[6 * db + k];
                gm_pose_delta_apply(pose, delta, a.orthonormalize, a.fix_reflection, res);
                for (int k = 0; k < 16; ++k) {
                    if (dt == GM_FLOAT32)
                        ((float*)out)[16 * b + k] = (float)res[k];
                    else
                        ((double*)out)[16 * b + k] = res[k];
                }
            }
        }
    }
    gm_end(&c);
    return st;
}
