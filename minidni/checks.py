"""Argument checks for the public constructors: a bad width, learning rate, T or
probability fails at once with a ValueError naming the class, the argument, what it
expects and what it got, instead of deep inside a forward pass or an optimizer step.

Each check returns the value, so a constructor reads ``self.lr = rate(self, "lr", lr)``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any


def _fail(owner: object, name: str, expected: str, value: Any) -> ValueError:
    where = owner if isinstance(owner, str) else type(owner).__name__
    return ValueError(f"{where}: {name} must be {expected}, got {value!r}")


def count(owner: object, name: str, value: Any, minimum: int = 1) -> int:
    """A whole number >= ``minimum`` (a width, a length, a number of steps)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise _fail(owner, name, f"a whole number >= {minimum}", value)
    return int(value)


def real(owner: object, name: str, value: Any, low: float = 0.0, high: float = math.inf) -> float:
    """A finite number in ``[low, high]`` (a learning rate, a scale, a weight)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or not low <= value <= high:
        span = f">= {low:g}" if high == math.inf else f"in [{low:g}, {high:g}]"
        raise _fail(owner, name, f"a finite number {span}", value)
    return float(value)


def rate(owner: object, name: str, value: Any) -> float:
    """A learning rate: finite and >= 0 (0 freezes the parameters)."""
    return real(owner, name, value, 0.0)


def probability(owner: object, name: str, value: Any) -> float:
    """A probability in [0, 1]."""
    return real(owner, name, value, 0.0, 1.0)


def widths(owner: object, name: str, value: Any) -> tuple[int, ...]:
    """A sequence of layer widths, each a whole number >= 1 (may be empty)."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise _fail(owner, name, "a list of whole numbers >= 1", value)
    for w in value:
        count(owner, f"every entry of {name}", w)
    return tuple(int(w) for w in value)
