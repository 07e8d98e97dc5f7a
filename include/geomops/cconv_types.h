/* Enums shared by every backend of the continuous convolution. */
#ifndef GEOMOPS_CCONV_TYPES_H
#define GEOMOPS_CCONV_TYPES_H

enum { GM_FLOAT32 = 0, GM_FLOAT64 = 1 };

typedef enum {
    GM_MAP_BALL_TO_CUBE_RADIAL = 0,
    GM_MAP_BALL_TO_CUBE_VOLUME_PRESERVING = 1,
    GM_MAP_IDENTITY = 2
} gm_coordinate_mapping;

typedef enum {
    GM_INTERP_LINEAR = 0,
    GM_INTERP_LINEAR_BORDER = 1,
    GM_INTERP_NEAREST_NEIGHBOR = 2
} gm_interpolation;

#endif /* GEOMOPS_CCONV_TYPES_H */
