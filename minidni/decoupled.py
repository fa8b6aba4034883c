"""A chain of modules joined by decoupled neural interfaces, and one training step.

Notation of Jaderberg et al. 2017: modules ``h_i = f_i(h_{i-1})``, ``h_0 = x``, loss
``L(h_N, y)``; ``delta_i = dL/dh_i``. Here modules are numbered 1..N as in the paper and
stored at list positions 0..N-1; ``sgs[i]`` is the synthetic-gradient model ``M_{i+1}``
at the boundary after module i, predicting ``delta_hat_i``.

One step of every-layer-decoupled training (:meth:`DecoupledNet.step`):

1. forward: each module computes ``h_i`` and hands it on;
2. module i < N asks ``delta_hat_i = M_{i+1}(h_i, c)``, backpropagates it through itself
   and updates at once; the last module uses the true loss gradient ``delta_N``;
3. that backward pass also yields ``(dh_i/dh_{i-1})^T delta_hat_i``, the *bootstrapped*
   target of ``M_i``, one boundary upstream: each SG model learns from the next module's
   backward pass, and only ``M_N`` sees the true loss gradient.

Units. A delta here is ``B * dL/dh`` with L the batch-mean loss: the gradient of each
example's own loss with respect to its own activation, which does not shrink with the
batch size. Modules therefore backpropagate ``delta / B``, the gradient of the batch-mean
loss, and the input gradient they return is multiplied by B to give the next target.

Schedules (:mod:`minidni.schedules`) decide which modules run their backward pass and
update on a step. A module that skips runs no backward pass and so produces no target:
on that step the SG model at the boundary just before it does not learn either. So
``M_{i+1}`` learns exactly on the steps where module i+1 ran backward, whether or not
module i (which consumes its prediction) did.

Delayed (stale) updates and synthetic inputs (complete unlock) are in
:mod:`minidni.unlock`, whose :class:`~minidni.unlock.UnlockedNet` builds on this class.

``method="bprop"`` is ordinary backpropagation through the same chain. ``sg_targets=
"backprop"`` trains the SG models on true backprop gradients: for analysis only, since it
needs a full backward pass and so *nothing is unlocked*.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from . import backend, checks
from .layers import BatchNorm, Linear, Module, ReLU, Sequential
from .losses import softmax_cross_entropy
from .optim import Adam, Optimizer
from .schedules import Lockstep, Schedule
from .synthetic import SyntheticGradient

Array = Any
METHODS = ("bprop", "dni", "cdni")
SG_TARGETS = ("bootstrap", "backprop")


class DecoupledNet:
    """Modules ``f_1..f_N`` with optimizers, and SG models between them (None for bprop).

    Args:
        modules: the N modules, applied in order.
        sgs: N-1 synthetic-gradient models (``sgs[i]`` after module i), or None for bprop.
        lr: Adam learning rate of every module.
        n_classes: number of classes; the one-hot label is the context of cDNI models.
        schedule: which modules update on a step (default: all of them).
        sg_targets: ``"bootstrap"`` (the method) or ``"backprop"`` (analysis only).
        loss_fn: ``(logits, labels) -> (loss, dlogits)``.
        optimizer: builds a module's optimizer from its parameters (default: Adam, ``lr``).
    """

    honours_delays = False  # step() runs every backward pass on the step of its forward pass

    def __init__(
        self,
        modules: Sequence[Module],
        sgs: Sequence[Any] | None,
        lr: float = 1e-3,
        n_classes: int = 10,
        schedule: Schedule | None = None,
        sg_targets: str = "bootstrap",
        loss_fn: Callable[[Array, Array], tuple[Array, Array]] = softmax_cross_entropy,
        optimizer: Callable[[list], Optimizer] | None = None,
    ):
        if sgs is not None and len(sgs) != len(modules) - 1:
            raise ValueError(
                f"DecoupledNet: {len(modules)} modules need {len(modules) - 1} "
                f"SG models, got {len(sgs)}"
            )
        if sg_targets not in SG_TARGETS:
            raise ValueError(f"unknown sg_targets {sg_targets!r}; valid: {', '.join(SG_TARGETS)}")
        checks.rate(self, "lr", lr)
        self.modules = list(modules)
        self.sgs = None if sgs is None else list(sgs)
        make = optimizer or (lambda params: Adam(params, lr=lr))
        self.opts = [make(m.parameters()) for m in self.modules]
        self.n_classes = n_classes
        self.schedule = schedule or Lockstep()
        if any(self.schedule.delays(len(self.modules))) and not self.honours_delays:
            raise ValueError(
                f"{type(self).__name__} cannot run the delayed schedule {self.schedule!r}; "
                "use minidni.unlock.UnlockedNet"
            )
        self.sg_targets = sg_targets
        self.loss_fn = loss_fn

    def forward(self, x: Array, train: bool = True) -> tuple[list[Array], list[Any]]:
        """Activations ``[h_0 = x, h_1, ..., h_N]`` and the modules' caches."""
        hs, caches = [x], []
        for f in self.modules:
            h, cache = f.forward(hs[-1], train)
            hs.append(h)
            caches.append(cache)
        return hs, caches

    def predict(self, x: Array) -> Array:
        """Logits (B, n_classes) in evaluation mode (BatchNorm running statistics)."""
        return self.forward(x, train=False)[0][-1]

    def _backward(
        self, i: int, delta: Array, cache: Any, batch: int, update: bool = True
    ) -> Array | None:
        """Backpropagate ``delta`` (per-example units) through module i and update it.

        Returns the per-example gradient at the module's input, ``B * dL/dh_{i-1}``, or None
        for a first module built without an input gradient (its input is the data).
        """
        self.modules[i].zero_grad()
        dh_prev = self.modules[i].backward(delta / batch, cache)
        if update:
            self.opts[i].step()
        return None if dh_prev is None else dh_prev * batch

    def step(self, x: Array, labels: Array) -> dict[str, Any]:
        """One training step on a batch x (B, D_x), labels (B,). Returns the loss and, per
        boundary, the SG loss (None where that SG model did not learn)."""
        n, batch = len(self.modules), x.shape[0]
        active = self.schedule.sample(n)
        hs, caches = self.forward(x)
        loss, dlogits = self.loss_fn(hs[-1], labels)
        delta_top = dlogits * batch
        if self.sgs is None:
            self._backprop(delta_top, caches, active, batch)
            return {"loss": backend.to_float(loss), "sg_loss": []}

        true = (
            self._true_deltas(delta_top, caches, batch) if self.sg_targets == "backprop" else None
        )
        c = (
            backend.one_hot(labels, self.n_classes)
            if any(sg.d_context for sg in self.sgs)
            else None
        )
        # targets[i] = (dh_i/dh_{i-1})^T delta_i from module i's own backward: M_i's target.
        targets: list[Array | None] = [None] * n
        predictions: list[Any] = [None] * (n - 1)
        for i in range(n):
            if i < n - 1 and (active[i] or active[i + 1]):
                sg = self.sgs[i]
                predictions[i] = sg.predict(hs[i + 1], c if sg.d_context else None)
            if active[i]:
                delta = delta_top if i == n - 1 else predictions[i][0]
                targets[i] = self._backward(i, delta, caches[i], batch)
        sg_loss: list[float | None] = [None] * (n - 1)
        for i in range(n - 1):
            target = targets[i + 1] if true is None else true[i]
            if active[i + 1] and target is not None:
                delta_hat, cache = predictions[i]
                sg_loss[i] = self.sgs[i].update(cache, delta_hat, target)
        return {"loss": backend.to_float(loss), "sg_loss": sg_loss}

    def _backprop(self, delta: Array, caches: list[Any], active: list[bool], batch: int) -> None:
        """Plain backprop: the true delta flows down through every module (each is locked
        until it arrives); only the modules the schedule chose update."""
        for i in reversed(range(len(self.modules))):
            delta = self._backward(i, delta, caches[i], batch, update=active[i])

    def _true_deltas(self, delta: Array, caches: list[Any], batch: int) -> list[Array]:
        """``[delta_1, ..., delta_{N-1}]`` by a full backward pass (analysis only).

        Parameter gradients accumulated on the way are cleared again.
        """
        deltas = []
        for i in reversed(range(1, len(self.modules))):
            delta = self._backward(i, delta, caches[i], batch, update=False)
            deltas.append(delta)
        return deltas[::-1]


