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

import numpy as np

from . import backend
from .layers import Module

Array = Any
TINY = 1e-12


def dodge_kinks(x: Array, margin: float = 1e-3) -> Array:
    """Push entries with ``|x| < margin`` out to ``+-margin`` (sign kept, 0 goes to +)."""
    xp = backend.namespace()
    sign = 2.0 * xp.astype(x >= 0, x.dtype) - 1.0
    return xp.where(xp.abs(x) < margin, margin * sign, x)


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
    """Relative error of ``grad`` for the array reached through ``get``/``put``.

    ``objective()`` evaluates the scalar loss at the current value of that array. The
    directional derivatives along all directions form two vectors, numeric and analytic;
    the result is ``||numeric - analytic|| / max(||numeric||, ||analytic||, 1e-12)``.
    """
    xp = backend.namespace()
    x0 = get()
    numeric, analytic = [], []
    for u in _directions(rng, tuple(x0.shape), n_random, max_elementwise):
        put(x0 + eps * u)
        plus = objective()
        put(x0 - eps * u)
        minus = objective()
        put(x0)
        numeric.append((plus - minus) / (2 * eps))
        analytic.append(backend.to_float(xp.sum(grad * u)))
    num, ana = np.asarray(numeric), np.asarray(analytic)
    scale = max(np.linalg.norm(num), np.linalg.norm(ana), TINY)
    return float(np.linalg.norm(num - ana) / scale)


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
        errors[name] = check_directional(
            objective, lambda p=p: p.value, put, grads[p], rng, eps, **kwargs
        )
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


def check_recurrent(
    core: Any,
    x: Array,
    state: tuple[Array, Array],
    rng: backend.RNG,
    eps: float = 1e-6,
    **kwargs: Any,
) -> dict[str, float]:
    """Relative errors of a recurrent core's gradients (see :class:`minidni.lstm.LSTM`).

    The scalar is ``L = sum(hs * R) + sum(h_T * R_h) + sum(c_T * R_c)`` for fixed random
    R, R_h, R_c, so the gradient passed in for the final state (``dstate_T``) is checked
    along with the one returned for the initial state (keys ``h_0``, ``c_0``), the input
    ``x`` and every parameter.
    """
    xp = backend.namespace()
    hs, (h_T, c_T), cache = core.forward(x, state)
    r, r_h, r_c = (
        rng.normal(tuple(hs.shape)),
        rng.normal(tuple(h_T.shape)),
        rng.normal(tuple(c_T.shape)),
    )
    core.zero_grad()
    dx, (dh0, dc0) = core.backward(r, (r_h, r_c), cache)
    grads = {p: p.grad for p in core.parameters()}
    inputs = {"x": x, "h_0": state[0], "c_0": state[1]}

    def objective() -> float:
        hs, (h, c), _ = core.forward(inputs["x"], (inputs["h_0"], inputs["c_0"]))
        return backend.to_float(xp.sum(hs * r) + xp.sum(h * r_h) + xp.sum(c * r_c))

    errors = {}
    for key, grad in (("x", dx), ("h_0", dh0), ("c_0", dc0)):

        def put(v: Array, key=key) -> None:
            inputs[key] = v

        errors[key] = check_directional(
            objective, lambda key=key: inputs[key], put, grad, rng, eps, **kwargs
        )
    for i, p in enumerate(core.parameters()):

        def put_p(v: Array, p=p) -> None:
            p.value = v

        errors[f"{i}.{p.name}"] = check_directional(
            objective, lambda p=p: p.value, put_p, grads[p], rng, eps, **kwargs
        )
    core.zero_grad()
    return errors


