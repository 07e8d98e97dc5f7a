"""Type stubs of the private CUDA bindings (``_cuda.pyx`` and ``_cuda_emu.pyx``, both from
``_cuda_impl.pxi``): runtime services, then the kernel families. A kernel binding mirrors the
``_cpu`` function of the same name with device arrays (objects exposing
``__cuda_array_interface__``) and a keyword-only ``stream`` (a cudaStream_t as an int)."""

from typing import Any, Optional

DeviceArrayLike = Any  # an object with __cuda_array_interface__ (geomops.DeviceArray, CuPy, ...)

EMULATED: bool
NO_DEVICE: int

class CudaError(RuntimeError): ...

def last_error() -> str: ...
def device_count() -> tuple[int, int, str]:
    """``(count, status, reason)``; never raises."""
def device_info(dev: int) -> dict[str, object]: ...
def versions() -> tuple[int, int]: ...
def set_device(dev: int) -> None: ...

class DeviceBuffer:
    """Device memory freed with the object."""
    ptr: int
    nbytes: int
    device: int
    def __init__(self, nbytes: int, device: int) -> None: ...

class Stream:
    """A non-blocking CUDA stream, destroyed with the object."""
    handle: int
    device: int
    def __init__(self, device: int) -> None: ...
    def synchronize(self) -> None: ...

def memcpy(dst: int, src: int, nbytes: int, stream: int = 0) -> None: ...
def memset(ptr: int, value: int, nbytes: int, stream: int = 0) -> None: ...
def release_cached_memory() -> None: ...
def synchronize(stream: int) -> None: ...

# ---- DLPack (_cuda_dlpack.pxi) ----------------------------------------------------------------
def dlpack_export(owner: object, ptr: int, shape: tuple[int, ...], dtype: object, device_type: int,
                  device_id: int, versioned: bool, readonly: bool = False, copied: bool = False) -> object:
    """A DLPack capsule ("dltensor" or "dltensor_versioned") over a C-contiguous array; it holds
    a reference to ``owner`` until the managed tensor's deleter runs."""
def dlpack_import(capsule: object) -> tuple[DLPackImport, dict[str, object]]:
    """Consume a DLPack capsule: ``(holder, info)``; the holder runs the deleter once, when collected."""
def dlpack_dtype(code: int, bits: int, lanes: int) -> object: ...

class DLPackImport:
    """A consumed DLPack tensor (its deleter runs once, when this object is collected)."""

# ---- device-array services (_cuda_array.pxi) --------------------------------------------------
MAX_DIMS: int

def array_stats(a: object, *, stream: int = 0) -> tuple[object, object, int, int, int, object, object]:
    """``(min, max, nonfinite, decreasing, nonincreasing, first, last)`` of a 1-D device array."""
def array_gather_rows(src: Any, dst: Any, perm: Any, *, stream: int = 0) -> None: ...
def array_segment_sum_int(values: Any, row_splits: Any, sums: Any, *, stream: int = 0) -> None: ...
def array_cast(src: object, dst: object, *, stream: int = 0) -> None: ...
def array_cast_int16(src: Any, dst: Any, *, stream: int = 0) -> None: ...
def array_masked_nonfinite(values: Any, mask: Any, *, stream: int = 0) -> tuple[int, int]: ...
def array_pad_columns(src: Any, dst: Any, fill: float, *, stream: int = 0) -> None: ...
def array_copy_strided(src: int, dst: int, itemsize: int, shape: tuple[int, ...], strides: tuple[int, ...], *,
                       stream: int = 0) -> None: ...
def pointer_device(ptr: int) -> tuple[int, bool]: ...
def stream_wait(waiter: int, producer: int, device: int) -> None: ...
def get_device() -> int: ...
# --- neighbor search (_cuda_search.pxi) ----------------------------------------------------
# Device arrays (``__cuda_array_interface__``) everywhere; ``num_threads`` is accepted to mirror
# ``_cpu`` and unused; work is ordered on ``stream`` (0: the legacy default stream).

SEARCH_METRICS: dict[str, int]

class SearchGrid:
    """Opaque device cell grid of a point set for one radius (not picklable)."""
    radius: float
    dtype: Any
    nbytes: int
    def matches(self, points: DeviceArrayLike, *, stream: int = 0) -> bool: ...

