"""Figures of the complete-unlock experiment (``unlock``)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import ticker

from ..experiments.unlock import MODE_LABELS, errors
from .common import COLORS, LABELS, draw, error_bars, load, mark, plain_log_y, save_figure, subtitle

LINESTYLES = {"sg": "-", "unlock": "--"}


def _errorbar(ax, xs, errs: list[list[float]], method: str, mode: str, label: str) -> None:
    """Mean over seeds with min-max bars."""
    mean, (low, high) = error_bars(errs)
    ax.errorbar(
        xs,
        mean,
        yerr=[low, high],
        color=COLORS[method],
        linestyle=LINESTYLES[mode],
        marker="o",
        capsize=3,
        label=label,
    )


def plot_p_update(results: dict, path: Path) -> Path:
    """Final test error vs p_update; left: synthetic gradients only, right: complete unlock."""
    config = results["config"]
    ps = config["p_update"]
    modes = config["modes"]
    fig, axes = plt.subplots(1, len(modes), figsize=(4.2 * len(modes), 3.4), sharey=True)
    for ax, mode in zip(np.atleast_1d(axes), modes):
        for method in config["methods"]:
            errs = [errors(results, method, mode, p, 0) for p in ps]
            _errorbar(ax, ps, errs, method, mode, LABELS[method])
        ax.set_xscale("log")
        plain_log_y(ax)
        ax.set_xticks(ps, [str(p) for p in ps])
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel("update probability p_update")
        ax.set_title(MODE_LABELS[mode], fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    np.atleast_1d(axes)[0].set_ylabel("MNIST test error (%)")
    fig.suptitle(
        f"{config['depth']} hidden layers, {config['steps']} steps ({subtitle(results)})",
        fontsize=8,
    )
    mark(fig, results)
    return save_figure(fig, path)


def plot_staleness(results: dict, path: Path) -> Path:
    """Final test error vs staleness k (p_update = 1), every method and mode."""
    config = results["config"]
    ks = config["staleness"]
    positions = np.arange(len(ks))  # k = 0 has no place on a log axis: equal spacing
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    for mode in config["modes"]:
        for method in config["methods"]:
            errs = [errors(results, method, mode, 1.0, k) for k in ks]
            _errorbar(ax, positions, errs, method, mode, f"{LABELS[method]}, {MODE_LABELS[mode]}")
    ax.set_xticks(positions, [str(k) for k in ks])
    plain_log_y(ax)
    ax.set_xlabel("staleness k (steps)")
    ax.set_ylabel("MNIST test error (%)")
    ax.set_title(f"{config['depth']} hidden layers, {config['steps']} steps", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.text(0.5, 0.01, subtitle(results), ha="center", fontsize=7)
    mark(fig, results)
    return save_figure(fig, path, rect=(0, 0.04, 1, 1))


def make(results_dir: Path, out_dir: Path) -> list[Path]:
    """``unlock_p_update.png`` and ``unlock_staleness.png`` from ``<results_dir>/unlock.json``."""
    results = load(results_dir, "unlock")
    if results is None:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    what = f"{results_dir}/unlock.json"
    return draw(what, plot_p_update, results, out_dir / "unlock_p_update.png") + draw(
        what, plot_staleness, results, out_dir / "unlock_staleness.png"
    )
