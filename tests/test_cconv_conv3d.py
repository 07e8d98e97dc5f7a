"""identity + nearest_neighbor + align_corners=False on a voxel grid equals a dense 3-D correlation.

Open3D's test_compare_to_conv3d: points on a regular grid, extents = voxel size x filter
size in x, y, z order ([W, H, D], Corrections #11), neighbors inside the filter box (Linf,
r = 0.5 + 0.01 on coordinates scaled by 1 / extent), max_temp_mem_MB = 0. The dense side is
scipy.ndimage.correlate with zero padding ('SAME' conv3d); normalize divides by the
number of in-grid taps.
"""

import numpy as np
import pytest
from scipy import ndimage

import geomops as gm
import reference_cconv as R

CASES = [
    # filter [D, H, W], Cin, Cout, inp_importance, normalize
    ((3, 5, 1), 7, 2, True, False),
    ((3, 3, 3), 1, 1, False, False),
    ((5, 5, 5), 3, 5, False, True),
]


def dense_scipy(volume, filters):
    """'SAME' cross-correlation [Z, Y, X, Cin] * [D, H, W, Cin, Cout] -> [Z, Y, X, Cout]."""
    out = np.zeros(volume.shape[:3] + (filters.shape[4],))
    for ic in range(filters.shape[3]):
        for oc in range(filters.shape[4]):
            out[..., oc] += ndimage.correlate(volume[..., ic], filters[:, :, :, ic, oc], mode="constant", cval=0.0)
    count = ndimage.correlate(np.ones(volume.shape[:3]), np.ones(filters.shape[:3]), mode="constant", cval=0.0)
    return out, count


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("filter_dhw,cin,cout,imp,normalize", CASES)
def test_compare_to_conv3d(filter_dhw, cin, cout, imp, normalize, dtype, device):
    grid = (11, 10, 9)  # x, y, z sizes differ so that an axis mix-up cannot pass
    p, vol, impvol = R.voxel_grid_problem(grid, filter_dhw, cin, cout, inp_importance=imp, seed=7)
    got = gm.continuous_conv(*p.args(dtype, np.int32), align_corners=False, coordinate_mapping="identity",
                             interpolation="nearest_neighbor", normalize=normalize, max_temp_mem_MB=0, device=device)
    dense, count = dense_scipy(vol if impvol is None else vol * impvol[..., None], p.filters)
    if normalize:
        dense /= count[..., None]
    ref = dense.reshape(-1, cout)
    assert got.dtype == dtype and got.shape == ref.shape
    tol = (1e-5 if dtype == np.float32 else 1e-12) * np.max(np.abs(ref))
    err = np.max(np.abs(got - ref))
    assert err <= tol, f"conv3d {filter_dhw} {dtype.__name__}: max error {err:.3g} > {tol:.3g}"


def test_neighbor_lists_are_the_filter_box():
    # the grid helper itself: interior points see exactly D*H*W neighbors
    p, _, _ = R.voxel_grid_problem((7, 7, 7), (3, 5, 1), 1, 1)
    counts = np.diff(p.neighbors_row_splits)
    assert counts.max() == 15 and counts.min() == 2 * 3  # corner: 2 (z) x 3 (y) x 1 (x)
