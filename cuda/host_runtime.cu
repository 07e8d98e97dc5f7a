// The interrupt and host-memory state of a CUDA module (geomops/interrupt.h, host_alloc.h).
#include "gm_cuda.cuh"

#include "geomops/host_runtime_impl.h"
