/* The continuous-convolution family of the C API: the argument checks of
 * pyx/geomops/_cconv_args.py and the orchestration of pyx/geomops/cconv.py (the backward
 * functions: filter gradient, inverted list, transpose convolution with swapped channels and
 * inverted weights, neighbor products, importance gradients), on the CPU and CUDA launchers of
 * geomops/cconv.h and geomops/cconv_cuda.h. */
#include <stdio.h>
#include <string.h>

#include "capi.h"
#include "geomops/cconv.h"
#if defined(GEOMOPS_CAPI_CUDA)
#include "geomops/array_ops.h"
#include "geomops/cconv_cuda.h"
#endif

/* One validated forward (transpose = 0) or transpose (1) call: Python's ConvCall. */
typedef struct cc_call {
    int transpose, dtype, idx64;
    int64_t D, H, W, Cin, Cout, No, Ni, E, ext_rows, ext_cols;
    const void *filters, *out_pos, *inp_pos, *extents, *offset, *feat;
    const void *inp_imp, *out_imp, *nb_idx, *nb_imp, *inp_nb_imp_sum;
    const int64_t *nb_rs, *inp_nb_rs;
} cc_call;

typedef struct cc_opts {
    int align, mapping, interp, normalize, out_dtype, tf32;
    int64_t max_temp_bytes;
} cc_opts;

static int64_t cc_filter_size(const cc_call* k) {
    return gm_mul(gm_mul(gm_mul(gm_mul(k->D, k->H), k->W), k->Cin), k->Cout);
}

/* ---- validation ------------------------------------------------------------------------------- */

static geomops_status cc_options(const geomops_cconv_options* in, int dtype, cc_opts* o) {
    geomops_cconv_options opt = GEOMOPS_CCONV_OPTIONS_INIT;
    if (in) GM_TRY(GM_READ(&opt, in, "options", geomops_cconv_options));
    GM_TRY(gm_chk_flag(opt.align_corners, "options->align_corners"));
    GM_TRY(gm_chk_enum(opt.coordinate_mapping, 0, 2, "options->coordinate_mapping",
                       "GEOMOPS_MAP_BALL_TO_CUBE_RADIAL, GEOMOPS_MAP_BALL_TO_CUBE_VOLUME_PRESERVING or "
                       "GEOMOPS_MAP_IDENTITY"));
    GM_TRY(gm_chk_flag(opt.normalize, "options->normalize"));
    GM_TRY(gm_chk_enum(
        opt.interpolation, 0, 2, "options->interpolation",
        "GEOMOPS_INTERP_LINEAR, GEOMOPS_INTERP_LINEAR_BORDER or GEOMOPS_INTERP_NEAREST_NEIGHBOR"));
    GM_TRY(gm_chk_count(opt.max_temp_mem_mb, "options->max_temp_mem_mb"));
    GM_TRY(gm_chk_flag(opt.allow_tf32, "options->allow_tf32"));
    o->out_dtype = dtype;
    if (opt.output_type != GEOMOPS_DTYPE_DEFAULT)
        GM_TRY(gm_chk_float_type(opt.output_type, "options->output_type (or GEOMOPS_DTYPE_DEFAULT)",
                                 &o->out_dtype));
    o->align = opt.align_corners;
    o->mapping = opt.coordinate_mapping;
    o->interp = opt.interpolation;
    o->normalize = opt.normalize;
    o->tf32 = opt.allow_tf32;
    const int64_t mb = opt.max_temp_mem_mb < ((int64_t)1 << 40) ? opt.max_temp_mem_mb : ((int64_t)1 << 40);
    o->max_temp_bytes = mb * ((int64_t)1 << 20);
    return GEOMOPS_OK;
}

/* The shape checks both ops share (_common of _cconv_args.py). filters may be NULL when the
 * call reads only their shape (the filter gradients). */
static geomops_status cc_common(const gm_ctx* c, cc_call* k, int filters_needed) {
    if (k->D < 1 || k->H < 1 || k->W < 1 || k->Cin < 1 || k->Cout < 1)
        return gm_fail(
            GEOMOPS_ERROR_INVALID_ARGUMENT,
            "filters must have shape [depth, height, width, in_channels, out_channels] with each filter "
            "dimension >= 1, got shape [%lld, %lld, %lld, %lld, %lld] (args->filter_depth, "
            "filter_height, filter_width, in_channels, out_channels)",
            (long long)k->D, (long long)k->H, (long long)k->W, (long long)k->Cin, (long long)k->Cout);
    GM_TRY(gm_chk_count(k->No, "args->num_out"));
    GM_TRY(gm_chk_count(k->Ni, "args->num_inp"));
    GM_TRY(gm_chk_count(k->E, "args->num_neighbors"));
    const int64_t fsize = cc_filter_size(k);
    if (fsize < 0 || gm_mul(k->No, 3) < 0 || gm_mul(k->Ni, 3) < 0 || gm_mul(k->Ni, k->Cin) < 0 ||
        gm_mul(k->No, k->Cout) < 0)
        return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "the array sizes of args overflow int64");
    if (filters_needed) GM_TRY(gm_chk_array(c, k->filters, fsize, "args->filters"));
    GM_TRY(gm_chk_array(c, k->out_pos, k->No * 3, "args->out_positions"));
    GM_TRY(gm_chk_array(c, k->inp_pos, k->Ni * 3, "args->inp_positions"));
    GM_TRY(gm_chk_array(c, k->feat, k->Ni * k->Cin, "args->inp_features"));
    const int64_t rows = k->transpose ? k->Ni : k->No;
    const char* rows_name = k->transpose ? "num_inp" : "num_out";
    if ((k->ext_rows != 1 && k->ext_rows != rows) || (k->ext_cols != 1 && k->ext_cols != 3))
        return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT,
                       "extents must have shape [1, 1], [1, 3], [%s, 1] or [%s, 3] with %s = %lld, got shape "
                       "[%lld, %lld] (args->extents_rows, args->extents_cols)",
                       rows_name, rows_name, rows_name, (long long)rows, (long long)k->ext_rows,
                       (long long)k->ext_cols);
    GM_TRY(gm_chk_array(c, k->extents, k->ext_rows * k->ext_cols, "args->extents"));
    GM_TRY(gm_chk_finite(c, k->extents, k->dtype, k->ext_rows * k->ext_cols, GM_POSITIVE,
                         "extents must be finite and > 0"));
    GM_TRY(gm_chk_array(c, k->offset, 3, "args->offset"));
    GM_TRY(gm_chk_array(c, k->nb_idx, k->E, "args->neighbors_index"));
    GM_TRY(gm_chk_row_splits(c, k->nb_rs, k->No, k->E, "args->neighbors_row_splits", "num_neighbors"));
    GM_TRY(gm_chk_indices(c, k->nb_idx, k->idx64, k->E, k->Ni, "args->neighbors_index", "num_inp"));
    GM_TRY(gm_chk_optional(c, k->nb_imp, "args->neighbors_importance"));
    return GEOMOPS_OK;
}

