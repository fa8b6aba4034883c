"""Figure of the CNN experiment (``ff-cnn``)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from .common import COLORS, LABELS, draw, load, mark, mean_band, plain_log_y, save_figure, subtitle

TITLES = {"mnist": "MNIST", "cifar10": "CIFAR-10"}


def plot_ff_cnn(results: dict, path: Path) -> Path:
    """Test error vs steps, one panel per dataset that ran, Bprop / DNI / cDNI (mean over
    seeds, min-max band)."""
    config = results["config"]
    datasets = results["datasets_run"]
    fig, axes = plt.subplots(
        1, len(datasets), figsize=(max(5.6, 3.8 * len(datasets)), 3.3), squeeze=False
    )
    for ax, dataset in zip(axes[0], datasets):
        for method in config["methods"]:
            runs = [r for r in results["runs"] if r["dataset"] == dataset and r["method"] == method]
            if not runs:  # every seed diverged, or not run yet (the caption says so)
                continue
            steps = runs[0]["steps_evaluated"]
            mean, low, high = mean_band([100 * np.asarray(r["test_error"]) for r in runs])
            ax.plot(steps, mean, color=COLORS[method], label=LABELS[method], marker=".")
            ax.fill_between(steps, low, high, color=COLORS[method], alpha=0.2)
        channels = config["channels"][dataset]
        ax.set_title(f"{TITLES[dataset]} CNN, conv {channels}", fontsize=9)
        ax.set_xlabel("iterations")
        ax.set_ylabel("test error (%)")
        plain_log_y(ax)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(f"Every layer decoupled, CNN ({subtitle(results)})", fontsize=8)
    mark(fig, results)
    return save_figure(fig, path)


def make(results_dir: Path, out_dir: Path) -> list[Path]:
    """``ff_cnn.png`` from ``ff-cnn.json`` if it is in ``results_dir``."""
    if (results := load(results_dir, "ff-cnn")) is None or not results.get("datasets_run"):
        return []
    return draw(f"{results_dir}/ff-cnn.json", plot_ff_cnn, results, out_dir / "ff_cnn.png")
