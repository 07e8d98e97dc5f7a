"""Train a two-layer continuous-convolution network on a point cloud, in plain NumPy.

Task: from the positions of a noisy point cloud on a sphere, predict at every point the
height of a bump field sampled on the surface, h(p) = sin(3x) cos(3y) + z. Each
:class:`geomops.layers.ContinuousConv` layer searches its own neighbors, convolves, adds a
bias and (first layer) applies ReLU; ``backward()`` returns every parameter's gradient, and a
small Adam optimiser updates them. The loss falls by one to two orders of magnitude.

Run it after the README's install (``python -m pip install .``), from the repository root or
anywhere else::

    python examples/point_cloud_layers.py

In a development checkout built in place (``python setup.py build_ext --inplace``) without
installing, put the sources on the path instead: ``PYTHONPATH=pyx`` before the command.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

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


def train(num_points=3000, steps=120, extent=0.5, seed=0, verbose=True):
    pts, target = make_cloud(num_points, seed)
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
            print(f"step {step:4d}  mse {losses[-1]:.5f}  ({layer1._avg_neighbors:.1f} neighbors per point)")
    if verbose:
        print(f"{steps} steps in {time.perf_counter() - t0:.1f} s; mse {losses[0]:.4f} -> {losses[-1]:.5f}")
    return losses


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=3000)
    ap.add_argument("--steps", type=int, default=120)
    args = ap.parse_args(argv)
    train(args.points, args.steps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
