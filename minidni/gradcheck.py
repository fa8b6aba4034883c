"""Finite-difference gradient checks (float64), after Chainer's ``check_backward``.

For a module ``f`` we check the scalar ``L = sum(f(x) * R)`` for a fixed random upstream
gradient ``R``: its analytic gradient is ``f.backward(R, cache)``. Each check compares
the analytic and the central-difference estimates

    numeric = (L(theta + eps u) - L(theta - eps u)) / (2 eps)    analytic = <grad, u>

along several random unit directions ``u`` and, for small arrays, along every coordinate,
and reports the largest relative error ``|numeric - analytic| / max(|numeric|,
|analytic|, tiny)``. Inputs are moved away from kinks (|x| < ``margin``) first, so that
ReLU is checked where it is differentiable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import backend
from .layers import Module

Array = Any
TINY = 1e-12


def relative_error(a: float, b: float) -> float:
    """``|a - b| / max(|a|, |b|, 1e-12)``."""
    return abs(a - b) / max(abs(a), abs(b), TINY)


def dodge_kinks(x: Array, margin: float = 1e-3) -> Array:
    """Push entries with ``|x| < margin`` out to ``+-margin`` (sign kept, 0 goes to +)."""
    xp = backend.namespace()
    return xp.where(xp.abs(x) < margin, xp.where(x < 0, -margin, margin), x)


def _directions(rng: backend.RNG, shape: tuple[int, ...], n_random: int, max_elementwise: int):
    """Random unit directions, then every coordinate when the array is small."""
    xp = backend.namespace()
    for _ in range(n_random):
        u = rng.normal(shape)
        yield u / xp.sqrt(xp.sum(u * u))
    size = 1
    for s in shape:
        size *= s
    if size <= max_elementwise:
        for k in range(size):
            e = backend.asarray([1.0 if i == k else 0.0 for i in range(size)])
            yield xp.reshape(e, shape)


def check_directional(
    objective: Callable[[], float],
    get: Callable[[], Array],
    put: Callable[[Array], None],
    grad: Array,
    rng: backend.RNG,
    eps: float = 1e-6,
    n_random: int = 3,
    max_elementwise: int = 64,
) -> float:
    """Largest relative error of ``grad`` for the array reached through ``get``/``put``.

    ``objective()`` evaluates the scalar loss at the current value of that array.
    """
    xp = backend.namespace()
    x0 = get()
    worst = 0.0
    for u in _directions(rng, tuple(x0.shape), n_random, max_elementwise):
        put(x0 + eps * u)
        plus = objective()
        put(x0 - eps * u)
        minus = objective()
        put(x0)
        numeric = (plus - minus) / (2 * eps)
        analytic = backend.to_float(xp.sum(grad * u))
        worst = max(worst, relative_error(numeric, analytic))
    return worst


def check_module(
    module: Module,
    x: Array,
    rng: backend.RNG,
    train: bool = True,
    eps: float = 1e-6,
    **kwargs: Any,
) -> dict[str, float]:
    """Relative errors of a module's input and parameter gradients, keyed by name.

    The module must be built in float64 (``with backend.use_dtype("float64")``). In
    training mode BatchNorm moves its running statistics on every call, which the check
    does not read, so repeated forward passes are harmless.
    """
    xp = backend.namespace()
    out, cache = module.forward(x, train)
    r = rng.normal(tuple(out.shape))
    module.zero_grad()
    dx = module.backward(r, cache)
    grads = {p: p.grad for p in module.parameters()}

    state = {"x": x}

    def objective() -> float:
        return backend.to_float(xp.sum(module.forward(state["x"], train)[0] * r))

    def put_x(v: Array) -> None:
        state["x"] = v

    errors = {"x": check_directional(objective, lambda: state["x"], put_x, dx, rng, eps, **kwargs)}
    for i, p in enumerate(module.parameters()):

        def put(v: Array, p=p) -> None:
            p.value = v

        name = f"{i}.{p.name}"
        errors[name] = check_directional(objective, lambda p=p: p.value, put, grads[p], rng, eps, **kwargs)
    module.zero_grad()
    return errors


def check_loss(
    loss_fn: Callable[[Array, Array], tuple[Array, Array]],
    pred: Array,
    target: Array,
    rng: backend.RNG,
    eps: float = 1e-6,
    **kwargs: Any,
) -> float:
    """Relative error of ``loss_fn(pred, target)[1]``, the gradient w.r.t. ``pred``."""
    _, dpred = loss_fn(pred, target)
    state = {"pred": pred}

    def put(v: Array) -> None:
        state["pred"] = v

    def objective() -> float:
        return backend.to_float(loss_fn(state["pred"], target)[0])

    return check_directional(objective, lambda: state["pred"], put, dpred, rng, eps, **kwargs)
