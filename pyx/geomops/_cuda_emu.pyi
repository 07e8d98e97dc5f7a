"""``_cuda_emu`` has exactly the interface of ``_cuda`` (see ``_cuda.pyi``), with EMULATED True."""

from ._cuda import *  # noqa: F401,F403
