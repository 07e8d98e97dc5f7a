"""The software rasterizer against an independent NumPy ray caster and coverage invariants."""

import math

import numpy as np
import pytest

from geomops.pose import Camera, Light, Mesh, Scene, SceneObject
from geomops.pose import render as render_on_device


def render(scene, *args, **kwargs):
    """geomops.pose.render with the buffers on the host (RenderResult.get() copies a GPU's)."""
    return render_on_device(scene, *args, **kwargs).get()


ALL = ("rgb", "depth", "instance_index", "object_coordinates", "cam_coordinates", "normals", "class_index",
       "triangle_id", "barycentrics")


def rot(ax, ay, az):
    cx, sx, cy, sy, cz, sz = math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), math.cos(az), math.sin(az)
    Rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    Ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    Rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


def pose(R=None, t=(0.0, 0.0, 1.0)):
    T = np.eye(4)
    if R is not None:
        T[:3, :3] = R
    T[:3, 3] = t
    return T


# ---------------------------------------------------------------------------------------------
# Independent reference: Moller-Trumbore ray casting through every pixel centre.
def ray_cast(cam, objects, camera_pose=None):
    """Nearest hit of the ray through (c + 0.5, r + 0.5) over all objects' triangles.

    Returns dict: depth (camera Z, inf = miss), obj (-1 miss), face, bary (H, W, 3),
    margin (min barycentric of the nearest hit, -inf on miss), near_miss (True where some
    triangle misses the ray by less than 1e-3 in barycentric terms: an edge/silhouette pixel).
    """
    H, W = cam.height, cam.width
    u = (np.arange(W) + 0.5 - cam.cx) / cam.fx
    v = (np.arange(H) + 0.5 - cam.cy) / cam.fy
    D = np.stack(np.broadcast_arrays(u[None, :], v[:, None], np.ones((H, W))), axis=-1)
    best = dict(depth=np.full((H, W), np.inf), obj=np.full((H, W), -1), face=np.full((H, W), -1),
                bary=np.zeros((H, W, 3)), margin=np.full((H, W), -np.inf))
    edge = np.zeros((H, W), bool)
    world_to_cam = np.eye(4) if camera_pose is None else np.linalg.inv(camera_pose)
    for k, o in enumerate(objects):
        T = world_to_cam @ o.pose
        V = o.mesh.vertices.astype(np.float64) @ T[:3, :3].T + T[:3, 3]
        for f, (i0, i1, i2) in enumerate(o.mesh.faces):
            A, B, C = V[i0], V[i1], V[i2]
            e1, e2 = B - A, C - A
            p = np.cross(D, e2)
            det = p @ e1
            with np.errstate(divide="ignore", invalid="ignore"):
                inv = 1.0 / det
                s = -A
                b1 = (p @ s) * inv
                q = np.cross(s, e1)
                b2 = (D @ q) * inv
                t = (q @ e2) * inv
            b0 = 1 - b1 - b2
            m = np.minimum(np.minimum(b0, b1), b2)
            valid = np.isfinite(t) & (np.abs(det) > 1e-15) & (t >= cam.near) & (t <= cam.far)
            edge |= valid & (m > -1e-3) & (m < 1e-3)
            hit = valid & (m >= 0) & (t < best["depth"])
            best["depth"][hit] = t[hit]
            best["obj"][hit] = k
            best["face"][hit] = f
            best["bary"][hit] = np.stack([b0, b1, b2], -1)[hit]
            best["margin"][hit] = m[hit]
    best["edge"] = edge
    return best


