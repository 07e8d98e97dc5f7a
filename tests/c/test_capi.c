/* Tests of the C API of libgeomops, built against the INSTALLED library (tests/c/CMakeLists.txt
 * through find_package, and by .ci/run through pkg-config).
 *
 *   test_capi FIXTURES_DIR [--cuda] [--tolerant]
 *
 * FIXTURES_DIR is written by tests/c/make_fixtures.py (inputs and the Python API's results).
 * Every function of geomops.h runs on those inputs and is compared with the Python results:
 * bitwise on the CPU where the Python API is bitwise reproducible, within tolerances where the
 * arithmetic differs (apply_pose_delta's SVD; everything on the CUDA backend). Then several
 * threads call the library at once, and bad arguments must give an error status and a message
 * naming the argument (CI runs this program under AddressSanitizer and UBSan too), and a
 * replacement allocator sees every host block come back (also when it fails).
 *
 * --cuda runs every call with exec = CUDA device 0. The arrays are host memory, so this is meant
 * for a library built with GEOMOPS_CUDA_EMULATE=ON (device memory = host memory); on a real GPU
 * the arrays would have to be copied to the device first. --tolerant compares floats within a few
 * ulps instead of bitwise (for sanitizer builds, whose code generation differs). */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <geomops/geomops.h>

static const char* g_dir;
static int g_cuda;
static int g_tolerant; /* --tolerant: no bitwise float comparisons (sanitizer builds compile differently) */
static int g_checks, g_failures;
static const char* g_test = "";

static void fail(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL [%s] ", g_test);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    ++g_failures;
}

#define CHECK(cond, ...)                                                                                     \
    do {                                                                                                     \
        ++g_checks;                                                                                          \
        if (!(cond)) fail(__VA_ARGS__);                                                                      \
    } while (0)

/* A call that must succeed. */
#define OK(call)                                                                                             \
    do {                                                                                                     \
        geomops_status st_ = (call);                                                                         \
        CHECK(st_ == GEOMOPS_OK, "%s -> %s: %s", #call, geomops_status_string(st_), geomops_last_error());   \
    } while (0)

static geomops_exec exec_for_test(void) {
    geomops_exec e = GEOMOPS_EXEC_INIT;
    if (g_cuda) {
        e.device_type = GEOMOPS_DEVICE_CUDA;
        e.device = 0;
    } else {
        e.num_threads = 2;
    }
    return e;
}

/* ---- fixtures ------------------------------------------------------------------------------- */

enum { MAX_ARRAYS = 64 };
typedef struct fixture {
    char dir[1024];
    char* params;
    void* arrays[MAX_ARRAYS];
    int narrays;
} fixture;

static char* read_file(const char* path, size_t* size) {
    FILE* f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char* buf = (char*)malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    if (size) *size = (size_t)n;
    return buf;
}

static int fx_open(fixture* f, const char* name) {
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "%s/%s", g_dir, name);
    char path[1100];
    snprintf(path, sizeof path, "%s/params.txt", f->dir);
    f->params = read_file(path, NULL);
    if (!f->params) fail("cannot read fixture %s", path);
    return f->params != NULL;
}

static void fx_close(fixture* f) {
    for (int i = 0; i < f->narrays; ++i) free(f->arrays[i]);
    free(f->params);
    memset(f, 0, sizeof *f);
}

static int fx_find(const fixture* f, const char* key, double* value) {
    size_t len = strlen(key);
    for (const char* line = f->params; line && *line;) {
        if (!strncmp(line, key, len) && line[len] == ' ') {
            *value = strtod(line + len + 1, NULL);
            return 1;
        }
        line = strchr(line, '\n');
        if (line) ++line;
    }
    return 0;
}

static double fx_num(const fixture* f, const char* key) {
    double v = 0;
    if (!fx_find(f, key, &v)) fail("fixture %s has no parameter %s", f->dir, key);
    return v;
}

static int64_t fx_int(const fixture* f, const char* key) {
    for (const char* line = f->params; line && *line;) {
        size_t len = strlen(key);
        if (!strncmp(line, key, len) && line[len] == ' ') return strtoll(line + len + 1, NULL, 10);
        line = strchr(line, '\n');
        if (line) ++line;
    }
    fail("fixture %s has no parameter %s", f->dir, key);
    return 0;
}

/* The array `key` (NULL when the fixture marks it absent); *bytes its size. */
static void* fx_array(fixture* f, const char* key, size_t* bytes) {
    char has[128];
    snprintf(has, sizeof has, "has_%s", key);
    double present = 0;
    if (!fx_find(f, has, &present)) fail("fixture %s has no array %s", f->dir, key);
    if (bytes) *bytes = 0;
    if (!present) return NULL;
    char path[1200];
    snprintf(path, sizeof path, "%s/%s.bin", f->dir, key);
    size_t n = 0;
    char* data = read_file(path, &n);
    if (!data) {
        fail("cannot read %s", path);
        return NULL;
    }
    if (f->narrays < MAX_ARRAYS) f->arrays[f->narrays++] = data;
    if (bytes) *bytes = n;
    return data;
}

static void* fx_arr(fixture* f, const char* key) {
    return fx_array(f, key, NULL);
}

/* A zeroed output buffer of `bytes` bytes owned by the fixture. */
static void* fx_out(fixture* f, size_t bytes) {
    void* p = calloc(1, bytes ? bytes : 1);
    if (f->narrays < MAX_ARRAYS) f->arrays[f->narrays++] = p;
    return p;
}

/* ---- comparisons ----------------------------------------------------------------------------- */

static size_t dtype_size(int dtype) {
    switch (dtype) {
        case GEOMOPS_FLOAT64:
        case GEOMOPS_INT64:
            return 8;
        case GEOMOPS_UINT8:
            return 1;
        case GEOMOPS_INT16:
            return 2;
        default:
            return 4;
    }
}

static double value_at(int dtype, const void* p, size_t i) {
    switch (dtype) {
        case GEOMOPS_FLOAT32:
            return ((const float*)p)[i];
        case GEOMOPS_FLOAT64:
            return ((const double*)p)[i];
        case GEOMOPS_INT32:
            return ((const int32_t*)p)[i];
        case GEOMOPS_INT64:
            return (double)((const int64_t*)p)[i];
        case GEOMOPS_UINT8:
            return ((const uint8_t*)p)[i];
        default:
            return ((const int16_t*)p)[i];
    }
}

/* got == expected: bitwise with rtol = atol = 0, else |got - exp| <= atol + rtol |exp|. */
static void compare(const char* what, int dtype, const void* got, const void* exp, size_t exp_bytes,
                    double rtol, double atol) {
    const size_t n = exp_bytes / dtype_size(dtype);
    ++g_checks;
    if (!exp) {
        fail("%s: no expected values", what);
        return;
    }
    if (rtol == 0 && atol == 0 && g_tolerant && (dtype == GEOMOPS_FLOAT32 || dtype == GEOMOPS_FLOAT64)) {
        rtol = dtype == GEOMOPS_FLOAT32 ? 1e-5 : 1e-12;
        atol = dtype == GEOMOPS_FLOAT32 ? 1e-6 : 1e-14;
    }
    if (rtol == 0 && atol == 0) {
        if (memcmp(got, exp, exp_bytes) != 0) {
            for (size_t i = 0; i < n; ++i)
                if (memcmp((const char*)got + i * dtype_size(dtype), (const char*)exp + i * dtype_size(dtype),
                           dtype_size(dtype))) {
                    fail("%s: element %zu of %zu is %.17g, expected %.17g (bitwise)", what, i, n,
                         value_at(dtype, got, i), value_at(dtype, exp, i));
                    return;
                }
        }
        return;
    }
    for (size_t i = 0; i < n; ++i) {
        const double g = value_at(dtype, got, i), e = value_at(dtype, exp, i);
        if (!(fabs(g - e) <= atol + rtol * fabs(e))) {
            fail("%s: element %zu of %zu is %.17g, expected %.17g (rtol %g, atol %g)", what, i, n, g, e, rtol,
                 atol);
            return;
        }
    }
}

/* Tolerances of float results of the cconv / search kernels: bitwise on the CPU (the Python
 * package runs the same kernels), the CUDA backend's summation order otherwise. */
static void float_tol(int dtype, double* rtol, double* atol) {
    if (!g_cuda && g_tolerant) {
        *rtol = dtype == GEOMOPS_FLOAT32 ? 1e-5 : 1e-12;
        *atol = dtype == GEOMOPS_FLOAT32 ? 1e-6 : 1e-14;
    } else if (!g_cuda) {
        *rtol = *atol = 0;
    } else if (dtype == GEOMOPS_FLOAT32) {
        *rtol = 2e-4;
        *atol = 2e-5;
    } else {
        *rtol = 1e-10;
        *atol = 1e-12;
    }
}

static void compare_float(const char* what, int dtype, const void* got, const void* exp, size_t bytes) {
    double rtol, atol;
    float_tol(dtype, &rtol, &atol);
    compare(what, dtype, got, exp, bytes, rtol, atol);
}

/* A convolution result of output dtype `dtype`, computed in `compute` (the inputs' dtype). */
static void compare_conv(const char* what, int dtype, int compute, const void* got, const void* exp,
                         size_t bytes) {
    double rtol, atol;
    float_tol(compute == GEOMOPS_FLOAT32 ? compute : dtype, &rtol, &atol);
    compare(what, dtype, got, exp, bytes, rtol, atol);
}

/* ---- meta ---------------------------------------------------------------------------------- */

static void test_meta(void) {
    g_test = "meta";
    CHECK(geomops_version() == GEOMOPS_VERSION, "geomops_version() = %d, header says %d", geomops_version(),
          GEOMOPS_VERSION);
    CHECK(!strcmp(geomops_version_string(), GEOMOPS_VERSION_STRING), "version string %s",
          geomops_version_string());
    CHECK(GEOMOPS_VERSION ==
              GEOMOPS_MAKE_VERSION(GEOMOPS_VERSION_MAJOR, GEOMOPS_VERSION_MINOR, GEOMOPS_VERSION_PATCH),
          "combined version macro");
    CHECK(geomops_last_error() != NULL, "geomops_last_error() is NULL");
    for (int s = 0; s <= 9; ++s)
        CHECK(geomops_status_string((geomops_status)s) != NULL, "status string %d", s);
    CHECK(!strcmp(geomops_status_string(GEOMOPS_OK), "success"), "status string of OK");
    CHECK(geomops_has_cuda() == 0 || geomops_has_cuda() == 1, "geomops_has_cuda");
    if (g_cuda) CHECK(geomops_has_cuda(), "--cuda needs a library with the CUDA backend");
}

/* ---- continuous convolution ------------------------------------------------------------------ */

static void cconv_options(fixture* f, geomops_cconv_options* o) {
    o->align_corners = (int)fx_int(f, "align_corners");
    o->coordinate_mapping = (int)fx_int(f, "coordinate_mapping");
    o->interpolation = (int)fx_int(f, "interpolation");
    o->normalize = (int)fx_int(f, "normalize");
    o->max_temp_mem_mb = fx_int(f, "max_temp_mem_mb");
    o->output_type = (int)fx_int(f, "output_type");
}

static void cconv_forward_args(fixture* f, geomops_cconv_args* a) {
    a->dtype = (int)fx_int(f, "dtype");
    a->index_type = (int)fx_int(f, "index_type");
    a->filter_depth = fx_int(f, "filter_depth");
    a->filter_height = fx_int(f, "filter_height");
    a->filter_width = fx_int(f, "filter_width");
    a->in_channels = fx_int(f, "in_channels");
    a->out_channels = fx_int(f, "out_channels");
    a->num_out = fx_int(f, "num_out");
    a->num_inp = fx_int(f, "num_inp");
    a->num_neighbors = fx_int(f, "num_neighbors");
    a->filters = fx_arr(f, "filters");
    a->out_positions = fx_arr(f, "out_positions");
    a->extents = fx_arr(f, "extents");
    a->extents_rows = fx_int(f, "extents_rows");
    a->extents_cols = fx_int(f, "extents_cols");
    a->offset = fx_arr(f, "offset");
    a->inp_positions = fx_arr(f, "inp_positions");
    a->inp_features = fx_arr(f, "inp_features");
    a->inp_importance = fx_arr(f, "inp_importance");
    a->neighbors_index = fx_arr(f, "neighbors_index");
    a->neighbors_importance = fx_arr(f, "neighbors_importance");
    a->neighbors_row_splits = (const int64_t*)fx_arr(f, "neighbors_row_splits");
}

static void cconv_transpose_args(fixture* f, geomops_cconv_transpose_args* a) {
    a->dtype = (int)fx_int(f, "dtype");
    a->index_type = (int)fx_int(f, "index_type");
    a->filter_depth = fx_int(f, "filter_depth");
    a->filter_height = fx_int(f, "filter_height");
    a->filter_width = fx_int(f, "filter_width");
    a->in_channels = fx_int(f, "in_channels");
    a->out_channels = fx_int(f, "out_channels");
    a->num_out = fx_int(f, "num_out");
    a->num_inp = fx_int(f, "num_inp");
    a->num_neighbors = fx_int(f, "num_neighbors");
    a->filters = fx_arr(f, "filters");
    a->out_positions = fx_arr(f, "out_positions");
    a->out_importance = fx_arr(f, "out_importance");
    a->extents = fx_arr(f, "extents");
    a->extents_rows = fx_int(f, "extents_rows");
    a->extents_cols = fx_int(f, "extents_cols");
    a->offset = fx_arr(f, "offset");
    a->inp_positions = fx_arr(f, "inp_positions");
    a->inp_features = fx_arr(f, "inp_features");
    a->inp_neighbors_index = fx_arr(f, "inp_neighbors_index");
    a->inp_neighbors_importance_sum = fx_arr(f, "inp_neighbors_importance_sum");
    a->inp_neighbors_row_splits = (const int64_t*)fx_arr(f, "inp_neighbors_row_splits");
    a->neighbors_index = fx_arr(f, "neighbors_index");
    a->neighbors_importance = fx_arr(f, "neighbors_importance");
    a->neighbors_row_splits = (const int64_t*)fx_arr(f, "neighbors_row_splits");
}

/* An output buffer the size of the expected array `key`, or NULL when that is absent. */
static void* out_like(fixture* f, const char* key, const void** expected, size_t* bytes) {
    *expected = fx_array(f, key, bytes);
    return *expected ? fx_out(f, *bytes) : NULL;
}

/* The gradient structs of geomops.h 0.1 (before the position and extent gradients): a program
 * built against 0.1 passes these, with their size. */
typedef struct cconv_gradients_v01 {
    size_t size;
    void *filters, *inp_features, *inp_importance, *neighbors_importance;
} cconv_gradients_v01;
typedef struct cconv_transpose_gradients_v01 {
    size_t size;
    void *filters, *inp_features, *out_importance, *neighbors_importance, *inp_neighbors_importance_sum;
} cconv_transpose_gradients_v01;

