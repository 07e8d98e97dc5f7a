"""End to end: neighbor lists from the searches feed continuous_conv directly.

The oracle is a tiny NumPy continuous convolution written here from the spec (§2.2-2.5) for the
identity mapping, nearest_neighbor interpolation and align_corners=False, over neighbor lists
computed by brute force.
"""

import numpy as np
import pytest

import geomops
from reference_search import distances


def round_half_away(v):
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def numpy_cconv(filters, out_pos, extent, offset, inp_pos, feats, neighbors, normalize):
    """identity mapping + nearest_neighbor + align_corners=False, one shared extent per output
    point (extent: [No]); neighbors: per output point the input indices."""
    D, H, W, _, cout = filters.shape
    sizes = np.array([W, H, D])  # x, y, z
    out = np.zeros((len(out_pos), cout))
    for i, nbrs in enumerate(neighbors):
        nbrs = np.asarray(nbrs, np.int64)
        if nbrs.size == 0:
            continue
        q = (inp_pos[nbrs].astype(np.float64) - out_pos[i]) / extent[i]
        v = q * sizes + offset + (sizes - 1) / 2
        cell = np.clip(round_half_away(v), 0, sizes - 1).astype(np.int64)
        taps = filters[cell[:, 2], cell[:, 1], cell[:, 0]]  # [n, Cin, Cout]
        out[i] = np.einsum("nic,ni->c", taps.astype(np.float64), feats[nbrs].astype(np.float64))
        if normalize:
            out[i] /= len(nbrs)
    return out


def brute_force_neighbors(points, queries, radius, metric, strict):
    out = []
    for i in range(len(queries)):
        r = radius[i] if np.ndim(radius) else radius
        r = points.dtype.type(r)
        thr = r * r if metric == "L2" else r
        d = distances(points, queries[i], metric)
        out.append(np.nonzero(d < thr if strict else d <= thr)[0])
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("normalize", [False, True])
def test_fixed_radius_search_feeds_continuous_conv(dtype, index_dtype, normalize, device):
    rng = np.random.default_rng(3)
    inp = rng.random((300, 3)).astype(dtype)
    out_pos = rng.random((40, 3)).astype(dtype)
    feats = rng.standard_normal((300, 4)).astype(dtype)
    filters = rng.standard_normal((3, 5, 2, 4, 6)).astype(dtype)
    offset = np.array([0.1, -0.2, 0.05], dtype)
    extent = 0.4
    nb = geomops.fixed_radius_search(inp, out_pos, extent / 2, index_dtype=index_dtype, metric="Linf", device=device)
    got = geomops.continuous_conv(filters, out_pos, np.array([[extent]], dtype), offset, inp, feats, None,
                                  nb.neighbors_index, None, nb.neighbors_row_splits, align_corners=False,
                                  coordinate_mapping="identity", interpolation="nearest_neighbor",
                                  normalize=normalize)
    neighbors = brute_force_neighbors(inp, out_pos, extent / 2, "Linf", strict=False)
    assert sum(len(n) for n in neighbors) == nb.neighbors_index.size > 100
    expect = numpy_cconv(filters, out_pos, np.full(len(out_pos), extent), offset, inp, feats, neighbors, normalize)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, expect, rtol=tol, atol=tol * np.abs(expect).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_radius_and_knn_search_feed_continuous_conv(dtype, device):
    rng = np.random.default_rng(4)
    inp = rng.random((200, 3)).astype(dtype)
    out_pos = rng.random((30, 3)).astype(dtype)
    feats = rng.standard_normal((200, 3)).astype(dtype)
    filters = rng.standard_normal((3, 3, 3, 3, 2)).astype(dtype)
    offset = np.zeros(3, dtype)
    extents = (0.3 + 0.2 * rng.random(30)).astype(dtype)  # one extent per output point
    nb = geomops.radius_search(inp, out_pos, extents / 2, metric="L2", device=device)
    got = geomops.continuous_conv(filters, out_pos, extents[:, None], offset, inp, feats, None, nb.neighbors_index,
                                  None, nb.neighbors_row_splits, align_corners=False, coordinate_mapping="identity",
                                  interpolation="nearest_neighbor")
    neighbors = brute_force_neighbors(inp, out_pos, extents / 2, "L2", strict=True)
    expect = numpy_cconv(filters, out_pos, extents.astype(np.float64), offset, inp, feats, neighbors, False)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, expect, rtol=tol, atol=tol * np.abs(expect).max())

    knn = geomops.knn_search(inp, out_pos, 8, index_dtype=np.int64, device=device)
    got = geomops.continuous_conv(filters, out_pos, extents[:, None], offset, inp, feats, None, knn.neighbors_index,
                                  None, knn.neighbors_row_splits, align_corners=False, coordinate_mapping="identity",
                                  interpolation="nearest_neighbor", normalize=True)
    neighbors = [np.argsort(distances(inp, q, "L2"), kind="stable")[:8] for q in out_pos]
    expect = numpy_cconv(filters, out_pos, extents.astype(np.float64), offset, inp, feats, neighbors, True)
    np.testing.assert_allclose(got, expect, rtol=tol, atol=tol * np.abs(expect).max())