def check_against_ray_cast(cam, scene, res, rtol=1e-5):
    ref = ray_cast(cam, scene.objects, scene.camera_pose)
    covered = res.instance_index != 0
    hit = np.isfinite(ref["depth"])
    # coverage may differ only at pixels some triangle edge passes (within 1e-3 barycentric)
    differ = covered != hit
    assert not np.any(differ & ~ref["edge"]), np.argwhere(differ & ~ref["edge"])[:5]
    sure = hit & covered & ~ref["edge"]
    assert sure.sum() > 0
    np.testing.assert_allclose(res.depth[sure], ref["depth"][sure], rtol=rtol)
    inst = np.array([o.instance_index for o in scene.objects])
    np.testing.assert_array_equal(res.instance_index[sure], inst[ref["obj"][sure]])
    np.testing.assert_array_equal(res.triangle_id[sure], ref["face"][sure])
    np.testing.assert_allclose(res.barycentrics[sure], ref["bary"][sure], atol=1e-5)
    # object coordinates = barycentric combination of the object-frame vertices
    oc = np.zeros((sure.sum(), 3))
    for k, o in enumerate(scene.objects):
        sel = ref["obj"][sure] == k
        f = o.mesh.faces[ref["face"][sure][sel]]
        b = ref["bary"][sure][sel]
        V = o.mesh.vertices.astype(np.float64)
        oc[sel] = np.einsum("pk,pkj->pj", b, V[f])
    scale = max(1.0, float(np.abs(oc).max()))
    np.testing.assert_allclose(res.object_coordinates[sure], oc, rtol=1e-5, atol=1e-6 * scale)
    # cam coordinates: the point on the ray at the hit depth
    r, c = np.nonzero(sure)
    Z = ref["depth"][sure]
    X = (c + 0.5 - cam.cx) / cam.fx * Z
    Y = (r + 0.5 - cam.cy) / cam.fy * Z
    np.testing.assert_allclose(res.cam_coordinates[sure], np.stack([X, Y, Z, np.ones_like(Z)], -1),
                               rtol=rtol, atol=1e-6)
    return ref


def check_background(res):
    bg = res.instance_index == 0
    assert np.all(res.depth[bg] == 3000) and np.all(res.object_coordinates[bg] == 3000)
    assert np.all(res.cam_coordinates[bg] == 3000) and np.all(res.normals[bg] == 0)
    assert np.all(res.triangle_id[bg] == -1) and np.all(res.barycentrics[bg] == 0)
    assert np.all(res.class_index[bg] == 0) and np.all(res.rgb[bg][:, 3] == 0)
    assert np.all(res.rgb[~bg][:, 3] == 255)


def single_triangle_renders(cam, mesh, T, camera_pose=None, device=None):
    """Coverage masks of each face rendered on its own (independent of shared-edge logic)."""
    masks = []
    for f in range(mesh.num_faces):
        m = Mesh(mesh.vertices, mesh.faces[f:f + 1])
        r = render(Scene(cam, [SceneObject(m, T)], camera_pose=camera_pose), buffers="gradient", device=device)
        masks.append(r.instance_index != 0)
    return np.array(masks)


# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mesh_kind", ["sphere", "box"])
def test_matches_ray_casting(mesh_kind, device):
    cam = Camera(64, 48, 70.0, 72.0, 31.3, 23.9)
    mesh = Mesh.sphere(0.3, 12, 7) if mesh_kind == "sphere" else Mesh.box((0.4, 0.3, 0.5))
    scene = Scene(cam, [SceneObject(mesh, pose(rot(0.3, -0.5, 0.2), (0.05, -0.02, 1.2)))])
    res = render(scene, device=device)
    ref = check_against_ray_cast(cam, scene, res)
    assert (res.instance_index != 0).sum() > 400
    assert np.all(res.instance_index[res.instance_index != 0] == 1)
    check_background(res)
    # normals: unit, camera-frame; w is the facing term n . (-ray direction); visible flat
    # faces of a closed outward-wound mesh face the camera (interpolated sphere normals need not)
    cov = res.instance_index != 0
    np.testing.assert_allclose(np.linalg.norm(res.normals[cov][:, :3], axis=1), 1, rtol=1e-5)
    r, c = np.nonzero(cov)
    d = np.stack([(c + 0.5 - cam.cx) / cam.fx, (r + 0.5 - cam.cy) / cam.fy, np.ones(r.size)], -1)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    np.testing.assert_allclose(res.normals[cov][:, 3], -(res.normals[cov][:, :3] * d).sum(1), atol=1e-5)
    if mesh_kind == "box":
        assert np.all(res.normals[cov & ~ref["edge"]][:, 3] > 0)


