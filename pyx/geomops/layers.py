"""A framework-free continuous-convolution layer (Open3D-ML's ``ContinuousConv`` layer for NumPy).

The layer owns its parameters (``kernel``, ``bias``, optionally ``dense_kernel``), runs the
neighbor search, the convolution, the bias and the activation, and keeps what it needs so that
:meth:`ContinuousConv.backward` returns the gradients of all parameters and of the input
features. Update the parameters yourself (they are plain NumPy arrays)::

    layer = ContinuousConv(in_channels=8, filters=16, kernel_size=(3, 3, 3), seed=0)
    out = layer(feats, pts, pts, extents=0.1)
    grads = layer.backward(dloss_dout)
    layer.kernel -= lr * grads.kernel
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from . import _validate as V
from .cconv import continuous_conv, continuous_conv_backward
from .search import fixed_radius_search, radius_search

__all__ = ["ContinuousConv", "ContinuousConvLayerGradients"]

_ACTIVATIONS = (None, "relu", "tanh")


class ContinuousConvLayerGradients(NamedTuple):
    """Gradients returned by :meth:`ContinuousConv.backward`."""
    kernel: np.ndarray
    bias: Optional[np.ndarray]
    dense_kernel: Optional[np.ndarray]
    inp_features: np.ndarray
    inp_importance: Optional[np.ndarray]


class ContinuousConv:
    """Continuous convolution layer with neighbor search, bias and activation.

    Parameters
    ----------
    in_channels : int
        Channels of the input features (Cin).
    filters : int
        Output channels (Cout).
    kernel_size : tuple of 3 ints
        Filter resolution (depth, height, width) = (z, y, x); the kernel has shape
        ``(*kernel_size, in_channels, filters)``.
    activation : None, "relu" or "tanh"
        Applied after the bias.
    use_bias : bool, default True
    align_corners, coordinate_mapping, interpolation, normalize
        As in :func:`geomops.continuous_conv`; the layer defaults are Open3D's layer defaults
        (``normalize=True``).
    radius_search_ignore_query_points : bool, default False
        Drop neighbors with exactly the query's coordinates.
    radius_search_metric : {"L1", "L2", "Linf"}, default "L2"
    offset : array-like [3] or None
        Filter offset in cell units (only with ``align_corners=False``).
    window_function : callable or None
        Maps normalised neighbor distances (``d/r^2`` for squared L2 distances, ``d/r``
        otherwise, so 1 is the search radius) to ``neighbors_importance``.
    use_dense_layer_for_center : bool, default False
        Add ``inp_features @ dense_kernel`` (requires the same input and output points).
    dtype : np.float32 or np.float64
    seed : int or None
        Seed of the kernel initialisation, uniform in [-0.05, 0.05] (Open3D's default).
    max_temp_mem_MB, num_threads
        Passed to the ops.
    """

    def __init__(self, in_channels, filters, kernel_size, *, activation=None, use_bias=True,
                 align_corners=True, coordinate_mapping="ball_to_cube_radial", interpolation="linear",
                 normalize=True, radius_search_ignore_query_points=False, radius_search_metric="L2",
                 offset=None, window_function=None, use_dense_layer_for_center=False, dtype=np.float32,
                 seed=None, max_temp_mem_MB=64, num_threads=None):
        self.in_channels = V.check_int(in_channels, "in_channels", minimum=1)
        self.filters = V.check_int(filters, "filters", minimum=1)
        ks = tuple(V.check_int(k, "kernel_size", minimum=1) for k in np.atleast_1d(kernel_size).tolist())
        if len(ks) != 3:
            raise ValueError(f"kernel_size must have 3 entries (depth, height, width), got {kernel_size!r}")
        self.kernel_size = ks
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {_ACTIVATIONS} but got {activation!r}")
        self.activation = activation
        self.dtype = np.dtype(dtype)
        if self.dtype not in V.FLOAT_DTYPES:
            raise TypeError(f"dtype must be float32 or float64, got {self.dtype}")
        if radius_search_metric not in ("L1", "L2", "Linf"):
            raise ValueError(f"radius_search_metric must be one of ('L1', 'L2', 'Linf') but got "
                             f"{radius_search_metric!r}")
        if window_function is not None and not callable(window_function):
            raise TypeError("window_function must be callable or None")
        self.conv_options = dict(align_corners=align_corners, coordinate_mapping=coordinate_mapping,
                                 interpolation=interpolation, normalize=normalize,
                                 max_temp_mem_MB=max_temp_mem_MB, num_threads=num_threads)
        self.radius_search_ignore_query_points = bool(radius_search_ignore_query_points)
        self.radius_search_metric = radius_search_metric
        self.window_function = window_function
        self.num_threads = num_threads
        rng = np.random.default_rng(seed)
        self.kernel = rng.uniform(-0.05, 0.05, ks + (self.in_channels, self.filters)).astype(self.dtype)
        self.bias = np.zeros(self.filters, self.dtype) if use_bias else None
        self.dense_kernel = (rng.uniform(-0.05, 0.05, (self.in_channels, self.filters)).astype(self.dtype)
                             if use_dense_layer_for_center else None)
        self.offset = np.zeros(3, self.dtype) if offset is None else \
            V.float_array(np.asarray(offset, self.dtype), "offset", shape=(3,))
        self._cache = None
        self._avg_neighbors = None

    # -- neighbors ---------------------------------------------------------------------------

    def _neighbors(self, inp_positions, out_positions, extents, hash_table):
        metric = self.radius_search_metric
        want_dist = self.window_function is not None
        if extents.ndim == 0:
            radius = float(extents) / 2
            nb = fixed_radius_search(inp_positions, out_positions, radius, hash_table=hash_table,
                                     metric=metric, ignore_query_point=self.radius_search_ignore_query_points,
                                     return_distances=want_dist, num_threads=self.num_threads)
            importance = None
            if want_dist:
                scale = radius ** 2 if metric == "L2" else radius
                importance = self._window(nb.neighbors_distance / scale)
            return nb.neighbors_index, nb.neighbors_row_splits, importance
        radii = (extents / 2).astype(self.dtype)
        nb = radius_search(inp_positions, out_positions, radii, metric=metric,
                           ignore_query_point=self.radius_search_ignore_query_points,
                           return_distances=want_dist, normalize_distances=want_dist,
                           num_threads=self.num_threads)
        importance = self._window(nb.neighbors_distance) if want_dist else None
        return nb.neighbors_index, nb.neighbors_row_splits, importance

    def _window(self, normalized_distance):
        w = np.asarray(self.window_function(normalized_distance), dtype=self.dtype)
        if w.shape != normalized_distance.shape:
            raise ValueError(f"window_function must return one value per neighbor (shape "
                             f"{normalized_distance.shape}), got shape {w.shape}")
        return np.ascontiguousarray(w)

    # -- forward / backward ------------------------------------------------------------------

    def __call__(self, inp_features, inp_positions, out_positions, extents, inp_importance=None,
                 fixed_radius_search_hash_table=None, user_neighbors_index=None,
                 user_neighbors_row_splits=None, user_neighbors_importance=None):
        """Apply the layer.

        Parameters
        ----------
        inp_features : ndarray [Ni, in_channels]
        inp_positions : ndarray [Ni, 3]
        out_positions : ndarray [No, 3]
        extents : float or ndarray [No]
            Filter extent (the search radius is extents / 2): a scalar uses the hash-grid
            fixed-radius search, one value per output point uses the k-d tree radius search.
        inp_importance : ndarray [Ni] or None
        fixed_radius_search_hash_table : optional table from
            :func:`geomops.build_spatial_hash_table` (scalar extents only).
        user_neighbors_index, user_neighbors_row_splits, user_neighbors_importance : optional
            Neighbor lists to use instead of searching.

        Returns
        -------
        out_features : ndarray [No, filters]
        """
        dt = self.dtype
        feats = V.float_array(inp_features, "inp_features", shape=(None, self.in_channels), dtype=dt)
        xi = V.float_array(inp_positions, "inp_positions", shape=(feats.shape[0], 3), dtype=dt)
        xo = V.float_array(out_positions, "out_positions", shape=(None, 3), dtype=dt)
        ext = np.asarray(extents, dtype=dt)
        if ext.ndim == 1 and ext.shape[0] != xo.shape[0]:
            raise ValueError(f"extents must be a scalar or have shape [{xo.shape[0]}] (one per output "
                             f"point), got shape {ext.shape}")
        if ext.ndim > 1:
            raise ValueError(f"extents must be a scalar or 1-D [num_out_points], got shape {ext.shape}")
        if user_neighbors_index is not None:
            if user_neighbors_row_splits is None:
                raise ValueError("user_neighbors_row_splits must be given with user_neighbors_index")
            idx, rs, imp = user_neighbors_index, user_neighbors_row_splits, user_neighbors_importance
        else:
            idx, rs, imp = self._neighbors(xi, xo, ext, fixed_radius_search_hash_table)
        ext2 = ext.reshape(1, 1) if ext.ndim == 0 else ext.reshape(-1, 1)
        args = (self.kernel, xo, ext2, self.offset, xi, feats, inp_importance, idx, imp, rs)
        pre = continuous_conv(*args, **self.conv_options)
        if self.dense_kernel is not None:
            if xo.shape[0] != xi.shape[0]:
                raise ValueError("use_dense_layer_for_center requires as many output as input points")
            pre = pre + feats @ self.dense_kernel
        if self.bias is not None:
            pre = pre + self.bias
        out = pre
        if self.activation == "relu":
            out = np.maximum(pre, 0)
        elif self.activation == "tanh":
            out = np.tanh(pre)
        self._cache = (args, pre, out, feats)
        rs_arr = np.asarray(rs)
        self._avg_neighbors = float(rs_arr[-1]) / max(len(rs_arr) - 1, 1)
        return out

    def backward(self, out_features_gradient):
        """Gradients of ``sum(out * out_features_gradient)`` for the last call.

        Returns
        -------
        ContinuousConvLayerGradients
            ``(kernel, bias or None, dense_kernel or None, inp_features, inp_importance or None)``.
        """
        if self._cache is None:
            raise RuntimeError("call the layer before backward()")
        args, pre, out, feats = self._cache
        g = V.float_array(out_features_gradient, "out_features_gradient", shape=out.shape, dtype=self.dtype)
        if self.activation == "relu":
            g = g * (pre > 0)
        elif self.activation == "tanh":
            g = g * (1 - out * out)
        g = np.ascontiguousarray(g, dtype=self.dtype)
        grads = continuous_conv_backward(*args, g, **self.conv_options)
        d_feats = grads.inp_features
        d_dense = None
        if self.dense_kernel is not None:
            d_dense = feats.T @ g
            d_feats = d_feats + g @ self.dense_kernel.T
        d_bias = g.sum(axis=0) if self.bias is not None else None
        return ContinuousConvLayerGradients(grads.filters, d_bias, d_dense, d_feats, grads.inp_importance)

    def __repr__(self):
        return (f"ContinuousConv(in_channels={self.in_channels}, filters={self.filters}, "
                f"kernel_size={self.kernel_size}, activation={self.activation!r}, dtype={self.dtype.name})")
