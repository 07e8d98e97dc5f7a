"""Fixtures of the C API tests: small inputs and the expected outputs of the Python API.

    python tests/c/make_fixtures.py OUT_DIR
    python tests/c/make_fixtures.py --check-example RESULT.ply EXPECTED.npy

The first form writes one folder per case under OUT_DIR: each array as raw little-endian bytes
in ``<name>.bin`` and the scalars as ``key value`` lines in ``params.txt`` (floats written with
repr, which round-trips through strtod). tests/c/test_capi.c reads them, runs the C API on the
inputs and compares with the expected outputs. It also writes the point clouds of the C++
example (examples/c/) and what the example must print. The second form compares the example's
output with that expectation (exit status 1 on a mismatch).

Run with the geomops Python package installed (the fixtures are what it returns).
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import numpy as np

import geomops
from geomops import pose

# geomops_dtype codes of include/geomops/geomops.h
CODES = {np.dtype(np.float32): 1, np.dtype(np.float64): 2, np.dtype(np.int32): 3, np.dtype(np.int64): 4,
         np.dtype(np.uint8): 5, np.dtype(np.int16): 6}
MAPPINGS = {"ball_to_cube_radial": 0, "ball_to_cube_volume_preserving": 1, "identity": 2}
INTERPS = {"linear": 0, "linear_border": 1, "nearest_neighbor": 2}
METRICS = {"L1": 0, "L2": 1, "Linf": 2}
POSITIONS = ("inp_positions", "out_positions", "extents")  # the wrt= names of the position gradients


class Writer:
    def __init__(self, root):
        self.root = Path(root)
        self.cases = []

    def case(self, name, **items):
        """Writes a case: ndarrays as .bin files, None as an absent array, anything else as a param."""
        d = self.root / name
        d.mkdir(parents=True, exist_ok=True)
        lines = []
        for key, value in items.items():
            if isinstance(value, np.ndarray):
                np.ascontiguousarray(value).tofile(d / f"{key}.bin")
            elif value is None:
                lines.append(f"has_{key} 0")
            else:
                if isinstance(value, (float, np.floating)):
                    lines.append(f"{key} {float(value)!r}")
                else:
                    lines.append(f"{key} {int(value)}")
            if isinstance(value, np.ndarray):
                lines.append(f"has_{key} 1")
        (d / "params.txt").write_text("\n".join(lines) + "\n")
        self.cases.append(name)


# ---- continuous convolution --------------------------------------------------------------------

def cconv_problem(rng, dtype, index_dtype, *, ni, no, cin, cout, dhw, radius, extents_kind, inp_imp, nb_imp):
    inp = rng.random((ni, 3)).astype(dtype)
    out = rng.random((no, 3)).astype(dtype)
    out[-1] = 5.0  # a row without neighbors
    nb = geomops.fixed_radius_search(inp, out, radius, index_dtype=index_dtype)
    e = nb.neighbors_index.shape[0]
    ext = {"scalar": np.full((1, 1), 2 * radius), "axis": rng.uniform(1.5, 2.5, (1, 3)) * radius,
           "point1": rng.uniform(1.5, 2.5, (no, 1)) * radius,
           "point3": rng.uniform(1.5, 2.5, (no, 3)) * radius}[extents_kind].astype(dtype)
    return dict(
        filters=rng.standard_normal(dhw + (cin, cout)).astype(dtype), out_positions=out, extents=ext,
        offset=rng.uniform(-0.3, 0.3, 3).astype(dtype), inp_positions=inp,
        inp_features=rng.standard_normal((ni, cin)).astype(dtype),
        inp_importance=rng.uniform(0.5, 1.5, ni).astype(dtype) if inp_imp else None,
        neighbors_index=nb.neighbors_index,
        neighbors_importance=rng.uniform(0.0, 1.5, e).astype(dtype) if nb_imp else None,
        neighbors_row_splits=nb.neighbors_row_splits)


def transpose_problem(rng, p, cin, cout):
    """The transpose call on the inverted lists of forward problem ``p``."""
    dtype = p["filters"].dtype
    ni = len(p["inp_positions"])
    nimp = p["neighbors_importance"]
    attrs = nimp if nimp is not None else np.zeros(0, dtype)
    inv = geomops.invert_neighbors_list(ni, p["neighbors_index"], p["neighbors_row_splits"], attrs)
    return dict(
        filters=rng.standard_normal(p["filters"].shape[:3] + (cin, cout)).astype(dtype),
        out_positions=p["inp_positions"], out_importance=p["inp_importance"], extents=p["extents"],
        offset=p["offset"], inp_positions=p["out_positions"],
        inp_features=rng.standard_normal((len(p["out_positions"]), cin)).astype(dtype),
        inp_neighbors_index=p["neighbors_index"],
        inp_neighbors_importance_sum=None if nimp is None else geomops.reduce_subarrays_sum(
            nimp, p["neighbors_row_splits"]),
        inp_neighbors_row_splits=p["neighbors_row_splits"], neighbors_index=inv.neighbors_index,
        neighbors_importance=None if nimp is None else inv.neighbors_attributes,
        neighbors_row_splits=inv.neighbors_row_splits)


FWD = ("filters", "out_positions", "extents", "offset", "inp_positions", "inp_features", "inp_importance",
       "neighbors_index", "neighbors_importance", "neighbors_row_splits")
TR = ("filters", "out_positions", "out_importance", "extents", "offset", "inp_positions", "inp_features",
      "inp_neighbors_index", "inp_neighbors_importance_sum", "inp_neighbors_row_splits", "neighbors_index",
      "neighbors_importance", "neighbors_row_splits")


def option_params(opts):
    out_type = opts.get("output_type")
    return dict(align_corners=opts.get("align_corners", True),
                coordinate_mapping=MAPPINGS[opts.get("coordinate_mapping", "ball_to_cube_radial")],
                interpolation=INTERPS[opts.get("interpolation", "linear")], normalize=opts.get("normalize", False),
                max_temp_mem_mb=opts.get("max_temp_mem_MB", 64),
                output_type=0 if out_type is None else CODES[np.dtype(out_type)])


def cconv_cases(w):
    configs = [  # name, dtype, index dtype, extents, importances, options
        ("a", np.float32, np.int32, "scalar", (False, False), {}),
        ("b", np.float64, np.int64, "point3", (True, True),
         dict(normalize=True, align_corners=False, coordinate_mapping="ball_to_cube_volume_preserving",
              interpolation="linear_border")),
        ("c", np.float32, np.int64, "axis", (True, False),
         dict(coordinate_mapping="identity", interpolation="nearest_neighbor", output_type=np.float64,
              max_temp_mem_MB=0)),
        ("d", np.float64, np.int32, "point1", (False, True), dict(normalize=True, output_type=np.float32)),
    ]
    for seed, (name, dtype, idx, ext, (ii, ni), opts) in enumerate(configs):
        rng = np.random.default_rng(100 + seed)
        p = cconv_problem(rng, dtype, idx, ni=37, no=29, cin=3, cout=5, dhw=(2, 3, 4), radius=0.3,
                          extents_kind=ext, inp_imp=ii, nb_imp=ni)
        g = rng.standard_normal((29, 5)).astype(dtype)
        args = [p[k] for k in FWD]
        out = geomops.continuous_conv(*args, **opts)
        bpf = geomops.continuous_conv_backprop_filter(*args, g, **opts)
        bw = geomops.continuous_conv_backward(*args, g, **opts)
        bwp = geomops.continuous_conv_backward(*args, g, wrt=POSITIONS, **opts)
        sizes = dict(dtype=CODES[np.dtype(dtype)], index_type=CODES[np.dtype(idx)], num_out=29, num_inp=37,
                     num_neighbors=len(p["neighbors_index"]), extents_rows=p["extents"].shape[0],
                     extents_cols=p["extents"].shape[1], in_channels=3, out_channels=5, filter_depth=2,
                     filter_height=3, filter_width=4)
        w.case(f"cconv_{name}", **p, **sizes, **option_params(opts), out_features_gradient=g,
               expected_out=out, expected_filters_gradient=bpf, grad_filters=bw.filters,
               grad_inp_features=bw.inp_features, grad_inp_importance=bw.inp_importance,
               grad_neighbors_importance=bw.neighbors_importance, grad_inp_positions=bwp.inp_positions,
               grad_out_positions=bwp.out_positions, grad_extents=bwp.extents)

        t = transpose_problem(rng, p, 4, 2)
        gt = rng.standard_normal((37, 2)).astype(dtype)
        targs = [t[k] for k in TR]
        tout = geomops.continuous_conv_transpose(*targs, **opts)
        tbpf = geomops.continuous_conv_transpose_backprop_filter(*[t[k] for k in TR if k != "inp_neighbors_index"],
                                                                 gt, **opts)
        tbw = geomops.continuous_conv_transpose_backward(*targs, gt, **opts)
        tbwp = geomops.continuous_conv_transpose_backward(*targs, gt, wrt=POSITIONS, **opts)
        tsizes = dict(sizes, num_out=37, num_inp=29, in_channels=4, out_channels=2)
        w.case(f"cconvT_{name}", **t, **tsizes, **option_params(opts), out_features_gradient=gt,
               expected_out=tout, expected_filters_gradient=tbpf, grad_filters=tbw.filters,
               grad_inp_features=tbw.inp_features, grad_out_importance=tbw.out_importance,
               grad_neighbors_importance=tbw.neighbors_importance,
               grad_inp_neighbors_importance_sum=tbw.inp_neighbors_importance_sum,
               grad_inp_positions=tbwp.inp_positions, grad_out_positions=tbwp.out_positions,
               grad_extents=tbwp.extents)


def list_cases(w):
    rng = np.random.default_rng(7)
    pts = rng.random((50, 3)).astype(np.float32)
    for idx in (np.int32, np.int64):
        nb = geomops.fixed_radius_search(pts, pts[:20], 0.25, index_dtype=idx)
        attrs = rng.standard_normal((len(nb.neighbors_index), 2)).astype(np.float32)
        inv = geomops.invert_neighbors_list(50, nb.neighbors_index, nb.neighbors_row_splits, attrs)
        w.case(f"invert_{np.dtype(idx).name}", num_points=50, index_type=CODES[np.dtype(idx)],
               num_entries=len(nb.neighbors_index), num_rows=20, index=nb.neighbors_index,
               row_splits=nb.neighbors_row_splits, attributes=attrs, attribute_bytes=8,
               expected_index=inv.neighbors_index, expected_row_splits=inv.neighbors_row_splits,
               expected_attributes=inv.neighbors_attributes)
    splits = np.array([0, 3, 3, 10, 11, 20], np.int64)
    for dt in (np.float32, np.float64, np.int32, np.int64):
        if np.dtype(dt).kind == "f":
            values = rng.standard_normal(20).astype(dt)
        else:
            values = rng.integers(np.iinfo(dt).max // 4, np.iinfo(dt).max // 2, 20).astype(dt)  # wraps
        w.case(f"reduce_{np.dtype(dt).name}", dtype=CODES[np.dtype(dt)], num_values=20, num_rows=5,
               values=values, row_splits=splits, expected=geomops.reduce_subarrays_sum(values, splits))


# ---- neighbor search ------------------------------------------------------------------------------

def search_cases(w):
    rng = np.random.default_rng(11)
    for dt in (np.float32, np.float64):
        pts = rng.random((120, 3)).astype(dt)
        qs = rng.random((40, 3)).astype(dt)
        qs[:5] = pts[:5]  # queries on points (ignore_query_point)
        ps = np.array([0, 70, 120], np.int64)
        qsp = np.array([0, 25, 40], np.int64)
        name = np.dtype(dt).name
        radius = 0.2
        table = geomops.build_spatial_hash_table(pts, radius, ps, hash_table_size_factor=0.125)
        base = dict(dtype=CODES[np.dtype(dt)], num_points=120, num_queries=40, batch_size=2, points=pts,
                    queries=qs, points_row_splits=ps, queries_row_splits=qsp)
        w.case(f"hash_{name}", dtype=CODES[np.dtype(dt)], num_points=120, batch_size=2, points=pts,
               points_row_splits=ps, radius=radius, hash_table_size_factor=0.125, max_hash_table_size=33554432,
               num_cells=int(table.hash_table_splits[-1]), expected_index=table.hash_table_index,
               expected_cell_splits=table.hash_table_cell_splits, expected_splits=table.hash_table_splits)
        single = geomops.build_spatial_hash_table(pts, radius, max_hash_table_size=1)
        w.case(f"hash1_{name}", dtype=CODES[np.dtype(dt)], num_points=120, batch_size=1, points=pts,
               radius=radius, hash_table_size_factor=1 / 64, max_hash_table_size=1,
               num_cells=int(single.hash_table_splits[-1]), expected_index=single.hash_table_index,
               expected_cell_splits=single.hash_table_cell_splits, expected_splits=single.hash_table_splits)
        fixed = [  # name, batch, table, kwargs
            ("plain", False, False, dict()),
            ("table", True, True, dict(sort=True, return_distances=True, index_dtype=np.int64)),
            ("l1", True, False, dict(metric="L1", ignore_query_point=True, return_distances=True)),
            ("linf", False, False, dict(metric="Linf", sort=True, return_distances=True)),
        ]
        for fname, batch, with_table, kw in fixed:
            call = dict(points_row_splits=ps, queries_row_splits=qsp) if batch else {}
            if with_table:
                call["hash_table"] = table
            r = geomops.fixed_radius_search(pts, qs, radius, **call, **kw)
            extra = dict(base) if batch else dict(base, batch_size=1, points_row_splits=None, queries_row_splits=None)
            if with_table:
                extra.update(hash_table_index=table.hash_table_index,
                             hash_table_cell_splits=table.hash_table_cell_splits,
                             hash_table_splits=table.hash_table_splits,
                             hash_table_num_cells=int(table.hash_table_splits[-1]))
            w.case(f"frs_{fname}_{name}", **extra, radius=radius, **search_params(kw),
                   expected_row_splits=r.neighbors_row_splits, expected_index=r.neighbors_index,
                   expected_distance=r.neighbors_distance)
        radii = rng.uniform(0.05, 0.3, 40).astype(dt)
        for rname, kw in (("plain", dict()), ("norm", dict(normalize_distances=True, return_distances=True,
                                                            metric="Linf", index_dtype=np.int64)),
                          ("sorted", dict(sort=True, return_distances=True, ignore_query_point=True))):
            r = geomops.radius_search(pts, qs, radii, ps, qsp, **kw)
            w.case(f"rs_{rname}_{name}", **base, radii=radii, **search_params(kw),
                   expected_row_splits=r.neighbors_row_splits, expected_index=r.neighbors_index,
                   expected_distance=r.neighbors_distance)
        for kname, k, kw in (("k5", 5, dict(return_distances=True)),
                             ("k3", 3, dict(ignore_query_point=True, metric="L1", index_dtype=np.int64,
                                            return_distances=True)),
                             ("k80", 80, dict())):
            r = geomops.knn_search(pts, qs, k, ps, qsp, **kw)
            w.case(f"knn_{kname}_{name}", **base, k=k, **search_params(kw),
                   expected_row_splits=r.neighbors_row_splits, expected_index=r.neighbors_index,
                   expected_distance=r.neighbors_distance)


def search_params(kw):
    return dict(index_type=CODES[np.dtype(kw.get("index_dtype", np.int32))], metric=METRICS[kw.get("metric", "L2")],
                ignore_query_point=kw.get("ignore_query_point", False),
                return_distances=kw.get("return_distances", False),
                normalize_distances=kw.get("normalize_distances", False), sort=kw.get("sort", False))


# ---- pose -----------------------------------------------------------------------------------------

def make_pose(angles, t):
    ax, ay, az = angles
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    T = np.eye(4)
    T[:3, :3] = (np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]]) @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
                 @ np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]]))
    T[:3, 3] = t
    return T


def pose_scene():
    rng = np.random.default_rng(3)
    cam = pose.Camera(64, 48, fx=57.6, fy=60.8, cx=32.3, cy=23.8, near=0.1, far=10.0)
    sphere = pose.Mesh.sphere(0.2, 10, 6)
    colored = pose.Mesh(sphere.vertices, sphere.faces, vertex_colors=rng.random((sphere.num_vertices, 3)),
                        normals=sphere.normals, class_index=3)
    plain = pose.Mesh(np.array([[0, 0, 0], [0.2, 0, 0], [0, 0.2, 0], [0, 0, 0.2]], np.float32),
                      np.array([[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]]), class_index=7)
    objs = [pose.SceneObject(pose.Mesh.box(0.3, class_index=2), make_pose((0.3, 0.5, 0.1), (-0.1, 0.05, 1.2))),
            pose.SceneObject(colored, make_pose((0.1, -0.4, 0.2), (0.15, -0.05, 1.0)), instance_index=9),
            pose.SceneObject(plain, make_pose((0.2, 0.1, 0.4), (-0.05, 0.12, 0.9)), instance_index=9)]
    light = pose.Light(direction=(0.3, -0.5, -0.8), color=(0.9, 0.8, 0.7), ambient=(0.2, 0.25, 0.3))
    camera_pose = make_pose((0.05, -0.1, 0.2), (0.05, -0.02, -0.1))
    return pose.Scene(cam, objs, camera_pose=camera_pose, background=(0.1, 0.2, 0.3), light=light)


def pose_cases(w):
    scene = pose_scene()
    cam = scene.camera
    rr = pose.render(scene)
    objs = {}
    for k, obj in enumerate(scene.objects):
        m = obj.mesh
        objs[f"obj{k}_vertices"] = m.vertices
        objs[f"obj{k}_faces"] = m.faces
        objs[f"obj{k}_colors"] = m.vertex_colors
        objs[f"obj{k}_normals"] = m.normals
        objs[f"obj{k}_transform"] = scene.object_to_camera(obj)
        objs[f"obj{k}_pose"] = obj.pose
        objs[f"obj{k}_instance_index"] = obj.instance_index
        objs[f"obj{k}_class_index"] = m.class_index
        objs[f"obj{k}_num_vertices"] = m.num_vertices
        objs[f"obj{k}_num_faces"] = m.num_faces
    camera = dict(width=cam.width, height=cam.height, fx=cam.fx, fy=cam.fy, cx=cam.cx, cy=cam.cy, z_near=cam.near,
                  z_far=cam.far, num_objects=len(scene.objects))
    shading = dict(light_direction=scene.light.direction, light_color=scene.light.color,
                   ambient=scene.light.ambient, background=scene.background)
    buffers = {f"expected_{b}": getattr(rr, b) for b in ("rgb", "depth", "instance_index", "object_coordinates",
                                                         "cam_coordinates", "normals", "class_index", "triangle_id",
                                                         "barycentrics")}
    w.case("render", **camera, **objs, **shading, **buffers)
    w.case("projection", **camera, expected=cam.projection_matrix().astype(np.float64))

    rgb_f64 = rr.rgb[..., :3] / 255.0
    for name, rgb, border, sem in (("zero_cuda", rr.rgb, "zero", "cuda"), ("repl_cpu", rr.rgb, "replicate", "cpu"),
                                   ("float", rgb_f64, "zero", "cuda")):
        gx, gy, valid = pose.compute_image_space_gradients(scene, _Buffers(rr, rgb=rgb, depth=rr.depth.astype(
            np.float64) if name == "float" else rr.depth), border=border, helper_semantics=sem)
        w.case(f"imggrad_{name}", width=cam.width, height=cam.height, rgb=np.ascontiguousarray(rgb),
               rgb_type=CODES[rgb.dtype], rgb_channels=rgb.shape[2],
               depth=rr.depth.astype(np.float64) if name == "float" else rr.depth,
               depth_type=2 if name == "float" else 1, instance_index=rr.instance_index,
               border={"zero": 0, "replicate": 1}[border], helper_semantics={"cuda": 0, "cpu": 1}[sem],
               expected_grad_x=gx, expected_grad_y=gy, expected_valid=valid.astype(np.uint8))

    rng = np.random.default_rng(5)
    proj = cam.projection_matrix().astype(np.float64)
    for name, mode, layout, gdt, helper in (("exact", "exact", "CHW", np.float32, "cuda"),
                                           ("compat", "compat", "HWC", np.float64, "cpu")):
        shape = (3, cam.height, cam.width) if layout == "CHW" else (cam.height, cam.width, 3)
        grad = rng.standard_normal(shape).astype(gdt)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no singular pixels in this scene
            g, contrib = pose.backpropagate_gradient_to_poses(scene, rr, grad, mode=mode, layout=layout,
                                                              helper_semantics=helper, return_contributions=True)
        w.case(f"backprop_{name}", **camera, **objs, **shading, rgb=rr.rgb, rgb_type=5, rgb_channels=4, depth=rr.depth,
               depth_type=1, instance_index=rr.instance_index, object_coordinates=rr.object_coordinates,
               object_coordinates_type=1, projection=proj, mode={"exact": 0, "compat": 1}[mode],
               layout={"CHW": 0, "HWC": 1}[layout], helper_semantics={"cuda": 0, "cpu": 1}[helper],
               grad=grad, grad_type=CODES[np.dtype(gdt)], expected_gradients=g, expected_contributions=contrib)

    poses = np.stack([make_pose(rng.uniform(-1, 1, 3), rng.uniform(-1, 1, 3)) for _ in range(6)])
    deltas = rng.uniform(-0.1, 0.1, (6, 6))
    reflect = poses.copy()
    reflect[:, :3, 0] *= -1.0
    for name, p, d, kw in (("f64", poses, deltas, {}), ("f32_bcast", poses.astype(np.float32),
                                                        deltas[:1].astype(np.float32), {}),
                           ("raw", poses, deltas, dict(orthonormalize=False)),
                           ("reflect", reflect, deltas, dict(fix_reflection=True))):
        out = pose.apply_pose_delta(p, d, **kw)
        w.case(f"delta_{name}", dtype=CODES[p.dtype], delta_type=CODES[d.dtype], batch=len(p), delta_batch=len(d),
               pose=p, delta=d, orthonormalize=kw.get("orthonormalize", True),
               fix_reflection=kw.get("fix_reflection", False), expected=out)


class _Buffers:
    """A render result with some buffers replaced."""

    def __init__(self, rr, **replace):
        for name in ("rgb", "depth", "instance_index", "object_coordinates"):
            setattr(self, name, replace.get(name, getattr(rr, name)))


# ---- the C++ example ---------------------------------------------------------------------------

EXAMPLE_RADIUS = 0.15


def example_filters():
    """The example's filters: [3, 3, 3, 4, 8] with value ((i * 37) % 101) / 101 - 0.5 at flat index i."""
    i = np.arange(3 * 3 * 3 * 4 * 8)
    return (((i * 37) % 101).astype(np.float32) / np.float32(101) - np.float32(0.5)).reshape(3, 3, 3, 4, 8)


