"""Edge cases of the cconv ops: empty lists and point sets, duplicates, zero normalisers,
special relative positions, NaN positions, chunking (max_temp_mem_MB) and thread-count
determinism. Results are compared with the NumPy reference or checked bitwise.
"""

import itertools

import numpy as np
import pytest

import geomops as gm
from geomops import _backend
from geomops._cconv_args import options, prepare_forward, prepare_transpose
from geomops.cconv import _normalizers

import reference_cconv as R

DTYPES = [np.float32, np.float64]
ALL_OPTS = [dict(coordinate_mapping=m, interpolation=i, align_corners=a)
            for m, i, a in itertools.product(R.MAPPINGS, R.INTERPOLATIONS, (True, False))]
OPT_IDS = [f"{o['coordinate_mapping'][:12]}-{o['interpolation']}-ac{int(o['align_corners'])}" for o in ALL_OPTS]


def run_all_ops(p, t, dtype, opts, g=None, gt=None, *, device, **extra):
    """Every conv op on forward problem p and transpose problem t; returns {name: array}."""
    rng = np.random.default_rng(0)
    if g is None:
        g = rng.uniform(-1, 1, (len(p.out_positions), p.filters.shape[4]))
    if gt is None:
        gt = rng.uniform(-1, 1, (len(t.out_positions), t.filters.shape[4]))
    g, gt = g.astype(dtype), gt.astype(dtype)
    fa, ta = p.args(dtype), t.args(dtype)
    tbf = t.args(dtype, fields=R.TransposeProblem.BACKPROP_FILTER_FIELDS)
    res = {
        "continuous_conv": gm.continuous_conv(*fa, **opts, **extra, device=device),
        "continuous_conv_transpose": gm.continuous_conv_transpose(*ta, **opts, **extra, device=device),
        "continuous_conv_backprop_filter": gm.continuous_conv_backprop_filter(*fa, g, **opts, **extra, device=device),
        "continuous_conv_transpose_backprop_filter": gm.continuous_conv_transpose_backprop_filter(
            *tbf, gt, **opts, **extra, device=device),
    }
    for name, tup in (("continuous_conv_backward", gm.continuous_conv_backward(*fa, g, **opts, **extra, device=device)),
                      ("continuous_conv_transpose_backward",
                       gm.continuous_conv_transpose_backward(*ta, gt, **opts, **extra, device=device))):
        for field in tup._fields:
            res[f"{name}.{field}"] = getattr(tup, field)
    return res


def reference_all_ops(p, t, opts, g=None, gt=None):
    rng = np.random.default_rng(0)
    if g is None:
        g = rng.uniform(-1, 1, (len(p.out_positions), p.filters.shape[4]))
    if gt is None:
        gt = rng.uniform(-1, 1, (len(t.out_positions), t.filters.shape[4]))
    res = {
        "continuous_conv": R.continuous_conv(*p.args(), **opts),
        "continuous_conv_transpose": R.continuous_conv_transpose(*t.args(), **opts),
        "continuous_conv_backprop_filter": R.continuous_conv_backprop_filter(*p.args(), g, **opts),
        "continuous_conv_transpose_backprop_filter": R.continuous_conv_transpose_backprop_filter(
            *t.args(fields=R.TransposeProblem.BACKPROP_FILTER_FIELDS), gt, **opts),
    }
    for name, tup in (("continuous_conv_backward", R.continuous_conv_backward(*p.args(), g, **opts)),
                      ("continuous_conv_transpose_backward", R.continuous_conv_transpose_backward(*t.args(), gt,
                                                                                                  **opts))):
        for field in tup._fields:
            res[f"{name}.{field}"] = getattr(tup, field)
    return res


def assert_clear_of_kinks(p, t, dtype, opts):
    """float32 nearest-neighbor comparisons need data away from the x.5 rounding kinks."""
    if opts.get("interpolation") != "nearest_neighbor" or dtype != np.float32:
        return
    kw = dict(align_corners=opts.get("align_corners", True), coordinate_mapping=opts["coordinate_mapping"])
    m = min(R.rounding_margin(p.filters.shape[:3], p.out_positions, p.extents, p.offset, p.inp_positions,
                              p.neighbors_index, p.neighbors_row_splits, **kw),
            R.rounding_margin(t.filters.shape[:3], t.out_positions, t.extents, t.offset, t.inp_positions,
                              t.neighbors_index, t.neighbors_row_splits, transpose=True, **kw))
    assert m > 2e-5, f"test data within {m:.2g} of a rounding kink: pick another seed"


