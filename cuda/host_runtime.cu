// The interrupt and host-memory state of a CUDA module (geomops/interrupt.h, host_alloc.h).
#include "gm_cuda.cuh"

// libgeomops links cpu/host_runtime.c into the same library: one copy of the state there.
#if !defined(GEOMOPS_BUILDING_LIBRARY)
#include "geomops/host_runtime_impl.h"
#endif
