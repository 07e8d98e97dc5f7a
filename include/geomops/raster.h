/* Software rasterizer of geomops.pose: the CPU launcher (cpu/raster.c). Parameters and
 * constants are in raster_types.h, the per-vertex / per-pixel math in raster_math.h. */
#ifndef GEOMOPS_RASTER_H
#define GEOMOPS_RASTER_H

#include "geomops/raster_types.h"

/* Render into the output buffers. Returns GM_OK, GM_ERR_NOMEM, GM_ERR_INVALID or GM_ERR_OVERFLOW
 * (more than 2^31 - 1 faces or triangle pieces in total). Scratch memory is cached between calls
 * (one cache, used by one call at a time; concurrent calls allocate their own);
 * gm_raster_release_cache() frees it. */
GM_EXTERN_C int gm_raster_cpu(const gm_raster_params* p);
GM_EXTERN_C void gm_raster_release_cache(void);

#endif /* GEOMOPS_RASTER_H */
