# C declarations of the CUDA module's device queries (include/geomops/cuda_api.h).

cdef extern from "geomops/cuda_api.h" nogil:
    int gm_cuda_device_count(int* count)
    int gm_cuda_device_info(int dev, char* name, int name_len, int* major, int* minor, size_t* total_mem)
    int gm_cuda_versions(int* runtime_version, int* driver_version)
    const char* gm_cuda_last_error()