/* Sentinel buffers behind an old-size struct: the fields a 0.2 struct has there must not be read. */
enum { SENTINEL_BYTES = 64 };
static void sentinels_fill(void* trailing[3], unsigned char (*buf)[SENTINEL_BYTES]) {
    for (int i = 0; i < 3; ++i) {
        memset(buf[i], 0xA5, SENTINEL_BYTES);
        trailing[i] = buf[i];
    }
}

static void sentinels_check(const char* what, unsigned char (*buf)[SENTINEL_BYTES]) {
    int intact = 1;
    for (int i = 0; i < 3; ++i)
        for (int b = 0; b < SENTINEL_BYTES; ++b) intact &= buf[i][b] == 0xA5;
    CHECK(intact, "%s: the library wrote behind an old-size struct", what);
}

/* The position and extent gradients of the fixture (all three asked for). */
typedef struct pos_grads {
    const void *e_inp, *e_out, *e_ext;
    size_t b_inp, b_out, b_ext;
} pos_grads;

static void pos_expected(fixture* f, pos_grads* p, void** inp, void** out, void** ext) {
    *inp = out_like(f, "grad_inp_positions", &p->e_inp, &p->b_inp);
    *out = out_like(f, "grad_out_positions", &p->e_out, &p->b_out);
    *ext = out_like(f, "grad_extents", &p->e_ext, &p->b_ext);
}

static void pos_compare(const char* what, int out_dtype, int compute, const pos_grads* p, const void* inp,
                        const void* out, const void* ext) {
    char name[160];
    snprintf(name, sizeof name, "%s: inp_positions", what);
    compare_conv(name, out_dtype, compute, inp, p->e_inp, p->b_inp);
    snprintf(name, sizeof name, "%s: out_positions", what);
    compare_conv(name, out_dtype, compute, out, p->e_out, p->b_out);
    snprintf(name, sizeof name, "%s: extents", what);
    compare_conv(name, out_dtype, compute, ext, p->e_ext, p->b_ext);
}

static void test_cconv_case(const char* name) {
    g_test = name;
    fixture f;
    if (!fx_open(&f, name)) return;
    const geomops_exec ex = exec_for_test();
    geomops_cconv_args a = GEOMOPS_CCONV_ARGS_INIT;
    geomops_cconv_options o = GEOMOPS_CCONV_OPTIONS_INIT;
    cconv_forward_args(&f, &a);
    cconv_options(&f, &o);
    const int out_dtype = o.output_type ? o.output_type : a.dtype;
    const void* g = fx_arr(&f, "out_features_gradient");
    const void *e_out, *e_bpf;
    size_t n_out, n_bpf;
    void* out = out_like(&f, "expected_out", &e_out, &n_out);
    void* bpf = out_like(&f, "expected_filters_gradient", &e_bpf, &n_bpf);
    OK(geomops_continuous_conv(&ex, &a, &o, out));
    compare_conv("continuous_conv", out_dtype, a.dtype, out, e_out, n_out);
    OK(geomops_continuous_conv_backprop_filter(&ex, &a, &o, g, bpf));
    compare_conv("continuous_conv_backprop_filter", out_dtype, a.dtype, bpf, e_bpf, n_bpf);

    const void *e_f, *e_x, *e_ii, *e_ni;
    size_t b_f, b_x, b_ii, b_ni;
    geomops_cconv_gradients gr = GEOMOPS_CCONV_GRADIENTS_INIT;
    gr.filters = out_like(&f, "grad_filters", &e_f, &b_f);
    gr.inp_features = out_like(&f, "grad_inp_features", &e_x, &b_x);
    gr.inp_importance = out_like(&f, "grad_inp_importance", &e_ii, &b_ii);
    gr.neighbors_importance = out_like(&f, "grad_neighbors_importance", &e_ni, &b_ni);
    pos_grads pg;
    pos_expected(&f, &pg, &gr.inp_positions, &gr.out_positions, &gr.extents);
    OK(geomops_continuous_conv_backward(&ex, &a, &o, g, &gr));
    pos_compare("backward", out_dtype, a.dtype, &pg, gr.inp_positions, gr.out_positions, gr.extents);
    compare_conv("backward: filters", out_dtype, a.dtype, gr.filters, e_f, b_f);
    compare_conv("backward: inp_features", out_dtype, a.dtype, gr.inp_features, e_x, b_x);
    if (e_ii) compare_conv("backward: inp_importance", out_dtype, a.dtype, gr.inp_importance, e_ii, b_ii);
    if (e_ni)
        compare_conv("backward: neighbors_importance", out_dtype, a.dtype, gr.neighbors_importance, e_ni,
                     b_ni);

    /* one gradient at a time gives the same values */
    geomops_cconv_gradients only = GEOMOPS_CCONV_GRADIENTS_INIT;
    only.inp_features = fx_out(&f, b_x);
    OK(geomops_continuous_conv_backward(&ex, &a, &o, g, &only));
    compare("backward, features only", out_dtype, only.inp_features, gr.inp_features, b_x, 0, 0);
    if (e_ni) {
        geomops_cconv_gradients imp = GEOMOPS_CCONV_GRADIENTS_INIT;
        imp.neighbors_importance = fx_out(&f, b_ni);
        OK(geomops_continuous_conv_backward(&ex, &a, &o, g, &imp));
        compare("backward, neighbors_importance only", out_dtype, imp.neighbors_importance,
                gr.neighbors_importance, b_ni, 0, 0);
    }
    /* each position gradient alone: the same values */
    for (int which = 0; which < 3; ++which) {
        geomops_cconv_gradients one = GEOMOPS_CCONV_GRADIENTS_INIT;
        const size_t bytes[3] = {pg.b_inp, pg.b_out, pg.b_ext};
        void* buf = fx_out(&f, bytes[which]);
        *(which == 0 ? &one.inp_positions : which == 1 ? &one.out_positions : &one.extents) = buf;
        OK(geomops_continuous_conv_backward(&ex, &a, &o, g, &one));
        const void* all[3] = {gr.inp_positions, gr.out_positions, gr.extents};
        compare("backward, one position gradient", out_dtype, buf, all[which], bytes[which], 0, 0);
    }
    /* a program built against 0.1: the old struct size, no position gradients (the fields a 0.2
     * struct has behind it are not read) */
    struct {
        cconv_gradients_v01 v;
        void* trailing[3];
    } old;
    unsigned char sentinel[3][SENTINEL_BYTES];
    CHECK(sizeof old.v == offsetof(geomops_cconv_gradients, inp_positions), "the 0.1 layout");
    memset(&old, 0, sizeof old);
    old.v.size = sizeof old.v;
    old.v.inp_features = fx_out(&f, b_x);
    sentinels_fill(old.trailing, sentinel);
    OK(geomops_continuous_conv_backward(&ex, &a, &o, g, (const geomops_cconv_gradients*)(const void*)&old));
    compare("backward through the 0.1 struct: inp_features", out_dtype, old.v.inp_features, gr.inp_features,
            b_x, 0, 0);
    sentinels_check("backward through the 0.1 struct", sentinel);
    fx_close(&f);
}

/* An interrupt handler stops a call (GEOMOPS_ERROR_INTERRUPTED, the handler asked on the calling
 * thread); without one the same call runs to the end with the same result. */
static int g_interrupts;
static int interrupt_now(void) {
    ++g_interrupts;
    return 1;
}

static void test_interrupt(const char* name) {
    g_test = "interrupt";
    fixture f;
    if (!fx_open(&f, name)) return;
    const geomops_exec ex = exec_for_test();
    geomops_cconv_args a = GEOMOPS_CCONV_ARGS_INIT;
    geomops_cconv_options o = GEOMOPS_CCONV_OPTIONS_INIT;
    cconv_forward_args(&f, &a);
    cconv_options(&f, &o);
    const void* e_out;
    size_t n_out;
    void* out = out_like(&f, "expected_out", &e_out, &n_out);
    geomops_set_interrupt_handler(interrupt_now);
    const geomops_status st = geomops_continuous_conv(&ex, &a, &o, out);
    geomops_set_interrupt_handler(NULL);
    CHECK(st == GEOMOPS_ERROR_INTERRUPTED && g_interrupts > 0 && strstr(geomops_last_error(), "interrupted"),
          "with a handler that says stop: %s (%s), handler called %d times", geomops_status_string(st),
          geomops_last_error(), g_interrupts);
    OK(geomops_continuous_conv(&ex, &a, &o, out));
    const int out_dtype = o.output_type ? o.output_type : a.dtype;
    compare_conv("continuous_conv after an interrupted call", out_dtype, a.dtype, out, e_out, n_out);
    fx_close(&f);
}

static void test_cconv_transpose_case(const char* name) {
    g_test = name;
    fixture f;
    if (!fx_open(&f, name)) return;
    const geomops_exec ex = exec_for_test();
    geomops_cconv_transpose_args a = GEOMOPS_CCONV_TRANSPOSE_ARGS_INIT;
    geomops_cconv_options o = GEOMOPS_CCONV_OPTIONS_INIT;
    cconv_transpose_args(&f, &a);
    cconv_options(&f, &o);
    const int out_dtype = o.output_type ? o.output_type : a.dtype;
    const void* g = fx_arr(&f, "out_features_gradient");
    const void *e_out, *e_bpf;
    size_t n_out, n_bpf;
    void* out = out_like(&f, "expected_out", &e_out, &n_out);
    void* bpf = out_like(&f, "expected_filters_gradient", &e_bpf, &n_bpf);
    OK(geomops_continuous_conv_transpose(&ex, &a, &o, out));
    compare_conv("continuous_conv_transpose", out_dtype, a.dtype, out, e_out, n_out);
    geomops_cconv_transpose_args no_inv = a; /* the filter gradient does not take inp_neighbors_index */
    no_inv.inp_neighbors_index = NULL;
    OK(geomops_continuous_conv_transpose_backprop_filter(&ex, &no_inv, &o, g, bpf));
    compare_conv("continuous_conv_transpose_backprop_filter", out_dtype, a.dtype, bpf, e_bpf, n_bpf);

    const void *e_f, *e_x, *e_oi, *e_ni, *e_s;
    size_t b_f, b_x, b_oi, b_ni, b_s;
    geomops_cconv_transpose_gradients gr = GEOMOPS_CCONV_TRANSPOSE_GRADIENTS_INIT;
    gr.filters = out_like(&f, "grad_filters", &e_f, &b_f);
    gr.inp_features = out_like(&f, "grad_inp_features", &e_x, &b_x);
    gr.out_importance = out_like(&f, "grad_out_importance", &e_oi, &b_oi);
    gr.neighbors_importance = out_like(&f, "grad_neighbors_importance", &e_ni, &b_ni);
    gr.inp_neighbors_importance_sum = out_like(&f, "grad_inp_neighbors_importance_sum", &e_s, &b_s);
    pos_grads pg;
    pos_expected(&f, &pg, &gr.inp_positions, &gr.out_positions, &gr.extents);
    OK(geomops_continuous_conv_transpose_backward(&ex, &a, &o, g, &gr));
    pos_compare("transpose backward", out_dtype, a.dtype, &pg, gr.inp_positions, gr.out_positions,
                gr.extents);
    compare_conv("transpose backward: filters", out_dtype, a.dtype, gr.filters, e_f, b_f);
    compare_conv("transpose backward: inp_features", out_dtype, a.dtype, gr.inp_features, e_x, b_x);
    if (e_oi)
        compare_conv("transpose backward: out_importance", out_dtype, a.dtype, gr.out_importance, e_oi, b_oi);
    if (e_ni)
        compare_conv("transpose backward: neighbors_importance", out_dtype, a.dtype, gr.neighbors_importance,
                     e_ni, b_ni);
    if (e_s)
        compare_conv("transpose backward: inp_neighbors_importance_sum", out_dtype, a.dtype,
                     gr.inp_neighbors_importance_sum, e_s, b_s);
    /* the position gradients alone: the same values */
    geomops_cconv_transpose_gradients pos = GEOMOPS_CCONV_TRANSPOSE_GRADIENTS_INIT;
    pos.inp_positions = fx_out(&f, pg.b_inp);
    pos.out_positions = fx_out(&f, pg.b_out);
    pos.extents = fx_out(&f, pg.b_ext);
    OK(geomops_continuous_conv_transpose_backward(&ex, &a, &o, g, &pos));
    compare("transpose backward, positions only: inp_positions", out_dtype, pos.inp_positions,
            gr.inp_positions, pg.b_inp, 0, 0);
    compare("transpose backward, positions only: out_positions", out_dtype, pos.out_positions,
            gr.out_positions, pg.b_out, 0, 0);
    compare("transpose backward, positions only: extents", out_dtype, pos.extents, gr.extents, pg.b_ext, 0,
            0);
    /* the 0.1 struct size: no position gradients */
    struct {
        cconv_transpose_gradients_v01 v;
        void* trailing[3];
    } old;
    unsigned char sentinel[3][SENTINEL_BYTES];
    CHECK(sizeof old.v == offsetof(geomops_cconv_transpose_gradients, inp_positions), "the 0.1 layout");
    memset(&old, 0, sizeof old);
    old.v.size = sizeof old.v;
    old.v.filters = fx_out(&f, b_f);
    sentinels_fill(old.trailing, sentinel);
    OK(geomops_continuous_conv_transpose_backward(
        &ex, &a, &o, g, (const geomops_cconv_transpose_gradients*)(const void*)&old));
    compare("transpose backward through the 0.1 struct: filters", out_dtype, old.v.filters, gr.filters, b_f,
            0, 0);
    sentinels_check("transpose backward through the 0.1 struct", sentinel);
    fx_close(&f);
}

static void test_invert(const char* name) {
    g_test = name;
    fixture f;
    if (!fx_open(&f, name)) return;
    const geomops_exec ex = exec_for_test();
    const int64_t points = fx_int(&f, "num_points"), entries = fx_int(&f, "num_entries");
    const int itype = (int)fx_int(&f, "index_type");
    const void *e_idx, *e_rs, *e_attr;
    size_t b_idx, b_rs, b_attr;
    void* idx = out_like(&f, "expected_index", &e_idx, &b_idx);
    int64_t* rs = (int64_t*)out_like(&f, "expected_row_splits", &e_rs, &b_rs);
    void* attr = out_like(&f, "expected_attributes", &e_attr, &b_attr);
    OK(geomops_invert_neighbors_list(&ex, points, itype, fx_arr(&f, "index"), entries,
                                     (const int64_t*)fx_arr(&f, "row_splits"), fx_int(&f, "num_rows"),
                                     fx_arr(&f, "attributes"), fx_int(&f, "attribute_bytes"), idx, rs, attr));
    compare("invert: index", itype, idx, e_idx, b_idx, 0, 0);
    compare("invert: row splits", GEOMOPS_INT64, rs, e_rs, b_rs, 0, 0);
    compare("invert: attributes", GEOMOPS_FLOAT32, attr, e_attr, b_attr, 0, 0);
    /* without attributes */
    OK(geomops_invert_neighbors_list(&ex, points, itype, fx_arr(&f, "index"), entries,
                                     (const int64_t*)fx_arr(&f, "row_splits"), fx_int(&f, "num_rows"), NULL,
                                     0, idx, rs, NULL));
    compare("invert without attributes: index", itype, idx, e_idx, b_idx, 0, 0);
    fx_close(&f);
}

