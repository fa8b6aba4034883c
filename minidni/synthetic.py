"""Synthetic-gradient models ``M(h, c)`` and synthetic-input models ``I(x)``.

Both are small regressors trained with the L2 loss of :func:`minidni.losses.mse`,
``(1/B) sum_n ||prediction_n - target_n||^2`` (summed over features, averaged over the
batch), each with its own optimizer:

- :class:`SyntheticGradient` predicts ``delta_hat_i = M_{i+1}(h_i, c)``, the error
  gradient at the output of module f_i, from that output alone (DNI) or with a context c
  such as the one-hot label (cDNI); in a chain it is ``sgs[i-1]``
  (:mod:`minidni.decoupled` has the notation table). Its output layer starts at zero, so
  at first ``delta_hat = 0`` and the module it feeds does not move until it has learned
  something (Jaderberg et al., ICML 2017).
- :class:`SyntheticInput` predicts ``h_hat_{i-1} = I_i(x)``, the input of module f_i,
  from the network input x (forward unlocking, section 3.3 of the paper); in a chain it
  is ``inputs[i-1]``.

Shapes: h (B, D_h); c (B, D_c); delta_hat (B, D_h); x (B, D_x).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from . import backend, checks
from .layers import mlp
from .losses import mse
from .optim import Adam, Optimizer

Array = Any


class L2Regressor:
    """An MLP ``[D_in, *hidden, D_out]`` (Linear + BatchNorm + ReLU hidden layers) with an
    Adam optimizer, trained by :meth:`update` on ``mse(prediction, target)``.

    ``hidden=()`` gives a linear model. ``final_init`` initialises the output layer.
    ``optimizer`` builds the optimizer from the parameter list (default: Adam with ``lr``).
    """

    def __init__(
        self,
        d_in: int,
        d_out: int,
        rng: backend.RNG,
        hidden: Sequence[int] = (),
        lr: float = 1e-4,
        final_init: str = "lecun",
        batchnorm: bool = True,
        optimizer: Callable[[list], Optimizer] | None = None,
    ):
        hidden = checks.widths(self, "hidden", hidden)
        checks.rate(self, "lr", lr)
        # The L2 loss trains this model only: nothing upstream consumes its input gradient.
        self.net = mlp(
            [d_in, *hidden, d_out], rng, batchnorm, final_init=final_init, input_grad=False
        )
        params = self.net.parameters()
        self.opt = Adam(params, lr=lr) if optimizer is None else optimizer(params)

    def forward(self, inputs: Array, train: bool = True) -> tuple[Array, Any]:
        """Prediction (B, D_out) and the cache that :meth:`update` needs."""
        return self.net.forward(inputs, train)

    def update(self, cache: Any, prediction: Array, target: Array) -> float:
        """One optimizer step on ``mse(prediction, target)``; returns that loss.

        ``prediction`` and ``cache`` come from an earlier :meth:`forward`, so the target
        may arrive later (it is computed by a module further along the chain).
        """
        loss, dpred = mse(prediction, target)
        self.net.zero_grad()
        self.net.backward(dpred, cache)
        self.opt.step()
        return backend.to_float(loss)


class SyntheticGradient(L2Regressor):
    """``delta_hat = M(h, c)``: a synthetic gradient for an activation of width ``d_h``.

    ``d_context > 0`` makes it a cDNI model: the context c (B, d_context), e.g. the
    one-hot label, is concatenated to h. The output layer is zero-initialised. The paper's
    DNI models for fully connected nets have ``hidden=(1024, 1024)``; with labels as
    context a linear model (``hidden=()``) already works well.
    """

    def __init__(
        self,
        d_h: int,
        rng: backend.RNG,
        d_context: int = 0,
        hidden: Sequence[int] = (),
        lr: float = 1e-4,
        batchnorm: bool = True,
        optimizer: Callable[[list], Optimizer] | None = None,
    ):
        checks.count(self, "d_h", d_h)
        checks.count(self, "d_context", d_context, minimum=0)
        super().__init__(d_h + d_context, d_h, rng, hidden, lr, "zeros", batchnorm, optimizer)
        self.d_h, self.d_context = d_h, d_context

    def predict(self, h: Array, c: Array | None = None, train: bool = True) -> tuple[Array, Any]:
        """``delta_hat`` (B, D_h) for activations h (B, D_h) and context c (B, D_c) or None."""
        if (c is None) != (self.d_context == 0):
            raise ValueError(
                f"SyntheticGradient: built with d_context={self.d_context}, "
                f"called with context {'None' if c is None else tuple(c.shape)}"
            )
        inputs = h if c is None else backend.namespace().concat([h, c], axis=1)  # (B, D_h + D_c)
        return self.forward(inputs, train)


class SyntheticInput(L2Regressor):
    """``h_hat = I(x)``: predicts a module's input (width ``d_h``) from the network input x."""

    def __init__(
        self,
        d_x: int,
        d_h: int,
        rng: backend.RNG,
        hidden: Sequence[int] = (),
        lr: float = 1e-4,
        batchnorm: bool = True,
        optimizer: Callable[[list], Optimizer] | None = None,
    ):
        super().__init__(d_x, d_h, rng, hidden, lr, "lecun", batchnorm, optimizer)

    def predict(self, x: Array, train: bool = True) -> tuple[Array, Any]:
        """``h_hat`` (B, D_h) for network inputs x (B, D_x)."""
        return self.forward(x, train)