def mlp_modules(sizes: Sequence[int], rng: backend.RNG) -> list[Module]:
    """The paper's fully connected net split at every layer.

    ``sizes = [D_in, H_1, ..., H_k, D_out]``: k modules Linear + BatchNorm + ReLU, then a
    Linear output module (logits). The first module's input is the data, whose gradient
    nobody uses, so its Linear skips computing it (``input_grad=False``).
    """
    modules: list[Module] = [
        Sequential(Linear(d_in, d_out, rng, bias=False, input_grad=k > 0), BatchNorm(d_out), ReLU())
        for k, (d_in, d_out) in enumerate(zip(sizes[:-2], sizes[1:-1]))
    ]
    modules.append(Linear(sizes[-2], sizes[-1], rng, input_grad=len(sizes) > 2))
    return modules


def build_mlp(
    method: str,
    sizes: Sequence[int],
    rng: backend.RNG,
    lr: float = 1e-3,
    sg_hidden: Sequence[int] = (),
    sg_lr: float = 1e-3,
    schedule: Schedule | None = None,
    sg_targets: str = "bootstrap",
) -> DecoupledNet:
    """An every-layer-decoupled MLP trained by ``method`` in {"bprop", "dni", "cdni"}."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid methods are: {', '.join(METHODS)}")
    checks.widths("build_mlp", "sizes", sizes)
    checks.rate("build_mlp", "sg_lr", sg_lr)
    modules = mlp_modules(sizes, rng)
    n_classes = sizes[-1]
    sgs = None
    if method != "bprop":
        d_context = n_classes if method == "cdni" else 0
        sgs = [
            SyntheticGradient(d, rng, d_context=d_context, hidden=sg_hidden, lr=sg_lr)
            for d in sizes[1:-1]
        ]
    return DecoupledNet(modules, sgs, lr, n_classes, schedule, sg_targets)
