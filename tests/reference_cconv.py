"""Independent float64 NumPy reference of the continuous-convolution op family.

Written from the spec (/work/shared/spec/continuous_conv.md, §2 and its Corrections), not
from any implementation: plain Python loops over output points and their neighbor lists,
all arithmetic in float64. It is slow on purpose (clarity first) and only meant for the
small problems of the test suite.

Conventions (spec §1/§2):
- filters ``[D, H, W, Cin, Cout]``: depth = z, height = y, width = x; the spatial linear
  index of voxel (x, y, z) is ``s = z*H*W + y*W + x``.
- extents: a scalar, or ``[1|R, 1|3]`` (``R`` rows = output points of the forward op,
  input points of the transpose); ``shape[0] > 1`` means one row per point,
  ``shape[1] == 1`` means isotropic.
- optional inputs (importances) are ``None`` here.

The second part of the file builds the small random problems shared by the tests.
"""

from __future__ import annotations

import math
from collections import namedtuple

import numpy as np

MAPPINGS = ("ball_to_cube_radial", "ball_to_cube_volume_preserving", "identity")
INTERPOLATIONS = ("linear", "linear_border", "nearest_neighbor")

RADIAL_EPS = 1e-8            # §2.2: radial mapping, max|u| below this maps to the centre
VOLUME_PRESERVING_EPS = 1e-12  # §2.2: CPU threshold on n^2 and rho^2

ContinuousConvGradients = namedtuple(
    "ContinuousConvGradients", ["filters", "inp_features", "inp_importance", "neighbors_importance"])
ContinuousConvTransposeGradients = namedtuple(
    "ContinuousConvTransposeGradients",
    ["filters", "inp_features", "out_importance", "neighbors_importance", "inp_neighbors_importance_sum"])


# ----------------------------------------------------------------------------------------
# §2.2 coordinate mapping, §2.3 filter-grid coordinate, §2.4 interpolation
# ----------------------------------------------------------------------------------------

def map_to_cube(p, inv_extent, mapping):
    """Relative position ``p`` (x, y, z) -> ``q``; the filter window becomes [-1/2, 1/2]^3."""
    if mapping == "identity":
        return [p[k] * inv_extent[k] for k in range(3)]
    u = [2.0 * p[k] * inv_extent[k] for k in range(3)]
    if mapping == "ball_to_cube_radial":
        m = max(abs(c) for c in u)
        if m < RADIAL_EPS:
            return [0.0, 0.0, 0.0]
        r = math.sqrt(u[0] * u[0] + u[1] * u[1] + u[2] * u[2])
        return [0.5 * c * r / m for c in u]
    if mapping == "ball_to_cube_volume_preserving":
        x, y, z = u
        # sphere -> cylinder (axis along z)
        n2 = x * x + y * y + z * z
        if n2 < VOLUME_PRESERVING_EPS:
            x = y = z = 0.0
        elif 1.25 * z * z > x * x + y * y:  # cap region
            n = math.sqrt(n2)
            s = math.sqrt(3.0 * n / (n + abs(z)))
            x, y, z = x * s, y * s, math.copysign(n, z)
        else:  # side region
            n = math.sqrt(n2)
            s = n / math.sqrt(x * x + y * y)
            x, y, z = x * s, y * s, z * 1.5
        # cylinder -> cube, acting on (x, y)
        rho2 = x * x + y * y
        if rho2 < VOLUME_PRESERVING_EPS:
            x = y = 0.0
        else:
            rho = math.sqrt(rho2)
            if abs(y) <= abs(x):
                sx = math.copysign(1.0, x)
                x, y = sx * rho, sx * rho * (4.0 / math.pi) * math.atan(y / x)
            else:
                sy = math.copysign(1.0, y)
                x, y = sy * rho * (4.0 / math.pi) * math.atan(x / y), sy * rho
        return [0.5 * x, 0.5 * y, 0.5 * z]
    raise ValueError(f"unknown coordinate_mapping {mapping!r}")


