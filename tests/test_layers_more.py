"""The NumPy layers beyond ContinuousConv's basics: the transpose layer, the search layers,
explicit contexts and threads, pickling, np.savez save/load, kernel_size and activations."""

import io
import pickle
import threading

import numpy as np
import pytest

import geomops
from geomops.layers import (ContinuousConv, ContinuousConvTranspose, FixedRadiusSearch, KNNSearch, LayerContext,
                            RadiusSearch)


def _cloud(n, seed=0, dtype=np.float64, channels=4):
    rng = np.random.default_rng(seed)
    return rng.random((n, 3)).astype(dtype), rng.standard_normal((n, channels)).astype(dtype)


def _fd_check(loss, arr, grad, count=10, eps=1e-6, rel=1e-5, abs_=1e-7, seed=7):
    flat, gflat = arr.reshape(-1), np.asarray(grad).reshape(-1)
    for k in np.random.default_rng(seed).choice(flat.size, size=min(count, flat.size), replace=False):
        old = flat[k]
        flat[k] = old + eps
        up = loss()
        flat[k] = old - eps
        down = loss()
        flat[k] = old
        assert gflat[k] == pytest.approx((up - down) / (2 * eps), rel=rel, abs=abs_)


# ---- constructor arguments ---------------------------------------------------------------------

def test_int_kernel_size_is_a_cube():
    assert ContinuousConv(4, 2, 3).kernel.shape == (3, 3, 3, 4, 2)
    assert ContinuousConv(4, 2, [2]).kernel.shape == (2, 2, 2, 4, 2)
    assert ContinuousConvTranspose(4, 2, 2).kernel.shape == (2, 2, 2, 4, 2)
    with pytest.raises(ValueError, match="kernel_size"):
        ContinuousConv(4, 2, (3, 3))


def test_callable_activation():
    pts, feats = _cloud(60, seed=1)
    g = np.random.default_rng(2).standard_normal((60, 3))
    leaky = lambda x: np.where(x > 0, x, 0.1 * x)  # noqa: E731
    layer = ContinuousConv(4, 3, 2, activation=leaky, activation_derivative=lambda x: np.where(x > 0, 1.0, 0.1),
                           dtype=np.float64, seed=3)
    layer.bias[:] = 0.02
    out = layer(feats, pts, pts, 0.5)
    ref = ContinuousConv(4, 3, 2, dtype=np.float64, seed=3)
    ref.bias[:] = 0.02
    np.testing.assert_array_equal(out, leaky(ref(feats, pts, pts, 0.5)))
    grads = layer.backward(g)
    _fd_check(lambda: float(np.sum(layer(feats, pts, pts, 0.5) * g)), layer.kernel, grads.kernel)
    # np.tanh's derivative is known; a callable without one works forward, and backward says what is missing
    ContinuousConv(4, 3, 2, activation=np.tanh, dtype=np.float64)(feats, pts, pts, 0.5)
    unknown = ContinuousConv(4, 3, 2, activation=np.sin, dtype=np.float64)
    unknown(feats, pts, pts, 0.5)
    with pytest.raises(TypeError, match="activation_derivative"):
        unknown.backward(g)
    sig = ContinuousConv(4, 3, 2, activation="sigmoid", dtype=np.float64, seed=4)
    sig(feats, pts, pts, 0.5)
    _fd_check(lambda: float(np.sum(sig(feats, pts, pts, 0.5) * g)), sig.kernel, sig.backward(g).kernel)


# ---- the transpose layer -----------------------------------------------------------------------

def test_transpose_forward_matches_ops():
    xi, feats = _cloud(80, seed=5)
    xo, _ = _cloud(60, seed=6)
    layer = ContinuousConvTranspose(4, 3, 3, dtype=np.float64, seed=7, activation="relu")
    layer.bias[:] = 0.01
    out = layer(feats, xi, xo, 0.4)
    fwd = geomops.fixed_radius_search(xo, xi, 0.2)
    inv = geomops.invert_neighbors_list(60, fwd.neighbors_index, fwd.neighbors_row_splits, np.empty(0))
    ref = geomops.continuous_conv_transpose(layer.kernel, xo, None, np.array([[0.4]]), np.zeros(3), xi, feats,
                                            fwd.neighbors_index, None, fwd.neighbors_row_splits,
                                            inv.neighbors_index, None, inv.neighbors_row_splits, normalize=True)
    np.testing.assert_array_equal(out, np.maximum(ref + 0.01, 0))


def test_transpose_is_the_adjoint_of_the_conv_layer():
    xa, fa = _cloud(70, seed=8, channels=3)
    xb, _ = _cloud(50, seed=9)
    conv = ContinuousConv(3, 2, 3, use_bias=False, normalize=False, dtype=np.float64, seed=10)
    tr = ContinuousConvTranspose(2, 3, 3, use_bias=False, normalize=False, dtype=np.float64)
    tr.kernel[...] = conv.kernel.transpose(0, 1, 2, 4, 3)
    gb = np.random.default_rng(11).standard_normal((50, 2))
    lhs = np.sum(conv(fa, xa, xb, 0.5) * gb)            # <conv(f), g>
    rhs = np.sum(fa * tr(gb, xb, xa, 0.5))              # <f, transpose(g)>
    assert lhs == pytest.approx(rhs, rel=1e-12)


