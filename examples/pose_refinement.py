"""Render-and-compare pose refinement with geomops' pose gradients (no deep-learning framework).

1. Render a target image of a vertex-coloured box at the true pose.
2. Start from a perturbed pose (about 12 degrees and 35 mm off).
3. Each step: render, L2 loss to the target, dLoss/dImage = rendered - target,
   ``backpropagate_gradient_to_poses`` -> 6-vector (alpha, beta, gamma, a, b, c), then
   ``apply_pose_delta(pose, -step)``. The step (``geomops.pose.AdamPoseStep``) is the gradient
   scaled per component by Adam's running moments: rotation and translation gradients differ by
   orders of magnitude, and their size shrinks as the loss does, so one fixed ``lr`` for plain
   ``-lr * grad`` would be either too slow for one group or unstable for the other.
   ``geomops.pose.refine_scene`` is this loop for every object of a scene (without the history
   and the figure), and ``geomops.dask.refine_poses`` runs it over many scenes on a cluster.
4. Print the pose error per step and save a figure: loss and error curves, before/after
   overlays of the silhouette on the target, and the per-pixel gradient maps at the start
   (cropped to the object, with its outline, lines widened: see ``geomops.plot.plot_pose_gradients``).

Run it after the README's install (``python -m pip install .``), from the repository root or
anywhere else::

    python examples/pose_refinement.py --out pose_refinement.png
    python examples/pose_refinement.py --device cuda --width 640 --height 480
    python examples/pose_refinement.py --small --out-dir figures   # a quick run, as in CI

``--small`` (or the environment variable ``GEOMOPS_EXAMPLE_SMALL=1``) runs 15 steps on an 80x60
image; ``--quiet`` prints only the final result.

With ``--device cuda`` the whole loop runs on the GPU: the renders stay there, the L2 loss and
dLoss/dImage are computed by PyTorch or CuPy (whichever is installed) on views of geomops'
buffers (DLPack, no copy), the gradient goes back to geomops the same way, and the pose update
runs there too; only the 6-vector for Adam and the 4x4 pose the next render needs cross to the
host. It stops at once, saying why, without a usable GPU.

In a development checkout built in place (``python setup.py build_ext --inplace``) without
installing, put the sources on the path instead: ``PYTHONPATH=pyx`` before the command.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

import numpy as np

import geomops
from geomops.plot import plot_pose_gradients
from geomops.pose import (AdamPoseStep, Camera, Mesh, Scene, SceneObject, apply_pose_delta,
                          backpropagate_gradient_to_poses, render)


def rotation(rx, ry, rz):
    c, s = np.cos, np.sin
    Rx = np.array([[1, 0, 0], [0, c(rx), -s(rx)], [0, s(rx), c(rx)]])
    Ry = np.array([[c(ry), 0, s(ry)], [0, 1, 0], [-s(ry), 0, c(ry)]])
    Rz = np.array([[c(rz), -s(rz), 0], [s(rz), c(rz), 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


def pose_error(T, T_true):
    """(rotation error in degrees, translation error in mm)."""
    dR = T_true[:3, :3].T @ T[:3, :3]
    angle = np.degrees(np.arccos(np.clip((np.trace(dR) - 1.0) / 2.0, -1.0, 1.0)))
    return float(angle), float(1000.0 * np.linalg.norm(T[:3, 3] - T_true[:3, 3]))


def _array_library(sample):
    """The array library that computes the image loss next to geomops' GPU buffers: PyTorch or
    CuPy, which view a geomops.DeviceArray without a copy through DLPack (on geomops' CUDA
    emulator, whose arrays are host memory, NumPy does)."""
    for name in ("torch", "cupy", "numpy"):
        try:
            lib = importlib.import_module(name)
            lib.from_dlpack(sample)
        except Exception:
            continue
        return lib
    sys.exit("pose_refinement: --device cuda computes the image loss with PyTorch or CuPy on the GPU; "
             "install one of them")


def _image(lib, buf):
    """(H, W, 3) float32 image in [0, 1] of a device RenderResult, in ``lib`` (no copy of rgb)."""
    rgb = lib.from_dlpack(buf.rgb)[..., :3]
    return (rgb.float() if lib.__name__ == "torch" else rgb.astype(lib.float32)) / 255.0


def _planar(lib, x):
    """(H, W, 3) -> contiguous (3, H, W) in ``lib``."""
    return x.permute(2, 0, 1).contiguous() if lib.__name__ == "torch" else lib.ascontiguousarray(x.transpose(2, 0, 1))


def refine(width=160, height=120, iterations=80, mode="exact", seed=0, verbose=True, device="cpu"):
    """Run the refinement; returns a dict with the history, images and gradient maps.

    ``device="cuda"`` (or ``"cuda:N"``) runs the loop on the GPU (see the module docstring)."""
    on_gpu = device != "cpu"
    s = width / 640.0
    cam = Camera(width, height, 1066.778 * s, 1067.487 * s, 312.9869 * s, 241.3109 * s)
    mesh = Mesh.box((0.12, 0.1, 0.08))
    T_true = np.eye(4)
    T_true[:3, :3] = rotation(0.5, -0.4, 0.3)
    T_true[:3, 3] = (0.01, -0.01, 0.5)
    rng = np.random.default_rng(seed)
    offset = np.concatenate([rng.choice([-1, 1], 3) * np.array([0.15, 0.1, 0.12]),
                             rng.choice([-1, 1], 3) * np.array([0.015, 0.01, 0.03])])
    T = apply_pose_delta(T_true, offset)
    start_error = pose_error(T, T_true)

    def scene_at(pose):
        return Scene(cam, [SceneObject(mesh, pose)], background=(0.2, 0.3, 0.4))

    def loss_and_grad_image(buf):
        """The L2 loss and dLoss/dImage, (3, H, W), of a render."""
        if on_gpu:  # the loss in PyTorch/CuPy on the GPU; dLoss/dImage handed to geomops without a copy
            diff = _image(lib, buf) - target_img
            return 0.5 * float((diff * diff).sum()), geomops.to_device(_planar(lib, diff), device)
        diff = buf.rgb[..., :3] / 255.0 - target_img
        return 0.5 * float(np.sum(diff * diff)), np.ascontiguousarray(diff.transpose(2, 0, 1))

    def snapshot(scene, buf, g):
        """The first step's image, mask, per-pixel gradient maps and gradient, on the host."""
        grad, maps = backpropagate_gradient_to_poses(scene, buf, g, mode=mode, return_contributions=True)
        shown = buf.get()  # the host copy of the buffers, for the figure
        return grad, {"image": shown.rgb[..., :3].copy(), "mask": shown.instance_index != 0,
                      "maps": maps.get()[0] if on_gpu else maps[0], "grad": grad.get()[0] if on_gpu else grad[0]}

    if on_gpu:
        target = render(scene_at(T_true), device=device)
        lib = _array_library(target.rgb)
        target_img = _image(lib, target)
        T_dev = geomops.to_device(T, device)
    else:
        target = render(scene_at(T_true))
        target_img = target.rgb[..., :3] / 255.0
    adam = AdamPoseStep(rotation_step=0.01, translation_step=0.003)  # rad, m
    history = {"loss": [], "rot_deg": [], "trans_mm": []}
    start = None
    for it in range(iterations):
        scene = scene_at(T)
        buf = render(scene, device=device)
        loss, g = loss_and_grad_image(buf)
        if it == 0:
            grad, start = snapshot(scene, buf, g)
        else:
            grad = backpropagate_gradient_to_poses(scene, buf, g, mode=mode)
        grad = (grad.get() if on_gpu else grad)[0].astype(np.float64)
        rot_err, trans_err = pose_error(T, T_true)
        history["loss"].append(loss)
        history["rot_deg"].append(rot_err)
        history["trans_mm"].append(trans_err)
        if verbose:
            print(f"step {it:3d}  loss {loss:10.4f}  rotation error {rot_err:7.3f} deg  "
                  f"translation error {trans_err:7.3f} mm")
        step = adam(grad)
        if on_gpu:  # the pose update on the GPU; the next render reads the pose on the host
            T_dev = apply_pose_delta(T_dev, geomops.to_device(-step, device))
            T = T_dev.get()
        else:
            T = apply_pose_delta(T, -step)
    final = render(scene_at(T), device=device)
    if start is None:  # no steps: the maps at the start pose
        start = snapshot(scene_at(T), final, loss_and_grad_image(final)[1])[1]
    final = final.get()
    target = target.get()
    return {"history": history, "final_error": pose_error(T, T_true), "start_error": start_error,
            "target": target.rgb[..., :3],
            "target_mask": target.instance_index != 0, "start": start,
            "final": {"image": final.rgb[..., :3], "mask": final.instance_index != 0}, "pose": T, "true": T_true}


