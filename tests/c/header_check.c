/* Compiled as C89, C99 (header_check.c) and C++11 (header_check.cpp includes this file) with
 * -Wall -Wextra -pedantic -Werror: the public header and every GEOMOPS_*_INIT macro must be
 * accepted without a warning. Not run: only compiled. */
#include <geomops/geomops.h>

int geomops_header_check(void);

int geomops_header_check(void) {
    geomops_exec exec = GEOMOPS_EXEC_INIT;
    geomops_cconv_options options = GEOMOPS_CCONV_OPTIONS_INIT;
    geomops_cconv_args args = GEOMOPS_CCONV_ARGS_INIT;
    geomops_cconv_transpose_args targs = GEOMOPS_CCONV_TRANSPOSE_ARGS_INIT;
    geomops_cconv_gradients grads = GEOMOPS_CCONV_GRADIENTS_INIT;
    geomops_cconv_transpose_gradients tgrads = GEOMOPS_CCONV_TRANSPOSE_GRADIENTS_INIT;
    geomops_hash_table_args table = GEOMOPS_HASH_TABLE_ARGS_INIT;
    geomops_fixed_radius_args fixed = GEOMOPS_FIXED_RADIUS_ARGS_INIT;
    geomops_radius_search_args radius = GEOMOPS_RADIUS_SEARCH_ARGS_INIT;
    geomops_knn_search_args knn = GEOMOPS_KNN_SEARCH_ARGS_INIT;
    geomops_mesh_instance mesh = GEOMOPS_MESH_INSTANCE_INIT;
    geomops_render_args render = GEOMOPS_RENDER_ARGS_INIT;
    geomops_render_buffers buffers = GEOMOPS_RENDER_BUFFERS_INIT;
    geomops_image image = GEOMOPS_IMAGE_INIT;
    geomops_pose_gradient_options pose_options = GEOMOPS_POSE_GRADIENT_OPTIONS_INIT;
    geomops_pose_object object = GEOMOPS_POSE_OBJECT_INIT;
    geomops_pose_gradients pose_grads = GEOMOPS_POSE_GRADIENTS_INIT;
    geomops_pose_delta_args delta = GEOMOPS_POSE_DELTA_ARGS_INIT;
    geomops_search* search = NULL;
    geomops_status (*conv)(const geomops_exec*, const geomops_cconv_args*, const geomops_cconv_options*,
                           void*) = geomops_continuous_conv;
    int (*version)(void) = geomops_version;
    geomops_status status = GEOMOPS_OK;
    size_t total = exec.size + options.size + args.size + targs.size + grads.size + tgrads.size + table.size +
                   fixed.size + radius.size + knn.size + mesh.size + render.size + buffers.size + image.size +
                   pose_options.size + object.size + pose_grads.size + delta.size;
    (void)search;
    (void)status;
    (void)conv;
    (void)version;
    return (int)(total % 7) + GEOMOPS_VERSION;
}
