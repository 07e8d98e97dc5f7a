/* Float/double twins, the one way every family writes them (CPU and CUDA, C and C++).
 *
 * Code that exists once per float type lives in a body file that uses the macros below, and
 * the file that needs both versions writes
 *
 *     #define GM_TWIN_BODY "cconv_impl.h"
 *     #include "geomops/twin.h"
 *
 * which compiles the body twice, once per type, then undefines GM_TWIN_BODY. Inside the body:
 *
 *     GM_T           float          | double
 *     GM_TFN(name)   name_f32       | name_f64      (functions and types of the body)
 *     GM_TDTYPE      GM_FLOAT32     | GM_FLOAT64
 *     GM_TABS(x)     fabsf(x)       | fabs(x)
 *     GM_TIS_DOUBLE  0              | 1             (for #if in the body)
 *
 * A body may define GM_TWIN_ONCE-guarded helpers it needs once; it must not define include
 * guards of its own (it is included twice on purpose). */
#ifndef GEOMOPS_TWIN_H_ONCE
#define GEOMOPS_TWIN_H_ONCE
#include <math.h>

#include "geomops/common.h"
#define GM_TCAT_(a, b) a##_##b
#define GM_TCAT(a, b)  GM_TCAT_(a, b)
#define GM_TFN(name)   GM_TCAT(name, GM_TSFX)
#endif

#ifndef GM_TWIN_BODY
#error "define GM_TWIN_BODY (the body file to compile per float type) before including geomops/twin.h"
#endif

#define GM_T          float
#define GM_TSFX       f32
#define GM_TDTYPE     GM_FLOAT32
#define GM_TABS(x)    fabsf(x)
#define GM_TIS_DOUBLE 0
#include GM_TWIN_BODY
#undef GM_T
#undef GM_TSFX
#undef GM_TDTYPE
#undef GM_TABS
#undef GM_TIS_DOUBLE

#define GM_T          double
#define GM_TSFX       f64
#define GM_TDTYPE     GM_FLOAT64
#define GM_TABS(x)    fabs(x)
#define GM_TIS_DOUBLE 1
#include GM_TWIN_BODY
#undef GM_T
#undef GM_TSFX
#undef GM_TDTYPE
#undef GM_TABS
#undef GM_TIS_DOUBLE

#undef GM_TWIN_BODY
