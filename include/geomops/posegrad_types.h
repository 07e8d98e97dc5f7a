/* Render-and-compare pose gradients (stillleben.diff semantics, docs/pose.md): the options and
 * parameter structs shared by every backend. The CPU launchers are declared in posegrad.h, the
 * per-pixel formulas live in posegrad_math.h.
 *
 * All arrays are C-contiguous, row 0 = top of the image; the Python facade
 * (pyx/geomops/pose/diff.py) validates every pointer, shape and option before calling. */
#ifndef GEOMOPS_POSEGRAD_TYPES_H
#define GEOMOPS_POSEGRAD_TYPES_H

#include "geomops/common.h"
#include "geomops/raster_types.h" /* GM_MAX_INSTANCE_INDEX: the instance buffer is int16 */

/* How the central differences treat the samples outside the image. */
typedef enum {
    GM_PG_BORDER_ZERO = 0,     /* out-of-image samples are 0 (stillleben's conv2d zero padding) */
    GM_PG_BORDER_REPLICATE = 1 /* out-of-image samples repeat the edge pixel: no false edge, and
                                   the differences along a row still telescope to the total change */
} gm_pg_border;

/* Which of stillleben's two helper implementations (valid mask, dilation) is reproduced. */
typedef enum {
    GM_PG_SEM_CUDA = 0, /* neighbours clamped to the image; dilation scans dx outer, dy inner */
    GM_PG_SEM_CPU = 1   /* border pixels skipped (valid, never in a mask); scans dy outer, dx inner */
} gm_pg_semantics;

/* Accumulator slots per object in gm_pg_backprop_params.accum. */
typedef enum {
    GM_PG_ACC_GRAD = 0,     /* 6 gradient components (alpha, beta, gamma, a, b, c) */
    GM_PG_ACC_SINGULAR = 6, /* pixels whose projection denominator is <= 0 */
    GM_PG_ACC_PIXELS = 7,   /* pixels in the object's (dilated) mask */
    GM_PG_ACC_STRIDE = 8
} gm_pg_accum_slot;

/* The shared image part: the rendered image, the buffers of the valid mask and the options.
 * The NDC scale of the differences is not a parameter: the launchers take stillleben's
 * gm_pg_weight(width) and gm_pg_weight(height) (posegrad_math.h). */
typedef struct gm_pg_image {
    int height, width;
    const uint8_t* rgb_u8;   /* (H,W,rgb_channels) in 0..255, or NULL */
    const float* rgb_f32;    /* (H,W,rgb_channels) in [0,1], or NULL (exactly one of the two is set) */
    int rgb_channels;        /* 3 or 4: the pixel stride; channels 0..2 are used */
    int border;              /* gm_pg_border */
    int semantics;           /* gm_pg_semantics */
    const int16_t* instance; /* (H,W) instance ids, 0 = background */
    const float* depth;      /* (H,W) camera Z */
    int num_threads;
} gm_pg_image;

/* compute_image_space_gradients: grad_x, grad_y (3,H,W) float32 and valid (H,W) uint8 0/1. */
typedef struct gm_pg_image_grad_params {
    gm_pg_image img;
    float* grad_x;
    float* grad_y;
    uint8_t* valid;
} gm_pg_image_grad_params;

/* backpropagate_gradient_to_poses: one fused pass over the pixels for all objects. */
typedef struct gm_pg_backprop_params {
    gm_pg_image img;
    const float* coords; /* (H,W,3) object-frame surface points */
    const float* g_f32;  /* dLoss/dImage, or NULL */
    const double* g_f64; /* the same in float64, or NULL (exactly one is set) */
    ptrdiff_t g_cstride; /* element stride between channels (H*W for CHW, 1 for HWC) */
    ptrdiff_t g_pstride; /* element stride between pixels (1 for CHW, 3 for HWC) */
    int num_objects;
    const double* transforms;    /* (N,12): object -> camera, R row-major (9) then t (3) */
    const double* projection;    /* (16): the 4x4 projection matrix, row-major */
    int denom_row;               /* 2: stillleben (clip z), 3: exact (clip w) */
    const int32_t* id_to_slot;   /* (GM_MAX_INSTANCE_INDEX + 1): slot of an id, -1 where no object has it */
    const int32_t* slot_start;   /* (S+1): objects of slot s are slot_objects[slot_start[s]..] */
    const int32_t* slot_objects; /* (N): object indices grouped by slot, ascending in each slot */
    double* accum;               /* out (N, GM_PG_ACC_STRIDE): sums over the pixels, fixed order */
    float* contributions;        /* out (N,6,H,W) per-pixel terms, or NULL; must be zero on entry */
    uint8_t* masks;              /* out (N,H,W) dilated masks 0/1, or NULL; must be zero on entry */
    int32_t* bad_id;             /* out: smallest instance id of the buffer that no object has, or 0 */
    int64_t* first_nonfinite;    /* out: smallest pixel index where the kernel reads g (a valid pixel
                                    of some object's dilated mask) and finds NaN or inf in a
                                    channel, or -1; NULL: not reported */
} gm_pg_backprop_params;

#endif /* GEOMOPS_POSEGRAD_TYPES_H */
