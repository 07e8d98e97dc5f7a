"""geomops.layers with device arrays (the CUDA backend in the host emulation, or a real device).

The search layers run their ops on device arrays and return DeviceArrays; their backward
computes on the host and returns DeviceArrays; both are compared with the layers on NumPy
arrays. The convolution layers (NumPy parameters, activation and window functions) refuse a
device array up front with a TypeError naming the argument."""

import numpy as np
import pytest

from geomops import _backend
from geomops.layers import ContinuousConv, ContinuousConvTranspose, FixedRadiusSearch, KNNSearch, RadiusSearch

from conftest import BACKENDS, use_backend

DEVICE_BACKENDS = [b for b in BACKENDS if b != "cpu"]


@pytest.fixture(params=DEVICE_BACKENDS)
def be(request):
    with use_backend(request.param) as dev:
        yield _backend.resolve(dev)


def _cloud(n, seed):
    return np.random.default_rng(seed).random((n, 3))


def _sorted_rows(res):
    """(index, distance) of each row in index order: CUDA's radius search orders rows otherwise."""
    idx, rs, dist = (np.asarray(a) for a in res)
    order = np.concatenate([rs[i] + np.argsort(idx[rs[i]:rs[i + 1]], kind="stable") for i in range(len(rs) - 1)]
                           + [np.zeros(0, np.int64)]).astype(np.int64)
    return idx[order], rs, dist[order], order


@pytest.mark.parametrize("metric", ["L1", "L2", "Linf"])
@pytest.mark.parametrize("kind", ["fixed", "radius", "knn"])
def test_search_layers_on_device_arrays(be, metric, kind):
    pts, qs = _cloud(60, 1), _cloud(25, 2)
    radii = np.random.default_rng(3).uniform(0.2, 0.4, 25)
    if kind == "fixed":
        make, extra, dextra = (lambda: FixedRadiusSearch(metric=metric, return_distances=True)), (0.3,), (0.3,)
    elif kind == "radius":
        make = lambda: RadiusSearch(metric=metric, return_distances=True, normalize_distances=True)  # noqa: E731
        extra, dextra = (radii,), (be.from_host(radii),)
    else:
        make, extra, dextra = (lambda: KNNSearch(metric=metric, return_distances=True)), (4,), (4,)
    host_layer, dev_layer = make(), make()
    res, ctx = host_layer.forward(pts, qs, *extra)
    dres, dctx = dev_layer.forward(be.from_host(pts), be.from_host(qs), *dextra)
    assert all(type(a).__name__ == "DeviceArray" for a in dres)
    dres = type(dres)(*(a.get() for a in dres))
    h, d = _sorted_rows(res), _sorted_rows(dres)
    for a, b in zip(h[:2], d[:2]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(d[2], h[2], rtol=1e-12, atol=1e-15)

    g = np.random.default_rng(4).standard_normal(res.neighbors_distance.shape)
    dg = np.empty_like(g)
    dg[d[3]] = g[h[3]]  # the same gradient per (query, point) pair in the device call's order
    grads = host_layer.backward(g, ctx)
    dgrads = dev_layer.backward(be.from_host(dg), dctx)
    for a, b in zip(grads, dgrads):
        if a is None:
            assert b is None
        else:
            assert type(b).__name__ == "DeviceArray"
            np.testing.assert_allclose(b.get(), a, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("layer_type", [ContinuousConv, ContinuousConvTranspose])
@pytest.mark.parametrize("arg", ["inp_features", "inp_positions", "out_positions", "extents", "importance",
                                 "user_neighbors_index", "user_neighbors_row_splits", "user_neighbors_importance"])
def test_conv_layers_refuse_device_arrays(be, layer_type, arg):
    pts = _cloud(12, 5)
    imp_name = "inp_importance" if layer_type is ContinuousConv else "out_importance"
    kw = dict(inp_features=np.ones((12, 2)), inp_positions=pts, out_positions=pts, extents=0.5,
              user_neighbors_index=np.arange(12, dtype=np.int32),
              user_neighbors_row_splits=np.arange(13, dtype=np.int64), user_neighbors_importance=np.ones(12))
    kw[imp_name] = np.ones(12)
    name = imp_name if arg == "importance" else arg
    kw[name] = be.from_host(np.asarray(kw[name]))
    layer = layer_type(2, 3, 2, dtype=np.float64, seed=0)
    with pytest.raises(TypeError, match=rf"^{name} is a device array \(DeviceArray\): geomops\.layers\."
                                        rf"{layer_type.__name__} runs on NumPy arrays; pass a host copy"):
        layer(**kw)


@pytest.mark.parametrize("layer_type", [ContinuousConv, ContinuousConvTranspose])
def test_conv_layer_backward_refuses_a_device_gradient(be, layer_type):
    pts = _cloud(12, 6)
    layer = layer_type(2, 3, 2, dtype=np.float64, seed=0)
    out = layer(np.ones((12, 2)), pts, pts, 0.5)
    with pytest.raises(TypeError, match=r"^out_features_gradient is a device array"):
        layer.backward(be.from_host(np.ones_like(out)))