static void test_reduce(const char* name) {
    g_test = name;
    fixture f;
    if (!fx_open(&f, name)) return;
    const geomops_exec ex = exec_for_test();
    const int dtype = (int)fx_int(&f, "dtype");
    const void* e;
    size_t b;
    void* sums = out_like(&f, "expected", &e, &b);
    OK(geomops_reduce_subarrays_sum(&ex, dtype, fx_arr(&f, "values"), fx_int(&f, "num_values"),
                                    (const int64_t*)fx_arr(&f, "row_splits"), fx_int(&f, "num_rows"), sums));
    if (dtype == GEOMOPS_FLOAT32 || dtype == GEOMOPS_FLOAT64)
        compare_float("reduce_subarrays_sum", dtype, sums, e, b);
    else
        compare("reduce_subarrays_sum", dtype, sums, e, b, 0, 0);
    /* empty values: nothing read or written (Python returns an empty array) */
    OK(geomops_reduce_subarrays_sum(&ex, dtype, NULL, 0, NULL, 0, NULL));
    fx_close(&f);
}

/* ---- searches ----------------------------------------------------------------------------- */

static void test_hash(const char* name) {
    g_test = name;
    fixture f;
    if (!fx_open(&f, name)) return;
    const geomops_exec ex = exec_for_test();
    geomops_hash_table_args a = GEOMOPS_HASH_TABLE_ARGS_INIT;
    a.dtype = (int)fx_int(&f, "dtype");
    a.num_points = fx_int(&f, "num_points");
    a.points = fx_arr(&f, "points");
    a.batch_size = fx_int(&f, "batch_size");
    a.points_row_splits = a.batch_size > 1 ? (const int64_t*)fx_arr(&f, "points_row_splits") : NULL;
    a.radius = fx_num(&f, "radius");
    a.hash_table_size_factor = fx_num(&f, "hash_table_size_factor");
    a.max_hash_table_size = fx_int(&f, "max_hash_table_size");
    int64_t cells = -1;
    OK(geomops_spatial_hash_table_size(&ex, &a, &cells));
    CHECK(cells == fx_int(&f, "num_cells"), "hash table size %lld, expected %lld", (long long)cells,
          (long long)fx_int(&f, "num_cells"));
    const void *e_i, *e_c, *e_s;
    size_t b_i, b_c, b_s;
    int32_t* index = (int32_t*)out_like(&f, "expected_index", &e_i, &b_i);
    int32_t* cell = (int32_t*)out_like(&f, "expected_cell_splits", &e_c, &b_c);
    int32_t* splits = (int32_t*)out_like(&f, "expected_splits", &e_s, &b_s);
    OK(geomops_build_spatial_hash_table(&ex, &a, index, cell, splits));
    compare("hash_table_index", GEOMOPS_INT32, index, e_i, b_i, 0, 0);
    compare("hash_table_cell_splits", GEOMOPS_INT32, cell, e_c, b_c, 0, 0);
    compare("hash_table_splits", GEOMOPS_INT32, splits, e_s, b_s, 0, 0);
    fx_close(&f);
}

/* Sorts each row's (index, distance) pairs by index: rows whose order the API leaves open. */
static void sort_rows(int itype, void* idx, int dtype, void* dist, const int64_t* rs, int64_t rows) {
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = rs[r] + 1; i < rs[r + 1]; ++i)
            for (int64_t j = i;
                 j > rs[r] && value_at(itype, idx, (size_t)j) < value_at(itype, idx, (size_t)j - 1); --j) {
                const size_t is = dtype_size(itype), ds = dtype_size(dtype);
                char tmp[8];
                memcpy(tmp, (char*)idx + j * is, is);
                memcpy((char*)idx + j * is, (char*)idx + (j - 1) * is, is);
                memcpy((char*)idx + (j - 1) * is, tmp, is);
                if (dist) {
                    memcpy(tmp, (char*)dist + j * ds, ds);
                    memcpy((char*)dist + j * ds, (char*)dist + (j - 1) * ds, ds);
                    memcpy((char*)dist + (j - 1) * ds, tmp, ds);
                }
            }
}

/* Phase 2 and 3 of a search whose phase 1 gave `h`, compared with the fixture. */
static void finish_search(fixture* f, geomops_search* h, const int64_t* rs, int unordered) {
    const int itype = (int)fx_int(f, "index_type"), dtype = (int)fx_int(f, "dtype");
    const int64_t nq = fx_int(f, "num_queries");
    const void *e_rs, *e_idx, *e_d;
    size_t b_rs, b_idx, b_d;
    e_rs = fx_array(f, "expected_row_splits", &b_rs);
    compare("row splits", GEOMOPS_INT64, rs, e_rs, b_rs, 0, 0);
    int64_t total = -1;
    OK(geomops_search_total(h, &total));
    e_idx = fx_array(f, "expected_index", &b_idx);
    e_d = fx_array(f, "expected_distance", &b_d);
    CHECK(total == (int64_t)(b_idx / dtype_size(itype)), "total %lld, expected %lld", (long long)total,
          (long long)(b_idx / dtype_size(itype)));
    void* idx = fx_out(f, b_idx);
    void* dist = fx_int(f, "return_distances") ? fx_out(f, b_d) : NULL;
    OK(geomops_search_fill(h, idx, dist));
    OK(geomops_search_free(h));
    if (unordered && total == (int64_t)(b_idx / dtype_size(itype))) {
        void* exp_idx = fx_out(f, b_idx);
        void* exp_d = dist ? fx_out(f, b_d) : NULL;
        memcpy(exp_idx, e_idx, b_idx);
        if (exp_d) memcpy(exp_d, e_d, b_d);
        sort_rows(itype, idx, dtype, dist, (const int64_t*)e_rs, nq);
        sort_rows(itype, exp_idx, dtype, exp_d, (const int64_t*)e_rs, nq);
        e_idx = exp_idx;
        e_d = exp_d;
    }
    compare("neighbors_index", itype, idx, e_idx, b_idx, 0, 0);
    if (dist) compare_float("neighbors_distance", dtype, dist, e_d, b_d);
}

#define SEARCH_COMMON(a, f)                                                                                  \
    do {                                                                                                     \
        (a).dtype = (int)fx_int(f, "dtype");                                                                 \
        (a).num_points = fx_int(f, "num_points");                                                            \
        (a).points = fx_arr(f, "points");                                                                    \
        (a).num_queries = fx_int(f, "num_queries");                                                          \
        (a).queries = fx_arr(f, "queries");                                                                  \
        (a).batch_size = fx_int(f, "batch_size");                                                            \
        (a).points_row_splits = (const int64_t*)fx_arr(f, "points_row_splits");                              \
        (a).queries_row_splits = (const int64_t*)fx_arr(f, "queries_row_splits");                            \
        (a).index_type = (int)fx_int(f, "index_type");                                                       \
        (a).metric = (int)fx_int(f, "metric");                                                               \
        (a).ignore_query_point = (int)fx_int(f, "ignore_query_point");                                       \
        (a).return_distances = (int)fx_int(f, "return_distances");                                           \
    } while (0)

static void test_fixed_radius(const char* name) {
    g_test = name;
    fixture f;
    if (!fx_open(&f, name)) return;
    const geomops_exec ex = exec_for_test();
    geomops_fixed_radius_args a = GEOMOPS_FIXED_RADIUS_ARGS_INIT;
    SEARCH_COMMON(a, &f);
    a.radius = fx_num(&f, "radius");
    a.sort = (int)fx_int(&f, "sort");
    double has_table = 0;
    fx_find(&f, "has_hash_table_index", &has_table);
    if (has_table) {
        a.hash_table_index = (const int32_t*)fx_arr(&f, "hash_table_index");
        a.hash_table_cell_splits = (const int32_t*)fx_arr(&f, "hash_table_cell_splits");
        a.hash_table_splits = (const int32_t*)fx_arr(&f, "hash_table_splits");
        a.hash_table_num_cells = fx_int(&f, "hash_table_num_cells");
    }
    int64_t* rs = (int64_t*)fx_out(&f, (size_t)(a.num_queries + 1) * 8);
    geomops_search* h = NULL;
    OK(geomops_fixed_radius_search(&ex, &a, rs, &h));
    if (h) finish_search(&f, h, rs, 0);
    fx_close(&f);
}

static void test_radius(const char* name) {
    g_test = name;
    fixture f;
    if (!fx_open(&f, name)) return;
    const geomops_exec ex = exec_for_test();
    geomops_radius_search_args a = GEOMOPS_RADIUS_SEARCH_ARGS_INIT;
    SEARCH_COMMON(a, &f);
    a.radii = fx_arr(&f, "radii");
    a.normalize_distances = (int)fx_int(&f, "normalize_distances");
    a.sort = (int)fx_int(&f, "sort");
    int64_t* rs = (int64_t*)fx_out(&f, (size_t)(a.num_queries + 1) * 8);
    geomops_search* h = NULL;
    OK(geomops_radius_search(&ex, &a, rs, &h));
    /* unsorted radius-search rows: the same set, in an order of the backend's choice */
    if (h) finish_search(&f, h, rs, !a.sort);
    fx_close(&f);
}

static void test_knn(const char* name) {
    g_test = name;
    fixture f;
    if (!fx_open(&f, name)) return;
    const geomops_exec ex = exec_for_test();
    geomops_knn_search_args a = GEOMOPS_KNN_SEARCH_ARGS_INIT;
    SEARCH_COMMON(a, &f);
    a.k = fx_int(&f, "k");
    int64_t* rs = (int64_t*)fx_out(&f, (size_t)(a.num_queries + 1) * 8);
    geomops_search* h = NULL;
    OK(geomops_knn_search(&ex, &a, rs, &h));
    if (h) finish_search(&f, h, rs, 0);
    fx_close(&f);
}

/* ---- pose ------------------------------------------------------------------------------------- */

enum { MAX_OBJECTS = 8 };

static int scene_instances(fixture* f, geomops_mesh_instance* m) {
    const int n = (int)fx_int(f, "num_objects");
    for (int k = 0; k < n && k < MAX_OBJECTS; ++k) {
        char key[64];
        geomops_mesh_instance init = GEOMOPS_MESH_INSTANCE_INIT;
        m[k] = init;
#define KEY(s) (snprintf(key, sizeof key, "obj%d_%s", k, s), key)
        m[k].num_vertices = fx_int(f, KEY("num_vertices"));
        m[k].vertices = (const float*)fx_arr(f, KEY("vertices"));
        m[k].num_faces = fx_int(f, KEY("num_faces"));
        m[k].faces = (const int32_t*)fx_arr(f, KEY("faces"));
        m[k].colors = (const float*)fx_arr(f, KEY("colors"));
        m[k].normals = (const float*)fx_arr(f, KEY("normals"));
        memcpy(m[k].object_to_camera, fx_arr(f, KEY("transform")), 16 * sizeof(double));
        m[k].instance_index = (int32_t)fx_int(f, KEY("instance_index"));
        m[k].class_index = (int32_t)fx_int(f, KEY("class_index"));
#undef KEY
    }
    return n;
}

static void render_args(fixture* f, geomops_render_args* a) {
    a->width = (int32_t)fx_int(f, "width");
    a->height = (int32_t)fx_int(f, "height");
    a->fx = fx_num(f, "fx");
    a->fy = fx_num(f, "fy");
    a->cx = fx_num(f, "cx");
    a->cy = fx_num(f, "cy");
    a->z_near = fx_num(f, "z_near");
    a->z_far = fx_num(f, "z_far");
    memcpy(a->light_direction, fx_arr(f, "light_direction"), sizeof a->light_direction);
    memcpy(a->light_color, fx_arr(f, "light_color"), sizeof a->light_color);
    memcpy(a->ambient, fx_arr(f, "ambient"), sizeof a->ambient);
    memcpy(a->background, fx_arr(f, "background"), sizeof a->background);
}

static void test_render(void) {
    g_test = "render";
    fixture f;
    if (!fx_open(&f, "render")) return;
    const geomops_exec ex = exec_for_test();
    geomops_mesh_instance m[MAX_OBJECTS];
    geomops_render_args a = GEOMOPS_RENDER_ARGS_INIT;
    render_args(&f, &a);
    a.num_instances = scene_instances(&f, m);
    a.instances = m;
    static const char* const names[] = {
        "rgb",     "depth",       "instance_index", "object_coordinates", "cam_coordinates",
        "normals", "class_index", "triangle_id",    "barycentrics"};
    static const int types[] = {GEOMOPS_UINT8,   GEOMOPS_FLOAT32, GEOMOPS_INT16,
                                GEOMOPS_FLOAT32, GEOMOPS_FLOAT32, GEOMOPS_FLOAT32,
                                GEOMOPS_INT16,   GEOMOPS_INT32,   GEOMOPS_FLOAT32};
    const void* exp[9];
    size_t bytes[9];
    void* buf[9];
    for (int i = 0; i < 9; ++i) {
        char key[64];
        snprintf(key, sizeof key, "expected_%s", names[i]);
        buf[i] = out_like(&f, key, &exp[i], &bytes[i]);
    }
    geomops_render_buffers b = GEOMOPS_RENDER_BUFFERS_INIT;
    b.rgb = (uint8_t*)buf[0];
    b.depth = (float*)buf[1];
    b.instance_index = (int16_t*)buf[2];
    b.object_coordinates = (float*)buf[3];
    b.cam_coordinates = (float*)buf[4];
    b.normals = (float*)buf[5];
    b.class_index = (int16_t*)buf[6];
    b.triangle_id = (int32_t*)buf[7];
    b.barycentrics = (float*)buf[8];
    OK(geomops_render(&ex, &a, &b));
    for (int i = 0; i < 9; ++i) compare(names[i], types[i], buf[i], exp[i], bytes[i], 0, 0);
    /* the four required buffers alone, then the cache released */
    geomops_render_buffers req = GEOMOPS_RENDER_BUFFERS_INIT;
    req.rgb = (uint8_t*)fx_out(&f, bytes[0]);
    req.depth = (float*)fx_out(&f, bytes[1]);
    req.instance_index = (int16_t*)fx_out(&f, bytes[2]);
    req.object_coordinates = (float*)fx_out(&f, bytes[3]);
    OK(geomops_render(&ex, &a, &req));
    compare("rgb (required buffers only)", GEOMOPS_UINT8, req.rgb, exp[0], bytes[0], 0, 0);
    compare("depth (required buffers only)", GEOMOPS_FLOAT32, req.depth, exp[1], bytes[1], 0, 0);
    OK(geomops_release_render_cache());
    fx_close(&f);
}

