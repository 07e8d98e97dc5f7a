"""Argument checks shared by the NumPy layers (:mod:`geomops.layers`) and the torch layers
(:mod:`geomops.torch.layers`): the same checks with the same messages, on shapes and values
only, so this module imports no array framework."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional, cast

from ._validate import mismatch
from .search import METRICS, Metric


def radius_search_metric(metric: object) -> Metric:
    """The layer's ``radius_search_metric``, one of :data:`geomops.search.METRICS`."""
    if not isinstance(metric, str) or metric not in METRICS:
        raise ValueError(f"radius_search_metric must be one of {METRICS} but got {metric!r}")
    return cast(Metric, metric)


def feature_channels(features_shape: Sequence[int], in_channels: int) -> None:
    """``inp_features`` ([Ni, Cin], 2-d) has the layer's ``in_channels``."""
    if features_shape[1] != in_channels:
        raise mismatch("inp_features", 1, features_shape[1], "channels",
                       f"the layer has in_channels={in_channels} (kernel.shape[3] == {in_channels})")


def position_rows(positions_shape: Sequence[int], features_shape: Sequence[int]) -> None:
    """``inp_positions`` (2-d) has one row per row of ``inp_features`` (2-d)."""
    if positions_shape[0] != features_shape[0]:
        raise mismatch("inp_positions", 0, positions_shape[0], "points",
                       f"inp_features has {features_shape[0]} rows (inp_features.shape[0]): one position per "
                       "feature row")


def scalar_or_vector(shape: tuple[int, ...], name: str, length: Optional[int] = None,
                     per: Optional[str] = None) -> None:
    """``name`` (of ``shape``) is a scalar or, with ``length``, has shape [length]; ``per`` says
    what its entries are one per, for the message."""
    if len(shape) > 1 or (len(shape) == 1 and shape[0] != length):
        if length is None:
            raise ValueError(f"{name} must be a scalar, got shape {shape}")
        raise ValueError(f"{name} must be a scalar or have shape [{length}] (one per {per}), got shape {shape}")
