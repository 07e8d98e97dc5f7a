# C declarations of the neighbor-search family (include/geomops/search_types.h, search.h).
# Ownership and the two-phase (count, fill) protocol are described once, in search.h.

from libc.stdint cimport int32_t, int64_t

cdef extern from "geomops/search_types.h" nogil:
    ctypedef enum gm_metric:
        GM_METRIC_L1
        GM_METRIC_L2
        GM_METRIC_LINF

    ctypedef struct gm_hash_table_params:
        int dtype
        const void* points
        int64_t num_points
        const int64_t* points_row_splits
        int64_t batch_size
        double radius
        const int64_t* table_splits
        int32_t* index
        int32_t* cell_splits
        int num_threads

    ctypedef struct gm_grid:
        pass

    ctypedef struct gm_grid_params:
        int dtype
        const void* points
        int64_t num_points
        const int64_t* points_row_splits
        int64_t batch_size
        double radius
        int num_threads

    ctypedef struct gm_search_plan:
        pass

    ctypedef struct gm_fixed_radius_params:
        const gm_grid* grid
        const void* queries
        int64_t num_queries
        const int64_t* queries_row_splits
        int metric
        int ignore_query_point
        int return_distances
        int sort
        int index_is64
        int num_threads

    ctypedef struct gm_tree_search_params:
        int dtype
        const void* points
        int64_t num_points
        const int64_t* points_row_splits
        const void* queries
        int64_t num_queries
        const int64_t* queries_row_splits
        int64_t batch_size
        int metric
        int ignore_query_point
        int return_distances
        int index_is64
        int num_threads
        const void* radii
        int normalize_distances
        int sort
        int64_t k

cdef extern from "geomops/search.h" nogil:
    int gm_build_spatial_hash_table_cpu(const gm_hash_table_params* p)
    int gm_verify_spatial_hash_table_cpu(const gm_hash_table_params* p, int* valid)

    int gm_grid_build_cpu(const gm_grid_params* p, gm_grid** out)
    void gm_grid_free(gm_grid* g)
    int gm_grid_matches_cpu(const gm_grid* g, const void* points, int64_t num_points, int* match)
    int64_t gm_grid_nbytes(const gm_grid* g)

    int gm_fixed_radius_search_count_cpu(const gm_fixed_radius_params* p, int64_t* row_splits, int64_t* total,
                                         gm_search_plan** plan)
    int gm_radius_search_count_cpu(const gm_tree_search_params* p, int64_t* row_splits, int64_t* total,
                                   gm_search_plan** plan)
    int gm_knn_search_count_cpu(const gm_tree_search_params* p, int64_t* row_splits, int64_t* total,
                                gm_search_plan** plan)
    int gm_search_fill_cpu(gm_search_plan* plan, void* index, void* distance)
    void gm_search_plan_free(gm_search_plan* plan)

cdef extern from "geomops/search_cuda.h" nogil:
    # every pointer inside the params structs is device memory here; streams are cudaStream_t
    int gm_build_spatial_hash_table_cuda(const gm_hash_table_params* p, int64_t num_cells, void* stream)
    int gm_verify_spatial_hash_table_cuda(const gm_hash_table_params* p, int64_t num_cells, int* valid,
                                          void* stream)

    int gm_grid_build_cuda(const gm_grid_params* p, gm_grid** out, void* stream)
    void gm_grid_free_cuda(gm_grid* g)
    int gm_grid_matches_cuda(const gm_grid* g, const void* points, int64_t num_points, int* match, void* stream)
    int64_t gm_grid_nbytes_cuda(const gm_grid* g)

    int gm_fixed_radius_search_count_cuda(const gm_fixed_radius_params* p, int64_t* row_splits, int64_t* total,
                                          gm_search_plan** plan, void* stream)
    int gm_radius_search_count_cuda(const gm_tree_search_params* p, int64_t* row_splits, int64_t* total,
                                    gm_search_plan** plan, void* stream)
    int gm_knn_search_count_cuda(const gm_tree_search_params* p, int64_t* row_splits, int64_t* total,
                                 gm_search_plan** plan, void* stream)
    int gm_search_fill_cuda(gm_search_plan* plan, void* index, void* distance, void* stream)
    void gm_search_plan_free_cuda(gm_search_plan* plan)
