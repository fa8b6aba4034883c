"""Helpers shared by the plotting modules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import ticker

COLORS = {
    "bprop": "black",
    "dni": "tab:blue",
    "cdni": "tab:red",
    "dni_aux": "tab:green",
}
LABELS = {"bprop": "Bprop", "dni": "DNI", "cdni": "cDNI", "dni_aux": "DNI + Aux"}


def load(results_dir: Path, name: str) -> dict | None:
    """``<results_dir>/<name>.json``, or None (with a note) when it is not there.

    Diverged runs move from ``runs`` to ``diverged_runs``: figures draw the runs that
    finished, and their caption (:func:`subtitle`) says how many diverged."""
    path = Path(results_dir) / f"{name}.json"
    if not path.exists():
        print(f"skipping {name}: {path} not found (run: minidni reproduce {name})")
        return None
    results = json.loads(path.read_text())
    results["diverged_runs"] = [r for r in results["runs"] if r.get("diverged")]
    results["runs"] = [r for r in results["runs"] if not r.get("diverged")]
    if not results.get("complete", True):
        print(f"{name}: {path} holds only the runs finished so far (an interrupted run)")
    return results


def mean_band(curves: list[list[float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, min and max over runs of equally long curves."""
    a = np.asarray(curves, dtype=float)
    return a.mean(axis=0), a.min(axis=0), a.max(axis=0)


def error_bars(groups: list[list[float]]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Means of ``groups`` and their (below, above) min-max bars; NaN (not drawn) for a
    group left empty because every run of it diverged."""
    mean = np.array([np.mean(g) if g else np.nan for g in groups])
    low = np.array([np.min(g) if g else np.nan for g in groups])
    high = np.array([np.max(g) if g else np.nan for g in groups])
    return mean, [mean - low, high - mean]


def subtitle(results: dict) -> str:
    """'profile quick, 3 seeds, 1234 s' for a figure's caption line."""
    diverged = len(results.get("diverged_runs", []))
    return (
        f"profile {results['profile']}, {len(results['seeds'])} seed(s), "
        f"wall {results['wall_seconds']:.0f} s, backend {results['environment']['backend']}"
        + (f"; {diverged} run(s) DIVERGED, not drawn" if diverged else "")
    )


def plain_log_y(ax) -> None:
    """Log y axis labelled 1, 2, 5, 10, 20, 50 rather than 2 x 10^0."""

    def label(v: float, _) -> str:
        return f"{v:g}" if v > 0 and round(v / 10 ** np.floor(np.log10(v))) in (1, 2, 5) else ""

    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(label))
    ax.yaxis.set_minor_formatter(ticker.FuncFormatter(label))


def save_figure(fig: Any, path: Path, dpi: int = 120, rect: tuple | None = None, **kw: Any) -> Path:
    """Lay out ``fig`` (leaving ``rect`` free for a footnote), write it to ``path``, close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout(**({} if rect is None else {"rect": rect}))
    fig.savefig(path, dpi=dpi, **kw)
    plt.close(fig)
    return path
