# Device-array services (cuda/array_ops.cu), included by _cuda_impl.pxi: the reductions behind
# the validation of device inputs, dtype conversions, strided copies, pointer and stream
# queries. Arrays are device arrays exposing __cuda_array_interface__ (geomops.DeviceArray).

from libc.stdint cimport int16_t, int64_t, uint64_t

from geomops._c_array cimport *

import numpy as _np

_GM_DTYPES = {_np.dtype(_np.bool_): GM_DT_BOOL, _np.dtype(_np.int8): GM_DT_INT8,
              _np.dtype(_np.uint8): GM_DT_UINT8, _np.dtype(_np.int16): GM_DT_INT16,
              _np.dtype(_np.uint16): GM_DT_UINT16, _np.dtype(_np.int32): GM_DT_INT32,
              _np.dtype(_np.uint32): GM_DT_UINT32, _np.dtype(_np.int64): GM_DT_INT64,
              _np.dtype(_np.uint64): GM_DT_UINT64, _np.dtype(_np.float16): GM_DT_FLOAT16,
              _np.dtype(_np.float32): GM_DT_FLOAT32, _np.dtype(_np.float64): GM_DT_FLOAT64}
_CAST_TARGETS = (_np.dtype(_np.int32), _np.dtype(_np.int64), _np.dtype(_np.float32), _np.dtype(_np.float64))

MAX_DIMS = GM_ARRAY_MAX_DIMS


def _decode(uint64_t bits, dtype):
    return _np.frombuffer(int(bits).to_bytes(8, "little")[:dtype.itemsize], dtype)[0].item()


def array_stats(a, *, uintptr_t stream=0):
    """Summary of the non-empty 1-D int32/int64/float32/float64 device array ``a``, computed on
    the device (ordered on ``stream``, which is then synchronised).

    Returns ``(min, max, nonfinite, decreasing, nonincreasing, first, last)``: for integer arrays
    ``min``/``max`` are ints and ``nonfinite`` is 0; for float arrays they are the extremes of the
    finite values (``inf``/``-inf`` when there is none) and ``nonfinite`` counts NaN and inf;
    ``decreasing`` counts the i with a[i+1] < a[i], ``nonincreasing`` those with a[i+1] <= a[i];
    ``first``/``last`` are a[0] and a[-1] as Python scalars."""
    dt = a.dtype
    cdef int code = _GM_DTYPES.get(dt, -1)
    if code not in (GM_DT_INT32, GM_DT_INT64, GM_DT_FLOAT32, GM_DT_FLOAT64):
        raise TypeError(f"array_stats: unsupported dtype {dt}")
    cdef int64_t n = a.size
    if n < 1:
        raise ValueError("array_stats: the array is empty")
    cdef const void* p = <const void*>_addr(a)
    cdef gm_array_stats s
    cdef int status
    cdef object lo, hi  # Python ints or floats (Cython would infer a C double)
    with nogil:
        status = gm_array_stats_cuda(p, code, n, &s, <void*>stream)
    _check(status)
    if code in (GM_DT_INT32, GM_DT_INT64):
        lo, hi = int(s.imin), int(s.imax)
    else:
        lo, hi = float(s.fmin), float(s.fmax)
    return (lo, hi, int(s.nonfinite), int(s.decreasing), int(s.nonincreasing), _decode(s.first, dt),
            _decode(s.last, dt))


def array_cast(src, dst, *, uintptr_t stream=0):
    """``dst[...] = src`` converted with C's rules (NumPy's ``astype``), ordered on ``stream``
    (asynchronous). ``src``: bool, int, uint or float (16/32/64 bits); ``dst``: int32, int64,
    float32 or float64, of the same size."""
    if src.size != dst.size:
        raise ValueError(f"array_cast: sizes differ ({src.size} and {dst.size})")
    cdef int sc = _GM_DTYPES.get(src.dtype, -1)
    if sc < 0:
        raise TypeError(f"array_cast: cannot convert from dtype {src.dtype}")
    if dst.dtype not in _CAST_TARGETS:
        raise TypeError(f"array_cast: cannot convert to dtype {dst.dtype}")
    cdef int dc = _GM_DTYPES[dst.dtype]
    cdef int64_t n = src.size
    cdef const void* ps = <const void*>_addr(src)
    cdef void* pd = <void*>_addr(dst)
    cdef int status
    with nogil:
        status = gm_array_cast_cuda(ps, sc, pd, dc, n, <void*>stream)
    _check(status)


