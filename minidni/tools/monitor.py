"""Watching one training run: divergence and progress.

A run that diverges must not be recorded as if it were a result. :class:`Monitor` checks
the loss of every step (a host float already, so the check is free) and, at log points,
the parameters (one reduction per array, on the device). A run has diverged when

- a loss is NaN or infinite, or a parameter holds a NaN or an infinity anywhere;
- a loss is above ``LOSS_GROWTH`` (10^4) times the first loss of the run: a run whose
  loss has grown by four orders of magnitude is not coming back, even while its numbers
  are still finite (e.g. 6e19 with a learning rate of 1e9, at chance-level error).

The first such value raises :class:`Diverged` with the step. The experiment runner
(:func:`minidni.experiments.runner.guarded`) turns that, and numpy's floating-point
errors (overflow, invalid operations), into a run record with ``"diverged": true`` and
goes on with the other runs.

The monitor also advances the run's progress display (:mod:`minidni.tools.progress`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from .. import backend
from .progress import Progress

LOSS_GROWTH = 1e4  # a loss this many times the first one counts as diverged
LOSS_FLOOR = 1.0  # the first loss counts as at least this: a near-zero start (a task
# learned at once) must not turn every later wobble into "divergence"


class Diverged(ArithmeticError):
    """A training run went off the rails at ``step`` (None: unknown); ``what`` says how."""

    def __init__(self, step: int | None, what: str):
        super().__init__(f"diverged at step {step}: {what}")
        self.step, self.what = step, what


def check_loss(loss: float, step: int, name: str = "loss", first: float | None = None) -> None:
    """Raise :class:`Diverged` if ``loss`` is NaN or infinite, or (given the ``first``
    loss of the run) above ``LOSS_GROWTH`` times ``max(|first|, LOSS_FLOOR)``."""
    loss = float(loss)  # a host float, or a 0-d array of any backend
    if not math.isfinite(loss):
        raise Diverged(step, f"{name} is {loss}")
    if first is not None and loss > LOSS_GROWTH * max(abs(first), LOSS_FLOOR):
        raise Diverged(
            step, f"{name} {loss:.3g} is above {LOSS_GROWTH:g} x the first {name} ({first:.3g})"
        )


def check_parameters(params: Iterable[Any], step: int) -> None:
    """Raise :class:`Diverged` if any parameter (``.value``) holds a NaN or an infinity
    anywhere (one reduction per parameter, on its device)."""
    xp = backend.namespace()
    for i, p in enumerate(params):
        if not bool(backend.to_numpy(xp.all(xp.isfinite(p.value)))):
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
    The monitor of the run in progress is this process's *active* one
    (:func:`current_step`).
    """

    def __init__(self, total: int, unit: str = "step"):
        global _active
        self.progress = Progress(total, unit=unit)
        self.first: float | None = None
        self.last = 0
        _active = self

    def step(self, i: int, loss: float) -> None:
        self._guard(check_loss, loss, i, "loss", self.first)
        if self.first is None:
            self.first = float(loss)
        self.last = i
        self.progress.update(1)

    def check_parameters(self, i: int, params: Iterable[Any]) -> None:
        self._guard(check_parameters, params, i)

    def close(self) -> None:
        global _active
        self.progress.close()
        if _active is self:
            _active = None

    def _guard(self, check, *args) -> None:
        try:
            check(*args)
        except Diverged:
            self.close()
            raise


_active: Monitor | None = None


def current_step() -> int | None:
    """The step the active monitor's run is in (one after the last it saw), or None."""
    return None if _active is None else _active.last + 1


def close_active() -> None:
    """Close the active monitor, if any (its run ended with an error)."""
    if _active is not None:
        _active.close()