static void test_projection(void) {
    g_test = "projection";
    fixture f;
    if (!fx_open(&f, "projection")) return;
    double P[16];
    size_t bytes;
    const void* e = fx_array(&f, "expected", &bytes);
    OK(geomops_projection_matrix((int32_t)fx_int(&f, "width"), (int32_t)fx_int(&f, "height"),
                                 fx_num(&f, "fx"), fx_num(&f, "fy"), fx_num(&f, "cx"), fx_num(&f, "cy"),
                                 fx_num(&f, "z_near"), fx_num(&f, "z_far"), P));
    compare("projection matrix", GEOMOPS_FLOAT64, P, e, bytes, 0, 0);
    fx_close(&f);
}

static void image_args(fixture* f, geomops_image* im, int coords) {
    im->width = (int32_t)fx_int(f, "width");
    im->height = (int32_t)fx_int(f, "height");
    im->rgb_type = (int)fx_int(f, "rgb_type");
    im->rgb_channels = (int)fx_int(f, "rgb_channels");
    im->rgb = fx_arr(f, "rgb");
    im->depth_type = (int)fx_int(f, "depth_type");
    im->depth = fx_arr(f, "depth");
    im->instance_index = (const int16_t*)fx_arr(f, "instance_index");
    if (coords) {
        im->object_coordinates_type = (int)fx_int(f, "object_coordinates_type");
        im->object_coordinates = fx_arr(f, "object_coordinates");
    }
}

static void test_image_gradients(const char* name) {
    g_test = name;
    fixture f;
    if (!fx_open(&f, name)) return;
    const geomops_exec ex = exec_for_test();
    geomops_image im = GEOMOPS_IMAGE_INIT;
    image_args(&f, &im, 0);
    geomops_pose_gradient_options o = GEOMOPS_POSE_GRADIENT_OPTIONS_INIT;
    o.border = (int)fx_int(&f, "border");
    o.helper_semantics = (int)fx_int(&f, "helper_semantics");
    const void *ex_, *ey, *ev;
    size_t bx, by, bv;
    float* gx = (float*)out_like(&f, "expected_grad_x", &ex_, &bx);
    float* gy = (float*)out_like(&f, "expected_grad_y", &ey, &by);
    uint8_t* valid = (uint8_t*)out_like(&f, "expected_valid", &ev, &bv);
    OK(geomops_compute_image_space_gradients(&ex, &im, &o, gx, gy, valid));
    compare("grad_x", GEOMOPS_FLOAT32, gx, ex_, bx, 0, 0);
    compare("grad_y", GEOMOPS_FLOAT32, gy, ey, by, 0, 0);
    compare("valid", GEOMOPS_UINT8, valid, ev, bv, 0, 0);
    fx_close(&f);
}

static void test_backprop(const char* name) {
    g_test = name;
    fixture f;
    if (!fx_open(&f, name)) return;
    const geomops_exec ex = exec_for_test();
    geomops_image im = GEOMOPS_IMAGE_INIT;
    image_args(&f, &im, 1);
    geomops_pose_gradient_options o = GEOMOPS_POSE_GRADIENT_OPTIONS_INIT;
    o.mode = (int)fx_int(&f, "mode");
    o.layout = (int)fx_int(&f, "layout");
    o.helper_semantics = (int)fx_int(&f, "helper_semantics");
    const int n = (int)fx_int(&f, "num_objects");
    geomops_pose_object objs[MAX_OBJECTS];
    for (int k = 0; k < n && k < MAX_OBJECTS; ++k) {
        char key[64];
        geomops_pose_object init = GEOMOPS_POSE_OBJECT_INIT;
        objs[k] = init;
        snprintf(key, sizeof key, "obj%d_instance_index", k);
        objs[k].instance_index = (int32_t)fx_int(&f, key);
        /* exact: inv(camera_pose) @ pose; compat: the pose (stillleben ignores the camera pose) */
        snprintf(key, sizeof key, o.mode == GEOMOPS_POSE_MODE_COMPAT ? "obj%d_pose" : "obj%d_transform", k);
        memcpy(objs[k].object_to_camera, fx_arr(&f, key), 16 * sizeof(double));
    }
    const int gtype = (int)fx_int(&f, "grad_type");
    const void *eg, *ec;
    size_t bg, bc;
    geomops_pose_gradients out = GEOMOPS_POSE_GRADIENTS_INIT;
    out.gradients = out_like(&f, "expected_gradients", &eg, &bg);
    out.contributions = (float*)out_like(&f, "expected_contributions", &ec, &bc);
    out.singular_pixels = (int64_t*)fx_out(&f, (size_t)n * sizeof(int64_t));
    OK(geomops_backpropagate_gradient_to_poses(&ex, &im, n, objs, (const double*)fx_arr(&f, "projection"),
                                               gtype, fx_arr(&f, "grad"), &o, &out));
    double rtol = 0, atol = 0;
    if (g_cuda) { /* the CUDA sums add in another (fixed) order */
        rtol = gtype == GEOMOPS_FLOAT32 ? 1e-5 : 1e-10;
        atol = gtype == GEOMOPS_FLOAT32 ? 1e-4 : 1e-9;
    }
    compare("pose gradients", gtype, out.gradients, eg, bg, rtol, atol);
    compare("contributions", GEOMOPS_FLOAT32, out.contributions, ec, bc, 0, 0);
    for (int k = 0; k < n; ++k) CHECK(out.singular_pixels[k] == 0, "singular pixels of object %d", k);
    fx_close(&f);
}

static void test_pose_delta(const char* name) {
    g_test = name;
    fixture f;
    if (!fx_open(&f, name)) return;
    const geomops_exec ex = exec_for_test();
    geomops_pose_delta_args a = GEOMOPS_POSE_DELTA_ARGS_INIT;
    a.dtype = (int)fx_int(&f, "dtype");
    a.batch = fx_int(&f, "batch");
    a.pose = fx_arr(&f, "pose");
    a.delta_type = (int)fx_int(&f, "delta_type");
    a.delta_batch = fx_int(&f, "delta_batch");
    a.delta = fx_arr(&f, "delta");
    a.orthonormalize = (int)fx_int(&f, "orthonormalize");
    a.fix_reflection = (int)fx_int(&f, "fix_reflection");
    const void* e;
    size_t b;
    void* out = out_like(&f, "expected", &e, &b);
    OK(geomops_apply_pose_delta(&ex, &a, out));
    /* NumPy's LAPACK SVD vs the library's Jacobi SVD */
    compare("apply_pose_delta", a.dtype, out, e, b, a.dtype == GEOMOPS_FLOAT32 ? 1e-6 : 1e-10,
            a.dtype == GEOMOPS_FLOAT32 ? 1e-6 : 1e-10);
    /* in place */
    void* inplace = fx_out(&f, b);
    memcpy(inplace, a.pose, b);
    a.pose = inplace;
    OK(geomops_apply_pose_delta(&ex, &a, inplace));
    compare("apply_pose_delta in place", a.dtype, inplace, out, b, 0, 0);
    fx_close(&f);
}

/* ---- several threads at once ------------------------------------------------------------------ */

typedef struct thread_job {
    int id, failures;
} thread_job;

/* Each thread runs a convolution, a search with a hash table and a render, twice, with its own
 * thread count, and compares with the fixtures (every result is independent of threads). */
static void* thread_main(void* arg) {
    thread_job* job = (thread_job*)arg;
    geomops_exec ex = exec_for_test();
    if (!g_cuda) ex.num_threads = 1 + job->id % 3;
    for (int round = 0; round < 2; ++round) {
        fixture f;
        geomops_cconv_args a = GEOMOPS_CCONV_ARGS_INIT;
        geomops_cconv_options o = GEOMOPS_CCONV_OPTIONS_INIT;
        if (!fx_open(&f, "cconv_b")) return NULL;
        cconv_forward_args(&f, &a);
        cconv_options(&f, &o);
        const void* e;
        size_t b;
        void* out = out_like(&f, "expected_out", &e, &b);
        if (geomops_continuous_conv(&ex, &a, &o, out) != GEOMOPS_OK ||
            (!g_cuda && !g_tolerant && memcmp(out, e, b)))
            job->failures++;
        fx_close(&f);

        if (!fx_open(&f, "frs_table_float32")) return NULL;
        geomops_fixed_radius_args s = GEOMOPS_FIXED_RADIUS_ARGS_INIT;
        SEARCH_COMMON(s, &f);
        s.radius = fx_num(&f, "radius");
        s.sort = (int)fx_int(&f, "sort");
        s.hash_table_index = (const int32_t*)fx_arr(&f, "hash_table_index");
        s.hash_table_cell_splits = (const int32_t*)fx_arr(&f, "hash_table_cell_splits");
        s.hash_table_splits = (const int32_t*)fx_arr(&f, "hash_table_splits");
        s.hash_table_num_cells = fx_int(&f, "hash_table_num_cells");
        int64_t* rs = (int64_t*)fx_out(&f, (size_t)(s.num_queries + 1) * 8);
        geomops_search* h = NULL;
        const void* ei = fx_array(&f, "expected_index", &b);
        void* idx = fx_out(&f, b);
        size_t bd;
        const void* ed = fx_array(&f, "expected_distance", &bd);
        void* dist = fx_out(&f, bd);
        if (geomops_fixed_radius_search(&ex, &s, rs, &h) != GEOMOPS_OK || geomops_search_fill(h, idx, dist) ||
            memcmp(idx, ei, b) || memcmp(dist, ed, bd))
            job->failures++;
        geomops_search_free(h);
        fx_close(&f);

        if (!fx_open(&f, "render")) return NULL;
        geomops_mesh_instance m[MAX_OBJECTS];
        geomops_render_args ra = GEOMOPS_RENDER_ARGS_INIT;
        render_args(&f, &ra);
        ra.num_instances = scene_instances(&f, m);
        ra.instances = m;
        geomops_render_buffers rb = GEOMOPS_RENDER_BUFFERS_INIT;
        const void *e_rgb, *e_depth, *e_inst, *e_coords;
        size_t b_rgb, b_depth, b_inst, b_coords;
        rb.rgb = (uint8_t*)out_like(&f, "expected_rgb", &e_rgb, &b_rgb);
        rb.depth = (float*)out_like(&f, "expected_depth", &e_depth, &b_depth);
        rb.instance_index = (int16_t*)out_like(&f, "expected_instance_index", &e_inst, &b_inst);
        rb.object_coordinates = (float*)out_like(&f, "expected_object_coordinates", &e_coords, &b_coords);
        if (geomops_render(&ex, &ra, &rb) != GEOMOPS_OK || memcmp(rb.rgb, e_rgb, b_rgb) ||
            memcmp(rb.depth, e_depth, b_depth) || memcmp(rb.instance_index, e_inst, b_inst))
            job->failures++;
        fx_close(&f);
        /* a failing call in this thread sets this thread's message only */
        if (geomops_knn_search(&ex, NULL, NULL, &h) != GEOMOPS_ERROR_INVALID_ARGUMENT ||
            !strstr(geomops_last_error(), "geomops_knn_search"))
            job->failures++;
    }
    return NULL;
}

static void test_threads(void) {
    g_test = "threads";
    enum { N = 6 };
    pthread_t th[N];
    thread_job jobs[N];
    for (int i = 0; i < N; ++i) {
        jobs[i].id = i;
        jobs[i].failures = 0;
        CHECK(pthread_create(&th[i], NULL, thread_main, &jobs[i]) == 0, "pthread_create");
    }
    for (int i = 0; i < N; ++i) {
        pthread_join(th[i], NULL);
        CHECK(jobs[i].failures == 0, "thread %d had %d failing calls", i, jobs[i].failures);
    }
    CHECK(geomops_last_error()[0] == '\0', "the main thread's message changed: '%s'", geomops_last_error());
}

/* ---- bad arguments ----------------------------------------------------------------------------- */

/* `call` must fail with `status` and a message containing `text`. */
#define BAD(status, text, call)                                                                              \
    do {                                                                                                     \
        geomops_status st_ = (call);                                                                         \
        const char* msg_ = geomops_last_error();                                                             \
        CHECK(st_ == (status) && msg_ && strstr(msg_, (text)),                                               \
              "line %d: %s -> %s '%s', expected %s with '%s'", __LINE__, #call, geomops_status_string(st_),  \
              msg_ ? msg_ : "(null)", geomops_status_string(status), (text));                                \
    } while (0)
#define INV GEOMOPS_ERROR_INVALID_ARGUMENT

