"""Speed-ups over Open3D 0.20 (CPU, same process, 2 threads), read from benchmarks/RESULTS.md at
build time so the figure always shows the committed numbers. Runs in docs/figures (the plot
directive's working directory, ``plot_working_directory`` in docs/conf.py)."""

import re
from pathlib import Path

import matplotlib.pyplot as plt

text = Path("../../benchmarks/RESULTS.md").read_text()


def table(section):
    """Rows (lists of cells) of the first Markdown table after the heading that starts with ``section``."""
    body = text[text.index("\n## " + section):]
    rows = []
    for line in body.splitlines()[1:]:
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip("|").split("|")])
        elif rows:
            break
    return rows[2:]  # without the header and the separator


def ratio(cell):
    return float(re.search(r"([\d.]+)x", cell).group(1))


labels, values = [], []
for row in table("Continuous convolution"):
    if row[1] == "final":
        labels += [f"cconv forward ({row[0]})", f"cconv backward ({row[0]})"]
        values += [ratio(row[5]), ratio(row[6])]
for row in table("Neighbor search"):
    if row[4] != "-":
        labels.append(row[0])
        values.append(ratio(row[4]))

fig, ax = plt.subplots(figsize=(8, 0.35 * len(labels) + 1.2), layout="constrained")
ax.barh(range(len(labels)), values, color="tab:blue")
ax.axvline(1.0, color="k", lw=0.8)
for i, v in enumerate(values):
    ax.text(v, i, f" {v:.1f}x", va="center", fontsize=8)
ax.set_yticks(range(len(labels)), labels, fontsize=8)
ax.invert_yaxis()
ax.set_xscale("log")
ax.set_xlabel("Open3D time / geomops time (same run, 2 threads; > 1: geomops faster)")
