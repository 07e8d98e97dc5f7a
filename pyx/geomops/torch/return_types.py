"""The named tuples the ops return: type names and fields as in ``open3d.ml.torch``."""

from collections import namedtuple as _namedtuple

__all__ = ["build_spatial_hash_table", "fixed_radius_search", "radius_search", "knn_search",
           "invert_neighbors_list"]

build_spatial_hash_table = _namedtuple("build_spatial_hash_table",
                                       ["hash_table_index", "hash_table_cell_splits", "hash_table_splits"])
fixed_radius_search = _namedtuple("fixed_radius_search",
                                  ["neighbors_index", "neighbors_row_splits", "neighbors_distance"])
radius_search = _namedtuple("radius_search", ["neighbors_index", "neighbors_row_splits", "neighbors_distance"])
knn_search = _namedtuple("knn_search", ["neighbors_index", "neighbors_row_splits", "neighbors_distance"])
invert_neighbors_list = _namedtuple("invert_neighbors_list",
                                    ["neighbors_index", "neighbors_row_splits", "neighbors_attributes"])