static geomops_status cc_forward(const gm_ctx* c, const geomops_cconv_args* in, cc_call* k,
                                 int filters_needed) {
    geomops_cconv_args a = GEOMOPS_CCONV_ARGS_INIT;
    GM_TRY(GM_READ(&a, in, "args", geomops_cconv_args));
    memset(k, 0, sizeof *k);
    GM_TRY(gm_chk_float_type(a.dtype, "args->dtype", &k->dtype));
    GM_TRY(gm_chk_index_type(a.index_type, "args->index_type", &k->idx64));
    k->D = a.filter_depth;
    k->H = a.filter_height;
    k->W = a.filter_width;
    k->Cin = a.in_channels;
    k->Cout = a.out_channels;
    k->No = a.num_out;
    k->Ni = a.num_inp;
    k->E = a.num_neighbors;
    k->ext_rows = a.extents_rows;
    k->ext_cols = a.extents_cols;
    k->filters = a.filters;
    k->out_pos = a.out_positions;
    k->inp_pos = a.inp_positions;
    k->extents = a.extents;
    k->offset = a.offset;
    k->feat = a.inp_features;
    k->inp_imp = a.inp_importance;
    k->nb_idx = a.neighbors_index;
    k->nb_imp = a.neighbors_importance;
    k->nb_rs = a.neighbors_row_splits;
    GM_TRY(cc_common(c, k, filters_needed));
    return gm_chk_optional(c, k->inp_imp, "args->inp_importance");
}

static geomops_status cc_transpose(const gm_ctx* c, const geomops_cconv_transpose_args* in, cc_call* k,
                                   int filters_needed) {
    geomops_cconv_transpose_args a = GEOMOPS_CCONV_TRANSPOSE_ARGS_INIT;
    GM_TRY(GM_READ(&a, in, "args", geomops_cconv_transpose_args));
    memset(k, 0, sizeof *k);
    if ((a.neighbors_importance == NULL) != (a.inp_neighbors_importance_sum == NULL))
        return gm_fail(
            GEOMOPS_ERROR_INVALID_ARGUMENT,
            "neighbors_importance and inp_neighbors_importance_sum must be both given or both absent "
            "(NULL); got %s",
            a.neighbors_importance == NULL ? "inp_neighbors_importance_sum without neighbors_importance"
                                           : "neighbors_importance without inp_neighbors_importance_sum");
    k->transpose = 1;
    GM_TRY(gm_chk_float_type(a.dtype, "args->dtype", &k->dtype));
    GM_TRY(gm_chk_index_type(a.index_type, "args->index_type", &k->idx64));
    k->D = a.filter_depth;
    k->H = a.filter_height;
    k->W = a.filter_width;
    k->Cin = a.in_channels;
    k->Cout = a.out_channels;
    k->No = a.num_out;
    k->Ni = a.num_inp;
    k->E = a.num_neighbors;
    k->ext_rows = a.extents_rows;
    k->ext_cols = a.extents_cols;
    k->filters = a.filters;
    k->out_pos = a.out_positions;
    k->inp_pos = a.inp_positions;
    k->extents = a.extents;
    k->offset = a.offset;
    k->feat = a.inp_features;
    k->out_imp = a.out_importance;
    k->nb_idx = a.neighbors_index;
    k->nb_imp = a.neighbors_importance;
    k->nb_rs = a.neighbors_row_splits;
    k->inp_nb_imp_sum = a.inp_neighbors_importance_sum;
    k->inp_nb_rs = a.inp_neighbors_row_splits;
    GM_TRY(cc_common(c, k, filters_needed));
    GM_TRY(gm_chk_optional(c, k->out_imp, "args->out_importance"));
    GM_TRY(gm_chk_optional(c, k->inp_nb_imp_sum, "args->inp_neighbors_importance_sum"));
    if (a.inp_neighbors_index) {
        GM_TRY(gm_chk_optional(c, a.inp_neighbors_index, "args->inp_neighbors_index"));
        GM_TRY(gm_chk_indices(c, a.inp_neighbors_index, k->idx64, k->E, k->No, "args->inp_neighbors_index",
                              "num_out"));
    }
    return gm_chk_row_splits(c, k->inp_nb_rs, k->Ni, k->E, "args->inp_neighbors_row_splits", "num_neighbors");
}

/* ---- kernel calls ----------------------------------------------------------------------------- */

