"""Update schedules: which modules run their backward pass and update on a step.

A schedule's :meth:`~Schedule.sample` returns one bool per module for the coming step.
In the paper's feed-forward experiments (Jaderberg et al. 2017, section 4.1) each
layer's backward pass and update happen only with probability ``p_update`` after each
forward pass, independently per layer: :class:`Stochastic`. :class:`Lockstep` runs every
module on every step.
"""

from __future__ import annotations

from .backend import RNG


class Schedule:
    """Base class: decide which of ``n`` modules update on the next step."""

    def sample(self, n: int) -> list[bool]:
        raise NotImplementedError


class Lockstep(Schedule):
    """Every module runs its backward pass and updates on every step."""

    def sample(self, n: int) -> list[bool]:
        return [True] * n

    def __repr__(self) -> str:
        return "Lockstep()"


class Stochastic(Schedule):
    """Each module updates with probability ``p_update``, independently per module and step.

    The coin flips come from the host-side generator of ``rng`` (same seed, same flips).
    """

    def __init__(self, p_update: float, rng: RNG):
        if not 0.0 <= p_update <= 1.0:
            raise ValueError(f"Stochastic: p_update must lie in [0, 1], got {p_update}")
        self.p_update = p_update
        self.rng = rng

    def sample(self, n: int) -> list[bool]:
        return [self.rng.bernoulli(self.p_update) for _ in range(n)]

    def __repr__(self) -> str:
        return f"Stochastic(p_update={self.p_update})"
