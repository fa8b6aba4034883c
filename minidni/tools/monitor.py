"""Watching one training run: divergence (NaN / inf) and progress.

A run that diverges must not be recorded as if it were a result. :class:`Monitor` checks
the loss of every step (a host float already, so the check is free) and, at log points,
the parameters (one reduction per array, on the device); the first non-finite value
raises :class:`Diverged` with the step. The experiment runner
(:func:`minidni.experiments.runner.run_jobs`) turns that into a run record with
``"diverged": true`` and goes on with the other runs.

The monitor also advances the run's progress display (:mod:`minidni.tools.progress`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from .. import backend
from .progress import Progress


class Diverged(ArithmeticError):
    """A training run produced a NaN or an infinity at ``step``; ``what`` says where."""

    def __init__(self, step: int, what: str):
        super().__init__(f"diverged at step {step}: {what}")
        self.step, self.what = step, what


def check_loss(loss: float, step: int, name: str = "loss") -> None:
    """Raise :class:`Diverged` if ``loss`` is NaN or infinite."""
    if not math.isfinite(loss):
        raise Diverged(step, f"{name} is {loss}")


def check_parameters(params: Iterable[Any], step: int) -> None:
    """Raise :class:`Diverged` if any parameter (``.value``) holds a NaN or an infinity.

    One sum per parameter: a NaN or inf anywhere makes the sum non-finite (an overflow of
    the sum of finite values would too, and means the run has blown up anyway)."""
    xp = backend.namespace()
    for i, p in enumerate(params):
        if not math.isfinite(backend.to_float(xp.sum(p.value))):
            name = getattr(p, "name", "") or f"#{i}"
            raise Diverged(step, f"parameter {name} {tuple(p.value.shape)} is not finite")


def _submodels(model: Any) -> list[Any]:
    """The SG models (``sg``, ``sgs``) and synthetic-input models (``inputs``) of a
    model, where it has them."""
    parts = [getattr(model, "sg", None)]
    for name in ("sgs", "inputs"):
        parts += getattr(model, name, None) or []
    return [m for m in parts if m is not None]


def parameters_of(model: Any) -> list[Any]:
    """Every trainable parameter of ``model``: its ``parameters()`` (if it has them),
    and those of its ``modules``, SG models (``sgs``, ``sg``) and synthetic-input
    models (``inputs``): a :class:`~minidni.decoupled.DecoupledNet`,
    :class:`~minidni.unlock.UnlockedNet` or :class:`~minidni.tbptt.TBPTT`."""
    params = list(model.parameters()) if hasattr(model, "parameters") else []
    for m in list(getattr(model, "modules", None) or []) + _submodels(model):
        params += (m.net if hasattr(m, "net") else m).parameters()
    return params


def optimizers_of(model: Any) -> list[Any]:
    """Every optimizer of ``model``: its own (``opts``, ``opt``) and those of the SG and
    synthetic-input models that :func:`parameters_of` visits."""
    opts = list(getattr(model, "opts", None) or [])
    for part in [model, *_submodels(model)]:
        if getattr(part, "opt", None) is not None:
            opts.append(part.opt)
    return opts


class Monitor:
    """Divergence checks and progress for one run of ``total`` steps.

    ``step(i, loss)`` after every step; ``check_parameters(i, params)`` at log points;
    ``close()`` at the end. Raising :class:`Diverged` closes the progress display first.
    """

    def __init__(self, total: int, unit: str = "step"):
        self.progress = Progress(total, unit=unit)

    def step(self, i: int, loss: float) -> None:
        self._guard(check_loss, loss, i)
        self.progress.update(1)

    def check_parameters(self, i: int, params: Iterable[Any]) -> None:
        self._guard(check_parameters, params, i)

    def close(self) -> None:
        self.progress.close()

    def _guard(self, check, *args) -> None:
        try:
            check(*args)
        except Diverged:
            self.close()
            raise
