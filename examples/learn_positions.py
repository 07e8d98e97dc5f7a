"""Learn point positions through a continuous convolution (PyTorch autograd + geomops.torch).

A fixed continuous convolution turns a point set into a smooth field sampled on a grid: every
point spreads a bump (the filter) of radius 0.15 around it. The target field is that of points
on a ring. Starting from random points, Adam moves the points until their field matches the
target: the gradient of the loss w.r.t. the positions comes from geomops' position gradients,
through the filter's coordinate mapping and trilinear interpolation (Open3D's ops have none).

The figure (``--out``, default ``learn_positions.png`` in ``--out-dir``) shows the target field,
the start, the result and the loss curve.

Run it after the README's install (``python -m pip install ".[test]"`` brings torch and
matplotlib), from anywhere::

    python examples/learn_positions.py
    python examples/learn_positions.py --small    # a small run, as in the tests

``--small`` (also ``--quick``, or the environment variable ``GEOMOPS_EXAMPLE_SMALL=1``) moves 60
points for 50 steps on a 20x20 grid.

In a development checkout built in place, put the sources on the path: ``PYTHONPATH=pyx``.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

import geomops.torch as ml3d

EXTENT = 0.3  # filter extent: the search radius is EXTENT / 2


def bump_kernel(size=5):
    """A filter that is 1 at the center and falls to 0 at the boundary of the filter ball, so the
    field is continuous when a point enters or leaves a query's neighborhood."""
    c = np.linspace(-1, 1, size)
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    k = np.clip(1 - (x * x + y * y + z * z), 0, None)
    return torch.tensor(k[..., None, None], dtype=torch.float64)


def planar(xy):
    """Points of the plane z = 0 from their (x, y)."""
    return torch.cat([xy, torch.zeros(xy.shape[0], 1, dtype=xy.dtype)], dim=1)


def ring(n, rng):
    t = rng.uniform(0, 2 * np.pi, n)
    r = 0.3 + 0.02 * rng.standard_normal(n)
    return np.stack([0.5 + r * np.cos(t), 0.5 + 0.75 * r * np.sin(t)], axis=1)


def learn(num_points=150, steps=150, grid=40, lr=0.01, seed=0, verbose=True):
    """Optimise the positions; returns (grid_xy, target field, start_xy, final_xy, final field, losses)."""
    rng = np.random.default_rng(seed)
    conv = ml3d.layers.ContinuousConv(1, 1, 5, use_bias=False, normalize=False).double()
    with torch.no_grad():
        conv.kernel.copy_(bump_kernel())
    conv.kernel.requires_grad_(False)  # the convolution is fixed: only the positions are learned

    g = np.linspace(0, 1, grid)
    gx, gy = np.meshgrid(g, g, indexing="xy")
    queries = planar(torch.tensor(np.stack([gx.ravel(), gy.ravel()], axis=1)))
    ones = torch.ones(num_points, 1, dtype=torch.float64)

    def field(xy):
        return conv(ones, planar(xy), queries, EXTENT)[:, 0]

    target = field(torch.tensor(ring(num_points, rng))).detach()
    start = torch.tensor(rng.uniform(0.15, 0.85, (num_points, 2)))
    xy = start.clone().requires_grad_()
    opt = torch.optim.Adam([xy], lr=lr)
    losses = []
    t0 = time.perf_counter()
    for step in range(steps):
        opt.zero_grad()
        loss = torch.mean((field(xy) - target) ** 2)
        loss.backward()  # d loss / d positions: geomops' position gradients
        opt.step()
        losses.append(loss.item())
        if verbose and (step % 50 == 0 or step == steps - 1):
            print(f"step {step:4d}  loss {losses[-1]:.5f}")
    if verbose:
        print(f"{steps} steps in {time.perf_counter() - t0:.1f} s; loss {losses[0]:.4f} -> {losses[-1]:.5f}")
    final = xy.detach()
    return (np.stack([gx, gy]), target.numpy().reshape(grid, grid), start.numpy(), final.numpy(),
            field(final).detach().numpy().reshape(grid, grid), losses)


def plot(result, out):
    from matplotlib.figure import Figure  # no pyplot: nothing is shown, no GUI backend is needed

    (gx, gy), target, start, final, final_field, losses = result
    fig = Figure(figsize=(17, 4.2))
    axes = fig.subplots(1, 4)
    extent = (gx.min(), gx.max(), gy.min(), gy.max())
    vmax = max(target.max(), final_field.max())
    axes[0].imshow(target, origin="lower", extent=extent, vmin=0, vmax=vmax)
    axes[0].set_title("target field (points on a ring)")
    axes[1].scatter(start[:, 0], start[:, 1], s=6, c="tab:red", label="start")
    axes[1].scatter(final[:, 0], final[:, 1], s=6, c="tab:blue", label="learned")
    for a, b in zip(start[::3], final[::3]):
        axes[1].annotate("", b, a, arrowprops=dict(arrowstyle="->", color="0.6", lw=0.6))
    axes[1].set_xlim(0, 1)
    axes[1].set_ylim(0, 1)
    axes[1].set_aspect("equal")
    axes[1].legend(loc="upper right", fontsize=8)
    axes[1].set_title("positions: start -> learned")
    axes[2].imshow(final_field, origin="lower", extent=extent, vmin=0, vmax=vmax)
    axes[2].scatter(final[:, 0], final[:, 1], s=3, c="w")
    axes[2].set_xlim(0, 1)
    axes[2].set_ylim(0, 1)
    axes[2].set_title("field of the learned points")
    axes[3].semilogy(losses)
    axes[3].set_xlabel("Adam step")
    axes[3].set_title("loss (mean squared field error)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=150)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--small", "--quick", action="store_true", dest="small",
                    default=os.environ.get("GEOMOPS_EXAMPLE_SMALL") == "1",
                    help="a small run: 60 points, 50 steps, a 20x20 grid (also GEOMOPS_EXAMPLE_SMALL=1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="where to save the figure (default: learn_positions.png in --out-dir)")
    ap.add_argument("--out-dir", default=".", help="folder for the figure (default: the current one)")
    args = ap.parse_args(argv)
    out = args.out if args.out is not None else os.path.join(args.out_dir, "learn_positions.png")
    print("learn_positions: move points with Adam until their continuous-convolution field matches that of a ring "
          "(PyTorch autograd through geomops' position gradients)")
    if args.small:
        result = learn(num_points=60, steps=50, grid=20, lr=0.02, seed=args.seed, verbose=False)
        losses = result[-1]
        print(f"{len(losses)} steps; loss {losses[0]:.4f} -> {losses[-1]:.5f}")
    else:
        result = learn(num_points=args.points, steps=args.steps, seed=args.seed)
    plot(result, out)
    print(f"figure saved to {out}: target field, positions start -> learned, learned field, loss curve")
    return result


if __name__ == "__main__":
    main()
