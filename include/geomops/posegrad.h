/* Render-and-compare pose gradients: the OpenMP launchers in cpu/posegrad.c and their CUDA twins
 * in cuda/posegrad.cu. Options and parameter structs are in posegrad_types.h, the per-pixel
 * formulas in posegrad_math.h. */
#ifndef GEOMOPS_POSEGRAD_H
#define GEOMOPS_POSEGRAD_H

#include "geomops/posegrad_types.h"

/* Both return GM_OK, GM_ERR_NOMEM or GM_ERR_INVALID (arguments the facade should have rejected). */
GM_EXTERN_C int gm_posegrad_image_gradients_cpu(const gm_pg_image_grad_params* p);
GM_EXTERN_C int gm_posegrad_backprop_cpu(const gm_pg_backprop_params* p);

/* The CUDA twins (cuda/posegrad.cu), ordered on `stream` (a cudaStream_t), with device pointers
 * for every array (num_threads is ignored). The image gradients, valid masks, per-pixel
 * contributions and dilated masks equal the CPU's bit for bit, the sums up to the order of
 * their additions (fixed: bitwise identical from run to run). Differences from the CPU
 * launchers: the backprop writes every element of `contributions` and `masks` (they need not be
 * zero on entry), `bad_id` is a HOST pointer, written after the launcher synchronises the
 * stream, and without objects `transforms`, `slot_objects` and `accum` may be NULL. The image
 * gradients do not synchronise. Both return GM_OK, GM_ERR_NOMEM, GM_ERR_INVALID,
 * GM_ERR_NO_DEVICE or GM_ERR_DEVICE. */
GM_EXTERN_C int gm_posegrad_image_gradients_cuda(const gm_pg_image_grad_params* p, void* stream);
GM_EXTERN_C int gm_posegrad_backprop_cuda(const gm_pg_backprop_params* p, void* stream);

#endif /* GEOMOPS_POSEGRAD_H */
