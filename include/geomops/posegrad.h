/* Render-and-compare pose gradients: the OpenMP launchers in cpu/posegrad.c. Options and
 * parameter structs are in posegrad_types.h, the per-pixel formulas in posegrad_math.h. */
#ifndef GEOMOPS_POSEGRAD_H
#define GEOMOPS_POSEGRAD_H

#include "geomops/posegrad_types.h"

/* Both return GM_OK, GM_ERR_NOMEM or GM_ERR_INVALID (arguments the facade should have rejected). */
GM_EXTERN_C int gm_posegrad_image_gradients_cpu(const gm_pg_image_grad_params* p);
GM_EXTERN_C int gm_posegrad_backprop_cpu(const gm_pg_backprop_params* p);

#endif /* GEOMOPS_POSEGRAD_H */
