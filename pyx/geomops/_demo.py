"""``python -m geomops demo``: the library end to end on generated data, with timings."""

from __future__ import annotations

import time

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
    filters = np.zeros_like(hidden)
    out = geomops.continuous_conv(*args(filters), **common)
    grads, _ = _timed("continuous_conv_backward (filters + features)", geomops.continuous_conv_backward,
                      *args(filters), (out - target) / num_points, **common)
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


def pose_demo(num_threads=None):
    """Small render-and-compare pose refinement, when the pose module is available."""
    from geomops import pose
    needed = ("render", "backpropagate_gradient_to_poses", "apply_pose_delta", "Camera", "Mesh")
    if not all(hasattr(pose, n) for n in needed):
        return None
    print("\nRender-and-compare pose refinement (software rasterizer, 160x120)")
    cam = pose.Camera.from_fov(160, 120, 58.0) if hasattr(pose.Camera, "from_fov") else \
        pose.Camera(160, 120, 144.0, 144.0, 80.0, 60.0)
    mesh = pose.Mesh.box(0.2)
    target_pose = np.eye(4)
    target_pose[:3, 3] = (0.0, 0.0, 0.8)
    target_scene = pose.Scene(cam, [pose.SceneObject(mesh, target_pose)])
    target = pose.render(target_scene, num_threads=num_threads).rgb[..., :3].astype(np.float32) / 255
    current = pose.apply_pose_delta(target_pose, np.array([0.06, -0.05, 0.04, 0.02, -0.015, 0.03]))
    lr = 2e-4
    for step in range(31):
        scene = pose.Scene(cam, [pose.SceneObject(mesh, current)])
        rr = pose.render(scene, num_threads=num_threads)
        img = rr.rgb[..., :3].astype(np.float32) / 255
        grad_img = np.ascontiguousarray(2 * (img - target).transpose(2, 0, 1))
        g = pose.backpropagate_gradient_to_poses(scene, rr, grad_img, num_threads=num_threads)
        err_t = np.linalg.norm(current[:3, 3] - target_pose[:3, 3])
        if step % 10 == 0:
            print(f"    step {step:2d}: loss {np.sum((img - target) ** 2):9.2f}, translation error "
                  f"{err_t * 1000:6.1f} mm")
        current = pose.apply_pose_delta(current, -lr * g[0])
    return True


def run_demo(num_points=20000, num_threads=None):
    import geomops
    geomops.show_config()
    print()
    t0 = time.perf_counter()
    cconv_demo(num_points=num_points, num_threads=num_threads)
    try:
        pose_demo(num_threads=num_threads)
    except ImportError as exc:  # pragma: no cover - pose module not built
        print(f"(pose demo skipped: {exc})")
    print(f"\ndemo finished in {time.perf_counter() - t0:.1f} s")
    return 0
