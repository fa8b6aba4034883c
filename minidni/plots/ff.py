"""Figures of the feed-forward experiments (``ff``, ``update-prob``)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from .common import (
    COLORS,
    LABELS,
    draw,
    error_bars,
    load,
    mark,
    mean_band,
    plain_log_y,
    save_figure,
    subtitle,
)


def plot_ff(results: dict, path: Path) -> Path:
    """Test error vs steps, one panel per depth, Bprop / DNI / cDNI (mean, min-max band)."""
    config = results["config"]
    depths = config["depths"]
    width = max(3.2 * len(depths), 6.4)  # room for the caption with one or two depths
    fig, axes = plt.subplots(1, len(depths), figsize=(width, 3.4), sharey=True, squeeze=False)
    for ax, depth in zip(axes[0], depths):
        for method in config["methods"]:
            runs = [r for r in results["runs"] if r["depth"] == depth and r["method"] == method]
            if not runs:  # every seed diverged (the caption says so)
                continue
            steps = runs[0]["steps_evaluated"]
            mean, low, high = mean_band([100 * np.asarray(r["test_error"]) for r in runs])
            ax.plot(steps, mean, color=COLORS[method], label=LABELS[method])
            ax.fill_between(steps, low, high, color=COLORS[method], alpha=0.2)
        ax.set_title(f"{depth} hidden layers")
        ax.set_xlabel("iterations")
        plain_log_y(ax)
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("MNIST test error (%)")
    axes[0][0].legend()
    title = f"Every layer decoupled, MNIST MLP ({subtitle(results)})"
    fig.suptitle(textwrap.fill(title, int(width * 14)), fontsize=9)
    mark(fig, results)
    return save_figure(fig, path)


def plot_update_prob(results: dict, path: Path) -> Path:
    """Final test error vs p_update for DNI and cDNI (mean over seeds, min-max bars)."""
    config = results["config"]
    ps = config["p_update"]
    fig, ax = plt.subplots(figsize=(4.5, 3.4))
    for method in config["methods"]:
        errs = [
            [
                100 * r["final_test_error"]
                for r in results["runs"]
                if r["p_update"] == p and r["method"] == method
            ]
            for p in ps
        ]
        mean, (low, high) = error_bars(errs)
        ax.errorbar(
            ps,
            mean,
            yerr=[low, high],
            color=COLORS[method],
            marker="o",
            capsize=3,
            label=LABELS[method],
        )
    ax.set_xscale("log")
    ax.set_xticks(ps, [str(p) for p in ps])
    ax.set_xlabel("update probability p_update")
    ax.set_ylabel("MNIST test error (%)")
    ax.set_title(f"{config['depth']} hidden layers, {config['steps']} steps", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.text(0.5, 0.01, textwrap.fill(subtitle(results), 80), ha="center", fontsize=7)
    mark(fig, results)
    return save_figure(fig, path, rect=(0, 0.06, 1, 1))


def make(results_dir: Path, out_dir: Path) -> list[Path]:
    """``ff.png`` and ``update_prob.png`` from the results found in ``results_dir``."""
    paths = []
    if (results := load(results_dir, "ff")) is not None:
        paths += draw(f"{results_dir}/ff.json", plot_ff, results, out_dir / "ff.png")
    if (results := load(results_dir, "update-prob")) is not None:
        paths += draw(
            f"{results_dir}/update-prob.json",
            plot_update_prob,
            results,
            out_dir / "update_prob.png",
        )
    return paths
