"""Type stubs of the private OpenMP bindings (``_cpu.pyx`` and its ``.pxi`` files).

Arrays are NumPy arrays validated by the facade: C-contiguous, of the dtype each kernel expects.
Outputs are caller-allocated and filled in place. Every function raises MemoryError,
OverflowError, NotImplementedError or RuntimeError when its launcher reports a failure."""

from typing import Any, Optional

import numpy as np

Array = np.ndarray

# --- configuration (_cpu.pyx) --------------------------------------------------------------
def max_threads() -> int: ...
def openmp_version() -> int: ...
def cpu_kernel() -> str: ...
def cpu_kernels_supported() -> list[str]: ...
def cpu_kernel_request_ignored() -> bool: ...

# --- continuous convolution (_cconv.pxi) ---------------------------------------------------
def cconv_run(mode: int, transpose: int, filters: Array, out_positions: Array, inp_positions: Array,
              extents: Array, offset: Array, inp_features: Array, inp_importance: Optional[Array],
              out_importance: Optional[Array], neighbors_index: Array, neighbors_importance: Optional[Array],
              neighbors_row_splits: Array, inp_neighbors_importance_sum: Optional[Array],
              inp_neighbors_row_splits: Optional[Array], align_corners: int, coordinate_mapping: int,
              interpolation: int, normalize: int, out_features_gradient: Optional[Array], output: Optional[Array],
              max_temp_bytes: int, num_threads: int, was_zero: Optional[Array] = None,
              allow_tf32: bool = False, entry_position_grads: Optional[Array] = None,
              entry_extent_grads: Optional[Array] = None) -> None:
    """mode 0: forward/transpose; 1: filter gradient; 2: per-entry products (``output`` may be
    None) and position / extent derivatives; 3: normalisers. ``allow_tf32`` is for the CUDA
    backend (ignored)."""
def cconv_inverted_weights(transpose: int, neighbors_index: Array, neighbors_row_splits: Array,
                           neighbors_importance: Optional[Array], divisor: Optional[Array], inv_index: Array,
                           inv_row_splits: Array, inv_permutation: Array, inv_weights: Array,
                           num_threads: int) -> None: ...
def cconv_importance_grads(transpose: int, neighbors_index: Array, neighbors_row_splits: Array,
                           neighbors_importance: Optional[Array], point_importance: Optional[Array],
                           divisor: Optional[Array], was_zero: Optional[Array], inv_index: Array,
                           inv_row_splits: Array, inv_permutation: Array, products: Array,
                           d_point_importance: Optional[Array], d_neighbors_importance: Optional[Array],
                           d_importance_sum: Optional[Array], num_threads: int) -> None: ...
def cconv_position_grads(transpose: int, neighbors_index: Array, neighbors_row_splits: Array, inv_index: Array,
                         inv_row_splits: Array, inv_permutation: Array, entry_position_grads: Array,
                         entry_extent_grads: Optional[Array], d_out_positions: Optional[Array],
                         d_inp_positions: Optional[Array], d_extents: Optional[Array],
                         num_threads: int) -> None: ...
def cconv_swap_channels(filters: Array, out: Array, num_threads: int) -> None: ...
def cconv_cast(src: Array, dst: Array, num_threads: int) -> None: ...
def invert_neighbors(num_points: int, index: Array, row_splits: Array, out_index: Array,
                     out_row_splits: Array, out_permutation: Array) -> None: ...
def reduce_subarrays_sum(values: Array, row_splits: Array, sums: Array, num_threads: int) -> None: ...
def cconv_profile(enable: bool) -> tuple[float, float]: ...

# --- neighbor search (_search.pxi) ---------------------------------------------------------
SEARCH_METRICS: dict[str, int]

class SearchGrid:
    """Opaque cell grid of a point set for one radius (not picklable)."""
    radius: float
    dtype: np.dtype
    nbytes: int
    def matches(self, points: Array) -> bool: ...

class SearchPlan:
    """What a search's count phase keeps for its fill; ``fill`` runs once."""
    total: int
    def fill(self, index: Array, distance: Optional[Array] = None) -> None: ...

def search_build_hash_table(points: Array, row_splits: Array, radius: float, table_splits: Array,
                            index: Array, cell_splits: Array, num_threads: int) -> None: ...
def search_verify_hash_table(points: Array, row_splits: Array, radius: float, table_splits: Array,
                             index: Array, cell_splits: Array, num_threads: int) -> bool: ...
def search_grid_build(points: Array, row_splits: Array, radius: float, num_threads: int) -> SearchGrid: ...
def search_fixed_radius_count(grid: SearchGrid, queries: Array, queries_row_splits: Array,
                              row_splits_out: Array, metric: str, ignore_query_point: bool,
                              return_distances: bool, sort: bool, index_is64: bool,
                              num_threads: int) -> SearchPlan: ...
def search_radius_count(points: Array, points_row_splits: Array, queries: Array, queries_row_splits: Array,
                        radii: Array, row_splits_out: Array, metric: str, ignore_query_point: bool,
                        return_distances: bool, normalize_distances: bool, sort: bool, index_is64: bool,
                        num_threads: int) -> SearchPlan: ...
def search_knn_count(points: Array, points_row_splits: Array, queries: Array, queries_row_splits: Array,
                     k: int, row_splits_out: Array, metric: str, ignore_query_point: bool,
                     return_distances: bool, index_is64: bool, num_threads: int) -> SearchPlan: ...

# --- rasterizer (_raster.pxi) --------------------------------------------------------------
MAX_INSTANCE_INDEX: int
RASTER_MAX_SIZE: int
RASTER_BACKGROUND: float

def raster_release_cache() -> None: ...
def raster_render(size: tuple[int, int], intrinsics: tuple[float, ...], objects: list[tuple[Any, ...]],
                  shading: tuple[Any, ...], out: dict[str, Optional[Array]], num_threads: int) -> None: ...

# --- pose gradients (_posegrad.pxi) --------------------------------------------------------
PG_ACC_GRAD: int
PG_ACC_SINGULAR: int
PG_ACC_PIXELS: int
PG_ACC_STRIDE: int
PG_BORDER_ZERO: int
PG_BORDER_REPLICATE: int
PG_SEM_CUDA: int
PG_SEM_CPU: int

def posegrad_image_gradients(rgb: Array, border: int, semantics: int, instance: Array, depth: Array,
                             grad_x: Array, grad_y: Array, valid: Array, num_threads: int) -> None: ...
def posegrad_backprop(rgb: Array, border: int, semantics: int, instance: Array, depth: Array, coords: Array,
                      g: Array, g_cstride: int, g_pstride: int, transforms: Array, projection: Array,
                      denom_row: int, id_to_slot: Array, slot_start: Array, slot_objects: Array, accum: Array,
                      contributions: Optional[Array], masks: Optional[Array], num_threads: int) -> tuple[int, int]: ...
