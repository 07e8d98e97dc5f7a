/* Software rasterizer of geomops.pose: the CPU and CUDA launchers (cpu/raster.c, cuda/raster.cu).
 * Parameters and constants are in raster_types.h, the per-vertex / per-pixel math in
 * raster_math.h. */
#ifndef GEOMOPS_RASTER_H
#define GEOMOPS_RASTER_H

#include "geomops/raster_types.h"

/* Render into the output buffers. Returns GM_OK, GM_ERR_NOMEM, GM_ERR_INVALID or GM_ERR_OVERFLOW
 * (more than 2^31 - 1 faces or triangle pieces in total). Scratch memory is cached between calls
 * (one cache, used by one call at a time; concurrent calls allocate their own);
 * gm_raster_release_cache() frees it. */
GM_EXTERN_C int gm_raster_cpu(const gm_raster_params* p);
GM_EXTERN_C void gm_raster_release_cache(void);

/* The CUDA twin (cuda/raster.cu), ordered on `stream` (a cudaStream_t): the same parameters with
 * device pointers for the output buffers and the mesh arrays; the `objects` array itself is
 * host memory (it is uploaded) and num_threads is ignored. The same results as gm_raster_cpu.
 * Synchronises the stream once (to size its temporaries, which it frees before returning);
 * the outputs are complete when the stream's work is. Returns GM_OK, GM_ERR_NOMEM,
 * GM_ERR_INVALID, GM_ERR_OVERFLOW, GM_ERR_NO_DEVICE or GM_ERR_DEVICE. */
GM_EXTERN_C int gm_raster_cuda(const gm_raster_params* p, void* stream);

#endif /* GEOMOPS_RASTER_H */