def compare_all(p, t, dtype, opts, what, g=None, gt=None, exact_data=False, *, device):
    """All ops vs the reference. ``exact_data``: every voxel coordinate is exact in float32
    (binary fractions), so kinks are hit identically in any precision and need no margin."""
    if not exact_data:
        assert_clear_of_kinks(p, t, dtype, opts)
    got = run_all_ops(p, t, dtype, opts, g, gt, device=device)
    ref = reference_all_ops(p, t, opts, g, gt)
    for name, r in ref.items():
        if r is None:
            assert got[name] is None, f"{what}: {name} should be None"
        else:
            R.assert_matches(got[name], r, dtype, f"{what}: {name} {opts}")
    return got


def base_problem(**kw):
    args = dict(extent_kind="Nx3", offset_nonzero=True, importance=True)
    args.update(kw)
    return R.make_problem(31, **args)


# --------------------------------------------------------------------------- empty things

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("importance", [False, True])
def test_no_neighbors_at_all(dtype, normalize, importance, device):
    p = base_problem(importance=importance)
    p = p.replace(neighbors_index=np.zeros(0, np.int64),
                  neighbors_importance=np.zeros(0) if importance else None,
                  neighbors_row_splits=np.zeros(len(p.out_positions) + 1, np.int64))
    t = R.transpose_problem(p, in_channels=2, out_channels=3)
    got = compare_all(p, t, dtype, dict(normalize=normalize), "E=0", device=device)
    for name, v in got.items():
        if v is not None and not name.endswith("importance") and not name.endswith("_sum"):
            assert not np.any(v), f"{name} must be all zeros without neighbors"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("normalize", [False, True])
