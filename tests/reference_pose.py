"""Independent NumPy reference of stillleben.diff (spec/pose_gradient.md sections 3-6 and 10).

Written from the spec, structured like the original: one whole-image pass per object, explicit
Jacobian matrices and rotation generators, float64 math (the image gradients in float32 as
stillleben computes them). Vectorised over pixels, so the benchmark uses it as its NumPy peer.
It shares no code with geomops' kernels.
"""

from __future__ import annotations

import numpy as np

# Rotation generators of D(delta) (spec section 5e).
G_ALPHA = np.array([[0, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=np.float64)
G_BETA = np.array([[0, 0, 1], [0, 0, 0], [-1, 0, 0]], dtype=np.float64)
G_GAMMA = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 0]], dtype=np.float64)

# Scan orders of stillleben's dilation helpers (spec section 4): the last object neighbour wins.
SCAN_CUDA = [(dy, dx) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]  # column offset outside
SCAN_CPU = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]  # row offset outside


def stillleben_projection(fx, fy, cx, cy, width, height, near=0.1, far=10.0):
    """stillleben's float32 frustum sequence (spec Corrections #3), row-major (4, 4) float32."""
    f32 = np.float32
    n, f = f32(near), f32(far)
    left = -f32(cx) * n / f32(fx)
    right = (f32(width) - f32(cx)) * n / f32(fx)
    top = -f32(cy) * n / f32(fy)
    bottom = (f32(height) - f32(cy)) * n / f32(fy)
    P = np.zeros((4, 4), dtype=np.float32)
    P[0, 0] = f32(2) * n / (right - left)
    P[0, 2] = (right + left) / (left - right)
    P[1, 1] = f32(2) * n / (bottom - top)
    P[1, 2] = (bottom + top) / (top - bottom)
    P[2, 2] = (f + n) / (f - n)
    P[2, 3] = (f32(2) * f * n) / (n - f)
    P[3, 2] = f32(1)
    return P


def intensity(rgb):
    """I = rgb[..., :3] / 255 in float32, as (3, H, W)."""
    if rgb.dtype == np.uint8:
        img = rgb[..., :3].astype(np.float32) / np.float32(255.0)
    else:
        img = rgb[..., :3].astype(np.float32)
    return np.transpose(img, (2, 0, 1))


def image_gradients(rgb, inst, depth, border="zero", semantics="cuda"):
    """(grad_x, grad_y, valid) of spec section 3, zeroed where invalid."""
    img = intensity(rgb)
    _, h, w = img.shape
    wx = np.float32(1) / np.float32(4.0 / w)
    wy = np.float32(1) / np.float32(4.0 / h)
    mode = {"zero": "constant", "replicate": "edge"}[border]
    pad = np.pad(img, ((0, 0), (1, 1), (1, 1)), mode=mode)
    gx = wx * pad[:, 1:-1, :-2] - wx * pad[:, 1:-1, 2:]
    gy = wy * pad[:, :-2, 1:-1] - wy * pad[:, 2:, 1:-1]
    valid = valid_mask(inst, depth, semantics)
    gx = np.where(valid, gx, np.float32(0)).astype(np.float32)
    gy = np.where(valid, gy, np.float32(0)).astype(np.float32)
    return gx, gy, valid


