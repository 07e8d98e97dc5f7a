/* Run-time choice of the x86 vector ISA used by the CPU kernels (one choice for every family).
 *
 * Hot loops are compiled once per ISA (see isa_variants.h) and a kernel picks its variant with
 * GM_ISA_PICK at the start of a call. The ISA is the best one the CPU supports, unless the
 * environment variable GEOMOPS_CPU_KERNEL=generic|avx2|avx512 asks for another supported one
 * (read once, on first use); a request the CPU cannot run is ignored. Tests use it to run and
 * compare every variant. */
#ifndef GEOMOPS_CPU_ISA_H
#define GEOMOPS_CPU_ISA_H

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define GM_ISA_X86 1
#else
#define GM_ISA_X86 0
#endif

/* Macros, not an enum, so ISA bodies can test GM_ISA_ID with #if. */
#define GM_ISA_GENERIC 0
#define GM_ISA_AVX2    1
#define GM_ISA_AVX512  2
#define GM_ISA_COUNT   3

/* The ISA in use (GM_ISA_*). Thread-safe; constant after the first call. */
int gm_cpu_isa(void);
/* 1 when this CPU (and this build) can run `isa`. AVX2 means AVX2 + FMA; AVX512 means AVX-512F. */
int gm_cpu_isa_supported(int isa);
/* "generic", "avx2", "avx512" (or "unknown"). */
const char* gm_cpu_isa_name(int isa);
/* 1 when GEOMOPS_CPU_KERNEL asked for an ISA that was not used (unknown name or unsupported). */
int gm_cpu_isa_request_ignored(void);

#define GM_ICAT_(a, b) a##_##b
#define GM_ICAT(a, b)  GM_ICAT_(a, b)

/* The variant of a function compiled by isa_variants.h for the ISA in use (a function pointer
 * expression; call it or store it once per kernel call). `name` may be a macro (GM_TFN(x)). */
#if GM_ISA_X86
#define GM_ISA_PICK(name)                                                                                    \
    (gm_cpu_isa() == GM_ISA_AVX512                                                                           \
         ? GM_ICAT(name, avx512)                                                                             \
         : (gm_cpu_isa() == GM_ISA_AVX2 ? GM_ICAT(name, avx2) : GM_ICAT(name, generic)))
#else
#define GM_ISA_PICK(name) GM_ICAT(name, generic)
#endif

#endif /* GEOMOPS_CPU_ISA_H */
