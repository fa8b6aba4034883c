"""Update schedules: which modules run their backward pass and update, and how stale.

A schedule answers three questions for a chain of ``n`` modules ``f_1..f_n``; each answer
is a list with one entry per module, entry ``i-1`` for f_i (notation of
:mod:`minidni.decoupled`):

- :meth:`~Schedule.sample` (once per step): whether *this step's forward pass* of f_i
  will be backpropagated and f_i updated. A module whose flag is False runs no backward
  pass for that forward pass, so it also produces no target: ``M_i``, the SG model at
  the boundary just before it, does not learn from it either.
- :meth:`~Schedule.sample_inputs` (once per step): whether f_i's synthetic-input model
  ``I_i`` learns on this step (complete unlock only; the flag of f_1, whose input is x
  itself, is unused).
- :meth:`~Schedule.delays` (fixed): the staleness ``k_i`` of f_i: its backward pass at
  step t is the one for its forward pass of step ``t - k_i``.

The schedules:

- :class:`Lockstep`: every module, every step, no delay.
- :class:`Stochastic`: the paper's feed-forward experiments (Jaderberg et al., ICML
  2017, section 3.3): after each forward pass each module's backward pass and update happen
  with probability ``p_update``, independently per module; each synthetic-input model
  learns with probability ``p_update`` too, independently. An SG model learns exactly
  when the module after its boundary ran backward (that is when its target exists), so
  it is covered by that module's coin.
- :class:`RoundRobin`: ``per_step`` modules a step in turn (one by default), as if the
  workers took turns.
- :class:`Delayed`: f_i works with activations and gradients ``k_i`` steps stale, what
  an asynchronous worker would see; wraps another schedule for the flags.

With ``p_update = 1``, ``per_step = n`` and zero delays every schedule is exactly
:class:`Lockstep` (tests/test_schedules.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from .backend import RNG


class Schedule:
    """Base class: lockstep flags, no delay. Subclasses override what they change."""

    def sample(self, n: int) -> list[bool]:
        """Whether each of the ``n`` modules backpropagates this step's forward pass."""
        raise NotImplementedError

    def sample_inputs(self, n: int) -> list[bool]:
        """Whether each module's synthetic-input model learns on this step."""
        return [True] * n

    def delays(self, n: int) -> list[int]:
        """Staleness ``k_i`` of each module's backward pass, in steps."""
        return [0] * n


class Lockstep(Schedule):
    """Every module runs its backward pass and updates on every step."""

    def sample(self, n: int) -> list[bool]:
        return [True] * n

    def __repr__(self) -> str:
        return "Lockstep()"


class Stochastic(Schedule):
    """Each module updates with probability ``p_update``, independently per module and step;
    so does each synthetic-input model.

    The coin flips come from the host-side generator of ``rng`` (same seed, same flips);
    the input models' coins from ``input_rng`` (default: ``rng`` itself, drawn after the
    modules' coins of the same step).
    """

    def __init__(self, p_update: float, rng: RNG, input_rng: RNG | None = None):
        if not 0.0 <= p_update <= 1.0:
            raise ValueError(f"Stochastic: p_update must lie in [0, 1], got {p_update}")
        self.p_update = p_update
        self.rng = rng
        self.input_rng = input_rng or rng

    def sample(self, n: int) -> list[bool]:
        return [self.rng.bernoulli(self.p_update) for _ in range(n)]

    def sample_inputs(self, n: int) -> list[bool]:
        return [self.input_rng.bernoulli(self.p_update) for _ in range(n)]

    def __repr__(self) -> str:
        return f"Stochastic(p_update={self.p_update})"


class RoundRobin(Schedule):
    """``per_step`` modules a step, in turn: on step t, modules ``t*per_step, ...,
    t*per_step + per_step - 1`` (mod n). A module's synthetic-input model learns on its
    module's turn. ``per_step >= n`` is lockstep."""

    def __init__(self, per_step: int = 1):
        if per_step < 1:
            raise ValueError(f"RoundRobin: per_step must be >= 1, got {per_step}")
        self.per_step = per_step
        self.t = 0  # steps sampled for the modules
        self.t_inputs = 0  # steps sampled for the synthetic-input models

    @staticmethod
    def _turn(t: int, n: int, per_step: int) -> list[bool]:
        chosen = {(t * per_step + j) % n for j in range(min(per_step, n))}
        return [i in chosen for i in range(n)]

    def sample(self, n: int) -> list[bool]:
        self.t += 1
        return self._turn(self.t - 1, n, self.per_step)

    def sample_inputs(self, n: int) -> list[bool]:
        self.t_inputs += 1
        return self._turn(self.t_inputs - 1, n, self.per_step)

    def __repr__(self) -> str:
        return f"RoundRobin(per_step={self.per_step})"


class Delayed(Schedule):
    """f_i backpropagates, at step t, its forward pass of step ``t - k_i``.

    ``k`` is one staleness for every module or one per module (``k[i-1]`` for f_i).
    Which forward passes are backpropagated at all is decided by ``base`` (default
    :class:`Lockstep`) when they happen. :class:`~minidni.decoupled.DecoupledNet` runs
    the delays; what is stale, and what is not, is documented in :mod:`minidni.unlock`.
    """

    def __init__(self, k: int | Sequence[int], base: Schedule | None = None):
        ks = [k] if isinstance(k, int) else list(k)
        if any(not isinstance(d, int) or d < 0 for d in ks):
            raise ValueError(f"Delayed: delays must be integers >= 0, got {k!r}")
        self.k = k
        self.base = base or Lockstep()

    def sample(self, n: int) -> list[bool]:
        return self.base.sample(n)

    def sample_inputs(self, n: int) -> list[bool]:
        return self.base.sample_inputs(n)

    def delays(self, n: int) -> list[int]:
        if isinstance(self.k, int):
            return [self.k] * n
        if len(self.k) != n:
            raise ValueError(f"Delayed: {len(self.k)} delays given for {n} modules")
        return list(self.k)

    def __repr__(self) -> str:
        return f"Delayed(k={self.k!r}, base={self.base!r})"
