"""Endless streams of episodes, cut into segments of T steps wherever the episodes end.

The continuous-stream setting of the recurrent Copy experiments (``--set stream=true``):
each of the B rows of a batch is one endless stream in which episodes follow each other
with no reset of the network's state and no alignment of the truncation boundaries to
the episodes, so a segment of T steps may end in the middle of an episode and the next
one start there. A new episode is drawn (``new_episode()``) whenever a row runs short,
so episodes drawn after a curriculum level-up are at the new level while those already
in the stream keep the level they were drawn at.

Per-episode errors are counted exactly once, whichever segments an episode spans:
:meth:`EpisodeStream.score` takes the logits the network produced for the last segment,
adds each step's errors to its episode's running totals and returns the episodes that
ended inside that segment. Arrays are host NumPy: x (B, T, D_in), y (B, T, D_out),
mask (B, T), logits (B, T, D_out).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

# One episode: x (L, D_in), y (L, D_out), mask (L,), and a tag (e.g. its level (N, R)).
Episode = tuple[np.ndarray, np.ndarray, np.ndarray, Any]


@dataclass
class Finished:
    """An episode that ended in the last segment: its tag, its length in steps, and its
    errors over its masked steps: ``wrong_bits`` (bits predicted wrong, a logit > 0
    meaning 1) and ``xent_bits`` (the binary cross-entropy, summed, in bits)."""

    tag: Any
    length: int
    wrong_bits: float
    xent_bits: float


class EpisodeStream:
    """B endless streams of episodes from ``new_episode() -> (x, y, mask, tag)``.

    ``next_segment(T)`` returns the next T steps of every row, (x, y, mask); after training
    on them, ``score(logits)`` returns the :class:`Finished` episodes of that segment.
    ``started`` counts the episodes drawn so far.
    """

    def __init__(self, batch_size: int, new_episode: Callable[[], Episode]):
        if batch_size < 1:
            raise ValueError(f"EpisodeStream: batch_size must be >= 1, got {batch_size}")
        self.batch_size, self.new_episode = batch_size, new_episode
        self.started = 0
        # per row: the steps not yet served (x, y, mask, ends, episode index) ...
        self._rows: list[list[Any]] = [[] for _ in range(batch_size)]
        # ... the episodes they belong to, and the running errors of the current episode
        self._episodes: list[dict[int, tuple[Any, int]]] = [{} for _ in range(batch_size)]
        self._running = [[0.0, 0.0] for _ in range(batch_size)]
        self._served: list[tuple[np.ndarray, np.ndarray, list]] | None = None

    def _draw(self, row: int) -> None:
        x, y, mask, tag = self.new_episode()
        n = x.shape[0]
        ends = np.zeros(n, dtype=bool)
        ends[-1] = True
        self._episodes[row][self.started] = (tag, n)
        ids = np.full(n, self.started)
        self.started += 1
        self._rows[row].append((x, y, mask, ends, ids))

    def _take(self, row: int, T: int) -> tuple[np.ndarray, ...]:
        while sum(part[0].shape[0] for part in self._rows[row]) < T:
            self._draw(row)
        parts = [np.concatenate(a, axis=0) for a in zip(*self._rows[row])]
        self._rows[row] = [tuple(a[T:] for a in parts)]
        return tuple(a[:T] for a in parts)

    def next_segment(self, T: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The next T steps of every row: x (B, T, D_in), y (B, T, D_out), mask (B, T)."""
        if T < 1:
            raise ValueError(f"EpisodeStream: a segment needs T >= 1 steps, got {T}")
        rows = [self._take(r, T) for r in range(self.batch_size)]
        x, y, mask, ends, ids = (np.stack(a) for a in zip(*rows))
        self._served = (y, mask, ends, ids)
        return x, y, mask

    def score(self, logits: np.ndarray) -> list[Finished]:
        """Add the last segment's per-step errors to their episodes; return those that ended."""
        if self._served is None:
            raise ValueError("EpisodeStream.score: no segment was served")
        y, mask, ends, ids = self._served
        self._served = None
        if logits.shape != y.shape:
            raise ValueError(f"EpisodeStream.score: logits {logits.shape} != targets {y.shape}")
        z = logits.astype(np.float64)
        wrong = (((z > 0) != (y > 0.5)).sum(axis=2)) * mask  # (B, T)
        nats = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))  # (B, T, D)
        xent = nats.sum(axis=2) * mask / math.log(2.0)  # (B, T), in bits
        done = []
        for r in range(self.batch_size):
            acc = self._running[r]
            for t in range(y.shape[1]):
                acc[0] += wrong[r, t]
                acc[1] += xent[r, t]
                if ends[r, t]:
                    tag, length = self._episodes[r].pop(int(ids[r, t]))
                    done.append(Finished(tag, length, float(acc[0]), float(acc[1])))
                    acc[0] = acc[1] = 0.0
        return done
