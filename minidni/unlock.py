"""Forward unlocking and asynchrony: synthetic inputs, complete unlock, stale updates.

Jaderberg et al., ICML 2017, section 3.3. Notation as in :mod:`minidni.decoupled`:
f_i is ``modules[i-1]``, ``M_{i+1}`` (predicting ``delta_hat_i`` from h_i) is
``sgs[i-1]``, and ``I_i``, the synthetic-input model of f_i, is ``inputs[i-1]``
(``inputs[0]`` is None: f_1's input is x itself).

Complete unlock, one step of :meth:`UnlockedNet.step`: the step of
:meth:`DecoupledNet.step <minidni.decoupled.DecoupledNet.step>`, whose forward passes
(its hook ``_own_forward``) are these:

0. The real forward chain ``h_0 = x, h_1, ..., h_N`` runs with the current modules. This
   is the price of training the synthetic-input models: their targets are the real
   ``h_{i-1}``. It also gives the reported loss and moves the BatchNorm running
   statistics, because at evaluation (:meth:`~minidni.decoupled.DecoupledNet.predict`)
   the real chain is used.
1. f_i, i >= 2, reads its input from its own synthetic-input model,
   ``h_hat_{i-1} = I_i(x)``, and computes ``h_tilde_i = f_i(h_hat_{i-1})`` without waiting
   for f_{i-1} (f_1 reads x). BatchNorm normalises with the batch statistics of ``h_hat``
   but leaves the running statistics alone: they belong to the real chain.
2. ``I_i`` learns ``||I_i(x) - h_{i-1}||^2`` (:class:`~minidni.synthetic.SyntheticInput`)
   as soon as its target is there. The target ``h_{i-1}`` is, with ``input_targets="real"``
   (the default), the real chain's; with ``input_targets="sent"`` it is what f_{i-1}
   computes on its *own* input in step 1, ``h_tilde_{i-1} = f_{i-1}(I_{i-1}(x))`` (``h_1``
   for i = 2): the activation a concurrent f_{i-1} actually sends, so no locked forward
   pass is needed to train the ``I_i`` (:mod:`minidni.parallel.pipeline` runs it on separate
   processes).

The rest is the decoupled step itself: ``M_{i+1}`` predicts ``delta_hat_i = M_{i+1}
(h_tilde_i, c)`` from f_i's own output (f_N uses the true gradient of the loss of
``f_N(h_hat_{N-1})``); f_i backpropagates ``delta_hat_i`` and updates; its input gradient
is the bootstrapped target of ``M_i``. So every module learns from its own synthetic input
and its own synthetic gradient. With ``inputs=None`` (synthetic gradients only) the
forward passes are the real chain itself and the step is exactly ``DecoupledNet.step``.

Staleness (:class:`~minidni.schedules.Delayed`, run by the decoupled step). f_i's forward
pass of step s is queued as an :class:`~minidni.decoupled.InFlight` and backpropagated at
step ``s + k_i`` with the parameters current then. Stale, i.e. from step s: the module's
input activations and BatchNorm batch statistics (its cache: ``h_{i-1}`` or ``I_i(x)`` of
step s), the gradient it backpropagates (``delta_hat_i`` predicted by ``M_{i+1}`` at step
s from ``h_i`` of step s; for f_N the loss gradient of step s), and the prediction of
``M_i`` that the resulting target trains. Current, i.e. of step t: the weights through
which the gradient flows back (so ``M_i``'s target mixes old activations with new
weights, as an asynchronous worker's would) and the parameters each optimizer updates.
During its first ``k_i`` steps f_i has nothing to backpropagate. The synthetic-input
models are not delayed: they learn at once from the real chain of the same step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from . import backend
from .decoupled import DecoupledNet, build_mlp
from .layers import BatchNorm, Module, Sequential
from .losses import softmax_cross_entropy
from .optim import Optimizer
from .schedules import Schedule
from .synthetic import SyntheticInput

Array = Any


def forward_keeping_running_stats(module: Module, h: Array) -> tuple[Array, Any]:
    """``module.forward(h, train=True)`` (batch statistics) that leaves the BatchNorm
    running statistics as they were: a forward pass on a synthetic input must not move
    the statistics that evaluation on the real chain uses."""
    layers = module.layers if isinstance(module, Sequential) else [module]
    saved = [(bn, bn.running_mean, bn.running_var) for bn in layers if isinstance(bn, BatchNorm)]
    out, cache = module.forward(h, train=True)
    for bn, mean, var in saved:
        bn.running_mean, bn.running_var = mean, var
    return out, cache


class UnlockedNet(DecoupledNet):
    """A DNI chain with optional synthetic inputs (complete unlock) and stale updates.

    Args (the rest as :class:`~minidni.decoupled.DecoupledNet`):
        inputs: N entries, ``inputs[i-1]`` the synthetic-input model ``I_i`` of f_i,
            ``inputs[0] = None``; or None for synthetic gradients only.
        schedule: which forward passes are backpropagated, which input models learn, and
            the delays ``k_i`` (:mod:`minidni.schedules`).
        input_targets: what ``I_i`` learns to predict: ``"real"``, the real chain's
            ``h_{i-1}``, or ``"sent"``, f_{i-1}'s output on its own (synthetic) input.

    :meth:`step` returns, besides the loss and the SG losses, per input model
    ``I_2..I_N`` its L2 loss (``input_loss``, None where that model did not learn).
    """

    def __init__(
        self,
        modules: Sequence[Module],
        sgs: Sequence[Any],
        inputs: Sequence[Any] | None = None,
        lr: float = 1e-3,
        n_classes: int = 10,
        schedule: Schedule | None = None,
        loss_fn: Callable[[Array, Array], tuple[Array, Array]] = softmax_cross_entropy,
        optimizer: Callable[[list], Optimizer] | None = None,
        input_targets: str = "real",
    ):
        if sgs is None:
            raise ValueError("UnlockedNet needs SG models (method dni or cdni, not bprop)")
        super().__init__(modules, sgs, lr, n_classes, schedule, "bootstrap", loss_fn, optimizer)
        if inputs is not None and (len(inputs) != len(modules) or inputs[0] is not None):
            raise ValueError(
                f"UnlockedNet: {len(modules)} modules need inputs = [None, I_2, ..., "
                f"I_{len(modules)}], got {len(inputs)} entries"
            )
        if input_targets not in ("real", "sent"):
            raise ValueError(f"unknown input_targets {input_targets!r}; valid: real, sent")
        self.inputs = None if inputs is None else list(inputs)
        self.input_targets = input_targets

    def _own_forward(
        self, x: Array, labels: Array, hs: list[Array], caches: list[Any], delta_N: Array
    ) -> tuple[list[Array], list[Any], Array, dict[str, Any]]:
        """Complete unlock's forward passes (module docstring, steps 1 and 2): f_i, i >= 2,
        on ``I_i(x)``, giving ``[x, h_1, h_tilde_2, ..., h_tilde_N]``, their caches and the
        true gradient of the loss of ``h_tilde_N``; and the input models' learning step."""
        n, batch = len(self.modules), x.shape[0]
        if self.inputs is None:  # synthetic gradients only: the real chain
            return hs, caches, delta_N, {"input_loss": [None] * (n - 1)}
        h_hats = [None] + [inp.predict(x) for inp in self.inputs[1:]]  # (I_i(x), cache) at i-1
        own_hs, own_caches = hs[:2], caches[:1]  # f_1 reads x itself
        for i in range(2, n + 1):
            h, cache = forward_keeping_running_stats(self.modules[i - 1], h_hats[i - 1][0])
            own_hs.append(h)
            own_caches.append(cache)
        own_delta_N = self.loss_fn(own_hs[-1], labels)[1] * batch
        input_loss = self._learn_inputs(h_hats, hs if self.input_targets == "real" else own_hs)
        return own_hs, own_caches, own_delta_N, {"input_loss": input_loss}

    def _learn_inputs(self, h_hats: list[Any], targets: list[Array]) -> list[float | None]:
        """Each ``I_i`` the schedule picks learns ``||I_i(x) - targets[i-1]||^2`` on its
        prediction ``h_hats[i-1]``; returns the L2 loss per ``I_2..I_N`` (None: no step)."""
        n = len(self.modules)
        learn = self.schedule.sample_inputs(n)  # learn[i-1]: does I_i learn on this step?
        input_loss: list[float | None] = [None] * (n - 1)  # input_loss[i-2]: I_i's loss
        for i in range(2, n + 1):
            if learn[i - 1]:
                h_hat, cache = h_hats[i - 1]
                input_loss[i - 2] = self.inputs[i - 1].update(cache, h_hat, targets[i - 1])
        return input_loss