enum { CC_APPLY, CC_FILTER, CC_NORMALIZERS };

static void cc_params(const gm_ctx* c, const cc_call* k, const cc_opts* o, int normalize, const void* g,
                      void* output, gm_cconv_params* p) {
    memset(p, 0, sizeof *p);
    p->dtype = k->dtype;
    p->index_int64 = k->idx64;
    p->transpose = k->transpose;
    p->num_out = k->No;
    p->num_inp = k->Ni;
    p->in_channels = k->Cin;
    p->out_channels = k->Cout;
    p->filter_depth = (int)k->D;
    p->filter_height = (int)k->H;
    p->filter_width = (int)k->W;
    p->filters = gm_nz(c, k->filters);
    p->out_positions = gm_nz(c, k->out_pos);
    p->inp_positions = gm_nz(c, k->inp_pos);
    p->extents = gm_nz(c, k->extents);
    p->extents_rows = k->ext_rows;
    p->extents_cols = (int)k->ext_cols;
    p->offset = k->offset;
    p->inp_features = gm_nz(c, k->feat);
    p->inp_importance = k->inp_imp;
    p->out_importance = k->out_imp;
    p->neighbors_index = gm_nz(c, k->nb_idx);
    p->neighbors_importance = k->nb_imp;
    p->neighbors_row_splits = k->nb_rs;
    p->inp_neighbors_importance_sum = k->inp_nb_imp_sum;
    p->inp_neighbors_row_splits = k->inp_nb_rs;
    p->align_corners = o->align;
    p->coordinate_mapping = o->mapping;
    p->interpolation = o->interp;
    p->normalize = normalize;
    p->out_features_gradient = gm_nz(c, g);
    p->output = (void*)gm_nz(c, output);
    p->max_temp_bytes = o->max_temp_bytes;
    p->num_threads = c->num_threads;
    p->allow_tf32 = o->tf32;
}

static geomops_status cc_run(const gm_ctx* c, int mode, const cc_call* k, const cc_opts* o, int normalize,
                             const void* g, void* output, uint8_t* was_zero) {
    gm_cconv_params p;
    cc_params(c, k, o, normalize, g, output, &p);
    static const char* const names[] = {"continuous convolution", "filter gradient", "normalizers"};
    int st;
    if (c->cuda) {
        st = mode == CC_APPLY ? GM_CUDA_ONLY(gm_cconv_apply_cuda(&p, c->stream))
             : mode == CC_FILTER
                 ? GM_CUDA_ONLY(gm_cconv_backprop_filter_cuda(&p, c->stream))
                 : GM_CUDA_ONLY(gm_cconv_normalizers_cuda(&p, (double*)output, was_zero, c->stream));
    } else {
        st = mode == CC_APPLY    ? gm_cconv_apply_cpu(&p)
             : mode == CC_FILTER ? gm_cconv_backprop_filter_cpu(&p)
                                 : gm_cconv_normalizers_cpu(&p, (double*)p.output, was_zero);
    }
    return gm_kernel(st, names[mode]);
}

/* The per-entry pass of the backward functions (Python's _entry_grads): into each non-NULL
 * float64 output, the neighbor products [E], d L / d(relative position) [E, 3] and
 * d L / d(extent) [E, extents_cols]. */
static geomops_status entry_grads_run(const gm_ctx* c, const cc_call* k, const cc_opts* o, const void* g,
                                      double* products, double* positions, double* extents) {
    gm_cconv_params p;
    cc_params(c, k, o, o->normalize, g, NULL, &p);
    p.output = products; /* NULL (not gm_nz's placeholder): the kernel skips what is not wanted */
    p.entry_position_grads = positions;
    p.entry_extent_grads = extents;
    int st = c->cuda ? GM_CUDA_ONLY(gm_cconv_neighbor_products_cuda(&p, c->stream))
                     : gm_cconv_neighbor_products_cpu(&p);
    return gm_kernel(st, "neighbor products");
}

/* An output in the output dtype: the kernels write the call's dtype, so a different output_type
 * goes through a temporary (Python's _cast). */
typedef struct cc_out {
    void* user;
    void* target;
    int64_t n;
} cc_out;

static geomops_status out_begin(gm_arena* ar, cc_out* out, void* user, int64_t n, int dtype, int out_dtype) {
    geomops_status st = GEOMOPS_OK;
    out->user = user;
    out->n = n;
    out->target = user;
    if (user && dtype != out_dtype) out->target = gm_arena_alloc(ar, n, gm_fsize(dtype), "an output", &st);
    return st;
}

static geomops_status out_finish(const gm_ctx* c, const cc_out* out, int dtype, int out_dtype) {
    if (!out->user || dtype == out_dtype) return GEOMOPS_OK;
    return gm_cast(c, dtype, out->target, out_dtype, out->user, out->n);
}

/* ---- forward, transpose and filter gradients ------------------------------------------------- */

static geomops_status cc_single(const gm_ctx* c, int mode, const cc_call* k, const cc_opts* o, const void* g,
                                void* user, const char* user_name) {
    const int64_t n = mode == CC_APPLY ? k->No * k->Cout : cc_filter_size(k);
    if (mode == CC_FILTER) {
        GM_TRY(gm_chk_array(c, g, k->No * k->Cout, "out_features_gradient"));
    }
    GM_TRY(gm_chk_array(c, user, n, user_name));
    gm_arena ar;
    gm_arena_init(&ar, c);
    cc_out out;
    geomops_status st = out_begin(&ar, &out, user, n, k->dtype, o->out_dtype);
    if (st == GEOMOPS_OK) st = cc_run(c, mode, k, o, o->normalize, g, out.target, NULL);
    if (st == GEOMOPS_OK) st = out_finish(c, &out, k->dtype, o->out_dtype);
    return gm_arena_free(&ar, st);
}

