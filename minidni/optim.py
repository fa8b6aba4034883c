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
    """Adam (Kingma & Ba 2015): every parameter moves against a running mean of its
    gradient, divided by the running root mean square of that gradient, so that each
    coordinate takes steps of about ``lr`` whatever the scale of its gradient.

    With g the gradient and t the number of steps taken::

        m <- b1 m + (1 - b1) g          running mean of g (first moment)
        v <- b2 v + (1 - b2) g^2        running mean of g^2 (second moment)
        m_hat = m / (1 - b1^t)          bias corrections: m and v start at zero
        v_hat = v / (1 - b2^t)
        theta <- theta - lr m_hat / (sqrt(v_hat) + eps)

    ``flush_subnormal`` (default on) sets first moments that a long run of zero
    gradients has decayed almost to zero to exactly zero, before they become subnormal
    floats, on which x86 CPUs are slow (docs/speed.md).
    """

    FLUSH_EVERY = 16  # steps between two flushes of subnormal first moments

    def __init__(
        self,
        params: list[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        flush_subnormal: bool = True,
    ):
        super().__init__(params, lr)
        self.flush_subnormal = flush_subnormal
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
        flush = self.flush_subnormal and self.t % self.FLUSH_EVERY == 0
        decay = self.b1**self.FLUSH_EVERY if self.b1 > 0 else 1.0  # b1 = 0: m = g, no decay
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
            if flush:
                # Below smallest_normal / b1^16, an entry that only decays would turn
                # subnormal before the next flush, 16 steps on: zero it now.
                m[xp.abs(m) < xp.finfo(m.dtype).smallest_normal / decay] = 0.0


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
