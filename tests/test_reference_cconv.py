"""Sanity of the NumPy reference itself (tests/reference_cconv.py), independent of geomops.

The reference is the oracle for every float64 cconv test, so it is checked here against
properties that do not depend on how it was written: known mapping values and the constant
Jacobian of the volume-preserving map, the rounding rules, a dense 3-D correlation, the
linearity/adjoint identities of spec §2.6/§2.7, and finite differences of its gradients.
"""

import math

import numpy as np
import pytest

import reference_cconv as R

RNG = np.random.default_rng(1234)


# ---------------------------------------------------------------------- §2.2 mappings

def test_identity_mapping_scales_by_inverse_extent():
    q = R.map_to_cube([0.1, -0.2, 0.3], [2.0, 4.0, 0.5], "identity")
    assert q == pytest.approx([0.2, -0.8, 0.15], abs=1e-15)


@pytest.mark.parametrize("mapping", ["ball_to_cube_radial", "ball_to_cube_volume_preserving"])
def test_ball_mappings_send_sphere_to_cube_surface(mapping):
    for _ in range(50):
        d = RNG.normal(size=3)
        d /= np.linalg.norm(d)
        q = R.map_to_cube(list(0.5 * d), [1.0, 1.0, 1.0], mapping)  # |p| = extent / 2
        assert max(abs(c) for c in q) == pytest.approx(0.5, abs=1e-12)
    assert R.map_to_cube([0.0, 0.0, 0.0], [1.0, 1.0, 1.0], mapping) == [0.0, 0.0, 0.0]


def test_radial_mapping_keeps_direction_and_threshold():
    p = [0.1, -0.05, 0.02]
    q = np.array(R.map_to_cube(p, [1.0, 1.0, 1.0], "ball_to_cube_radial"))
    u = 2 * np.array(p)
    assert np.allclose(q, 0.5 * u * np.linalg.norm(u) / np.max(np.abs(u)), rtol=1e-15)
    # max|u| just below 1e-8 -> exact centre
    assert R.map_to_cube([0.4e-8, 0.0, 0.0], [1.0, 1.0, 1.0], "ball_to_cube_radial") == [0.0, 0.0, 0.0]
    assert R.map_to_cube([0.6e-8, 0.0, 0.0], [1.0, 1.0, 1.0], "ball_to_cube_radial")[0] > 0.0


def _vp(u):
    """Volume-preserving map in u space (unit ball -> [-1, 1]^3)."""
    return 2.0 * np.array(R.map_to_cube(list(0.5 * np.asarray(u)), [1.0, 1.0, 1.0],
                                        "ball_to_cube_volume_preserving"))


def test_volume_preserving_mapping_has_constant_jacobian():
    # unit ball (4 pi / 3) -> cube [-1, 1]^3 (8): the Jacobian determinant is 6 / pi everywhere.
    count = 0
    while count < 40:
        u = RNG.uniform(-1, 1, 3)
        nrm = np.linalg.norm(u)
        if not 0.1 < nrm < 0.95:
            continue
        # stay away from the region seams where the map is only C0
        seam1 = abs(1.25 * u[2] ** 2 - u[0] ** 2 - u[1] ** 2)
        if seam1 < 0.02:
            continue
        v = _vp(u)
        if abs(abs(v[0]) - abs(v[1])) < 0.02 or np.hypot(u[0], u[1]) < 0.05:
            continue
        eps = 1e-6
        jac = np.empty((3, 3))
        for k in range(3):
            du = np.zeros(3)
            du[k] = eps
            jac[:, k] = (_vp(u + du) - _vp(u - du)) / (2 * eps)
        assert np.linalg.det(jac) == pytest.approx(6 / math.pi, rel=1e-6)
        count += 1


