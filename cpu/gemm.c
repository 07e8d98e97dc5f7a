/* Register-blocked GEMM micro-kernels (see gemm.h), written with GCC vector extensions: one
 * body (gemm_kernel.h) compiled per float type (geomops/twin.h) and per ISA (isa_variants.h:
 * AVX-512F, AVX2+FMA, portable C). The ISA is the one every CPU kernel uses (isa.h), so
 * GEOMOPS_CPU_KERNEL=generic|avx2|avx512 forces it (for testing). */
#include "gemm.h"

#include <stdlib.h>
#include <string.h>

#include "isa.h"

#define GM_TWIN_BODY "gemm_impl.h"
#include "geomops/twin.h"