def array_copy_strided(uintptr_t src, uintptr_t dst, int64_t itemsize, shape, strides, *, uintptr_t stream=0):
    """Copy the strided array at ``src`` (``strides`` in bytes, any sign) into the C-contiguous
    array at ``dst``, ordered on ``stream`` (asynchronous). At most ``MAX_DIMS`` dimensions."""
    cdef int ndim = len(shape)
    if ndim > GM_ARRAY_MAX_DIMS or len(strides) != ndim:
        raise ValueError(f"array_copy_strided: {ndim} dimensions (at most {GM_ARRAY_MAX_DIMS}) "
                         f"with {len(strides)} strides")
    cdef int64_t c_shape[GM_ARRAY_MAX_DIMS]
    cdef int64_t c_strides[GM_ARRAY_MAX_DIMS]
    cdef int d
    for d in range(ndim):
        c_shape[d] = shape[d]
        c_strides[d] = strides[d]
    cdef int status
    with nogil:
        status = gm_array_copy_strided_cuda(<const void*>src, <void*>dst, itemsize, ndim, c_shape, c_strides,
                                            <void*>stream)
    _check(status)


def pointer_device(uintptr_t ptr):
    """``(device, is_device_memory)`` of the memory at ``ptr`` (the current device for 0)."""
    cdef int dev = 0, is_dev = 0, status
    with nogil:
        status = gm_cuda_pointer_device(<const void*>ptr, &dev, &is_dev)
    _check(status)
    return dev, bool(is_dev)


def stream_wait(uintptr_t waiter, uintptr_t producer, int device):
    """Make stream ``waiter`` wait, on the GPU, for the work queued so far on ``producer`` (a
    stream of ``device``); the host does not block."""
    cdef int status
    with nogil:
        status = gm_cuda_stream_wait(<void*>waiter, <void*>producer, device)
    _check(status)


def get_device():
    """The calling thread's current CUDA device."""
    cdef int dev = 0
    _check(gm_cuda_get_device(&dev))
    return dev


