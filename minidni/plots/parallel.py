"""The figure of ``minidni parallel`` (:mod:`minidni.experiments.parallel`): parallel.png.

Left: MNIST test error against wall-clock seconds, one curve per run (mode, ranks, BLAS
threads; repeats of one configuration share a colour and line style). Middle: the same
against steps (what a step learns, whatever the machine's load). Right: steps per second
of each configuration, every repeat a dot and the median a bar; hollow dots: the steps/s
modelled from the ranks' CPU seconds with a free core per rank
(:func:`~minidni.experiments.parallel.cpu_bound_rate`; the machine's load hardly
enters it).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ..experiments.parallel import configuration, cpu_bound_rate
from .common import draw, load, mark, plain_log_y, save_figure, subtitle

COLORS = {"bprop": "black", "dni": "tab:blue", "cdni": "tab:red", "unlock": "tab:green"}


label = configuration


def style(run: dict) -> dict:
    """Pipelines solid; one-process runs dashed (1 thread) or dotted (2+ threads)."""
    if run["ranks"] > 1:
        return {"color": COLORS[run["mode"]], "linestyle": "-"}
    dash = "--" if (run["blas_threads"] or 1) == 1 else ":"
    return {"color": COLORS[run["mode"]] if run["mode"] != "bprop" else "grey", "linestyle": dash}


def plot(results: dict, path: Path) -> Path:
    runs = results["runs"]
    labels = list(dict.fromkeys(label(r) for r in runs))
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4.4), width_ratios=[1.2, 1.2, 1])
    seen = set()
    for run in runs:
        name = label(run)
        for ax, xs in ((left, run["seconds"]), (middle, run["steps_evaluated"])):
            ax.plot(
                xs,
                100 * np.asarray(run["test_error"]),
                label=None if name in seen or ax is middle else name,
                alpha=0.8,
                **style(run),
            )
        seen.add(name)
    left.set_xlabel("wall-clock seconds")
    middle.set_xlabel("steps")
    for ax in (left, middle):
        ax.set_ylabel("MNIST test error (%)")
        plain_log_y(ax)
    left.legend(fontsize=7)
    for y, name in enumerate(labels):
        rates = [r["steps_per_second"] for r in runs if label(r) == name]
        color = style(next(r for r in runs if label(r) == name))["color"]
        per_cpu = [cpu_bound_rate(r) for r in runs if label(r) == name]
        right.barh(y, np.median(rates), color=color, alpha=0.35)
        right.plot(rates, [y] * len(rates), "o", color=color, markersize=4)
        right.plot(per_cpu, [y + 0.25] * len(per_cpu), "o", mfc="none", color=color, ms=4)
    right.set_yticks(range(len(labels)), labels, fontsize=7)
    right.invert_yaxis()
    right.set_xlabel(
        "steps/s: dots wall clock (bar: median);\n"
        "hollow: modelled from CPU time, a free core per rank",
        fontsize=8,
    )
    fig.suptitle(f"Decoupled modules on MPI ranks ({subtitle(results)})", fontsize=9)
    mark(fig, results)
    return save_figure(fig, path)


def make(results_dir: Path, out_dir: Path) -> list[Path]:
    """parallel.png from ``<results_dir>/parallel.json`` (nothing if it is not there)."""
    results = load(results_dir, "parallel")
    if results is None:
        return []
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return draw(f"{results_dir}/parallel.json", plot, results, Path(out_dir) / "parallel.png")
