"""Optimizers: each updates a list of :class:`~minidni.layers.Parameter` in place."""

from __future__ import annotations

import math

from . import backend, checks
from .layers import Parameter


class Optimizer:
    """Base class: holds the parameters and clears their gradients."""

    def __init__(self, params: list[Parameter], lr: float):
        self.params = list(params)
        self.lr = checks.rate(self, "lr", lr)

    def zero_grad(self) -> None:
        xp = backend.namespace()
        for p in self.params:
            p.grad = xp.zeros_like(p.value)

    def step(self) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with (heavy-ball) momentum.

    ``v <- momentum * v + g``;  ``theta <- theta - lr * v``  (PyTorch's convention; with
    ``momentum=0`` this is plain ``theta <- theta - lr * g``).
    """

    def __init__(self, params: list[Parameter], lr: float = 0.01, momentum: float = 0.0):
        super().__init__(params, lr)
        self.momentum = checks.real(self, "momentum", momentum, 0.0, 1.0)
        self.v = [backend.namespace().zeros_like(p.value) for p in self.params]

    def step(self) -> None:
        for p, v in zip(self.params, self.v):
            v *= self.momentum
            v += p.grad
            p.value -= self.lr * v


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction.

    ``m <- b1 m + (1 - b1) g``;  ``v <- b2 v + (1 - b2) g^2``;
    ``theta <- theta - lr * m_hat / (sqrt(v_hat) + eps)`` with ``m_hat = m / (1 - b1^t)``,
    ``v_hat = v / (1 - b2^t)`` and t the number of steps taken.
    """

    def __init__(
        self,
        params: list[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ):
        super().__init__(params, lr)
        self.b1, self.b2 = (checks.real(self, "betas", b, 0.0, 0.999999) for b in betas)
        self.eps = checks.real(self, "eps", eps)
        self.t = 0
        xp = backend.namespace()
        self.m = [xp.zeros_like(p.value) for p in self.params]
        self.v = [xp.zeros_like(p.value) for p in self.params]

    def step(self) -> None:
        xp = backend.namespace()
        self.t += 1
        c1 = 1.0 - self.b1**self.t
        c2 = 1.0 - self.b2**self.t
        # m_hat / (sqrt(v_hat) + eps) = (sqrt(c2) / c1) m / (sqrt(v) + sqrt(c2) eps): the bias
        # corrections become two scalars instead of two passes over every array.
        step_size = self.lr * math.sqrt(c2) / c1
        eps = self.eps * math.sqrt(c2)
        for p, m, v in zip(self.params, self.m, self.v):
            g = p.grad
            # Every update below is in place on the optimizer's own arrays or a fresh
            # temporary: one (array-sized) allocation per line at most.
            m *= self.b1
            m += (1.0 - self.b1) * g
            g2 = g * g
            g2 *= 1.0 - self.b2
            v *= self.b2
            v += g2
            denom = xp.sqrt(v)
            denom += eps
            update = m / denom
            update *= step_size
            p.value -= update


def constant(step: int, steps: int) -> float:
    """Learning-rate factor 1 at every step."""
    return 1.0


def cosine(step: int, steps: int) -> float:
    """Cosine learning-rate factor of step ``step`` (1-based) of ``steps``: 1 at the first
    step, falling smoothly to (almost) 0 at the last,
    ``(1 + cos(pi (step - 1) / steps)) / 2`` (Loshchilov & Hutter 2017, SGDR, without
    restarts). Why it helps here: while the weights still move fast at the end of a
    short run, BatchNorm's running statistics lag them and the test error measured with
    those statistics jumps from one evaluation to the next (docs/cnn.md)."""
    return 0.5 * (1.0 + math.cos(math.pi * (step - 1) / steps))


LR_SCHEDULES = {"constant": constant, "cosine": cosine}