def test_flat_normal_and_shading_values(device):
    cam = Camera(16, 12, 20.0, 20.0, 8.0, 6.0)
    V = np.array([[-1, -1, 0], [1, -1, 0], [0, 1, 0]], np.float32)
    col = np.array([[0.5, 0.25, 1.0]] * 3)
    m = Mesh(V, [[0, 1, 2]], vertex_colors=col, class_index=5)
    light = Light(direction=(0.3, -0.4, -1.0), color=(0.9, 0.6, 0.3), ambient=(0.1, 0.2, 0.05))
    scene = Scene(cam, [SceneObject(m, pose(t=(0, 0, 2)))], light=light, background=(0.2, 0.4, 0.6))
    res = render(scene, device=device)
    cov = res.instance_index != 0
    assert cov.sum() > 20
    # winding (b - a) x (c - a) = +z, i.e. away from the camera: facing term negative
    np.testing.assert_allclose(res.normals[cov][:, :3], [[0, 0, 1]] * cov.sum(), atol=1e-7)
    assert np.all(res.normals[cov][:, 3] < 0)
    # two-sided Lambert: the camera-facing normal is -z
    lam = max(0.0, float(np.array([0, 0, -1.0]) @ light.direction))
    expect = np.floor(np.clip(col[0] * (light.ambient + light.color * lam), 0, 1) * 255 + 0.5)
    np.testing.assert_array_equal(res.rgb[cov][:, :3], np.broadcast_to(expect, (cov.sum(), 3)))
    np.testing.assert_array_equal(res.rgb[~cov], np.broadcast_to([51, 102, 153, 0], ((~cov).sum(), 4)))
    assert np.all(res.class_index[cov] == 5)


def test_smooth_normals_interpolated(device):
    cam = Camera(48, 40, 60.0, 60.0, 24.0, 20.0)
    m = Mesh.sphere(0.4, 24, 13)
    scene = Scene(cam, [SceneObject(m, pose(rot(0.2, 0.1, 0), (0, 0, 1.5)))])
    res = render(scene, device=device)
    cov = res.instance_index != 0
    # the interpolated sphere normal is close to the direction from the centre
    n_expect = res.cam_coordinates[cov][:, :3] - np.array([0, 0, 1.5])
    n_expect /= np.linalg.norm(n_expect, axis=1, keepdims=True)
    cosang = (res.normals[cov][:, :3] * n_expect).sum(1)
    assert cosang.min() > 0.98


# ---- coverage: no cracks, no double coverage --------------------------------------------------
def test_quad_of_two_triangles_exact_coverage(device):
    # fx = 1, cx = 0, Z = 1: image coordinates equal X, Y exactly. Corners at pixel centres.
    cam = Camera(16, 12, 1.0, 1.0, 0.0, 0.0)
    V = np.array([[0.5, 0.5, 1], [10.5, 0.5, 1], [10.5, 7.5, 1], [0.5, 7.5, 1]], np.float32)
    m = Mesh(V, [[0, 1, 2], [0, 2, 3]])
    masks = single_triangle_renders(cam, m, np.eye(4), device=device)
    count = masks.sum(0)
    expect = np.zeros((12, 16), int)
    expect[0:7, 0:10] = 1  # top-left rule: left column and top row in, right and bottom out
    np.testing.assert_array_equal(count, expect)
    full = render(Scene(cam, [SceneObject(m, np.eye(4))]), device=device)
    np.testing.assert_array_equal(full.instance_index != 0, expect.astype(bool))
    # the diagonal goes through pixel centres (c+0.5 = 0.5 + 10/7 k only at k = 0, 7); each is
    # assigned to exactly one of the two triangles
    assert masks[0].sum() + masks[1].sum() == 70


def test_pixel_centre_convention(device):
    cam = Camera(9, 7, 1.0, 1.0, 0.0, 0.0)
    # a small triangle around (u, v) = (5.5, 3.5): only pixel (row 3, col 5)
    V = np.array([[5.3, 3.3, 1], [5.8, 3.4, 1], [5.5, 3.8, 1]], np.float32)
    res = render(Scene(cam, [SceneObject(Mesh(V, [[0, 1, 2]]), np.eye(4))]), device=device)
    np.testing.assert_array_equal(np.argwhere(res.instance_index != 0), [[3, 5]])
    # shifted by half a pixel it covers no centre at all
    res = render(Scene(cam, [SceneObject(Mesh(V - [0.5, 0.5, 0], [[0, 1, 2]]), np.eye(4))]), device=device)
    assert not np.any(res.instance_index)


def _grid_mesh(rng, nx, ny, x0, y0, step, jitter):
    xs = x0 + step * np.arange(nx + 1)
    ys = y0 + step * np.arange(ny + 1)
    X, Y = np.meshgrid(xs, ys)
    P = np.stack([X, Y], -1).astype(np.float64)
    inner = np.zeros(P.shape[:2], bool)
    inner[1:-1, 1:-1] = True
    # interior vertices jitter on a quarter-pixel grid: many edges pass exactly through centres
    P[inner] += rng.integers(-2, 3, size=(inner.sum(), 2)) * 0.25 * jitter
    V = np.concatenate([P.reshape(-1, 2), np.ones(((nx + 1) * (ny + 1), 1))], 1)
    idx = np.arange((nx + 1) * (ny + 1)).reshape(ny + 1, nx + 1)
    faces = []
    for j in range(ny):
        for i in range(nx):
            a, b, c, d = idx[j, i], idx[j, i + 1], idx[j + 1, i + 1], idx[j + 1, i]
            if (i + j) % 2:
                faces += [[a, b, c], [a, c, d]]
            else:
                faces += [[a, b, d], [b, c, d]]
    faces = np.array(faces)
    flip = rng.random(len(faces)) < 0.5  # mixed winding must not matter
    faces[flip] = faces[flip][:, ::-1]
    return Mesh(V.astype(np.float32), faces)


