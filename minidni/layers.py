"""Layers with hand-written forward and backward passes.

The contract (CS231n's ``affine_forward`` / ``affine_backward``, as objects):

- ``out, cache = layer.forward(x, train=True)``: the output and whatever the backward
  pass needs. Nothing is kept on the layer, so several forward passes may be in flight
  at once (delays, RNN unrolling, stochastic update schedules).
- ``dx = layer.backward(dout, cache)``: the gradient with respect to the input. Parameter
  gradients are *accumulated* into ``p.grad`` (``+=``, as in micrograd), so a layer used
  twice gets the sum; :meth:`Module.zero_grad` clears them.

A synthetic gradient is just another ``dout``: no layer knows whether its upstream
gradient was true or synthetic. Shapes: B is the batch size, D_in / D_out the widths.
"""

from __future__ import annotations

from typing import Any

from . import backend, checks
from .init import init_weight, ones, zeros

Array = Any


class Parameter:
    """A trainable array and its accumulated gradient (same shape, same dtype)."""

    def __init__(self, value: Array, name: str = ""):
        self.value = value
        self.name = name
        self.grad = backend.namespace().zeros_like(value)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.value.shape)

    def __repr__(self) -> str:
        return f"Parameter({self.name!r}, shape={self.shape})"


class Module:
    """Base class: a forward/backward pair and the parameters it owns."""

    def forward(self, x: Array, train: bool = True) -> tuple[Array, Any]:
        raise NotImplementedError

    def backward(self, dout: Array, cache: Any) -> Array:
        raise NotImplementedError

    def parameters(self) -> list[Parameter]:
        """The trainable parameters, in a fixed order."""
        return []

    def zero_grad(self) -> None:
        """Reset every accumulated parameter gradient to zero."""
        xp = backend.namespace()
        for p in self.parameters():
            p.grad = xp.zeros_like(p.value)

    def _check(self, what: str, expected: tuple, got: tuple) -> None:
        """Raise a ValueError naming this layer and both shapes (None matches any size)."""
        if len(expected) != len(got) or any(e not in (None, g) for e, g in zip(expected, got)):
            want = "(" + ", ".join("B" if e is None else str(e) for e in expected) + ")"
            raise ValueError(f"{self!r}: expected {what} of shape {want}, got {tuple(got)}")


class Linear(Module):
    """Affine map ``out = x @ W + b``.

    Shapes: x (B, D_in) -> out (B, D_out); W (D_in, D_out); b (D_out,).
    ``init`` names the weight initialiser (see :mod:`minidni.init`); the bias starts at 0.
    ``bias=False`` drops b, as before a BatchNorm, whose mean subtraction would cancel it.
    ``input_grad=False`` tells the layer it is first in its chain (its input is data, or
    nobody consumes the input's gradient): backward then skips the (B, D_in) input-gradient
    matmul and returns None.
    """

    def __init__(
        self,
        d_in: int,
        d_out: int,
        rng: backend.RNG,
        init: str = "he",
        bias: bool = True,
        input_grad: bool = True,
    ):
        self.d_in, self.d_out = checks.count(self, "d_in", d_in), checks.count(self, "d_out", d_out)
        self.W = Parameter(init_weight(rng, d_in, d_out, init), "W")
        self.b = Parameter(zeros((d_out,)), "b") if bias else None
        self.input_grad = input_grad

    def __repr__(self) -> str:
        return f"Linear({self.d_in}, {self.d_out}{'' if self.b else ', bias=False'})"

    def parameters(self) -> list[Parameter]:
        return [self.W] if self.b is None else [self.W, self.b]

    def forward(self, x: Array, train: bool = True) -> tuple[Array, Any]:
        self._check("input", (None, self.d_in), x.shape)
        out = backend.namespace().matmul(x, self.W.value)
        if self.b is not None:
            out += self.b.value  # in place: out is a fresh array
        return out, x

    def backward(self, dout: Array, cache: Any) -> Array | None:
        x = cache
        self._check("dout", (x.shape[0], self.d_out), dout.shape)
        xp = backend.namespace()
        self.W.grad += xp.matmul(xp.permute_dims(x, (1, 0)), dout)  # (D_in, D_out)
        if self.b is not None:
            self.b.grad += xp.sum(dout, axis=0)
        if not self.input_grad:
            return None
        return xp.matmul(dout, xp.permute_dims(self.W.value, (1, 0)))  # (B, D_in)