def standard_cases(rng: backend.RNG) -> list[tuple[str, Callable[[], float]]]:
    """One ``(name, check)`` per layer and loss; each check returns the worst relative error.

    The losses are every loss the training code uses: softmax cross-entropy, mse (SG,
    synthetic-input and aux models), sigmoid BCE, masked over time steps as in the Copy
    tasks, and the sequence cross-entropy of char-PTB.

    Call inside ``backend.use_dtype("float64")``. ``minidni gradcheck`` prints these.
    """
    from . import conv, layers, losses, lstm, pooling

    b, d_in, d_out = 5, 4, 3

    def module_case(make: Callable[[], Module], dodge: bool = False, train: bool = True):
        def run() -> float:
            x = rng.normal((b, d_in))
            x = dodge_kinks(x) if dodge else x
            module = make()
            if not train:  # give the running statistics non-trivial values first
                module.forward(rng.normal((b, d_in)) * 2.0 + 0.5, True)
            return max(check_module(module, x, rng, train=train).values())

        return run

    def lstm_case(t_len: int, h: int, random_state: bool):
        def run() -> float:
            core = lstm.LSTM(d_in, h, rng)
            state = (
                (rng.normal((b, h)), rng.normal((b, h))) if random_state else core.initial_state(b)
            )
            return max(check_recurrent(core, rng.normal((b, t_len, d_in)), state, rng).values())

        return run

    def seq_linear_case() -> float:
        module = lstm.SeqLinear(d_in, d_out, rng)
        return max(check_module(module, rng.normal((b, 3, d_in)), rng).values())

    def map_case(make: Callable[[], Module], shape: tuple, train: bool = True):
        """A layer on (B, C, H, W) maps, with a Gaussian input of ``shape``."""

        def run() -> float:
            module = make()
            if not train:  # give the running statistics non-trivial values first
                module.forward(rng.normal(shape) * 2.0 + 0.5, True)
            return max(check_module(module, rng.normal(shape), rng, train=train).values())

        return run

    def loss_case(fn: Callable, make_target: Callable[[], Array], shape: tuple = (b, d_out)):
        return lambda: check_loss(fn, rng.normal(shape), make_target(), rng)

    def masked_bce_case() -> float:
        """The Copy tasks' loss: (B, T, D) bits, counted where a (B, T) mask of 0/1 is 1."""
        mask = backend.asarray(rng.np.integers(0, 2, size=(b, t_len)).astype(np.float64))
        return check_loss(
            lambda logits, targets: losses.sigmoid_bce(logits, targets, mask),
            rng.normal((b, t_len, d_out)),
            rng.uniform((b, t_len, d_out)),
            rng,
        )

    xp = backend.namespace()
    t_len = 4  # steps of the sequence losses: logits (B, T, D)
    labels = lambda: backend.asarray(rng.np.integers(0, d_out, size=b), dtype=xp.int64)  # noqa: E731
    seq_labels = lambda: backend.asarray(rng.np.integers(0, d_out, (b, t_len)), dtype=xp.int64)  # noqa: E731
    return [
        ("Linear", module_case(lambda: layers.Linear(d_in, d_out, rng))),
        ("ReLU", module_case(layers.ReLU, dodge=True)),
        ("Tanh", module_case(layers.Tanh)),
        ("Sigmoid", module_case(layers.Sigmoid)),
        ("BatchNorm (train)", module_case(lambda: layers.BatchNorm(d_in))),
        ("BatchNorm (eval)", module_case(lambda: layers.BatchNorm(d_in), train=False)),
        ("Sequential MLP", module_case(lambda: layers.mlp([d_in, 6, d_out], rng))),
        ("LSTM (T=1)", lstm_case(1, 3, random_state=True)),
        ("LSTM (T=6, zero state)", lstm_case(6, 3, random_state=False)),
        ("LSTM (T=4, state in+out)", lstm_case(4, 2, random_state=True)),
        ("SeqLinear (T=3)", seq_linear_case),
        ("Conv2d (k=3, s=1, p=1)", map_case(lambda: conv.Conv2d(2, 3, 3, rng, 1, 1), (2, 2, 5, 4))),
        ("Conv2d (k=3, s=2, p=0)", map_case(lambda: conv.Conv2d(2, 3, 3, rng, 2, 0), (2, 2, 7, 6))),
        ("MaxPool2d (k=3, s=2, p=1)", map_case(lambda: pooling.MaxPool2d(3, 2, 1), (2, 2, 5, 4))),
        ("AvgPool2d (k=3, s=2, p=1)", map_case(lambda: pooling.AvgPool2d(3, 2, 1), (2, 2, 5, 4))),
        ("BatchNorm2d (train)", map_case(lambda: conv.BatchNorm2d(2), (2, 2, 3, 3))),
        ("BatchNorm2d (eval)", map_case(lambda: conv.BatchNorm2d(2), (2, 2, 3, 3), False)),
        ("Flatten", map_case(conv.Flatten, (2, 2, 3, 3))),
        ("softmax_cross_entropy", loss_case(losses.softmax_cross_entropy, labels)),
        ("mse", loss_case(losses.mse, lambda: rng.normal((b, d_out)))),
        ("sigmoid_bce", loss_case(losses.sigmoid_bce, lambda: rng.uniform((b, d_out)))),
        ("sigmoid_bce (masked)", masked_bce_case),
        (
            "sequence_cross_entropy",
            loss_case(losses.sequence_cross_entropy, seq_labels, (b, t_len, d_out)),
        ),
    ]
