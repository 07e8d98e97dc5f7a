"""Train a two-layer continuous-convolution network on a point cloud, in plain NumPy.

Task: from the positions of a noisy point cloud on a sphere, predict at every point the
height of a bump field sampled on the surface, h(p) = sin(3x) cos(3y) + z. Each
:class:`geomops.layers.ContinuousConv` layer searches its own neighbors, convolves, adds a
bias and (first layer) applies ReLU; ``backward()`` returns every parameter's gradient, and a
small Adam optimiser updates them. The loss falls by one to two orders of magnitude. The figure
(``point_cloud_layers.png`` in ``--out-dir``) shows the loss curve and the target and predicted
heights on the sphere.

Run it after the README's install (``python -m pip install .``), from the repository root or
anywhere else::

    python examples/point_cloud_layers.py
    python examples/point_cloud_layers.py --small --out-dir figures   # a quick run, as in CI

``--small`` (or the environment variable ``GEOMOPS_EXAMPLE_SMALL=1``) trains 25 steps on 500 points.

In a development checkout built in place (``python setup.py build_ext --inplace``) without
installing, put the sources on the path instead: ``PYTHONPATH=pyx`` before the command.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import NamedTuple

import numpy as np

import geomops
from geomops.layers import ContinuousConv


def make_cloud(n, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(n, 3))
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    p += rng.normal(scale=0.01, size=p.shape)
    target = np.sin(3 * p[:, 0]) * np.cos(3 * p[:, 1]) + p[:, 2]
    return p.astype(np.float32), target.astype(np.float32)[:, None]


class Adam:
    def __init__(self, params, lr=1e-2):
        self.params, self.lr, self.t = params, lr, 0
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]

    def step(self, grads):
        self.t += 1
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m *= 0.9
            m += 0.1 * g
            v *= 0.999
            v += 0.001 * g * g
            p -= self.lr * (m / (1 - 0.9 ** self.t)) / (np.sqrt(v / (1 - 0.999 ** self.t)) + 1e-8)


class Result(NamedTuple):
    losses: list
    points: np.ndarray  # [N, 3]
    target: np.ndarray  # [N, 1]
    prediction: np.ndarray  # [N, 1], after the last step


def train(num_points=3000, steps=120, extent=0.5, seed=0, verbose=True):
    pts, target = make_cloud(num_points, seed)
    if verbose:  # the layers search with radius extent / 2 (a scalar extent: the hash-grid search)
        nb = geomops.fixed_radius_search(pts, pts, extent / 2)
        print(f"{num_points} points, {nb.neighbors_index.size / num_points:.1f} neighbors per point "
              f"within the filter radius {extent / 2}")
    feats = np.concatenate([pts, np.ones((num_points, 1), np.float32)], axis=1)  # xyz + constant
    layer1 = ContinuousConv(4, 16, (3, 3, 3), activation="relu", seed=seed)
    layer2 = ContinuousConv(16, 1, (3, 3, 3), seed=seed + 1)
    params = [layer1.kernel, layer1.bias, layer2.kernel, layer2.bias]
    opt = Adam(params)
    losses = []
    t0 = time.perf_counter()
    for step in range(steps):
        hidden = layer1(feats, pts, pts, extent)
        out = layer2(hidden, pts, pts, extent)
        err = out - target
        losses.append(float(np.mean(err ** 2)))
        g2 = layer2.backward(2 * err / err.size)
        g1 = layer1.backward(g2.inp_features)
        opt.step([g1.kernel, g1.bias, g2.kernel, g2.bias])
        if verbose and (step % 25 == 0 or step == steps - 1):
            print(f"step {step:4d}  mse {losses[-1]:.5f}")
    if verbose:
        print(f"{steps} steps in {time.perf_counter() - t0:.1f} s; mse {losses[0]:.4f} -> {losses[-1]:.5f}")
    prediction = layer2(layer1(feats, pts, pts, extent), pts, pts, extent)
    return Result(losses, pts, target, prediction)


def save_figure(result, path):
    from matplotlib.figure import Figure
    fig = Figure(figsize=(13, 4), layout="constrained")
    ax = fig.add_subplot(1, 3, 1)
    ax.semilogy(result.losses)
    ax.set_xlabel("Adam step")
    ax.set_title("training loss (mean squared error)")
    lim = float(np.abs(result.target).max())
    for k, (values, title) in enumerate(((result.target, "target height"), (result.prediction, "prediction"))):
        ax = fig.add_subplot(1, 3, k + 2, projection="3d")
        p = result.points
        sc = ax.scatter(p[:, 0], p[:, 1], p[:, 2], c=values[:, 0], s=3, cmap="viridis", vmin=-lim, vmax=lim)
        ax.set_title(title)
        ax.set_box_aspect((1, 1, 1))
        fig.colorbar(sc, ax=ax, shrink=0.6)
    fig.suptitle("two ContinuousConv layers trained in plain NumPy")
    fig.savefig(path, dpi=80)
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", default=os.environ.get("GEOMOPS_EXAMPLE_SMALL") == "1",
                    help="a quick run: 500 points, 25 steps (also GEOMOPS_EXAMPLE_SMALL=1)")
    ap.add_argument("--points", type=int, default=None, help="number of points (default 3000, 500 with --small)")
    ap.add_argument("--steps", type=int, default=None, help="Adam steps (default 120, 25 with --small)")
    ap.add_argument("--out-dir", default=".", help="folder for the figure (default: the current one)")
    args = ap.parse_args(argv)
    points = args.points if args.points is not None else (500 if args.small else 3000)
    steps = args.steps if args.steps is not None else (25 if args.small else 120)
    print(f"point_cloud_layers: train two ContinuousConv layers in plain NumPy to predict a height field on a "
          f"sphere ({points} points, {steps} steps)")
    result = train(points, steps)
    try:
        path = save_figure(result, os.path.join(args.out_dir, "point_cloud_layers.png"))
        print(f"figure saved to {path}: loss curve, target and predicted heights")
    except ImportError:
        print("no figure: matplotlib is not installed (pip install matplotlib)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
