"""Gradients w.r.t. positions and extents through geomops.torch (they need
``continuous_conv_backward(..., wrt=...)``): torch.autograd.gradcheck in float64 of both ops for
every coordinate mapping, interpolation, align_corners and extent shape, and of the layers (with
a window function, whose input depends on the positions and extents too).

Random points are away from the non-differentiable sets (filter-cell boundaries, the clamping of
``linear``, the origin of the ball-to-cube mappings: input and output clouds differ) with
probability 1; the neighbor lists are fixed inside each checked function."""

import pytest

torch = pytest.importorskip("torch")
# small tensors: torch's intra-op threads only add waits (CI machines have 2 shared cores)
torch.set_num_threads(1)

import geomops.torch as ml3d  # noqa: E402
from geomops.torch import ops  # noqa: E402

MAPPINGS = ["ball_to_cube_radial", "ball_to_cube_volume_preserving", "identity"]
INTERPOLATIONS = ["linear", "linear_border", "nearest_neighbor"]
EXTENT_SHAPES = ["[1,1]", "[1,3]", "[N,1]", "[N,3]"]


def _splits(n):
    return torch.tensor([0, n], dtype=torch.int64)


def _seed(*names):
    """A fixed seed per parameter combination (str hashes change from run to run)."""
    return sum(10 ** k * options.index(n) for k, (options, n) in
               enumerate(zip((MAPPINGS, INTERPOLATIONS, EXTENT_SHAPES), names)))


def _case(seed, n_in=18, n_out=12, extent_shape="[1,1]", extent_rows=None):
    g = torch.Generator().manual_seed(seed)
    xi = torch.rand(n_in, 3, generator=g, dtype=torch.float64)
    xo = torch.rand(n_out, 3, generator=g, dtype=torch.float64)
    nb = ops.knn_search(xi, xo, 6, _splits(n_in), _splits(n_out))  # lists fixed, whatever the extents
    rows = n_out if extent_rows is None else extent_rows
    shape = {"[1,1]": (1, 1), "[1,3]": (1, 3), "[N,1]": (rows, 1), "[N,3]": (rows, 3)}[extent_shape]
    extents = torch.rand(*shape, generator=g, dtype=torch.float64) * 0.4 + 0.6
    filters = torch.randn(3, 2, 3, 2, 2, generator=g, dtype=torch.float64)
    feats = torch.randn(n_in, 2, generator=g, dtype=torch.float64)
    imp = torch.rand(nb.neighbors_index.shape[0], generator=g, dtype=torch.float64) + 0.5
    return xi, xo, nb, extents, filters, feats, imp


@pytest.mark.parametrize("extent_shape", EXTENT_SHAPES)
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
@pytest.mark.parametrize("mapping", MAPPINGS)
@pytest.mark.parametrize("align_corners", [False, True])
def test_conv_gradcheck_positions_and_extents(mapping, interpolation, align_corners, extent_shape):
    xi, xo, nb, extents, filters, feats, imp = _case(_seed(mapping, interpolation, extent_shape),
                                                     extent_shape=extent_shape)
    offset = torch.tensor([0.2, -0.1, 0.3], dtype=torch.float64)

    def f(xi, xo, ext):
        return ops.continuous_conv(filters, xo, ext, offset, xi, feats, None, nb.neighbors_index, imp,
                                   nb.neighbors_row_splits, align_corners=align_corners, coordinate_mapping=mapping,
                                   interpolation=interpolation, normalize=True)

    args = tuple(t.clone().requires_grad_() for t in (xi, xo, extents))
    assert torch.autograd.gradcheck(f, args)
    for k in range(3):  # each alone: the backward asks geomops for that gradient only
        one = list(t.detach() for t in (xi, xo, extents))
        one[k] = one[k].clone().requires_grad_()
        assert torch.autograd.gradcheck(f, tuple(one))


