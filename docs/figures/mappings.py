"""The three ball-to-cube mappings of the continuous convolution, measured with geomops' kernels.

A 2x2x1 filter whose two output channels hold the x and y filter-cell index makes
``continuous_conv`` (linear interpolation, align_corners=True) return the filter coordinate
``v = q + 1/2`` of a neighbor, and so the mapped position ``q`` in [-1/2, 1/2]^3: the figure draws
the image of a polar grid of the unit disk (the z = 0 slice of the unit ball, extent 2) under each
mapping.
"""

import matplotlib.pyplot as plt
import numpy as np

import geomops


def mapped(rel, mapping):
    """2 q (in [-1, 1]) of relative positions ``rel`` [M, 3] under ``mapping``."""
    filters = np.zeros((1, 2, 2, 1, 2))
    filters[0, :, :, 0, 0] = [0, 1]          # channel 0: the x (width) index
    filters[0, :, :, 0, 1] = [[0], [1]]      # channel 1: the y (height) index
    m = len(rel)
    out = geomops.continuous_conv(filters, np.zeros((m, 3)), 2.0, np.zeros(3), rel, np.ones((m, 1)), None,
                                  np.arange(m), None, np.arange(m + 1), coordinate_mapping=mapping,
                                  interpolation="linear", align_corners=True)
    return 2.0 * (out - 0.5)


t = np.linspace(0, 2 * np.pi, 361)
curves = [np.stack([r * np.cos(t), r * np.sin(t)], 1) for r in (0.25, 0.5, 0.75, 0.999)]
s = np.linspace(0, 0.999, 100)
curves += [np.stack([s * np.cos(a), s * np.sin(a)], 1) for a in np.linspace(0, 2 * np.pi, 16, endpoint=False)]

mappings = ["identity", "ball_to_cube_radial", "ball_to_cube_volume_preserving"]
fig, axes = plt.subplots(1, 3, figsize=(10, 3.6), layout="constrained")
for ax, mapping in zip(axes, mappings):
    for c in curves:
        xy = mapped(np.column_stack([c, np.zeros(len(c))]), mapping)
        ax.plot(xy[:, 0], xy[:, 1], lw=0.8, color="tab:blue")
    ax.plot([-1, 1, 1, -1, -1], [-1, -1, 1, 1, -1], color="0.5", lw=0.8, ls="--")
    ax.set_aspect("equal")
    ax.set_xlim(-1.1, 1.1)
    ax.set_ylim(-1.1, 1.1)
    ax.set_title(mapping, fontsize=9)
    ax.set_xlabel("2 q_x")
axes[0].set_ylabel("2 q_y")
fig.suptitle("where a polar grid of the unit disk lands in the filter cube (z = 0 slice)", fontsize=10)