def array_gather_rows(src, dst, perm, *, uintptr_t stream=0):
    """``dst[i] = src[perm[i]]`` for the rows of C-contiguous device arrays (``perm`` int64 [n],
    ``dst`` n rows of ``src``'s row size), ordered on ``stream`` (asynchronous)."""
    cdef int64_t n = perm.shape[0]
    cdef int64_t row_bytes = (src.nbytes // src.shape[0]) if src.shape[0] else 0
    if dst.shape[0] != n or (n and dst.nbytes // n != row_bytes):
        raise ValueError("array_gather_rows: dst must have len(perm) rows of src's row size")
    cdef const void* ps = <const void*>_addr(src)
    cdef void* pd = <void*>_addr(dst)
    cdef const int64_t* pp = <const int64_t*>_addr(perm)
    cdef int status
    with nogil:
        status = gm_array_gather_rows_cuda(ps, pd, row_bytes, pp, n, <void*>stream)
    _check(status)


def array_segment_sum_int(values, row_splits, sums, *, uintptr_t stream=0):
    """``sums[r] = sum(values[row_splits[r]:row_splits[r+1]])`` for int32/int64 device arrays,
    wrapping around in the values' dtype, ordered on ``stream`` (asynchronous)."""
    cdef int code = _GM_DTYPES.get(values.dtype, -1)
    if code not in (GM_DT_INT32, GM_DT_INT64):
        raise TypeError(f"array_segment_sum_int: unsupported dtype {values.dtype}")
    cdef const void* pv = <const void*>_addr(values)
    cdef const int64_t* pr = <const int64_t*>_addr(row_splits)
    cdef int64_t rows = row_splits.shape[0] - 1
    cdef void* ps = <void*>_addr(sums)
    cdef int status
    with nogil:
        status = gm_array_segment_sum_int_cuda(pv, code, pr, rows, ps, <void*>stream)
    _check(status)


def array_cast_int16(src, dst, *, uintptr_t stream=0):
    """``dst[...] = src`` for an integer device array ``src`` and an int16 ``dst`` of the same
    size (instance and class ids), ordered on ``stream`` (asynchronous). Values outside the int16
    range wrap around: the caller checks the range first."""
    if src.size != dst.size:
        raise ValueError(f"array_cast_int16: sizes differ ({src.size} and {dst.size})")
    cdef int sc = _GM_DTYPES.get(src.dtype, -1)
    if sc < 0 or src.dtype.kind not in "iu":
        raise TypeError(f"array_cast_int16: cannot convert from dtype {src.dtype}")
    if dst.dtype != _np.int16:
        raise TypeError(f"array_cast_int16: dst must be int16, got {dst.dtype}")
    cdef int64_t n = src.size
    cdef const void* ps = <const void*>_addr(src)
    cdef void* pd = <void*>_addr(dst)
    cdef int status
    with nogil:
        status = gm_array_cast_cuda(ps, sc, pd, GM_DT_INT16, n, <void*>stream)
    _check(status)


def array_masked_nonfinite(values, mask, *, uintptr_t stream=0):
    """``(count, first)``: the rows ``r`` of the float32 device array ``values`` (its first
    dimension; the rest is one row) with ``mask[r] != 0`` (int16, one entry per row) that hold a
    NaN or an infinity, counted on the device; ``first`` is the smallest (-1 when none). Ordered
    on ``stream``, which is then synchronised."""
    if values.dtype != _np.float32 or mask.dtype != _np.int16:
        raise TypeError(f"array_masked_nonfinite: values must be float32 and mask int16, got {values.dtype} "
                        f"and {mask.dtype}")
    cdef int64_t rows = mask.size
    if rows and values.size % rows:
        raise ValueError(f"array_masked_nonfinite: {values.size} values do not make {rows} rows")
    cdef int64_t cols = values.size // rows if rows else 0
    cdef const float* pv = <const float*>_addr(values)
    cdef const int16_t* pm = <const int16_t*>_addr(mask)
    cdef int64_t count = 0, first = -1
    cdef int status
    with nogil:
        status = gm_array_masked_nonfinite_cuda(pv, rows, cols, pm, &count, &first, <void*>stream)
    _check(status)
    return int(count), int(first)


def array_pad_columns(src, dst, double fill, *, uintptr_t stream=0):
    """``dst[r, :c] = src[r]`` and ``dst[r, c:] = fill`` for float32 device arrays viewed as
    rows (the first dimension) of ``c`` (``src``) and ``d >= c`` (``dst``) values, ordered on
    ``stream`` (asynchronous)."""
    if src.dtype != _np.float32 or dst.dtype != _np.float32:
        raise TypeError(f"array_pad_columns: float32 arrays only, got {src.dtype} and {dst.dtype}")
    cdef int64_t rows = src.shape[0] if src.ndim else 1
    if (dst.shape[0] if dst.ndim else 1) != rows:
        raise ValueError("array_pad_columns: src and dst must have the same number of rows")
    cdef int64_t cin = src.size // rows if rows else 0
    cdef int64_t cout = dst.size // rows if rows else 0
    if cout < cin:
        raise ValueError(f"array_pad_columns: dst rows ({cout} values) are shorter than src rows ({cin})")
    cdef const float* ps = <const float*>_addr(src)
    cdef float* pd = <float*>_addr(dst)
    cdef float f = <float>fill
    cdef int status
    with nogil:
        status = gm_array_pad_columns_f32_cuda(ps, rows, cin, pd, cout, f, <void*>stream)
    _check(status)
