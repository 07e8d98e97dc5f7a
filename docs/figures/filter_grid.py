"""Filter taps along one axis: the weight each of the 4 filter cells gives a neighbor at relative
position x (extent 2, so the ball is |x| <= 1), for each interpolation and align_corners on and
off, measured with geomops' kernels (identity mapping; a 1x1x4 filter whose output channel t is
one-hot at cell t returns the weight of cell t)."""

import matplotlib.pyplot as plt
import numpy as np

import geomops

n = 4
x = np.linspace(-1.25, 1.25, 1001)
m = len(x)
rel = np.column_stack([x, np.zeros(m), np.zeros(m)])
filters = np.zeros((1, 1, n, 1, n))
for t in range(n):
    filters[0, 0, t, 0, t] = 1.0

fig, axes = plt.subplots(3, 2, figsize=(10, 6.5), sharex=True, sharey=True, layout="constrained")
for row, interpolation in enumerate(["linear", "linear_border", "nearest_neighbor"]):
    for col, align in enumerate([True, False]):
        w = geomops.continuous_conv(filters, np.zeros((m, 3)), 2.0, np.zeros(3), rel, np.ones((m, 1)), None,
                                    np.arange(m), None, np.arange(m + 1), coordinate_mapping="identity",
                                    interpolation=interpolation, align_corners=align)
        ax = axes[row, col]
        for t in range(n):
            ax.plot(x, w[:, t], label=f"cell {t}")
        ax.plot(x, w.sum(1), color="k", ls=":", lw=1, label="sum")
        ax.axvspan(-1.25, -1, color="0.9")
        ax.axvspan(1, 1.25, color="0.9")
        ax.set_title(f"interpolation={interpolation!r}, align_corners={align}", fontsize=9)
for ax in axes[-1]:
    ax.set_xlabel("relative position x / (extent / 2)")
for ax in axes[:, 0]:
    ax.set_ylabel("weight")
axes[0, 1].legend(fontsize=7, loc="center right")
