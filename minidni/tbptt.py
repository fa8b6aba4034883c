"""Truncated backpropagation through time, with and without synthetic gradients.

Jaderberg et al. 2017, section 3.2. An LSTM core (:class:`~minidni.lstm.LSTM`) with a
per-step linear readout reads a long sequence in segments of T steps; the state
``s = (h, c)`` is carried from one segment to the next, and after each segment the core
and readout take one Adam step. Boundaries: ``s_k`` is the state after k segments, so
segment k+1 runs from ``s_k`` to ``s_{k+1}``; ``s_0`` is the zero state of :meth:`reset`.

Methods (``method=``):

- ``"bptt"``: plain truncated BPTT. The gradient is cut at every boundary: segment k+1
  learns only from its own loss ``L_{k+1}``.
- ``"dni"``: a synthetic-gradient model M reads the boundary state ``s_{k+1}`` (h and c
  concatenated, (B, 2H)) and predicts ``delta_hat_{k+1} = M(s_{k+1})``, the gradient of
  all *future* loss with respect to that state. The core backpropagates
  ``sg_scale * delta_hat_{k+1}`` into ``s_{k+1}`` together with its in-segment loss, so
  it learns from beyond its window. At the end of a sequence (``last=True``) nothing is
  injected: the future gradient is zero there.
- ``"dni_aux"``: DNI plus the auxiliary task below.

Units follow :mod:`minidni.decoupled`: a delta is ``B * dL/ds`` ("per-example units", L
the batch-mean loss), and the core backpropagates ``delta / B``.

The SG target (a bootstrap, like TD learning). Segment k+1's backward pass starts from
its loss gradient and the injected ``sg_scale * delta_hat_{k+1} / B`` at ``s_{k+1}``, and
ends with a gradient for its start state ``s_k``. Times B, that is M's target for
``s_k``::

    target_k = B * d/ds_k [ L_{k+1}(s_k) + < sg_scale * delta_hat_{k+1} / B, s_{k+1}(s_k) > ]

i.e. the in-segment gradient plus the *injected* (scaled) synthetic gradient carried back
through the segment; with ``last=True`` only the first term. M is then trained on
``||delta_hat_k - target_k||^2`` against the prediction ``delta_hat_k`` it made for
``s_k`` at the end of the previous segment (that prediction's cache is kept; M has
taken one step since, and its backward uses the current weights, as in
:mod:`minidni.decoupled`). So ``sg_scale`` enters the target exactly as it enters the
core's gradient: M's fixed point is ``delta_k = g_k + sg_scale * J_k^T delta_{k+1}``
(g_k the in-segment gradient, J_k the segment's state Jacobian), the sum of future loss
gradients discounted by ``sg_scale`` per segment, like a TD target with
``gamma = sg_scale``; this is also what autograd-based implementations that scale the
injected gradient compute. With ``sg_scale = 1`` and an oracle M returning the true future
gradient, the core's gradients are exactly those of full BPTT (tested). The paper's
implementation scales synthetic gradients by 0.1 (the default here), which keeps the
bootstrap stable.

DNI + Aux (``method="dni_aux"``). The paper adds an auxiliary task: the core also
predicts synthetic gradients further in the future. What is implemented here: a linear
head A (zero-initialised, H -> 2H) reads the core's output ``h_t`` at *every* step t of
segment k+1 and predicts ``delta_hat_{k+1} = M(s_{k+1})``, the synthetic gradient at the
end of the segment (1 to T steps in the future of step t). Its loss is
``aux_weight * (1/B) sum_n mean_t ||A(h_t) - delta_hat_{k+1}||^2`` with the target held
fixed; its gradient trains A and flows back through the core (that is the point of an
auxiliary task: it shapes the core's representation to carry what the future gradient
depends on). Why this variant: the paper's picture has the core at the boundary
``t + T`` predict ``delta_hat_{t+2T}``, but that target exists only after the next
segment, when the segment that produced ``h_{t+T}`` has already been updated; predicting
the current segment's end keeps every gradient inside the segment being trained, so no
backward pass is delayed. The last segment of a sequence has no synthetic gradient and
so no aux loss. The aux loss is part of the core's training objective, so its gradient
also reaches ``s_k`` and hence M's target (M predicts the gradient of all future task
*and* aux losses, consistently). ``aux_weight`` defaults to 1: targets and predictions
are in per-example gradient units, comparable to the task loss's own gradient. Because
A starts at zero, the aux task leaves the core unchanged on its first step, like a
fresh M.

Gradient clipping (``clip_norm``, default None = off): the global L2 norm of the core,
readout and aux-head gradients is scaled down to at most ``clip_norm`` before the Adam
step (Pascanu et al. 2013); the Copy tasks can produce exploding gradients. M is never
clipped.

Losses (``loss=``): ``"bce"``, sigmoid binary cross-entropy on logits (B, T, D_out)
against targets in [0, 1] (B, T, D_out), counted where ``mask`` (B, T) is 1, summed over
steps and features and averaged over the batch (the Copy tasks); ``"ce"``, softmax
cross-entropy against integer targets (B, T), the mean over batch and steps in nats per
character (language modelling; a mask is not supported).

Replacing M by an oracle (tests): set ``trainer.sg_fn = f`` with ``f(s) -> delta_hat``,
s (B, 2H), delta_hat (B, 2H) in per-example units; M is then neither asked nor trained.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from . import backend, checks
from .layers import Linear, Parameter, sigmoid
from .lstm import LSTM, SeqLinear
from .optim import Adam
from .synthetic import SyntheticGradient

Array = Any
METHODS = ("bptt", "dni", "dni_aux")
LOSSES = ("bce", "ce")


class TBPTT:
    """An LSTM core + per-step readout trained by truncated BPTT, optionally with DNI.

    Args:
        d_in, d_hidden, d_out: input width, LSTM width H, output (logit) width.
        rng: random numbers for the initial weights.
        T: the truncation length (steps per segment).
        method: ``"bptt"``, ``"dni"`` or ``"dni_aux"`` (module docstring).
        loss: ``"bce"`` (masked sigmoid BCE) or ``"ce"`` (softmax CE on integer targets).
        lr: Adam learning rate of the core, readout and aux head.
        sg_lr: Adam learning rate of the SG model M.
        sg_hidden: hidden widths of M (``()`` = linear, the default; no BatchNorm).
        sg_scale: factor on ``delta_hat`` before the core uses it (also in M's target).
        aux_weight: weight of the DNI+Aux auxiliary loss (``dni_aux`` only).
        clip_norm: clip the core's global gradient norm to this (None: no clipping).

    Attributes: ``core`` (LSTM), ``readout`` (SeqLinear), ``aux`` (Linear H -> 2H or
    None), ``sg`` (SyntheticGradient on 2H or None), ``opt`` and ``sg_opt`` via
    ``sg.opt``, ``state`` (h, c) carried between segments, ``sg_fn`` (oracle hook).
    """

    def __init__(
        self,
        d_in: int,
        d_hidden: int,
        d_out: int,
        rng: backend.RNG,
        T: int,
        method: str = "bptt",
        loss: str = "bce",
        lr: float = 1e-3,
        sg_lr: float = 1e-3,
        sg_hidden: Sequence[int] = (),
        sg_scale: float = 0.1,
        aux_weight: float = 1.0,
        clip_norm: float | None = None,
    ):
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; valid methods are: {', '.join(METHODS)}")
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; valid losses are: {', '.join(LOSSES)}")
        checks.count(self, "the truncation length T", T)
        checks.real(self, "sg_scale", sg_scale)
        checks.real(self, "aux_weight", aux_weight)
        if clip_norm is not None:
            checks.real(self, "clip_norm", clip_norm, low=1e-12)
        self.d_in, self.d_hidden, self.d_out, self.T = d_in, d_hidden, d_out, T
        self.method, self.loss = method, loss
        self.sg_scale, self.aux_weight, self.clip_norm = sg_scale, aux_weight, clip_norm
        # Core first, so that bptt and dni models built from the same seed start equal.
        self.core = LSTM(d_in, d_hidden, rng)
        self.readout = SeqLinear(d_hidden, d_out, rng)
        self.aux = (
            Linear(d_hidden, 2 * d_hidden, rng, init="zeros") if method == "dni_aux" else None
        )
        self.sg = (
            None
            if method == "bptt"
            else SyntheticGradient(2 * d_hidden, rng, hidden=sg_hidden, lr=sg_lr, batchnorm=False)
        )
        self.opt = Adam(self.parameters(), lr=lr)
        self.sg_fn: Callable[[Array], Array] | None = None
        self.state: tuple[Array, Array] | None = None
        self._pending: tuple[Array, Any] | None = None  # M's prediction for the current s_k

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
        self._pending = None

    # ---------------------------------------------------------------- pieces

    def loss_and_grad(self, logits: Array, y: Array, mask: Array | None) -> tuple[Array, Array]:
        """The segment loss and its gradient w.r.t. logits (B, T, D_out) (module docstring)."""
        xp = backend.namespace()
        b, t_len, d = logits.shape
        if self.loss == "ce":
            if mask is not None:
                raise ValueError("TBPTT: loss 'ce' does not take a mask")
            if tuple(y.shape) != (b, t_len):
                raise ValueError(f"TBPTT: ce targets must be (B, T) = {(b, t_len)}, got {y.shape}")
            n = b * t_len
            flat = xp.reshape(logits, (n, d))  # (B*T, C)
            onehot = backend.one_hot(xp.reshape(y, (n,)), d)  # (B*T, C)
            z = flat - xp.max(flat, axis=1, keepdims=True)  # (B*T, C), row max 0
            log_sum_exp = xp.log(xp.sum(xp.exp(z), axis=1))  # (B*T,)
            loss = xp.mean(log_sum_exp - xp.sum(z * onehot, axis=1))
            dflat = (xp.exp(z) / xp.exp(log_sum_exp)[:, None] - onehot) / n
            return loss, xp.reshape(dflat, (b, t_len, d))  # (B, T, C)
        if tuple(y.shape) != (b, t_len, d):
            raise ValueError(f"TBPTT: bce targets must be {(b, t_len, d)}, got {tuple(y.shape)}")
        m = xp.ones((b, t_len), dtype=logits.dtype) if mask is None else mask
        if tuple(m.shape) != (b, t_len):
            raise ValueError(f"TBPTT: mask must be (B, T) = {(b, t_len)}, got {tuple(m.shape)}")
        m = m[:, :, None]  # (B, T, 1)
        x = logits
        per_element = xp.maximum(x, 0.0) - x * y + xp.log(1.0 + xp.exp(-xp.abs(x)))
        return xp.sum(per_element * m) / b, m * (sigmoid(x) - y) / b

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
        per-example units; None for bptt), ``delta_hat`` ((B, 2H) synthetic gradient
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

        dstate_T, new_pending, delta_hat, aux_loss = None, None, None, None
        if self.method != "bptt" and not last:
            s_end = xp.concat(list(state_T), axis=1)  # (B, 2H): s_{k+1} = [h, c]
            delta_hat, sg_cache = self.synthetic_gradient(s_end)  # per-example units
            new_pending = (delta_hat, sg_cache)
            injected = (self.sg_scale / b) * delta_hat  # gradient of the batch-mean loss
            dstate_T = (injected[:, :H], injected[:, H:])
            if self.aux is not None:
                aux_loss, daux_hs = self._aux_loss(hs, delta_hat)
                dhs = dhs + daux_hs
        _, dstate_0 = self.core.backward(dhs, dstate_T, core_cache)
        grad_norm = self._clip()
        self.opt.step()

        sg_target, sg_loss = None, None
        if self.method != "bptt":
            sg_target = b * xp.concat(list(dstate_0), axis=1)  # (B, 2H): M's target for s_k
            if self._pending is not None and self.sg_fn is None:
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

    def _aux_loss(self, hs: Array, delta_hat: Array) -> tuple[float, Array]:
        """DNI+Aux: ``aux_weight * (1/B) sum_n mean_t ||A(h_t) - delta_hat||^2`` and its
        gradient w.r.t. hs (B, T_seg, H); accumulates A's gradients. The target is fixed."""
        xp = backend.namespace()
        b, t_len, H = hs.shape
        flat = xp.reshape(hs, (b * t_len, H))  # (B*T, H)
        pred, cache = self.aux.forward(flat)  # (B*T, 2H)
        target = xp.reshape(
            xp.broadcast_to(delta_hat[:, None, :], (b, t_len, 2 * H)), (b * t_len, 2 * H)
        )  # (B*T, 2H): row n*T + t is example n's delta_hat
        diff = pred - target
        scale = self.aux_weight / (b * t_len)
        loss = scale * xp.sum(diff * diff)
        dflat = self.aux.backward(2.0 * scale * diff, cache)  # (B*T, H)
        return backend.to_float(loss), xp.reshape(dflat, (b, t_len, H))  # (B, T, H)

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
