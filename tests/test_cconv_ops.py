"""geomops' continuous-convolution ops against the float64 NumPy reference (tests/reference_cconv.py).

The forward op runs the full option grid (3 mappings x 3 interpolations x align_corners x
normalize x importances x 5 extent kinds x offset, float32 and float64); the other ops run
every mapping/interpolation pair with a covering set of the remaining options. Problems are
small (40 inputs, 12 outputs) with neighbors from a brute-force radius test: empty rows,
a neighbor at relative position 0, one on the z axis, out-of-window neighbors and
duplicate entries all occur.
"""

import functools
import itertools

import numpy as np
import pytest

import geomops as gm
import reference_cconv as R

DTYPES = [np.float32, np.float64]
SEED = 16


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Thousands of tiny calls: one thread avoids OpenMP wake-up stalls on a loaded 2-core box
    (measured 40 s vs 6 s for the cconv suite). Thread-count independence has its own tests
    in test_cconv_edge_cases.py."""
    gm.set_num_threads(1)
    yield
    gm.set_num_threads(None)


@functools.lru_cache(maxsize=None)
def problem(extent_kind, importance, offset_nonzero, filter_dhw=(3, 2, 4)):
    return R.make_problem(SEED, extent_kind=extent_kind, importance=importance, offset_nonzero=offset_nonzero,
                          filter_dhw=filter_dhw)


@functools.lru_cache(maxsize=None)
def tproblem(extent_kind, importance, offset_nonzero, filter_dhw=(3, 2, 4)):
    return R.transpose_problem(problem(extent_kind, importance, offset_nonzero, filter_dhw), in_channels=2,
                               out_channels=3, seed=SEED + 1)


@functools.lru_cache(maxsize=None)
def grad_out(rows, cols, seed=5):
    return R.f32(np.random.default_rng(seed).uniform(-1.0, 1.0, (rows, cols)))


def fwd_args(p, dtype, absent_as_empty=False):
    """Forward args; index int32 with float32, int64 with float64; absent importances as None or []."""
    args = list(p.args(dtype, np.int32 if dtype == np.float32 else np.int64))
    if absent_as_empty:
        for k in (6, 8):
            if args[k] is None:
                args[k] = np.zeros(0, dtype)
    return args


def tr_args(t, dtype, fields=None, absent_as_empty=False):
    args = list(t.args(dtype, np.int32 if dtype == np.float32 else np.int64, fields=fields))
    if absent_as_empty:
        args = [np.zeros(0, dtype) if a is None else a for a in args]
    return args


def math_opts(mapping, interpolation, align_corners, normalize):
    return dict(coordinate_mapping=mapping, interpolation=interpolation, align_corners=align_corners,
                normalize=normalize)


def check_nearest_margin(p, dtype, opts, transpose=False):
    """float32 nearest-neighbor results are compared only on data clear of rounding kinks."""
    if opts["interpolation"] != "nearest_neighbor" or dtype != np.float32:
        return
    if transpose:
        m = R.rounding_margin(p.filters.shape[:3], p.out_positions, p.extents, p.offset, p.inp_positions,
                              p.neighbors_index, p.neighbors_row_splits, transpose=True,
                              align_corners=opts["align_corners"], coordinate_mapping=opts["coordinate_mapping"])
    else:
        m = R.rounding_margin(p.filters.shape[:3], p.out_positions, p.extents, p.offset, p.inp_positions,
                              p.neighbors_index, p.neighbors_row_splits, align_corners=opts["align_corners"],
                              coordinate_mapping=opts["coordinate_mapping"])
    assert m > 2e-5, f"test data too close to a rounding kink ({m:.2g}); pick another seed"


# --------------------------------------------------------------------------- forward, full grid

FORWARD_GRID = list(itertools.product(R.MAPPINGS, R.INTERPOLATIONS, [True, False], [False, True], [False, True],
                                      R.EXTENT_KINDS, [False, True]))


def _grid_id(c):
    m, i, a, n, imp, e, o = c
    return f"{m[:12]}-{i}-ac{int(a)}-n{int(n)}-imp{int(imp)}-{e}-off{int(o)}"


@functools.lru_cache(maxsize=None)
def ref_forward(extent_kind, importance, offset_nonzero, opts_items, filter_dhw=(3, 2, 4)):
    p = problem(extent_kind, importance, offset_nonzero, filter_dhw)
    return R.continuous_conv(*p.args(), **dict(opts_items))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", FORWARD_GRID, ids=[_grid_id(c) for c in FORWARD_GRID])
def test_forward_matches_reference(config, dtype, device):
    mapping, interp, align, normalize, importance, extent_kind, offset = config
    opts = math_opts(mapping, interp, align, normalize)
    p = problem(extent_kind, importance, offset)
    check_nearest_margin(p, dtype, opts)
    ref = ref_forward(extent_kind, importance, offset, tuple(sorted(opts.items())))
    got = gm.continuous_conv(*fwd_args(p, dtype, absent_as_empty=dtype == np.float64), **opts, device=device)
    R.assert_matches(got, ref, dtype, f"continuous_conv {opts} imp={importance} extents={extent_kind} off={offset}")


SMALL_FILTERS = [(1, 1, 1), (2, 1, 3), (1, 5, 2)]
SMALL_GRID = [(f, m, i, a) for f in SMALL_FILTERS for m in R.MAPPINGS for i in R.INTERPOLATIONS
              for a in (True, False)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", SMALL_GRID, ids=[f"{'x'.join(map(str, c[0]))}-{c[1][:12]}-{c[2]}-ac{int(c[3])}"
                                                    for c in SMALL_GRID])
def test_forward_other_filter_sizes(config, dtype, device):
    filter_dhw, mapping, interp, align = config
    # cycle the remaining options over the configs so each value occurs
    k = SMALL_GRID.index(config)
    normalize, importance, offset = bool(k % 2), bool((k // 2) % 2), bool((k // 3) % 2)
    extent_kind = R.EXTENT_KINDS[k % len(R.EXTENT_KINDS)]
    opts = math_opts(mapping, interp, align, normalize)
    p = problem(extent_kind, importance, offset, filter_dhw)
    check_nearest_margin(p, dtype, opts)
    ref = ref_forward(extent_kind, importance, offset, tuple(sorted(opts.items())), filter_dhw)
    got = gm.continuous_conv(*fwd_args(p, dtype), **opts, device=device)
    R.assert_matches(got, ref, dtype, f"continuous_conv filter {filter_dhw} {opts} imp={importance} "
                                      f"extents={extent_kind} off={offset}")


# --------------------------------------------------------------------------- other ops, covering subset

# (align_corners, normalize, importance, extent kind, offset): every value of every factor occurs
VARIANTS = [
    (True, False, False, "scalar", False),
    (False, True, True, "Nx3", True),
    (False, False, True, "1x3", True),
    (True, True, False, "Nx1", True),
    (False, True, False, "1x1", False),
    (True, True, True, "1x3", False),
]
OTHER_GRID = [(m, i, v) for m in R.MAPPINGS for i in R.INTERPOLATIONS for v in VARIANTS]
OTHER_IDS = [f"{m[:12]}-{i}-ac{int(v[0])}-n{int(v[1])}-imp{int(v[2])}-{v[3]}-off{int(v[4])}" for m, i, v in OTHER_GRID]


def _setup(config):
    mapping, interp, (align, normalize, importance, extent_kind, offset) = config
    opts = math_opts(mapping, interp, align, normalize)
    return opts, (extent_kind, importance, offset)


def _desc(op, opts, key):
    return f"{op} {opts} imp={key[1]} extents={key[0]} off={key[2]}"


@functools.lru_cache(maxsize=None)
def ref_other(op, key, opts_items):
    opts = dict(opts_items)
    p, t = problem(*key), tproblem(*key)
    if op == "transpose":
        return R.continuous_conv_transpose(*t.args(), **opts)
    if op == "backprop_filter":
        return R.continuous_conv_backprop_filter(*p.args(), grad_out(len(p.out_positions), 2), **opts)
    if op == "transpose_backprop_filter":
        return R.continuous_conv_transpose_backprop_filter(
            *t.args(fields=R.TransposeProblem.BACKPROP_FILTER_FIELDS), grad_out(len(t.out_positions), 3), **opts)
    if op == "backward":
        return R.continuous_conv_backward(*p.args(), grad_out(len(p.out_positions), 2), **opts)
    if op == "transpose_backward":
        return R.continuous_conv_transpose_backward(*t.args(), grad_out(len(t.out_positions), 3), **opts)
    raise ValueError(op)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", OTHER_GRID, ids=OTHER_IDS)
def test_transpose_matches_reference(config, dtype, device):
    opts, key = _setup(config)
    t = tproblem(*key)
    check_nearest_margin(t, dtype, opts, transpose=True)
    got = gm.continuous_conv_transpose(*tr_args(t, dtype, absent_as_empty=dtype == np.float64), **opts, device=device)
    R.assert_matches(got, ref_other("transpose", key, tuple(sorted(opts.items()))), dtype,
                     _desc("continuous_conv_transpose", opts, key))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", OTHER_GRID, ids=OTHER_IDS)
def test_backprop_filter_matches_reference(config, dtype, device):
    opts, key = _setup(config)
    p = problem(*key)
    check_nearest_margin(p, dtype, opts)
    g = grad_out(len(p.out_positions), 2).astype(dtype)
    got = gm.continuous_conv_backprop_filter(*fwd_args(p, dtype), g, **opts, device=device)
    R.assert_matches(got, ref_other("backprop_filter", key, tuple(sorted(opts.items()))), dtype,
                     _desc("continuous_conv_backprop_filter", opts, key))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", OTHER_GRID, ids=OTHER_IDS)
def test_transpose_backprop_filter_matches_reference(config, dtype, device):
    opts, key = _setup(config)
    t = tproblem(*key)
    check_nearest_margin(t, dtype, opts, transpose=True)
    g = grad_out(len(t.out_positions), 3).astype(dtype)
    got = gm.continuous_conv_transpose_backprop_filter(
        *tr_args(t, dtype, fields=R.TransposeProblem.BACKPROP_FILTER_FIELDS), g, **opts, device=device)
    R.assert_matches(got, ref_other("transpose_backprop_filter", key, tuple(sorted(opts.items()))), dtype,
                     _desc("continuous_conv_transpose_backprop_filter", opts, key))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", OTHER_GRID, ids=OTHER_IDS)
def test_backward_matches_reference(config, dtype, device):
    opts, key = _setup(config)
    p = problem(*key)
    check_nearest_margin(p, dtype, opts)
    g = grad_out(len(p.out_positions), 2).astype(dtype)
    got = gm.continuous_conv_backward(*fwd_args(p, dtype, absent_as_empty=dtype == np.float32), g, **opts,
                                      device=device)
    ref = ref_other("backward", key, tuple(sorted(opts.items())))
    assert type(got).__name__ == "ContinuousConvGradients"
    assert got._fields == ("filters", "inp_features", "inp_importance", "neighbors_importance", "inp_positions",
                           "out_positions", "extents")
    assert got.inp_positions is None and got.out_positions is None and got.extents is None  # only with wrt=
    for name in ref._fields:
        r = getattr(ref, name)
        if r is None:
            assert getattr(got, name) is None, f"{name} must be None when that importance is not given"
        else:
            R.assert_matches(getattr(got, name), r, dtype, _desc(f"continuous_conv_backward.{name}", opts, key))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", OTHER_GRID, ids=OTHER_IDS)
def test_transpose_backward_matches_reference(config, dtype, device):
    opts, key = _setup(config)
    t = tproblem(*key)
    check_nearest_margin(t, dtype, opts, transpose=True)
    g = grad_out(len(t.out_positions), 3).astype(dtype)
    got = gm.continuous_conv_transpose_backward(*tr_args(t, dtype), g, **opts, device=device)
    ref = ref_other("transpose_backward", key, tuple(sorted(opts.items())))
    assert type(got).__name__ == "ContinuousConvTransposeGradients"
    assert got._fields == ("filters", "inp_features", "out_importance", "neighbors_importance",
                           "inp_neighbors_importance_sum", "inp_positions", "out_positions", "extents")
    assert got.inp_positions is None and got.out_positions is None and got.extents is None  # only with wrt=
    for name in ref._fields:
        r = getattr(ref, name)
        if r is None:
            assert getattr(got, name) is None, f"{name} must be None when that input is absent"
        else:
            R.assert_matches(getattr(got, name), r, dtype,
                             _desc(f"continuous_conv_transpose_backward.{name}", opts, key))


# --------------------------------------------------------------------------- dtype options

def test_index_dtypes_and_absent_forms_agree(device):
    p = problem("Nx3", False, True)
    opts = math_opts("ball_to_cube_volume_preserving", "linear", False, True)
    base = gm.continuous_conv(*p.args(np.float64, np.int64), **opts, device=device)
    assert np.array_equal(base, gm.continuous_conv(*p.args(np.float64, np.int32), **opts, device=device))
    args = list(p.args(np.float64, np.int64))
    args[6] = np.zeros(0)
    args[8] = np.zeros(0)
    assert np.array_equal(base, gm.continuous_conv(*args, **opts, device=device))
    # int32 row splits are accepted (converted)
    args[9] = args[9].astype(np.int32)
    assert np.array_equal(base, gm.continuous_conv(*args, **opts, device=device))


OUTPUT_TYPE_CASES = [(np.float32, np.float64), (np.float64, np.float32)]


@pytest.mark.parametrize("inp_dtype,out_dtype", OUTPUT_TYPE_CASES)
def test_output_type(inp_dtype, out_dtype, device):
    key = ("1x3", True, True)
    opts = math_opts("ball_to_cube_radial", "linear_border", False, True)
    items = tuple(sorted(opts.items()))
    p, t = problem(*key), tproblem(*key)
    tol_dtype = np.float32  # one side is float32: float32 tolerance, dtype checked separately
    g = grad_out(len(p.out_positions), 2).astype(inp_dtype)
    gt = grad_out(len(t.out_positions), 3).astype(inp_dtype)

    def check(got, ref, what):
        assert got.dtype == out_dtype, f"{what}: dtype {got.dtype}, expected output_type {out_dtype}"
        R.assert_matches(got.astype(np.float32), ref, tol_dtype, what)

    check(gm.continuous_conv(*fwd_args(p, inp_dtype), output_type=out_dtype, **opts, device=device),
          ref_forward(*key, items), "continuous_conv")
    check(gm.continuous_conv_transpose(*tr_args(t, inp_dtype), output_type=out_dtype, **opts, device=device),
          ref_other("transpose", key, items), "continuous_conv_transpose")
    check(gm.continuous_conv_backprop_filter(*fwd_args(p, inp_dtype), g, output_type=out_dtype, **opts, device=device),
          ref_other("backprop_filter", key, items), "continuous_conv_backprop_filter")
    check(gm.continuous_conv_transpose_backprop_filter(
        *tr_args(t, inp_dtype, fields=R.TransposeProblem.BACKPROP_FILTER_FIELDS), gt, output_type=out_dtype,
        **opts, device=device), ref_other("transpose_backprop_filter", key, items),
        "continuous_conv_transpose_backprop_filter")
    got = gm.continuous_conv_backward(*fwd_args(p, inp_dtype), g, output_type=out_dtype, **opts, device=device)
    ref = ref_other("backward", key, items)
    for name in ref._fields:
        check(getattr(got, name), getattr(ref, name), f"continuous_conv_backward.{name}")
    got = gm.continuous_conv_transpose_backward(*tr_args(t, inp_dtype), gt, output_type=out_dtype, **opts,
                                                device=device)
    ref = ref_other("transpose_backward", key, items)
    for name in ref._fields:
        check(getattr(got, name), getattr(ref, name), f"continuous_conv_transpose_backward.{name}")


def test_default_options_are_documented_defaults(device):
    # align_corners=True, ball_to_cube_radial, normalize=False, linear
    p = problem("Nx3", True, True)
    got = gm.continuous_conv(*p.args(), device=device)
    ref = R.continuous_conv(*p.args(), align_corners=True, coordinate_mapping="ball_to_cube_radial",
                            normalize=False, interpolation="linear")
    R.assert_matches(got, ref, np.float64, "continuous_conv defaults")


# --------------------------------------------------------------------------- support ops

ATTR_DTYPES = [np.float32, np.float64, np.int32, np.int64, np.uint8, np.int16]


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("attr_dtype", ATTR_DTYPES)
def test_invert_neighbors_list_matches_reference(index_dtype, attr_dtype, device):
    p = problem("Nx1", True, False)
    ni = len(p.inp_positions) + 3  # trailing points that nobody references: empty rows
    rng = np.random.default_rng(3)
    attrs = rng.integers(0, 100, (len(p.neighbors_index), 2)).astype(attr_dtype)
    idx = p.neighbors_index.astype(index_dtype)
    got = gm.invert_neighbors_list(ni, idx, p.neighbors_row_splits, attrs, device=device)
    ref = R.invert_neighbors_list(ni, idx, p.neighbors_row_splits, attrs)
    assert len(got) == 3
    assert got[0].dtype == index_dtype, "neighbors_index dtype must be kept"
    assert got[1].dtype == np.int64
    assert got[2].dtype == attr_dtype and got[2].shape == attrs.shape
    for g, r, name in zip(got, ref, ("neighbors_index", "neighbors_row_splits", "neighbors_attributes")):
        assert np.array_equal(g, r), f"invert_neighbors_list {name} differs (rows must be in original order)"


@pytest.mark.parametrize("attr_shape", [(0,), (0, 3)])
def test_invert_neighbors_list_empty(attr_shape, device):
    # empty attributes with a non-empty list
    p = problem("scalar", False, False)
    got = gm.invert_neighbors_list(len(p.inp_positions), p.neighbors_index, p.neighbors_row_splits,
                                   np.zeros(0, np.float32), device=device)
    assert got[2].shape == (0,) and got[2].dtype == np.float32
    ref = R.invert_neighbors_list(len(p.inp_positions), p.neighbors_index, p.neighbors_row_splits, np.zeros(0))
    assert np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1])
    # an empty list (E = 0) over 4 points and 3 rows
    got = gm.invert_neighbors_list(4, np.zeros(0, np.int32), np.zeros(4, np.int64), np.zeros(attr_shape), device=device)
    assert got[0].shape == (0,) and got[0].dtype == np.int32
    assert np.array_equal(got[1], np.zeros(5, np.int64))
    assert got[2].shape == attr_shape
    # zero points
    got = gm.invert_neighbors_list(0, np.zeros(0, np.int64), np.zeros(1, np.int64), np.zeros(0), device=device)
    assert np.array_equal(got[1], [0]) and got[0].shape == (0,)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64])
def test_reduce_subarrays_sum_matches_reference(dtype, device):
    rng = np.random.default_rng(8)
    splits = np.array([0, 0, 3, 3, 10, 11, 40, 40], np.int64)
    values = (rng.uniform(-100, 100, 40) if np.issubdtype(dtype, np.floating) else rng.integers(-100, 100, 40))
    values = values.astype(dtype)
    got = gm.reduce_subarrays_sum(values, splits, device=device)
    ref = R.reduce_subarrays_sum(values.astype(np.float64) if np.issubdtype(dtype, np.floating) else values, splits)
    assert got.dtype == dtype and got.shape == (7,)
    if np.issubdtype(dtype, np.integer):
        assert np.array_equal(got, ref)
    else:
        R.assert_matches(got, ref, dtype, "reduce_subarrays_sum")
    assert got[0] == 0 and got[2] == 0 and got[6] == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64])
def test_reduce_subarrays_sum_empty_values(dtype, device):
    for splits in ([0], [0, 0, 0], [0, 0, 0, 0, 0]):
        got = gm.reduce_subarrays_sum(np.zeros(0, dtype), np.array(splits, np.int64), device=device)
        assert got.shape == (0,) and got.dtype == dtype