class _Elementwise(Module):
    """An activation applied element-wise; any shape in, the same shape out."""

    def backward(self, dout: Array, cache: Any) -> Array:
        self._check("dout", tuple(cache.shape), dout.shape)
        return dout * self._local_grad(cache)

    def _local_grad(self, cache: Array) -> Array:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ReLU(_Elementwise):
    """``max(x, 0)``; the cache is the output (its sign gives the local gradient)."""

    def forward(self, x: Array, train: bool = True) -> tuple[Array, Any]:
        out = backend.namespace().maximum(x, 0.0)
        return out, out

    def _local_grad(self, out: Array) -> Array:
        return backend.namespace().astype(out > 0, out.dtype)


class Tanh(_Elementwise):
    """``tanh(x)``; local gradient ``1 - out^2``."""

    def forward(self, x: Array, train: bool = True) -> tuple[Array, Any]:
        out = backend.namespace().tanh(x)
        return out, out

    def _local_grad(self, out: Array) -> Array:
        return 1.0 - out * out


def sigmoid(x: Array) -> Array:
    """The logistic function ``1 / (1 + exp(-x))``, computed as ``(1 + tanh(x / 2)) / 2``.

    The two are equal; the tanh form is stable (tanh saturates at +-1, nothing overflows)
    and costs one transcendental call instead of exp, a division and a branch per sign.
    """
    s = backend.namespace().tanh(0.5 * x)
    s += 1.0  # in place: s is a fresh array
    s *= 0.5
    return s


class Sigmoid(_Elementwise):
    """``1 / (1 + exp(-x))``; local gradient ``out (1 - out)``."""

    def forward(self, x: Array, train: bool = True) -> tuple[Array, Any]:
        out = sigmoid(x)
        return out, out

    def _local_grad(self, out: Array) -> Array:
        return out * (1.0 - out)


