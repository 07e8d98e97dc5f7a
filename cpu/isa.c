/* Run-time ISA choice shared by every CPU kernel family (see isa.h). */
#include "isa.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* -1 until detected; detection is idempotent, so two threads racing to set it store the same
 * value (the atomics make that race well defined). */
static atomic_int g_isa = -1;
static atomic_int g_ignored = 0;

int gm_cpu_isa_supported(int isa) {
    if (isa == GM_ISA_GENERIC) return 1;
#if GM_ISA_X86
    __builtin_cpu_init();
    if (isa == GM_ISA_AVX2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (isa == GM_ISA_AVX512) return __builtin_cpu_supports("avx512f");
#endif
    return 0;
}

const char* gm_cpu_isa_name(int isa) {
    switch (isa) {
        case GM_ISA_GENERIC:
            return "generic";
        case GM_ISA_AVX2:
            return "avx2";
        case GM_ISA_AVX512:
            return "avx512";
        default:
            return "unknown";
    }
}

static int detect(void) {
    int best = GM_ISA_GENERIC;
    for (int isa = GM_ISA_AVX2; isa < GM_ISA_COUNT; ++isa)
        if (gm_cpu_isa_supported(isa)) best = isa;
    const char* env = getenv("GEOMOPS_CPU_KERNEL");
    if (env && *env) {
        for (int isa = 0; isa < GM_ISA_COUNT; ++isa)
            if (!strcmp(env, gm_cpu_isa_name(isa)) && gm_cpu_isa_supported(isa)) return isa;
        atomic_store(&g_ignored, 1);
    }
    return best;
}

int gm_cpu_isa(void) {
    int v = atomic_load_explicit(&g_isa, memory_order_relaxed);
    if (v < 0) {
        v = detect();
        atomic_store_explicit(&g_isa, v, memory_order_relaxed);
    }
    return v;
}

int gm_cpu_isa_request_ignored(void) {
    (void)gm_cpu_isa();
    return atomic_load(&g_ignored);
}