static void bad_cconv(void) {
    fixture f;
    if (!fx_open(&f, "cconv_b")) return;
    const geomops_exec ex = exec_for_test();
    geomops_cconv_args good = GEOMOPS_CCONV_ARGS_INIT, a;
    geomops_cconv_options o = GEOMOPS_CCONV_OPTIONS_INIT, ob;
    cconv_forward_args(&f, &good);
    cconv_options(&f, &o);
    void* out = fx_out(&f, (size_t)(good.num_out * good.out_channels) * 8);
    const int64_t no = good.num_out;
    int64_t* rs = (int64_t*)fx_out(&f, (size_t)(no + 1) * 8);
    int64_t* idx = (int64_t*)fx_out(&f, (size_t)good.num_neighbors * 8);
    double* ext = (double*)fx_out(&f, (size_t)(good.extents_rows * good.extents_cols) * 8);

    BAD(INV, "args is NULL", geomops_continuous_conv(&ex, NULL, &o, out));
    a = good, a.size = 3;
    BAD(GEOMOPS_ERROR_STRUCT_SIZE, "args->size is 3", geomops_continuous_conv(&ex, &a, &o, out));
    a = good, a.size = sizeof a + 8;
    BAD(GEOMOPS_ERROR_STRUCT_SIZE, "larger than", geomops_continuous_conv(&ex, &a, &o, out));
    a = good, a.dtype = GEOMOPS_INT32;
    BAD(INV, "args->dtype must be GEOMOPS_FLOAT32 or GEOMOPS_FLOAT64",
        geomops_continuous_conv(&ex, &a, &o, out));
    a = good, a.index_type = 99;
    BAD(INV, "args->index_type", geomops_continuous_conv(&ex, &a, &o, out));
    a = good, a.num_out = -1;
    BAD(INV, "args->num_out must be >= 0, got -1", geomops_continuous_conv(&ex, &a, &o, out));
    a = good, a.num_inp = -5;
    BAD(INV, "args->num_inp must be >= 0", geomops_continuous_conv(&ex, &a, &o, out));
    a = good, a.filter_width = 0;
    BAD(INV, "each filter dimension >= 1", geomops_continuous_conv(&ex, &a, &o, out));
    a = good, a.filters = NULL;
    BAD(INV, "args->filters is NULL", geomops_continuous_conv(&ex, &a, &o, out));
    a = good, a.inp_features = NULL;
    BAD(INV, "args->inp_features is NULL", geomops_continuous_conv(&ex, &a, &o, out));
    BAD(INV, "out_features is NULL", geomops_continuous_conv(&ex, &good, &o, NULL));
    a = good, a.extents_rows = 7;
    BAD(INV, "extents must have shape", geomops_continuous_conv(&ex, &a, &o, out));
    a = good, a.extents_cols = 2;
    BAD(INV, "got shape [29, 2]", geomops_continuous_conv(&ex, &a, &o, out));
    memcpy(ext, good.extents, (size_t)(good.extents_rows * good.extents_cols) * 8);
    ext[4] = NAN;
    a = good, a.extents = ext;
    BAD(INV, "extents must be finite and > 0", geomops_continuous_conv(&ex, &a, &o, out));
    ext[4] = -1.0;
    BAD(INV, "extents must be finite and > 0", geomops_continuous_conv(&ex, &a, &o, out));
    /* row splits: unsorted, not starting at 0, wrong total */
    memcpy(rs, good.neighbors_row_splits, (size_t)(no + 1) * 8);
    int64_t tmp = rs[3];
    rs[3] = rs[5] + 1, rs[5] = tmp;
    a = good, a.neighbors_row_splits = rs;
    BAD(INV, "neighbors_row_splits must be non-decreasing", geomops_continuous_conv(&ex, &a, &o, out));
    memcpy(rs, good.neighbors_row_splits, (size_t)(no + 1) * 8);
    rs[0] = 1;
    BAD(INV, "neighbors_row_splits must start with 0, got 1", geomops_continuous_conv(&ex, &a, &o, out));
    memcpy(rs, good.neighbors_row_splits, (size_t)(no + 1) * 8);
    rs[no] += 1;
    BAD(INV, "must end with num_neighbors", geomops_continuous_conv(&ex, &a, &o, out));
    a = good, a.neighbors_row_splits = NULL;
    BAD(INV, "neighbors_row_splits is NULL", geomops_continuous_conv(&ex, &a, &o, out));
    /* indices out of range */
    memcpy(idx, good.neighbors_index, (size_t)good.num_neighbors * 8);
    idx[2] = good.num_inp;
    a = good, a.neighbors_index = idx;
    BAD(INV, "neighbors_index contains 37, outside [0, 37) (num_inp)",
        geomops_continuous_conv(&ex, &a, &o, out));
    idx[2] = -4;
    BAD(INV, "neighbors_index contains -4", geomops_continuous_conv(&ex, &a, &o, out));
    /* options */
    ob = o, ob.interpolation = 9;
    BAD(INV, "options->interpolation must be", geomops_continuous_conv(&ex, &good, &ob, out));
    ob = o, ob.coordinate_mapping = -1;
    BAD(INV, "options->coordinate_mapping", geomops_continuous_conv(&ex, &good, &ob, out));
    ob = o, ob.align_corners = 2;
    BAD(INV, "options->align_corners must be 0 or 1, got 2", geomops_continuous_conv(&ex, &good, &ob, out));
    ob = o, ob.output_type = GEOMOPS_INT32;
    BAD(INV, "options->output_type", geomops_continuous_conv(&ex, &good, &ob, out));
    ob = o, ob.max_temp_mem_mb = -1;
    BAD(INV, "options->max_temp_mem_mb must be >= 0", geomops_continuous_conv(&ex, &good, &ob, out));
    ob = o, ob.size = 1;
    BAD(GEOMOPS_ERROR_STRUCT_SIZE, "options->size is 1", geomops_continuous_conv(&ex, &good, &ob, out));
    /* the execution struct */
    geomops_exec eb = ex;
    eb.device_type = 7;
    BAD(INV, "exec->device_type", geomops_continuous_conv(&eb, &good, &o, out));
    eb = ex, eb.num_threads = -2;
    BAD(INV, "exec->num_threads must be >= 0", geomops_continuous_conv(&eb, &good, &o, out));
    eb = ex, eb.size = 0;
    BAD(GEOMOPS_ERROR_STRUCT_SIZE, "exec->size is 0", geomops_continuous_conv(&eb, &good, &o, out));
    eb = ex, eb.device_type = GEOMOPS_DEVICE_CUDA, eb.device = 3;
    if (geomops_has_cuda() && geomops_continuous_conv(&eb, &good, &o, out) == GEOMOPS_ERROR_NO_DEVICE)
        /* a CUDA build on a machine without a usable driver: the device query fails first */
        CHECK(strstr(geomops_last_error(), "CUDA") != NULL, "no-device message: '%s'", geomops_last_error());
    else if (geomops_has_cuda())
        BAD(INV, "exec->device is 3", geomops_continuous_conv(&eb, &good, &o, out));
    else
        BAD(GEOMOPS_ERROR_UNSUPPORTED, "built without CUDA", geomops_continuous_conv(&eb, &good, &o, out));
    /* gradients */
    const void* g = fx_arr(&f, "out_features_gradient");
    BAD(INV, "out_features_gradient is NULL",
        geomops_continuous_conv_backprop_filter(&ex, &good, &o, NULL, out));
    geomops_cconv_gradients gr = GEOMOPS_CCONV_GRADIENTS_INIT;
    gr.inp_importance = out;
    a = good, a.inp_importance = NULL;
    BAD(INV, "gradients->inp_importance must be NULL", geomops_continuous_conv_backward(&ex, &a, &o, g, &gr));
    gr.size = sizeof gr + 16;
    BAD(GEOMOPS_ERROR_STRUCT_SIZE, "gradients->size",
        geomops_continuous_conv_backward(&ex, &good, &o, g, &gr));
    BAD(INV, "gradients is NULL", geomops_continuous_conv_backward(&ex, &good, &o, g, NULL));
    /* the position gradients: a size between 0.1's and 0.2's, a missing input or gradient */
    geomops_cconv_gradients pg = GEOMOPS_CCONV_GRADIENTS_INIT;
    pg.out_positions = fx_out(&f, (size_t)(good.num_out * 3) * 8);
    pg.size = offsetof(geomops_cconv_gradients, inp_positions) + 4;
    BAD(GEOMOPS_ERROR_STRUCT_SIZE, "not the size of a geomops_cconv_gradients of any released geomops.h",
        geomops_continuous_conv_backward(&ex, &good, &o, g, &pg));
    pg.size = sizeof pg;
    BAD(INV, "out_features_gradient is NULL", geomops_continuous_conv_backward(&ex, &good, &o, NULL, &pg));
    a = good, a.inp_positions = NULL;
    BAD(INV, "args->inp_positions is NULL", geomops_continuous_conv_backward(&ex, &a, &o, g, &pg));
    a = good, a.extents = NULL;
    BAD(INV, "args->extents is NULL", geomops_continuous_conv_backward(&ex, &a, &o, g, &pg));
    a = good, a.neighbors_index = idx;
    BAD(INV, "neighbors_index contains -4", geomops_continuous_conv_backward(&ex, &a, &o, g, &pg));
    /* with no gradient asked for, a backward call does nothing and succeeds */
    geomops_cconv_gradients none = GEOMOPS_CCONV_GRADIENTS_INIT;
    OK(geomops_continuous_conv_backward(&ex, &good, &o, g, &none));
    CHECK(geomops_last_error()[0] == '\0', "a successful call clears the message");
    fx_close(&f);

    if (!fx_open(&f, "cconvT_b")) return;
    geomops_cconv_transpose_args t = GEOMOPS_CCONV_TRANSPOSE_ARGS_INIT, tb;
    cconv_transpose_args(&f, &t);
    void* tout = fx_out(&f, (size_t)(t.num_out * t.out_channels) * 8);
    tb = t, tb.inp_neighbors_importance_sum = NULL;
    BAD(INV, "neighbors_importance without inp_neighbors_importance_sum",
        geomops_continuous_conv_transpose(&ex, &tb, &o, tout));
    tb = t, tb.extents_rows = t.num_out;
    BAD(INV, "[num_inp, 1] or [num_inp, 3] with num_inp = 29",
        geomops_continuous_conv_transpose(&ex, &tb, &o, tout));
    tb = t, tb.inp_neighbors_row_splits = NULL;
    BAD(INV, "inp_neighbors_row_splits is NULL", geomops_continuous_conv_transpose(&ex, &tb, &o, tout));
    int64_t* tidx = (int64_t*)fx_out(&f, (size_t)t.num_neighbors * 8);
    memcpy(tidx, t.inp_neighbors_index, (size_t)t.num_neighbors * 8);
    tidx[0] = 1000;
    tb = t, tb.inp_neighbors_index = tidx;
    BAD(INV, "inp_neighbors_index contains 1000, outside [0, 37) (num_out)",
        geomops_continuous_conv_transpose(&ex, &tb, &o, tout));
    const void* tg = fx_arr(&f, "out_features_gradient");
    geomops_cconv_transpose_gradients tgr = GEOMOPS_CCONV_TRANSPOSE_GRADIENTS_INIT;
    tgr.extents = fx_out(&f, (size_t)(t.extents_rows * t.extents_cols) * 8);
    tgr.size = offsetof(geomops_cconv_transpose_gradients, inp_positions) + 8;
    BAD(GEOMOPS_ERROR_STRUCT_SIZE, "not the size of a geomops_cconv_transpose_gradients",
        geomops_continuous_conv_transpose_backward(&ex, &t, &o, tg, &tgr));
    tgr.size = sizeof tgr + 8;
    BAD(GEOMOPS_ERROR_STRUCT_SIZE, "larger than",
        geomops_continuous_conv_transpose_backward(&ex, &t, &o, tg, &tgr));
    tgr.size = sizeof tgr;
    tb = t, tb.out_positions = NULL;
    BAD(INV, "args->out_positions is NULL",
        geomops_continuous_conv_transpose_backward(&ex, &tb, &o, tg, &tgr));
    BAD(INV, "gradients is NULL", geomops_continuous_conv_transpose_backward(&ex, &t, &o, tg, NULL));
    fx_close(&f);
}

static void bad_lists(void) {
    const geomops_exec ex = exec_for_test();
    int32_t idx[4] = {0, 1, 5, 2};
    int64_t rs[3] = {0, 2, 4}, unsorted[3] = {0, 3, 2};
    int32_t out_idx[4];
    int64_t out_rs[8];
    float attrs[4], out_attrs[4];
    BAD(INV, "inp_neighbors_index contains 5, outside [0, 4) (num_points)",
        geomops_invert_neighbors_list(&ex, 4, GEOMOPS_INT32, idx, 4, rs, 2, NULL, 0, out_idx, out_rs, NULL));
    BAD(INV, "num_points must be >= 0",
        geomops_invert_neighbors_list(&ex, -1, GEOMOPS_INT32, idx, 4, rs, 2, NULL, 0, out_idx, out_rs, NULL));
    BAD(INV, "num_entries must be >= 0",
        geomops_invert_neighbors_list(&ex, 6, GEOMOPS_INT32, idx, -4, rs, 2, NULL, 0, out_idx, out_rs, NULL));
    BAD(INV, "inp_neighbors_row_splits must be non-decreasing",
        geomops_invert_neighbors_list(&ex, 6, GEOMOPS_INT32, idx, 4, unsorted, 2, NULL, 0, out_idx, out_rs,
                                      NULL));
    BAD(INV, "attribute_bytes",
        geomops_invert_neighbors_list(&ex, 6, GEOMOPS_INT32, idx, 4, rs, 2, attrs, 0, out_idx, out_rs,
                                      out_attrs));
    BAD(INV, "out_neighbors_attributes is NULL",
        geomops_invert_neighbors_list(&ex, 6, GEOMOPS_INT32, idx, 4, rs, 2, attrs, 4, out_idx, out_rs, NULL));
    BAD(INV, "out_neighbors_row_splits is NULL",
        geomops_invert_neighbors_list(&ex, 6, GEOMOPS_INT32, idx, 4, rs, 2, NULL, 0, out_idx, NULL, NULL));
    BAD(INV, "index_type",
        geomops_invert_neighbors_list(&ex, 6, GEOMOPS_FLOAT32, idx, 4, rs, 2, NULL, 0, out_idx, out_rs,
                                      NULL));
    OK(geomops_invert_neighbors_list(&ex, 6, GEOMOPS_INT32, idx, 4, rs, 2, attrs, 4, out_idx, out_rs,
                                     out_attrs));

    /* large arrays: the threaded checks see a value in any chunk */
    enum { BIG = 200000 };
    int32_t* big_idx = (int32_t*)calloc(BIG, sizeof(int32_t));
    int64_t* big_rs = (int64_t*)malloc((BIG + 1) * sizeof(int64_t));
    int32_t* big_out = (int32_t*)malloc(BIG * sizeof(int32_t));
    int64_t* big_out_rs = (int64_t*)malloc(11 * sizeof(int64_t));
    for (int64_t i = 0; i <= BIG; ++i) big_rs[i] = i;
    for (int64_t i = 0; i < BIG; ++i) big_idx[i] = (int32_t)(i % 10);
    OK(geomops_invert_neighbors_list(&ex, 10, GEOMOPS_INT32, big_idx, BIG, big_rs, BIG, NULL, 0, big_out,
                                     big_out_rs, NULL));
    CHECK(big_out_rs[10] == BIG && big_out_rs[1] == BIG / 10, "large inversion row splits");
    big_idx[150001] = 10;
    BAD(INV, "inp_neighbors_index contains 10, outside [0, 10)",
        geomops_invert_neighbors_list(&ex, 10, GEOMOPS_INT32, big_idx, BIG, big_rs, BIG, NULL, 0, big_out,
                                      big_out_rs, NULL));
    big_idx[150001] = 1;
    big_rs[123457] = 123455;
    BAD(INV, "inp_neighbors_row_splits must be non-decreasing",
        geomops_invert_neighbors_list(&ex, 10, GEOMOPS_INT32, big_idx, BIG, big_rs, BIG, NULL, 0, big_out,
                                      big_out_rs, NULL));
    free(big_idx);
    free(big_rs);
    free(big_out);
    free(big_out_rs);

    float v[4] = {1, 2, 3, 4}, sums[2];
    BAD(INV, "values must be float32, float64, int32 or int64",
        geomops_reduce_subarrays_sum(&ex, GEOMOPS_UINT8, v, 4, rs, 2, sums));
    BAD(INV, "row_splits must be non-decreasing",
        geomops_reduce_subarrays_sum(&ex, GEOMOPS_FLOAT32, v, 4, unsorted, 2, sums));
    BAD(INV, "row_splits must end with num_values",
        geomops_reduce_subarrays_sum(&ex, GEOMOPS_FLOAT32, v, 3, rs, 2, sums));
    BAD(INV, "values is NULL", geomops_reduce_subarrays_sum(&ex, GEOMOPS_FLOAT32, NULL, 4, rs, 2, sums));
    BAD(INV, "num_rows must be >= 0", geomops_reduce_subarrays_sum(&ex, GEOMOPS_FLOAT32, v, 4, rs, -2, sums));
    BAD(INV, "num_values must be >= 0",
        geomops_reduce_subarrays_sum(&ex, GEOMOPS_FLOAT32, v, -4, rs, 2, sums));
}