@pytest.mark.parametrize("seed", [0, 1])
def test_grid_with_ties_is_partitioned(seed, device):
    rng = np.random.default_rng(seed)
    cam = Camera(37, 23, 1.0, 1.0, 0.0, 0.0)
    mesh = _grid_mesh(rng, 6, 4, 1.5, 0.5, 5.0, jitter=1.0)
    count = single_triangle_renders(cam, mesh, np.eye(4), device=device).sum(0)
    assert count.max() == 1  # never drawn twice
    # every pixel centre strictly inside the outer rectangle [1.5, 31.5] x [0.5, 20.5] is drawn
    u = np.arange(37) + 0.5
    v = np.arange(23) + 0.5
    inside = ((v[:, None] > 0.5) & (v[:, None] < 20.5)) & ((u[None, :] > 1.5) & (u[None, :] < 31.5))
    assert np.all(count[inside] == 1)
    # top/left border in, bottom/right out
    edge_in = ((v[:, None] == 0.5) & (u[None, :] >= 1.5) & (u[None, :] < 31.5)) | \
              ((u[None, :] == 1.5) & (v[:, None] >= 0.5) & (v[:, None] < 20.5))
    assert np.all(count[edge_in] == 1)
    assert count.sum() == 30 * 20
    full = render(Scene(cam, [SceneObject(mesh, np.eye(4))]), device=device)
    np.testing.assert_array_equal(full.instance_index != 0, count == 1)


@pytest.mark.parametrize("mesh_kind", ["sphere", "box"])
def test_closed_mesh_watertight(mesh_kind, device):
    """Seen from outside, front faces cover the silhouette exactly once, and so do back faces."""
    cam = Camera(40, 30, 45.0, 45.0, 19.7, 15.2)
    mesh = Mesh.sphere(0.35, 8, 5) if mesh_kind == "sphere" else Mesh.box((0.5, 0.4, 0.45))
    T = pose(rot(0.4, 0.7, -0.3), (0.02, 0.01, 1.3))
    masks = single_triangle_renders(cam, mesh, T, device=device)
    V = mesh.vertices.astype(np.float64) @ T[:3, :3].T + T[:3, 3]
    F = mesh.faces
    n = np.cross(V[F[:, 1]] - V[F[:, 0]], V[F[:, 2]] - V[F[:, 0]])
    front = np.einsum("ij,ij->i", n, V[F[:, 0]]) < 0
    fc, bc = masks[front].sum(0), masks[~front].sum(0)
    assert fc.max() == 1 and bc.max() == 1
    np.testing.assert_array_equal(fc, bc)
    full = render(Scene(cam, [SceneObject(mesh, T)]), device=device)
    np.testing.assert_array_equal(full.instance_index != 0, fc == 1)
    assert fc.sum() > 100
    # the visible face is always a front face
    assert np.all(front[full.triangle_id[full.instance_index != 0]])


# ---- visibility ----------------------------------------------------------------------------
def test_occlusion_order_independent_of_submission(device):
    cam = Camera(48, 36, 50.0, 50.0, 24.0, 18.0)
    near_box = SceneObject(Mesh.box(0.3), pose(rot(0.1, 0.2, 0), (0.05, 0, 1.0)), instance_index=4)
    far_box = SceneObject(Mesh.box(0.5), pose(rot(0, -0.3, 0.1), (-0.1, 0.05, 1.6)), instance_index=2)
    r1 = render(Scene(cam, [near_box, far_box]), device=device)
    r2 = render(Scene(cam, [far_box, near_box]), device=device)
    for name in ALL:
        np.testing.assert_array_equal(getattr(r1, name), getattr(r2, name))
    ids = set(np.unique(r1.instance_index).tolist())
    assert ids == {0, 2, 4}
    check_against_ray_cast(cam, Scene(cam, [near_box, far_box]), r1)


