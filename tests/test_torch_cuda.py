"""geomops.torch on CUDA tensors (needs a GPU and a CUDA build of torch; skipped elsewhere):
results stay on the device, equal the CPU results (searches exactly, convolutions to rounding),
and autograd works there too."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import geomops.torch as ml3d  # noqa: E402
from geomops.torch import ops  # noqa: E402

pytestmark = pytest.mark.cuda


@pytest.fixture(autouse=True)
def _torch_cuda():
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA device")


def _case(device, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    pts = torch.rand(2000, 3, generator=g, dtype=dtype)
    feats = torch.randn(2000, 8, generator=g, dtype=dtype)
    return pts.to(device), feats.to(device)


def _sets(result):
    idx, rs = result.neighbors_index.cpu().numpy(), result.neighbors_row_splits.cpu().numpy()
    return [sorted(idx[rs[i]:rs[i + 1]]) for i in range(len(rs) - 1)]


def test_searches_on_cuda():
    pts, _ = _case("cuda")
    splits = torch.tensor([0, 2000], device="cuda")
    table = ops.build_spatial_hash_table(pts, 0.05, splits, 1 / 64)
    assert table.hash_table_index.is_cuda
    r = ops.fixed_radius_search(pts, pts, 0.05, splits, splits, table.hash_table_splits, table.hash_table_index,
                                table.hash_table_cell_splits, return_distances=True)
    assert r.neighbors_index.is_cuda and r.neighbors_distance.is_cuda
    cpu = ops.fixed_radius_search(pts.cpu(), pts.cpu(), 0.05, splits.cpu(), splits.cpu(),
                                  *(t.cpu() for t in (table.hash_table_splits, table.hash_table_index,
                                                      table.hash_table_cell_splits)))
    assert _sets(r) == _sets(cpu)
    k = ops.knn_search(pts, pts, 8, splits, splits)
    np.testing.assert_array_equal(k.neighbors_index.cpu().numpy(),
                                  ops.knn_search(pts.cpu(), pts.cpu(), 8, splits.cpu(), splits.cpu())
                                  .neighbors_index.numpy())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_layer_forward_backward_on_cuda(dtype):
    pts, feats = _case("cuda", dtype)
    conv = ml3d.layers.ContinuousConv(8, 16, 3, window_function=lambda u: torch.clamp((1 - u) ** 3, 0, 1))
    conv = conv.to(device="cuda", dtype=dtype)
    ref = ml3d.layers.ContinuousConv(8, 16, 3, window_function=lambda u: torch.clamp((1 - u) ** 3, 0, 1))
    ref.load_state_dict(conv.state_dict())
    ref = ref.to(dtype)
    f = feats.clone().requires_grad_()
    out = conv(f, pts, pts, 0.1)
    assert out.is_cuda
    out.square().sum().backward()
    f_cpu = feats.cpu().requires_grad_()
    out_cpu = ref(f_cpu, pts.cpu(), pts.cpu(), 0.1)
    out_cpu.square().sum().backward()
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(out.cpu(), out_cpu.detach(), **tol)
    torch.testing.assert_close(conv.kernel.grad.cpu(), ref.kernel.grad, **tol)
    torch.testing.assert_close(f.grad.cpu(), f_cpu.grad, **tol)


def test_position_gradients_on_cuda():
    pts, feats = _case("cuda", torch.float64)
    conv = ml3d.layers.ContinuousConv(8, 4, 3).to(device="cuda", dtype=torch.float64)
    x = pts.clone().requires_grad_()
    conv(feats, x, pts, 0.1).sum().backward()
    ref = ml3d.layers.ContinuousConv(8, 4, 3).double()
    ref.load_state_dict(conv.state_dict())
    xc = pts.cpu().requires_grad_()
    ref(feats.cpu(), xc, pts.cpu(), 0.1).sum().backward()
    torch.testing.assert_close(x.grad.cpu(), xc.grad, rtol=1e-9, atol=1e-11)