def example_expected(pts):
    nb = geomops.fixed_radius_search(pts, pts, EXAMPLE_RADIUS)
    feats = np.concatenate([pts, np.ones((len(pts), 1), np.float32)], axis=1)
    return geomops.continuous_conv(example_filters(), pts, 2 * EXAMPLE_RADIUS, np.zeros(3, np.float32), pts, feats,
                                   None, nb.neighbors_index, None, nb.neighbors_row_splits)


def write_ply(path, pts, binary):
    n = len(pts)
    fmt = "binary_little_endian" if binary else "ascii"
    header = (f"ply\nformat {fmt} 1.0\ncomment written by tests/c/make_fixtures.py\nelement vertex {n}\n"
              "property float x\nproperty float y\nproperty float z\nproperty uchar red\nproperty uchar green\n"
              "property uchar blue\nelement face 0\nproperty list uchar int vertex_indices\nend_header\n")
    colors = (np.arange(3 * n) % 256).astype(np.uint8).reshape(n, 3)
    with open(path, "wb") as f:
        f.write(header.encode())
        if binary:
            rec = np.zeros(n, dtype=[("xyz", "<f4", 3), ("rgb", "u1", 3)])
            rec["xyz"] = pts
            rec["rgb"] = colors
            f.write(rec.tobytes())
        else:
            for p, c in zip(pts.tolist(), colors.tolist()):  # Python floats: repr round-trips
                f.write(f"{p[0]!r} {p[1]!r} {p[2]!r} {c[0]} {c[1]} {c[2]}\n".encode())