def build_unlocked(
    method: str,
    sizes: Sequence[int],
    rng: backend.RNG,
    lr: float = 1e-3,
    sg_hidden: Sequence[int] = (),
    sg_lr: float = 1e-3,
    schedule: Schedule | None = None,
    synthetic_inputs: bool = True,
    input_hidden: Sequence[int] = (),
    input_lr: float = 1e-3,
    input_targets: str = "real",
) -> UnlockedNet:
    """An every-layer-decoupled MLP (``method`` "dni" or "cdni"), completely unlocked when
    ``synthetic_inputs`` (one linear, or ``input_hidden``-layer, ``I_i(x)`` per module
    i >= 2), else with synthetic gradients only. Modules and SG models are drawn from
    ``rng`` exactly as :func:`~minidni.decoupled.build_mlp` draws them, then the input
    models. ``input_targets``: see :class:`UnlockedNet`."""
    if method not in ("dni", "cdni"):
        raise ValueError(f"unknown method {method!r} for an unlocked net; valid: dni, cdni")
    net = build_mlp(method, sizes, rng, lr, sg_hidden, sg_lr)
    inputs = None
    if synthetic_inputs:
        inputs = [None] + [
            SyntheticInput(sizes[0], d, rng, hidden=input_hidden, lr=input_lr) for d in sizes[1:-1]
        ]
    return UnlockedNet(
        net.modules, net.sgs, inputs, lr, sizes[-1], schedule, input_targets=input_targets
    )