@pytest.mark.parametrize("extents", ["scalar", "per_point"])
def test_transpose_backward_finite_differences(extents):
    xi, feats = _cloud(40, seed=12)
    xo, _ = _cloud(40, seed=13)  # as many as the input points: the dense center needs it
    ext = 0.6 if extents == "scalar" else np.random.default_rng(14).uniform(0.4, 0.8, 40)
    window = lambda u: np.clip(1 - u, 0, None) ** 3  # noqa: E731
    layer = ContinuousConvTranspose(4, 2, 2, activation="tanh", use_dense_layer_for_center=True,
                                    window_function=window, dtype=np.float64, seed=15)
    imp = np.random.default_rng(16).uniform(0.5, 1.5, 40)
    g = np.random.default_rng(17).standard_normal((40, 2))

    def loss():
        return float(np.sum(layer(feats, xi, xo, ext, out_importance=imp) * g))

    loss()
    grads = layer.backward(g)
    for arr, grad in [(layer.kernel, grads.kernel), (layer.bias, grads.bias),
                      (layer.dense_kernel, grads.dense_kernel), (feats, grads.inp_features),
                      (imp, grads.out_importance)]:
        _fd_check(loss, arr, grad)
    assert set(layer.grads) == {"kernel", "bias", "dense_kernel"}


# ---- the search layers -------------------------------------------------------------------------

def test_search_layers_match_ops():
    pts, _ = _cloud(120, seed=18)
    qs, _ = _cloud(40, seed=19)
    radii = np.random.default_rng(20).uniform(0.1, 0.3, 40)
    a = FixedRadiusSearch(return_distances=True, metric="L1")(pts, qs, 0.2)
    b = geomops.fixed_radius_search(pts, qs, 0.2, metric="L1", return_distances=True)
    c = RadiusSearch(return_distances=True, normalize_distances=True, index_dtype=np.int64)(pts, qs, radii)
    d = geomops.radius_search(pts, qs, radii, return_distances=True, normalize_distances=True, index_dtype=np.int64)
    e = KNNSearch(return_distances=True, ignore_query_point=True)(pts, pts, 5)
    f = geomops.knn_search(pts, pts, 5, ignore_query_point=True, return_distances=True)
    for x, y in [(a, b), (c, d), (e, f)]:
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v)
    assert c.neighbors_index.dtype == np.int64
    table = geomops.build_spatial_hash_table(pts, 0.2)
    t = FixedRadiusSearch()(pts, qs, 0.2, hash_table=table)
    np.testing.assert_array_equal(t.neighbors_index, geomops.fixed_radius_search(pts, qs, 0.2).neighbors_index)
    with pytest.raises(ValueError, match="metric"):
        KNNSearch(metric="L3")
    with pytest.raises(TypeError, match="index_dtype"):
        RadiusSearch(index_dtype=np.float32)


@pytest.mark.parametrize("metric", ["L1", "L2", "Linf"])
@pytest.mark.parametrize("kind", ["fixed", "radius", "knn"])
def test_search_backward_finite_differences(metric, kind):
    pts, _ = _cloud(60, seed=21)
    qs, _ = _cloud(20, seed=22)
    radii = np.random.default_rng(23).uniform(0.2, 0.4, 20)
    if kind == "fixed":
        layer, extra = FixedRadiusSearch(metric=metric, return_distances=True), (0.3,)
    elif kind == "radius":
        layer, extra = RadiusSearch(metric=metric, return_distances=True, normalize_distances=True), (radii,)
    else:
        layer, extra = KNNSearch(metric=metric, return_distances=True), (4,)
    res, ctx = layer.forward(pts, qs, *extra)
    g = np.random.default_rng(24).standard_normal(res.neighbors_distance.shape)

    def loss():  # the same neighbor entries, distances recomputed (the set is locally constant)
        again, _ = layer.forward(pts, qs, *extra)
        np.testing.assert_array_equal(again.neighbors_index, res.neighbors_index)
        return float(np.sum(again.neighbors_distance * g))

    grads = layer.backward(g, ctx)
    _fd_check(loss, pts, grads.points, eps=1e-7)
    _fd_check(loss, qs, grads.queries, eps=1e-7)
    if kind == "radius":
        _fd_check(loss, radii, grads.radii, eps=1e-7)
    else:
        assert grads.radii is None
    assert layer.grads == {} and layer.params == {}
    with pytest.raises(RuntimeError, match="return_distances"):
        plain = KNNSearch()
        plain(pts, qs, 3)
        plain.backward(np.zeros(60))


# ---- contexts, threads, pickling, save/load ----------------------------------------------------

