/* Enums and parameter structs of the continuous convolution, shared by every backend.
 *
 * One struct serves the forward op, the transpose op, both filter gradients, the per-neighbor
 * products used for the importance gradients and the per-row normalisers. The Python facade
 * validates every field before a launcher is called. Semantics: docs/cconv.md, "Semantics". */
#ifndef GEOMOPS_CCONV_TYPES_H
#define GEOMOPS_CCONV_TYPES_H

#include "geomops/common.h" /* GM_FLOAT32 / GM_FLOAT64, int64_t */

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    GM_MAP_BALL_TO_CUBE_RADIAL = 0,
    GM_MAP_BALL_TO_CUBE_VOLUME_PRESERVING = 1,
    GM_MAP_IDENTITY = 2
} gm_coordinate_mapping;

typedef enum {
    GM_INTERP_LINEAR = 0,
    GM_INTERP_LINEAR_BORDER = 1,
    GM_INTERP_NEAREST_NEIGHBOR = 2
} gm_interpolation;

typedef struct {
    int dtype;       /* GM_FLOAT32 or GM_FLOAT64: every float array below has this type */
    int index_int64; /* neighbors_index is int64 (else int32) */
    int transpose;   /* 0: forward op, 1: transpose op (relative position and weights swap roles) */

    int64_t num_out;      /* No: output points (rows of the result)                              */
    int64_t num_inp;      /* Ni: input points                                                     */
    int64_t in_channels;  /* Cin: channels of inp_features                                        */
    int64_t out_channels; /* Cout                                                                 */
    int filter_depth, filter_height, filter_width; /* D (z), H (y), W (x)                         */

    const void* filters;                 /* [D*H*W*Cin, Cout] row-major (= [D,H,W,Cin,Cout])               */
    const void* out_positions;           /* [No, 3]                                                        */
    const void* inp_positions;           /* [Ni, 3]                                                        */
    const void* extents;                 /* [extents_rows, extents_cols]; rows are 1 or per point          */
    int64_t extents_rows;                /* 1 (shared) or No (forward) / Ni (transpose)                    */
    int extents_cols;                    /* 1 (isotropic) or 3                                             */
    const void* offset;                  /* [3]                                                            */
    const void* inp_features;            /* [Ni, Cin]                                                      */
    const void* inp_importance;          /* forward: [Ni] or NULL                                          */
    const void* out_importance;          /* transpose: [No] or NULL                                        */
    const void* neighbors_index;         /* [E] int32/int64, rows of neighbors_row_splits        */
    const void* neighbors_importance;    /* [E] or NULL                                          */
    const int64_t* neighbors_row_splits; /* [No + 1]                                             */
    const void* inp_neighbors_importance_sum; /* transpose: [Ni] or NULL                          */
    const int64_t* inp_neighbors_row_splits;  /* transpose: [Ni + 1]                              */

    int align_corners;
    int coordinate_mapping; /* gm_coordinate_mapping */
    int interpolation;      /* gm_interpolation      */
    int normalize;

    const void* out_features_gradient; /* [No, Cout]: filter gradients and neighbor products      */
    void* output;                      /* forward/transpose: [No, Cout]; filter gradient: [D*H*W*Cin, Cout];
                            neighbor products: [E] float64, or NULL                               */
    /* neighbor products only (gm_cconv_neighbor_products_*), each written when not NULL: */
    double* entry_position_grads; /* [E, 3]: d L / d(relative position) of each entry               */
    double* entry_extent_grads;   /* [E, extents_cols]: d L / d(the extent the entry uses)          */
    int64_t max_temp_bytes;       /* bound on temporary memory (max_temp_mem_MB); a minimum is always used */
    int num_threads;
    int allow_tf32; /* CUDA, float32: the GEMMs may use TF32 tensor cores (ignored on the CPU) */
} gm_cconv_params;

/* Inverse neighbor list (counting sort, rows keep the original list order). */
typedef struct {
    int64_t num_points;        /* rows of the result                                 */
    int64_t num_rows;          /* rows of the input list                             */
    int64_t num_entries;       /* E                                                  */
    int index_int64;           /* index arrays are int64 (else int32)                */
    const void* index;         /* [E]                                                */
    const int64_t* row_splits; /* [num_rows + 1]                                     */
    void* out_index;           /* [E], same dtype as index                           */
    int64_t* out_row_splits;   /* [num_points + 1]                                   */
    int64_t* out_permutation;  /* [E]: position in the input list of each output entry */
} gm_invert_params;

/* The per-entry math of the two backward functions after their kernels ran: the weights of the
 * inverted list that carries the feature gradient, the importance gradients, and the sums of
 * the per-entry position and extent derivatives into points. Rows: the
 * neighbor list of the op (`num_out` rows, entries n, input point j = neighbors_index[n]) and
 * its inversion (`num_inp` rows, gm_invert_neighbors_*: inv_row_splits, inv_index = original row
 * of each inverted entry, inv_permutation = its original entry). Float arrays have type `dtype`
 * unless marked float64. Formulas: the gm_cconv_bwd_* functions of cconv_math.h. */
typedef struct {
    int dtype;                   /* GM_FLOAT32 or GM_FLOAT64 */
    int index_int64;             /* neighbors_index and inv_index are int64 (else int32) */
    int transpose;               /* 0: continuous_conv_backward, 1: continuous_conv_transpose_backward */
    int64_t num_out;             /* No: rows of neighbors_row_splits */
    int64_t num_inp;             /* Ni: rows of inv_row_splits */
    int64_t num_entries;         /* E */
    const void* neighbors_index; /* [E] */
    const int64_t* neighbors_row_splits; /* [No + 1] */
    const void* neighbors_importance;    /* [E] or NULL (1) */
    const void* point_importance;  /* forward: inp_importance [Ni]; transpose: out_importance [No]; or NULL */
    const double* divisor;         /* normalize: psi [No] (forward) or phi [Ni] (transpose); else NULL (1) */
    const uint8_t* was_zero;       /* with divisor: 1 where the normaliser was 0 */
    const void* inv_index;         /* [E] */
    const int64_t* inv_row_splits; /* [Ni + 1] */
    const int64_t* inv_permutation; /* [E] */
    const double* products;         /* [E] float64, gm_cconv_neighbor_products_* (importance gradients) */
    void* inv_weights;              /* out [E]: entry weights of the inverted list, or NULL */
    void* d_point_importance;       /* out: d inp_importance [Ni] / d out_importance [No], or NULL */
    void* d_neighbors_importance;   /* out [E] or NULL */
    void* d_importance_sum;         /* out, transpose: d inp_neighbors_importance_sum [Ni], or NULL */
    /* position and extent gradients (gm_cconv_position_grads_*): */
    const double* entry_position_grads; /* [E, 3] float64: d L / d(relative position) per entry */
    const double* entry_extent_grads;   /* [E, extents_cols] float64, or NULL */
    int64_t extents_rows;               /* 1 (shared) or per point: No (forward) / Ni (transpose) */
    int extents_cols;                   /* 1 or 3 */
    void* d_out_positions;              /* out [No, 3] or NULL */
    void* d_inp_positions;              /* out [Ni, 3] or NULL */
    void* d_extents;                    /* out [extents_rows, extents_cols] or NULL */
    int num_threads;
} gm_cconv_grad_params;

#ifdef __cplusplus
}
#endif

#endif /* GEOMOPS_CCONV_TYPES_H */
