"""The paper's experiments, one module each, run by ``minidni reproduce NAME``.

Every experiment module defines ``PROFILES`` (``smoke``: seconds, used by the tests;
``quick``: at most 20-30 minutes on a 2-core CPU; ``full``: the paper's scale, for a GPU)
and ``run(profile, out, log) -> dict``, which writes ``<out>/<NAME>.json``: the config,
the seeds, per-run curves, final numbers and the wall time (see :mod:`.common`).
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


def load(name: str) -> ModuleType:
    """The module of experiment ``name``."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; valid ones are: {', '.join(EXPERIMENTS)}")
    return importlib.import_module(EXPERIMENTS[name])


def configure(name: str, profile: str, overrides: dict | None = None) -> dict:
    """The settings experiment ``name`` runs with; a ValueError for an unknown name or key."""
    from .common import configure as apply_overrides

    if profile not in PROFILE_NAMES:
        raise ValueError(f"unknown profile {profile!r}; valid ones are: {', '.join(PROFILE_NAMES)}")
    module = load(name)
    if profile not in module.PROFILES:
        have = ", ".join(module.PROFILES)
        raise ValueError(
            f"experiment {name!r} has no profile {profile!r}; its profiles are: {have}"
        )
    return apply_overrides(module.PROFILES, profile, overrides, getattr(module, "CHOICES", None))


def run(
    name: str, profile: str, out: Path, log: Any = print, overrides: dict | None = None
) -> dict:
    """Run experiment ``name`` with ``profile`` and write its results JSON under ``out``.

    ``overrides`` replaces some of the profile's settings (e.g. ``{"steps": 20000}``).
    """
    configure(name, profile, overrides)  # bad names and settings fail before any work
    return load(name).run(profile, Path(out), log, overrides)
