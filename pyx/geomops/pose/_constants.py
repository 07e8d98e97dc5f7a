"""Constants of the pose kernels, defined once in ``include/geomops/raster_types.h`` and
``posegrad_types.h`` and exported by the compiled bindings (read through the backend seam; every
backend compiles the same headers)."""

from .. import _backend

_kernels = _backend.cpu().kernels

MAX_INSTANCE_INDEX = int(_kernels.MAX_INSTANCE_INDEX)  # instance and class buffers are int16
MAX_IMAGE_SIZE = int(_kernels.RASTER_MAX_SIZE)  # largest width / height the rasterizer takes
BACKGROUND_DEPTH = float(_kernels.RASTER_BACKGROUND)  # depth / coordinate clear value

# option name -> GM_PG_BORDER_* / GM_PG_SEM_*
BORDERS = {"zero": int(_kernels.PG_BORDER_ZERO), "replicate": int(_kernels.PG_BORDER_REPLICATE)}
SEMANTICS = {"cuda": int(_kernels.PG_SEM_CUDA), "cpu": int(_kernels.PG_SEM_CPU)}
# columns of the backprop kernel's (N, ACC_STRIDE) sums: 6 gradient components from ACC_GRAD
ACC_GRAD = int(_kernels.PG_ACC_GRAD)
ACC_SINGULAR = int(_kernels.PG_ACC_SINGULAR)
ACC_STRIDE = int(_kernels.PG_ACC_STRIDE)
