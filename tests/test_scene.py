"""Data model of geomops.pose: Camera, Mesh (+ PLY/OBJ reading), Light, SceneObject, Scene,
RenderResult.from_buffers."""

import math

import numpy as np
import pytest

from geomops.pose import Camera, Light, Mesh, RenderResult, Scene, SceneObject

YCB = dict(width=640, height=480, fx=1066.778, fy=1067.487, cx=312.9869, cy=241.3109)


# ---------------------------------------------------------------------------------------------
# Camera
def _stillleben_frustum(W, H, fx, fy, cx, cy, near, far):
    """Reference: the float32 operation sequence of stillleben's set_camera_intrinsics."""
    f32 = np.float32
    n, f = np.array(near, f32), np.array(far, f32)
    W, H = np.array(W, f32), np.array(H, f32)
    fx, fy, cx, cy = (np.array(x, f32) for x in (fx, fy, cx, cy))
    L = np.multiply(-cx, n, dtype=f32) / fx
    R = np.multiply(W - cx, n, dtype=f32) / fx
    T = np.multiply(-cy, n, dtype=f32) / fy
    B = np.multiply(H - cy, n, dtype=f32) / fy
    out = np.zeros((4, 4), f32)
    out[0, 0] = f32(2) * n / (R - L)
    out[1, 1] = f32(2) * n / (B - T)
    out[0, 2] = (R + L) / (L - R)
    out[1, 2] = (T + B) / (T - B)
    out[2, 2] = (f + n) / (f - n)
    out[2, 3] = (f32(2) * f * n) / (n - f)
    out[3, 2] = 1
    return out


def _simplified(W, H, fx, fy, cx, cy, near, far):
    return np.array([[2 * fx / W, 0, 2 * cx / W - 1, 0], [0, 2 * fy / H, 2 * cy / H - 1, 0],
                     [0, 0, (far + near) / (far - near), 2 * far * near / (near - far)], [0, 0, 1, 0]])


@pytest.mark.parametrize("params", [
    dict(YCB), dict(width=224, height=224, fx=300.5, fy=310.25, cx=111.9, cy=113.3),
    dict(width=37, height=23, fx=40.0, fy=41.0, cx=18.5, cy=11.5, near=0.01, far=100.0),
    dict(width=1, height=1, fx=2.0, fy=3.0, cx=0.5, cy=0.25, near=0.5, far=2.0)])
def test_projection_matrix_stillleben_sequence(params):
    p = dict(near=0.1, far=10.0) | params
    cam = Camera(**p)
    P = cam.projection_matrix()
    assert P.dtype == np.float32 and P.shape == (4, 4) and P.flags.c_contiguous
    ref = _stillleben_frustum(p["width"], p["height"], p["fx"], p["fy"], p["cx"], p["cy"], p["near"], p["far"])
    np.testing.assert_array_equal(P, ref)
    simple = _simplified(p["width"], p["height"], p["fx"], p["fy"], p["cx"], p["cy"], p["near"], p["far"])
    np.testing.assert_allclose(P, simple, rtol=2e-6, atol=1e-6)
    np.testing.assert_array_equal(P[3], [0, 0, 1, 0])


def test_projection_matrix_maps_pixels_to_ndc():
    cam = Camera(**YCB)
    P = cam.projection_matrix().astype(np.float64)
    X = np.array([0.03, -0.02, 0.8, 1.0])
    clip = P @ X
    u = cam.fx * X[0] / X[2] + cam.cx
    v = cam.fy * X[1] / X[2] + cam.cy
    assert clip[3] == pytest.approx(X[2])
    assert clip[0] / clip[3] == pytest.approx(2 * u / cam.width - 1, rel=1e-6)
    assert clip[1] / clip[3] == pytest.approx(2 * v / cam.height - 1, rel=1e-6)


def test_projection_matrix_returns_a_copy():
    cam = Camera(**YCB)
    P = cam.projection_matrix()
    P[0, 0] = 99
    assert cam.projection_matrix()[0, 0] != 99