def voxel_coordinate(q, n, align_corners, offset):
    """§2.3: one axis of the continuous filter-grid coordinate (voxel centres at integers)."""
    if align_corners:
        return (q + 0.5) * (n - 1)  # the offset is ignored
    return q * n + offset + (n // 2) - (0.5 if n % 2 == 0 else 0.0)


def round_half_away(v):
    """C's round(): half away from zero (np.round would round half to even)."""
    return math.copysign(math.floor(abs(v) + 0.5), v)


def _clamp(v, lo, hi):
    return lo if v < lo else hi if v > hi else v


def _axis_pairs(v, n, interpolation):
    """(index, weight) pairs of one axis; ``None`` index means "outside, weight 0"."""
    if interpolation == "nearest_neighbor":
        return [(int(_clamp(round_half_away(v), 0, n - 1)), 1.0)]
    if interpolation == "linear":
        i0 = int(_clamp(math.trunc(v), 0, n - 1))  # trunc toward zero, not floor
        i1 = min(i0 + 1, n - 1)
        a = _clamp(v - i0, 0.0, 1.0)
        return [(i0, 1.0 - a), (i1, a)]
    if interpolation == "linear_border":
        i0 = math.floor(v)
        a = v - i0
        return [(i0 if 0 <= i0 < n else None, 1.0 - a),
                (i0 + 1 if 0 <= i0 + 1 < n else None, a)]
    raise ValueError(f"unknown interpolation {interpolation!r}")


def interpolate(v, sizes_xyz, interpolation):
    """§2.4: continuous coordinate v (x, y, z) -> list of (spatial index s, weight).

    Corner order x fastest, then y, then z. Corners outside the grid (linear_border) are
    dropped: they carry weight 0.
    """
    nx, ny, nz = sizes_xyz
    px = _axis_pairs(v[0], nx, interpolation)
    py = _axis_pairs(v[1], ny, interpolation)
    pz = _axis_pairs(v[2], nz, interpolation)
    taps = []
    for iz, wz in pz:
        for iy, wy in py:
            for ix, wx in px:
                if ix is None or iy is None or iz is None:
                    continue
                taps.append((iz * ny * nx + iy * nx + ix, wx * wy * wz))
    return taps


def filter_taps(rel, inv_extent, filter_dhw, offset, *, align_corners, coordinate_mapping, interpolation):
    """Relative position -> list of (s, weight) into the flattened filter grid."""
    d, h, w = filter_dhw
    sizes = (w, h, d)
    q = map_to_cube(rel, inv_extent, coordinate_mapping)
    v = [voxel_coordinate(q[k], sizes[k], align_corners, offset[k]) for k in range(3)]
    return interpolate(v, sizes, interpolation)


def filter_coordinates(rel, inv_extent, filter_dhw, offset, *, align_corners, coordinate_mapping):
    """(q, v) of one relative position; the tests use v to keep away from rounding kinks."""
    d, h, w = filter_dhw
    sizes = (w, h, d)
    q = map_to_cube(rel, inv_extent, coordinate_mapping)
    return q, [voxel_coordinate(q[k], sizes[k], align_corners, offset[k]) for k in range(3)]


# ----------------------------------------------------------------------------------------
# Helpers shared by the ops
# ----------------------------------------------------------------------------------------

def extent_rows(extents, num_rows):
    """Broadcast extents (scalar, [1|R, 1|3]) to a float64 [num_rows, 3] array."""
    e = np.asarray(extents, dtype=np.float64)
    if e.ndim == 0:
        e = e.reshape(1, 1)
    if e.ndim != 2 or e.shape[1] not in (1, 3):
        raise ValueError(f"extents must have shape [1|R, 1|3], got {e.shape}")
    if e.shape[1] == 1:
        e = np.repeat(e, 3, axis=1)
    if e.shape[0] == 1:  # shared, even when num_rows == 1
        e = np.repeat(e, num_rows, axis=0)
    elif e.shape[0] != num_rows:
        raise ValueError(f"extents has {e.shape[0]} rows, expected 1 or {num_rows}")
    return e


def _opt(a):
    """None for an absent optional input (None or an empty 1-D array)."""
    if a is None:
        return None
    a = np.asarray(a)
    if a.ndim == 1 and a.shape[0] == 0:
        return None
    return a.astype(np.float64)


def _edges(out_positions, inp_positions, inv_rows, row_of_edge_extent, neighbors_index, row_splits,
           filters_shape, offset, sign, opts):
    """Yield (i, n, j, taps) for every neighbor-list entry n of output point i (input j).

    ``sign`` = +1: rel = x_inp[j] - x_out[i] (forward); -1: x_out[i] - x_inp[j] (transpose).
    ``row_of_edge_extent(i, j)`` picks the extent row (i forward, j transpose).
    """
    xo = np.asarray(out_positions, dtype=np.float64)
    xi = np.asarray(inp_positions, dtype=np.float64)
    idx = np.asarray(neighbors_index).astype(np.int64)
    rs = np.asarray(row_splits).astype(np.int64)
    off = [float(c) for c in np.asarray(offset, dtype=np.float64).reshape(3)]
    for i in range(len(rs) - 1):
        for n in range(rs[i], rs[i + 1]):
            j = int(idx[n])
            rel = (xi[j] - xo[i]) if sign > 0 else (xo[i] - xi[j])
            inv = inv_rows[row_of_edge_extent(i, j)]
            taps = filter_taps([float(c) for c in rel], inv, filters_shape[:3], off, **opts)
            yield i, n, j, taps


def _math_opts(align_corners, coordinate_mapping, interpolation):
    if coordinate_mapping not in MAPPINGS:
        raise ValueError(f"unknown coordinate_mapping {coordinate_mapping!r}")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {interpolation!r}")
    return dict(align_corners=bool(align_corners), coordinate_mapping=coordinate_mapping,
                interpolation=interpolation)


def forward_normalizer(neighbors_importance, row_splits, normalize):
    """§2.5 psi per output point: sum of the row's importances (or its count); 0 -> 1."""
    rs = np.asarray(row_splits).astype(np.int64)
    nimp = _opt(neighbors_importance)
    psi = np.ones(len(rs) - 1)
    if normalize:
        for i in range(len(rs) - 1):
            if nimp is None:
                s = float(rs[i + 1] - rs[i])
            else:
                s = 0.0
                for n in range(rs[i], rs[i + 1]):
                    s += nimp[n]
            if s != 0.0:
                psi[i] = s
    return psi


def transpose_normalizer(inp_neighbors_importance_sum, inp_neighbors_row_splits, importance_given, normalize):
    """§2.6 phi per transpose input point: the given importance sum, else the count; 0 -> 1."""
    rs = np.asarray(inp_neighbors_row_splits).astype(np.int64)
    phi = np.ones(len(rs) - 1)
    if not normalize:
        return phi
    raw = _opt(inp_neighbors_importance_sum) if importance_given else (rs[1:] - rs[:-1]).astype(np.float64)
    for j in range(len(rs) - 1):
        if raw[j] != 0.0:
            phi[j] = raw[j]
    return phi


def _check_pair(neighbors_importance, inp_neighbors_importance_sum):
    a, b = _opt(neighbors_importance) is None, _opt(inp_neighbors_importance_sum) is None
    if a != b:
        raise ValueError("neighbors_importance and inp_neighbors_importance_sum must be both given or both absent")
    return not a


# ----------------------------------------------------------------------------------------
# Forward op (§2.5) and its gradients (§2.7 + importance gradients)
# ----------------------------------------------------------------------------------------

def _forward_patches(filters, out_positions, extents, offset, inp_positions, inp_features, inp_importance,
                     neighbors_index, neighbors_importance, neighbors_row_splits, opts):
    """B_i[s, ic] of §2.5, plus the per-edge taps for the gradient code."""
    shape = np.shape(filters)
    s_count = shape[0] * shape[1] * shape[2]
    feat = np.asarray(inp_features, dtype=np.float64)
    no = len(neighbors_row_splits) - 1
    inv = 1.0 / extent_rows(extents, no)
    imp, nimp = _opt(inp_importance), _opt(neighbors_importance)
    patches = np.zeros((no, s_count, shape[3]))
    edges = []
    for i, n, j, taps in _edges(out_positions, inp_positions, inv, lambda i, j: i, neighbors_index,
                                neighbors_row_splits, shape, offset, +1, opts):
        a = (1.0 if imp is None else imp[j]) * (1.0 if nimp is None else nimp[n])
        for s, w in taps:
            patches[i, s] += w * a * feat[j]
        edges.append((i, n, j, taps))
    return patches, edges


def continuous_conv(filters, out_positions, extents, offset, inp_positions, inp_features, inp_importance,
                    neighbors_index, neighbors_importance, neighbors_row_splits, *, align_corners=True,
                    coordinate_mapping="ball_to_cube_radial", normalize=False, interpolation="linear"):
    """Reference forward op -> float64 [No, Cout]."""
    opts = _math_opts(align_corners, coordinate_mapping, interpolation)
    f = np.asarray(filters, dtype=np.float64)
    patches, _ = _forward_patches(f, out_positions, extents, offset, inp_positions, inp_features, inp_importance,
                                  neighbors_index, neighbors_importance, neighbors_row_splits, opts)
    psi = forward_normalizer(neighbors_importance, neighbors_row_splits, normalize)
    fm = f.reshape(-1, f.shape[3], f.shape[4])
    return np.einsum("isc,sco->io", patches, fm) / psi[:, None]


def continuous_conv_backprop_filter(filters, out_positions, extents, offset, inp_positions, inp_features,
                                    inp_importance, neighbors_index, neighbors_importance, neighbors_row_splits,
                                    out_features_gradient, *, align_corners=True,
                                    coordinate_mapping="ball_to_cube_radial", normalize=False,
                                    interpolation="linear"):
    """Reference filter gradient: sum_i B_i (x) g_i / psi_i -> [D, H, W, Cin, Cout]."""
    return continuous_conv_backward(
        filters, out_positions, extents, offset, inp_positions, inp_features, inp_importance, neighbors_index,
        neighbors_importance, neighbors_row_splits, out_features_gradient, align_corners=align_corners,
        coordinate_mapping=coordinate_mapping, normalize=normalize, interpolation=interpolation).filters


def continuous_conv_backward(filters, out_positions, extents, offset, inp_positions, inp_features, inp_importance,
                             neighbors_index, neighbors_importance, neighbors_row_splits, out_features_gradient, *,
                             align_corners=True, coordinate_mapping="ball_to_cube_radial", normalize=False,
                             interpolation="linear"):
    """Gradients of sum(out * out_features_gradient) w.r.t. filters, features and importances."""
    opts = _math_opts(align_corners, coordinate_mapping, interpolation)
    f = np.asarray(filters, dtype=np.float64)
    fm = f.reshape(-1, f.shape[3], f.shape[4])  # [S, Cin, Cout]
    g = np.asarray(out_features_gradient, dtype=np.float64)
    feat = np.asarray(inp_features, dtype=np.float64)
    imp, nimp = _opt(inp_importance), _opt(neighbors_importance)
    patches, edges = _forward_patches(f, out_positions, extents, offset, inp_positions, inp_features, inp_importance,
                                      neighbors_index, neighbors_importance, neighbors_row_splits, opts)
    psi = forward_normalizer(neighbors_importance, neighbors_row_splits, normalize)
    out = np.einsum("isc,sco->io", patches, fm) / psi[:, None]

    d_filters = np.einsum("isc,io->sco", patches, g / psi[:, None]).reshape(f.shape)
    d_feat = np.zeros_like(feat)
    d_imp = None if imp is None else np.zeros_like(imp)
    d_nimp = None if nimp is None else np.zeros_like(nimp)
    rs = np.asarray(neighbors_row_splits).astype(np.int64)
    for i, n, j, taps in edges:
        a_imp = 1.0 if imp is None else imp[j]
        a_nimp = 1.0 if nimp is None else nimp[n]
        fg = np.zeros(f.shape[3])  # sum_c w_c F[s] @ g_i  (Cin)
        for s, w in taps:
            fg += w * (fm[s] @ g[i])
        d_feat[j] += a_imp * a_nimp / psi[i] * fg
        t_dot_g = float(feat[j] @ fg)  # <sum_c w_c F^T feat_j, g_i>
        if d_imp is not None:
            d_imp[j] += a_nimp / psi[i] * t_dot_g
        if d_nimp is not None:
            d_nimp[n] = a_imp * t_dot_g / psi[i]
            # psi depends on neighbors_importance only when normalize is on and the row's
            # sum is not exactly 0 (then psi is that sum): d(1/psi)/d nimp_n = -1/psi^2.
            if normalize and _row_sum(nimp, rs, i) != 0.0:
                d_nimp[n] -= float(out[i] @ g[i]) / psi[i]
    return ContinuousConvGradients(d_filters, d_feat, d_imp, d_nimp)


def _row_sum(values, rs, i):
    s = 0.0
    for n in range(rs[i], rs[i + 1]):
        s += values[n]
    return s


# ----------------------------------------------------------------------------------------
# Transpose op (§2.6, Corrections #1 and #10) and its gradients
# ----------------------------------------------------------------------------------------

def _transpose_patches(filters, out_positions, extents, offset, inp_positions, inp_features,
                       inp_neighbors_importance_sum, inp_neighbors_row_splits, neighbors_index,
                       neighbors_importance, neighbors_row_splits, normalize, opts):
    """B^T_i[s, ic] = sum_n sum_c w_c c_n feat[j] and the per-edge data for the gradients."""
    importance_given = _check_pair(neighbors_importance, inp_neighbors_importance_sum)
    shape = np.shape(filters)
    s_count = shape[0] * shape[1] * shape[2]
    feat = np.asarray(inp_features, dtype=np.float64)
    ni = len(inp_neighbors_row_splits) - 1
    no = len(neighbors_row_splits) - 1
    inv = 1.0 / extent_rows(extents, ni)  # rows index the transpose's input points
    nimp = _opt(neighbors_importance)
    phi = transpose_normalizer(inp_neighbors_importance_sum, inp_neighbors_row_splits, importance_given, normalize)
    patches = np.zeros((no, s_count, shape[3]))
    edges = []
    for i, n, j, taps in _edges(out_positions, inp_positions, inv, lambda i, j: j, neighbors_index,
                                neighbors_row_splits, shape, offset, -1, opts):
        c = (1.0 if nimp is None else nimp[n]) / phi[j]
        for s, w in taps:
            patches[i, s] += w * c * feat[j]
        edges.append((i, n, j, taps))
    return patches, edges, phi, importance_given


def continuous_conv_transpose(filters, out_positions, out_importance, extents, offset, inp_positions, inp_features,
                              inp_neighbors_index, inp_neighbors_importance_sum, inp_neighbors_row_splits,
                              neighbors_index, neighbors_importance, neighbors_row_splits, *, align_corners=True,
                              coordinate_mapping="ball_to_cube_radial", normalize=False, interpolation="linear"):
    """Reference transpose op -> float64 [No, Cout] (inp_neighbors_index is never read)."""
    opts = _math_opts(align_corners, coordinate_mapping, interpolation)
    f = np.asarray(filters, dtype=np.float64)
    patches, _, _, _ = _transpose_patches(f, out_positions, extents, offset, inp_positions, inp_features,
                                          inp_neighbors_importance_sum, inp_neighbors_row_splits, neighbors_index,
                                          neighbors_importance, neighbors_row_splits, normalize, opts)
    out = np.einsum("isc,sco->io", patches, f.reshape(-1, f.shape[3], f.shape[4]))
    oimp = _opt(out_importance)
    return out if oimp is None else out * oimp[:, None]


def continuous_conv_transpose_backprop_filter(filters, out_positions, out_importance, extents, offset,
                                              inp_positions, inp_features, inp_neighbors_importance_sum,
                                              inp_neighbors_row_splits, neighbors_index, neighbors_importance,
                                              neighbors_row_splits, out_features_gradient, *, align_corners=True,
                                              coordinate_mapping="ball_to_cube_radial", normalize=False,
                                              interpolation="linear"):
    """Reference: sum_i B^T_i (x) g_i * out_importance_i -> [D, H, W, Cin, Cout]."""
    opts = _math_opts(align_corners, coordinate_mapping, interpolation)
    f = np.asarray(filters, dtype=np.float64)
    patches, _, _, _ = _transpose_patches(f, out_positions, extents, offset, inp_positions, inp_features,
                                          inp_neighbors_importance_sum, inp_neighbors_row_splits, neighbors_index,
                                          neighbors_importance, neighbors_row_splits, normalize, opts)
    g = np.asarray(out_features_gradient, dtype=np.float64)
    oimp = _opt(out_importance)
    if oimp is not None:
        g = g * oimp[:, None]
    return np.einsum("isc,io->sco", patches, g).reshape(f.shape)


def continuous_conv_transpose_backward(filters, out_positions, out_importance, extents, offset, inp_positions,
                                       inp_features, inp_neighbors_index, inp_neighbors_importance_sum,
                                       inp_neighbors_row_splits, neighbors_index, neighbors_importance,
                                       neighbors_row_splits, out_features_gradient, *, align_corners=True,
                                       coordinate_mapping="ball_to_cube_radial", normalize=False,
                                       interpolation="linear"):
    """Partial derivatives of sum(out * g) w.r.t. each explicit input of the transpose."""
    opts = _math_opts(align_corners, coordinate_mapping, interpolation)
    f = np.asarray(filters, dtype=np.float64)
    fm = f.reshape(-1, f.shape[3], f.shape[4])
    feat = np.asarray(inp_features, dtype=np.float64)
    g = np.asarray(out_features_gradient, dtype=np.float64)
    oimp, nimp = _opt(out_importance), _opt(neighbors_importance)
    patches, edges, phi, importance_given = _transpose_patches(
        f, out_positions, extents, offset, inp_positions, inp_features, inp_neighbors_importance_sum,
        inp_neighbors_row_splits, neighbors_index, neighbors_importance, neighbors_row_splits, normalize, opts)
    go = g if oimp is None else g * oimp[:, None]
    d_filters = np.einsum("isc,io->sco", patches, go).reshape(f.shape)
    d_oimp = None if oimp is None else np.einsum("isc,sco,io->i", patches, fm, g)
    d_feat = np.zeros_like(feat)
    d_nimp = None if nimp is None else np.zeros_like(nimp)
    d_sum = None
    if importance_given:
        d_sum = np.zeros(len(inp_neighbors_row_splits) - 1)
        raw_sum = _opt(inp_neighbors_importance_sum)
    for i, n, j, taps in edges:
        fg = np.zeros(f.shape[3])
        for s, w in taps:
            fg += w * (fm[s] @ go[i])
        c_imp = 1.0 if nimp is None else nimp[n]
        d_feat[j] += c_imp / phi[j] * fg
        u_dot_g = float(feat[j] @ fg)  # includes out_importance_i
        if d_nimp is not None:
            d_nimp[n] = u_dot_g / phi[j]
        if d_sum is not None and normalize and raw_sum[j] != 0.0:
            d_sum[j] -= c_imp * u_dot_g / (phi[j] * phi[j])
    return ContinuousConvTransposeGradients(d_filters, d_feat, d_oimp, d_nimp, d_sum)


# ----------------------------------------------------------------------------------------
# Support ops (§1, Corrections #2 and #6)
# ----------------------------------------------------------------------------------------

def invert_neighbors_list(num_points, inp_neighbors_index, inp_neighbors_row_splits, inp_neighbors_attributes):
    """Invert a neighbor list; rows list the original rows in ascending original position."""
    idx = np.asarray(inp_neighbors_index)
    rs = np.asarray(inp_neighbors_row_splits).astype(np.int64)
    rows = [[] for _ in range(num_points)]
    for k in range(len(rs) - 1):
        for pos in range(rs[k], rs[k + 1]):
            rows[int(idx[pos])].append((pos, k))
    order = [pos for row in rows for pos, _ in row]
    out_index = np.array([k for row in rows for _, k in row], dtype=idx.dtype)
    out_splits = np.zeros(num_points + 1, dtype=np.int64)
    out_splits[1:] = np.cumsum([len(r) for r in rows]) if num_points else []
    attr = np.asarray(inp_neighbors_attributes)
    out_attr = attr if attr.shape[0] == 0 else attr[np.array(order, dtype=np.int64)]
    return out_index, out_splits, out_attr


def reduce_subarrays_sum(values, row_splits):
    """Sums of values[rs[i]:rs[i+1]]; empty ``values`` give an empty array (Corrections #2)."""
    v = np.asarray(values)
    if v.shape[0] == 0:
        return v.copy()
    rs = np.asarray(row_splits).astype(np.int64)
    out = np.zeros(len(rs) - 1, dtype=v.dtype)
    for i in range(len(rs) - 1):
        acc = 0 if np.issubdtype(v.dtype, np.integer) else 0.0
        for k in range(rs[i], rs[i + 1]):
            acc += v[k].item()
        out[i] = acc
    return out


# ----------------------------------------------------------------------------------------
# Small random problems shared by the tests
# ----------------------------------------------------------------------------------------
# All float values are exactly representable in float32, so the same float64 reference
# serves the float32 and the float64 runs of an op.

EXTENT_KINDS = ("scalar", "1x1", "1x3", "Nx1", "Nx3")
NONZERO_OFFSET = (0.25, -0.375, 0.125)


def f32(a):
    """Round to float32 precision, keep float64 storage."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def cast(a, dtype):
    """Cast an array input for an op call; None and Python scalars pass through."""
    if a is None or isinstance(a, (float, int)):
        return a
    return np.asarray(a).astype(dtype)


def make_extents(kind, num_rows, rng, base=0.625):
    if kind == "scalar":
        return base
    if kind == "1x1":
        return np.array([[base]])
    if kind == "1x3":
        return np.array([[base, base * 1.25, base * 0.875]])
    if kind == "Nx1":
        return f32(base * rng.uniform(0.8, 1.2, (num_rows, 1)))
    if kind == "Nx3":
        return f32(base * rng.uniform(0.8, 1.2, (num_rows, 3)))
    raise ValueError(kind)


def radius_neighbors(out_positions, inp_positions, radii):
    """Brute-force L2 radius search (inclusive); rows in ascending input order."""
    index, splits = [], [0]
    for i in range(len(out_positions)):
        d2 = np.sum((inp_positions - out_positions[i]) ** 2, axis=1)
        js = np.nonzero(d2 <= radii[i] * radii[i])[0]
        index.extend(js.tolist())
        splits.append(len(index))
    return np.array(index, dtype=np.int64), np.array(splits, dtype=np.int64)


def shuffle_and_duplicate(index, splits, rng, num_duplicates=2):
    """Shuffle each row and insert ``num_duplicates`` repeated entries into non-empty rows."""
    rows = [list(index[splits[i]:splits[i + 1]]) for i in range(len(splits) - 1)]
    for r in rows:
        rng.shuffle(r)
    nonempty = [i for i, r in enumerate(rows) if r]
    for i in rng.permutation(nonempty)[:num_duplicates]:
        r = rows[i]
        r.insert(int(rng.integers(0, len(r) + 1)), r[int(rng.integers(0, len(r)))])
    new_index = np.array([j for r in rows for j in r], dtype=np.int64)
    new_splits = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    return new_index, new_splits


class Problem:
    """Inputs of one forward continuous_conv call (float64, float32-exact values)."""

    FIELDS = ("filters", "out_positions", "extents", "offset", "inp_positions", "inp_features", "inp_importance",
              "neighbors_index", "neighbors_importance", "neighbors_row_splits")

    def __init__(self, **kw):
        for k in self.FIELDS:
            setattr(self, k, kw.pop(k))
        assert not kw, kw

    def args(self, dtype=np.float64, index_dtype=np.int64):
        """Positional arguments of the forward op in the requested dtypes."""
        out = []
        for k in self.FIELDS:
            v = getattr(self, k)
            if k == "neighbors_index":
                out.append(np.asarray(v).astype(index_dtype))
            elif k == "neighbors_row_splits":
                out.append(np.asarray(v).astype(np.int64))
            else:
                out.append(cast(v, dtype))
        return tuple(out)

    def replace(self, **kw):
        d = {k: getattr(self, k) for k in self.FIELDS}
        d.update(kw)
        return Problem(**d)


class TransposeProblem:
    """Inputs of one continuous_conv_transpose call (float64, float32-exact values)."""

    FIELDS = ("filters", "out_positions", "out_importance", "extents", "offset", "inp_positions", "inp_features",
              "inp_neighbors_index", "inp_neighbors_importance_sum", "inp_neighbors_row_splits", "neighbors_index",
              "neighbors_importance", "neighbors_row_splits")
    # The transpose backprop-filter op has no inp_neighbors_index argument.
    BACKPROP_FILTER_FIELDS = tuple(k for k in FIELDS if k != "inp_neighbors_index")

    def __init__(self, **kw):
        for k in self.FIELDS:
            setattr(self, k, kw.pop(k))
        assert not kw, kw

    def args(self, dtype=np.float64, index_dtype=np.int64, fields=None):
        out = []
        for k in fields or self.FIELDS:
            v = getattr(self, k)
            if k in ("neighbors_index", "inp_neighbors_index"):
                out.append(np.asarray(v).astype(index_dtype))
            elif k.endswith("row_splits"):
                out.append(np.asarray(v).astype(np.int64))
            else:
                out.append(cast(v, dtype))
        return tuple(out)

    def replace(self, **kw):
        d = {k: getattr(self, k) for k in self.FIELDS}
        d.update(kw)
        return TransposeProblem(**d)


def make_problem(seed=0, *, num_inp=40, num_out=12, in_channels=3, out_channels=2, filter_dhw=(3, 2, 4),
                 extent_kind="1x3", offset_nonzero=False, importance=True, duplicates=2, radius_scale=1.1,
                 special_points=True, importance_range=(0.25, 1.0)):
    """A small random forward problem.

    Neighbors come from a brute-force L2 radius test with radius ``radius_scale`` times half
    the largest extent of the output point, so some neighbors lie outside the filter window.
    With ``special_points``: output 0 sits on input 0 (relative position 0), output 1 is
    input 1 shifted along z (relative position on the z axis), the last output is far away
    (an empty row).
    """
    rng = np.random.default_rng(seed)
    inp = f32(rng.uniform(0.0, 1.0, (num_inp, 3)))
    out = f32(rng.uniform(0.0, 1.0, (num_out, 3)))
    if special_points and num_out >= 3 and num_inp >= 2:
        out[0] = inp[0]
        out[1] = inp[1]
        out[1, 2] = f32(inp[1, 2] + 0.125)
        out[-1] = 4.0
    extents = make_extents(extent_kind, num_out, rng)
    radii = radius_scale * 0.5 * extent_rows(extents, num_out).max(axis=1)
    index, splits = radius_neighbors(out, inp, radii)
    if duplicates:
        index, splits = shuffle_and_duplicate(index, splits, rng, duplicates)
    lo, hi = importance_range
    d, h, w = filter_dhw
    return Problem(
        filters=f32(rng.uniform(-1.0, 1.0, (d, h, w, in_channels, out_channels))),
        out_positions=out,
        extents=extents,
        offset=np.array(NONZERO_OFFSET if offset_nonzero else (0.0, 0.0, 0.0)),
        inp_positions=inp,
        inp_features=f32(rng.uniform(-1.0, 1.0, (num_inp, in_channels))),
        inp_importance=f32(rng.uniform(lo, hi, num_inp)) if importance else None,
        neighbors_index=index,
        neighbors_importance=f32(rng.uniform(lo, hi, len(index))) if importance else None,
        neighbors_row_splits=splits,
    )


def transpose_problem(p, *, in_channels=None, out_channels=None, seed=1, swapped_filters=False):
    """The transpose call on the inverted lists of forward problem ``p`` (spec §2.6).

    With ``swapped_filters`` the filters are ``p.filters`` with axes 3 and 4 swapped (the
    adjoint of ``p``); otherwise random [D, H, W, in_channels, out_channels] filters.
    """
    rng = np.random.default_rng(seed)
    num_inp = len(p.inp_positions)
    if swapped_filters:
        filters = np.swapaxes(p.filters, 3, 4).copy()
    else:
        filters = f32(rng.uniform(-1.0, 1.0, p.filters.shape[:3] + (in_channels, out_channels)))
    nimp = p.neighbors_importance
    attrs = nimp if nimp is not None else np.zeros(0)
    index, splits, inv_attrs = invert_neighbors_list(num_inp, p.neighbors_index, p.neighbors_row_splits, attrs)
    return TransposeProblem(
        filters=filters,
        out_positions=p.inp_positions,
        out_importance=p.inp_importance,
        extents=p.extents,
        offset=p.offset,
        inp_positions=p.out_positions,
        inp_features=f32(rng.uniform(-1.0, 1.0, (len(p.out_positions), filters.shape[3]))),
        inp_neighbors_index=p.neighbors_index,
        inp_neighbors_importance_sum=None if nimp is None else reduce_subarrays_sum(nimp, p.neighbors_row_splits),
        inp_neighbors_row_splits=p.neighbors_row_splits,
        neighbors_index=index,
        neighbors_importance=None if nimp is None else inv_attrs,
        neighbors_row_splits=splits,
    )


def rounding_margin(filter_dhw, out_positions, extents, offset, inp_positions, neighbors_index, neighbors_row_splits,
                    *, transpose=False, align_corners=True, coordinate_mapping="ball_to_cube_radial"):
    """Smallest distance of a voxel coordinate to a nearest-neighbor rounding kink (x.5).

    Axes where q is exactly 0 are skipped: there v is exact in any precision. Tests that
    compare float32 nearest-neighbor results use this to prove their data stays clear of
    the kinks (a float32 kernel may round differently within ~1e-6 of one).
    """
    rows = extent_rows(extents, len(neighbors_row_splits) - 1 if not transpose else len(inp_positions))
    inv = 1.0 / rows
    xo, xi = np.asarray(out_positions, np.float64), np.asarray(inp_positions, np.float64)
    off = np.asarray(offset, np.float64).reshape(3)
    rs = np.asarray(neighbors_row_splits).astype(np.int64)
    idx = np.asarray(neighbors_index).astype(np.int64)
    margin = np.inf
    for i in range(len(rs) - 1):
        for n in range(rs[i], rs[i + 1]):
            j = idx[n]
            rel = (xo[i] - xi[j]) if transpose else (xi[j] - xo[i])
            q, v = filter_coordinates([float(c) for c in rel], inv[j if transpose else i], filter_dhw, off,
                                      align_corners=align_corners, coordinate_mapping=coordinate_mapping)
            for k in range(3):
                if q[k] != 0.0:
                    margin = min(margin, abs((v[k] - math.floor(v[k])) - 0.5))
    return margin


def voxel_grid_problem(grid_xyz, filter_dhw, in_channels, out_channels, *, seed=0, voxel=0.25,
                       inp_importance=False):
    """Points on a regular grid with neighbors inside the filter box (Open3D test_compare_to_conv3d).

    Extents = voxel * filter size in x, y, z order ([W, H, D], Corrections #11); the
    neighbors of a point are the grid points with |d_k| / extent_k <= 0.51 (Linf).
    Returns (Problem, volume [Z, Y, X, Cin], importance volume or None); the points are
    listed with x fastest, matching ``volume.reshape(-1, Cin)``.
    """
    rng = np.random.default_rng(seed)
    nx, ny, nz = grid_xyz
    d, h, w = filter_dhw
    zz, yy, xx = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    pos = voxel * np.stack([xx.ravel(), yy.ravel(), zz.ravel()], axis=1).astype(np.float64) + 0.5
    extents = np.array([[voxel * w, voxel * h, voxel * d]])
    index, splits = [], [0]
    for i in range(len(pos)):
        scaled = np.abs(pos - pos[i]) / extents[0]
        js = np.nonzero(np.max(scaled, axis=1) <= 0.51)[0]
        index.extend(js.tolist())
        splits.append(len(index))
    vol = f32(rng.uniform(-1.0, 1.0, (nz, ny, nx, in_channels)))
    imp = f32(rng.uniform(0.25, 1.0, (nz, ny, nx))) if inp_importance else None
    p = Problem(filters=f32(rng.uniform(-1.0, 1.0, (d, h, w, in_channels, out_channels))), out_positions=pos,
                extents=extents, offset=np.zeros(3), inp_positions=pos, inp_features=vol.reshape(-1, in_channels),
                inp_importance=None if imp is None else imp.ravel(), neighbors_index=np.array(index, np.int64),
                neighbors_importance=None, neighbors_row_splits=np.array(splits, np.int64))
    return p, vol, imp


def dense_correlate_same(volume, filters):
    """Dense 3-D cross-correlation with zero padding ('SAME', odd filter sizes), like conv3d.

    volume [Z, Y, X, Cin], filters [D, H, W, Cin, Cout] -> [Z, Y, X, Cout]. Also returns the
    number of in-grid taps per voxel (the neighbor count used by normalize).
    """
    d, h, w = filters.shape[:3]
    z, y, x = volume.shape[:3]
    pad = np.zeros((z + d - 1, y + h - 1, x + w - 1, volume.shape[3]))
    pad[d // 2:d // 2 + z, h // 2:h // 2 + y, w // 2:w // 2 + x] = volume
    ones = np.zeros(pad.shape[:3])
    ones[d // 2:d // 2 + z, h // 2:h // 2 + y, w // 2:w // 2 + x] = 1.0
    out = np.zeros((z, y, x, filters.shape[4]))
    count = np.zeros((z, y, x))
    for dz in range(d):
        for dy in range(h):
            for dx in range(w):
                out += np.einsum("zyxc,co->zyxo", pad[dz:dz + z, dy:dy + y, dx:dx + x], filters[dz, dy, dx])
                count += ones[dz:dz + z, dy:dy + y, dx:dx + x]
    return out, count


# ----------------------------------------------------------------------------------------
# Comparison helper for the op tests
# ----------------------------------------------------------------------------------------

RTOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}


def assert_matches(got, ref, dtype, what):
    """|got - ref| <= rtol(dtype) * max|ref| elementwise; dtype and shape must match exactly."""
    dtype = np.dtype(dtype)
    assert isinstance(got, np.ndarray), f"{what}: expected an ndarray, got {type(got).__name__}"
    assert got.dtype == dtype, f"{what}: dtype {got.dtype}, expected {dtype}"
    ref = np.asarray(ref, dtype=np.float64)
    assert got.shape == ref.shape, f"{what}: shape {got.shape}, expected {ref.shape}"
    if ref.size == 0:
        return
    diff = np.abs(got.astype(np.float64) - ref)
    scale = float(np.max(np.abs(ref)))
    tol = RTOL[dtype] * scale
    err = float(np.nanmax(diff)) if not np.isnan(diff).all() else np.nan
    if not (err <= tol) or np.isnan(diff).any():
        where = np.unravel_index(int(np.nanargmax(diff)) if not np.isnan(diff).all() else 0, diff.shape)
        raise AssertionError(f"{what} [{dtype}]: max|got-ref| = {err:.3g} > tol {tol:.3g} "
                             f"(max|ref| = {scale:.3g}); worst at {tuple(int(c) for c in where)}: "
                             f"got {got[where]!r}, ref {ref[where]!r}; NaNs: {int(np.isnan(diff).sum())}")
