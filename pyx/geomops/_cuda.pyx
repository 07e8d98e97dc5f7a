# cython: language_level=3
"""Private CUDA bindings (kernels compiled by nvcc). The bindings are in ``_cuda_impl.pxi``,
shared with ``_cuda_emu`` (the same kernels compiled for the host, for tests without a GPU)."""

EMULATED = False

include "_cuda_impl.pxi"
