"""The named tuples the ops return: type names and fields as in ``open3d.ml.torch``."""

from typing import NamedTuple as _NamedTuple

from torch import Tensor as _Tensor

__all__ = ["build_spatial_hash_table", "fixed_radius_search", "radius_search", "knn_search",
           "invert_neighbors_list"]

build_spatial_hash_table = _NamedTuple("build_spatial_hash_table", [
    ("hash_table_index", _Tensor), ("hash_table_cell_splits", _Tensor), ("hash_table_splits", _Tensor)])
fixed_radius_search = _NamedTuple("fixed_radius_search", [
    ("neighbors_index", _Tensor), ("neighbors_row_splits", _Tensor), ("neighbors_distance", _Tensor)])
radius_search = _NamedTuple("radius_search", [
    ("neighbors_index", _Tensor), ("neighbors_row_splits", _Tensor), ("neighbors_distance", _Tensor)])
knn_search = _NamedTuple("knn_search", [
    ("neighbors_index", _Tensor), ("neighbors_row_splits", _Tensor), ("neighbors_distance", _Tensor)])
invert_neighbors_list = _NamedTuple("invert_neighbors_list", [
    ("neighbors_index", _Tensor), ("neighbors_row_splits", _Tensor), ("neighbors_attributes", _Tensor)])