GEOMOPS_API geomops_status geomops_continuous_conv(const geomops_exec* exec, const geomops_cconv_args* args,
                                                   const geomops_cconv_options* options, void* out_features) {
    gm_enter("geomops_continuous_conv");
    gm_ctx c;
    GM_TRY(gm_begin(&c, exec));
    cc_call k;
    cc_opts o;
    geomops_status st = cc_forward(&c, args, &k, 1);
    if (st == GEOMOPS_OK) st = cc_options(options, k.dtype, &o);
    if (st == GEOMOPS_OK) st = cc_single(&c, CC_APPLY, &k, &o, NULL, out_features, "out_features");
    gm_end(&c);
    return st;
}

GEOMOPS_API geomops_status geomops_continuous_conv_transpose(const geomops_exec* exec,
                                                             const geomops_cconv_transpose_args* args,
                                                             const geomops_cconv_options* options,
                                                             void* out_features) {
    gm_enter("geomops_continuous_conv_transpose");
    gm_ctx c;
    GM_TRY(gm_begin(&c, exec));
    cc_call k;
    cc_opts o;
    geomops_status st = cc_transpose(&c, args, &k, 1);
    if (st == GEOMOPS_OK) st = cc_options(options, k.dtype, &o);
    if (st == GEOMOPS_OK) st = cc_single(&c, CC_APPLY, &k, &o, NULL, out_features, "out_features");
    gm_end(&c);
    return st;
}

GEOMOPS_API geomops_status geomops_continuous_conv_backprop_filter(const geomops_exec* exec,
                                                                   const geomops_cconv_args* args,
                                                                   const geomops_cconv_options* options,
                                                                   const void* out_features_gradient,
                                                                   void* filters_gradient) {
    gm_enter("geomops_continuous_conv_backprop_filter");
    gm_ctx c;
    GM_TRY(gm_begin(&c, exec));
    cc_call k;
    cc_opts o;
    geomops_status st = cc_forward(&c, args, &k, 0);
    if (st == GEOMOPS_OK) st = cc_options(options, k.dtype, &o);
    if (st == GEOMOPS_OK)
        st = cc_single(&c, CC_FILTER, &k, &o, out_features_gradient, filters_gradient, "filters_gradient");
    gm_end(&c);
    return st;
}

GEOMOPS_API geomops_status geomops_continuous_conv_transpose_backprop_filter(
    const geomops_exec* exec, const geomops_cconv_transpose_args* args, const geomops_cconv_options* options,
    const void* out_features_gradient, void* filters_gradient) {
    gm_enter("geomops_continuous_conv_transpose_backprop_filter");
    gm_ctx c;
    GM_TRY(gm_begin(&c, exec));
    cc_call k;
    cc_opts o;
    geomops_status st = cc_transpose(&c, args, &k, 0);
    if (st == GEOMOPS_OK) st = cc_options(options, k.dtype, &o);
    if (st == GEOMOPS_OK)
        st = cc_single(&c, CC_FILTER, &k, &o, out_features_gradient, filters_gradient, "filters_gradient");
    gm_end(&c);
    return st;
}

/* ---- the one-call backward functions ---------------------------------------------------------- */

/* What a backward call computes: the user's output buffers (NULL: not wanted). */
typedef struct cc_grads {
    void* filters;
    void* features;
    void* point_imp; /* forward: d inp_importance [Ni]; transpose: d out_importance [No] */
    void* nb_imp;    /* [E] */
    void* imp_sum;   /* transpose: d inp_neighbors_importance_sum [Ni] */
    void* inp_pos;   /* [Ni, 3] */
    void* out_pos;   /* [No, 3] */
    void* extents;   /* [ext_rows, ext_cols] */
} cc_grads;

static geomops_status invert_run(const gm_ctx* c, int64_t num_points, int idx64, const void* index,
                                 const int64_t* row_splits, int64_t rows, int64_t entries, void* out_index,
                                 int64_t* out_splits, int64_t* perm) {
    gm_invert_params p;
    memset(&p, 0, sizeof p);
    p.num_points = num_points;
    p.num_rows = rows;
    p.num_entries = entries;
    p.index_int64 = idx64;
    p.index = gm_nz(c, index);
    p.row_splits = row_splits;
    p.out_index = (void*)gm_nz(c, out_index);
    p.out_row_splits = out_splits;
    p.out_permutation = (int64_t*)gm_nz(c, perm);
    int st = c->cuda ? GM_CUDA_ONLY(gm_invert_neighbors_cuda(&p, c->stream)) : gm_invert_neighbors_cpu(&p);
    return gm_kernel(st, "the neighbor list inversion");
}

static geomops_status grad_run(const gm_ctx* c, int weights, gm_cconv_grad_params* p) {
    int st;
    if (c->cuda)
        st = weights ? GM_CUDA_ONLY(gm_cconv_inverted_weights_cuda(p, c->stream))
                     : GM_CUDA_ONLY(gm_cconv_importance_grads_cuda(p, c->stream));
    else
        st = weights ? gm_cconv_inverted_weights_cpu(p) : gm_cconv_importance_grads_cpu(p);
    return gm_kernel(st, weights ? "the inverted weights" : "the importance gradients");
}

static geomops_status position_run(const gm_ctx* c, gm_cconv_grad_params* p) {
    int st =
        c->cuda ? GM_CUDA_ONLY(gm_cconv_position_grads_cuda(p, c->stream)) : gm_cconv_position_grads_cpu(p);
    return gm_kernel(st, "the position gradients");
}

