"""Forward unlocking and asynchrony: synthetic inputs, complete unlock, stale updates.

Jaderberg et al., ICML 2017, section 3.3. Notation as in :mod:`minidni.decoupled`:
modules ``f_1..f_N`` at list positions 0..N-1, ``sgs[i]`` is ``M_{i+1}``; here also
``inputs[i]`` is ``I_{i+1}``, the synthetic-input model of the module at position i
(``inputs[0]`` is None: module 1's input is x itself).

Complete unlock, one step of :meth:`UnlockedNet.step`:

0. The real forward chain ``h_0 = x, h_1, ..., h_N`` runs with the current modules. This
   is the price of training the synthetic-input models: their targets are the real
   ``h_{i-1}``. It also gives the reported loss and moves the BatchNorm running
   statistics, because at evaluation (:meth:`~minidni.decoupled.DecoupledNet.predict`)
   the real chain is used.
1. Module i >= 2 reads its input from its own synthetic-input model,
   ``h_hat_{i-1} = I_i(x)``, and computes ``h_tilde_i = f_i(h_hat_{i-1})`` without waiting
   for module i-1 (module 1 reads x). BatchNorm normalises with the batch statistics of
   ``h_hat`` but leaves the running statistics alone: they belong to the real chain.
2. ``M_{i+1}`` predicts ``delta_hat_i = M_{i+1}(h_tilde_i, c)`` from module i's own output;
   module N uses the true gradient of the loss of ``f_N(h_hat_{N-1})``.
3. As in :class:`~minidni.decoupled.DecoupledNet`: module i backpropagates
   ``delta_hat_i`` and updates; its input gradient is the bootstrapped target of ``M_i``.
4. ``I_i`` learns ``||I_i(x) - h_{i-1}||^2`` (:class:`~minidni.synthetic.SyntheticInput`).
   The target ``h_{i-1}`` is, with ``input_targets="real"`` (the default), the real
   chain's; with ``input_targets="sent"`` it is what module i-1 computes on its *own*
   input in step 1, ``h_tilde_{i-1} = f_{i-1}(I_{i-1}(x))`` (``h_1`` for i = 2): the
   activation a concurrent module i-1 actually sends, so no locked forward pass is needed
   to train the ``I_i`` (:mod:`minidni.parallel.pipeline` runs it on separate processes).

So every module learns from its own synthetic input and its own synthetic gradient.
With ``inputs=None`` (synthetic gradients only) step 1 is the real chain itself and the
step is exactly ``DecoupledNet.step``, plus delays.

Staleness (:class:`~minidni.schedules.Delayed`). Module i's forward pass of step s is
queued as an :class:`InFlight` and backpropagated at step ``s + k_i`` with the
parameters current then. Stale, i.e. from step s: the module's input activations and
BatchNorm batch statistics (its cache: ``h_{i-1}`` or ``I_i(x)`` of step s), the
gradient it backpropagates (``delta_hat_i`` predicted by ``M_{i+1}`` at step s from
``h_i`` of step s; for module N the loss gradient of step s), and the prediction of
``M_i`` that the resulting target trains. Current, i.e. of step t: the weights through
which the gradient flows back (so ``M_i``'s target mixes old activations with new
weights, as an asynchronous worker's would) and the parameters each optimizer updates.
During its first ``k_i`` steps module i has nothing to backpropagate. The synthetic-input
models are not delayed: they learn at once from the real chain of the same step.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from . import backend
from .decoupled import DecoupledNet, build_mlp
from .layers import BatchNorm, Module, Sequential
from .losses import softmax_cross_entropy
from .optim import Optimizer
from .schedules import Schedule
from .synthetic import SyntheticInput

Array = Any


@dataclass
class InFlight:
    """One module's forward pass of step ``step``, waiting for its backward pass.

    ``cache``: the module's cache (its input activations of that step); ``delta``: the
    gradient to backpropagate, ``delta_hat_i`` (B, D_i) predicted at forward time (the
    true loss gradient for the last module); ``sg``: ``(delta_hat_{i-1}, cache)`` of
    ``M_i`` at forward time, which the target of this backward pass trains (None for
    module 1); ``active``: whether the schedule chose this pass for a backward pass.
    """

    step: int
    active: bool
    cache: Any
    delta: Array | None
    sg: tuple[Array, Any] | None


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
        inputs: N entries, ``inputs[i]`` the synthetic-input model ``I_{i+1}`` of the
            module at position i, ``inputs[0] = None``; or None for synthetic gradients
            only.
        schedule: which forward passes are backpropagated, which input models learn, and
            the delays ``k_i`` (:mod:`minidni.schedules`).
        input_targets: what ``I_i`` learns to predict: ``"real"``, the real chain's
            ``h_{i-1}``, or ``"sent"``, module i-1's output on its own (synthetic) input.
    """

    honours_delays = True

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
        self.delays = self.schedule.delays(len(self.modules))  # k_i per module
        self.in_flight: list[deque[InFlight]] = [deque() for _ in self.modules]
        self.t = 0  # steps taken

    def step(self, x: Array, labels: Array) -> dict[str, Any]:
        """One step on a batch x (B, D_x), labels (B,). Returns the real chain's loss, per
        boundary the SG loss and per input model ``I_2..I_N`` the input loss (None where
        that model did not learn)."""
        n, batch = len(self.modules), x.shape[0]
        active = self.schedule.sample(n)
        hs, caches = self.forward(x)  # the real chain
        loss, dlogits = self.loss_fn(hs[-1], labels)
        c = (
            backend.one_hot(labels, self.n_classes)
            if any(sg.d_context for sg in self.sgs)
            else None
        )

        # This step's forward passes: each module on its own input.
        h_hats: list[Any] = [None] * n
        outs = hs[1:]
        delta_top = dlogits * batch
        if self.inputs is not None:
            h_hats = [None] + [inp.predict(x) for inp in self.inputs[1:]]  # (h_hat, cache)
            outs, caches = [hs[1]], [caches[0]]
            for i in range(1, n):
                out, cache = forward_keeping_running_stats(self.modules[i], h_hats[i][0])
                outs.append(out)
                caches.append(cache)
            delta_top = self.loss_fn(outs[-1], labels)[1] * batch
        predictions: list[Any] = [None] * n
        for i, sg in enumerate(self.sgs):
            if active[i] or active[i + 1]:
                predictions[i] = sg.predict(outs[i], c if sg.d_context else None)
        for i in range(n):
            delta = delta_top if i == n - 1 else None
            if predictions[i] is not None:
                delta = predictions[i][0]  # delta_hat_i
            sg = predictions[i - 1] if i > 0 else None
            self.in_flight[i].append(InFlight(self.t, active[i], caches[i], delta, sg))

        # Backward passes: each module takes its forward pass of k_i steps ago.
        sg_loss: list[float | None] = [None] * (n - 1)
        for i in range(n):
            if len(self.in_flight[i]) <= self.delays[i]:
                continue  # warming up: nothing is k_i steps old yet
            f = self.in_flight[i].popleft()
            assert f.step == self.t - self.delays[i]
            if not f.active:
                continue
            target = self._backward(i, f.delta, f.cache, batch)
            if i > 0:
                delta_hat, sg_cache = f.sg
                sg_loss[i - 1] = self.sgs[i - 1].update(sg_cache, delta_hat, target)

        # Synthetic inputs learn from this step's real chain, or from what was sent.
        input_loss: list[float | None] = [None] * (n - 1)
        if self.inputs is not None:
            learn = self.schedule.sample_inputs(n)
            targets = hs if self.input_targets == "real" else [None, *outs]
            for i in range(1, n):
                if learn[i]:
                    h_hat, cache = h_hats[i]
                    input_loss[i - 1] = self.inputs[i].update(cache, h_hat, targets[i])
        self.t += 1
        return {"loss": backend.to_float(loss), "sg_loss": sg_loss, "input_loss": input_loss}


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
