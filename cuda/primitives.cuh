// The block-cooperative building blocks of the CUDA backend, kept few and named (every other
// kernel is one thread per item and runs in the host emulation too). On the GPU they are CUB
// calls or hand-written tiled kernels; in the emulation build (GM_CUDA_EMULATE) they are plain
// host loops with the same results (scan, sort, segmented sums are exact or use the same fixed
// order), so callers are tested in CI while these run only in the GPU tests.
//
// All are stream-ordered on `stream`, allocate their temporary memory with gm_dev_alloc and
// return a GM_* status.
#ifndef GEOMOPS_PRIMITIVES_CUH
#define GEOMOPS_PRIMITIVES_CUH

#include "gm_cuda.cuh"

// out[i] = sum(in[0:i]) for i in [0, n]: n + 1 outputs (out[n] is the total). in and out must not
// overlap.
int gm_dev_exclusive_scan_i64(const int64_t* in, int64_t* out, int64_t n, cudaStream_t stream);

// Stable sort of (key, value) pairs by key, keys compared on bits [0, key_bits). Results in
// keys_out / vals_out (distinct from the inputs). Equal keys keep their input order.
int gm_dev_sort_pairs_u64(const uint64_t* keys_in, uint64_t* keys_out, const int64_t* vals_in,
                          int64_t* vals_out, int64_t n, int key_bits, cudaStream_t stream);

// Copy a device value to the host (synchronises `stream`).
int gm_dev_read_i64(const int64_t* dev, int64_t* host, cudaStream_t stream);

#endif  // GEOMOPS_PRIMITIVES_CUH
