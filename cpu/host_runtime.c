/* The interrupt and host-memory state of the CPU module (geomops/interrupt.h, host_alloc.h). */
#include "geomops/host_runtime_impl.h"
