"""Truncated backpropagation through time, with and without synthetic gradients.

Jaderberg et al., "Decoupled Neural Interfaces using Synthetic Gradients", ICML 2017
(PMLR 70), section 3.1 (the version cited throughout minidni). An LSTM core
(:class:`~minidni.lstm.LSTM`) with a per-step linear readout reads a long sequence in
segments of T steps; the state ``s = (h, C)`` (output h and cell C, as in
:mod:`minidni.lstm`) is carried from one segment to the next, and after each segment the
core and readout take one Adam step. Boundaries: ``s_j`` is the state after j segments,
so segment j+1 runs from ``s_j`` to ``s_{j+1}``; ``s_0`` is the zero state of
:meth:`reset`. (j counts boundaries; k is reserved for staleness, :mod:`minidni.decoupled`.)

Methods (``method=``):

- ``"bprop"``: plain truncated BPTT, nothing crosses a boundary: the gradient is cut at
  every boundary, and segment j+1 learns only from its own loss ``L_{j+1}``. (Results
  files of older versions call it ``"bptt"``: :func:`canonical_method`.)
- ``"dni"``: a synthetic-gradient model M reads the boundary state ``s_{j+1}`` (h and C
  concatenated, (B, 2H)) and predicts ``delta_hat_{j+1} = M(s_{j+1})``, the gradient of
  all *future* loss with respect to that state. The core backpropagates
  ``sg_scale * delta_hat_{j+1}`` into ``s_{j+1}`` together with its in-segment loss, so
  it learns from beyond its window. At the end of a sequence (``last=True``) nothing is
  injected: the future gradient is zero there.
- ``"dni_aux"``: DNI plus the auxiliary task below.

Units follow :mod:`minidni.decoupled`: a delta is ``B * dL/ds`` ("per-example units", L
the batch-mean loss), and the core backpropagates ``delta / B``.

**What the core receives and what M learns are two separate knobs.**
``sg_scale`` multiplies ``delta_hat`` before the core uses it; ``target_discount``
multiplies the next synthetic gradient inside M's target. M's target for the start state
``s_j`` of segment j+1 is the bootstrap (like a TD target)::

    target_j = g_j + target_discount * J_j^T delta_hat_{j+1}

with ``g_j = B * dL_{j+1}/ds_j`` the in-segment loss gradient and ``J_j = ds_{j+1}/ds_j``
the segment's state Jacobian (with ``last=True`` only ``g_j``). M is trained on
``||delta_hat_j - target_j||^2`` against the prediction ``delta_hat_j`` it made for
``s_j`` at the end of the previous segment (that prediction's cache is kept; M has taken
one step since, and its backward uses the current weights, as in
:mod:`minidni.decoupled`). M's fixed point is then the future gradient discounted by
``target_discount`` per segment. The default ``target_discount = 1`` is the paper's
bootstrap as we read it (its equations carry the synthetic gradient back through the
segment with no discount) and what hannw/sgrnn, a public re-implementation, does; the
factor 0.1 on the injected gradient (``sg_scale``) is what implementations of the paper
use, and we could not find it in the paper's text. ``target_discount = sg_scale`` is
the variant in which the injected, scaled gradient also enters M's target, so that a
loss m segments ahead reaches the core scaled by ``sg_scale ** m``: minidni's earlier
default, kept as an option. When the two knobs differ, ``J_j^T delta_hat_{j+1}`` is
carried back through the segment by one extra state-only backward pass
(``LSTM.backward(..., grads=False)``). With ``sg_scale = target_discount = 1`` and an
oracle M returning the true future gradient, the core's gradients are exactly those of
full BPTT (tested).

**DNI + Aux** (``method="dni_aux"``). The paper adds an auxiliary task in which the core
also predicts synthetic gradients further in the future (as we read it: at the
boundary ``t + T`` the core predicts ``delta_hat_{t+2T}``, one boundary further than M).
Implemented here: a linear head A (zero-initialised, H -> 2H) reads the core's output
``h`` at the end of segment j (the h of ``s_j``) and predicts ``delta_hat_{j+1} =
M(s_{j+1})``, the synthetic gradient one boundary later. Its loss is
``aux_weight * mse(A(h), delta_hat_{j+1})`` (:func:`~minidni.losses.mse`, ``(1/B) sum_n
||A(h_n) - delta_hat_{j+1, n}||^2``) with the target held fixed.
That target exists only after segment j+1 has run, when segment j has already been
updated, so the aux gradient is applied one segment late: at the end of segment j+1 it
trains A and is backpropagated through segment j (whose cache is kept, with the current
weights, like M's late update) into the core's parameters, and joins segment j+1's Adam
step. It does not enter M's target (the paper does not say it does; the aux task shapes
the core's representation, it is not part of the future loss M predicts). The last
segment of a sequence has no synthetic gradient, so the prediction made before it gets
no target. Because A starts at zero, the aux task leaves the core unchanged until A has
learned, like a fresh M. The exact wiring (which h, how the aux gradient is timed) is our
reading; we could not check it against the paper's text offline.

Gradient clipping (``clip_norm``, default None = off): the global L2 norm of the core,
readout and aux-head gradients is scaled down to at most ``clip_norm`` before the Adam
step (Pascanu et al. 2013); the Copy tasks can produce exploding gradients. M is never
clipped.

Losses (``loss=``), both from :mod:`minidni.losses`: ``"bce"``,
:func:`~minidni.losses.sigmoid_bce` on logits (B, T, D_out) against targets in [0, 1]
(B, T, D_out), counted where ``mask`` (B, T) is 1, summed over steps and features and
averaged over the batch (the Copy tasks); ``"ce"``,
:func:`~minidni.losses.sequence_cross_entropy` against integer targets (B, T), the mean
over batch and steps in nats per character (language modelling; a mask is not
supported).

Replacing M by an oracle (tests): set ``trainer.sg_fn = f`` with ``f(s) -> delta_hat``,
s (B, 2H), delta_hat (B, 2H) in per-example units; M is then neither asked nor trained.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from . import backend, checks
from .layers import Linear, Parameter
from .losses import mse, sequence_cross_entropy, sigmoid_bce
from .lstm import LSTM, SeqLinear
from .optim import Adam
from .synthetic import SyntheticGradient

Array = Any
METHODS = ("bprop", "dni", "dni_aux")
LOSSES = ("bce", "ce")
OLD_NAMES = {"bptt": "bprop"}  # the baseline's name in minidni before it was bprop everywhere


def canonical_method(name: str) -> str:
    """Today's name of a TBPTT method: ``"bptt"``, the baseline's name in results files
    (and code) written before minidni called it ``"bprop"`` everywhere, becomes
    ``"bprop"``; every other name is returned as it is. Code that reads results files
    maps their method names through this, once."""
    return OLD_NAMES.get(name, name)


class TBPTT:
    """An LSTM core + per-step readout trained by truncated BPTT, optionally with DNI.

    Args:
        d_in, d_hidden, d_out: input width, LSTM width H, output (logit) width.
        rng: random numbers for the initial weights.
        T: the truncation length (steps per segment).
        method: ``"bprop"``, ``"dni"`` or ``"dni_aux"`` (module docstring).
        loss: ``"bce"`` (masked sigmoid BCE) or ``"ce"`` (softmax CE on integer targets).
        lr: Adam learning rate of the core, readout and aux head.
        sg_lr: Adam learning rate of the SG model M.
        sg_hidden: hidden widths of M (``()`` = linear, the default; no BatchNorm).
        sg_scale: factor on ``delta_hat`` before the core uses it.
        target_discount: factor on the next ``delta_hat`` inside M's bootstrapped target
            (1 = the paper's undiscounted bootstrap; ``sg_scale`` = the discounted variant).
        aux_weight: weight of the DNI+Aux auxiliary loss (``dni_aux`` only).
        clip_norm: clip the core's global gradient norm to this (None: no clipping).

    Attributes: ``core`` (LSTM), ``readout`` (SeqLinear), ``aux`` (Linear H -> 2H or
    None), ``sg`` (SyntheticGradient on 2H or None), ``opt`` and ``sg_opt`` via
    ``sg.opt``, ``state`` (h, C) carried between segments, ``sg_fn`` (oracle hook).
    """

    def __init__(
        self,
        d_in: int,
        d_hidden: int,
        d_out: int,
        rng: backend.RNG,
        T: int,
        method: str = "bprop",
        loss: str = "bce",
        lr: float = 1e-3,
        sg_lr: float = 1e-3,
        sg_hidden: Sequence[int] = (),
        sg_scale: float = 0.1,
        target_discount: float = 1.0,
        aux_weight: float = 1.0,
        clip_norm: float | None = None,
    ):
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; valid methods are: {', '.join(METHODS)}")
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; valid losses are: {', '.join(LOSSES)}")
        checks.count(self, "the truncation length T", T)
        checks.real(self, "sg_scale", sg_scale)
        checks.real(self, "target_discount", target_discount)
        checks.real(self, "aux_weight", aux_weight)
        if clip_norm is not None:
            checks.real(self, "clip_norm", clip_norm, low=1e-12)
        self.d_in, self.d_hidden, self.d_out, self.T = d_in, d_hidden, d_out, T
        self.method, self.loss = method, loss
        self.sg_scale, self.target_discount = sg_scale, target_discount
        self.aux_weight, self.clip_norm = aux_weight, clip_norm
        # Core first, so that bprop and dni models built from the same seed start equal.
        self.core = LSTM(d_in, d_hidden, rng, input_grad=False)  # x is data: no dx
        self.readout = SeqLinear(d_hidden, d_out, rng)
        self.aux = (
            Linear(d_hidden, 2 * d_hidden, rng, init="zeros") if method == "dni_aux" else None
        )
        self.sg = (
            None
            if method == "bprop"
            else SyntheticGradient(2 * d_hidden, rng, hidden=sg_hidden, lr=sg_lr, batchnorm=False)
        )
        self.opt = Adam(self.parameters(), lr=lr)
        self.sg_fn: Callable[[Array], Array] | None = None
        self.state: tuple[Array, Array] | None = None
        self._pending: tuple[Array, Any] | None = None  # M's prediction for the current s_j
        self._aux_pending: tuple | None = None  # A's prediction at s_j, and what it needs

    def __repr__(self) -> str:
        return (
            f"TBPTT({self.d_in}, {self.d_hidden}, {self.d_out}, T={self.T}, "
            f"method={self.method!r}, loss={self.loss!r})"
        )

    def parameters(self) -> list[Parameter]:
        """Core, readout and aux-head parameters (M has its own optimizer)."""
        params = self.core.parameters() + self.readout.parameters()
        return params + (self.aux.parameters() if self.aux is not None else [])

    def reset(self, batch_size: int) -> None:
        """Start new sequences: zero state ``s_0``, no pending synthetic gradient."""
        self.state = self.core.initial_state(batch_size)
        self._pending, self._aux_pending = None, None

    # ---------------------------------------------------------------- pieces

    def loss_and_grad(self, logits: Array, y: Array, mask: Array | None) -> tuple[Array, Array]:
        """The segment loss and its gradient w.r.t. logits (B, T, D_out): for ``"bce"``
        :func:`~minidni.losses.sigmoid_bce` with the mask (B, T), for ``"ce"``
        :func:`~minidni.losses.sequence_cross_entropy` (module docstring)."""
        if self.loss == "bce":
            return sigmoid_bce(logits, y, mask)
        if mask is not None:
            raise ValueError("TBPTT: loss 'ce' does not take a mask")
        return sequence_cross_entropy(logits, y)

    def synthetic_gradient(self, s: Array) -> tuple[Array, Any]:
        """``delta_hat = M(s)`` (B, 2H) for a boundary state s (B, 2H), and M's cache.

        With ``sg_fn`` set (an oracle), returns ``(sg_fn(s), None)``.
        """
        if self.sg_fn is not None:
            return self.sg_fn(s), None
        return self.sg.predict(s)

    def _clip(self) -> float | None:
        """Scale the core's gradients to global norm <= clip_norm; return the norm before.

        Without ``clip_norm`` nothing is computed (None): the norm costs a device-to-host
        copy, which a training step should not pay for a number nobody asked for.
        """
        if self.clip_norm is None:
            return None
        xp = backend.namespace()
        params = self.parameters()
        norm = math.sqrt(backend.to_float(sum(xp.sum(p.grad * p.grad) for p in params)))
        if norm > self.clip_norm:
            for p in params:
                p.grad = p.grad * (self.clip_norm / norm)
        return norm

    # ---------------------------------------------------------------- training

    def segment(
        self, x: Array, y: Array, mask: Array | None = None, last: bool = False
    ) -> dict[str, Any]:
        """Train on one segment of at most T steps, starting from the carried state.

        x (B, T_seg, D_in); y (B, T_seg, D_out) for bce or (B, T_seg) integers for ce;
        mask (B, T_seg) or None. ``last=True``: the sequence ends here (no synthetic
        gradient at the end; the future gradient is zero).

        Returns ``loss`` (float), ``sg_loss`` (M's L2 loss on its prediction for this
        segment's start state, None if M did not learn), ``aux_loss`` (float or None),
        ``logits`` (B, T_seg, D_out), ``sg_target`` ((B, 2H) target for the start state,
        per-example units; None for bprop), ``delta_hat`` ((B, 2H) synthetic gradient
        at the end, None if none was used), ``grad_norm`` (before clipping; None
        without ``clip_norm``).
        """
        xp = backend.namespace()
        if self.state is None or self.state[0].shape[0] != x.shape[0]:
            raise ValueError(f"{self!r}: call reset(batch_size) before the first segment")
        b, t_len = x.shape[0], x.shape[1]
        if t_len > self.T:
            raise ValueError(f"{self!r}: a segment has at most T={self.T} steps, got {t_len}")
        H = self.d_hidden
        hs, state_T, core_cache = self.core.forward(x, self.state)  # hs (B, T_seg, H)
        logits, readout_cache = self.readout.forward(hs)  # (B, T_seg, D_out)
        loss, dlogits = self.loss_and_grad(logits, y, mask)

        for module in (self.core, self.readout, self.aux):
            if module is not None:
                module.zero_grad()
        dhs = self.readout.backward(dlogits, readout_cache)  # (B, T_seg, H)

        dstate_T, new_pending, delta_hat = None, None, None
        if self.method != "bprop" and not last:
            s_end = xp.concat(list(state_T), axis=1)  # (B, 2H): s_{j+1} = [h, C]
            delta_hat, sg_cache = self.synthetic_gradient(s_end)  # per-example units
            new_pending = (delta_hat, sg_cache)
            injected = (self.sg_scale / b) * delta_hat  # gradient of the batch-mean loss
            dstate_T = (injected[:, :H], injected[:, H:])
        _, dstate_0 = self.core.backward(dhs, dstate_T, core_cache)

        sg_target = None
        if self.method != "bprop":
            sg_target = b * xp.concat(list(dstate_0), axis=1)  # g_j + sg_scale J^T delta_hat
            if delta_hat is not None and self.target_discount != self.sg_scale:
                # M's target carries delta_hat back with its own factor: add the difference.
                d = delta_hat
                _, jt = self.core.backward(
                    xp.zeros_like(dhs), (d[:, :H], d[:, H:]), core_cache, grads=False
                )
                jt_delta = xp.concat(list(jt), axis=1)  # (B, 2H): J^T delta_hat
                sg_target = sg_target + (self.target_discount - self.sg_scale) * jt_delta
        aux_loss = None if self.aux is None else self._aux_step(hs, core_cache, delta_hat, last)
        grad_norm = self._clip()
        self.opt.step()

        sg_loss = None
        if self._pending is not None and self.sg_fn is None and sg_target is not None:
            old_delta_hat, old_cache = self._pending
            sg_loss = self.sg.update(old_cache, old_delta_hat, sg_target)
        self._pending = new_pending
        self.state = state_T
        return {
            "loss": backend.to_float(loss),
            "sg_loss": sg_loss,
            "aux_loss": aux_loss,
            "logits": logits,
            "sg_target": sg_target,
            "delta_hat": delta_hat,
            "grad_norm": grad_norm,
        }

    def _aux_step(self, hs: Array, core_cache: Any, delta_hat: Array | None, last: bool):
        """DNI + Aux (module docstring): score the prediction A made at the end of the
        previous segment against ``delta_hat`` (the synthetic gradient at this segment's
        end), backpropagate that loss through A and, one segment late, through the
        previous segment's core; then predict the next boundary's synthetic gradient from
        this segment's last h. Returns the aux loss (None when nothing was scored)."""
        xp = backend.namespace()
        aux_loss, pending = None, self._aux_pending
        if pending is not None and delta_hat is not None:
            pred, aux_cache, prev_shape, prev_core_cache = pending
            loss, dpred = mse(pred, delta_hat)  # the target delta_hat is held fixed
            aux_loss, dpred = backend.to_float(self.aux_weight * loss), self.aux_weight * dpred
            dh_end = self.aux.backward(dpred, aux_cache)  # (B, H): at h of s_j
            zero = xp.zeros(prev_shape, dtype=hs.dtype)  # (B, T_prev, H): no loss inside
            self.core.backward(zero, (dh_end, xp.zeros_like(dh_end)), prev_core_cache)
        self._aux_pending = None
        if not last:
            pred, aux_cache = self.aux.forward(hs[:, -1, :])  # (B, 2H)
            self._aux_pending = (pred, aux_cache, tuple(hs.shape), core_cache)
        return aux_loss

    def train_sequence(self, x: Array, y: Array, mask: Array | None = None) -> dict[str, Any]:
        """Reset, then train on whole sequences x (B, T_total, D_in) segment by segment.

        The last segment may be shorter than T and has ``last=True``. Returns ``loss``
        over the whole sequence (bce: the sum of the segment losses, i.e. summed over all
        masked steps, mean over the batch; ce: mean nats per character over all steps),
        ``sg_loss`` / ``aux_loss`` (means over the segments where they exist, else None),
        ``segments`` (the per-segment dicts) and ``logits`` (B, T_total, D_out).
        """
        xp = backend.namespace()
        b, total = x.shape[0], x.shape[1]
        self.reset(b)
        results, logits = [], []
        for start in range(0, total, self.T):
            stop = min(start + self.T, total)
            m = None if mask is None else mask[:, start:stop]
            r = self.segment(x[:, start:stop, ...], y[:, start:stop, ...], m, last=stop == total)
            results.append((stop - start, r))
            logits.append(r["logits"])
        if self.loss == "ce":  # each segment's loss is a mean over its steps
            loss = sum(n * r["loss"] for n, r in results) / total
        else:
            loss = sum(r["loss"] for _, r in results)

        def mean_of(key: str) -> float | None:
            values = [r[key] for _, r in results if r[key] is not None]
            return sum(values) / len(values) if values else None

        return {
            "loss": loss,
            "sg_loss": mean_of("sg_loss"),
            "aux_loss": mean_of("aux_loss"),
            "segments": [r for _, r in results],
            "logits": xp.concat(logits, axis=1),  # (B, T_total, D_out)
        }

    def predict(
        self, x: Array, state: tuple[Array, Array] | None = None
    ) -> tuple[Array, tuple[Array, Array]]:
        """Forward only (no training, the carried state is untouched): logits (B, T, D_out)
        and the final state, from ``state`` (default: zeros)."""
        if state is None:
            state = self.core.initial_state(x.shape[0])
        hs, state_T, _ = self.core.forward(x, state, train=False)
        logits, _ = self.readout.forward(hs, train=False)
        return logits, state_T