def test_from_fov_matches_stillleben_default():
    cam = Camera.from_fov(640, 480)
    f = 640 / (2 * math.tan(math.radians(58) / 2))
    assert (cam.cx, cam.cy) == (320.0, 240.0)
    assert cam.fx == pytest.approx(f) and cam.fy == pytest.approx(f)
    assert cam.near == 0.1 and cam.far == 10.0
    with pytest.raises(ValueError, match="hfov_deg"):
        Camera.from_fov(64, 48, hfov_deg=180)


def test_from_projection_round_trip_and_keeps_matrix():
    cam = Camera(**YCB)
    P = cam.projection_matrix()
    c2 = Camera.from_projection(P, 640, 480)
    np.testing.assert_array_equal(c2.projection_matrix(), P)
    for name in ("fx", "fy", "cx", "cy", "near", "far"):
        assert getattr(c2, name) == pytest.approx(getattr(cam, name), rel=1e-5), name
    # an arbitrary pinhole matrix is kept as given (rounded to float32), not rebuilt
    Q = np.array([[2.1, 0, 0.013, 0], [0, 2.7, -0.02, 0], [0, 0, 1.5, -0.7], [0, 0, 1, 0]])
    c3 = Camera.from_projection(Q, 100, 80)
    np.testing.assert_array_equal(c3.projection_matrix(), Q.astype(np.float32))
    assert c3.fx == pytest.approx(np.float32(2.1) * 50)
    assert c3.cy == pytest.approx((np.float32(-0.02) + 1) * 40)
    # near/far encoded by P[2,2], P[2,3]
    assert c3.near == pytest.approx(0.7 / 2.5, rel=1e-6) and c3.far == pytest.approx(0.7 / 0.5, rel=1e-6)


def test_from_projection_rejects_non_pinhole():
    P = Camera(**YCB).projection_matrix()
    gl = P.copy()
    gl[3, 2] = -1  # GL camera looking down -z
    with pytest.raises(ValueError, match="P must be a pinhole"):
        Camera.from_projection(gl, 640, 480)
    skew = P.copy()
    skew[0, 1] = 0.1
    with pytest.raises(ValueError, match="P must be a pinhole"):
        Camera.from_projection(skew, 640, 480)
    with pytest.raises(ValueError, match="P must have shape"):
        Camera.from_projection(P[:3], 640, 480)
    bad = P.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="P must be finite"):
        Camera.from_projection(bad, 640, 480)
    neg = P.copy()
    neg[0, 0] = -1
    with pytest.raises(ValueError, match=r"P\[0,0\]"):
        Camera.from_projection(neg, 640, 480)
    nf = P.copy()
    nf[2, 3] = 0.2  # near < 0
    with pytest.raises(ValueError, match="near"):
        Camera.from_projection(nf, 640, 480)


@pytest.mark.parametrize("kw,exc,match", [
    (dict(width=0), ValueError, "width"), (dict(width=-3), ValueError, "width"),
    (dict(height=1.5), TypeError, "height"), (dict(width=True), TypeError, "width"),
    (dict(width=40000), ValueError, "width"),
    (dict(fx=0.0), ValueError, "fx"), (dict(fy=-1.0), ValueError, "fy"), (dict(fx=np.nan), ValueError, "fx"),
    (dict(cx=np.inf), ValueError, "cx"), (dict(cy="1"), TypeError, "cy"),
    (dict(near=0.0), ValueError, "near"), (dict(near=2.0, far=1.0), ValueError, "near must be < far"),
    (dict(far=np.inf), ValueError, "far"),
])
def test_camera_validation(kw, exc, match):
    with pytest.raises(exc, match=match):
        Camera(**(dict(YCB) | kw))