static geomops_status swap_run(const gm_ctx* c, const cc_call* k, void* out) {
    const int64_t cells = k->D * k->H * k->W;
    int st = c->cuda ? GM_CUDA_ONLY(gm_cconv_swap_channels_cuda(k->dtype, k->filters, cells, k->Cin, k->Cout,
                                                                out, c->stream))
                     : gm_cconv_swap_channels_cpu(k->dtype, k->filters, cells, k->Cin, k->Cout, out,
                                                  c->num_threads);
    return gm_kernel(st, "the filter channel swap");
}

/* Python's continuous_conv_backward (k->transpose = 0) and continuous_conv_transpose_backward
 * (1), each gradient only when its buffer is given. */
static geomops_status cc_backward(const gm_ctx* c, const cc_call* k, const cc_opts* o, const void* g,
                                  const cc_grads* u) {
    const int tr = k->transpose;
    const void* point_imp = tr ? k->out_imp : k->inp_imp;
    const int64_t point_rows = tr ? k->No : k->Ni;
    const char* point_name = tr ? "out_importance" : "inp_importance";
    GM_TRY(gm_chk_array(c, g, k->No * k->Cout, "out_features_gradient"));
    if (u->point_imp && !point_imp)
        return gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT,
                       "gradients->%s must be NULL: args->%s is NULL (there is no such gradient)", point_name,
                       point_name);
    if ((u->nb_imp || u->imp_sum) && !k->nb_imp)
        return gm_fail(
            GEOMOPS_ERROR_INVALID_ARGUMENT,
            "gradients->%s must be NULL: args->neighbors_importance is NULL (there is no such gradient)",
            u->nb_imp ? "neighbors_importance" : "inp_neighbors_importance_sum");
    GM_TRY(gm_chk_array(c, u->filters, u->filters ? cc_filter_size(k) : 0, "gradients->filters"));
    GM_TRY(gm_chk_array(c, u->features, u->features ? k->Ni * k->Cin : 0, "gradients->inp_features"));
    GM_TRY(gm_chk_optional(c, u->point_imp, tr ? "gradients->out_importance" : "gradients->inp_importance"));
    GM_TRY(gm_chk_optional(c, u->nb_imp, "gradients->neighbors_importance"));
    GM_TRY(gm_chk_optional(c, u->imp_sum, "gradients->inp_neighbors_importance_sum"));
    GM_TRY(gm_chk_optional(c, u->inp_pos, "gradients->inp_positions"));
    GM_TRY(gm_chk_optional(c, u->out_pos, "gradients->out_positions"));
    GM_TRY(gm_chk_optional(c, u->extents, "gradients->extents"));

    gm_arena ar;
    gm_arena_init(&ar, c);
    geomops_status st = GEOMOPS_OK;
    const int dt = k->dtype, odt = o->out_dtype;
    const size_t fs = gm_fsize(dt);
    cc_out d_filters, d_features, d_point, d_nb, d_sum, d_inp_pos, d_out_pos, d_ext;
    st = out_begin(&ar, &d_filters, u->filters, cc_filter_size(k), dt, odt);
    if (st == GEOMOPS_OK) st = out_begin(&ar, &d_features, u->features, k->Ni * k->Cin, dt, odt);
    if (st == GEOMOPS_OK) st = out_begin(&ar, &d_point, u->point_imp, point_rows, dt, odt);
    if (st == GEOMOPS_OK) st = out_begin(&ar, &d_nb, u->nb_imp, k->E, dt, odt);
    if (st == GEOMOPS_OK) st = out_begin(&ar, &d_sum, u->imp_sum, k->Ni, dt, odt);
    if (st == GEOMOPS_OK) st = out_begin(&ar, &d_inp_pos, u->inp_pos, k->Ni * 3, dt, odt);
    if (st == GEOMOPS_OK) st = out_begin(&ar, &d_out_pos, u->out_pos, k->No * 3, dt, odt);
    if (st == GEOMOPS_OK) st = out_begin(&ar, &d_ext, u->extents, k->ext_rows * k->ext_cols, dt, odt);
    if (st != GEOMOPS_OK) return gm_arena_free(&ar, st);

    if (u->filters) st = cc_run(c, CC_FILTER, k, o, o->normalize, g, d_filters.target, NULL);

    const int want_imp = u->point_imp || u->nb_imp || u->imp_sum;
    const int want_pos = u->inp_pos || u->out_pos || u->extents;
    const int want_weights = u->features && (tr || k->nb_imp || o->normalize);
    double* divisor = NULL;
    uint8_t* was_zero = NULL;
    if (st == GEOMOPS_OK && o->normalize && (want_weights || want_imp)) {
        const int64_t rows = tr ? k->Ni : k->No;
        divisor = (double*)gm_arena_alloc(&ar, rows, sizeof(double), "the normalizers", &st);
        if (st == GEOMOPS_OK) was_zero = (uint8_t*)gm_arena_alloc(&ar, rows, 1, "the normalizers", &st);
        if (st == GEOMOPS_OK) st = cc_run(c, CC_NORMALIZERS, k, o, o->normalize, NULL, divisor, was_zero);
    }
    void* inv_index = NULL;
    int64_t *inv_splits = NULL, *perm = NULL;
    if (st == GEOMOPS_OK && (u->features || want_imp || want_pos)) {
        inv_index = gm_arena_alloc(&ar, k->E, k->idx64 ? 8 : 4, "the inverted neighbor list", &st);
        if (st == GEOMOPS_OK)
            inv_splits =
                (int64_t*)gm_arena_alloc(&ar, k->Ni + 1, sizeof(int64_t), "the inverted neighbor list", &st);
        if (st == GEOMOPS_OK)
            perm = (int64_t*)gm_arena_alloc(&ar, k->E, sizeof(int64_t), "the inverted neighbor list", &st);
        if (st == GEOMOPS_OK)
            st =
                invert_run(c, k->Ni, k->idx64, k->nb_idx, k->nb_rs, k->No, k->E, inv_index, inv_splits, perm);
    }
    gm_cconv_grad_params gp;
    memset(&gp, 0, sizeof gp);
    gp.dtype = dt;
    gp.index_int64 = k->idx64;
    gp.transpose = tr;
    gp.num_out = k->No;
    gp.num_inp = k->Ni;
    gp.num_entries = k->E;
    gp.neighbors_index = gm_nz(c, k->nb_idx);
    gp.neighbors_row_splits = k->nb_rs;
    gp.neighbors_importance = k->nb_imp;
    gp.divisor = divisor;
    gp.inv_index = gm_nz(c, inv_index);
    gp.inv_row_splits = inv_splits;
    gp.inv_permutation = (const int64_t*)gm_nz(c, perm);
    gp.num_threads = c->num_threads;

    /* d inp_features: the other op (filters Cin <-> Cout) over the inverted list, each entry's
     * weight (imp_n / psi or imp_n / phi) folded into its importance: no normalisation redone */
    if (st == GEOMOPS_OK && u->features) {
        void* weights = NULL;
        if (want_weights) {
            weights = gm_arena_alloc(&ar, k->E, fs, "the inverted weights", &st);
            gp.inv_weights = (void*)gm_nz(c, weights);
            if (st == GEOMOPS_OK) st = grad_run(c, 1, &gp);
            gp.inv_weights = NULL;
        }
        void* swapped = NULL;
        if (st == GEOMOPS_OK)
            swapped = gm_arena_alloc(&ar, cc_filter_size(k), fs, "the swapped filters", &st);
        if (st == GEOMOPS_OK) st = swap_run(c, k, swapped);
        if (st == GEOMOPS_OK) {
            cc_call t;
            memset(&t, 0, sizeof t);
            t.transpose = !tr;
            t.dtype = dt;
            t.idx64 = k->idx64;
            t.D = k->D;
            t.H = k->H;
            t.W = k->W;
            t.Cin = k->Cout;
            t.Cout = k->Cin;
            t.No = k->Ni;
            t.Ni = k->No;
            t.E = k->E;
            t.ext_rows = k->ext_rows;
            t.ext_cols = k->ext_cols;
            t.filters = swapped;
            t.out_pos = k->inp_pos;
            t.inp_pos = k->out_pos;
            t.extents = k->extents;
            t.offset = k->offset;
            t.feat = g;
            if (tr)
                t.inp_imp = k->out_imp;
            else
                t.out_imp = k->inp_imp;
            t.nb_idx = inv_index;
            t.nb_imp = weights;
            t.nb_rs = inv_splits;
            if (!tr) t.inp_nb_rs = k->nb_rs;
            st = cc_run(c, CC_APPLY, &t, o, 0, NULL, d_features.target, NULL);
        }
    }
    /* per entry, in one pass: the products the importance gradients need, d L / d(relative
     * position) and d L / d(extent) */
    double *products = NULL, *entry_pos = NULL, *entry_ext = NULL;
    if (st == GEOMOPS_OK && want_imp)
        products = (double*)gm_arena_alloc(&ar, k->E, sizeof(double), "the neighbor products", &st);
    if (st == GEOMOPS_OK && want_pos)
        entry_pos =
            (double*)gm_arena_alloc(&ar, k->E * 3, sizeof(double), "the entry position gradients", &st);
    if (st == GEOMOPS_OK && u->extents)
        entry_ext = (double*)gm_arena_alloc(&ar, k->E * k->ext_cols, sizeof(double),
                                            "the entry extent gradients", &st);
    if (st == GEOMOPS_OK && (want_imp || want_pos))
        st = entry_grads_run(c, k, o, g, products, entry_pos, entry_ext);
    if (st == GEOMOPS_OK && want_imp) {
        gp.point_importance = point_imp;
        gp.was_zero = was_zero;
        gp.products = (const double*)gm_nz(c, products);
        gp.d_point_importance = d_point.target;
        gp.d_neighbors_importance = d_nb.user ? (void*)gm_nz(c, d_nb.target) : NULL;
        gp.d_importance_sum = d_sum.target;
        st = grad_run(c, 0, &gp);
    }
    if (st == GEOMOPS_OK && want_pos) {
        gp.point_importance = NULL;
        gp.products = NULL;
        gp.d_point_importance = gp.d_neighbors_importance = gp.d_importance_sum = NULL;
        gp.entry_position_grads = (const double*)gm_nz(c, entry_pos);
        gp.entry_extent_grads = entry_ext ? (const double*)gm_nz(c, entry_ext) : NULL;
        gp.extents_rows = k->ext_rows;
        gp.extents_cols = (int)k->ext_cols;
        gp.d_out_positions = d_out_pos.target;
        gp.d_inp_positions = d_inp_pos.target;
        gp.d_extents = d_ext.target;
        st = position_run(c, &gp);
    }
    if (st == GEOMOPS_OK) st = out_finish(c, &d_filters, dt, odt);
    if (st == GEOMOPS_OK) st = out_finish(c, &d_features, dt, odt);
    if (st == GEOMOPS_OK) st = out_finish(c, &d_point, dt, odt);
    if (st == GEOMOPS_OK) st = out_finish(c, &d_nb, dt, odt);
    if (st == GEOMOPS_OK) st = out_finish(c, &d_sum, dt, odt);
    if (st == GEOMOPS_OK) st = out_finish(c, &d_inp_pos, dt, odt);
    if (st == GEOMOPS_OK) st = out_finish(c, &d_out_pos, dt, odt);
    if (st == GEOMOPS_OK) st = out_finish(c, &d_ext, dt, odt);
    return gm_arena_free(&ar, st);
}

