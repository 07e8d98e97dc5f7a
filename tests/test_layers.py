"""The ContinuousConv layer: forward equals the op composition, backward matches finite differences."""

import numpy as np
import pytest

import geomops
from geomops.layers import ContinuousConv


def _cloud(n, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return rng.random((n, 3)).astype(dtype), rng.standard_normal((n, 4)).astype(dtype)


def test_forward_matches_ops():
    pts, feats = _cloud(200)
    layer = ContinuousConv(4, 6, (3, 3, 3), activation="relu", dtype=np.float64, seed=1)
    layer.bias[:] = 0.01
    out = layer(feats, pts, pts, extents=0.3)
    nb = geomops.fixed_radius_search(pts, pts, 0.15)
    ref = geomops.continuous_conv(layer.kernel, pts, np.array([[0.3]]), np.zeros(3), pts, feats, None,
                                  nb.neighbors_index, None, nb.neighbors_row_splits, normalize=True)
    np.testing.assert_allclose(out, np.maximum(ref + 0.01, 0), rtol=1e-12, atol=1e-14)
    assert layer._avg_neighbors == pytest.approx(nb.neighbors_index.size / 200)


def test_window_function_and_per_point_extents():
    pts, feats = _cloud(150, seed=2)
    window = lambda d: np.clip(1 - d, 0, None) ** 3  # noqa: E731
    layer = ContinuousConv(4, 3, (2, 2, 2), window_function=window, dtype=np.float64, seed=3)
    ext = np.full(150, 0.3)
    out = layer(feats, pts, pts, extents=ext)
    nb = geomops.radius_search(pts, pts, ext / 2, return_distances=True, normalize_distances=True)
    ref = geomops.continuous_conv(layer.kernel, pts, ext.reshape(-1, 1), np.zeros(3), pts, feats, None,
                                  nb.neighbors_index, window(nb.neighbors_distance), nb.neighbors_row_splits,
                                  normalize=True)
    np.testing.assert_allclose(out, ref + layer.bias, rtol=1e-12, atol=1e-14)
    # the scalar-extent path uses the window too (squared L2 distance / r^2)
    out2 = layer(feats, pts, pts, extents=0.3)
    nb2 = geomops.fixed_radius_search(pts, pts, 0.15, return_distances=True)
    ref2 = geomops.continuous_conv(layer.kernel, pts, np.array([[0.3]]), np.zeros(3), pts, feats, None,
                                   nb2.neighbors_index, window(nb2.neighbors_distance / 0.15 ** 2),
                                   nb2.neighbors_row_splits, normalize=True)
    np.testing.assert_allclose(out2, ref2, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("activation", [None, "tanh"])
def test_backward_finite_differences(activation):
    pts, feats = _cloud(40, seed=4)
    layer = ContinuousConv(4, 2, (2, 2, 2), activation=activation, use_dense_layer_for_center=True,
                           dtype=np.float64, seed=5)
    g = np.random.default_rng(6).standard_normal((40, 2))

    def loss():
        return float(np.sum(layer(feats, pts, pts, extents=0.5) * g))

    loss()
    grads = layer.backward(g)
    eps = 1e-6
    for name, arr, grad in [("kernel", layer.kernel, grads.kernel), ("bias", layer.bias, grads.bias),
                            ("dense", layer.dense_kernel, grads.dense_kernel),
                            ("features", feats, grads.inp_features)]:
        flat, gflat = arr.reshape(-1), grad.reshape(-1)
        for k in np.random.default_rng(7).choice(flat.size, size=min(12, flat.size), replace=False):
            old = flat[k]
            flat[k] = old + eps
            up = loss()
            flat[k] = old - eps
            down = loss()
            flat[k] = old
            assert gflat[k] == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-7), name


def test_bad_arguments():
    with pytest.raises(ValueError, match="activation"):
        ContinuousConv(4, 2, (3, 3, 3), activation="softmax")
    with pytest.raises(ValueError, match="kernel_size"):
        ContinuousConv(4, 2, (3, 3))
    with pytest.raises(ValueError, match="radius_search_metric"):
        ContinuousConv(4, 2, (3, 3, 3), radius_search_metric="L3")
    layer = ContinuousConv(4, 2, (3, 3, 3))
    pts, feats = _cloud(10, dtype=np.float32)
    with pytest.raises(ValueError, match="inp_features"):
        layer(feats[:, :3], pts, pts, 0.2)
    with pytest.raises(RuntimeError, match="backward"):
        ContinuousConv(4, 2, (3, 3, 3)).backward(np.zeros((10, 2), np.float32))