def test_camera_intrinsics_matrix():
    cam = Camera(**YCB)
    K = cam.intrinsics()
    np.testing.assert_array_equal(K, [[cam.fx, 0, cam.cx], [0, cam.fy, cam.cy], [0, 0, 1]])
    assert cam.shape == (480, 640)


# ---------------------------------------------------------------------------------------------
# Mesh
def _edges_closed_and_consistent(faces):
    """Every directed edge appears once and its reverse once: closed, consistently wound."""
    directed = {}
    for f in faces:
        for a, b in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0])):
            directed[(a, b)] = directed.get((a, b), 0) + 1
    return all(c == 1 for c in directed.values()) and all((b, a) in directed for a, b in directed)


def _signed_volume(v, f):
    v = v.astype(np.float64)
    return np.einsum("ij,ij->i", v[f[:, 0]], np.cross(v[f[:, 1]], v[f[:, 2]])).sum() / 6.0


def test_box():
    m = Mesh.box((0.2, 0.3, 0.4))
    assert m.vertices.shape == (8, 3) and m.vertices.dtype == np.float32
    assert m.faces.shape == (12, 3) and m.faces.dtype == np.int32
    np.testing.assert_allclose(m.vertices.min(0), [-0.1, -0.15, -0.2], rtol=1e-6)
    np.testing.assert_allclose(m.vertices.max(0), [0.1, 0.15, 0.2], rtol=1e-6)
    assert _edges_closed_and_consistent(m.faces)
    assert _signed_volume(m.vertices, m.faces) == pytest.approx(0.2 * 0.3 * 0.4, rel=1e-5)
    # every face normal points away from the centre
    v = m.vertices.astype(np.float64)
    n = np.cross(v[m.faces[:, 1]] - v[m.faces[:, 0]], v[m.faces[:, 2]] - v[m.faces[:, 0]])
    assert np.all(np.einsum("ij,ij->i", n, v[m.faces].mean(1)) > 0)
    assert m.vertex_colors.shape == (8, 3) and len(np.unique(m.vertex_colors, axis=0)) == 8
    assert m.normals is None
    assert Mesh.box(2.0).vertices.max() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="size"):
        Mesh.box((1.0, 2.0))
    with pytest.raises(ValueError, match="size"):
        Mesh.box(-1.0)


@pytest.mark.parametrize("seg,rings", [(3, 2), (8, 5), (24, 13)])
def test_sphere(seg, rings):
    m = Mesh.sphere(0.5, seg, rings)
    assert m.num_faces == 2 * seg * (rings - 1)
    assert m.num_vertices == seg * (rings - 1) + 2
    assert _edges_closed_and_consistent(m.faces)
    vol = _signed_volume(m.vertices, m.faces)
    assert 0 < vol <= 4 / 3 * math.pi * 0.125 * (1 + 1e-6)
    np.testing.assert_allclose(np.linalg.norm(m.vertices, axis=1), 0.5, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(m.normals, axis=1), 1.0, rtol=1e-6)
    c = m.vertex_colors
    assert c.min() >= 0 and c.max() <= 1 and c.std(axis=0).min() > 0.05  # textured
    with pytest.raises(ValueError, match="segments"):
        Mesh.sphere(1.0, 2, 4)
    with pytest.raises(ValueError, match="radius"):
        Mesh.sphere(0.0)


def test_mesh_arrays_are_read_only_and_converted():
    m = Mesh(np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float64), np.array([[0, 1, 2]], np.int64),
             vertex_colors=np.array([[255, 0, 0, 7], [0, 255, 0, 7], [0, 0, 255, 7]], np.uint8), class_index=3)
    assert m.vertices.dtype == np.float32 and m.faces.dtype == np.int32
    np.testing.assert_array_equal(m.vertex_colors, np.eye(3, dtype=np.float32))
    assert m.class_index == 3
    with pytest.raises(ValueError):
        m.vertices[0, 0] = 5
    with pytest.raises(ValueError):
        m.faces[0, 0] = 1
    empty = Mesh(np.zeros((0, 3)), np.zeros((0, 3), np.int32))
    assert empty.num_faces == 0


