"""A chain of modules joined by decoupled neural interfaces, and one training step.

Jaderberg et al., ICML 2017, section 3.3 (every layer decoupled). The notation of the
taught core; the paper's indices are 1-based, list positions 0-based:

    paper        code                meaning
    f_i          modules[i-1]        module i of N, applied in order
    h_i          hs[i]               h_0 = x, h_i = f_i(h_{i-1}): the output of f_i
                                     (hs has N+1 entries)
    delta_i      -                   dL/dh_i, the true gradient at the boundary after f_i;
                                     in code in per-example units, B * dL/dh_i (see Units)
    M_{i+1}      sgs[i-1]            the SG model at the boundary between f_i and f_{i+1}
                                     (sgs[0] is M_2, reading h_1); only M_N, at sgs[N-2],
                                     is trained on the true loss gradient
    delta_hat_i  sgs[i-1].predict    M_{i+1}(h_i, c): the synthetic gradient for delta_i
    I_i          inputs[i-1]         the synthetic-input model of f_i: predicts h_{i-1}
                                     from x (inputs[0] is None: f_1 reads x itself)
    c            one_hot(labels)     the cDNI context, the one-hot label
    k, k_i       schedule.delays(N)  staleness: f_i's backward pass runs k_i steps after
                                     its forward pass
    T            TBPTT(T=...)        the truncation length of TBPTT (:mod:`minidni.tbptt`)
    B            x.shape[0]          the batch size

So ``sgs[j]`` sits right after ``modules[j]``. Loops in the code run over the paper's
index i: ``for i in range(1, N + 1)`` visits f_i = ``modules[i - 1]``.

One step of every-layer-decoupled training (:meth:`DecoupledNet.step`):

1. forward: each module computes ``h_i`` and hands it on;
2. each f_i, i < N, asks ``M_{i+1}`` for ``delta_hat_i = M_{i+1}(h_i, c)``;
3. each f_i backpropagates its ``delta_hat_i`` (f_N the true loss gradient ``delta_N``)
   and updates at once. That backward pass also yields ``(dh_i/dh_{i-1})^T delta_hat_i``,
   the *bootstrapped* target of ``M_i``, one boundary upstream;
4. each SG model learns: ``M_i`` from f_i's backward pass, so only ``M_N`` sees the true
   loss gradient.

Units. A delta here is ``B * dL/dh`` with L the batch-mean loss: the gradient of each
example's own loss with respect to its own activation, which does not shrink with the
batch size. Modules therefore backpropagate ``delta / B``, the gradient of the batch-mean
loss, and the input gradient they return is multiplied by B to give the next target.

Schedules (:mod:`minidni.schedules`) decide which modules run their backward pass and
update on a step, and how stale it is. A module that skips runs no backward pass and so
produces no target: on that step the SG model at the boundary just before it does not
learn either. So ``M_i`` learns exactly on the steps where f_i ran backward, whether or
not f_{i-1} (which consumes its prediction) did. With :class:`~minidni.schedules.Delayed`
f_i backpropagates at step t its forward pass of step ``t - k_i``: every forward pass waits
in a queue (``in_flight``) as an :class:`InFlight` record, which in lockstep is taken at
once. What is stale and what is current is spelled out in :mod:`minidni.unlock`, whose
:class:`~minidni.unlock.UnlockedNet` adds synthetic inputs (complete unlock) to this step.

``method="bprop"`` is ordinary backpropagation through the same chain. ``sg_targets=
"backprop"`` trains the SG models on true backprop gradients: for analysis only, since it
needs a full backward pass and so *nothing is unlocked*.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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


@dataclass
class InFlight:
    """Module f_i's forward pass of step ``step``, waiting for its backward pass.

    ``cache``: f_i's cache (its input activations of that step); ``delta``: the gradient
    to backpropagate, ``delta_hat_i`` (B, D_i) predicted at forward time (for f_N the true
    loss gradient ``delta_N``; None when the pass is not backpropagated); ``sg``:
    ``(delta_hat_{i-1}, cache)`` of ``M_i`` at forward time, which the target of this
    backward pass trains (None for f_1); ``active``: whether the schedule chose this pass
    for a backward pass.
    """

    step: int
    active: bool
    cache: Any
    delta: Array | None
    sg: tuple[Array, Any] | None


class DecoupledNet:
    """Modules ``f_1..f_N`` with optimizers, and SG models between them (None for bprop).

    Args:
        modules: the N modules, applied in order (``modules[i-1]`` is f_i).
        sgs: N-1 synthetic-gradient models, ``sgs[i-1]`` is ``M_{i+1}`` right after f_i;
            or None for bprop.
        lr: Adam learning rate of every module.
        n_classes: number of classes; the one-hot label is the context of cDNI models.
        schedule: which modules update on a step, and their delays ``k_i`` (default: all
            of them, no delay).
        sg_targets: ``"bootstrap"`` (the method) or ``"backprop"`` (analysis only).
        loss_fn: ``(logits, labels) -> (loss, dlogits)``.
        optimizer: builds a module's optimizer from its parameters (default: Adam, ``lr``).

    Attributes besides the arguments: ``opts`` (one optimizer per module), ``delays``
    (``k_i`` at position i-1), ``in_flight`` (per module, its forward passes waiting for
    their backward pass) and ``t`` (steps taken).
    """

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
        self.delays = self.schedule.delays(len(self.modules))  # k_i of f_i at delays[i-1]
        if any(self.delays) and (sgs is None or sg_targets == "backprop"):
            why = (
                "bprop waits for the true gradient, so nothing can be stale"
                if sgs is None
                else 'sg_targets="backprop" takes the true gradients of the current step'
            )
            raise ValueError(f"{type(self).__name__} cannot run {self.schedule!r}: {why}")
        self.sg_targets = sg_targets
        self.loss_fn = loss_fn
        self.in_flight: list[deque[InFlight]] = [deque() for _ in self.modules]
        self.t = 0  # steps taken

    def forward(self, x: Array, train: bool = True) -> tuple[list[Array], list[Any]]:
        """Activations ``hs = [h_0 = x, h_1, ..., h_N]`` and the modules' caches."""
        hs, caches = [x], []
        for f in self.modules:
            h, cache = f.forward(hs[-1], train)
            hs.append(h)
            caches.append(cache)
        return hs, caches

    def predict(self, x: Array) -> Array:
        """Logits (B, n_classes) in evaluation mode (BatchNorm running statistics)."""
        return self.forward(x, train=False)[0][-1]

    def step(self, x: Array, labels: Array) -> dict[str, Any]:
        """One training step on a batch x (B, ...), labels (B,). Returns the loss and, per
        boundary (``M_2..M_N``), the SG loss (None where that SG model did not learn).

        Below, i is the paper's index: f_i is ``modules[i - 1]``, h_i is ``hs[i]``.
        """
        n, batch = len(self.modules), x.shape[0]
        active = self.schedule.sample(n)  # active[i-1]: is f_i's pass of this step backpropagated?
        # 1. Forward: h_0 = x, h_1, ..., h_N, the loss L(h_N, y) and the true delta_N.
        hs, caches = self.forward(x)
        loss, dlogits = self.loss_fn(hs[-1], labels)
        delta_N = dlogits * batch  # per-example units
        if self.sgs is None:  # bprop: delta_N flows down through every module, locked
            self._backprop(delta_N, caches, active, batch)
            self.t += 1
            return {"loss": backend.to_float(loss), "sg_loss": []}
        # (sg_targets="backprop", analysis only: true[i] = delta_i by a full backward pass.)
        true = self._true_deltas(delta_N, caches, batch) if self.sg_targets == "backprop" else None
        # The forward passes the modules learn from: here the chain itself (complete unlock,
        # minidni.unlock, runs each f_i on its synthetic input I_i(x) instead).
        hs, caches, delta_N, more = self._own_forward(x, labels, hs, caches, delta_N)

        # 2. Each f_i, i < N, asks M_{i+1} for delta_hat_i = M_{i+1}(h_i, c), from its own
        #    output alone; asked when someone uses it: f_i, or M_{i+1}'s update after f_{i+1}.
        c = self._context(labels)
        predicted: list[Any] = [None] * (n + 1)  # predicted[i]: (delta_hat_i, M_{i+1}'s cache)
        for i in range(1, n):
            if active[i - 1] or active[i]:
                M = self.sgs[i - 1]
                predicted[i] = M.predict(hs[i], c if M.d_context else None)
        deltas = [None if p is None else p[0] for p in predicted[:n]] + [delta_N]
        for i in range(1, n + 1):  # f_i's pass waits k_i steps for its backward pass
            f_pass = InFlight(self.t, active[i - 1], caches[i - 1], deltas[i], predicted[i - 1])
            self.in_flight[i - 1].append(f_pass)

        # 3. Each f_i backpropagates its delta_hat_i (f_N: delta_N) and updates at once; the
        #    input gradient that falls out, (dh_i/dh_{i-1})^T delta_hat_i, is M_i's target.
        done: list[InFlight | None] = [None] * (n + 1)  # done[i]: the pass f_i learned from
        targets: list[Array | None] = [None] * (n + 1)  # targets[i]: M_i's target
        for i in range(1, n + 1):
            f_pass = self._due(i)
            if f_pass is not None and f_pass.active:
                targets[i] = self._backward(i, f_pass.delta, f_pass.cache, batch)
                done[i] = f_pass

        # 4. Each SG model M_i learns ||delta_hat_{i-1} - target||^2 on the prediction
        #    delta_hat_{i-1} it made for the forward pass that f_i just backpropagated.
        sg_loss: list[float | None] = [None] * (n - 1)  # sg_loss[i-2]: M_i's loss
        for i in range(2, n + 1):
            if done[i] is not None:
                delta_hat, cache = done[i].sg
                target = targets[i] if true is None else true[i - 1]
                sg_loss[i - 2] = self.sgs[i - 2].update(cache, delta_hat, target)
        self.t += 1
        return {"loss": backend.to_float(loss), "sg_loss": sg_loss, **more}

    def _own_forward(
        self, x: Array, labels: Array, hs: list[Array], caches: list[Any], delta_N: Array
    ) -> tuple[list[Array], list[Any], Array, dict[str, Any]]:
        """The forward passes the modules learn from on this step: ``(hs, caches, delta_N,
        more)``, ``more`` being extra entries of the step's result.

        Here the chain itself; :class:`~minidni.unlock.UnlockedNet` overrides this to run
        each module on its synthetic input ``I_i(x)`` instead (complete unlock)."""
        return hs, caches, delta_N, {}

    def _context(self, labels: Array) -> Array | None:
        """The cDNI context c (B, n_classes), the one-hot labels; None when no SG model
        reads a context."""
        if any(M.d_context for M in self.sgs):
            return backend.one_hot(labels, self.n_classes)
        return None

    def _due(self, i: int) -> InFlight | None:
        """f_i's forward pass of ``k_i`` steps ago, taken off its queue; None while the
        queue warms up (nothing is ``k_i`` steps old yet)."""
        queue, k = self.in_flight[i - 1], self.delays[i - 1]
        if len(queue) <= k:
            return None
        f_pass = queue.popleft()
        assert f_pass.step == self.t - k
        return f_pass

    def _backward(
        self, i: int, delta: Array, cache: Any, batch: int, update: bool = True
    ) -> Array | None:
        """Backpropagate ``delta`` (per-example units) through f_i and update it.

        Returns the per-example gradient at f_i's input, ``B * dL/dh_{i-1}``, or None for
        a first module built without an input gradient (its input is the data).
        """
        f = self.modules[i - 1]
        f.zero_grad()
        dh_prev = f.backward(delta / batch, cache)
        if update:
            self.opts[i - 1].step()
        return None if dh_prev is None else dh_prev * batch

    def _backprop(self, delta: Array, caches: list[Any], active: list[bool], batch: int) -> None:
        """Plain backprop: the true delta flows down through every module (each is locked
        until it arrives); only the modules the schedule chose update."""
        for i in reversed(range(1, len(self.modules) + 1)):
            delta = self._backward(i, delta, caches[i - 1], batch, update=active[i - 1])

    def _true_deltas(self, delta: Array, caches: list[Any], batch: int) -> list[Array]:
        """``[None, delta_1, ..., delta_{N-1}]`` (``true[i] = delta_i``) by a full backward
        pass from ``delta = delta_N`` (analysis only). The parameter gradients accumulated
        on the way are cleared again by the next backward pass of each module.
        """
        deltas = [delta]
        for i in reversed(range(2, len(self.modules) + 1)):  # f_N .. f_2: delta_{i-1}
            deltas.insert(0, self._backward(i, deltas[0], caches[i - 1], batch, update=False))
        return [None, *deltas[:-1]]


def mlp_modules(sizes: Sequence[int], rng: backend.RNG) -> list[Module]:
    """The paper's fully connected net split at every layer.

    ``sizes = [D_in, H_1, ..., H_{N-1}, D_out]``: N-1 modules Linear + BatchNorm + ReLU,
    then a Linear output module f_N (logits). f_1's input is the data, whose gradient
    nobody uses, so its Linear skips computing it (``input_grad=False``).
    """
    modules: list[Module] = [
        Sequential(Linear(d_in, d_out, rng, bias=False, input_grad=i > 1), BatchNorm(d_out), ReLU())
        for i, (d_in, d_out) in enumerate(zip(sizes[:-2], sizes[1:-1]), start=1)  # f_i
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
