// The pose gradients on the GPU: the CUDA twin of cpu/posegrad.c, built from the same per-pixel
// functions of posegrad_math.h (image gradients and masks bit for bit equal to the CPU's;
// per-pixel terms too, since their products are rounded on their own).
//
// Image gradients: one thread per pixel (valid mask, both central differences).
// Back-propagation, deterministic without float atomics:
//   1. one thread per pixel: the valid mask, whether a neighbour belongs to another object
//      (the dilation needs one), and unknown instance ids (integer atomicMin);
//   2. one thread per (segment, object), a segment being a run of consecutive pixels in
//      row-major order (a power of two, at least 32, fixed by the image size and the object
//      count): the object's terms over the segment's pixels, summed in that order in
//      float64 registers, written to the segment's partial row (and, when asked, the per-pixel
//      contributions and masks of that object, every pixel written), and the first pixel
//      where dLoss/dImage is read and not finite (integer atomicMin);
//   3. the partial rows summed in segment order by a fixed tree of sequential sums.
// Bitwise identical from run to run; the sums equal the CPU's up to the order of additions.
#include "gm_cuda.cuh"

#include <limits.h>

#include "geomops/posegrad.h"
#include "geomops/posegrad_math.h"

namespace {

constexpr int64_t kMinSegment = 32;                   // pixels per segment, at least
constexpr int64_t kTargetThreads = 1 << 18;           // (segment, object) threads wanted: fill the GPU
constexpr int64_t kGroup = 32;                        // partial rows summed by one thread per level
constexpr int64_t kMaxPartials = (int64_t)256 << 20;  // bytes of partial sums, as the CPU's blocks

enum { INFO_UNKNOWN_ID = 1, INFO_OTHER = 2 };

int check_image(const gm_pg_image* im) {
    if (im->height < 1 || im->width < 1) return GM_ERR_INVALID;
    if ((im->rgb_u8 == NULL) == (im->rgb_f32 == NULL)) return GM_ERR_INVALID;
    if (im->rgb_channels != 3 && im->rgb_channels != 4) return GM_ERR_INVALID;
    if (im->border < GM_PG_BORDER_ZERO || im->border > GM_PG_BORDER_REPLICATE) return GM_ERR_INVALID;
    if (im->semantics != GM_PG_SEM_CUDA && im->semantics != GM_PG_SEM_CPU) return GM_ERR_INVALID;
    if (!im->instance || !im->depth) return GM_ERR_INVALID;
    return GM_OK;
}

// The negated, NDC-scaled central differences of channels 0..2 at (r, c).
__device__ inline void pixel_grads(const gm_pg_image& im, float wx, float wy, int r, int c, float* gx,
                                   float* gy) {
    gm_pg_axis_diffs(&im, wx, r, c, 0, gx);
    gm_pg_axis_diffs(&im, wy, r, c, 1, gy);
}

__global__ void k_image_gradients(gm_pg_image im, float* grad_x, float* grad_y, uint8_t* valid) {
    const int h = im.height, w = im.width;
    const int64_t hw = (int64_t)h * w;
    const float wx = gm_pg_weight(w), wy = gm_pg_weight(h);
    GM_FOR_EACH(i, hw) {
        const int r = (int)(i / w), c = (int)(i % w);
        const int ok = gm_pg_valid(0, im.instance, im.depth, h, w, r, c, im.semantics);
        float gx[3], gy[3];
        pixel_grads(im, wx, wy, r, c, gx, gy);
        for (int ch = 0; ch < 3; ++ch) {
            grad_x[ch * hw + i] = ok ? gx[ch] : 0.0f;
            grad_y[ch * hw + i] = ok ? gy[ch] : 0.0f;
        }
        valid[i] = (uint8_t)ok;
    }
}

// obj_id[o] = the instance id of object o (from the id -> slot -> objects tables).
__global__ void k_object_ids(const int32_t* id_to_slot, const int32_t* slot_start,
                             const int32_t* slot_objects, int32_t* obj_id) {
    GM_FOR_EACH(id, GM_MAX_INSTANCE_INDEX + 1) {
        const int32_t s = id_to_slot[id];
        if (s < 0) continue;
        for (int32_t j = slot_start[s]; j < slot_start[s + 1]; ++j) obj_id[slot_objects[j]] = (int32_t)id;
    }
}

__global__ void k_object_setup(const double* transforms, const double* projection, int denom_row, int n,
                               gm_pg_object* objs) {
    GM_FOR_EACH(o, n) gm_pg_object_setup(transforms + 12 * o, projection, denom_row, &objs[o]);
}

__global__ void k_init_bad(int32_t* bad, unsigned long long* nonfinite) {
    GM_FOR_EACH(i, 1) {
        bad[i] = INT32_MAX;
        nonfinite[i] = ULLONG_MAX;
    }
}

__global__ void k_pixel_info(gm_pg_image im, const int32_t* id_to_slot, uint8_t* valid, uint8_t* info,
                             int32_t* bad) {
    const int h = im.height, w = im.width;
    GM_FOR_EACH(i, (int64_t)h * w) {
        const int r = (int)(i / w), c = (int)(i % w);
        const int id0 = im.instance[i];
        const int unknown = id0 != 0 && (id0 < 0 || id_to_slot[id0] < 0);
        if (unknown) atomicMin(bad, (int32_t)id0);
        valid[i] = (uint8_t)gm_pg_valid(0, im.instance, im.depth, h, w, r, c, im.semantics);
        info[i] = (uint8_t)((unknown ? INFO_UNKNOWN_ID : 0) |
                            (gm_pg_has_other(im.instance, h, w, r, c) ? INFO_OTHER : 0));
    }
}

// Thread (segment, object): the object's sums over the segment's pixels, in pixel order.
__global__ void k_segments(gm_pg_backprop_params p, const gm_pg_object* objs, const int32_t* obj_id,
                           const uint8_t* valid, const uint8_t* info, int64_t seg_len, int64_t nseg,
                           double* partial, unsigned long long* nonfinite) {
    const gm_pg_image& im = p.img;
    const int h = im.height, w = im.width, n = p.num_objects;
    const int64_t hw = (int64_t)h * w;
    const float wx = gm_pg_weight(w), wy = gm_pg_weight(h);
    GM_FOR_EACH(t, nseg * n) {
        const int64_t seg = t / n;
        const int o = (int)(t % n);
        const int X = obj_id[o];
        const gm_pg_object* ob = &objs[o];
        double acc[GM_PG_ACC_STRIDE];
        for (int k = 0; k < GM_PG_ACC_STRIDE; ++k) acc[k] = 0.0;
        const int64_t p0 = seg * seg_len, p1 = p0 + seg_len < hw ? p0 + seg_len : hw;
        for (int64_t pix = p0; pix < p1; ++pix) {
            const int r = (int)(pix / w), c = (int)(pix % w);
            const int f = info[pix];
            ptrdiff_t src = -1;
            if (!(f & INFO_UNKNOWN_ID))  // pixels of unknown ids are skipped, as on the CPU
                src = gm_pg_dilate_source(im.instance, valid, h, w, r, c, im.semantics, f & INFO_OTHER, X);
            double out[6] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
            if (src >= 0) {
                double sx = 0.0, sy = 0.0;
                if (valid[pix]) {
                    float gx[3], gy[3];
                    pixel_grads(im, wx, wy, r, c, gx, gy);
                    const double g[3] = {gm_pg_grad_at(&p, pix, 0), gm_pg_grad_at(&p, pix, 1),
                                         gm_pg_grad_at(&p, pix, 2)};
                    gm_pg_project_grad(g, gx, gy, &sx, &sy);
                    if (!gm_pg_finite2(sx, sy) && !gm_pg_all_finite3(g))  // as the CPU loop
                        atomicMin(nonfinite, (unsigned long long)pix);
                }
                const float* x = p.coords + 3 * src;
                double d;
                acc[GM_PG_ACC_PIXELS] += 1.0;
                if (sx != 0.0 || sy != 0.0) {
                    d = gm_pg_contribution(ob, x[0], x[1], x[2], sx, sy, out);
                    for (int e = 0; e < 6; ++e) acc[GM_PG_ACC_GRAD + e] += out[e];
                } else {
                    d = gm_pg_denominator(ob, x[0], x[1], x[2]);
                }
                if (!(d > 0.0)) acc[GM_PG_ACC_SINGULAR] += 1.0;
            }
            if (p.contributions)
                for (int e = 0; e < 6; ++e) p.contributions[((int64_t)o * 6 + e) * hw + pix] = (float)out[e];
            if (p.masks) p.masks[(int64_t)o * hw + pix] = (uint8_t)(src >= 0);
        }
        for (int k = 0; k < GM_PG_ACC_STRIDE; ++k) partial[t * GM_PG_ACC_STRIDE + k] = acc[k];
    }
}

// out[g][j] = sum of in[i][j] over the rows i of group g (group_len rows), in row order.
__global__ void k_sum_rows(const double* in, int64_t rows, int64_t cols, int64_t group_len, double* out) {
    const int64_t groups = (rows + group_len - 1) / group_len;
    GM_FOR_EACH(t, groups * cols) {
        const int64_t g = t / cols, j = t % cols;
        const int64_t i1 = (g + 1) * group_len < rows ? (g + 1) * group_len : rows;
        double s = 0.0;
        for (int64_t i = g * group_len; i < i1; ++i) s += in[i * cols + j];
        out[t] = s;
    }
}

#define GM_PG_LAUNCH(kernel, n, stream, ...)                                                                 \
    do {                                                                                                     \
        GM_LAUNCH(kernel, gm_cuda_blocks(n), GM_CUDA_THREADS, stream, __VA_ARGS__);                          \
        const int st_ = gm_cuda_check_launch(#kernel);                                                       \
        if (st_ != GM_OK) return st_;                                                                        \
    } while (0)

#define GM_PG_ALLOC(buf, count, stream, what)                                                                \
    do {                                                                                                     \
        const int st_ = (buf).alloc((size_t)(count), stream, what);                                          \
        if (st_ != GM_OK) return st_;                                                                        \
    } while (0)

// Sums the partial rows (nseg rows of `cols`) into accum: levels of kGroup-row sums, then one
// sum of the rest.
int reduce_partials(double* partial, int64_t nseg, int64_t cols, double* accum, cudaStream_t s) {
    gm_dev_buffer<double> ping, pong;
    double* cur = partial;
    int64_t rows = nseg;
    while (rows > kGroup) {
        const int64_t groups = (rows + kGroup - 1) / kGroup;
        gm_dev_buffer<double>& next = cur == ping.ptr ? pong : ping;
        GM_PG_ALLOC(next, groups * cols, s, "the pose-gradient partial sums");
        GM_PG_LAUNCH(k_sum_rows, groups * cols, s, cur, rows, cols, kGroup, next.ptr);
        cur = next.ptr;
        rows = groups;
    }
    GM_PG_LAUNCH(k_sum_rows, cols, s, cur, rows, cols, rows, accum);
    return GM_OK;
}

int backprop_run(const gm_pg_backprop_params* p, cudaStream_t s) {
    const gm_pg_image* im = &p->img;
    const int h = im->height, w = im->width, n = p->num_objects;
    const int64_t hw = (int64_t)h * w;

    gm_dev_buffer<uint8_t> masks;  // valid mask, then the neighbour info
    gm_dev_buffer<int32_t> ints;   // bad id, then the object ids
    gm_dev_buffer<unsigned long long> first_nf;
    GM_PG_ALLOC(masks, 2 * hw, s, "the valid mask");
    GM_PG_ALLOC(ints, 1 + (int64_t)n, s, "the object ids");
    GM_PG_ALLOC(first_nf, 1, s, "the finiteness check");
    int32_t* bad = ints.ptr;
    GM_PG_LAUNCH(k_init_bad, 1, s, bad, first_nf.ptr);
    GM_PG_LAUNCH(k_pixel_info, hw, s, *im, p->id_to_slot, masks.ptr, masks.ptr + hw, bad);

    if (n > 0) {
        int32_t* obj_id = ints.ptr + 1;
        gm_dev_buffer<gm_pg_object> objs;
        GM_PG_ALLOC(objs, n, s, "the per-object constants");
        GM_PG_LAUNCH(k_object_ids, GM_MAX_INSTANCE_INDEX + 1, s, p->id_to_slot, p->slot_start,
                     p->slot_objects, obj_id);
        GM_PG_LAUNCH(k_object_setup, n, s, p->transforms, p->projection, p->denom_row, n, objs.ptr);

        // segment length: a power of two fixed by the image size and the object count only (it
        // sets the order of the sums, so nothing else may change it)
        const int64_t row_bytes = (int64_t)n * GM_PG_ACC_STRIDE * (int64_t)sizeof(double);
        int64_t seg_len = kMinSegment;
        while (seg_len < hw && (((hw + seg_len - 1) / seg_len) * n > kTargetThreads ||
                                ((hw + seg_len - 1) / seg_len) * row_bytes > kMaxPartials))
            seg_len *= 2;
        const int64_t nseg = (hw + seg_len - 1) / seg_len;
        gm_dev_buffer<double> partial;
        GM_PG_ALLOC(partial, nseg * n * GM_PG_ACC_STRIDE, s, "the pose-gradient partial sums");
        GM_PG_LAUNCH(k_segments, nseg * n, s, *p, objs.ptr, obj_id, masks.ptr, masks.ptr + hw, seg_len, nseg,
                     partial.ptr, first_nf.ptr);
        // rows: segments; columns: (object, slot), so each accum entry sums its segments in order
        const int st = reduce_partials(partial.ptr, nseg, (int64_t)n * GM_PG_ACC_STRIDE, p->accum, s);
        if (st != GM_OK) return st;
    }
    int32_t worst = INT32_MAX;
    unsigned long long nf = ULLONG_MAX;
    GM_CUDA_WAIT_IDLE(s, "the pose gradients");
    GM_CUDA_TRY(cudaMemcpyAsync(&worst, bad, sizeof worst, cudaMemcpyDeviceToHost, s), "cudaMemcpyAsync");
    GM_CUDA_TRY(cudaMemcpyAsync(&nf, first_nf.ptr, sizeof nf, cudaMemcpyDeviceToHost, s), "cudaMemcpyAsync");
    GM_CUDA_TRY(cudaStreamSynchronize(s), "cudaStreamSynchronize");
    *p->bad_id = worst == INT32_MAX ? 0 : worst;
    if (p->first_nonfinite) *p->first_nonfinite = nf == ULLONG_MAX ? -1 : (int64_t)nf;
    return GM_OK;
}

}  // namespace

extern "C" int gm_posegrad_image_gradients_cuda(const gm_pg_image_grad_params* p, void* stream) {
    if (!p) return GM_ERR_INVALID;
    const int st = check_image(&p->img);
    if (st != GM_OK) return st;
    if (!p->grad_x || !p->grad_y || !p->valid) return GM_ERR_INVALID;
    const int64_t hw = (int64_t)p->img.height * p->img.width;
    GM_PG_LAUNCH(k_image_gradients, hw, (cudaStream_t)stream, p->img, p->grad_x, p->grad_y, p->valid);
    return GM_OK;
}

extern "C" int gm_posegrad_backprop_cuda(const gm_pg_backprop_params* p, void* stream) {
    if (!p) return GM_ERR_INVALID;
    const int st = check_image(&p->img);
    if (st != GM_OK) return st;
    // arrays with one row per object are empty (NULL on the device) without objects
    if (!p->coords || (p->g_f32 == NULL) == (p->g_f64 == NULL) || p->num_objects < 0 || !p->projection ||
        (p->denom_row != 2 && p->denom_row != 3) || !p->id_to_slot || !p->slot_start || !p->bad_id ||
        (p->num_objects > 0 && (!p->transforms || !p->slot_objects || !p->accum)))
        return GM_ERR_INVALID;
    return backprop_run(p, (cudaStream_t)stream);
}
