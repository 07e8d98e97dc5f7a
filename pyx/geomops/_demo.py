"""``python -m geomops demo``: the library end to end on generated data, with timings."""

from __future__ import annotations

import time
from typing import Optional

import numpy as np


def _timed(label, fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    dt = time.perf_counter() - t0
    print(f"  {label:<44s} {dt * 1e3:9.1f} ms")
    return out, dt


def _point_cloud(rng, n, dtype):
    """Points on a noisy torus inside the unit cube, with smooth features."""
    t, s = rng.uniform(0, 2 * np.pi, (2, n))
    R, r = 0.3, 0.12
    pts = np.stack([(R + r * np.cos(s)) * np.cos(t), (R + r * np.cos(s)) * np.sin(t), r * np.sin(s)], 1)
    pts += 0.5 + rng.normal(scale=0.005, size=pts.shape)
    return pts.astype(dtype)


def cconv_demo(num_points=20000, num_threads=None, dtype=np.float32):
    import geomops
    rng = np.random.default_rng(0)
    print(f"Continuous convolution on a {num_points}-point cloud ({np.dtype(dtype).name}, "
          f"{geomops.get_num_threads() if num_threads is None else num_threads} threads)")
    pts = _point_cloud(rng, num_points, dtype)
    radius = 0.03
    cin, cout = 8, 16
    feats = np.concatenate([np.sin(8 * pts), np.cos(8 * pts), np.ones((num_points, 2))], 1).astype(dtype)
    nb, _ = _timed("fixed_radius_search (r = 0.03)", geomops.fixed_radius_search, pts, pts, radius,
                   num_threads=num_threads)
    counts = np.diff(nb.neighbors_row_splits)
    print(f"    {nb.neighbors_index.size} neighbor pairs, {counts.mean():.1f} per point (min {counts.min()}, "
          f"max {counts.max()})")
    extents = np.array([[2 * radius]], dtype)
    offset = np.zeros(3, dtype)
    common = dict(num_threads=num_threads, normalize=True)
    args = lambda f: (f, pts, extents, offset, pts, feats, None, nb.neighbors_index, None,  # noqa: E731
                      nb.neighbors_row_splits)

    # Fit a filter to reproduce the output of a hidden one, by gradient descent.
    hidden = rng.normal(scale=0.3, size=(3, 3, 3, cin, cout)).astype(dtype)
    target, _ = _timed("continuous_conv forward (3x3x3, 8 -> 16 ch)", geomops.continuous_conv,
                       *args(hidden), **common)
    guess = (0.5 * hidden).astype(dtype)
    out = geomops.continuous_conv(*args(guess), **common)
    grads, _ = _timed("continuous_conv_backward (filters + features)", geomops.continuous_conv_backward,
                      *args(guess), (out - target) / num_points, **common)
    filters = np.zeros_like(hidden)
    print(f"    |d filters| = {np.linalg.norm(grads.filters):.3e}, "
          f"|d features| = {np.linalg.norm(grads.inp_features):.3e}")
    print("  fitting the filter to the hidden one with gradient descent (loss = mean squared error):")
    lr = 2.0
    losses = []
    t0 = time.perf_counter()
    for step in range(12):
        out = geomops.continuous_conv(*args(filters), **common)
        diff = out - target
        losses.append(float(np.mean(diff.astype(np.float64) ** 2)))
        g = geomops.continuous_conv_backprop_filter(*args(filters), 2 * diff / diff.size * cout, **common)
        filters = filters - lr * g
        if step % 3 == 0 or step == 11:
            print(f"    step {step:2d}: loss {losses[-1]:.4e}")
    dt = time.perf_counter() - t0
    print(f"    12 steps in {dt:.2f} s; loss reduced {losses[0] / losses[-1]:.1f}x")
    return losses


def _rotation(rx, ry, rz):
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    Rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    Ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    Rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


def pose_demo(num_threads=None, iterations=80):
    """Render-and-compare pose refinement of a coloured box with the software rasterizer."""
    from geomops import pose
    print("\nRender-and-compare pose refinement (software rasterizer, 160x120, exact gradients)")
    s = 160 / 640
    cam = pose.Camera(160, 120, 1066.778 * s, 1067.487 * s, 312.9869 * s, 241.3109 * s)
    mesh = pose.Mesh.box((0.12, 0.1, 0.08))
    true_pose = np.eye(4)
    true_pose[:3, :3] = _rotation(0.5, -0.4, 0.3)
    true_pose[:3, 3] = (0.01, -0.01, 0.5)
    signs = np.random.default_rng(0).choice([-1, 1], 6)
    current = pose.apply_pose_delta(true_pose, signs * np.array([0.15, 0.1, 0.12, 0.015, 0.01, 0.03]))

    def scene_at(p):
        return pose.Scene(cam, [pose.SceneObject(mesh, p)], background=(0.2, 0.3, 0.4))

    target = pose.render(scene_at(true_pose), num_threads=num_threads).rgb[..., :3] / 255.0
    # Adam-scaled steps: rotation and translation gradients differ by orders of magnitude
    base = np.array([0.01] * 3 + [0.003] * 3)
    m, v = np.zeros(6), np.zeros(6)
    t_render = t_grad = 0.0
    for it in range(iterations):
        scene = scene_at(current)
        t0 = time.perf_counter()
        rr = pose.render(scene, num_threads=num_threads)
        t1 = time.perf_counter()
        diff = rr.rgb[..., :3] / 255.0 - target
        g = pose.backpropagate_gradient_to_poses(scene, rr, np.ascontiguousarray(diff.transpose(2, 0, 1)),
                                                 num_threads=num_threads)[0].astype(np.float64)
        t_render += t1 - t0
        t_grad += time.perf_counter() - t1
        dR = true_pose[:3, :3].T @ current[:3, :3]
        rot = np.degrees(np.arccos(np.clip((np.trace(dR) - 1) / 2, -1, 1)))
        trans = 1000 * np.linalg.norm(current[:3, 3] - true_pose[:3, 3])
        if it % 20 == 0 or it == iterations - 1:
            print(f"    step {it:2d}: loss {0.5 * np.sum(diff ** 2):8.3f}, rotation error {rot:6.2f} deg, "
                  f"translation error {trans:6.2f} mm")
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        step = base * 0.985 ** it * (m / (1 - 0.9 ** (it + 1))) / (np.sqrt(v / (1 - 0.999 ** (it + 1))) + 1e-12)
        current = pose.apply_pose_delta(current, -step)
    print(f"    per step: render {t_render / iterations * 1e3:.2f} ms, "
          f"pose gradient {t_grad / iterations * 1e3:.2f} ms")
    return rot, trans


def run_demo(num_points: int = 20000, num_threads: Optional[int] = None) -> int:
    import geomops
    geomops.show_config()
    print()
    t0 = time.perf_counter()
    cconv_demo(num_points=num_points, num_threads=num_threads)
    pose_demo(num_threads=num_threads)
    print(f"\ndemo finished in {time.perf_counter() - t0:.1f} s")
    return 0
