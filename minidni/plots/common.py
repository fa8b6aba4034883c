"""Helpers shared by the plotting modules.

What ``minidni figures`` promises, kept here: a results file that cannot be read is
named in one line and skipped (:func:`load`), a figure that cannot be drawn from a file
is named and skipped (:func:`draw`), and a figure drawn from unfinished results or with
diverged runs says so on the figure itself (:func:`subtitle`, :func:`warning`).
"""

from __future__ import annotations

import contextlib
import sys
import textwrap
from collections.abc import Callable, Iterator
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


_selected: set[str] | None = None  # the experiments whose figures are asked for (None: all)


@contextlib.contextmanager
def only(names: list[str] | None) -> Iterator[None]:
    """Within the block, :func:`load` gives only the results of experiments ``names``."""
    global _selected
    previous, _selected = _selected, None if names is None else set(names)
    try:
        yield
    finally:
        _selected = previous


def note(line: str) -> None:
    """One line about a file or figure that is skipped (on stderr, beside the paths)."""
    print(line, file=sys.stderr)


def command_for(name: str) -> str:
    """The command that writes ``<name>.json``."""
    if name == "parallel":
        return "mpiexec -n 2 minidni parallel"
    return f"minidni reproduce {name}"


def load(results_dir: Path, name: str) -> dict | None:
    """``<results_dir>/<name>.json``, or None when it is not there, is not a results file
    of ``name`` (one line says which and why), or is not among the figures asked for.

    Diverged runs move from ``runs`` to ``diverged_runs``: figures draw the runs that
    finished, and their caption (:func:`subtitle`) says how many diverged."""
    from ..experiments.results import ResultsFileError, read

    if _selected is not None and name not in _selected:
        return None
    path = Path(results_dir) / f"{name}.json"
    try:
        results = read(path, name)
    except FileNotFoundError:
        note(f"skipping {name}: {path} not found (run: {command_for(name)})")
        return None
    except ResultsFileError as e:
        note(f"skipping {name}: {e}")
        return None
    results["diverged_runs"] = [r for r in results["runs"] if r.get("diverged")]
    results["runs"] = [r for r in results["runs"] if not r.get("diverged")]
    if not results.get("complete", True):
        note(f"{name}: {path} holds only the runs finished so far; its figures say so")
    return results


def draw(what: str, plot: Callable[..., Path], *args: Any) -> list[Path]:
    """``[plot(*args)]``, or ``[]`` with one line naming ``what`` (e.g. the results file)
    when the figure cannot be drawn from it: a file of the right kind whose contents
    are not what this version of the figure expects (other settings, a hand edit)."""
    import matplotlib.pyplot as plt

    try:
        return [plot(*args)]
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
        plt.close("all")
        note(f"skipping a figure of {what}: its contents do not fit ({type(e).__name__}: {e})")
        return []


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
    """'profile quick, 3 seeds, 1234 s' for a figure's caption line, with what a reader
    must know (:func:`warning`)."""
    text = (
        f"profile {results['profile']}, {len(results.get('seeds', []))} seed(s), "
        f"wall {results.get('wall_seconds', 0):.0f} s, "
        f"backend {results['environment'].get('backend', '?')}"
    )
    return text + (f"; {warning(results)}" if warning(results) else "")


def warning(results: dict) -> str:
    """What is missing from a figure of ``results``: diverged runs left out, and runs not
    yet finished (an interrupted experiment); "" when nothing is."""
    parts = []
    diverged = len(results.get("diverged_runs", []))
    if diverged:
        parts.append(f"{diverged} run(s) DIVERGED, not drawn")
    if not results.get("complete", True):
        done = len(results["runs"]) + diverged
        total = results.get("runs_total", "?")
        parts.append(f"INCOMPLETE: {done} of {total} runs finished")
    return "; ".join(parts)


def mark(fig: Any, results: dict) -> None:
    """Write :func:`warning` in red across the bottom of ``fig`` (wrapped to its width),
    so that it cannot be missed or clipped; nothing when there is nothing to say."""
    text = warning(results)
    if text:
        width = max(20, int(fig.get_figwidth() * 13))  # characters of 7-point text per line
        fig.text(0.01, 0.005, textwrap.fill(text, width), fontsize=7, color="red", va="bottom")


def plain_log_y(ax) -> None:
    """Log y axis labelled 1, 2, 5, 10, 20, 50 rather than 2 x 10^0."""

    def label(v: float, _) -> str:
        return f"{v:g}" if v > 0 and round(v / 10 ** np.floor(np.log10(v))) in (1, 2, 5) else ""

    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(label))
    ax.yaxis.set_minor_formatter(ticker.FuncFormatter(label))


def save_figure(fig: Any, path: Path, dpi: int = 120, rect: tuple | None = None, **kw: Any) -> Path:
    """Lay out ``fig`` (leaving ``rect`` free for a footnote), write it to ``path``, close it.

    The saved image is cropped to everything drawn (``bbox_inches="tight"``), so a long
    caption or warning is never cut off at the figure's edge."""
    import matplotlib.pyplot as plt

    fig.tight_layout(**({} if rect is None else {"rect": rect}))
    fig.savefig(path, dpi=dpi, **{"bbox_inches": "tight", **kw})
    plt.close(fig)
    return path