def test_volume_preserving_edge_cases():
    inv = [1.0, 1.0, 1.0]
    # on the z axis: cap branch then rho ~ 0 -> (0, 0, sign(z) * n / 2)
    assert R.map_to_cube([0.0, 0.0, -0.2], inv, "ball_to_cube_volume_preserving") == [0.0, 0.0, -0.2]
    # on the x axis: side branch, (x, 0, 0) -> (x, 0, 0)
    assert R.map_to_cube([0.25, 0.0, 0.0], inv, "ball_to_cube_volume_preserving") == [0.25, 0.0, 0.0]
    # n^2 below 1e-12 -> the centre
    assert R.map_to_cube([2e-7, 2e-7, 2e-7], inv, "ball_to_cube_volume_preserving") == [0.0, 0.0, 0.0]
    # rho^2 just above 1e-12 still takes the atan branch; just below maps x, y to 0
    q = R.map_to_cube([1e-6, 0.0, 0.3], inv, "ball_to_cube_volume_preserving")  # u_x = 2e-6 before scaling
    assert q[0] > 0.0 and q[1] == 0.0
    q = R.map_to_cube([2e-7, 0.0, 0.3], inv, "ball_to_cube_volume_preserving")
    assert q[0] == 0.0 and q[1] == 0.0 and q[2] == pytest.approx(0.3, rel=1e-12)


def test_volume_preserving_is_continuous_across_region_seams():
    # cap/side seam: 1.25 z^2 == x^2 + y^2
    z = 0.4
    rho = math.sqrt(1.25) * z
    for eps in (1e-9, -1e-9):
        a = _vp([rho * (1 + eps), 0.0, z])
        b = _vp([rho * (1 - eps), 0.0, z])
        assert np.allclose(a, b, atol=1e-7)
    # |x| == |y| seam of the cylinder -> cube step
    a, b = _vp([0.3 + 1e-10, 0.3, 0.1]), _vp([0.3, 0.3 + 1e-10, 0.1])
    assert np.allclose(a, b, atol=1e-8)


# ---------------------------------------------------------------------- §2.3 / §2.4

def test_voxel_coordinate():
    for n in (1, 2, 3, 4, 5):
        assert R.voxel_coordinate(-0.5, n, True, 7.0) == 0.0  # offset ignored
        assert R.voxel_coordinate(0.5, n, True, 7.0) == n - 1
        assert R.voxel_coordinate(-0.5, n, False, 0.0) == -0.5
        assert R.voxel_coordinate(0.5, n, False, 0.0) == n - 0.5
        assert R.voxel_coordinate(0.0, n, False, 0.25) == (n - 1) / 2 + 0.25


def test_round_half_away_from_zero():
    assert [R.round_half_away(v) for v in (0.5, 1.5, 2.5, -0.5, -1.5, 0.49999999)] == [1, 2, 3, -1, -2, 0]


def _axis(v, n, interpolation):
    taps = R.interpolate([v, 0.0, 0.0], (n, 1, 1), interpolation)
    out = {}
    for s, w in taps:
        out[s] = out.get(s, 0.0) + w
    return {s: w for s, w in out.items() if w != 0.0}


def test_nearest_neighbor_rounding_and_clamp():
    assert _axis(1.5, 4, "nearest_neighbor") == {2: 1.0}  # np.round would give 2 too; 2.5 differs:
    assert _axis(2.5, 4, "nearest_neighbor") == {3: 1.0}
    assert _axis(-0.5, 4, "nearest_neighbor") == {0: 1.0}
    assert _axis(9.0, 4, "nearest_neighbor") == {3: 1.0}


def test_linear_truncates_toward_zero_and_clamps():
    assert _axis(-0.7, 4, "linear") == {0: 1.0}  # trunc(-0.7) = 0, a = clamp(-0.7) = 0
    assert _axis(1.25, 4, "linear") == {1: 0.75, 2: 0.25}
    assert _axis(3.4, 4, "linear") == {3: 1.0}
    assert _axis(-3.0, 4, "linear") == {0: 1.0}
    assert _axis(0.3, 1, "linear") == {0: 1.0}


