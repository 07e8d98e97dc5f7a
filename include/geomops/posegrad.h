/* Render-and-compare pose gradients (stillleben.diff semantics): parameter structs and the
 * OpenMP launchers in cpu/posegrad.c. The per-pixel formulas live in posegrad_math.h.
 *
 * All arrays are C-contiguous, row 0 = top of the image; the Python facade
 * (pyx/geomops/pose/diff.py) validates every pointer, shape and option before calling. */
#ifndef GEOMOPS_POSEGRAD_H
#define GEOMOPS_POSEGRAD_H

#include "geomops/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How the central differences treat the samples outside the image. */
enum {
    GM_PG_BORDER_ZERO = 0,     /* out-of-image samples are 0 (stillleben's conv2d zero padding) */
    GM_PG_BORDER_REPLICATE = 1 /* out-of-image samples repeat the edge pixel: no false edge, and
                                   the differences along a row still telescope to the total change */
};

/* Which of stillleben's two helper implementations (valid mask, dilation) is reproduced. */
enum {
    GM_PG_SEM_CUDA = 0, /* neighbours clamped to the image; dilation scans dx outer, dy inner */
    GM_PG_SEM_CPU = 1   /* border pixels skipped (valid, never in a mask); scans dy outer, dx inner */
};

/* The shared image part: the rendered image, the buffers of the valid mask and the options. */
typedef struct {
    int height, width;
    const uint8_t* rgb_u8;   /* (H,W,rgb_channels) in 0..255, or NULL */
    const float* rgb_f32;    /* (H,W,rgb_channels) in [0,1], or NULL (exactly one of the two is set) */
    int rgb_channels;        /* 3 or 4: the pixel stride; channels 0..2 are used */
    float weight_x;          /* scale of the negated x difference: 1/fl32(4/W) for stillleben */
    float weight_y;          /* the same for y (rows): 1/fl32(4/H) */
    int border;              /* GM_PG_BORDER_* */
    int semantics;           /* GM_PG_SEM_* */
    const int16_t* instance; /* (H,W) instance ids, 0 = background */
    const float* depth;      /* (H,W) camera Z */
    int num_threads;
} GmPgImage;

/* compute_image_space_gradients: grad_x, grad_y (3,H,W) float32 and valid (H,W) uint8 0/1. */
typedef struct {
    GmPgImage img;
    float* grad_x;
    float* grad_y;
    uint8_t* valid;
} GmPgImageGradParams;

/* Accumulator slots per object in GmPgBackpropParams.accum. */
enum {
    GM_PG_ACC_GRAD = 0,     /* 6 gradient components (alpha, beta, gamma, a, b, c) */
    GM_PG_ACC_SINGULAR = 6, /* pixels whose projection denominator is <= 0 */
    GM_PG_ACC_PIXELS = 7,   /* pixels in the object's (dilated) mask */
    GM_PG_ACC_STRIDE = 8
};

/* backpropagate_gradient_to_poses: one fused pass over the pixels for all objects. */
typedef struct {
    GmPgImage img;
    const float* coords; /* (H,W,3) object-frame surface points */
    const float* g_f32;  /* dLoss/dImage, or NULL */
    const double* g_f64; /* the same in float64, or NULL (exactly one is set) */
    ptrdiff_t g_cstride; /* element stride between channels (H*W for CHW, 1 for HWC) */
    ptrdiff_t g_pstride; /* element stride between pixels (1 for CHW, 3 for HWC) */
    int num_objects;
    const double* transforms;    /* (N,12): object -> camera, R row-major (9) then t (3) */
    const double* projection;    /* (16): the 4x4 projection matrix, row-major */
    int denom_row;               /* 2: stillleben (clip z), 3: exact (clip w) */
    const int32_t* id_to_slot;   /* (32768): slot of an instance id, -1 where no object has it */
    const int32_t* slot_start;   /* (S+1): objects of slot s are slot_objects[slot_start[s]..] */
    const int32_t* slot_objects; /* (N): object indices grouped by slot, ascending in each slot */
    double* accum;               /* out (N, GM_PG_ACC_STRIDE): sums over the pixels, fixed order */
    float* contributions;        /* out (N,6,H,W) per-pixel terms, or NULL; must be zero on entry */
    uint8_t* masks;              /* out (N,H,W) dilated masks 0/1, or NULL; must be zero on entry */
    int32_t* bad_id;             /* out: smallest instance id of the buffer that no object has, or 0 */
} GmPgBackpropParams;

/* Both return GM_OK, GM_ERR_NOMEM or GM_ERR_INVALID (arguments the facade should have rejected). */
int gm_posegrad_image_gradients_cpu(const GmPgImageGradParams* p);
int gm_posegrad_backprop_cpu(const GmPgBackpropParams* p);

#ifdef __cplusplus
}
#endif

#endif /* GEOMOPS_POSEGRAD_H */
