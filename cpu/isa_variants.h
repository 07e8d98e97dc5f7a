/* ISA variants, the one way hot CPU loops are multi-versioned (the ISA counterpart of
 * geomops/twin.h). The including file writes
 *
 *     #define GM_ISA_BODY "cconv_fill.h"
 *     #include "isa_variants.h"
 *
 * and the body is compiled once per ISA (only the generic one off x86), with
 *
 *     GM_ISA_ATTR     __attribute__((target(...))) | nothing
 *     GM_IFN(name)    name_avx512 | name_avx2 | name_generic
 *
 * The targets are "avx512f" and "avx2" unless the includer defines GM_ISA_AVX512_TARGET /
 * GM_ISA_AVX2_TARGET (the GEMM's AVX2 kernel uses "avx2,fma"). Pick the variant at run time
 * with GM_ISA_PICK(name) from isa.h. Both GM_ISA_BODY and the target overrides are undefined
 * afterwards. */
#include "isa.h"

#ifndef GM_ISA_BODY
#error "define GM_ISA_BODY (the body file to compile per ISA) before including isa_variants.h"
#endif
#ifndef GM_ISA_AVX512_TARGET
#define GM_ISA_AVX512_TARGET "avx512f"
#endif
#ifndef GM_ISA_AVX2_TARGET
#define GM_ISA_AVX2_TARGET "avx2"
#endif
#define GM_IFN(name) GM_ICAT(name, GM_ISFX)

#if GM_ISA_X86
#define GM_ISA_ATTR __attribute__((target(GM_ISA_AVX512_TARGET)))
#define GM_ISFX     avx512
#define GM_ISA_ID   GM_ISA_AVX512
#include GM_ISA_BODY
#undef GM_ISA_ATTR
#undef GM_ISFX
#undef GM_ISA_ID

#define GM_ISA_ATTR __attribute__((target(GM_ISA_AVX2_TARGET)))
#define GM_ISFX     avx2
#define GM_ISA_ID   GM_ISA_AVX2
#include GM_ISA_BODY
#undef GM_ISA_ATTR
#undef GM_ISFX
#undef GM_ISA_ID
#endif

#define GM_ISA_ATTR
#define GM_ISFX   generic
#define GM_ISA_ID GM_ISA_GENERIC
#include GM_ISA_BODY
#undef GM_ISA_ATTR
#undef GM_ISFX
#undef GM_ISA_ID

#undef GM_IFN
#undef GM_ISA_BODY
#undef GM_ISA_AVX512_TARGET
#undef GM_ISA_AVX2_TARGET
