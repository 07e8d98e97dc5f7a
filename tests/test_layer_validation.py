"""Argument checks of the NumPy layers (fixed cases of what tests/test_fuzz_layers.py found):
every bad argument raises TypeError / ValueError / MemoryError naming it."""

import warnings

import numpy as np
import pytest

import geomops as gm
from geomops.layers import ContinuousConv, ContinuousConvTranspose, FixedRadiusSearch, KNNSearch, RadiusSearch

RNG = np.random.default_rng(3)
X = RNG.random((12, 3)).astype(np.float32)
F = RNG.standard_normal((12, 3)).astype(np.float32)


@pytest.mark.parametrize("extents, exc", [
    (None, TypeError), ("0.5", TypeError), (0.5 + 1j, TypeError), (True, TypeError), (np.nan, ValueError),
    (np.inf, ValueError), (1e300, ValueError), (-0.5, ValueError), (0.0, ValueError), (1e-300, ValueError),
    (np.full((12, 1), 0.5), ValueError), (np.full(5, 0.5), ValueError),
    (np.where(np.arange(12) == 3, np.nan, 0.5), ValueError),
])
@pytest.mark.parametrize("cls", [ContinuousConv, ContinuousConvTranspose])
def test_bad_extents_are_named(cls, extents, exc):
    with pytest.raises(exc, match="extents"):
        cls(3, 2, 2)(F, X, X, extents)


@pytest.mark.parametrize("kwargs, exc, name", [
    (dict(dtype="foo"), TypeError, "dtype"), (dict(dtype=np.float16), TypeError, "dtype"),
    (dict(use_bias="no"), TypeError, "use_bias"), (dict(normalize=None), TypeError, "normalize"),
    (dict(align_corners=1), TypeError, "align_corners"),
    (dict(radius_search_ignore_query_points="yes"), TypeError, "radius_search_ignore_query_points"),
    (dict(coordinate_mapping="foo"), ValueError, "coordinate_mapping"),
    (dict(interpolation=None), ValueError, "interpolation"),
    (dict(radius_search_metric=None), ValueError, "radius_search_metric"),
    (dict(offset=[np.nan, 0, 0]), ValueError, "offset"), (dict(offset="abc"), TypeError, "offset"),
    (dict(offset=[1.0, 2.0]), ValueError, "offset"), (dict(offset=0.5), ValueError, "offset"),
    (dict(offset=[1e300, 0, 0]), ValueError, "offset"),
    (dict(kernel_size=(1 << 16,) * 3), MemoryError, "kernel_size"),  # 1.7e15 bytes: never allocatable
    (dict(kernel_size=(1 << 40,) * 3), MemoryError, "kernel_size"),
])
def test_bad_constructor_arguments_are_named(kwargs, exc, name):
    with pytest.raises(exc, match=name):
        ContinuousConv(**dict(dict(in_channels=3, filters=2, kernel_size=2), **kwargs))


def test_search_layer_constructor_arguments():
    with pytest.raises(TypeError, match="index_dtype"):
        KNNSearch(index_dtype="foo")
    with pytest.raises(TypeError, match="index_dtype"):
        FixedRadiusSearch(index_dtype=np.float32)


def test_non_finite_positions_are_named():
    bad = X.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="inp_positions"):
        ContinuousConv(3, 2, 2)(F, bad, X, 0.5)
    with pytest.raises(ValueError, match="out_positions"):
        ContinuousConvTranspose(3, 2, 2)(F, X, bad, 0.5)


def test_user_neighbor_lists_are_named():
    layer = ContinuousConv(3, 2, 2)
    nb = gm.fixed_radius_search(X, X, 0.25)
    with pytest.raises(ValueError, match="user_neighbors_index contains 12"):
        layer(F, X, X, 0.5, user_neighbors_index=np.full_like(nb.neighbors_index, 12),
              user_neighbors_row_splits=nb.neighbors_row_splits)
    with pytest.raises(ValueError, match="user_neighbors_row_splits"):
        layer(F, X, X, 0.5, user_neighbors_index=nb.neighbors_index,
              user_neighbors_row_splits=nb.neighbors_row_splits[:-1])
    with pytest.raises(ValueError, match="user_neighbors_importance"):
        layer(F, X, X, 0.5, user_neighbors_index=nb.neighbors_index,
              user_neighbors_row_splits=nb.neighbors_row_splits, user_neighbors_importance=np.ones(3, np.float32))
    # the lists the search gives: the searched result
    want = layer(F, X, X, 0.5)
    got = layer(F, X, X, 0.5, user_neighbors_index=nb.neighbors_index,
                user_neighbors_row_splits=nb.neighbors_row_splits)
    np.testing.assert_array_equal(got, want)


def test_hash_table_errors_name_it():
    layer = ContinuousConv(3, 2, 2)
    np.testing.assert_array_equal(
        layer(F, X, X, 0.5, fixed_radius_search_hash_table=gm.build_spatial_hash_table(X, 0.25)), layer(F, X, X, 0.5))
    for table in (gm.build_spatial_hash_table(X, 0.3), gm.build_spatial_hash_table(X[:5], 0.25), (1, 2)):
        with pytest.raises((TypeError, ValueError), match="fixed_radius_search_hash_table"):
            layer(F, X, X, 0.5, fixed_radius_search_hash_table=table)
    with pytest.raises(ValueError, match="fixed_radius_search_hash_table is used with scalar extents only"):
        layer(F, X, X, np.full(12, 0.5, np.float32),
              fixed_radius_search_hash_table=gm.build_spatial_hash_table(X, 0.25))


def test_wrt_must_be_names():
    layer = ContinuousConv(3, 2, 2)
    out = layer(F, X, X, 0.5)
    with pytest.raises(TypeError, match="wrt"):
        layer.backward(np.ones_like(out), wrt=3)
    with pytest.raises(ValueError, match="wrt may name"):
        layer.backward(np.ones_like(out), wrt=("kernel", None))


def test_non_finite_features_propagate_without_warnings():
    layer = ContinuousConv(3, 2, 2, activation="tanh", use_dense_layer_for_center=True)
    f = F.copy()
    f[0, 0] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = layer(f, X, X, 0.5)
        layer.backward(np.ones_like(out))
    assert not np.isfinite(out[0]).all()


def test_radius_search_layer_scalar_radius_gradient():
    """A scalar radius with normalised distances gives the radius gradient of the same radius per query."""
    layer = RadiusSearch(return_distances=True, normalize_distances=True)
    res = layer(X, X, 0.4)
    g = np.linspace(-1, 1, len(res.neighbors_distance))
    scalar = layer.backward(g)
    layer(X, X, np.full(12, 0.4, np.float32))
    per_query = layer.backward(g)
    for a, b in zip(scalar, per_query):
        np.testing.assert_array_equal(a, b)