class SearchPlan:
    """What a search's count phase keeps for its fill; ``fill`` runs once (default stream: the
    count's)."""
    total: int
    def fill(self, index: DeviceArrayLike, distance: Optional[DeviceArrayLike] = None, *,
             stream: Optional[int] = None) -> None: ...

def search_build_hash_table(points: DeviceArrayLike, row_splits: DeviceArrayLike, radius: float,
                            table_splits: DeviceArrayLike, index: DeviceArrayLike, cell_splits: DeviceArrayLike,
                            num_threads: int, *, stream: int = 0) -> None: ...
def search_verify_hash_table(points: DeviceArrayLike, row_splits: DeviceArrayLike, radius: float,
                             table_splits: DeviceArrayLike, index: DeviceArrayLike, cell_splits: DeviceArrayLike,
                             num_threads: int, *, stream: int = 0) -> bool: ...
def search_grid_build(points: DeviceArrayLike, row_splits: DeviceArrayLike, radius: float, num_threads: int, *,
                      stream: int = 0) -> SearchGrid: ...
def search_fixed_radius_count(grid: SearchGrid, queries: DeviceArrayLike, queries_row_splits: DeviceArrayLike,
                              row_splits_out: DeviceArrayLike, metric: str, ignore_query_point: bool,
                              return_distances: bool, sort: bool, index_is64: bool, num_threads: int, *,
                              stream: int = 0) -> SearchPlan: ...
def search_radius_count(points: DeviceArrayLike, points_row_splits: DeviceArrayLike, queries: DeviceArrayLike,
                        queries_row_splits: DeviceArrayLike, radii: DeviceArrayLike, row_splits_out: DeviceArrayLike,
                        metric: str, ignore_query_point: bool, return_distances: bool, normalize_distances: bool,
                        sort: bool, index_is64: bool, num_threads: int, *, stream: int = 0) -> SearchPlan: ...
def search_knn_count(points: DeviceArrayLike, points_row_splits: DeviceArrayLike, queries: DeviceArrayLike,
                     queries_row_splits: DeviceArrayLike, k: int, row_splits_out: DeviceArrayLike, metric: str,
                     ignore_query_point: bool, return_distances: bool, index_is64: bool, num_threads: int, *,
                     stream: int = 0) -> SearchPlan: ...
# --- continuous convolution (_cuda_cconv.pxi) ----------------------------------------------
# The functions of _cpu.pyi's continuous-convolution section, on device arrays (objects exposing
# __cuda_array_interface__), plus a keyword-only ``stream`` (an int cudaStream_t, 0: the legacy
# default stream); ``num_threads`` is ignored.
DeviceArray = Any

def cconv_run(mode: int, transpose: int, filters: DeviceArray, out_positions: DeviceArray,
              inp_positions: DeviceArray, extents: DeviceArray, offset: DeviceArray, inp_features: DeviceArray,
              inp_importance: Optional[DeviceArray], out_importance: Optional[DeviceArray],
              neighbors_index: DeviceArray, neighbors_importance: Optional[DeviceArray],
              neighbors_row_splits: DeviceArray, inp_neighbors_importance_sum: Optional[DeviceArray],
              inp_neighbors_row_splits: Optional[DeviceArray], align_corners: int, coordinate_mapping: int,
              interpolation: int, normalize: int, out_features_gradient: Optional[DeviceArray],
              output: Optional[DeviceArray], max_temp_bytes: int, num_threads: int,
              was_zero: Optional[DeviceArray] = None, allow_tf32: bool = False,
              entry_position_grads: Optional[DeviceArray] = None, entry_extent_grads: Optional[DeviceArray] = None,
              *, stream: int = 0) -> None:
    """mode 0: forward/transpose; 1: filter gradient; 2: per-entry products (``output`` may be
    None) and position / extent derivatives; 3: normalisers."""
def cconv_inverted_weights(transpose: int, neighbors_index: DeviceArray, neighbors_row_splits: DeviceArray,
                           neighbors_importance: Optional[DeviceArray], divisor: Optional[DeviceArray],
                           inv_index: DeviceArray, inv_row_splits: DeviceArray, inv_permutation: DeviceArray,
                           inv_weights: DeviceArray, num_threads: int, *, stream: int = 0) -> None: ...
