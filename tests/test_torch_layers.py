"""geomops.torch.layers: Open3D's module arguments, results equal to the NumPy layers, training,
a model written for open3d.ml.torch, state_dict names, threads and pickling."""

import io
import pickle
import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")
# small tensors: torch's intra-op threads only add waits (CI machines have 2 shared cores)
torch.set_num_threads(1)

import geomops  # noqa: E402
import geomops.layers as np_layers  # noqa: E402
import geomops.torch as ml3d  # noqa: E402  (the open3d.ml.torch-style import)


def _cloud(n, seed, channels=4, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, generator=g, dtype=dtype), torch.randn(n, channels, generator=g, dtype=dtype)


def _window(u):
    return torch.clamp((1 - u) ** 3, 0, 1)


def _np_window(u):
    return np.clip((1 - u) ** 3, 0, 1)


def test_constructor_defaults_are_open3d():
    conv = ml3d.layers.ContinuousConv(4, 8, 3)
    assert conv.kernel.shape == (3, 3, 3, 4, 8) and conv.kernel.dtype == torch.float32
    assert conv.align_corners is True and conv.normalize is True
    assert conv.coordinate_mapping == "ball_to_cube_radial" and conv.interpolation == "linear"
    assert conv.allow_tf32 is False and conv.radius_search_metric == "L2"
    assert float(conv.kernel.detach().abs().max()) <= 0.05 and torch.all(conv.bias == 0)
    assert sorted(conv.state_dict()) == ["bias", "kernel", "offset"]
    dense = ml3d.layers.ContinuousConv(4, 8, [3, 3, 3], use_dense_layer_for_center=True, name="ignored")
    assert sorted(dense.state_dict()) == ["bias", "dense.weight", "kernel", "offset"]
    assert ml3d.layers.FixedRadiusSearch().index_dtype == torch.int32
    assert ml3d.layers.RadiusSearch().normalize_distances is False
    with pytest.raises(ValueError, match="radius_search_metric"):
        ml3d.layers.ContinuousConv(4, 8, 3, radius_search_metric="L3")
    with pytest.raises(TypeError, match="index_dtype"):
        ml3d.layers.KNNSearch(index_dtype=torch.float32)


def _np_copy(layer, cls, **kw):
    ref = cls(layer.in_channels, layer.filters, layer.kernel_size, dtype=np.float64, **kw)
    ref.kernel[...] = layer.kernel.detach().numpy()
    ref.bias[...] = layer.bias.detach().numpy()
    return ref