def example_cases(root):
    rng = np.random.default_rng(21)
    pts = rng.random((400, 3)).astype(np.float32)
    write_ply(root / "cloud_ascii.ply", pts, binary=False)
    write_ply(root / "cloud_binary.ply", pts, binary=True)
    np.save(root / "cloud_expected.npy", example_expected(pts))


def read_result_ply(path):
    """The example's ASCII output: x y z f0 .. f7 per vertex."""
    with open(path) as f:
        lines = f.read().splitlines()
    end = lines.index("end_header")
    return np.array([[float(v) for v in line.split()] for line in lines[end + 1:] if line.strip()])


def check_example(result_path, expected_path):
    got = read_result_ply(result_path)
    exp = np.load(expected_path)
    if got.shape != (exp.shape[0], 3 + exp.shape[1]):
        print(f"FAIL: {result_path} has shape {got.shape}, expected {(exp.shape[0], 3 + exp.shape[1])}")
        return 1
    err = np.abs(got[:, 3:] - exp).max()
    if not np.allclose(got[:, 3:], exp, rtol=1e-5, atol=1e-5):
        print(f"FAIL: {result_path} differs from the Python result (max abs error {err})")
        return 1
    print(f"ok: {result_path} matches the Python result ({exp.shape[0]} points, max abs error {err:.2e})")
    return 0


def main(argv):
    if len(argv) == 4 and argv[1] == "--check-example":
        return check_example(argv[2], argv[3])
    if len(argv) != 2:
        print(__doc__)
        return 2
    geomops.set_num_threads(2)
    root = Path(argv[1])
    root.mkdir(parents=True, exist_ok=True)
    w = Writer(root)
    cconv_cases(w)
    list_cases(w)
    search_cases(w)
    pose_cases(w)
    example_cases(root)
    (root / "cases.txt").write_text("\n".join(w.cases) + "\n")
    print(f"wrote {len(w.cases)} cases to {root} (geomops {geomops.__version__} from "
          f"{os.path.dirname(geomops.__file__)})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
