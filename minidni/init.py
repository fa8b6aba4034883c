"""Weight initialisers. Each draws host-side from an :class:`~minidni.backend.RNG`."""

from __future__ import annotations

import math
from typing import Any

from . import backend

INITS = ("he", "xavier", "lecun", "zeros")


def init_weight(rng: backend.RNG, fan_in: int, fan_out: int, kind: str = "he") -> Any:
    """A (fan_in, fan_out) weight matrix.

    - ``he``:     N(0, 2 / fan_in), for layers followed by ReLU (He et al. 2015);
    - ``xavier``: U(-a, a), a = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010);
    - ``lecun``:  N(0, 1 / fan_in), for tanh / sigmoid / linear outputs;
    - ``zeros``:  all zero, e.g. the output layer of a synthetic-gradient model.
    """
    shape = (fan_in, fan_out)
    if kind == "he":
        return rng.normal(shape, math.sqrt(2.0 / fan_in))
    if kind == "lecun":
        return rng.normal(shape, math.sqrt(1.0 / fan_in))
    if kind == "xavier":
        a = math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(shape, -a, a)
    if kind == "zeros":
        return zeros(shape)
    raise ValueError(f"unknown initialiser {kind!r}; valid ones are: {', '.join(INITS)}")


def zeros(shape: tuple[int, ...]) -> Any:
    """Zeros of ``shape`` in the default dtype on the current backend."""
    return backend.namespace().zeros(shape, dtype=backend.dtype())


def ones(shape: tuple[int, ...]) -> Any:
    """Ones of ``shape`` in the default dtype on the current backend."""
    return backend.namespace().ones(shape, dtype=backend.dtype())
