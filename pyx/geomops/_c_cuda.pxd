# C declarations of the CUDA module's runtime services (include/geomops/cuda_api.h).

cdef extern from "geomops/cuda_api.h" nogil:
    int gm_cuda_device_count(int* count)
    int gm_cuda_device_info(int dev, char* name, int name_len, int* major, int* minor, size_t* total_mem)
    int gm_cuda_versions(int* runtime_version, int* driver_version)
    const char* gm_cuda_last_error()
    void gm_cuda_clear_error()
    int gm_cuda_set_device(int dev)
    int gm_cuda_malloc(void** p, size_t bytes, int dev)
    int gm_cuda_free(void* p, size_t bytes, int dev)
    int gm_cuda_release_cached()
    int gm_cuda_memcpy(void* dst, const void* src, size_t bytes, void* stream)
    int gm_cuda_memset(void* p, int value, size_t bytes, void* stream)
    int gm_cuda_stream_create(void** stream, int dev)
    int gm_cuda_stream_destroy(void* stream)
    int gm_cuda_stream_synchronize(void* stream)