@pytest.mark.parametrize("args,exc,match", [
    ((np.zeros((3, 2)), [[0, 1, 2]]), ValueError, "vertices"),
    ((np.full((3, 3), np.nan), [[0, 1, 2]]), ValueError, "vertices"),
    ((np.full((3, 3), 1e39), [[0, 1, 2]]), ValueError, "vertices"),
    ((np.zeros((3, 3), dtype=object), [[0, 1, 2]]), TypeError, "vertices"),
    ((np.zeros((3, 3)), [[0, 1, 3]]), ValueError, "faces"),
    ((np.zeros((3, 3)), [[0, -1, 2]]), ValueError, "faces"),
    ((np.zeros((3, 3)), [[0.0, 1.0, 2.0]]), TypeError, "faces"),
    ((np.zeros((3, 3)), [[0, 1, 2, 0]]), ValueError, "faces"),
])
def test_mesh_validation(args, exc, match):
    with pytest.raises(exc, match=match):
        Mesh(*args)


def test_mesh_validation_colors_normals_class():
    v, f = np.eye(3), [[0, 1, 2]]
    with pytest.raises(ValueError, match="vertex_colors"):
        Mesh(v, f, vertex_colors=np.full((3, 3), 1.5))
    with pytest.raises(ValueError, match="vertex_colors"):
        Mesh(v, f, vertex_colors=np.zeros((2, 3)))
    with pytest.raises(TypeError, match="vertex_colors"):
        Mesh(v, f, vertex_colors=np.zeros((3, 3), np.int32))
    with pytest.raises(ValueError, match="normals"):
        Mesh(v, f, normals=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="class_index"):
        Mesh(v, f, class_index=40000)
    with pytest.raises(TypeError, match="class_index"):
        Mesh(v, f, class_index=1.0)


# ---- file formats ---------------------------------------------------------------------------
def _ply_header(fmt, nv, nf, color=True, normals=False, extra_face_prop=False):
    lines = ["ply", f"format {fmt} 1.0", "comment made by a test", f"element vertex {nv}",
             "property float x", "property float y", "property float z"]
    if normals:
        lines += ["property float nx", "property float ny", "property float nz"]
    if color:
        lines += ["property uchar red", "property uchar green", "property uchar blue", "property uchar alpha"]
    lines += [f"element face {nf}", "property list uchar int vertex_indices"]
    if extra_face_prop:
        lines += ["property uchar flags"]
    lines += ["end_header"]
    return ("\n".join(lines) + "\n").encode()


QUAD_V = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0.5, 0.5, 1]], np.float32)
QUAD_C = np.array([[255, 0, 0, 255], [0, 255, 0, 255], [0, 0, 255, 255], [10, 20, 30, 255], [5, 5, 5, 5]], np.uint8)
QUAD_F = [[0, 1, 2, 3], [0, 1, 4], [1, 2, 4]]  # a quad and two triangles
QUAD_TRIS = np.array([[0, 1, 2], [0, 2, 3], [0, 1, 4], [1, 2, 4]])


def test_load_ply_ascii(tmp_path):
    body = "".join(f"{x} {y} {z} {r} {g} {b} {a}\n" for (x, y, z), (r, g, b, a) in zip(QUAD_V, QUAD_C))
    body += "".join(f"{len(f)} " + " ".join(map(str, f)) + " 0\n" for f in QUAD_F)
    path = tmp_path / "q.ply"
    path.write_bytes(_ply_header("ascii", 5, 3, extra_face_prop=True) + body.encode())
    m = Mesh.load(path, class_index=4)
    np.testing.assert_array_equal(m.vertices, QUAD_V)
    np.testing.assert_array_equal(m.faces, QUAD_TRIS)
    np.testing.assert_allclose(m.vertex_colors, QUAD_C[:, :3] / 255.0, rtol=1e-6)
    assert m.class_index == 4