def test_equal_depth_first_object_wins(device):
    cam = Camera(32, 24, 30.0, 30.0, 16.0, 12.0)
    m = Mesh.sphere(0.3, 10, 6)
    T = pose(rot(0.3, 0.2, 0.1), (0, 0, 1.0))
    for first, second in [(7, 3), (3, 7)]:
        res = render(Scene(cam, [SceneObject(m, T, first), SceneObject(m, T.copy(), second)]), device=device)
        cov = res.instance_index != 0
        assert cov.sum() > 100 and np.all(res.instance_index[cov] == first)
    # coplanar overlapping triangles of one mesh: the earlier face wins
    V = np.array([[-1, -1, 1], [1, -1, 1], [0, 1, 1]], np.float32)
    two = Mesh(np.concatenate([V, V]), [[0, 1, 2], [3, 4, 5]])
    res = render(Scene(cam, [SceneObject(two, np.eye(4))]), device=device)
    cov = res.instance_index != 0
    assert cov.sum() > 50 and np.all(res.triangle_id[cov] == 0)


def test_instance_and_class_buffers(device):
    cam = Camera(40, 20, 40.0, 40.0, 20.0, 10.0)
    a = SceneObject(Mesh.box(0.3, class_index=11), pose(t=(-0.3, 0, 1)))
    b = SceneObject(Mesh.box(0.3, class_index=12), pose(t=(0.3, 0, 1)), instance_index=32767)
    res = render(Scene(cam, [a, b]), device=device)
    assert set(np.unique(res.instance_index).tolist()) == {0, 1, 32767}
    np.testing.assert_array_equal(res.class_index[res.instance_index == 1], 11)
    np.testing.assert_array_equal(res.class_index[res.instance_index == 32767], 12)


# ---- image sizes and clipping ----------------------------------------------------------------
@pytest.mark.parametrize("size", [(37, 23), (1, 1), (17, 1), (1, 33), (50, 40)])
def test_odd_image_sizes(size, device):
    W, H = size
    cam = Camera(W, H, 30.0, 30.0, W / 2 + 0.1, H / 2 - 0.2)
    scene = Scene(cam, [SceneObject(Mesh.sphere(0.5, 10, 6), pose(rot(0.2, 0.3, 0), (0.0, 0.0, 1.0)))])
    res = render(scene, device=device)
    for name in ALL:
        assert getattr(res, name).shape[:2] == (H, W)
    ref = ray_cast(cam, scene.objects)
    cov = res.instance_index != 0
    assert not np.any((cov != np.isfinite(ref["depth"])) & ~ref["edge"])
    sure = cov & ~ref["edge"]
    np.testing.assert_allclose(res.depth[sure], ref["depth"][sure], rtol=1e-5)
    if (W, H) == (1, 1):
        assert cov[0, 0]


def test_objects_behind_or_outside_draw_nothing(device):
    cam = Camera(32, 24, 30.0, 30.0, 16.0, 12.0)
    m = Mesh.sphere(0.2, 8, 5)
    objs = [SceneObject(m, pose(t=(0, 0, -1.0))),     # behind the camera
            SceneObject(m, pose(t=(5.0, 0, 1.0))),     # off to the side
            SceneObject(m, pose(t=(0, 0, 20.0))),      # beyond far = 10
            SceneObject(Mesh(np.zeros((0, 3)), np.zeros((0, 3), int)), np.eye(4)),  # no faces
            SceneObject(Mesh.sphere(0.05, 8, 5), pose(t=(0, 0, 1e-3)))]  # around the eye, closer than near
    res = render(Scene(cam, objs), device=device)
    assert not np.any(res.instance_index)
    check_background(res)
    empty = render(Scene(cam, []), device=device)
    for name in ALL:
        np.testing.assert_array_equal(getattr(res, name), getattr(empty, name))


def test_near_plane_clipping(device):
    cam = Camera(48, 36, 40.0, 40.0, 24.0, 18.0, near=0.5, far=10.0)
    # a tilted quad from Z = -1 (behind the camera) to Z = 3, below the optical axis
    V = np.array([[-2, 0.4, -1], [2, 0.4, -1], [2, 0.2, 3], [-2, 0.2, 3]], np.float32)
    quad = Mesh(V, [[0, 1, 2], [0, 2, 3]])
    # and a sphere cut by the near plane
    sph = Mesh.sphere(0.4, 16, 9)
    scene = Scene(cam, [SceneObject(quad, np.eye(4)), SceneObject(sph, pose(t=(0.05, -0.2, 0.6)))])
    res = render(scene, device=device)
    cov = res.instance_index != 0
    assert cov.sum() > 200
    assert res.depth[cov].min() >= 0.5 * (1 - 1e-6)
    check_against_ray_cast(cam, scene, res)
    # the near plane cuts the sphere open: some pixels see its inside (back faces)
    inside_view = (res.instance_index == 2) & (res.normals[..., 3] < 0)
    assert inside_view.sum() > 10


