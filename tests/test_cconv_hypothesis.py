"""Property tests on random small problems: forward op vs the reference, and adjointness.

Hypothesis draws the problem structure (sizes, filter shape, options, extent kind, seed);
the float data come from NumPy with that seed, so values stay generic (away from the
nearest-neighbor rounding kinks, checked with ``assume``).
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import geomops as gm
import reference_cconv as R
from conftest import BACKENDS, use_backend

problems = st.fixed_dictionaries(dict(
    seed=st.integers(0, 2 ** 32 - 1),
    num_inp=st.integers(0, 30),
    num_out=st.integers(0, 10),
    in_channels=st.integers(1, 4),
    out_channels=st.integers(1, 3),
    filter_dhw=st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4)),
    extent_kind=st.sampled_from(R.EXTENT_KINDS),
    offset_nonzero=st.booleans(),
    importance=st.booleans(),
    duplicates=st.integers(0, 3),
    radius_scale=st.floats(0.5, 2.0),
))
options = st.fixed_dictionaries(dict(
    coordinate_mapping=st.sampled_from(R.MAPPINGS),
    interpolation=st.sampled_from(R.INTERPOLATIONS),
    align_corners=st.booleans(),
    normalize=st.booleans(),
))


def _make(spec):
    if spec["extent_kind"] in ("Nx1", "Nx3") and spec["num_out"] < 2:
        spec = dict(spec, extent_kind="1x3")  # [No, *] with No <= 1 is the shared form
    return R.make_problem(**spec)


# parametrized, not the `device` fixture: hypothesis rejects function-scoped fixtures
@pytest.mark.parametrize("device", BACKENDS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=problems, opts=options, use_f32=st.booleans())
def test_forward_random_problems_match_reference(spec, opts, use_f32, device):
    p = _make(spec)
    dtype = np.float32 if use_f32 else np.float64
    if opts["interpolation"] == "nearest_neighbor":
        m = R.rounding_margin(p.filters.shape[:3], p.out_positions, p.extents, p.offset, p.inp_positions,
                              p.neighbors_index, p.neighbors_row_splits, align_corners=opts["align_corners"],
                              coordinate_mapping=opts["coordinate_mapping"])
        assume(m > (2e-5 if use_f32 else 1e-9))
    with use_backend(device) as dev:
        got = gm.continuous_conv(*p.args(dtype, np.int32), **opts, device=dev)
    R.assert_matches(got, R.continuous_conv(*p.args(), **opts), dtype, f"continuous_conv {spec} {opts}")


@pytest.mark.parametrize("device", BACKENDS)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=problems, opts=options)
def test_transpose_is_adjoint_on_random_problems(spec, opts, device):
    p = _make(spec)
    t = R.transpose_problem(p, swapped_filters=True, seed=spec["seed"] % 1000)
    y = t.inp_features
    with use_backend(device) as dev:
        conv = gm.continuous_conv(*p.args(), **opts, device=dev)
        tr = gm.continuous_conv_transpose(*t.args(), **opts, device=dev)
    lhs, rhs = float(np.sum(conv * y)), float(np.sum(p.inp_features * tr))
    scale = float(np.sum(np.abs(conv * y)) + np.sum(np.abs(p.inp_features * tr)))
    assert abs(lhs - rhs) <= 1e-12 * scale + 1e-300, f"<conv x, y> = {lhs!r}, <x, transpose y> = {rhs!r}"
    # and the backward's feature gradient is that transpose
    with use_backend(device) as dev:
        grads = gm.continuous_conv_backward(*p.args(), y, **opts, device=dev)
    R.assert_matches(grads.inp_features, tr, np.float64, "backward.inp_features vs transpose")