GEOMOPS_API geomops_status geomops_continuous_conv_backward(const geomops_exec* exec,
                                                            const geomops_cconv_args* args,
                                                            const geomops_cconv_options* options,
                                                            const void* out_features_gradient,
                                                            const geomops_cconv_gradients* gradients) {
    gm_enter("geomops_continuous_conv_backward");
    gm_ctx c;
    GM_TRY(gm_begin(&c, exec));
    cc_call k;
    cc_opts o;
    geomops_cconv_gradients g = GEOMOPS_CCONV_GRADIENTS_INIT;
    geomops_status st = cc_forward(&c, args, &k, 1);
    if (st == GEOMOPS_OK) st = cc_options(options, k.dtype, &o);
    if (st == GEOMOPS_OK) st = GM_READ_V2(&g, gradients, "gradients", geomops_cconv_gradients, inp_positions);
    if (st == GEOMOPS_OK) {
        cc_grads u = {g.filters, g.inp_features,  g.inp_importance, g.neighbors_importance,
                      NULL,      g.inp_positions, g.out_positions,  g.extents};
        st = cc_backward(&c, &k, &o, out_features_gradient, &u);
    }
    gm_end(&c);
    return st;
}

GEOMOPS_API geomops_status geomops_continuous_conv_transpose_backward(
    const geomops_exec* exec, const geomops_cconv_transpose_args* args, const geomops_cconv_options* options,
    const void* out_features_gradient, const geomops_cconv_transpose_gradients* gradients) {
    gm_enter("geomops_continuous_conv_transpose_backward");
    gm_ctx c;
    GM_TRY(gm_begin(&c, exec));
    cc_call k;
    cc_opts o;
    geomops_cconv_transpose_gradients g = GEOMOPS_CCONV_TRANSPOSE_GRADIENTS_INIT;
    geomops_status st = cc_transpose(&c, args, &k, 1);
    if (st == GEOMOPS_OK) st = cc_options(options, k.dtype, &o);
    if (st == GEOMOPS_OK)
        st = GM_READ_V2(&g, gradients, "gradients", geomops_cconv_transpose_gradients, inp_positions);
    if (st == GEOMOPS_OK) {
        cc_grads u = {g.filters,
                      g.inp_features,
                      g.out_importance,
                      g.neighbors_importance,
                      g.inp_neighbors_importance_sum,
                      g.inp_positions,
                      g.out_positions,
                      g.extents};
        st = cc_backward(&c, &k, &o, out_features_gradient, &u);
    }
    gm_end(&c);
    return st;
}