def cconv_importance_grads(transpose: int, neighbors_index: DeviceArray, neighbors_row_splits: DeviceArray,
                           neighbors_importance: Optional[DeviceArray], point_importance: Optional[DeviceArray],
                           divisor: Optional[DeviceArray], was_zero: Optional[DeviceArray], inv_index: DeviceArray,
                           inv_row_splits: DeviceArray, inv_permutation: DeviceArray, products: DeviceArray,
                           d_point_importance: Optional[DeviceArray], d_neighbors_importance: Optional[DeviceArray],
                           d_importance_sum: Optional[DeviceArray], num_threads: int, *, stream: int = 0) -> None: ...
def cconv_position_grads(transpose: int, neighbors_index: DeviceArray, neighbors_row_splits: DeviceArray,
                         inv_index: DeviceArray, inv_row_splits: DeviceArray, inv_permutation: DeviceArray,
                         entry_position_grads: DeviceArray, entry_extent_grads: Optional[DeviceArray],
                         d_out_positions: Optional[DeviceArray], d_inp_positions: Optional[DeviceArray],
                         d_extents: Optional[DeviceArray], num_threads: int, *, stream: int = 0) -> None: ...
def cconv_swap_channels(filters: DeviceArray, out: DeviceArray, num_threads: int, *, stream: int = 0) -> None: ...
def cconv_cast(src: DeviceArray, dst: DeviceArray, num_threads: int, *, stream: int = 0) -> None: ...
def invert_neighbors(num_points: int, index: DeviceArray, row_splits: DeviceArray, out_index: DeviceArray,
                     out_row_splits: DeviceArray, out_permutation: DeviceArray, *, stream: int = 0) -> None: ...
def reduce_subarrays_sum(values: DeviceArray, row_splits: DeviceArray, sums: DeviceArray, num_threads: int, *,
                         stream: int = 0) -> None: ...
def gemm(a: DeviceArray, b: DeviceArray, c: DeviceArray, trans_a: bool, trans_b: bool, accumulate: bool,
         allow_tf32: bool, *, stream: int = 0) -> None:
    """The GEMM primitive (tests): ``c = (c if accumulate else 0) + op(a) @ op(b)``."""


# --- rasterizer (_cuda_raster.pxi) ---------------------------------------------------------
MAX_INSTANCE_INDEX: int
RASTER_MAX_SIZE: int
RASTER_BACKGROUND: float

def raster_release_cache() -> None: ...
def raster_render(size: tuple[int, int], intrinsics: tuple[float, ...], objects: list[tuple[Any, ...]],
                  shading: tuple[Any, ...], out: dict[str, Optional[DeviceArrayLike]], num_threads: int, *,
                  stream: int = 0) -> None: ...

# --- pose gradients (_cuda_posegrad.pxi) ---------------------------------------------------
PG_ACC_GRAD: int
PG_ACC_SINGULAR: int
PG_ACC_PIXELS: int
PG_ACC_STRIDE: int
PG_BORDER_ZERO: int
PG_BORDER_REPLICATE: int
PG_SEM_CUDA: int
PG_SEM_CPU: int

def posegrad_image_gradients(rgb: DeviceArrayLike, border: int, semantics: int, instance: DeviceArrayLike, depth: DeviceArrayLike,
                             grad_x: DeviceArrayLike, grad_y: DeviceArrayLike, valid: DeviceArrayLike, num_threads: int, *,
                             stream: int = 0) -> None: ...
def posegrad_backprop(rgb: DeviceArrayLike, border: int, semantics: int, instance: DeviceArrayLike, depth: DeviceArrayLike, coords: DeviceArrayLike,
                      g: DeviceArrayLike, g_cstride: int, g_pstride: int, transforms: DeviceArrayLike, projection: DeviceArrayLike,
                      denom_row: int, id_to_slot: DeviceArrayLike, slot_start: DeviceArrayLike, slot_objects: DeviceArrayLike, accum: DeviceArrayLike,
                      contributions: Optional[DeviceArrayLike], masks: Optional[DeviceArrayLike], num_threads: int, *,
                      stream: int = 0) -> tuple[int, int]: ...

# --- apply_pose_delta (_cuda_pose.pxi) -----------------------------------------------------
def pose_delta(pose: DeviceArrayLike, delta: DeviceArrayLike, out: DeviceArrayLike, orthonormalize: bool, fix_reflection: bool, *,
               stream: int = 0) -> None: ...
