"""Type stubs of the private CUDA bindings (``_cuda.pyx`` and ``_cuda_emu.pyx``, both from
``_cuda_impl.pxi``): runtime services so far; kernel families add their functions."""

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
def synchronize(stream: int) -> None: ...

# --- continuous convolution (_cuda_cconv.pxi) ----------------------------------------------
# The functions of _cpu.pyi's continuous-convolution section, on device arrays (objects exposing
# __cuda_array_interface__), plus a keyword-only ``stream`` (an int cudaStream_t, 0: the legacy
# default stream); ``num_threads`` is ignored.
from typing import Any, Optional

DeviceArray = Any

def cconv_run(mode: int, transpose: int, filters: DeviceArray, out_positions: DeviceArray,
              inp_positions: DeviceArray, extents: DeviceArray, offset: DeviceArray, inp_features: DeviceArray,
              inp_importance: Optional[DeviceArray], out_importance: Optional[DeviceArray],
              neighbors_index: DeviceArray, neighbors_importance: Optional[DeviceArray],
              neighbors_row_splits: DeviceArray, inp_neighbors_importance_sum: Optional[DeviceArray],
              inp_neighbors_row_splits: Optional[DeviceArray], align_corners: int, coordinate_mapping: int,
              interpolation: int, normalize: int, out_features_gradient: Optional[DeviceArray],
              output: DeviceArray, max_temp_bytes: int, num_threads: int, was_zero: Optional[DeviceArray] = None,
              allow_tf32: bool = False, *, stream: int = 0) -> None:
    """mode 0: forward/transpose; 1: filter gradient; 2: per-entry products; 3: normalisers."""
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
def cconv_swap_channels(filters: DeviceArray, out: DeviceArray, num_threads: int, *, stream: int = 0) -> None: ...
def cconv_cast(src: DeviceArray, dst: DeviceArray, num_threads: int, *, stream: int = 0) -> None: ...
def invert_neighbors(num_points: int, index: DeviceArray, row_splits: DeviceArray, out_index: DeviceArray,
                     out_row_splits: DeviceArray, out_permutation: DeviceArray, *, stream: int = 0) -> None: ...
def reduce_subarrays_sum(values: DeviceArray, row_splits: DeviceArray, sums: DeviceArray, num_threads: int, *,
                         stream: int = 0) -> None: ...
def gemm(a: DeviceArray, b: DeviceArray, c: DeviceArray, trans_a: bool, trans_b: bool, accumulate: bool,
         allow_tf32: bool, *, stream: int = 0) -> None:
    """The GEMM primitive (tests): ``c = (c if accumulate else 0) + op(a) @ op(b)``."""