/* ---- list utilities --------------------------------------------------------------------------- */

GEOMOPS_API geomops_status geomops_invert_neighbors_list(
    const geomops_exec* exec, int64_t num_points, int index_type, const void* inp_neighbors_index,
    int64_t num_entries, const int64_t* inp_neighbors_row_splits, int64_t num_rows,
    const void* inp_neighbors_attributes, int64_t attribute_bytes, void* out_neighbors_index,
    int64_t* out_neighbors_row_splits, void* out_neighbors_attributes) {
    gm_enter("geomops_invert_neighbors_list");
    gm_ctx c;
    GM_TRY(gm_begin(&c, exec));
    int is64 = 0;
    geomops_status st = gm_chk_count(num_points, "num_points");
    if (st == GEOMOPS_OK) st = gm_chk_index_type(index_type, "index_type", &is64);
    if (st == GEOMOPS_OK) st = gm_chk_count(num_entries, "num_entries");
    if (st == GEOMOPS_OK) st = gm_chk_count(num_rows, "num_rows");
    if (st == GEOMOPS_OK) st = gm_chk_array(&c, inp_neighbors_index, num_entries, "inp_neighbors_index");
    if (st == GEOMOPS_OK)
        st = gm_chk_row_splits(&c, inp_neighbors_row_splits, num_rows, num_entries,
                               "inp_neighbors_row_splits", "num_entries");
    if (st == GEOMOPS_OK)
        st = gm_chk_indices(&c, inp_neighbors_index, is64, num_entries, num_points, "inp_neighbors_index",
                            "num_points");
    if (st == GEOMOPS_OK && !is64 && num_rows - 1 > INT32_MAX)
        st = gm_fail(
            GEOMOPS_ERROR_INVALID_ARGUMENT,
            "inp_neighbors_row_splits has more rows than inp_neighbors_index's dtype can index (%lld rows, "
            "int32): use GEOMOPS_INT64",
            (long long)num_rows);
    if (st == GEOMOPS_OK &&
        (attribute_bytes < 0 || (inp_neighbors_attributes == NULL) != (attribute_bytes == 0)))
        st = gm_fail(
            GEOMOPS_ERROR_INVALID_ARGUMENT,
            "inp_neighbors_attributes and attribute_bytes must be both given (attribute_bytes > 0) or both "
            "absent (NULL and 0), got attribute_bytes = %lld with %s attributes",
            (long long)attribute_bytes, inp_neighbors_attributes ? "non-NULL" : "NULL");
    const int64_t attr_total = gm_mul(num_entries, attribute_bytes);
    if (st == GEOMOPS_OK && attr_total < 0)
        st = gm_fail(GEOMOPS_ERROR_INVALID_ARGUMENT, "num_entries * attribute_bytes overflows int64");
    if (st == GEOMOPS_OK)
        st = gm_chk_array(&c, inp_neighbors_attributes, inp_neighbors_attributes ? attr_total : 0,
                          "inp_neighbors_attributes");
    if (st == GEOMOPS_OK) st = gm_chk_array(&c, out_neighbors_index, num_entries, "out_neighbors_index");
    if (st == GEOMOPS_OK)
        st = gm_chk_array(&c, out_neighbors_row_splits, num_points + 1, "out_neighbors_row_splits");
    if (st == GEOMOPS_OK)
        st = gm_chk_array(&c, out_neighbors_attributes, inp_neighbors_attributes ? attr_total : 0,
                          "out_neighbors_attributes");
    if (st != GEOMOPS_OK) {
        gm_end(&c);
        return st;
    }
    gm_arena ar;
    gm_arena_init(&ar, &c);
    int64_t* perm = (int64_t*)gm_arena_alloc(&ar, num_entries, sizeof(int64_t), "the permutation", &st);
    if (st == GEOMOPS_OK)
        st = invert_run(&c, num_points, is64, inp_neighbors_index, inp_neighbors_row_splits, num_rows,
                        num_entries, out_neighbors_index, out_neighbors_row_splits, perm);
    if (st == GEOMOPS_OK && inp_neighbors_attributes && num_entries > 0) {
        if (c.cuda) {
            st = gm_kernel(
                GM_CUDA_ONLY(gm_array_gather_rows_cuda(inp_neighbors_attributes, out_neighbors_attributes,
                                                       attribute_bytes, perm, num_entries, c.stream)),
                "the attribute gather");
        } else {
            const char* src = (const char*)inp_neighbors_attributes;
            char* dst = (char*)out_neighbors_attributes;
#pragma omp parallel for schedule(static) num_threads(c.num_threads) if (num_entries > 65536)
            for (int64_t pos = 0; pos < num_entries; ++pos)
                memcpy(dst + pos * attribute_bytes, src + perm[pos] * attribute_bytes,
                       (size_t)attribute_bytes);
        }
    }
    st = gm_arena_free(&ar, st);
    gm_end(&c);
    return st;
}