def _overlay(ax, target, target_mask, mask, title):
    ax.imshow(target)
    # contours are drawn as lines at any figure size (a 1-pixel edge image vanishes when scaled down)
    ax.contour(target_mask.astype(np.float32), levels=[0.5], colors="lime", linewidths=1.2)
    ax.contour(mask.astype(np.float32), levels=[0.5], colors="magenta", linewidths=1.2)
    ax.set_title(title + "\n(green: target outline, magenta: estimate)", fontsize=9)
    ax.set_axis_off()


def save_figure(result, path):
    from geomops.plot import require_matplotlib
    Figure = require_matplotlib("examples/pose_refinement.py's figure")
    fig = Figure(figsize=(13, 7.5), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=(1, 0.8))
    axes = top.subplots(1, 3)
    h = result["history"]
    ax = axes[0]
    ax.semilogy(h["loss"], label="L2 loss")
    ax.semilogy(h["rot_deg"], label="rotation error (deg)")
    ax.semilogy(h["trans_mm"], label="translation error (mm)")
    ax.set_xlabel("step")
    ax.legend(fontsize=8)
    ax.set_title("refinement", fontsize=9)
    _overlay(axes[1], result["target"], result["target_mask"], result["start"]["mask"], "before")
    _overlay(axes[2], result["target"], result["target_mask"], result["final"]["mask"], "after")
    # the maps are non-zero on thin edges: cropped to the object, lines widened, its outline drawn
    plot_pose_gradients(result["start"]["maps"], result["start"]["grad"], outline=result["start"]["mask"],
                        ncols=6, fig=bottom)
    bottom.suptitle("per-pixel gradient maps at the start (black: the object's outline)", fontsize=10)
    fig.suptitle("geomops pose refinement")
    fig.savefig(path, dpi=90)
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None,
                    help="figure path (default: pose_refinement.png in --out-dir)")
    ap.add_argument("--out-dir", default=".", help="folder for the figure (default: the current one)")
    ap.add_argument("--small", action="store_true", default=os.environ.get("GEOMOPS_EXAMPLE_SMALL") == "1",
                    help="a quick run: 15 steps on an 80x60 image (also GEOMOPS_EXAMPLE_SMALL=1)")
    ap.add_argument("--iterations", type=int, default=None, help="refinement steps (default 80, 15 with --small)")
    ap.add_argument("--width", type=int, default=None, help="image width (default 160, 80 with --small)")
    ap.add_argument("--height", type=int, default=None, help="image height (default 120, 60 with --small)")
    ap.add_argument("--mode", choices=("exact", "compat"), default="exact")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quiet", action="store_true", help="print only the final result, not every step")
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N: where the loop runs")
    args = ap.parse_args(argv)
    small = (15, 80, 60) if args.small else (80, 160, 120)
    iterations, width, height = (small[i] if v is None else v
                                 for i, v in enumerate((args.iterations, args.width, args.height)))
    if iterations < 0:
        ap.error("--iterations must be >= 0")
    out = args.out if args.out is not None else os.path.join(args.out_dir, "pose_refinement.png")
    if args.device != "cpu":
        try:  # fail at once, saying why, without a usable GPU
            geomops.to_device(np.zeros(1, np.float32), args.device)
        except (RuntimeError, ValueError) as exc:
            sys.exit(f"pose_refinement: --device {args.device}: {exc}")
    print(f"pose_refinement: refine a box's 6-DoF pose from about 12 degrees and 35 mm off by render-and-compare "
          f"({width}x{height}, {iterations} steps, {args.mode} gradients, device {args.device})")
    result = refine(width, height, iterations, args.mode, args.seed, verbose=not args.quiet, device=args.device)
    (rot0, trans0), (rot, trans) = result["start_error"], result["final_error"]
    print(f"final     rotation error {rot:7.3f} deg  translation error {trans:7.3f} mm "
          f"(start {rot0:.2f} deg, {trans0:.2f} mm)")
    try:
        save_figure(result, out)
        print(f"figure saved to {out}: error curves, outlines before/after, per-pixel gradient maps")
    except ImportError as exc:
        print(f"no figure: {exc}", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
