"""Figures from results JSON (matplotlib, Agg backend): ``minidni figures``.

Each plotting module has ``make(results_dir, out_dir) -> list[Path]`` and draws what it
finds: a figure whose results file is missing, unreadable or of another shape is skipped
with one line saying which file and why (:mod:`.common`), and the others are drawn.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from .common import draw, only

MODULES = ("minidni.plots.ff", "minidni.plots.rnn", "minidni.plots.unlock", "minidni.plots.cnn")
MODULES += ("minidni.plots.parallel", "minidni.plots.multinet")


def make_all(results_dir: Path, out_dir: Path, only_names: list[str] | None = None) -> list[Path]:
    """Every figure whose results are in ``results_dir`` (of the experiments
    ``only_names``, default all), written to ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    with only(only_names):
        for name in MODULES:
            module = importlib.import_module(name)
            # one module's failure (a file of an unexpected shape) spares the others
            what = f"the {name.rsplit('.', 1)[1]} results"
            for drawn in draw(what, module.make, results_dir, out_dir):
                paths += drawn
    return paths