def test_far_plane(device):
    cam = Camera(32, 24, 20.0, 20.0, 16.0, 12.0, near=0.1, far=2.0)
    V = np.array([[-1, -0.5, 1], [1, -0.5, 1], [1, 0.5, 3], [-1, 0.5, 3]], np.float32)
    scene = Scene(cam, [SceneObject(Mesh(V, [[0, 1, 2], [0, 2, 3]]), np.eye(4))])
    res = render(scene, device=device)
    cov = res.instance_index != 0
    assert cov.any() and res.depth[cov].max() <= 2.0
    check_against_ray_cast(cam, scene, res)


def test_huge_ground_plane_guard_band(device):
    cam = Camera(40, 30, 30.0, 30.0, 20.0, 15.0, near=0.1, far=50.0)
    # y is down: a floor 1 m below the camera, extending 1e5 m in every direction
    L = 1e5
    V = np.array([[-L, 1, -L], [L, 1, -L], [L, 1, L], [-L, 1, L]], np.float32)
    floor = Mesh(V, [[0, 1, 2], [0, 2, 3]])
    scene = Scene(cam, [SceneObject(floor, np.eye(4))])
    res = render(scene, device=device)
    v = np.arange(30) + 0.5
    dy = (v - 15.0) / 30.0
    with np.errstate(divide="ignore"):
        Z = np.where(dy > 0, 1 / dy, np.inf)
    expect_rows = (Z >= 0.1) & (Z <= 50.0)
    np.testing.assert_array_equal((res.instance_index != 0).all(1), expect_rows)
    np.testing.assert_array_equal((res.instance_index != 0).any(1), expect_rows)
    np.testing.assert_allclose(res.depth[expect_rows], np.broadcast_to(Z[expect_rows, None], (expect_rows.sum(), 40)),
                               rtol=1e-5)


def test_camera_pose_is_applied(device):
    cam = Camera(48, 36, 50.0, 50.0, 24.0, 18.0)
    m = Mesh.sphere(0.3, 12, 7)
    cam_pose = pose(rot(0.1, -0.2, 0.05), (0.3, -0.1, -0.5))
    obj_pose = pose(rot(0.5, 0.1, 0.2), (0.2, -0.1, 0.8))
    scene = Scene(cam, [SceneObject(m, obj_pose)], camera_pose=cam_pose)
    res = render(scene, device=device)
    check_against_ray_cast(cam, scene, res)
    moved = render(Scene(cam, [SceneObject(m, np.linalg.inv(cam_pose) @ obj_pose)]), device=device)
    cov = (res.instance_index != 0) & (moved.instance_index != 0)
    assert cov.sum() > 200
    np.testing.assert_allclose(res.depth[cov], moved.depth[cov], rtol=1e-6)


# ---- determinism, options, errors ---------------------------------------------------------
def test_thread_count_bitwise_equal(device):
    cam = Camera(80, 60, 80.0, 80.0, 40.3, 29.8)
    rng = np.random.default_rng(3)
    m = Mesh.sphere(0.08, 20, 11)
    objs = [SceneObject(m, pose(rot(*rng.uniform(-1, 1, 3)), (rng.uniform(-0.3, 0.3), rng.uniform(-0.2, 0.2),
                                                          rng.uniform(0.5, 1.2)))) for _ in range(12)]
    objs.append(SceneObject(Mesh.box(0.1), pose(rot(0.3, 0.3, 0.3), (0.08, 0.06, 0.1))))  # crosses near
    scene = Scene(cam, objs)
    results = [render(scene, num_threads=n, device=device) for n in (1, 2, 3, 5)]
    for r in results[1:]:
        for name in ALL:
            np.testing.assert_array_equal(getattr(r, name), getattr(results[0], name), err_msg=name)
    assert len(np.unique(results[0].instance_index)) > 6 and np.any(results[0].instance_index == 13)