static void bad_search(void) {
    fixture f;
    if (!fx_open(&f, "frs_table_float32")) return;
    const geomops_exec ex = exec_for_test();
    geomops_fixed_radius_args good = GEOMOPS_FIXED_RADIUS_ARGS_INIT, a;
    SEARCH_COMMON(good, &f);
    good.radius = fx_num(&f, "radius");
    good.hash_table_index = (const int32_t*)fx_arr(&f, "hash_table_index");
    good.hash_table_cell_splits = (const int32_t*)fx_arr(&f, "hash_table_cell_splits");
    good.hash_table_splits = (const int32_t*)fx_arr(&f, "hash_table_splits");
    good.hash_table_num_cells = fx_int(&f, "hash_table_num_cells");
    good.return_distances = 0;
    int64_t* rs = (int64_t*)fx_out(&f, (size_t)(good.num_queries + 1) * 8);
    geomops_search* h = (geomops_search*)&f; /* must be set to NULL on failure */
    a = good, a.points = NULL;
    BAD(INV, "points is NULL (it has 360 elements)", geomops_fixed_radius_search(&ex, &a, rs, &h));
    CHECK(h == NULL, "a failed phase 1 leaves *search NULL");
    a = good, a.num_queries = -1;
    BAD(INV, "args->num_queries must be >= 0", geomops_fixed_radius_search(&ex, &a, rs, &h));
    a = good, a.radius = -0.5;
    BAD(INV, "radius must be >= 0", geomops_fixed_radius_search(&ex, &a, rs, &h));
    a = good, a.radius = NAN;
    BAD(INV, "radius must be finite", geomops_fixed_radius_search(&ex, &a, rs, &h));
    a = good, a.metric = 3;
    BAD(INV, "args->metric must be", geomops_fixed_radius_search(&ex, &a, rs, &h));
    a = good, a.sort = -1;
    BAD(INV, "args->sort must be 0 or 1", geomops_fixed_radius_search(&ex, &a, rs, &h));
    const int64_t short_splits[3] = {0, 70, 119};
    a = good, a.points_row_splits = short_splits;
    BAD(INV, "points_row_splits must end with num_points", geomops_fixed_radius_search(&ex, &a, rs, &h));
    a = good, a.queries_row_splits = NULL;
    BAD(INV, "queries_row_splits is NULL (one batch item), but args->batch_size is 2",
        geomops_fixed_radius_search(&ex, &a, rs, &h));
    a = good, a.batch_size = 0;
    BAD(INV, "args->batch_size must be >= 1", geomops_fixed_radius_search(&ex, &a, rs, &h));
    a = good, a.radius = good.radius * 0.5;
    BAD(INV, "is not the spatial hash table of these points", geomops_fixed_radius_search(&ex, &a, rs, &h));
    a = good, a.hash_table_splits = NULL;
    BAD(INV, "must be given together", geomops_fixed_radius_search(&ex, &a, rs, &h));
    a = good, a.hash_table_num_cells = good.hash_table_num_cells - 1;
    BAD(INV, "hash_table_splits must start at 0", geomops_fixed_radius_search(&ex, &a, rs, &h));
    BAD(INV, "neighbors_row_splits is NULL", geomops_fixed_radius_search(&ex, &good, NULL, &h));
    BAD(INV, "search is NULL", geomops_fixed_radius_search(&ex, &good, rs, NULL));
    float* pts = (float*)fx_out(&f, (size_t)good.num_points * 12);
    memcpy(pts, good.points, (size_t)good.num_points * 12);
    pts[7] = INFINITY;
    a = good, a.points = pts;
    BAD(INV, "points must be finite (no NaN or inf coordinates)",
        geomops_fixed_radius_search(&ex, &a, rs, &h));
    /* the handle: total, fill once, NULL outputs, free */
    OK(geomops_fixed_radius_search(&ex, &good, rs, &h));
    int64_t total = 0;
    OK(geomops_search_total(h, &total));
    CHECK(total > 0, "total %lld", (long long)total);
    BAD(INV, "neighbors_index is NULL", geomops_search_fill(h, NULL, NULL));
    void* idx = fx_out(&f, (size_t)total * 8);
    OK(geomops_search_fill(h, idx, NULL)); /* no distances were asked for */
    BAD(INV, "already filled", geomops_search_fill(h, idx, NULL));
    OK(geomops_search_free(h));
    OK(geomops_search_free(NULL));
    BAD(INV, "search is NULL", geomops_search_fill(NULL, idx, NULL));
    BAD(INV, "search is NULL", geomops_search_total(NULL, &total));
    a = good, a.return_distances = 1;
    OK(geomops_fixed_radius_search(&ex, &a, rs, &h));
    BAD(INV, "neighbors_distance (return_distances was set) is NULL", geomops_search_fill(h, idx, NULL));
    OK(geomops_search_free(h)); /* freed without a fill */

    /* the hash table */
    geomops_hash_table_args t = GEOMOPS_HASH_TABLE_ARGS_INIT, tb;
    t.dtype = good.dtype;
    t.num_points = good.num_points;
    t.points = good.points;
    t.batch_size = good.batch_size;
    t.points_row_splits = good.points_row_splits;
    t.radius = good.radius;
    int64_t cells = 0;
    tb = t, tb.radius = -1;
    BAD(INV, "radius must be >= 0", geomops_spatial_hash_table_size(&ex, &tb, &cells));
    tb = t, tb.hash_table_size_factor = 0;
    BAD(INV, "hash_table_size_factor must be > 0", geomops_spatial_hash_table_size(&ex, &tb, &cells));
    tb = t, tb.max_hash_table_size = 0;
    BAD(INV, "max_hash_table_size must be >= 1, got 0", geomops_spatial_hash_table_size(&ex, &tb, &cells));
    tb = t, tb.points_row_splits = NULL;
    BAD(INV, "points_row_splits is NULL (one batch item), but args->batch_size is 2",
        geomops_spatial_hash_table_size(&ex, &tb, &cells));
    tb = t, tb.hash_table_size_factor = 1e30, tb.max_hash_table_size = (int64_t)1 << 40;
    BAD(INV, "more than an int32 table can hold", geomops_spatial_hash_table_size(&ex, &tb, &cells));
    BAD(INV, "num_cells is NULL", geomops_spatial_hash_table_size(&ex, &t, NULL));
    OK(geomops_spatial_hash_table_size(&ex, &t, &cells));
    int32_t* ti = (int32_t*)fx_out(&f, (size_t)t.num_points * 4);
    int32_t* tc = (int32_t*)fx_out(&f, (size_t)(cells + 1) * 4);
    BAD(INV, "hash_table_splits is NULL", geomops_build_spatial_hash_table(&ex, &t, ti, tc, NULL));

    /* radius and kNN */
    geomops_radius_search_args r = GEOMOPS_RADIUS_SEARCH_ARGS_INIT;
    SEARCH_COMMON(r, &f);
    float* radii = (float*)fx_out(&f, (size_t)r.num_queries * 4);
    for (int64_t q = 0; q < r.num_queries; ++q) radii[q] = 0.1f;
    radii[3] = -0.1f;
    r.radii = radii;
    BAD(INV, "radii must be finite and >= 0", geomops_radius_search(&ex, &r, rs, &h));
    r.radii = NULL;
    BAD(INV, "radii is NULL", geomops_radius_search(&ex, &r, rs, &h));
    geomops_knn_search_args k = GEOMOPS_KNN_SEARCH_ARGS_INIT;
    SEARCH_COMMON(k, &f);
    k.k = 0;
    BAD(INV, "k must be greater than zero, got 0", geomops_knn_search(&ex, &k, rs, &h));
    k.k = 3, k.index_type = GEOMOPS_FLOAT64;
    BAD(INV, "args->index_type must be GEOMOPS_INT32 or GEOMOPS_INT64", geomops_knn_search(&ex, &k, rs, &h));
    k.index_type = GEOMOPS_INT32, k.size = sizeof k + 1;
    BAD(GEOMOPS_ERROR_STRUCT_SIZE, "args->size", geomops_knn_search(&ex, &k, rs, &h));
    fx_close(&f);
}

static void bad_pose(void) {
    fixture f;
    if (!fx_open(&f, "backprop_exact")) return;
    const geomops_exec ex = exec_for_test();
    geomops_mesh_instance m[MAX_OBJECTS], mb[MAX_OBJECTS];
    geomops_render_args good = GEOMOPS_RENDER_ARGS_INIT, a;
    render_args(&f, &good);
    good.num_instances = scene_instances(&f, m);
    good.instances = m;
    const size_t px = (size_t)good.width * (size_t)good.height;
    geomops_render_buffers b = GEOMOPS_RENDER_BUFFERS_INIT, bb;
    b.rgb = (uint8_t*)fx_out(&f, px * 4);
    b.depth = (float*)fx_out(&f, px * 4);
    b.instance_index = (int16_t*)fx_out(&f, px * 2);
    b.object_coordinates = (float*)fx_out(&f, px * 12);
    OK(geomops_render(&ex, &good, &b));
    a = good, a.width = 0;
    BAD(INV, "width must be a positive int, got 0", geomops_render(&ex, &a, &b));
    a = good, a.height = 40000;
    BAD(INV, "height must be <= 32768", geomops_render(&ex, &a, &b));
    a = good, a.fx = -1;
    BAD(INV, "fx must be > 0", geomops_render(&ex, &a, &b));
    a = good, a.z_near = 20;
    BAD(INV, "z_near must be < z_far", geomops_render(&ex, &a, &b));
    a = good, a.light_direction[0] = a.light_direction[1] = a.light_direction[2] = 0;
    BAD(INV, "light_direction must be a non-zero vector", geomops_render(&ex, &a, &b));
    a = good, a.background[1] = 1.5;
    BAD(INV, "background must be in [0, 1]", geomops_render(&ex, &a, &b));
    a = good, a.ambient[2] = -0.1;
    BAD(INV, "ambient must be >= 0", geomops_render(&ex, &a, &b));
    a = good, a.instances = NULL;
    BAD(INV, "args->instances is NULL", geomops_render(&ex, &a, &b));
    a = good, a.num_instances = -1;
    BAD(INV, "args->num_instances must be >= 0", geomops_render(&ex, &a, &b));
    bb = b, bb.depth = NULL;
    BAD(INV, "buffers->depth is NULL", geomops_render(&ex, &good, &bb));
    a = good, a.instances = mb;
    memcpy(mb, m, sizeof m);
    mb[1].instance_index = 0;
    BAD(INV, "instances[1].instance_index must be in [1, 32767]", geomops_render(&ex, &a, &b));
    memcpy(mb, m, sizeof m);
    mb[2].class_index = 40000;
    BAD(INV, "instances[2].class_index", geomops_render(&ex, &a, &b));
    memcpy(mb, m, sizeof m);
    mb[0].object_to_camera[12] = 0.5;
    BAD(INV, "instances[0].object_to_camera must be affine", geomops_render(&ex, &a, &b));
    memcpy(mb, m, sizeof m);
    mb[0].object_to_camera[3] = NAN;
    BAD(INV, "instances[0].object_to_camera must be finite", geomops_render(&ex, &a, &b));
    memcpy(mb, m, sizeof m);
    mb[0].object_to_camera[0] = 1e300;
    BAD(INV, "beyond the representable range", geomops_render(&ex, &a, &b));
    memcpy(mb, m, sizeof m);
    int32_t* faces = (int32_t*)fx_out(&f, (size_t)m[0].num_faces * 12);
    memcpy(faces, m[0].faces, (size_t)m[0].num_faces * 12);
    faces[5] = (int32_t)m[0].num_vertices;
    mb[0].faces = faces;
    BAD(INV, "instances[0].faces contains vertex index 8, outside [0, 8)", geomops_render(&ex, &a, &b));
    memcpy(mb, m, sizeof m);
    mb[1].vertices = NULL;
    BAD(INV, "instances[1].vertices is NULL", geomops_render(&ex, &a, &b));
    memcpy(mb, m, sizeof m);
    mb[1].size = sizeof mb[1] - 8;
    BAD(GEOMOPS_ERROR_STRUCT_SIZE, "every element of a table must have the same size",
        geomops_render(&ex, &a, &b));
    memcpy(mb, m, sizeof m);
    float* colors = (float*)fx_out(&f, (size_t)m[1].num_vertices * 12);
    memcpy(colors, m[1].colors, (size_t)m[1].num_vertices * 12);
    colors[4] = 1.5f;
    mb[1].colors = colors;
    BAD(INV, "instances[1].colors must be finite and in [0, 1]", geomops_render(&ex, &a, &b));
    BAD(INV, "projection is NULL", geomops_projection_matrix(64, 48, 50, 50, 32, 24, 0.1, 10, NULL));
    double P[16];
    BAD(INV, "width must be a positive int", geomops_projection_matrix(0, 48, 50, 50, 32, 24, 0.1, 10, P));
    BAD(INV, "z_near must be > 0", geomops_projection_matrix(64, 48, 50, 50, 32, 24, 0, 10, P));

    /* image gradients and back-propagation */
    geomops_image im = GEOMOPS_IMAGE_INIT, ib;
    image_args(&f, &im, 1);
    float* gx = (float*)fx_out(&f, px * 12);
    float* gy = (float*)fx_out(&f, px * 12);
    uint8_t* valid = (uint8_t*)fx_out(&f, px);
    OK(geomops_compute_image_space_gradients(&ex, &im, NULL, gx, gy, valid));
    ib = im, ib.rgb_channels = 5;
    BAD(INV, "image->rgb_channels must be 3 or 4, got 5",
        geomops_compute_image_space_gradients(&ex, &ib, NULL, gx, gy, valid));
    ib = im, ib.rgb_type = GEOMOPS_INT16;
    BAD(INV, "image->rgb_type", geomops_compute_image_space_gradients(&ex, &ib, NULL, gx, gy, valid));
    ib = im, ib.width = 0;
    BAD(INV, "image must have at least one pixel",
        geomops_compute_image_space_gradients(&ex, &ib, NULL, gx, gy, valid));
    ib = im, ib.depth = NULL;
    BAD(INV, "image->depth is NULL", geomops_compute_image_space_gradients(&ex, &ib, NULL, gx, gy, valid));
    geomops_pose_gradient_options o = GEOMOPS_POSE_GRADIENT_OPTIONS_INIT, ob;
    ob = o, ob.border = 4;
    BAD(INV, "options->border must be", geomops_compute_image_space_gradients(&ex, &im, &ob, gx, gy, valid));
    ob = o, ob.helper_semantics = 2;
    BAD(INV, "options->helper_semantics",
        geomops_compute_image_space_gradients(&ex, &im, &ob, gx, gy, valid));
    BAD(INV, "valid is NULL", geomops_compute_image_space_gradients(&ex, &im, NULL, gx, gy, NULL));
    BAD(INV, "image is NULL", geomops_compute_image_space_gradients(&ex, NULL, NULL, gx, gy, valid));

    const int n = good.num_instances;
    geomops_pose_object objs[MAX_OBJECTS];
    for (int k = 0; k < n; ++k) {
        geomops_pose_object init = GEOMOPS_POSE_OBJECT_INIT;
        objs[k] = init;
        objs[k].instance_index = m[k].instance_index;
        memcpy(objs[k].object_to_camera, m[k].object_to_camera, sizeof objs[k].object_to_camera);
    }
    const double* proj = (const double*)fx_arr(&f, "projection");
    const void* grad = fx_arr(&f, "grad");
    geomops_pose_gradients out = GEOMOPS_POSE_GRADIENTS_INIT;
    out.gradients = fx_out(&f, (size_t)n * 6 * 8);
    OK(geomops_backpropagate_gradient_to_poses(&ex, &im, n, objs, proj, GEOMOPS_FLOAT32, grad, NULL, &out));
    BAD(INV, "image->instance_index contains id 9, which no object in objects has",
        geomops_backpropagate_gradient_to_poses(&ex, &im, 1, objs, proj, GEOMOPS_FLOAT32, grad, NULL, &out));
    { /* a NaN of dLoss/dImage at an object pixel is named (it would make that gradient NaN) */
        const int64_t npx = (int64_t)im.height * im.width;
        int64_t first = 0;
        while (first < npx && im.instance_index[first] == 0) ++first;
        CHECK(first < npx, "the pose fixture has no object pixel");
        float* nan_grad = (float*)fx_out(&f, (size_t)npx * 3 * sizeof(float));
        memcpy(nan_grad, grad, (size_t)npx * 3 * sizeof(float));
        nan_grad[2 * npx + first] = NAN; /* channel 2 (CHW) */
        char want[160];
        snprintf(want, sizeof want,
                 "grad (dLoss/dImage) is not finite (NaN or inf) at pixel (row %lld, col %lld)",
                 (long long)(first / im.width), (long long)(first % im.width));
        BAD(INV, want,
            geomops_backpropagate_gradient_to_poses(&ex, &im, n, objs, proj, GEOMOPS_FLOAT32, nan_grad, NULL,
                                                    &out));
    }
    geomops_pose_object ob2[MAX_OBJECTS];
    memcpy(ob2, objs, sizeof objs);
    ob2[1].instance_index = 0;
    BAD(INV, "objects[1].instance_index is 0",
        geomops_backpropagate_gradient_to_poses(&ex, &im, n, ob2, proj, GEOMOPS_FLOAT32, grad, NULL, &out));
    memcpy(ob2, objs, sizeof objs);
    ob2[2].object_to_camera[5] = INFINITY;
    BAD(INV, "objects[2].object_to_camera must be finite",
        geomops_backpropagate_gradient_to_poses(&ex, &im, n, ob2, proj, GEOMOPS_FLOAT32, grad, NULL, &out));
    double badp[16];
    memcpy(badp, proj, sizeof badp);
    badp[10] = NAN;
    BAD(INV, "projection must be finite",
        geomops_backpropagate_gradient_to_poses(&ex, &im, n, objs, badp, GEOMOPS_FLOAT32, grad, NULL, &out));
    BAD(INV, "grad is NULL",
        geomops_backpropagate_gradient_to_poses(&ex, &im, n, objs, proj, GEOMOPS_FLOAT32, NULL, NULL, &out));
    BAD(INV, "grad_type",
        geomops_backpropagate_gradient_to_poses(&ex, &im, n, objs, proj, GEOMOPS_INT32, grad, NULL, &out));
    BAD(INV, "objects is NULL",
        geomops_backpropagate_gradient_to_poses(&ex, &im, n, NULL, proj, GEOMOPS_FLOAT32, grad, NULL, &out));
    BAD(INV, "num_objects must be >= 0",
        geomops_backpropagate_gradient_to_poses(&ex, &im, -1, objs, proj, GEOMOPS_FLOAT32, grad, NULL, &out));
    ib = im, ib.object_coordinates = NULL;
    BAD(INV, "image->object_coordinates is NULL",
        geomops_backpropagate_gradient_to_poses(&ex, &ib, n, objs, proj, GEOMOPS_FLOAT32, grad, NULL, &out));
    ob = o, ob.mode = 2;
    BAD(INV, "options->mode",
        geomops_backpropagate_gradient_to_poses(&ex, &im, n, objs, proj, GEOMOPS_FLOAT32, grad, &ob, &out));
    ob = o, ob.layout = 3;
    BAD(INV, "options->layout",
        geomops_backpropagate_gradient_to_poses(&ex, &im, n, objs, proj, GEOMOPS_FLOAT32, grad, &ob, &out));
    geomops_pose_gradients ob3 = out;
    ob3.gradients = NULL;
    BAD(INV, "outputs->gradients is NULL",
        geomops_backpropagate_gradient_to_poses(&ex, &im, n, objs, proj, GEOMOPS_FLOAT32, grad, NULL, &ob3));

    /* apply_pose_delta */
    double pose[2][16] = {{1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1},
                          {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1}};
    double delta[2][6] = {{0.1, 0, 0, 0, 0, 0}, {0, 0.1, 0, 0, 0, 0}};
    double res[2][16];
    geomops_pose_delta_args d = GEOMOPS_POSE_DELTA_ARGS_INIT, db;
    d.batch = 2;
    d.pose = pose;
    d.delta_batch = 2;
    d.delta = delta;
    OK(geomops_apply_pose_delta(&ex, &d, res));
    db = d, db.delta_batch = 3;
    BAD(INV, "delta must have shape (2, 6) or (1, 6) for poses of shape (2, 4, 4)",
        geomops_apply_pose_delta(&ex, &db, res));
    db = d, db.dtype = GEOMOPS_INT64;
    BAD(INV, "args->dtype", geomops_apply_pose_delta(&ex, &db, res));
    db = d, db.orthonormalize = 3;
    BAD(INV, "args->orthonormalize must be 0 or 1", geomops_apply_pose_delta(&ex, &db, res));
    db = d, db.batch = -1;
    BAD(INV, "args->batch must be >= 0", geomops_apply_pose_delta(&ex, &db, res));
    BAD(INV, "out is NULL", geomops_apply_pose_delta(&ex, &d, NULL));
    pose[1][7] = NAN;
    BAD(INV, "pose must be finite", geomops_apply_pose_delta(&ex, &d, res));
    pose[1][7] = 0;
    delta[0][2] = INFINITY;
    BAD(INV, "delta must be finite", geomops_apply_pose_delta(&ex, &d, res));
    fx_close(&f);
}