@pytest.mark.parametrize("extent_shape", EXTENT_SHAPES)
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
@pytest.mark.parametrize("mapping", MAPPINGS)
@pytest.mark.parametrize("align_corners", [False, True])
def test_transpose_gradcheck_positions_and_extents(mapping, interpolation, align_corners, extent_shape):
    # a transpose from 12 points to 18: the forward case with the two clouds swapped (its lists
    # give each of the 12 input points the 6 output points it reaches; extents per input point)
    xo, xi, nb, extents, filters, _, imp = _case(500 + _seed(mapping, interpolation, extent_shape),
                                                 extent_shape=extent_shape, n_in=18, n_out=12, extent_rows=12)
    g = torch.Generator().manual_seed(5)
    feats = torch.randn(12, 2, generator=g, dtype=torch.float64)
    out_imp = torch.rand(18, generator=g, dtype=torch.float64) + 0.5
    inv = ops.invert_neighbors_list(18, nb.neighbors_index, nb.neighbors_row_splits, imp)
    imp_sum = ops.reduce_subarrays_sum(imp, nb.neighbors_row_splits)
    offset = torch.tensor([0.2, -0.1, 0.3], dtype=torch.float64)

    def f(xi, xo, ext):
        return ops.continuous_conv_transpose(filters, xo, out_imp, ext, offset, xi, feats, nb.neighbors_index,
                                             imp_sum, nb.neighbors_row_splits, inv.neighbors_index,
                                             inv.neighbors_attributes, inv.neighbors_row_splits,
                                             align_corners=align_corners, coordinate_mapping=mapping,
                                             interpolation=interpolation, normalize=True)

    args = tuple(t.clone().requires_grad_() for t in (xi, xo, extents))
    assert torch.autograd.gradcheck(f, args)


def test_translation_invariance_through_autograd():
    xi, xo, nb, extents, filters, feats, imp = _case(7)
    xi, xo = xi.requires_grad_(), xo.requires_grad_()
    out = ops.continuous_conv(filters, xo, extents, torch.zeros(3, dtype=torch.float64), xi, feats, None,
                              nb.neighbors_index, imp, nb.neighbors_row_splits)
    out.pow(2).sum().backward()
    total = xi.grad.sum(0) + xo.grad.sum(0)
    scale = float(xi.grad.abs().sum() + xo.grad.abs().sum())
    assert torch.allclose(total, torch.zeros(3, dtype=torch.float64), atol=1e-12 * scale)


@pytest.mark.parametrize("extents", ["scalar", "per_point"])
@pytest.mark.parametrize("cls", ["ContinuousConv", "ContinuousConvTranspose"])
def test_layer_gradcheck_positions_and_extents_with_window(cls, extents):
    """The whole layer: search (fixed lists for a small step), window of the normalised distances,
    normalised convolution, dense center, bias and activation."""
    g = torch.Generator().manual_seed(11)
    xi = torch.rand(20, 3, generator=g, dtype=torch.float64)
    xo = torch.rand(20, 3, generator=g, dtype=torch.float64)
    feats = torch.randn(20, 2, generator=g, dtype=torch.float64)
    ext = torch.tensor(0.9, dtype=torch.float64) if extents == "scalar" else \
        torch.rand(20, generator=g, dtype=torch.float64) * 0.3 + 0.8
    layer = getattr(ml3d.layers, cls)(2, 2, 3, activation=torch.tanh, use_dense_layer_for_center=True,
                                      window_function=lambda u: torch.clamp((1 - u) ** 3, 0, 1)).double()
    torch.nn.init.uniform_(layer.bias, -0.1, 0.1)
    args = tuple(t.clone().requires_grad_() for t in (xi, xo, ext))
    assert torch.autograd.gradcheck(lambda a, b, e: layer(feats, a, b, e), args)


def test_learn_positions_moves_points_toward_the_target():
    """Optimising positions through a fixed convolution reduces the loss (the example's core)."""
    g = torch.Generator().manual_seed(3)
    xo = torch.rand(30, 3, generator=g, dtype=torch.float64)
    target_pts = torch.rand(25, 3, generator=g, dtype=torch.float64)
    conv = ml3d.layers.ContinuousConv(1, 1, 4, window_function=lambda u: torch.clamp((1 - u) ** 3, 0, 1),
                                      use_bias=False, normalize=False).double()
    torch.nn.init.constant_(conv.kernel, 1.0)
    ones = torch.ones(25, 1, dtype=torch.float64)
    target = conv(ones, target_pts, xo, 0.8).detach()
    pts = (target_pts + 0.05 * torch.randn(25, 3, generator=g, dtype=torch.float64)).requires_grad_()
    opt = torch.optim.Adam([pts], lr=5e-3)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = (conv(ones, pts, xo, 0.8) - target).pow(2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]