/* Integer row sums with wraparound in the values' type (NumPy's cumsum-difference result):
 * unsigned arithmetic, stored back bit for bit. */
static void int_row_sums(int is64, const void* values, const int64_t* row_splits, int64_t num_rows,
                         void* sums, int num_threads) {
#pragma omp parallel for schedule(static) num_threads(num_threads)
    for (int64_t r = 0; r < num_rows; ++r) {
        if (is64) {
            uint64_t s = 0;
            for (int64_t n = row_splits[r]; n < row_splits[r + 1]; ++n)
                s += (uint64_t)((const int64_t*)values)[n];
            memcpy((int64_t*)sums + r, &s, sizeof s);
        } else {
            uint32_t s = 0;
            for (int64_t n = row_splits[r]; n < row_splits[r + 1]; ++n)
                s += (uint32_t)((const int32_t*)values)[n];
            memcpy((int32_t*)sums + r, &s, sizeof s);
        }
    }
}

GEOMOPS_API geomops_status geomops_reduce_subarrays_sum(const geomops_exec* exec, int dtype,
                                                        const void* values, int64_t num_values,
                                                        const int64_t* row_splits, int64_t num_rows,
                                                        void* sums) {
    gm_enter("geomops_reduce_subarrays_sum");
    gm_ctx c;
    GM_TRY(gm_begin(&c, exec));
    geomops_status st = GEOMOPS_OK;
    if (dtype != GEOMOPS_FLOAT32 && dtype != GEOMOPS_FLOAT64 && dtype != GEOMOPS_INT32 &&
        dtype != GEOMOPS_INT64)
        st = gm_fail(
            GEOMOPS_ERROR_INVALID_ARGUMENT,
            "values must be float32, float64, int32 or int64 (dtype GEOMOPS_FLOAT32, GEOMOPS_FLOAT64, "
            "GEOMOPS_INT32 or GEOMOPS_INT64), got dtype %d",
            dtype);
    if (st == GEOMOPS_OK) st = gm_chk_count(num_values, "num_values");
    if (st != GEOMOPS_OK || num_values == 0) { /* Open3D's convention: empty values stay empty */
        gm_end(&c);
        return st;
    }
    st = gm_chk_array(&c, values, num_values, "values");
    if (st == GEOMOPS_OK) st = gm_chk_count(num_rows, "num_rows");
    if (st == GEOMOPS_OK)
        st = gm_chk_row_splits(&c, row_splits, num_rows, num_values, "row_splits", "num_values");
    if (st == GEOMOPS_OK) st = gm_chk_array(&c, sums, num_rows, "sums");
    if (st == GEOMOPS_OK) {
        if (dtype == GEOMOPS_FLOAT32 || dtype == GEOMOPS_FLOAT64) {
            const int dt = dtype == GEOMOPS_FLOAT32 ? GM_FLOAT32 : GM_FLOAT64;
            int s = c.cuda ? GM_CUDA_ONLY(gm_reduce_subarrays_sum_cuda(dt, values, row_splits, num_rows,
                                                                       (void*)gm_nz(&c, sums), c.stream))
                           : gm_reduce_subarrays_sum_cpu(dt, values, row_splits, num_rows,
                                                         (void*)gm_nz(&c, sums), c.num_threads);
            st = gm_kernel(s, "the row sums");
        } else if (c.cuda) {
            st = gm_kernel(GM_CUDA_ONLY(gm_array_segment_sum_int_cuda(
                               values, dtype == GEOMOPS_INT32 ? GM_DT_INT32 : GM_DT_INT64, row_splits,
                               num_rows, sums, c.stream)),
                           "the row sums");
        } else {
            int_row_sums(dtype == GEOMOPS_INT64, values, row_splits, num_rows, sums, c.num_threads);
        }
    }
    gm_end(&c);
    return st;
}
