"""Figures from results JSON (matplotlib, Agg backend): ``minidni figures``.

Each plotting module has ``make(results_dir, out_dir) -> list[Path]`` and draws what it
finds: a figure whose results file is missing is skipped with a note.
"""

from __future__ import annotations

import importlib
from pathlib import Path

MODULES = ("minidni.plots.ff", "minidni.plots.rnn", "minidni.plots.unlock", "minidni.plots.cnn")
MODULES += ("minidni.plots.parallel", "minidni.plots.multinet")


def make_all(results_dir: Path, out_dir: Path) -> list[Path]:
    """Every figure whose results are in ``results_dir``, written to ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue  # that part of the project is not built yet
        paths += module.make(Path(results_dir), Path(out_dir))
    return paths