def test_linear_border_zero_pads():
    assert _axis(-0.25, 4, "linear_border") == {0: 0.75}
    assert _axis(1.25, 4, "linear_border") == {1: 0.75, 2: 0.25}
    assert _axis(3.5, 4, "linear_border") == {3: 0.5}
    assert _axis(-1.0, 4, "linear_border") == {}
    assert _axis(4.0, 4, "linear_border") == {}


def test_trilinear_corner_indices_and_weights():
    # x: n=3, y: n=2, z: n=4
    # y: v=1.5 > n-1 -> index 1 only; s = z*H*W + y*W + x with W=3, H=2
    expected = {}
    for ix, wx in ((0, 0.75), (1, 0.25)):
        for iz, wz in ((0, 0.25), (1, 0.75)):
            s = iz * 2 * 3 + 1 * 3 + ix
            expected[s] = expected.get(s, 0.0) + wx * wz
    got = {}
    for s, w in R.interpolate([0.25, 1.5, 0.75], (3, 2, 4), "linear"):
        got[s] = got.get(s, 0.0) + w
    assert got.keys() == expected.keys()
    assert all(got[s] == pytest.approx(expected[s]) for s in got)
    assert sum(got.values()) == pytest.approx(1.0)


# ---------------------------------------------------------------------- dense conv3d