@pytest.mark.parametrize("order,fmt", [("<", "binary_little_endian"), (">", "binary_big_endian")])
def test_load_ply_binary(tmp_path, order, fmt):
    vdt = np.dtype([("x", order + "f4"), ("y", order + "f4"), ("z", order + "f4"), ("r", "u1"), ("g", "u1"),
                    ("b", "u1"), ("a", "u1")])
    v = np.zeros(5, vdt)
    v["x"], v["y"], v["z"] = QUAD_V.T
    v["r"], v["g"], v["b"], v["a"] = QUAD_C.T
    body = v.tobytes()
    for f in QUAD_F:
        body += bytes([len(f)]) + np.array(f, order + "i4").tobytes()
    path = tmp_path / "q.ply"
    path.write_bytes(_ply_header(fmt, 5, 3) + body)
    m = Mesh.load(str(path))
    np.testing.assert_array_equal(m.vertices, QUAD_V)
    np.testing.assert_array_equal(m.faces, QUAD_TRIS)
    np.testing.assert_allclose(m.vertex_colors, QUAD_C[:, :3] / 255.0, rtol=1e-6)


def test_ply_binary_round_trip_of_sphere(tmp_path):
    s = Mesh.sphere(0.3, 10, 6)
    vdt = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4")])
    v = np.zeros(s.num_vertices, vdt)
    v["x"], v["y"], v["z"] = s.vertices.T
    v["nx"], v["ny"], v["nz"] = s.normals.T
    fdt = np.dtype([("n", "u1"), ("i", "<i4", (3,))])
    f = np.zeros(s.num_faces, fdt)
    f["n"], f["i"] = 3, s.faces
    path = tmp_path / "s.ply"
    path.write_bytes(_ply_header("binary_little_endian", s.num_vertices, s.num_faces, color=False, normals=True)
                     + v.tobytes() + f.tobytes())
    m = Mesh.load(path)
    np.testing.assert_array_equal(m.vertices, s.vertices)
    np.testing.assert_array_equal(m.faces, s.faces)
    np.testing.assert_allclose(m.normals, s.normals, atol=1e-7)
    assert m.vertex_colors is None


def test_load_obj(tmp_path):
    text = "# test\nmtllib none.mtl\no thing\n"
    for (x, y, z), (r, g, b, _) in zip(QUAD_V, QUAD_C):
        text += f"v {x} {y} {z} {r / 255} {g / 255} {b / 255}\n"
    text += "vt 0 0\nvn 0 0 1\ns off\n"
    text += "f 1/1/1 2/1/1 3/1/1 4/1/1\n"  # quad with texture/normal refs
    text += "f -5//1 -4//1 -1//1\n"         # negative (relative) indices
    text += "f 2 3 5\n"
    path = tmp_path / "q.obj"
    path.write_text(text)
    m = Mesh.load(path)
    np.testing.assert_array_equal(m.vertices, QUAD_V)
    np.testing.assert_array_equal(m.faces, QUAD_TRIS)
    np.testing.assert_allclose(m.vertex_colors, QUAD_C[:, :3] / 255.0, rtol=1e-6)
    plain = tmp_path / "p.obj"
    plain.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    assert Mesh.load(plain).vertex_colors is None


def test_load_bad_files(tmp_path):
    p = tmp_path / "x.stl"
    p.write_text("solid")
    with pytest.raises(ValueError, match="path"):
        Mesh.load(p)
    p = tmp_path / "x.ply"
    p.write_bytes(b"plx\n")
    with pytest.raises(ValueError, match="path"):
        Mesh.load(p)
    p.write_bytes(_ply_header("binary_little_endian", 5, 3) + b"\x00" * 10)
    with pytest.raises(ValueError, match="path"):
        Mesh.load(p)
    p = tmp_path / "x.obj"
    p.write_text("v 0 0 0\nv 1 0\nf 1 2 3\n")
    with pytest.raises(ValueError, match="path"):
        Mesh.load(p)
    p.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 4\n")
    with pytest.raises(ValueError, match="faces"):
        Mesh.load(p)


