"""The curriculum of the Copy and Repeat Copy tasks: which level to train on next.

A level is a pattern length N and, for Repeat Copy, a repeat count R; both start at 1.
After every training batch the batch's error is recorded; when the last ``window``
batches *of the current level* have a mean error strictly below ``threshold`` (the DNI
paper's 0.15 per sequence), the level is *solved* and the next one starts. Copy advances
N by 1; Repeat Copy alternates, N first: (N, R) = (1, 1), (2, 1), (2, 2), (3, 2), ...,
until R reaches ``max_repeats``, then only N grows. The tasks themselves are in
:mod:`minidni.data.copy_tasks`.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from .copy_tasks import copy_batch, repeat_copy_batch

TASKS = ("copy", "repeat_copy")


class Curriculum:
    """The level (N, R) of a Copy / Repeat Copy run, raised when it is solved.

    ``update(bits_error)`` takes one training batch's error in wrong bits per sequence
    and returns True when that batch completed a window of ``window`` batches at the
    current level whose mean error is strictly below ``threshold``; the level then
    advances (Copy: N += 1; Repeat Copy: N += 1 if N == R or R == max_repeats, else
    R += 1) and the window starts empty. ``solved`` is the (N, R) of the last level
    passed, (0, 0) before the first; ``solved_length`` is N * R of it.
    """

    def __init__(self, task: str, window: int = 10, threshold: float = 0.15, max_repeats: int = 10):
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; valid tasks are: {', '.join(TASKS)}")
        if window < 1 or max_repeats < 1 or not threshold > 0:
            raise ValueError(
                f"window and max_repeats must be >= 1 and threshold > 0, "
                f"got {window}, {max_repeats}, {threshold}"
            )
        self.task, self.window, self.threshold = task, window, threshold
        self.max_repeats = max_repeats
        self.n, self.r = 1, 1
        self.solved: tuple[int, int] = (0, 0)
        self.levels_passed = 0
        self._errors: deque[float] = deque(maxlen=window)

    @property
    def solved_length(self) -> int:
        """N * R of the hardest level solved (N for Copy); 0 before the first."""
        return self.solved[0] * self.solved[1]

    @property
    def solved_episode_length(self) -> int:
        """Time steps of an episode at the hardest level solved (:func:`episode_length`)."""
        return episode_length(self.task, *self.solved) if self.solved[0] else 0

    def mean_error(self) -> float:
        """Mean error of the batches in the window (nan when it is empty)."""
        return float(np.mean(self._errors)) if self._errors else float("nan")

    def update(self, error: float) -> bool:
        """Record one batch's error; advance (and return True) if the level is solved."""
        self._errors.append(float(error))
        if len(self._errors) < self.window or not self.mean_error() < self.threshold:
            return False
        self.solved = (self.n, self.r)
        self.levels_passed += 1
        if self.task == "copy" or self.n == self.r or self.r >= self.max_repeats:
            self.n += 1
        else:
            self.r += 1
        self._errors.clear()
        return True

    def batch(self, rng: np.random.Generator, batch_size: int, bits: int):
        """A host batch ``(x, y, mask)`` of ``batch_size`` episodes at the current level
        (:func:`~minidni.data.copy_tasks.copy_batch`, ``repeat_copy_batch``)."""
        if self.task == "copy":
            return copy_batch(rng, batch_size, self.n, bits)
        return repeat_copy_batch(rng, batch_size, self.n, self.r, bits, self.max_repeats)


def episode_length(task: str, n: int, r: int = 1) -> int:
    """Time steps of one episode at level (N, R): Copy 2N + 1 (pattern, delimiter,
    output); Repeat Copy N + 1 + N * R + 1 (pattern, delimiter, R copies, end marker)."""
    return 2 * n + 1 if task == "copy" else n + 1 + n * r + 1


def task_dims(task: str, bits: int) -> tuple[int, int]:
    """(D_in, D_out) of a task's batches with ``bits``-bit patterns."""
    return (bits + 1, bits) if task == "copy" else (bits + 2, bits + 1)