@pytest.mark.parametrize("filter_dhw,cin,cout,imp,normalize", [
    ((3, 5, 1), 7, 2, True, False),
    ((3, 3, 3), 1, 1, False, False),
    ((5, 5, 5), 3, 5, False, True),
])
def test_reference_equals_dense_conv3d(filter_dhw, cin, cout, imp, normalize):
    p, vol, impvol = R.voxel_grid_problem((5, 4, 6), filter_dhw, cin, cout, inp_importance=imp, seed=3)
    got = R.continuous_conv(*p.args(), align_corners=False, coordinate_mapping="identity",
                            interpolation="nearest_neighbor", normalize=normalize)
    dense, count = R.dense_correlate_same(vol if impvol is None else vol * impvol[..., None], p.filters)
    if normalize:
        dense /= count[..., None]
    assert np.allclose(got, dense.reshape(-1, cout), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------- identities

CONFIGS = [
    dict(coordinate_mapping="ball_to_cube_radial", interpolation="linear", align_corners=True, normalize=False),
    dict(coordinate_mapping="ball_to_cube_volume_preserving", interpolation="linear_border", align_corners=False,
         normalize=True),
    dict(coordinate_mapping="identity", interpolation="nearest_neighbor", align_corners=False, normalize=True),
    dict(coordinate_mapping="identity", interpolation="linear", align_corners=True, normalize=True),
]


def _problem(importance, extent_kind="Nx3", **kw):
    return R.make_problem(7, num_inp=25, num_out=8, extent_kind=extent_kind, offset_nonzero=True,
                          importance=importance, **kw)


@pytest.mark.parametrize("opts", CONFIGS)
@pytest.mark.parametrize("importance", [False, True])
def test_reference_adjoint_and_feature_gradient(opts, importance):
    p = _problem(importance)
    t = R.transpose_problem(p, swapped_filters=True)  # filters [.., Cout, Cin], inp_features = y
    x = p.inp_features
    y = t.inp_features
    lhs = np.sum(R.continuous_conv(*p.args(), **opts) * y)
    tx = R.continuous_conv_transpose(*t.args(), **opts)
    assert tx.shape == x.shape
    assert lhs == pytest.approx(np.sum(x * tx), rel=1e-12)
    # the forward op's feature gradient is that transpose (spec §2.6)
    grads = R.continuous_conv_backward(*p.args(), y, **opts)
    assert np.allclose(grads.inp_features, tx, rtol=1e-12, atol=1e-14)
    # and the transpose's feature gradient is the forward op on the transposed lists (§2.7)
    tgrads = R.continuous_conv_transpose_backward(*t.args(), x, **opts)
    assert np.allclose(tgrads.inp_features, _forward_of_transpose(t, p, x, opts), rtol=1e-12, atol=1e-14)


def _forward_of_transpose(t, p, g, opts):
    """Spec §2.7: d inp_features of the transpose = forward op with swapped filters on the forward lists."""
    return R.continuous_conv(np.swapaxes(t.filters, 3, 4), t.inp_positions, t.extents, t.offset, t.out_positions,
                             g, t.out_importance, t.inp_neighbors_index, p.neighbors_importance,
                             t.inp_neighbors_row_splits, **opts)


@pytest.mark.parametrize("opts", CONFIGS)
@pytest.mark.parametrize("importance", [False, True])
def test_reference_backprop_filters_are_adjoint_in_filters(opts, importance):
    p = _problem(importance)
    g = RNG.uniform(-1, 1, (len(p.out_positions), p.filters.shape[4]))
    bpf = R.continuous_conv_backprop_filter(*p.args(), g, **opts)
    f2 = RNG.uniform(-1, 1, p.filters.shape)
    lhs = np.sum(R.continuous_conv(*p.replace(filters=f2).args(), **opts) * g)
    assert lhs == pytest.approx(np.sum(f2 * bpf), rel=1e-12)

    t = R.transpose_problem(p, in_channels=2, out_channels=3)
    gt = RNG.uniform(-1, 1, (len(t.out_positions), 3))
    tbpf = R.continuous_conv_transpose_backprop_filter(
        *t.args(fields=R.TransposeProblem.BACKPROP_FILTER_FIELDS), gt, **opts)
    f3 = RNG.uniform(-1, 1, t.filters.shape)
    lhs = np.sum(R.continuous_conv_transpose(*t.replace(filters=f3).args(), **opts) * gt)
    assert lhs == pytest.approx(np.sum(f3 * tbpf), rel=1e-12)


def _fd_check(fun, x, grad, rng, eps=1e-6, directions=3):
    """Central differences of scalar fun along random directions vs <grad, d>."""
    for _ in range(directions):
        d = rng.uniform(-1, 1, np.shape(x))
        fd = (fun(x + eps * d) - fun(x - eps * d)) / (2 * eps)
        an = float(np.sum(grad * d))
        assert fd == pytest.approx(an, rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("opts", CONFIGS)
@pytest.mark.parametrize("importance", [False, True])
def test_reference_forward_gradients_finite_differences(opts, importance):
    p = _problem(importance, importance_range=(-0.5, 1.0))
    g = RNG.uniform(-1, 1, (len(p.out_positions), p.filters.shape[4]))
    grads = R.continuous_conv_backward(*p.args(), g, **opts)

    def loss(**kw):
        return float(np.sum(R.continuous_conv(*p.replace(**kw).args(), **opts) * g))

    _fd_check(lambda v: loss(filters=v), p.filters, grads.filters, RNG)
    _fd_check(lambda v: loss(inp_features=v), p.inp_features, grads.inp_features, RNG)
    if importance:
        _fd_check(lambda v: loss(inp_importance=v), p.inp_importance, grads.inp_importance, RNG)
        _fd_check(lambda v: loss(neighbors_importance=v), p.neighbors_importance, grads.neighbors_importance, RNG)
    else:
        assert grads.inp_importance is None and grads.neighbors_importance is None


@pytest.mark.parametrize("opts", CONFIGS)
@pytest.mark.parametrize("importance", [False, True])
def test_reference_transpose_gradients_finite_differences(opts, importance):
    p = _problem(importance)
    t = R.transpose_problem(p, in_channels=2, out_channels=3)
    if importance:  # an independent input: need not be the true sums
        t = t.replace(inp_neighbors_importance_sum=t.inp_neighbors_importance_sum * RNG.uniform(0.5, 2.0, len(
            t.inp_neighbors_importance_sum)))
    g = RNG.uniform(-1, 1, (len(t.out_positions), 3))
    grads = R.continuous_conv_transpose_backward(*t.args(), g, **opts)

    def loss(**kw):
        return float(np.sum(R.continuous_conv_transpose(*t.replace(**kw).args(), **opts) * g))

    _fd_check(lambda v: loss(filters=v), t.filters, grads.filters, RNG)
    _fd_check(lambda v: loss(inp_features=v), t.inp_features, grads.inp_features, RNG)
    if importance:
        _fd_check(lambda v: loss(out_importance=v), t.out_importance, grads.out_importance, RNG)
        _fd_check(lambda v: loss(neighbors_importance=v), t.neighbors_importance, grads.neighbors_importance, RNG)
        _fd_check(lambda v: loss(inp_neighbors_importance_sum=v), t.inp_neighbors_importance_sum,
                  grads.inp_neighbors_importance_sum, RNG)
        if not opts["normalize"]:
            assert not np.any(grads.inp_neighbors_importance_sum)
    else:
        assert grads.out_importance is None and grads.neighbors_importance is None
        assert grads.inp_neighbors_importance_sum is None


def test_reference_normalize_zero_sum_row_is_not_divided():
    p = _problem(True)
    rs = p.neighbors_row_splits
    row = next(i for i in range(len(rs) - 1) if rs[i + 1] - rs[i] >= 3)
    nimp = p.neighbors_importance.copy()
    nimp[rs[row]:rs[row + 1]] = 0.0
    nimp[rs[row]:rs[row] + 3] = [0.5, -0.25, -0.25]
    q = p.replace(neighbors_importance=nimp)
    a = R.continuous_conv(*q.args(), normalize=True)
    b = R.continuous_conv(*q.args(), normalize=False)
    assert np.array_equal(a[row], b[row])
    g = RNG.uniform(-1, 1, a.shape)
    grads = R.continuous_conv_backward(*q.args(), g, normalize=True)
    grads_plain = R.continuous_conv_backward(*q.args(), g, normalize=False)
    sl = slice(rs[row], rs[row + 1])
    assert np.allclose(grads.neighbors_importance[sl], grads_plain.neighbors_importance[sl], rtol=1e-14)


# ---------------------------------------------------------------------- support ops

def test_reference_invert_neighbors_list_round_trip():
    p = _problem(True)
    ni = len(p.inp_positions)
    attrs = np.stack([p.neighbors_importance, np.arange(len(p.neighbors_index), dtype=np.float64)], axis=1)
    idx, rs, at = R.invert_neighbors_list(ni, p.neighbors_index, p.neighbors_row_splits, attrs)
    assert len(rs) == ni + 1 and rs[-1] == len(p.neighbors_index)
    # rows list original positions in ascending order; attributes follow their entries
    for j in range(ni):
        pos = at[rs[j]:rs[j + 1], 1].astype(int)
        assert np.all(np.diff(pos) > 0)
        assert np.all(p.neighbors_index[pos] == j)
        owner = np.searchsorted(p.neighbors_row_splits, pos, side="right") - 1
        assert np.array_equal(idx[rs[j]:rs[j + 1]], owner)
    # inverting twice gives the original lists with each row sorted by input index
    idx2, rs2, _ = R.invert_neighbors_list(len(p.out_positions), idx, rs, np.zeros(0))
    assert np.array_equal(rs2, p.neighbors_row_splits)
    for i in range(len(rs2) - 1):
        assert np.array_equal(idx2[rs2[i]:rs2[i + 1]],
                              np.sort(p.neighbors_index[rs2[i]:rs2[i + 1]], kind="stable"))


def test_reference_reduce_subarrays_sum():
    v = np.array([1.0, 2.0, 3.0, 4.0])
    assert np.array_equal(R.reduce_subarrays_sum(v, [0, 1, 1, 4]), [1.0, 0.0, 9.0])
    e = R.reduce_subarrays_sum(np.zeros(0, np.float32), [0, 0, 0])
    assert e.shape == (0,) and e.dtype == np.float32
    assert R.reduce_subarrays_sum(np.array([3, 4], np.int32), [0, 2]).dtype == np.int32