# ---------------------------------------------------------------------------------------------
# SceneObject, Scene, Light
def test_scene_instance_indices():
    m = Mesh.box(0.1)
    objs = [SceneObject(m), SceneObject(m, instance_index=9), SceneObject(m), SceneObject(None, np.eye(4), 9)]
    s = Scene(Camera.from_fov(32, 24), objs)
    assert [o.instance_index for o in s.objects] == [1, 9, 3, 9]  # shared index allowed
    np.testing.assert_array_equal(s.instance_indices(), [1, 9, 3, 9])
    lst = s.objects
    lst.append("junk")
    assert len(s.objects) == 4
    with pytest.raises(ValueError, match="instance_index"):
        SceneObject(m, instance_index=32768)
    with pytest.raises(ValueError, match="instance_index"):
        SceneObject(m, instance_index=0)
    with pytest.raises(TypeError, match="instance_index"):
        SceneObject(m, instance_index=1.5)
    with pytest.raises(TypeError, match="objects"):
        s.add_object(m)
    with pytest.raises(TypeError, match="mesh"):
        SceneObject("mesh.ply")


def test_pose_validation():
    m = Mesh.box(0.1)
    bad = np.eye(4)
    bad[0, 3] = np.nan
    with pytest.raises(ValueError, match="pose must be finite"):
        SceneObject(m, bad)
    with pytest.raises(ValueError, match="pose"):
        SceneObject(m, np.eye(3))
    o = SceneObject(m, np.eye(4, dtype=np.float32))
    assert o.pose.dtype == np.float64 and o.pose.shape == (4, 4)
    with pytest.raises(ValueError, match="pose"):
        o.pose = np.full((4, 4), np.inf)
    p = o.pose
    p[0, 0] = 7
    assert o.pose[0, 0] == 1  # a copy
    with pytest.raises(ValueError, match="camera_pose"):
        Scene(Camera.from_fov(8, 8), camera_pose=bad)
    with pytest.raises(TypeError, match="camera"):
        Scene("cam")


def test_scene_object_to_camera():
    m = Mesh.box(0.1)
    pose = np.eye(4)
    pose[:3, 3] = [0.1, 0.2, 1.0]
    cam_pose = np.eye(4)
    c, s_ = math.cos(0.3), math.sin(0.3)
    cam_pose[:3, :3] = [[c, 0, s_], [0, 1, 0], [-s_, 0, c]]
    cam_pose[:3, 3] = [0.5, -0.1, 0.2]
    sc = Scene(Camera.from_fov(8, 8), [SceneObject(m, pose)], camera_pose=cam_pose)
    np.testing.assert_allclose(sc.object_to_camera(0), np.linalg.inv(cam_pose) @ pose, atol=1e-12)
    np.testing.assert_array_equal(Scene(Camera.from_fov(8, 8), [SceneObject(m, pose)]).object_to_camera(0), pose)


