"""What every experiment shares: the results record, JSON output, MNIST as Datasets."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from .. import __version__, backend
from ..train import Dataset


def mnist(data_dir: str | None = None) -> tuple[Dataset, Dataset]:
    """MNIST train and test sets on the current backend, pixels in [0, 1]."""
    from ..data import load_mnist

    return (
        Dataset.from_numpy(*load_mnist("train", data_dir)),
        Dataset.from_numpy(*load_mnist("test", data_dir)),
    )


def record(name: str, profile: str, config: dict, runs: list[dict], started: float) -> dict:
    """The results record every experiment writes.

    ``runs`` holds one dict per (setting, seed): its settings, its seed, its curves and
    its final numbers. ``wall_seconds`` is the time since ``started`` (time.time()).
    """
    return {
        "experiment": name,
        "profile": profile,
        "config": config,
        "seeds": sorted({r["seed"] for r in runs if "seed" in r}),
        "runs": runs,
        "wall_seconds": round(time.time() - started, 2),
        "environment": {
            "minidni": __version__,
            "backend": backend.get_backend(),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
        },
    }


def save(results: dict, out: Path) -> Path:
    """Write ``<out>/<experiment>.json`` atomically and return its path."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{results['experiment']}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1))
    os.replace(tmp, path)
    return path