def valid_mask(inst, depth, semantics="cuda"):
    """generate_sobel_valid_mask (spec sections 3.3 and 4)."""
    h, w = inst.shape
    pi = np.pad(inst, 1, mode="edge")  # clamped neighbours
    pd = np.pad(depth, 1, mode="edge")
    invalid = np.zeros((h, w), dtype=bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            qi = pi[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
            qd = pd[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
            invalid |= (inst != 0) & (qi != inst) & (qi != 0) & (qd < depth)
    if semantics == "cpu":  # the CPU helper visits only interior pixels
        invalid[0, :] = invalid[-1, :] = False
        invalid[:, 0] = invalid[:, -1] = False
    return ~invalid


def dilate_object_mask(obj, valid, coords, semantics="cuda"):
    """dilate_object_mask (spec section 4): the grown mask and the (borrowed) coordinates."""
    h, w = obj.shape
    po = np.pad(obj, 1, mode="edge")
    pv = np.pad(valid, 1, mode="edge")
    pc = np.pad(coords, ((1, 1), (1, 1), (0, 0)), mode="edge")
    found = np.zeros((h, w), dtype=bool)
    all_valid = np.ones((h, w), dtype=bool)
    borrowed = np.zeros((h, w, 3), dtype=coords.dtype)
    for dy, dx in (SCAN_CUDA if semantics == "cuda" else SCAN_CPU):
        qo = po[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
        all_valid &= pv[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
        found |= qo
        borrowed = np.where(qo[..., None], pc[1 + dy:1 + dy + h, 1 + dx:1 + dx + w], borrowed)
    mask = obj | (found & all_valid)
    out = np.where(obj[..., None], coords, borrowed)
    if semantics == "cpu":  # border output pixels keep their zero initialisation
        mask = mask.copy()
        mask[0, :] = mask[-1, :] = False
        mask[:, 0] = mask[:, -1] = False
    return mask, out


def object_masks(inst, depth, coords, ids, semantics="cuda"):
    valid = valid_mask(inst, depth, semantics)
    return np.stack([dilate_object_mask(inst == i, valid, coords, semantics)[0] for i in ids]) \
        if len(ids) else np.zeros((0,) + inst.shape, dtype=bool)


def backprop(P, poses, ids, rgb, inst, depth, coords, g, mode="compat", semantics="cuda", border=None,
             camera_pose=None, return_contributions=False):
    """backpropagate_gradient_to_poses (spec sections 5 and 10), float64 (N, 6)."""
    if border is None:
        border = "zero" if mode == "compat" else "replicate"
    gx, gy, valid = image_gradients(rgb, inst, depth, border, semantics)
    h, w = inst.shape
    P = np.asarray(P, dtype=np.float64)
    drow = 2 if mode == "compat" else 3
    cam_inv = np.eye(4)
    if mode == "exact" and camera_pose is not None:
        cam_inv = np.linalg.inv(np.asarray(camera_pose, dtype=np.float64))
    g = np.asarray(g, dtype=np.float64).reshape(3, h * w)
    gimg = np.stack([gx.reshape(3, -1), gy.reshape(3, -1)], axis=2).astype(np.float64)  # (3, HW, 2)
    out = np.zeros((len(ids), 6))
    contrib = np.zeros((len(ids), 6, h * w))
    for k, (pose, oid) in enumerate(zip(poses, ids)):
        mask, X = dilate_object_mask(inst == oid, valid, coords, semantics)
        sel = np.flatnonzero(mask.ravel())
        if sel.size == 0:
            continue
        T = cam_inv @ np.asarray(pose, dtype=np.float64)
        Xh = np.concatenate([X.reshape(-1, 3)[sel].astype(np.float64), np.ones((sel.size, 1))], axis=1)
        y = Xh @ T.T  # (M, 4), w = 1
        clip = y @ P.T  # (M, 4)
        d = clip[:, drow]
        J = np.empty((sel.size, 2, 3))
        for j in range(2):
            for i in range(3):
                J[:, j, i] = P[j, i] / d - P[drow, i] * clip[:, j] / d ** 2
        R = T[:3, :3]
        Xo = Xh[:, :3]
        dyd = np.empty((sel.size, 3, 6))
        for e, G in enumerate((G_ALPHA, G_BETA, G_GAMMA)):
            dyd[:, :, e] = (Xo @ G.T) @ R.T
        dyd[:, :, 3:] = R[None]
        A = np.einsum("cmj,mji,mie->cme", gimg[:, sel], J, dyd)  # (3, M, 6)
        per_pixel = np.einsum("cm,cme->me", g[:, sel], A)
        out[k] = per_pixel.sum(axis=0)
        contrib[k][:, sel] = per_pixel.T
    if return_contributions:
        return out, contrib.reshape(len(ids), 6, h, w)
    return out


def pose_delta_matrix(delta):
    al, be, ga, a, b, c = (float(v) for v in delta)
    return np.array([[1, -ga, be, a], [ga, 1, -al, b], [-be, al, 1, c], [0, 0, 0, 1]], dtype=np.float64)


def apply_pose_delta(pose, delta, orthonormalize=True):
    """Section 6 with a polar decomposition R (R^T R)^(-1/2) instead of an SVD (same matrix)."""
    new = np.asarray(pose, dtype=np.float64) @ pose_delta_matrix(delta)
    if orthonormalize:
        R = new[:3, :3]
        evals, evecs = np.linalg.eigh(R.T @ R)
        new[:3, :3] = R @ (evecs @ np.diag(evals ** -0.5) @ evecs.T)
    return new


# ----------------------------------------------------------------------------------------------
# Test scenes that need no rasterizer: duck-typed stand-ins and an analytic sphere ray-caster.

class Camera:
    """Minimal pinhole camera with stillleben's projection matrix."""

    def __init__(self, width, height, fx, fy, cx, cy, near=0.1, far=10.0):
        self.width, self.height = width, height
        self.fx, self.fy, self.cx, self.cy, self.near, self.far = fx, fy, cx, cy, near, far

    def projection_matrix(self):
        return stillleben_projection(self.fx, self.fy, self.cx, self.cy, self.width, self.height,
                                     self.near, self.far)


class Obj:
    def __init__(self, pose, instance_index, radius=0.1):
        self.pose = np.asarray(pose, dtype=np.float32)
        self.instance_index = instance_index
        self.radius = radius


class Scene:
    def __init__(self, camera, objects, camera_pose=None):
        self.camera, self.objects, self.camera_pose = camera, list(objects), camera_pose


class Buffers:
    def __init__(self, rgb, depth, instance_index, object_coordinates):
        self.rgb, self.depth = rgb, depth
        self.instance_index, self.object_coordinates = instance_index, object_coordinates


def texture(X, s=40.0):
    """A smooth colour pattern on object coordinates (metres), values in [0, 1]; s in rad/m."""
    return np.stack([0.5 + 0.4 * np.sin(s * X[..., 0] + 1.0) * np.cos(s * X[..., 1]),
                     0.5 + 0.4 * np.sin(s * X[..., 1] - 0.5 * s * X[..., 2]),
                     0.5 + 0.4 * np.cos(s * X[..., 2] + 0.7 * s * X[..., 0])], axis=-1)


def raycast_spheres(scene, background=0.0, quantize=True, frequency=40.0):
    """Ray-cast textured spheres (Obj.radius) at pixel centres u = c + 0.5, v = r + 0.5."""
    cam = scene.camera
    h, w = cam.height, cam.width
    v, u = np.mgrid[0:h, 0:w] + 0.5
    dirs = np.stack([(u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy, np.ones_like(u)], axis=-1)
    cam_inv = np.eye(4) if scene.camera_pose is None else np.linalg.inv(np.asarray(scene.camera_pose, float))
    depth = np.full((h, w), 3000.0)
    inst = np.zeros((h, w), dtype=np.int16)
    coords = np.full((h, w, 3), 3000.0)
    for obj in scene.objects:
        T = cam_inv @ np.asarray(obj.pose, dtype=np.float64)
        centre = T[:3, 3]
        b = dirs @ centre
        dd = np.sum(dirs * dirs, axis=-1)
        disc = b * b - dd * (centre @ centre - obj.radius ** 2)
        sq = np.sqrt(np.maximum(disc, 0.0))
        t = (b - sq) / dd
        t = np.where(t > cam.near, t, (b + sq) / dd)  # the far side when the camera is inside
        hit = (disc > 0) & (t > cam.near) & (t < depth)  # z = t since dirs have z = 1
        pts = dirs * t[..., None]
        X = (pts - centre) @ T[:3, :3]  # inv(R) (p - c)
        depth = np.where(hit, t, depth)
        inst = np.where(hit, np.int16(obj.instance_index), inst)
        coords = np.where(hit[..., None], X, coords)
    fg = (inst != 0)[..., None]
    col = np.where(fg, texture(np.where(fg, coords, 0.0), frequency), background)
    rgb = np.concatenate([col, np.ones((h, w, 1))], axis=-1)
    rgb = np.round(rgb * 255).astype(np.uint8) if quantize else rgb.astype(np.float32)
    return Buffers(rgb, depth.astype(np.float32), inst.astype(np.int16), coords.astype(np.float32))


def pose_matrix(rx=0.0, ry=0.0, rz=0.0, t=(0.0, 0.0, 0.5), dtype=np.float32):
    """Rotation Rz @ Ry @ Rx (radians) and translation t."""
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    Rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    Ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    Rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    T = np.eye(4)
    T[:3, :3] = Rz @ Ry @ Rx
    T[:3, 3] = t
    return T.astype(dtype)


def random_buffers(rng, h, w, n_ids, coverage=0.6, rgb_channels=4):
    """Blocky random buffers (rectangles of ids at random depths) with random rgb and coordinates:
    not geometrically consistent, but they exercise every mask/dilation case."""
    inst = np.zeros((h, w), dtype=np.int16)
    depth = np.full((h, w), 3000.0, dtype=np.float32)
    for _ in range(max(1, int(coverage * 6))):
        for oid in range(1, n_ids + 1):
            r0, c0 = rng.integers(0, h), rng.integers(0, w)
            r1, c1 = min(h, r0 + rng.integers(1, max(2, h // 2))), min(w, c0 + rng.integers(1, max(2, w // 2)))
            z = np.float32(rng.uniform(0.3, 2.0))
            inst[r0:r1, c0:c1] = oid
            depth[r0:r1, c0:c1] = z
    # sprinkle single pixels to create ties, islands and neighbours of several ids
    k = max(1, h * w // 20)
    rr, cc = rng.integers(0, h, k), rng.integers(0, w, k)
    inst[rr, cc] = rng.integers(0, n_ids + 1, k).astype(np.int16)
    depth[rr, cc] = np.where(inst[rr, cc] > 0, rng.choice([0.5, 1.0, 1.5], k), 3000.0).astype(np.float32)
    coords = rng.uniform(-0.1, 0.1, (h, w, 3)).astype(np.float32)
    coords[inst == 0] = 3000.0
    rgb = rng.integers(0, 256, (h, w, rgb_channels)).astype(np.uint8)
    return Buffers(rgb, depth, inst, coords)