def test_scene_background_and_light():
    s = Scene(Camera.from_fov(8, 8), background=(0.1, 0.2, 0.3))
    np.testing.assert_allclose(s.background, [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="background"):
        s.background = (0.0, 2.0, 0.0)
    with pytest.raises(ValueError, match="background"):
        Scene(Camera.from_fov(8, 8), background=(0.0, 0.0))
    light = Light(direction=(0, 0, -2), color=1.0, ambient=(0.1, 0.2, 0.3))
    np.testing.assert_allclose(light.direction, [0, 0, -1])
    np.testing.assert_allclose(light.color, [1, 1, 1])
    with pytest.raises(ValueError, match="direction"):
        Light(direction=(0, 0, 0))
    with pytest.raises(ValueError, match="ambient"):
        Light(ambient=-0.1)
    with pytest.raises(TypeError, match="light"):
        Scene(Camera.from_fov(8, 8), light={"direction": (0, 0, 1)})


# ---------------------------------------------------------------------------------------------
# RenderResult.from_buffers
def _bufs(h=4, w=5, **kw):
    rng = np.random.default_rng(0)
    inst = np.zeros((h, w), np.int64)
    inst[1:3, 1:4] = 2
    d = dict(rgb=rng.random((h, w, 3)), depth=np.full((h, w), 3000.0), instance_index=inst,
             object_coordinates=rng.random((h, w, 3)))
    d["depth"][inst != 0] = 0.8
    d.update(kw)
    return d


def test_from_buffers_converts():
    b = _bufs()
    r = RenderResult.from_buffers(**b)
    assert r.rgb.dtype == np.uint8 and r.rgb.shape == (4, 5, 4)
    np.testing.assert_array_equal(r.rgb[..., :3], np.rint(b["rgb"] * 255).astype(np.uint8))
    assert np.all(r.rgb[..., 3] == 255)
    assert r.depth.dtype == np.float32 and r.instance_index.dtype == np.int16
    assert r.object_coordinates.dtype == np.float32
    assert (r.height, r.width, r.shape) == (4, 5, (4, 5))
    for name in ("rgb", "depth", "instance_index", "object_coordinates"):
        assert getattr(r, name).flags.c_contiguous
    assert r.cam_coordinates is None and r.triangle_id is None
    np.testing.assert_allclose(r.rgb_float(), r.rgb[..., :3] / 255.0, rtol=1e-7)
    np.testing.assert_array_equal(r.mask(2), b["instance_index"] == 2)


def test_from_buffers_shapes_and_dtypes():
    b = _bufs()
    h, w = 4, 5
    r = RenderResult.from_buffers(**_bufs(instance_index=b["instance_index"][..., None].astype(np.uint8),
                                          depth=b["depth"][..., None].astype(np.float32)))
    assert r.instance_index.shape == (h, w) and r.depth.shape == (h, w)
    # non-contiguous views and uint8 rgb with alpha
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[..., 3] = 17
    oc = np.asfortranarray(b["object_coordinates"])
    r = RenderResult.from_buffers(**_bufs(rgb=rgba, object_coordinates=oc[:, :, :]))
    assert np.all(r.rgb[..., 3] == 17) and r.object_coordinates.flags.c_contiguous
    r = RenderResult.from_buffers(**_bufs(cam_coordinates=np.ones((h, w, 3)), normals=np.ones((h, w, 3)),
                                          class_index=np.ones((h, w, 1), np.int32),
                                          triangle_id=np.full((h, w), -1), barycentrics=np.zeros((h, w, 3))))
    assert r.cam_coordinates.shape == (h, w, 4) and np.all(r.cam_coordinates[..., 3] == 1)
    assert r.normals.shape == (h, w, 4) and np.all(r.normals[..., 3] == 0)
    assert r.class_index.dtype == np.int16 and r.triangle_id.dtype == np.int32


@pytest.mark.parametrize("kw,exc,match", [
    (dict(instance_index=np.full((4, 5), 40000)), ValueError, "instance_index"),
    (dict(instance_index=np.full((4, 5), -1)), ValueError, "instance_index"),
    (dict(instance_index=np.zeros((4, 5), bool)), TypeError, "instance_index"),
    (dict(instance_index=np.zeros((4, 5), np.float32)), TypeError, "instance_index"),
    (dict(instance_index=np.zeros((4, 5, 2), np.int16)), ValueError, "instance_index"),
    (dict(depth=np.ones((4, 6))), ValueError, r"depth has shape \(4, 6\) but instance_index is 4x5 .*\(4, 5\)"),
    (dict(depth=np.ones((4, 5), np.int32)), TypeError, "depth"),
    (dict(object_coordinates=np.ones((4, 5, 4))), ValueError, r"object_coordinates must have shape \(4, 5, 3\)"),
    (dict(rgb=np.ones((4, 5, 2))), ValueError, "rgb"),
    (dict(rgb=np.full((4, 5, 3), 1.5)), ValueError, "rgb"),
    (dict(rgb=np.ones((4, 5, 3), np.int32)), TypeError, "rgb"),
    (dict(cam_coordinates=np.ones((4, 5, 2))), ValueError, "cam_coordinates"),
    (dict(class_index=np.full((4, 5), 99999)), ValueError, "class_index"),
    (dict(barycentrics=np.ones((4, 5))), ValueError, "barycentrics"),
])
def test_from_buffers_errors(kw, exc, match):
    with pytest.raises(exc, match=match):
        RenderResult.from_buffers(**_bufs(**kw))


def test_from_buffers_nan_policy():
    b = _bufs()
    bg = b["instance_index"] == 0
    depth = b["depth"].copy()
    depth[bg] = np.nan  # background may hold anything
    oc = b["object_coordinates"].copy()
    oc[bg] = np.inf
    r = RenderResult.from_buffers(**_bufs(depth=depth, object_coordinates=oc))
    assert np.isnan(r.depth[0, 0]) and np.isinf(r.object_coordinates[0, 0, 0])
    depth[1, 1] = np.nan  # a foreground pixel
    with pytest.raises(ValueError, match=r"depth must be finite at foreground.*row 1, col 1"):
        RenderResult.from_buffers(**_bufs(depth=depth))
    oc = b["object_coordinates"].copy()
    oc[2, 3, 1] = np.nan
    with pytest.raises(ValueError, match="object_coordinates must be finite"):
        RenderResult.from_buffers(**_bufs(object_coordinates=oc))


def test_render_result_constructor_light_checks():
    h, w = 2, 3
    ok = dict(rgb=np.zeros((h, w, 4), np.uint8), depth=np.zeros((h, w), np.float32),
              instance_index=np.zeros((h, w), np.int16), object_coordinates=np.zeros((h, w, 3), np.float32))
    RenderResult(**ok)
    with pytest.raises(TypeError, match="instance_index"):
        RenderResult(**(ok | dict(instance_index=np.zeros((h, w), np.int32))))
    with pytest.raises(ValueError, match="rgb"):
        RenderResult(**(ok | dict(rgb=np.zeros((h, w, 3), np.uint8))))


def test_constants_come_from_the_kernels():
    from geomops import _backend
    from geomops.pose import _constants, buffers, scene

    k = _backend.cpu().kernels
    assert _constants.MAX_INSTANCE_INDEX == k.MAX_INSTANCE_INDEX == np.iinfo(np.int16).max == scene.MAX_INDEX
    assert _constants.MAX_IMAGE_SIZE == k.RASTER_MAX_SIZE == 32768
    assert _constants.BACKGROUND_DEPTH == buffers.BACKGROUND_DEPTH == 3000.0
    assert sorted(_constants.BORDERS.values()) == [0, 1] and sorted(_constants.SEMANTICS.values()) == [0, 1]
    assert _constants.ACC_GRAD + 6 <= _constants.ACC_SINGULAR < _constants.ACC_STRIDE
    Camera(32768, 1, 1.0, 1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="width"):
        Camera(32769, 1, 1.0, 1.0, 0.0, 0.0)


def test_object_to_camera_needs_an_affine_invertible_camera_pose():
    m = Mesh.box(0.1)
    projective = np.eye(4)
    projective[3, 2] = 0.5
    with pytest.raises(ValueError, match="camera_pose must be affine"):
        Scene(Camera.from_fov(8, 8), [SceneObject(m)], camera_pose=projective).object_to_camera(0)
    singular = np.eye(4)
    singular[1, 1] = 0.0
    with pytest.raises(ValueError, match="camera_pose must be invertible"):
        Scene(Camera.from_fov(8, 8), [SceneObject(m)], camera_pose=singular).object_to_camera(0)