@pytest.mark.parametrize("extents", ["scalar", "per_point"])
@pytest.mark.parametrize("metric", ["L2", "Linf"])
def test_conv_equals_numpy_layer_with_window(extents, metric):
    pts, feats = _cloud(150, 1)
    ext = 0.3 if extents == "scalar" else torch.rand(150, dtype=torch.float64) * 0.2 + 0.2
    conv = ml3d.layers.ContinuousConv(4, 3, 3, window_function=_window, radius_search_metric=metric,
                                      activation=torch.tanh).double()
    torch.nn.init.uniform_(conv.bias, -0.1, 0.1)
    ref = _np_copy(conv, np_layers.ContinuousConv, window_function=_np_window, radius_search_metric=metric,
                   activation="tanh")
    f = feats.clone().requires_grad_()
    out = conv(f, pts, pts, ext)
    ext_np = ext if extents == "scalar" else ext.numpy()
    expected = ref(feats.numpy(), pts.numpy(), pts.numpy(), ext_np)
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-12, atol=1e-14)
    g = torch.randn_like(out)
    out.backward(g)
    grads = ref.backward(g.numpy())
    np.testing.assert_allclose(conv.kernel.grad.numpy(), grads.kernel, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(conv.bias.grad.numpy(), grads.bias, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(f.grad.numpy(), grads.inp_features, rtol=1e-11, atol=1e-13)


def test_transpose_equals_numpy_layer():
    xi, feats = _cloud(80, 2)
    xo, _ = _cloud(60, 3)
    ext = torch.rand(80, dtype=torch.float64) * 0.2 + 0.3
    tr = ml3d.layers.ContinuousConvTranspose(4, 3, 2, window_function=_window).double()
    ref = _np_copy(tr, np_layers.ContinuousConvTranspose, window_function=_np_window)
    f = feats.clone().requires_grad_()
    out = tr(f, xi, xo, ext)
    np.testing.assert_allclose(out.detach().numpy(), ref(feats.numpy(), xi.numpy(), xo.numpy(), ext.numpy()),
                               rtol=1e-12, atol=1e-14)
    g = torch.randn_like(out)
    out.backward(g)
    grads = ref.backward(g.numpy())
    np.testing.assert_allclose(tr.kernel.grad.numpy(), grads.kernel, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(f.grad.numpy(), grads.inp_features, rtol=1e-11, atol=1e-13)


def test_user_neighbors_and_hash_table():
    pts, feats = _cloud(100, 4)
    conv = ml3d.layers.ContinuousConv(4, 2, 2).double()
    table = ml3d.ops.build_spatial_hash_table(pts, 0.15, torch.tensor([0, 100]), 1 / 64)
    a = conv(feats, pts, pts, 0.3, fixed_radius_search_hash_table=table)
    nb = ml3d.layers.FixedRadiusSearch()(pts, pts, 0.15)
    b = conv(feats, pts, pts, 0.3, user_neighbors_index=nb.neighbors_index,
             user_neighbors_row_splits=nb.neighbors_row_splits)
    assert torch.equal(a, b) and torch.equal(a, conv(feats, pts, pts, 0.3))
    assert conv._avg_neighbors == pytest.approx(nb.neighbors_index.shape[0] / 100)


def test_layer_gradcheck_features_and_kernel():
    pts, feats = _cloud(25, 5, channels=2)
    conv = ml3d.layers.ContinuousConv(2, 2, 2, window_function=_window, use_dense_layer_for_center=True).double()
    kernel = conv.kernel.detach().clone().requires_grad_()

    def f(x, k):
        conv.kernel.data = k.detach()
        return ml3d.ops.continuous_conv(k, pts, torch.tensor([[0.8]], dtype=torch.float64), conv.offset, pts, x,
                                        None, nb.neighbors_index, None, nb.neighbors_row_splits, align_corners=True,
                                        normalize=True)

    nb = ml3d.layers.FixedRadiusSearch()(pts, pts, 0.4)
    assert torch.autograd.gradcheck(f, (feats.clone().requires_grad_(), kernel))
    x = feats.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda x: conv(x, pts, pts, 0.8), (x,))


def test_search_layers():
    pts, _ = _cloud(120, 6)
    qs, _ = _cloud(30, 7)
    r = ml3d.layers.FixedRadiusSearch(return_distances=True, index_dtype=torch.int64)(pts, qs, 0.2)
    ref = geomops.fixed_radius_search(pts.numpy(), qs.numpy(), 0.2, return_distances=True, index_dtype=np.int64)
    assert type(r).__name__ == "fixed_radius_search"
    for a, b in zip(r, ref):
        np.testing.assert_array_equal(a.numpy(), b)
    radii = torch.full((30,), 0.2, dtype=torch.float64)
    r = ml3d.layers.RadiusSearch(metric="L1", return_distances=True, normalize_distances=True)(pts, qs, radii)
    ref = geomops.radius_search(pts.numpy(), qs.numpy(), radii.numpy(), metric="L1", return_distances=True,
                                normalize_distances=True)
    for a, b in zip(r, ref):
        np.testing.assert_array_equal(a.numpy(), b)
    r = ml3d.layers.KNNSearch(ignore_query_point=True)(pts, pts, 8, torch.tensor([0, 50, 120]),
                                                       torch.tensor([0, 50, 120]))
    assert r.neighbors_index.shape == (120 * 7,)


def test_small_module_trains():
    torch.manual_seed(0)
    pts, _ = _cloud(400, 8, dtype=torch.float32)
    target = (torch.sin(4 * pts[:, :1]) * torch.cos(3 * pts[:, 1:2]) + pts[:, 2:]).detach()

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = ml3d.layers.ContinuousConv(4, 16, 3, activation=torch.relu)
            self.c2 = ml3d.layers.ContinuousConvTranspose(16, 1, 3)

        def forward(self, x):
            h = self.c1(torch.cat([x, torch.ones(x.shape[0], 1)], dim=1), x, x, 0.4)
            return self.c2(h, x, x, 0.4)

    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(150):
        opt.zero_grad()
        loss = torch.mean((net(pts) - target) ** 2)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]


class Open3DStyleFluidNet(torch.nn.Module):
    """A model written the way Open3D-ML code is (DeepLagrangianFluids' convolution network), for
    ``ml3d = open3d.ml.torch``; here ``ml3d`` is geomops.torch."""

    def __init__(self, ml3d, radius=0.3):
        super().__init__()
        self.radius = radius

        def window_poly6(r_sqr):
            return torch.clamp((1 - r_sqr) ** 3, 0, 1)

        self.conv0_fluid = ml3d.layers.ContinuousConv(in_channels=4, filters=8, kernel_size=[4, 4, 4],
                                                      activation=None, align_corners=True, interpolation="linear",
                                                      coordinate_mapping="ball_to_cube_volume_preserving",
                                                      normalize=False, window_function=window_poly6,
                                                      radius_search_ignore_query_points=True)
        self.dense0_fluid = torch.nn.Linear(4, 8)
        self.conv1 = ml3d.layers.ContinuousConv(in_channels=16, filters=3, kernel_size=[4, 4, 4],
                                                window_function=window_poly6, normalize=False,
                                                coordinate_mapping="ball_to_cube_volume_preserving",
                                                use_dense_layer_for_center=True,
                                                dense_kernel_initializer=torch.nn.init.zeros_)
        self.knn = ml3d.layers.KNNSearch(return_distances=True)

    def forward(self, pos, vel):
        feats = torch.cat([torch.ones_like(pos[:, :1]), vel], dim=-1)
        filter_extent = torch.tensor(self.radius * 2)
        ans_conv0 = self.conv0_fluid(feats, pos, pos, filter_extent)
        ans_dense0 = self.dense0_fluid(feats)
        h = torch.cat([ans_conv0, ans_dense0], dim=-1)
        out = self.conv1(torch.relu(h), pos, pos, filter_extent)
        nb = self.knn(pos, pos, 4)
        spread = ml3d.ops.reduce_subarrays_sum(nb.neighbors_distance, nb.neighbors_row_splits)
        return out, spread


def test_open3d_style_model_runs_and_trains():
    torch.manual_seed(1)
    pos, _ = _cloud(300, 9, dtype=torch.float32)
    vel = torch.randn(300, 3) * 0.1
    target = torch.roll(vel, 1, dims=1)
    model = Open3DStyleFluidNet(ml3d)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        out, spread = model(pos, vel)
        loss = torch.mean((out - target) ** 2)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert spread.shape == (300,)
    assert losses[-1] < 0.5 * losses[0]
    # an Open3D checkpoint's names: kernel, bias, offset, dense.weight
    names = set(model.state_dict())
    assert {"conv0_fluid.kernel", "conv0_fluid.bias", "conv0_fluid.offset", "conv1.dense.weight"} <= names


def test_module_keeps_no_call_state_threads_and_pickle():
    conv = ml3d.layers.ContinuousConv(4, 8, 3, use_dense_layer_for_center=True)
    fresh = len(pickle.dumps(conv))
    pts, feats = _cloud(20_000, 10, dtype=torch.float32)
    conv(feats, pts, pts, 0.05).sum().backward()
    buf = io.BytesIO()
    torch.save(conv.state_dict(), buf)
    assert len(pickle.dumps(conv)) < fresh + 40_000  # + the parameters' .grad
    clouds = [_cloud(40 + 10 * t, 20 + t) for t in range(4)]
    conv = conv.double()

    def grads(t):
        pts, feats = clouds[t]
        f = feats.clone().requires_grad_()
        return torch.autograd.grad(conv(f, pts, pts, 0.5).pow(2).sum(), [f, conv.kernel])

    expected = [grads(t) for t in range(4)]
    errors = []

    def work(t):
        for _ in range(10):
            got = grads(t)
            if not all(torch.equal(a, b) for a, b in zip(got, expected[t])):
                errors.append(t)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
