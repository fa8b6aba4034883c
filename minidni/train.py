"""A small training loop for classifiers, shared by the demo and the experiments.

A model is anything with ``step(x, labels) -> {"loss": float, ...}`` and
``predict(x) -> logits`` (e.g. :class:`minidni.decoupled.DecoupledNet`). Data sets are
host NumPy arrays, moved to the current backend once; minibatches are drawn from a
host-side shuffle, so one seed gives the same batches on every backend.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import backend, checks
from .losses import error_rate
from .optim import LR_SCHEDULES
from .tools.monitor import Monitor, optimizers_of, parameters_of


@dataclass
class Dataset:
    """Inputs x (N, D) and integer labels y (N,) on the current backend."""

    x: Any
    y: Any

    @classmethod
    def from_numpy(cls, x: np.ndarray, y: np.ndarray) -> Dataset:
        return cls(backend.asarray(x), backend.asarray(y.astype(np.int64)))

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def take(self, index: np.ndarray) -> tuple[Any, Any]:
        """Rows ``index`` (host int array) as a (x (K, D), y (K,)) batch."""
        xp = backend.namespace()
        i = backend.asarray(index.astype(np.int64))
        return xp.take(self.x, i, axis=0), xp.take(self.y, i, axis=0)


def batches(n: int, batch_size: int, rng: backend.RNG):
    """Endless host index batches: reshuffled every epoch, the last short batch dropped."""
    while True:
        order = rng.permutation(n)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start : start + batch_size]


def evaluate(predict: Callable[[Any], Any], data: Dataset, batch_size: int = 1000) -> float:
    """Classification error of ``predict`` on ``data``, in [0, 1]."""
    wrong = 0.0
    for start in range(0, len(data), batch_size):
        x, y = data.take(np.arange(start, min(start + batch_size, len(data))))
        wrong += error_rate(predict(x), y) * int(x.shape[0])
    return wrong / len(data)


@dataclass
class History:
    """What a run recorded: test error at evaluation steps, losses, wall time."""

    steps: list[int] = field(default_factory=list)
    test_error: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def final_test_error(self) -> float:
        return self.test_error[-1]


def fit(
    model: Any,
    train: Dataset,
    test: Dataset,
    steps: int,
    rng: backend.RNG,
    batch_size: int = 256,
    eval_every: int = 500,
    log: Callable[[str], None] | None = None,
    lr_schedule: str = "constant",
) -> History:
    """Train ``model`` for ``steps`` minibatch steps, evaluating every ``eval_every`` steps
    and at the end. ``train_loss`` holds the mean training loss since the last evaluation.

    ``lr_schedule`` (a name in :data:`minidni.optim.LR_SCHEDULES`: ``"constant"`` or
    ``"cosine"``) scales the learning rate of every optimizer of the model (modules and
    SG / synthetic-input models alike) at each step; the rates are restored at the end.

    A NaN or infinite loss (any step) or parameter (at evaluation steps) raises
    :class:`~minidni.tools.monitor.Diverged` naming the step; progress is shown as it goes.
    """
    checks.count("fit", "steps", steps)
    checks.count("fit", "batch_size", batch_size)
    checks.count("fit", "eval_every", eval_every)
    if batch_size > len(train):
        raise ValueError(f"fit: batch_size {batch_size} exceeds the {len(train)} training examples")
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(
            f"fit: lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {lr_schedule!r}"
        )
    scale = LR_SCHEDULES[lr_schedule]
    base_lrs = [(opt, opt.lr) for opt in optimizers_of(model)]
    history = History()
    start, running = time.perf_counter(), []
    index = batches(len(train), batch_size, rng)
    monitor = Monitor(steps)
    try:
        for step in range(1, steps + 1):
            for opt, lr in base_lrs:
                opt.lr = lr * scale(step, steps)
            x, y = train.take(next(index))
            running.append(model.step(x, y)["loss"])
            monitor.step(step, running[-1])
            if step % eval_every == 0 or step == steps:
                monitor.check_parameters(step, parameters_of(model))
                history.steps.append(step)
                history.test_error.append(evaluate(model.predict, test))
                history.train_loss.append(float(np.mean(running)))
                running = []
                if log is not None:
                    log(
                        f"step {step:6d}  train loss {history.train_loss[-1]:.4f}  "
                        f"test error {100 * history.test_error[-1]:5.2f}%  "
                        f"{time.perf_counter() - start:6.1f}s"
                    )
    finally:  # leave the model's learning rates as they were
        for opt, lr in base_lrs:
            opt.lr = lr
    monitor.close()
    history.seconds = time.perf_counter() - start
    return history
