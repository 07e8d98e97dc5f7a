"""PyTorch face of geomops: Open3D-ML's ``open3d.ml.torch`` ops and layers on geomops' kernels.

A model written for ``open3d.ml.torch`` runs after changing one import::

    import geomops.torch as ml3d          # was: import open3d.ml.torch as ml3d

    conv = ml3d.layers.ContinuousConv(in_channels=8, filters=16, kernel_size=[3, 3, 3])
    out = conv(feats, pts, pts, extents=0.1)
    nb = ml3d.ops.fixed_radius_search(...)

:mod:`geomops.torch.ops` has the torch signatures, defaults and named-tuple return types of
Open3D's ops, as ``torch.autograd.Function`` s whose backward runs geomops' gradient kernels
(filters, features, importances, and positions and extents). :mod:`geomops.torch.layers` has
the ``torch.nn.Module`` layers. Tensors go in and out without copies (NumPy views on the CPU,
DLPack on CUDA). See docs/torch.md.

Importing :mod:`geomops` never imports torch; importing this module needs it.
"""

try:
    import torch as _torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("geomops.torch needs PyTorch (`pip install torch`; a CPU build: `pip install torch "
                      "--index-url https://download.pytorch.org/whl/cpu`). The rest of geomops works without it.") \
        from exc

from . import layers, ops, return_types  # noqa: E402

__all__ = ["ops", "layers", "return_types"]
