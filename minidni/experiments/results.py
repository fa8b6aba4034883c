"""The results file every experiment writes: its record, atomic saving, and the code
that computed it.

A results file (``<out>/<NAME>.json``) holds the experiment's name and profile, its
settings (``config``), one record per run (settings, seed, curves, final numbers), the
wall time, and the environment that computed it: minidni's version, the backend, the
Python version and machine, a digest of the library's source (:func:`code_digest`) and
the git commit (:func:`git_commit`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import subprocess
import time
from pathlib import Path

from .. import __version__, backend


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
            "code": code_digest(),
            "commit": git_commit(),
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


def finished_runs(runs: list[dict]) -> list[dict]:
    """The runs that did not diverge."""
    return [r for r in runs if not r.get("diverged")]


@functools.cache
def code_digest() -> str:
    """A short SHA-256 of the library's source (``minidni/**/*.py`` but the plots): two
    results files with the same digest were computed by the same code."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        if "plots" not in path.relative_to(root).parts:
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


@functools.cache
def git_commit() -> str | None:
    """The git commit of the checkout the library runs from (``+dirty`` when its
    ``minidni/`` differs from that commit), or None outside a git checkout: with it, a
    results file names the code that computed it, and a stopped run can be resumed from
    that commit."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "minidni"],
            capture_output=True,
            text=True,
        )
    except OSError:  # no git on this machine
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
