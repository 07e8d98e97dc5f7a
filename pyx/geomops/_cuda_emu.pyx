# cython: language_level=3
"""The CUDA backend's code compiled for the host (``cuda/emu/cuda_emu.h``): every kernel runs
sequentially on the calling CPU thread and "device" memory is host memory. For testing the
kernels' logic on machines without a GPU; never selected by ``device="cuda"`` outside tests."""

EMULATED = True

include "_cuda_impl.pxi"
