"""The paper's experiments, one module each, run by ``minidni reproduce NAME``.

Every experiment module defines:

- ``PROFILES``: named settings (``smoke``: seconds, used by the tests; ``quick``: at most
  20-30 minutes on a 2-core CPU; ``full``: the paper's scale, for a GPU; rnn-copy also
  ``long``: hours on a CPU), and optionally ``CHOICES``, the names its ``--set`` values may take;
- ``jobs(config) -> list[dict]``: one job per run, the grid of its settings
  (:func:`.grid.grid`);
- ``run_job(job) -> dict``: train one run and return its record;
- ``table(results) -> str``: the markdown table printed at the end;
- optionally ``summary(run) -> str`` (the line printed as a run finishes) and
  ``notes(config, log) -> dict`` (keys the results file records beside the runs).

:func:`run` does the rest for every experiment (:func:`.runner.run_experiment`): it checks
the whole configuration and the data before any work (:mod:`.preflight`), runs the jobs,
saves ``<out>/<NAME>.json`` after every finished run (see :mod:`.results`), resumes from
that file (or moves it aside, never losing it), and prints the table. No experiment
imports another: what several share lives in :mod:`.grid` and :mod:`.jobs`, or in the
library itself.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

EXPERIMENTS = {
    "ff": "minidni.experiments.ff",
    "update-prob": "minidni.experiments.update_prob",
    "rnn-copy": "minidni.experiments.rnn_copy",
    "rnn-ptb": "minidni.experiments.rnn_ptb",
    "unlock": "minidni.experiments.unlock",
    "ff-cnn": "minidni.experiments.ff_cnn",
    "multinet": "minidni.experiments.multinet",
}
PROFILE_NAMES = ("smoke", "quick", "long", "full")  # "long": rnn-copy only


def default_out(profile: str) -> Path:
    """Where ``minidni reproduce`` writes by default: ``results/<profile>``, so that the
    results of one profile never meet another's (``results/long`` is kept in git)."""
    return Path("results") / profile


def load(name: str) -> ModuleType:
    """The module of experiment ``name``."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; valid ones are: {', '.join(EXPERIMENTS)}")
    return importlib.import_module(EXPERIMENTS[name])


def configure(name: str, profile: str, overrides: dict | None = None) -> dict:
    """The settings experiment ``name`` runs with; a ValueError for an unknown name or key."""
    from .settings import configure as apply_overrides

    if profile not in PROFILE_NAMES:
        raise ValueError(f"unknown profile {profile!r}; valid ones are: {', '.join(PROFILE_NAMES)}")
    module = load(name)
    if profile not in module.PROFILES:
        have = ", ".join(module.PROFILES)
        raise ValueError(
            f"experiment {name!r} has no profile {profile!r}; its profiles are: {have}"
        )
    return apply_overrides(module.PROFILES, profile, overrides, getattr(module, "CHOICES", None))


def check(name: str, config: dict) -> None:
    """Everything about ``config`` that can fail, checked before any work: the settings
    together and the machine's memory (a ValueError), the data files (a DataError)."""
    from . import preflight

    preflight.check(name, config)
    preflight.fetch_data(name, config)


def run(
    name: str,
    profile: str,
    out: Path,
    log: Any = print,
    overrides: dict | None = None,
    blas_threads: int | None = None,
) -> dict:
    """Run experiment ``name`` with ``profile`` and write its results JSON under ``out``.

    ``overrides`` replaces some of the profile's settings (e.g. ``{"steps": 20000}``);
    ``blas_threads`` is the BLAS thread count of every run (default: one, or what the
    environment asks for, :mod:`minidni.tools.threads`).
    """
    from .runner import run_experiment

    config = configure(name, profile, overrides)  # bad names and settings fail before any work
    check(name, config)
    module = load(name)
    todo = module.jobs(config)
    notes = module.notes(config, log) if hasattr(module, "notes") else {}
    summary = getattr(module, "summary", None)
    return run_experiment(
        name,
        profile,
        config,
        todo,
        module.run_job,
        module.table,
        Path(out),
        log,
        summary,
        module.jobs,
        blas_threads,
        **notes,
    )