def test_gradient_buffers_only(device):
    cam = Camera(32, 24, 30.0, 30.0, 16.0, 12.0)
    scene = Scene(cam, [SceneObject(Mesh.sphere(0.3, 8, 5), pose(t=(0, 0, 1)))])
    full = render(scene, device=device)
    small = render(scene, buffers="gradient", device=device)
    for name in ("rgb", "depth", "instance_index", "object_coordinates"):
        np.testing.assert_array_equal(getattr(small, name), getattr(full, name))
    for name in ("cam_coordinates", "normals", "class_index", "triangle_id", "barycentrics"):
        assert getattr(small, name) is None
    some = render(scene, buffers=["triangle_id"], device=device)
    np.testing.assert_array_equal(some.triangle_id, full.triangle_id)
    assert some.normals is None


def test_bad_inputs(device):
    cam = Camera(8, 6, 10.0, 10.0, 4.0, 3.0)
    with pytest.raises(TypeError, match="scene"):
        render(None, device=device)
    with pytest.raises(TypeError, match="scene"):
        render(cam, device=device)
    with pytest.raises(ValueError, match=r"scene.objects\[1\] has no mesh"):
        render(Scene(cam, [SceneObject(Mesh.box(0.1), pose()), SceneObject(None, pose())]), device=device)
    with pytest.raises(ValueError, match="num_threads"):
        render(Scene(cam), num_threads=0, device=device)
    with pytest.raises(TypeError, match="num_threads"):
        render(Scene(cam), num_threads="2", device=device)
    with pytest.raises(ValueError, match="buffers"):
        render(Scene(cam), buffers="most", device=device)
    with pytest.raises(ValueError, match="buffers"):
        render(Scene(cam), buffers=["depth_map"], device=device)
    singular = np.eye(4)
    singular[2, 2] = 0
    with pytest.raises(ValueError, match="camera_pose"):
        render(Scene(cam, camera_pose=singular), device=device)
    projective = pose()
    projective[3, 2] = 0.5
    with pytest.raises(ValueError, match=r"objects\[0\].pose must be affine"):
        render(Scene(cam, [SceneObject(Mesh.box(0.1), projective)]), device=device)
    huge = pose()
    huge[:3, :3] *= 1e300
    with pytest.raises(ValueError, match=r"objects\[0\]"):
        render(Scene(cam, [SceneObject(Mesh.box(1e10), huge)]), device=device)