static void test_bad_arguments(void) {
    g_test = "bad arguments";
    bad_cconv();
    bad_lists();
    bad_search();
    bad_pose();
}

/* ---- the allocator hook ------------------------------------------------------------------------- */

/* Counts what the library allocates (from any of its threads); fails every request from
 * `fail_after` on (-1: never). */
typedef struct counting_allocator {
    atomic_long attempts, allocs, frees, misaligned;
    atomic_llong live_bytes;
    long fail_after;
} counting_allocator;

static void* counting_alloc(void* ctx, size_t bytes, size_t alignment) {
    counting_allocator* c = (counting_allocator*)ctx;
    const long n = atomic_fetch_add(&c->attempts, 1);
    if (c->fail_after >= 0 && n >= c->fail_after) return NULL;
    if (alignment == 0 || (alignment & (alignment - 1)) || alignment > 64)
        atomic_fetch_add(&c->misaligned, 1);
    void* p = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!p) return NULL;
    if ((uintptr_t)p % alignment) atomic_fetch_add(&c->misaligned, 1);
    atomic_fetch_add(&c->allocs, 1);
    atomic_fetch_add(&c->live_bytes, (long long)bytes);
    return p;
}

static void counting_free(void* ctx, void* p, size_t bytes) {
    counting_allocator* c = (counting_allocator*)ctx;
    atomic_fetch_add(&c->frees, 1);
    atomic_fetch_sub(&c->live_bytes, (long long)bytes);
    free(p);
}

static void counting_use(counting_allocator* c, long fail_after) {
    atomic_store(&c->attempts, 0);
    atomic_store(&c->allocs, 0);
    atomic_store(&c->frees, 0);
    atomic_store(&c->misaligned, 0);
    atomic_store(&c->live_bytes, 0);
    c->fail_after = fail_after;
    geomops_allocator a = GEOMOPS_ALLOCATOR_INIT;
    a.alloc = counting_alloc;
    a.free = counting_free;
    a.ctx = c;
    OK(geomops_set_allocator(&a));
}

/* Every block given back, with the bytes it was allocated with, and aligned as asked. */
static void counting_balanced(const counting_allocator* c, const char* after) {
    CHECK(atomic_load(&c->allocs) == atomic_load(&c->frees) && atomic_load(&c->live_bytes) == 0 &&
              atomic_load(&c->misaligned) == 0,
          "after %s: %ld blocks allocated, %ld freed, %lld bytes outstanding, %ld misaligned", after,
          (long)atomic_load(&c->allocs), (long)atomic_load(&c->frees), (long long)atomic_load(&c->live_bytes),
          (long)atomic_load(&c->misaligned));
}

/* The outputs of one kind of call, copied (compared between allocators). */
enum { MAX_KEPT = 64 };
typedef struct kept {
    void* p[MAX_KEPT];
    size_t bytes[MAX_KEPT];
    int n;
} kept;

static void keep(kept* k, const void* p, size_t bytes) {
    if (k->n == MAX_KEPT || !p) return;
    k->p[k->n] = malloc(bytes ? bytes : 1);
    memcpy(k->p[k->n], p, bytes);
    k->bytes[k->n++] = bytes;
}

static void kept_free(kept* k) {
    for (int i = 0; i < k->n; ++i) free(k->p[i]);
    k->n = 0;
}

enum {
    KIND_CONV,
    KIND_BACKWARD,
    KIND_TRANSPOSE_BACKWARD,
    KIND_LISTS,
    KIND_HASH_SEARCH,
    KIND_RADIUS,
    KIND_KNN,
    KIND_RENDER,
    KIND_IMAGE_GRADIENTS,
    KIND_BACKPROP,
    KIND_POSE_DELTA,
    KIND_COUNT
};
static const char* const kind_names[KIND_COUNT] = {"a convolution",
                                                   "a backward call",
                                                   "a transpose backward call",
                                                   "the list utilities",
                                                   "a hash table and a fixed-radius search",
                                                   "a radius search",
                                                   "a kNN search",
                                                   "a render",
                                                   "image gradients",
                                                   "a back-propagation",
                                                   "apply_pose_delta"};

/* The message of the last failed call of backward_all / search_table (a later call clears it). */
static char g_saved_error[1024];

/* The backward call of fixture cconv_b with every gradient (the position ones included). */
static geomops_status backward_all(fixture* f, kept* k) {
    const geomops_exec ex = exec_for_test();
    geomops_cconv_args a = GEOMOPS_CCONV_ARGS_INIT;
    geomops_cconv_options o = GEOMOPS_CCONV_OPTIONS_INIT;
    cconv_forward_args(f, &a);
    cconv_options(f, &o);
    geomops_cconv_gradients gr = GEOMOPS_CCONV_GRADIENTS_INIT;
    const void* e;
    size_t b[7];
    gr.filters = out_like(f, "grad_filters", &e, &b[0]);
    gr.inp_features = out_like(f, "grad_inp_features", &e, &b[1]);
    gr.inp_importance = out_like(f, "grad_inp_importance", &e, &b[2]);
    gr.neighbors_importance = out_like(f, "grad_neighbors_importance", &e, &b[3]);
    gr.inp_positions = out_like(f, "grad_inp_positions", &e, &b[4]);
    gr.out_positions = out_like(f, "grad_out_positions", &e, &b[5]);
    gr.extents = out_like(f, "grad_extents", &e, &b[6]);
    const geomops_status st =
        geomops_continuous_conv_backward(&ex, &a, &o, fx_arr(f, "out_features_gradient"), &gr);
    snprintf(g_saved_error, sizeof g_saved_error, "%s", geomops_last_error());
    if (k && st == GEOMOPS_OK) {
        void* outs[7] = {gr.filters,       gr.inp_features,  gr.inp_importance, gr.neighbors_importance,
                         gr.inp_positions, gr.out_positions, gr.extents};
        for (int i = 0; i < 7; ++i) keep(k, outs[i], b[i]);
    }
    return st;
}

/* Phases 1 and 2 of the fixed-radius search of fixture frs_table_float32 (with its hash table). */
static geomops_status search_table(fixture* f, kept* k) {
    const geomops_exec ex = exec_for_test();
    geomops_fixed_radius_args s = GEOMOPS_FIXED_RADIUS_ARGS_INIT;
    SEARCH_COMMON(s, f);
    s.radius = fx_num(f, "radius");
    s.sort = (int)fx_int(f, "sort");
    s.hash_table_index = (const int32_t*)fx_arr(f, "hash_table_index");
    s.hash_table_cell_splits = (const int32_t*)fx_arr(f, "hash_table_cell_splits");
    s.hash_table_splits = (const int32_t*)fx_arr(f, "hash_table_splits");
    s.hash_table_num_cells = fx_int(f, "hash_table_num_cells");
    int64_t* rs = (int64_t*)fx_out(f, (size_t)(s.num_queries + 1) * 8);
    geomops_search* h = NULL;
    geomops_status st = geomops_fixed_radius_search(&ex, &s, rs, &h);
    int64_t total = 0;
    if (st == GEOMOPS_OK) st = geomops_search_total(h, &total);
    void* idx = fx_out(f, (size_t)total * 8);
    void* dist = fx_out(f, (size_t)total * 4);
    if (st == GEOMOPS_OK) st = geomops_search_fill(h, idx, dist);
    snprintf(g_saved_error, sizeof g_saved_error, "%s", geomops_last_error());
    geomops_search_free(h); /* also after a failed phase */
    if (k && st == GEOMOPS_OK) {
        keep(k, rs, (size_t)(s.num_queries + 1) * 8);
        keep(k, idx, (size_t)total * 8);
        keep(k, dist, (size_t)total * 4);
    }
    return st;
}