class BatchNorm(Module):
    """Batch normalisation over the batch axis (Ioffe & Szegedy 2015).

    Training: normalise with the batch mean and (biased) variance, and move the running
    statistics towards them by ``momentum`` (the running variance uses the unbiased
    estimate, as PyTorch does). Evaluation (``train=False``): normalise with the running
    statistics. Shapes: x (B, D) -> out (B, D); gamma, beta, running_mean, running_var (D,).
    """

    def __init__(self, d: int, momentum: float = 0.1, eps: float = 1e-5):
        self.d = checks.count(self, "d", d)
        self.momentum = checks.probability(self, "momentum", momentum)
        self.eps = checks.real(self, "eps", eps)
        self.gamma = Parameter(ones((d,)), "gamma")
        self.beta = Parameter(zeros((d,)), "beta")
        self.running_mean = zeros((d,))
        self.running_var = ones((d,))

    def __repr__(self) -> str:
        return f"BatchNorm({self.d})"

    def parameters(self) -> list[Parameter]:
        return [self.gamma, self.beta]

    def forward(self, x: Array, train: bool = True) -> tuple[Array, Any]:
        self._check("input", (None, self.d), x.shape)
        xp = backend.namespace()
        if train:
            n = x.shape[0]
            mean = xp.mean(x, axis=0)
            xhat = x - mean  # (B, D), centred; normalised in place below
            var = xp.mean(xhat * xhat, axis=0)
            m = self.momentum
            # Rebound, not updated in place: callers may hold the old statistics
            # (minidni.unlock saves and restores them by reference).
            self.running_mean = (1 - m) * self.running_mean + m * mean
            self.running_var = (1 - m) * self.running_var + m * var * (n / max(n - 1, 1))
        else:
            var = self.running_var
            xhat = x - self.running_mean
        inv_std = 1.0 / xp.sqrt(var + self.eps)
        xhat *= inv_std  # in place: xhat is a fresh array
        out = xhat * self.gamma.value
        out += self.beta.value
        return out, (xhat, inv_std, train)

    def backward(self, dout: Array, cache: Any) -> Array:
        """The gradients, for out = gamma xhat + beta, xhat = (x - mean_B(x)) inv_std::

            dgamma = sum_B(dout * xhat)        dbeta = sum_B(dout)
            dx     = gamma inv_std (dout - mean_B(dout) - xhat mean_B(dout * xhat))

        (Ioffe & Szegedy 2015; CS231n's ``batchnorm_backward_alt``). The two last terms
        are there because the batch mean and variance depend on every row; in
        evaluation mode the statistics are constants and ``dx = gamma inv_std dout``.
        """
        xhat, inv_std, train = cache
        self._check("dout", tuple(xhat.shape), dout.shape)
        xp = backend.namespace()
        dgamma = xp.sum(dout * xhat, axis=0)  # (D,)
        dbeta = xp.sum(dout, axis=0)  # (D,)
        self.gamma.grad += dgamma
        self.beta.grad += dbeta
        if not train:  # running statistics are constants
            return dout * (self.gamma.value * inv_std)
        n = xhat.shape[0]
        # The two batch means are dgamma / B and dbeta / B, already at hand; the bracket
        # is built in one (B, D) buffer (one temporary fewer than written out in full).
        correction = xhat * (dgamma / n)  # xhat mean_B(dout xhat)
        correction += dbeta / n  # + mean_B(dout)
        return (self.gamma.value * inv_std) * (dout - correction)


class Sequential(Module):
    """Layers applied in order; the cache is the list of the layers' caches."""

    def __init__(self, *layers: Module):
        self.layers = list(layers)

    def __repr__(self) -> str:
        return "Sequential(" + ", ".join(map(repr, self.layers)) + ")"

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    def parameters(self) -> list[Parameter]:
        return [p for layer in self.layers for p in layer.parameters()]

    def forward(self, x: Array, train: bool = True) -> tuple[Array, Any]:
        caches = []
        for layer in self.layers:
            x, cache = layer.forward(x, train)
            caches.append(cache)
        return x, caches

    def backward(self, dout: Array, cache: Any) -> Array | None:
        """None if the first layer was built without an input gradient."""
        for layer, c in zip(reversed(self.layers), reversed(cache)):
            dout = layer.backward(dout, c)
        return dout


def mlp(
    sizes: list[int],
    rng: backend.RNG,
    batchnorm: bool = True,
    final_init: str = "he",
    input_grad: bool = True,
) -> Sequential:
    """A fully connected net, ``sizes = [D_in, H_1, ..., H_k, D_out]``.

    Each hidden layer is Linear (+ BatchNorm) + ReLU, as in the paper's MNIST nets (the
    Linear has no bias before a BatchNorm); the last layer is a bare Linear (logits)
    initialised with ``final_init``. ``input_grad=False``: nobody needs the gradient with
    respect to the net's input, so its first Linear does not compute it.
    """
    layers: list[Module] = []
    for k, (d_in, d_out) in enumerate(zip(sizes[:-2], sizes[1:-1])):
        needs_dx = input_grad or k > 0  # every layer but the first feeds a layer below
        layers.append(Linear(d_in, d_out, rng, bias=not batchnorm, input_grad=needs_dx))
        if batchnorm:
            layers.append(BatchNorm(d_out))
        layers.append(ReLU())
    needs_dx = input_grad or len(sizes) > 2
    layers.append(Linear(sizes[-2], sizes[-1], rng, init=final_init, input_grad=needs_dx))
    return Sequential(*layers)