def test_concurrent_calls_and_cache_release(device):
    """Two Python threads rendering at once (one uses the cached scratch memory, the other its
    own) give the same buffers as sequential calls; releasing the cache changes nothing."""
    import threading

    from geomops.pose import release_render_cache

    cam = Camera(64, 48, 60.0, 60.0, 32.0, 24.0)
    scenes = [Scene(cam, [SceneObject(Mesh.sphere(0.2, 16, 9), pose(rot(0.1 * k, 0.2, 0), (0.05 * k, 0, 1.0)))])
              for k in range(4)]
    expect = [render(s, num_threads=1, device=device) for s in scenes]
    got = [None] * len(scenes)

    def work(k):
        for _ in range(5):
            got[k] = render(scenes[k], num_threads=2, device=device)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(scenes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e, g in zip(expect, got):
        for name in ALL:
            np.testing.assert_array_equal(getattr(g, name), getattr(e, name))
    release_render_cache()
    again = render(scenes[0], device=device)
    for name in ALL:
        np.testing.assert_array_equal(getattr(again, name), getattr(expect[0], name))


def test_host_buffers_reused_only_when_dropped():
    """CPU frames reuse the memory of the previous frame only once none of its buffers (nor a
    view of one) is referenced any more: a kept frame is never overwritten."""
    from geomops.pose import release_render_cache

    cam = Camera(64, 48, 60.0, 60.0, 32.0, 24.0)
    scenes = [Scene(cam, [SceneObject(Mesh.sphere(0.2, 16, 9), pose(rot(0.3 * k, 0.2, 0), (0.1 * k, 0, 1.0)))])
              for k in range(2)]
    first = render_on_device(scenes[0], num_threads=1)
    saved = {name: getattr(first, name).copy() for name in ALL}
    addr = first.depth.ctypes.data
    second = render_on_device(scenes[1], num_threads=1)  # the first frame is alive: fresh memory
    assert second.depth.ctypes.data != addr
    view = first.normals[1:, 2]  # a view of one buffer keeps the whole frame
    del first
    third = render_on_device(scenes[1], num_threads=1)
    assert third.depth.ctypes.data != addr
    np.testing.assert_array_equal(view, saved["normals"][1:, 2])
    addr = third.depth.ctypes.data
    del view, second, third
    fourth = render_on_device(scenes[0], num_threads=1)  # the third's frame is free: reused
    assert fourth.depth.ctypes.data == addr
    for name in ALL:
        np.testing.assert_array_equal(getattr(fourth, name), saved[name])
    release_render_cache()
    fifth = render_on_device(scenes[0], num_threads=1, buffers="gradient")
    assert fifth.normals is None
    np.testing.assert_array_equal(fifth.depth, saved["depth"])


def test_object_to_camera_is_one_formula(device, monkeypatch):
    """render, the exact-mode gradients and Scene.object_to_camera use the same object-to-camera
    transform, bit for bit (a rotated camera pose, where different inverses differ in the last
    bits); compat mode passes the float32-rounded pose and ignores the camera pose."""
    from geomops import _backend
    from geomops._device import DeviceArray
    from geomops.pose import backpropagate_gradient_to_poses

    seen = {}

    class Recorder:
        """The binding module, recording the arguments of its kernel functions (device arrays as
        host copies, taken when the call is made)."""

        def __init__(self, kernels):
            self._kernels = kernels

        def __getattr__(self, name):
            fn = getattr(self._kernels, name)
            if not callable(fn) or isinstance(fn, type):
                return fn

            def call(*args, **kwargs):
                seen.setdefault(name, []).append(tuple(a.get() if isinstance(a, DeviceArray) else a for a in args))
                return fn(*args, **kwargs)
            return call

    real_resolve, real_cuda_backend = _backend.resolve, _backend._cuda_backend

    def recording(be):
        return be if isinstance(be.kernels, Recorder) else _backend.Backend(be.name, be.device_id,
                                                                          Recorder(be.kernels))

    def recording_resolve(device=None):
        return recording(real_resolve(device))

    def recording_cuda_backend(device, ordinal, module=None):  # resolve's, and that of device inputs
        return recording(real_cuda_backend(device, ordinal, module))

    monkeypatch.setattr(_backend, "resolve", recording_resolve)
    monkeypatch.setattr(_backend, "_cuda_backend", recording_cuda_backend)
    cam = Camera(40, 30, 45.0, 45.0, 19.7, 15.2)
    cam_pose = pose(rot(0.3, -0.2, 0.4), (0.1, -0.05, 0.2))
    objs = [SceneObject(Mesh.sphere(0.2, 12, 7), cam_pose @ pose(rot(0.1, 0.2, 0.3), (0.1, 0.0, 1.2))),
            SceneObject(Mesh.box(0.2), cam_pose @ pose(rot(-0.2, 0.1, 0.5), (-0.15, 0.05, 1.4)))]
    scene = Scene(cam, objs, camera_pose=cam_pose)
    buf = render_on_device(scene, device=device)
    g = np.random.default_rng(0).standard_normal((3, 30, 40))
    if buf.device != "cpu":  # the gradients run where the buffers are
        g = _backend.resolve(device).from_host(g)
    backpropagate_gradient_to_poses(scene, buf, g, mode="exact", device=device)
    backpropagate_gradient_to_poses(scene, buf, g, mode="compat", device=device)
    (render_args,) = seen["raster_render"]
    exact_args, compat_args = seen["posegrad_backprop"]
    for k, obj in enumerate(objs):
        T = scene.object_to_camera(k)
        assert T.dtype == np.float64 and T.shape == (4, 4)
        assert np.asarray(render_args[2][k][4]).tobytes() == T[:3].tobytes()
        assert exact_args[9][k].tobytes() == np.concatenate([T[:3, :3].ravel(), T[:3, 3]]).tobytes()
        P = obj.pose.astype(np.float32).astype(np.float64)
        assert compat_args[9][k].tobytes() == np.concatenate([P[:3, :3].ravel(), P[:3, 3]]).tobytes()
    np.testing.assert_allclose(scene.object_to_camera(0), np.linalg.inv(cam_pose) @ objs[0].pose, atol=1e-12)


def test_device_argument():
    scene = Scene(Camera(8, 6, 10.0, 10.0, 4.0, 3.0), [SceneObject(Mesh.box(0.1), pose())])
    np.testing.assert_array_equal(render(scene, device="cpu").rgb, render(scene).rgb)
    with pytest.raises(TypeError, match="device"):
        render(scene, device=0)
    with pytest.raises(ValueError, match="device"):
        render(None, device="gpu")  # the device is checked first
    with pytest.raises(TypeError):
        render(scene, None, "all", "cpu")  # keyword-only