def test_empty_rows_are_exact_zeros(dtype, normalize, device):
    p = base_problem()
    empty = np.nonzero(np.diff(p.neighbors_row_splits) == 0)[0]
    assert len(empty) >= 1
    out = gm.continuous_conv(*p.args(dtype), normalize=normalize, device=device)
    assert np.all(out[empty] == 0)
    t = R.transpose_problem(p, in_channels=2, out_channels=3)
    tempty = np.nonzero(np.diff(t.neighbors_row_splits) == 0)[0]
    assert len(tempty) >= 1  # input points no output point sees
    tout = gm.continuous_conv_transpose(*t.args(dtype), normalize=normalize, device=device)
    assert np.all(tout[tempty] == 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("normalize", [False, True])
def test_zero_output_points(dtype, normalize, device):
    p = base_problem(extent_kind="1x3")
    p = p.replace(out_positions=np.zeros((0, 3)), neighbors_index=np.zeros(0, np.int64),
                  neighbors_importance=np.zeros(0), neighbors_row_splits=np.zeros(1, np.int64))
    t = R.transpose_problem(p, in_channels=2, out_channels=3)  # transpose: zero input points
    got = compare_all(p, t, dtype, dict(normalize=normalize), "No=0", device=device)
    assert got["continuous_conv"].shape == (0, 2)
    assert got["continuous_conv_backprop_filter"].shape == p.filters.shape
    assert not np.any(got["continuous_conv_backprop_filter"])
    assert got["continuous_conv_transpose"].shape == (len(p.inp_positions), 3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("normalize", [False, True])
def test_zero_input_points(dtype, normalize, device):
    p = base_problem(extent_kind="Nx1")
    no = len(p.out_positions)
    p = p.replace(inp_positions=np.zeros((0, 3)), inp_features=np.zeros((0, 3)), inp_importance=np.zeros(0),
                  neighbors_index=np.zeros(0, np.int64), neighbors_importance=np.zeros(0),
                  neighbors_row_splits=np.zeros(no + 1, np.int64))
    t = R.transpose_problem(p, in_channels=2, out_channels=3)  # transpose: zero output points
    got = compare_all(p, t, dtype, dict(normalize=normalize), "Ni=0", device=device)
    assert got["continuous_conv"].shape == (no, 2) and not np.any(got["continuous_conv"])
    assert got["continuous_conv_transpose"].shape == (0, 3)
    assert got["continuous_conv_backward.inp_features"].shape == (0, 3)


# --------------------------------------------------------------------------- duplicates, zero sums

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opts", ALL_OPTS[::4], ids=OPT_IDS[::4])
def test_duplicate_neighbors_count_twice(dtype, opts, device):
    p = base_problem(duplicates=0)
    rs = p.neighbors_row_splits
    row = int(np.argmax(np.diff(rs)))
    n = rs[row]
    # duplicate entry n with importances a, b  ==  one entry with importance a + b
    idx = np.insert(p.neighbors_index, n, p.neighbors_index[n])
    nimp = np.insert(p.neighbors_importance, n, 0.5)
    nimp[n + 1] = 0.25
    splits = rs.copy()
    splits[row + 1:] += 1
    dup = p.replace(neighbors_index=idx, neighbors_importance=nimp, neighbors_row_splits=splits)
    merged_imp = p.neighbors_importance.copy()
    merged_imp[n] = 0.75
    merged = p.replace(neighbors_importance=merged_imp)
    for normalize in (False, True):
        a = gm.continuous_conv(*dup.args(dtype), normalize=normalize, **opts, device=device)
        b = gm.continuous_conv(*merged.args(dtype), normalize=normalize, **opts, device=device)
        R.assert_matches(a, b.astype(np.float64), dtype, f"duplicate vs merged importance {opts}")
        R.assert_matches(a, R.continuous_conv(*dup.args(), normalize=normalize, **opts), dtype, "duplicates")
    # without importances a duplicate is counted twice by normalize
    dup2 = dup.replace(neighbors_importance=None, inp_importance=None)
    R.assert_matches(gm.continuous_conv(*dup2.args(dtype), normalize=True, **opts, device=device),
                     R.continuous_conv(*dup2.args(), normalize=True, **opts), dtype, "duplicates, count")


def _zero_sum_problem():
    p = base_problem()
    rs = p.neighbors_row_splits
    nimp = p.neighbors_importance.copy()
    rows = [i for i in range(len(rs) - 1) if rs[i + 1] - rs[i] >= 3][:2]
    for r in rows:  # exact binary fractions: the sum is exactly 0 in any order and precision
        nimp[rs[r]:rs[r + 1]] = 0.0
        nimp[rs[r]:rs[r] + 3] = [0.5, -0.25, -0.25]
    return p.replace(neighbors_importance=nimp), rows


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opts", ALL_OPTS[1::3], ids=OPT_IDS[1::3])
def test_normalize_with_importance_summing_to_zero(dtype, opts, device):
    p, rows = _zero_sum_problem()
    t = R.transpose_problem(p, in_channels=2, out_channels=3)
    sums = t.inp_neighbors_importance_sum
    assert np.count_nonzero(sums == 0) >= 2
    compare_all(p, t, dtype, dict(normalize=True, **opts), "importance sum 0", device=device)
    a = gm.continuous_conv(*p.args(dtype), normalize=True, **opts, device=device)
    b = gm.continuous_conv(*p.args(dtype), normalize=False, **opts, device=device)
    assert np.all(np.isfinite(a))
    R.assert_matches(a[rows], b[rows].astype(np.float64), dtype, "sum 0 rows are not divided")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("importance", [False, True])
def test_normalizers_kernel(dtype, importance, device):
    """The one normaliser kernel the backward functions use: psi_i (forward rows) / phi_j
    (transpose inputs) as float64 divisors, exact zeros replaced by 1 and flagged."""
    p, rows = _zero_sum_problem()
    if not importance:
        p = p.replace(neighbors_importance=None)
        rs = p.neighbors_row_splits
        rows = [i for i in range(len(rs) - 1) if rs[i + 1] == rs[i]]  # empty rows: count 0
    t = R.transpose_problem(p, in_channels=2, out_channels=3)
    be = _backend.resolve(device)
    opt = options(True, "identity", True, "linear", 64, None, None)
    for call, splits, imp, zero_rows in (
            (prepare_forward(*p.args(dtype)), p.neighbors_row_splits, p.neighbors_importance, rows),
            (prepare_transpose(*t.args(dtype)), t.inp_neighbors_row_splits,
             None if not importance else t.inp_neighbors_importance_sum, None)):
        divisor, was_zero = (be.to_host(a) for a in _normalizers(be, call.to_backend(be), opt))
        if imp is None:
            want = np.diff(splits).astype(np.float64)
        elif call.transpose:  # phi_j is the given sum, in the call's dtype
            want = imp.astype(dtype).astype(np.float64)
        else:  # psi_i: summed in float64 in entry order, rounded to the call's dtype
            want = np.array([sum(float(v) for v in imp.astype(dtype)[a:b]) for a, b in zip(splits, splits[1:])])
            want = want.astype(dtype).astype(np.float64)
        assert divisor.dtype == np.float64 and was_zero.dtype == np.bool_
        assert np.array_equal(was_zero, want == 0)
        assert np.array_equal(divisor, np.where(want == 0, 1.0, want))
        if zero_rows is not None:
            assert len(zero_rows) >= 1 and was_zero[zero_rows].all()
        else:
            assert was_zero.any()


# --------------------------------------------------------------------------- special positions

def _star_problem(filter_dhw, in_channels=2, out_channels=2, extent=0.625):
    """Output points with inputs on the coordinate axes through them (and on them)."""
    centre = np.array([0.5, 0.5, 0.5])
    outs = [centre, centre + [0.0, 0.0, 0.25]]
    inps = [centre.copy()]
    for k in range(3):
        for a in (-0.2, -0.1, 0.05, 0.15, 0.3):
            q = centre.copy()
            q[k] += a
            inps.append(q)
    inp, out = R.f32(np.array(inps)), R.f32(np.array(outs))
    index = np.array(list(range(len(inp))) * len(out), np.int64)
    splits = np.arange(len(out) + 1, dtype=np.int64) * len(inp)
    rng = np.random.default_rng(9)
    return R.Problem(filters=R.f32(rng.uniform(-1, 1, filter_dhw + (in_channels, out_channels))),
                     out_positions=out, extents=extent, offset=np.zeros(3), inp_positions=inp,
                     inp_features=R.f32(rng.uniform(-1, 1, (len(inp), in_channels))), inp_importance=None,
                     neighbors_index=index, neighbors_importance=None, neighbors_row_splits=splits)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("filter_dhw", [(4, 2, 3), (3, 5, 4)])
@pytest.mark.parametrize("opts", ALL_OPTS, ids=OPT_IDS)
def test_points_on_axes(dtype, filter_dhw, opts, device):
    """Zero relative-position components: exact half-integer voxel coordinates for even sizes."""
    p = _star_problem(filter_dhw)
    t = R.transpose_problem(p, in_channels=2, out_channels=3)
    compare_all(p, t, dtype, opts, "points on axes", device=device)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opts", ALL_OPTS, ids=OPT_IDS)
def test_points_exactly_at_radius_and_far_outside(dtype, opts, device):
    """|p| = extent / 2 along an axis maps exactly onto the window surface (v = n - 1 or n - 1/2);
    points 3 extents away are clamped (linear, nearest) or dropped (linear_border)."""
    centre = np.array([0.5, 0.5, 0.5])
    inps = [centre]
    for k in range(3):
        for a in (-0.25, 0.25, -1.5, 1.5):  # extent 0.5: radius 0.25 exactly
            q = centre.copy()
            q[k] += a
            inps.append(q)
    inps.append(centre + [1.5, -1.5, 1.5])
    inp = np.array(inps)
    rng = np.random.default_rng(4)
    index = np.arange(len(inp), dtype=np.int64)
    for filter_dhw in ((3, 4, 2), (1, 1, 1), (2, 3, 5)):
        p = R.Problem(filters=R.f32(rng.uniform(-1, 1, filter_dhw + (2, 2))), out_positions=centre[None],
                      extents=np.array([[0.5]]), offset=np.zeros(3), inp_positions=inp,
                      inp_features=R.f32(rng.uniform(-1, 1, (len(inp), 2))), inp_importance=None,
                      neighbors_index=index, neighbors_importance=None,
                      neighbors_row_splits=np.array([0, len(inp)], np.int64))
        t = R.transpose_problem(p, in_channels=2, out_channels=3)
        compare_all(p, t, dtype, opts, f"at radius / outside, filter {filter_dhw}", exact_data=True, device=device)


# float32 cannot resolve q + 1/2 for q ~ 1e-9, so nearest-neighbor (a jump at x.5) is
# compared in float64 only; linear interpolation is continuous and runs in both.
TINY_CASES = [(d, o) for d in DTYPES for o in ALL_OPTS
              if not (d == np.float32 and o["interpolation"] == "nearest_neighbor")]


@pytest.mark.parametrize("dtype,opts", TINY_CASES,
                         ids=[f"{d.__name__}-{OPT_IDS[ALL_OPTS.index(o)]}" for d, o in TINY_CASES])
def test_tiny_relative_positions_and_mapping_thresholds(dtype, opts, device):
    """Relative positions around the mapping thresholds (radial: max|u| < 1e-8 -> centre;
    volume preserving, CPU: n^2 < 1e-12 and rho^2 < 1e-12 -> 0; CUDA would use 1e-8).
    Near the origin float32 resolves these offsets exactly. In float64 a missing or wrong
    threshold shows up as a ~1e-8 relative change of linear weights, above the tolerance."""
    ext = 0.5  # u = 4 p
    rels = [(-3e-9, 0.0, 0.0), (2e-9, -1e-9, 1e-9),          # radial: max|u| < 1e-8
            (-4e-9, 0.0, 0.0), (3e-9, 2e-9, 0.0),            # radial: max|u| > 1e-8
            (1e-7, 5e-8, -5e-8), (-1e-7, 1e-7, 0.0),         # vp: n^2 < 1e-12
            (2.5e-6, -1e-6, 1e-6),                           # vp: 1e-12 < n^2 < 1e-8
            (1e-7, 0.0, 0.2), (0.0, -1.5e-7, -0.2),          # vp cap: rho^2 < 1e-12
            (6e-7, 0.0, 0.2), (0.0, 1e-6, -0.1)]             # vp cap: rho^2 > 1e-12
    out = np.zeros((1, 3))
    inp = R.f32(np.array(rels))
    assert np.array_equal(inp, np.array(rels, np.float32).astype(np.float64))
    rng = np.random.default_rng(12)
    for filter_dhw in ((4, 2, 3), (3, 3, 2)):
        p = R.Problem(filters=R.f32(rng.uniform(-1, 1, filter_dhw + (2, 2))), out_positions=out,
                      extents=np.array([[ext]]), offset=np.zeros(3), inp_positions=inp,
                      inp_features=R.f32(rng.uniform(-1, 1, (len(inp), 2))), inp_importance=None,
                      neighbors_index=np.arange(len(inp), dtype=np.int64), neighbors_importance=None,
                      neighbors_row_splits=np.array([0, len(inp)], np.int64))
        t = R.transpose_problem(p, in_channels=2, out_channels=3)
        compare_all(p, t, dtype, opts, f"tiny relative positions, filter {filter_dhw}", exact_data=True, device=device)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opts", ALL_OPTS[::2], ids=OPT_IDS[::2])
def test_single_channel_and_1x1x1_filter(dtype, opts, device):
    for filter_dhw, cin, cout in (((1, 1, 1), 1, 1), ((1, 1, 1), 3, 2), ((2, 2, 2), 1, 1)):
        p = base_problem(filter_dhw=filter_dhw, in_channels=cin, out_channels=cout)
        t = R.transpose_problem(p, in_channels=1, out_channels=cin)
        compare_all(p, t, dtype, dict(normalize=True, **opts), f"filter {filter_dhw} {cin}->{cout}", device=device)


# --------------------------------------------------------------------------- NaN positions

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opts", ALL_OPTS, ids=OPT_IDS)
def test_nan_positions_do_not_crash(dtype, opts, device):
    """Documented: no crash; rows that do not touch a NaN point are finite and correct."""
    p = base_problem()
    rs, idx = p.neighbors_row_splits, p.neighbors_index
    bad_inp = int(idx[rs[2]])  # an input point some rows use
    bad_out = 3
    inp = p.inp_positions.copy()
    inp[bad_inp] = [np.nan, 0.5, np.nan]
    out = p.out_positions.copy()
    out[bad_out, 1] = np.nan
    pn = p.replace(inp_positions=inp, out_positions=out)
    assert_clear_of_kinks(p, R.transpose_problem(p, in_channels=2, out_channels=3), dtype, opts)
    got = gm.continuous_conv(*pn.args(dtype), **opts, device=device)
    assert got.shape == (len(out), 2) and got.dtype == dtype
    clean = [i for i in range(len(rs) - 1)
             if i != bad_out and bad_inp not in idx[rs[i]:rs[i + 1]]]
    assert len(clean) >= 5
    ref = R.continuous_conv(*p.args(), **opts)
    R.assert_matches(got[clean], ref[clean], dtype, f"NaN positions, clean rows {opts}")
    # the transpose: its rows are forward input points, its inputs forward output points
    t = R.transpose_problem(p, in_channels=2, out_channels=3)
    tn = t.replace(out_positions=inp, inp_positions=out)
    tgot = gm.continuous_conv_transpose(*tn.args(dtype), **opts, device=device)
    assert tgot.shape == (len(inp), 3)
    trs, tidx = t.neighbors_row_splits, t.neighbors_index
    tclean = [j for j in range(len(trs) - 1) if j != bad_inp and bad_out not in tidx[trs[j]:trs[j + 1]]]
    tref = R.continuous_conv_transpose(*t.args(), **opts)
    R.assert_matches(tgot[tclean], tref[tclean], dtype, f"NaN positions, transpose clean rows {opts}")
    # the gradient ops only need to survive
    g = np.ones((len(out), 2), dtype)
    assert gm.continuous_conv_backprop_filter(*pn.args(dtype), g, **opts, device=device).shape == p.filters.shape
    grads = gm.continuous_conv_backward(*pn.args(dtype), g, **opts, device=device)
    assert grads.inp_features.shape == p.inp_features.shape
    gt = np.ones((len(inp), 3), dtype)
    tgrads = gm.continuous_conv_transpose_backward(*tn.args(dtype), gt, **opts, device=device)
    assert tgrads.filters.shape == t.filters.shape


# --------------------------------------------------------------------------- chunking, threads

def medium_problem(seed=5):
    """Large enough that the patch buffer spans several chunks and both threads get work."""
    rng = np.random.default_rng(seed)
    ni, no, cin, cout = 700, 600, 8, 4
    inp = rng.uniform(0, 1, (ni, 3))
    out = rng.uniform(0, 1, (no, 3))
    extents = rng.uniform(0.2, 0.3, (no, 3))
    radii = 0.55 * extents.max(axis=1)
    index, splits = R.radius_neighbors(out, inp, radii)
    index, splits = R.shuffle_and_duplicate(index, splits, rng, 20)
    return R.Problem(filters=rng.uniform(-1, 1, (4, 4, 4, cin, cout)), out_positions=out, extents=extents,
                     offset=np.array([0.1, 0.2, -0.3]), inp_positions=inp, inp_features=rng.uniform(-1, 1, (ni, cin)),
                     inp_importance=rng.uniform(0.2, 1, ni), neighbors_index=index,
                     neighbors_importance=rng.uniform(0.2, 1, len(index)), neighbors_row_splits=splits)


_MEDIUM = {}


def _medium():
    if not _MEDIUM:
        p = medium_problem()
        _MEDIUM["p"] = p
        _MEDIUM["t"] = R.transpose_problem(p, in_channels=5, out_channels=6)
    return _MEDIUM["p"], _MEDIUM["t"]


def _assert_bitwise(a, b, what):
    assert a.keys() == b.keys()
    for name in a:
        if a[name] is None:
            assert b[name] is None, name
            continue
        assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape, f"{what}: {name}"
        assert np.array_equal(a[name], b[name]), (
            f"{what}: {name} not bitwise equal, max diff {np.max(np.abs(a[name] - b[name])):.3g}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opts", [dict(coordinate_mapping="ball_to_cube_radial", interpolation="linear",
                                       normalize=True),
                                  dict(coordinate_mapping="identity", interpolation="linear_border",
                                       align_corners=False, normalize=False)], ids=["radial", "identity"])
def test_max_temp_mem_does_not_change_results(dtype, opts, device):
    """Chunking (max_temp_mem_MB) must not change any result, filter gradients included."""
    p, t = _medium()
    base = run_all_ops(p, t, dtype, opts, max_temp_mem_MB=10 ** 6, num_threads=1, device=device)
    for mb in (0, 1, 64):
        _assert_bitwise(base, run_all_ops(p, t, dtype, opts, max_temp_mem_MB=mb, num_threads=1, device=device),
                        f"max_temp_mem_MB={mb} vs 10**6")


def test_huge_max_temp_mem_values(device):
    """MB values whose byte count overflows 64 bits must not wrap around."""
    p = base_problem()
    t = R.transpose_problem(p, in_channels=2, out_channels=3)
    opts = dict(normalize=True)
    base = run_all_ops(p, t, np.float64, opts, device=device)
    for mb in (2 ** 40, 10 ** 15, 2 ** 62, 2 ** 70):
        _assert_bitwise(base, run_all_ops(p, t, np.float64, opts, max_temp_mem_MB=mb, device=device),
                        f"max_temp_mem_MB={mb}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opts", [dict(coordinate_mapping="ball_to_cube_volume_preserving",
                                       interpolation="linear", normalize=True),
                                  dict(coordinate_mapping="identity", interpolation="nearest_neighbor",
                                       align_corners=False, normalize=True)], ids=["vp", "nearest"])
@pytest.mark.parametrize("mb", [64, 0])
def test_thread_count_does_not_change_results(dtype, opts, mb, device):
    p, t = _medium()
    one = run_all_ops(p, t, dtype, opts, num_threads=1, max_temp_mem_MB=mb, device=device)
    two = run_all_ops(p, t, dtype, opts, num_threads=2, max_temp_mem_MB=mb, device=device)
    _assert_bitwise(one, two, f"num_threads 1 vs 2 (max_temp_mem_MB={mb})")
    # the medium problem is also checked against the reference once (float64, cheap enough)
    if dtype == np.float64 and opts["interpolation"] == "linear" and mb == 64:
        R.assert_matches(one["continuous_conv"], R.continuous_conv(*p.args(), **opts), dtype, "medium forward")


@pytest.mark.parametrize("num_out", [1, 2, 3, 5, 12])
def test_thread_count_on_tiny_problems(num_out, device):
    """Fewer output points than threads, or a few per thread: still bitwise identical."""
    opts = dict(coordinate_mapping="ball_to_cube_radial", interpolation="linear_border", normalize=True)
    p = R.make_problem(50 + num_out, num_out=num_out, extent_kind="1x3", special_points=False)
    t = R.transpose_problem(p, in_channels=2, out_channels=3)
    for dtype in DTYPES:
        one = run_all_ops(p, t, dtype, opts, num_threads=1, device=device)
        for n in (2, 3):
            _assert_bitwise(one, run_all_ops(p, t, dtype, opts, num_threads=n, device=device),
                            f"num_threads 1 vs {n}, No={num_out}")
        _assert_bitwise(one, run_all_ops(p, t, dtype, opts, device=device), "explicit 1 vs default threads")


def test_support_ops_thread_determinism(device):
    p, _ = _medium()
    ni = len(p.inp_positions)
    a = gm.invert_neighbors_list(ni, p.neighbors_index, p.neighbors_row_splits, p.neighbors_importance, device=device)
    ref = R.invert_neighbors_list(ni, p.neighbors_index, p.neighbors_row_splits, p.neighbors_importance)
    for x, y in zip(a, ref):
        assert np.array_equal(x, y)
    s = gm.reduce_subarrays_sum(p.neighbors_importance, p.neighbors_row_splits, device=device)
    R.assert_matches(s, R.reduce_subarrays_sum(p.neighbors_importance, p.neighbors_row_splits), np.float64,
                     "reduce_subarrays_sum medium")
    old = gm.get_num_threads()
    try:
        gm.set_num_threads(1)
        b = gm.invert_neighbors_list(ni, p.neighbors_index, p.neighbors_row_splits, p.neighbors_importance,
                                     device=device)
        s1 = gm.reduce_subarrays_sum(p.neighbors_importance, p.neighbors_row_splits, device=device)
    finally:
        gm.set_num_threads(old)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)
    assert np.array_equal(s, s1)