def test_explicit_context_and_errors():
    pts, feats = _cloud(50, seed=25)
    layer = ContinuousConv(4, 2, 2, dtype=np.float64, seed=26)
    out1, ctx1 = layer.forward(feats, pts, pts, 0.5)
    out2, ctx2 = layer.forward(feats[::-1].copy(), pts, pts, 0.5)
    assert isinstance(ctx1, LayerContext)
    g = np.ones_like(out1)
    a = layer.backward(g, ctx1)
    b = layer.backward(g, ctx2)
    assert not np.array_equal(a.kernel, b.kernel)
    layer(feats, pts, pts, 0.5)  # the remembered call is the first one's inputs
    np.testing.assert_array_equal(layer.backward(g).kernel, a.kernel)
    with pytest.raises(ValueError, match="context"):
        ContinuousConv(4, 2, 2, dtype=np.float64).backward(g, ctx1)
    with pytest.raises(RuntimeError, match="backward"):
        ContinuousConv(4, 2, 2).backward(g)
    with pytest.raises(RuntimeError, match="backward"):
        ContinuousConv(4, 2, 2).grads
    with pytest.raises(ValueError, match="wrt"):
        layer.backward(g, ctx1, wrt=["kernel", "weights"])
    only = layer.backward(g, ctx1, wrt=["bias"])
    assert only.kernel is None and only.inp_features is None and only.bias is not None
    with pytest.raises(TypeError, match="pickled"):
        pickle.dumps(ctx1)


def test_threads_sharing_one_layer_do_not_mix_calls():
    """4 threads, one layer, different point counts: every thread gets its own call's gradients."""
    layer = ContinuousConv(4, 3, 2, activation="relu", dtype=np.float64, seed=27)
    clouds = [_cloud(40 + 13 * t, seed=30 + t) for t in range(4)]
    grads_out = [np.random.default_rng(40 + t).standard_normal((40 + 13 * t, 3)) for t in range(4)]
    expected = []
    for (pts, feats), g in zip(clouds, grads_out):
        layer(feats, pts, pts, 0.5)
        expected.append(layer.backward(g))
    errors = []
    barrier = threading.Barrier(4)

    def work(t):
        pts, feats = clouds[t]
        barrier.wait()
        for _ in range(15):
            layer(feats, pts, pts, 0.5)
            got = layer.backward(grads_out[t])
            if not (np.array_equal(got.kernel, expected[t].kernel)
                    and np.array_equal(got.inp_features, expected[t].inp_features)
                    and np.array_equal(layer.grads["kernel"], expected[t].kernel)):
                errors.append(t)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []


def test_pickle_keeps_only_the_parameters():
    layer = ContinuousConv(4, 8, 3, dtype=np.float32, seed=50, use_dense_layer_for_center=True,
                           activation="relu")
    fresh = len(pickle.dumps(layer))
    pts, feats = _cloud(100_000, seed=51, dtype=np.float32)
    layer(feats, pts, pts, 0.02)
    layer.backward(np.ones((100_000, 8), np.float32))
    blob = pickle.dumps(layer)
    assert len(blob) < 2 * fresh and len(blob) < 20_000
    copy = pickle.loads(blob)
    np.testing.assert_array_equal(copy.kernel, layer.kernel)
    small_pts, small_feats = _cloud(200, seed=52, dtype=np.float32)
    np.testing.assert_array_equal(copy(small_feats, small_pts, small_pts, 0.3),
                                  layer(small_feats, small_pts, small_pts, 0.3))
    copy.backward(np.ones((200, 8), np.float32))  # the copy has its own per-thread state
    for cls in (ContinuousConvTranspose, FixedRadiusSearch, RadiusSearch, KNNSearch):
        obj = cls(4, 2, 2) if cls is ContinuousConvTranspose else cls()
        assert type(pickle.loads(pickle.dumps(obj))) is cls


def test_save_and_load_with_savez(tmp_path):
    a = ContinuousConv(4, 3, 2, use_dense_layer_for_center=True, seed=60)
    b = ContinuousConv(4, 3, 2, use_dense_layer_for_center=True, seed=61)
    kernel_ref = b.kernel
    path = tmp_path / "layer.npz"
    a.save(path)
    b.load(path)
    assert b.kernel is kernel_ref  # loaded in place
    for name in a.params:
        np.testing.assert_array_equal(b.params[name], a.params[name])
    assert set(np.load(path).files) == {"kernel", "bias", "dense_kernel"}
    buf = io.BytesIO()
    ContinuousConvTranspose(4, 3, 2, seed=62).save(buf)
    buf.seek(0)
    with pytest.raises(ValueError, match="parameters"):
        ContinuousConv(4, 3, 2, use_dense_layer_for_center=True).load(buf)
    buf.seek(0)
    with pytest.raises(ValueError, match="shape"):
        ContinuousConvTranspose(4, 3, 3).load(buf)
    buf = io.BytesIO()
    KNNSearch().save(buf)
    buf.seek(0)
    KNNSearch().load(buf)
