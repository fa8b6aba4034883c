"""The figure of the multi-network experiment (``multinet``).

``multinet.png``: one column per k, four rows, one line per method (mean over seeds,
min-max band): B's test accuracy against steps, B's test accuracy against training
seconds, A's test accuracy against steps (dashed: the accuracy that counts as reached),
and, for DNI, the cosine between the synthetic gradients and B's true message gradients.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from .common import load, mean_band, save_figure, subtitle

COLORS = {"bprop": "black", "dni": "tab:blue"}
LABELS = {"bprop": "Bprop (locked)", "dni": "DNI"}
ROWS = (
    ("steps", "acc_b", "B: test acc. (3s in k^2)"),
    ("seconds", "acc_b", "B: test acc. vs train s"),
    ("steps", "acc_a", "A: test acc. (odd in k)"),
    ("steps", "sg_cos", "cos(delta_hat, delta)"),
)


def plot_multinet(results: dict, path: Path) -> Path:
    """Accuracy of both tasks vs steps and vs seconds, and SG cosine, per k and method."""
    config = results["config"]
    ks = config["ks"]
    width = max(3.2 * len(ks), 6.0)  # room for the title
    fig, axes = plt.subplots(len(ROWS), len(ks), figsize=(width, 9.5), squeeze=False)
    for col, k in enumerate(ks):
        for row, (x_key, y_key, label) in enumerate(ROWS):
            ax = axes[row][col]
            for method in config["methods"]:
                runs = [r for r in results["runs"] if (r["k"], r["method"]) == (k, method)]
                if not runs or any(v is None for r in runs for v in r["curve"][y_key]):
                    continue  # e.g. no synthetic gradient in the bprop runs
                mean, low, high = mean_band([r["curve"][y_key] for r in runs])
                x = np.mean([r["curve"][x_key] for r in runs], axis=0)  # seconds differ by seed
                ax.plot(x, mean, color=COLORS[method], label=LABELS[method])
                ax.fill_between(x, low, high, color=COLORS[method], alpha=0.2, lw=0)
            if y_key in ("acc_a", "acc_b"):
                runs = [r for r in results["runs"] if r["k"] == k]
                ax.axhline(runs[0]["threshold_" + y_key[-1]], color="grey", ls="--", lw=0.8)
                ax.axhline(runs[0]["chance_" + y_key[-1]], color="grey", ls=":", lw=0.8)
            if row == 0:
                ax.set_title(f"k = {k}")
            if col == 0:
                ax.set_ylabel(label)
            ax.set_xlabel("training seconds" if x_key == "seconds" else "steps (digits per stream)")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(
        "Multi-network system: B ticks every k steps on A's messages\n"
        f"{subtitle(results)}; dashed: threshold, dotted: chance",
        fontsize=9,
    )
    return save_figure(fig, path)


def make(results_dir: Path, out_dir: Path) -> list[Path]:
    results = load(results_dir, "multinet")
    if results is None:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    return [plot_multinet(results, out_dir / "multinet.png")]
