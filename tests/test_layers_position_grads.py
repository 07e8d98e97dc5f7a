"""The NumPy layers' backward(wrt=positions/extents) against central finite differences (they
need ``continuous_conv_backward(..., wrt=...)``): with and without a window function (chained
through ``window_function_derivative``), scalar and per-point extents, both layers."""

import numpy as np
import pytest

from geomops.layers import ContinuousConv, ContinuousConvTranspose


def _window(u):
    return np.clip(1 - u, 0, None) ** 3


def _window_derivative(u):
    return -3 * np.clip(1 - u, 0, None) ** 2


def _fd(loss, arr, grad, count=8, eps=1e-7, seed=1):
    flat, gflat = arr.reshape(-1), np.asarray(grad).reshape(-1)
    for k in np.random.default_rng(seed).choice(flat.size, size=min(count, flat.size), replace=False):
        old = flat[k]
        flat[k] = old + eps
        up = loss()
        flat[k] = old - eps
        down = loss()
        flat[k] = old
        assert gflat[k] == pytest.approx((up - down) / (2 * eps), rel=2e-5, abs=1e-6)


@pytest.mark.parametrize("window", [False, True])
@pytest.mark.parametrize("extents", ["scalar", "per_point"])
@pytest.mark.parametrize("cls", [ContinuousConv, ContinuousConvTranspose])
def test_layer_position_and_extent_gradients(cls, extents, window):
    rng = np.random.default_rng(3)
    xi, xo = rng.random((30, 3)), rng.random((30, 3))
    feats = rng.standard_normal((30, 2))
    ext = np.asarray(0.9) if extents == "scalar" else rng.uniform(0.8, 1.0, 30)
    kw = dict(window_function=_window, window_function_derivative=_window_derivative) if window else {}
    layer = cls(2, 3, 3, activation="tanh", use_dense_layer_for_center=True, dtype=np.float64, seed=4, **kw)
    layer.bias[:] = rng.uniform(-0.1, 0.1, 3)
    g = rng.standard_normal((30, 3))

    def loss():
        return float(np.sum(layer(feats, xi, xo, ext) * g))

    loss()
    grads = layer.backward(g, wrt=("kernel", "inp_features", "inp_positions", "out_positions", "extents"))
    assert grads.extents.shape == ext.shape and grads.bias is None
    _fd(loss, xi, grads.inp_positions)
    _fd(loss, xo, grads.out_positions)
    _fd(loss, ext, grads.extents)
    _fd(loss, layer.kernel, grads.kernel)
    # the default set leaves positions out (no extra cost)
    default = layer.backward(g)
    assert default.inp_positions is None and default.extents is None


def test_window_without_derivative_says_what_is_missing():
    rng = np.random.default_rng(5)
    pts, feats = rng.random((20, 3)), rng.standard_normal((20, 2))
    layer = ContinuousConv(2, 2, 2, window_function=_window, dtype=np.float64)
    layer(feats, pts, pts, 0.5)
    with pytest.raises(ValueError, match="window_function_derivative"):
        layer.backward(np.ones((20, 2)), wrt=["inp_positions"])