/* One call (or a few) of each kind, their outputs kept. */
static void run_kind(int kind, kept* k) {
    const geomops_exec ex = exec_for_test();
    fixture f;
    const void* e;
    size_t b, b2, b3;
    switch (kind) {
        case KIND_CONV: {
            if (!fx_open(&f, "cconv_b")) return;
            geomops_cconv_args a = GEOMOPS_CCONV_ARGS_INIT;
            geomops_cconv_options o = GEOMOPS_CCONV_OPTIONS_INIT;
            cconv_forward_args(&f, &a);
            cconv_options(&f, &o);
            void* out = out_like(&f, "expected_out", &e, &b);
            OK(geomops_continuous_conv(&ex, &a, &o, out));
            keep(k, out, b);
            break;
        }
        case KIND_BACKWARD:
            if (!fx_open(&f, "cconv_b")) return;
            OK(backward_all(&f, k));
            break;
        case KIND_TRANSPOSE_BACKWARD: {
            if (!fx_open(&f, "cconvT_d")) return;
            geomops_cconv_transpose_args a = GEOMOPS_CCONV_TRANSPOSE_ARGS_INIT;
            geomops_cconv_options o = GEOMOPS_CCONV_OPTIONS_INIT;
            cconv_transpose_args(&f, &a);
            cconv_options(&f, &o);
            geomops_cconv_transpose_gradients gr = GEOMOPS_CCONV_TRANSPOSE_GRADIENTS_INIT;
            gr.inp_features = out_like(&f, "grad_inp_features", &e, &b);
            gr.extents = out_like(&f, "grad_extents", &e, &b2);
            gr.inp_positions = out_like(&f, "grad_inp_positions", &e, &b3);
            OK(geomops_continuous_conv_transpose_backward(&ex, &a, &o, fx_arr(&f, "out_features_gradient"),
                                                          &gr));
            keep(k, gr.inp_features, b);
            keep(k, gr.extents, b2);
            keep(k, gr.inp_positions, b3);
            break;
        }
        case KIND_LISTS: {
            if (!fx_open(&f, "invert_int64")) return;
            void* idx = out_like(&f, "expected_index", &e, &b);
            int64_t* rs = (int64_t*)out_like(&f, "expected_row_splits", &e, &b2);
            void* attr = out_like(&f, "expected_attributes", &e, &b3);
            OK(geomops_invert_neighbors_list(
                &ex, fx_int(&f, "num_points"), (int)fx_int(&f, "index_type"), fx_arr(&f, "index"),
                fx_int(&f, "num_entries"), (const int64_t*)fx_arr(&f, "row_splits"), fx_int(&f, "num_rows"),
                fx_arr(&f, "attributes"), fx_int(&f, "attribute_bytes"), idx, rs, attr));
            keep(k, idx, b);
            keep(k, rs, b2);
            keep(k, attr, b3);
            break;
        }
        case KIND_HASH_SEARCH: {
            if (!fx_open(&f, "hash_float32")) return;
            geomops_hash_table_args a = GEOMOPS_HASH_TABLE_ARGS_INIT;
            a.dtype = (int)fx_int(&f, "dtype");
            a.num_points = fx_int(&f, "num_points");
            a.points = fx_arr(&f, "points");
            a.batch_size = fx_int(&f, "batch_size");
            a.points_row_splits = (const int64_t*)fx_arr(&f, "points_row_splits");
            a.radius = fx_num(&f, "radius");
            a.hash_table_size_factor = fx_num(&f, "hash_table_size_factor");
            a.max_hash_table_size = fx_int(&f, "max_hash_table_size");
            int64_t cells = 0;
            OK(geomops_spatial_hash_table_size(&ex, &a, &cells));
            int32_t* index = (int32_t*)out_like(&f, "expected_index", &e, &b);
            int32_t* cell = (int32_t*)fx_out(&f, (size_t)(cells + 1) * 4);
            int32_t* splits = (int32_t*)out_like(&f, "expected_splits", &e, &b3);
            OK(geomops_build_spatial_hash_table(&ex, &a, index, cell, splits));
            keep(k, index, b);
            keep(k, cell, (size_t)(cells + 1) * 4);
            keep(k, splits, b3);
            fx_close(&f);
            if (!fx_open(&f, "frs_table_float32")) return;
            OK(search_table(&f, k));
            break;
        }
        case KIND_RADIUS:
        case KIND_KNN: {
            if (!fx_open(&f, kind == KIND_RADIUS ? "rs_sorted_float32" : "knn_k5_float64")) return;
            geomops_radius_search_args r = GEOMOPS_RADIUS_SEARCH_ARGS_INIT;
            geomops_knn_search_args n = GEOMOPS_KNN_SEARCH_ARGS_INIT;
            int64_t* rs = (int64_t*)fx_out(&f, (size_t)(fx_int(&f, "num_queries") + 1) * 8);
            geomops_search* h = NULL;
            if (kind == KIND_RADIUS) {
                SEARCH_COMMON(r, &f);
                r.radii = fx_arr(&f, "radii");
                r.sort = (int)fx_int(&f, "sort");
                OK(geomops_radius_search(&ex, &r, rs, &h));
            } else {
                SEARCH_COMMON(n, &f);
                n.k = fx_int(&f, "k");
                OK(geomops_knn_search(&ex, &n, rs, &h));
            }
            int64_t total = 0;
            if (h) OK(geomops_search_total(h, &total));
            void* idx = fx_out(&f, (size_t)total * 8);
            void* dist = fx_out(&f, (size_t)total * 8);
            if (h) OK(geomops_search_fill(h, idx, dist));
            OK(geomops_search_free(h));
            keep(k, rs, (size_t)(fx_int(&f, "num_queries") + 1) * 8);
            keep(k, idx, (size_t)total * dtype_size((int)fx_int(&f, "index_type")));
            keep(k, dist, (size_t)total * dtype_size((int)fx_int(&f, "dtype")));
            break;
        }
        case KIND_RENDER: {
            if (!fx_open(&f, "render")) return;
            geomops_mesh_instance m[MAX_OBJECTS];
            geomops_render_args ra = GEOMOPS_RENDER_ARGS_INIT;
            render_args(&f, &ra);
            ra.num_instances = scene_instances(&f, m);
            ra.instances = m;
            geomops_render_buffers rb = GEOMOPS_RENDER_BUFFERS_INIT;
            size_t b4;
            rb.rgb = (uint8_t*)out_like(&f, "expected_rgb", &e, &b);
            rb.depth = (float*)out_like(&f, "expected_depth", &e, &b2);
            rb.instance_index = (int16_t*)out_like(&f, "expected_instance_index", &e, &b3);
            rb.object_coordinates = (float*)out_like(&f, "expected_object_coordinates", &e, &b4);
            OK(geomops_render(&ex, &ra, &rb));
            OK(geomops_release_render_cache()); /* the scratch memory kept between calls, given back */
            keep(k, rb.rgb, b);
            keep(k, rb.depth, b2);
            keep(k, rb.instance_index, b3);
            keep(k, rb.object_coordinates, b4);
            break;
        }
        case KIND_IMAGE_GRADIENTS: {
            if (!fx_open(&f, "imggrad_float")) return;
            geomops_image im = GEOMOPS_IMAGE_INIT;
            image_args(&f, &im, 0);
            float* gx = (float*)out_like(&f, "expected_grad_x", &e, &b);
            float* gy = (float*)out_like(&f, "expected_grad_y", &e, &b2);
            uint8_t* valid = (uint8_t*)out_like(&f, "expected_valid", &e, &b3);
            OK(geomops_compute_image_space_gradients(&ex, &im, NULL, gx, gy, valid));
            keep(k, gx, b);
            keep(k, gy, b2);
            keep(k, valid, b3);
            break;
        }
        case KIND_BACKPROP: {
            if (!fx_open(&f, "backprop_exact")) return;
            geomops_image im = GEOMOPS_IMAGE_INIT;
            image_args(&f, &im, 1);
            const int n = (int)fx_int(&f, "num_objects");
            geomops_pose_object objs[MAX_OBJECTS];
            for (int i = 0; i < n && i < MAX_OBJECTS; ++i) {
                char key[64];
                geomops_pose_object init = GEOMOPS_POSE_OBJECT_INIT;
                objs[i] = init;
                snprintf(key, sizeof key, "obj%d_instance_index", i);
                objs[i].instance_index = (int32_t)fx_int(&f, key);
                snprintf(key, sizeof key, "obj%d_transform", i);
                memcpy(objs[i].object_to_camera, fx_arr(&f, key), 16 * sizeof(double));
            }
            geomops_pose_gradients out = GEOMOPS_POSE_GRADIENTS_INIT;
            out.gradients = out_like(&f, "expected_gradients", &e, &b);
            OK(geomops_backpropagate_gradient_to_poses(
                &ex, &im, n, objs, (const double*)fx_arr(&f, "projection"), (int)fx_int(&f, "grad_type"),
                fx_arr(&f, "grad"), NULL, &out));
            keep(k, out.gradients, b);
            break;
        }
        default: {
            if (!fx_open(&f, "delta_f32_bcast")) return;
            geomops_pose_delta_args a = GEOMOPS_POSE_DELTA_ARGS_INIT;
            a.dtype = (int)fx_int(&f, "dtype");
            a.batch = fx_int(&f, "batch");
            a.pose = fx_arr(&f, "pose");
            a.delta_type = (int)fx_int(&f, "delta_type");
            a.delta_batch = fx_int(&f, "delta_batch");
            a.delta = fx_arr(&f, "delta");
            void* out = out_like(&f, "expected", &e, &b);
            OK(geomops_apply_pose_delta(&ex, &a, out));
            keep(k, out, b);
            break;
        }
    }
    fx_close(&f);
}

/* A counting allocator sees every host block come back after each kind of call, and the results
 * are bitwise those of malloc. */
static void test_allocator(void) {
    g_test = "allocator";
    counting_allocator c;
    memset(&c, 0, sizeof c);
    long total = 0;
    for (int kind = 0; kind < KIND_COUNT; ++kind) {
        kept with_malloc = {{0}, {0}, 0}, with_hook = {{0}, {0}, 0};
        OK(geomops_set_allocator(NULL));
        run_kind(kind, &with_malloc);
        counting_use(&c, -1);
        run_kind(kind, &with_hook);
        OK(geomops_set_allocator(NULL));
        counting_balanced(&c, kind_names[kind]);
        total += atomic_load(&c.allocs);
        if (!g_cuda && (kind == KIND_CONV || kind == KIND_BACKWARD || kind == KIND_HASH_SEARCH ||
                        kind == KIND_RENDER || kind == KIND_BACKPROP))
            CHECK(atomic_load(&c.allocs) > 0, "%s allocated nothing through the allocator", kind_names[kind]);
        CHECK(with_malloc.n == with_hook.n && with_hook.n > 0, "%s: %d outputs with malloc, %d with the hook",
              kind_names[kind], with_malloc.n, with_hook.n);
        for (int i = 0; i < with_hook.n && i < with_malloc.n; ++i)
            CHECK(with_malloc.bytes[i] == with_hook.bytes[i] &&
                      !memcmp(with_malloc.p[i], with_hook.p[i], with_hook.bytes[i]),
                  "%s: output %d differs between malloc and the allocator", kind_names[kind], i);
        kept_free(&with_malloc);
        kept_free(&with_hook);
    }
    CHECK(total > 0, "nothing went through the allocator");
}

/* An allocator that fails after n blocks, n = 0, 1, 2, ...: OUT_OF_MEMORY with the bytes in the
 * message and every block given back, until n covers the call and it succeeds. */
static void fail_loop(const char* what, const char* fixture_name, geomops_status (*call)(fixture*, kept*)) {
    counting_allocator c;
    memset(&c, 0, sizeof c);
    int succeeded = 0;
    long n = 0;
    for (; n < 5000 && !succeeded; ++n) {
        fixture f;
        if (!fx_open(&f, fixture_name)) return;
        counting_use(&c, n);
        const geomops_status st = call(&f, NULL);
        const char* msg = g_saved_error;
        OK(geomops_set_allocator(NULL));
        fx_close(&f);
        char after[160];
        snprintf(after, sizeof after, "%s failing after %ld blocks", what, n);
        counting_balanced(&c, after);
        if (st == GEOMOPS_OK) {
            succeeded = 1;
        } else {
            CHECK(st == GEOMOPS_ERROR_OUT_OF_MEMORY && strstr(msg, "bytes"),
                  "%s: %s '%s', expected out of memory naming the bytes", after, geomops_status_string(st),
                  msg);
            if (st != GEOMOPS_ERROR_OUT_OF_MEMORY) return;
        }
    }
    CHECK(succeeded, "%s never succeeded (%ld allocations tried)", what, n);
}

static void test_allocator_failures(void) {
    g_test = "allocator failures";
    fail_loop("a backward call", "cconv_b", backward_all);
    fail_loop("a fixed-radius search", "frs_table_float32", search_table);
    /* bad allocators */
    geomops_allocator a = GEOMOPS_ALLOCATOR_INIT;
    a.free = counting_free;
    BAD(INV, "allocator->alloc is NULL", geomops_set_allocator(&a));
    a.alloc = counting_alloc;
    a.free = NULL;
    BAD(INV, "allocator->free is NULL", geomops_set_allocator(&a));
    a.free = counting_free;
    a.size = 8;
    BAD(GEOMOPS_ERROR_STRUCT_SIZE, "allocator->size is 8", geomops_set_allocator(&a));
    OK(geomops_set_allocator(NULL));
}

/* ---- main -------------------------------------------------------------------------------------- */

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s FIXTURES_DIR [--cuda] [--tolerant]\n", argv[0]);
        return 2;
    }
    g_dir = argv[1];
    for (int i = 2; i < argc; ++i) {
        if (!strcmp(argv[i], "--cuda")) {
            g_cuda = 1;
        } else if (!strcmp(argv[i], "--tolerant")) {
            g_tolerant = 1;
        } else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    test_meta();
    static const char* const cconv[] = {"cconv_a", "cconv_b", "cconv_c", "cconv_d"};
    static const char* const cconv_t[] = {"cconvT_a", "cconvT_b", "cconvT_c", "cconvT_d"};
    for (int i = 0; i < 4; ++i) {
        test_cconv_case(cconv[i]);
        test_cconv_transpose_case(cconv_t[i]);
    }
    test_interrupt("cconv_a");
    test_invert("invert_int32");
    test_invert("invert_int64");
    static const char* const reduce[] = {"reduce_float32", "reduce_float64", "reduce_int32", "reduce_int64"};
    for (int i = 0; i < 4; ++i) test_reduce(reduce[i]);
    static const char* const types[] = {"float32", "float64"};
    for (int t = 0; t < 2; ++t) {
        char name[64];
        static const char* const frs[] = {"plain", "table", "l1", "linf"};
        static const char* const rs[] = {"plain", "norm", "sorted"};
        static const char* const knn[] = {"k5", "k3", "k80"};
        snprintf(name, sizeof name, "hash_%s", types[t]);
        test_hash(name);
        snprintf(name, sizeof name, "hash1_%s", types[t]);
        test_hash(name);
        for (int i = 0; i < 4; ++i) {
            snprintf(name, sizeof name, "frs_%s_%s", frs[i], types[t]);
            test_fixed_radius(name);
        }
        for (int i = 0; i < 3; ++i) {
            snprintf(name, sizeof name, "rs_%s_%s", rs[i], types[t]);
            test_radius(name);
            snprintf(name, sizeof name, "knn_%s_%s", knn[i], types[t]);
            test_knn(name);
        }
    }
    test_render();
    test_projection();
    test_image_gradients("imggrad_zero_cuda");
    test_image_gradients("imggrad_repl_cpu");
    test_image_gradients("imggrad_float");
    test_backprop("backprop_exact");
    test_backprop("backprop_compat");
    static const char* const delta[] = {"delta_f64", "delta_f32_bcast", "delta_raw", "delta_reflect"};
    for (int i = 0; i < 4; ++i) test_pose_delta(delta[i]);
    test_threads();
    test_bad_arguments();
    test_allocator();
    test_allocator_failures();
    g_test = "release";
    OK(geomops_release_cuda_cache()); /* device blocks kept for reuse (none on the CPU) */
    OK(geomops_release_render_cache());
    printf("%s: %d checks, %d failures (%s, libgeomops %s)\n", g_failures ? "FAILED" : "ok", g_checks,
           g_failures, g_cuda ? "CUDA device 0" : "CPU", geomops_version_string());
    return g_failures ? 1 : 0;
}
