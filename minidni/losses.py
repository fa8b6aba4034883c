"""Losses, each returning ``(loss, dpred)``: the scalar and its gradient w.r.t. the prediction.

Every loss is a *sum over features, mean over the batch*: for a batch of B rows the loss
is ``(1/B) sum_n loss_n``, so ``dpred`` carries a factor 1/B. The same convention holds
everywhere in minidni, including the synthetic-gradient and synthetic-input losses. The
one exception says so in its name: :func:`sequence_cross_entropy`, a mean over the batch
*and* the time steps (nats per character).

Every loss the training code uses lives here, and ``minidni gradcheck`` checks each:
:func:`softmax_cross_entropy` (classifiers), :func:`sequence_cross_entropy` (char-PTB),
:func:`sigmoid_bce` with a mask (Copy / Repeat Copy) and :func:`mse` (SG, synthetic-input
and DNI + Aux models).
"""

from __future__ import annotations

from typing import Any

from . import backend

Array = Any


def _check(name: str, pred: Array, target: Array) -> None:
    if tuple(pred.shape) != tuple(target.shape):
        raise ValueError(
            f"{name}: prediction shape {tuple(pred.shape)} != target shape {tuple(target.shape)}"
        )


def softmax(logits: Array) -> Array:
    """Row-wise softmax (B, C) -> (B, C), shifted by the row maximum for stability."""
    xp = backend.namespace()
    e = xp.exp(logits - xp.max(logits, axis=1, keepdims=True))
    return e / xp.sum(e, axis=1, keepdims=True)


def softmax_cross_entropy(logits: Array, labels: Array) -> tuple[Array, Array]:
    """Cross-entropy of integer labels under softmax(logits).

    Shapes: logits (B, C), labels (B,) integers in [0, C). Returns the mean over the batch
    of ``-log softmax(logits)[n, labels[n]]`` and its gradient ``(softmax - onehot) / B``.
    Computed through log-sum-exp of shifted logits, so large logits never overflow.
    """
    if logits.ndim != 2 or tuple(labels.shape) != (logits.shape[0],):
        raise ValueError(
            f"softmax_cross_entropy: expected logits (B, C) and labels (B,), "
            f"got {tuple(logits.shape)} and {tuple(labels.shape)}"
        )
    xp = backend.namespace()
    b, c = logits.shape
    y = backend.one_hot(labels, c)
    z = logits - xp.max(logits, axis=1, keepdims=True)  # (B, C), max 0 per row
    log_sum_exp = xp.log(xp.sum(xp.exp(z), axis=1))  # (B,)
    loss = xp.mean(log_sum_exp - xp.sum(z * y, axis=1))
    return loss, (softmax(logits) - y) / b


def mse(pred: Array, target: Array) -> tuple[Array, Array]:
    """Squared error ``(1/B) sum_n ||pred_n - target_n||^2``; gradient ``2 (pred - target) / B``.

    Shapes: pred, target (B, ...) alike. This is the loss ``||delta_hat - delta||^2`` of
    the synthetic-gradient models and the L2 loss of the synthetic-input models.
    """
    _check("mse", pred, target)
    xp = backend.namespace()
    b = pred.shape[0]
    diff = pred - target
    return xp.sum(diff * diff) / b, 2.0 * diff / b


def sequence_cross_entropy(logits: Array, labels: Array) -> tuple[Array, Array]:
    """Softmax cross-entropy of a sequence of integer labels, e.g. next characters.

    Shapes: logits (B, T, C), labels (B, T) integers in [0, C). Returns the mean over the
    batch *and* the T steps of ``-log softmax(logits)[n, t, labels[n, t]]`` (nats per
    step) and its gradient ``(softmax - onehot) / (B T)`` (B, T, C): the B*T steps are
    rows of :func:`softmax_cross_entropy`.
    """
    if logits.ndim != 3 or tuple(labels.shape) != tuple(logits.shape[:2]):
        raise ValueError(
            f"sequence_cross_entropy: expected logits (B, T, C) and labels (B, T), "
            f"got {tuple(logits.shape)} and {tuple(labels.shape)}"
        )
    xp = backend.namespace()
    b, t, c = logits.shape
    loss, dflat = softmax_cross_entropy(
        xp.reshape(logits, (b * t, c)),  # (B*T, C)
        xp.reshape(labels, (b * t,)),  # (B*T,)
    )
    return loss, xp.reshape(dflat, (b, t, c))  # (B, T, C)


def sigmoid_bce(logits: Array, targets: Array, mask: Array | None = None) -> tuple[Array, Array]:
    """Binary cross-entropy of targets in [0, 1] under sigmoid(logits), optionally masked.

    Shapes: logits, targets (B, ..., D); mask (B, ...) or None, one weight per position
    (e.g. (B, T): which time steps count), shared by the D features. With x the logits,
    t the targets and m the mask (1 without one), the loss is

        (1/B) sum_{n,...,d} m * [max(x, 0) - x t + log(1 + exp(-|x|))]

    which is ``-[t log s + (1 - t) log(1 - s)]``, s = sigmoid(x), written so that it is
    stable for any x; the gradient is ``m (sigmoid(x) - t) / B``. Summed over all axes but
    the batch axis, mean over the batch.
    """
    _check("sigmoid_bce", logits, targets)
    if mask is not None and tuple(mask.shape) != tuple(logits.shape[:-1]):
        raise ValueError(
            f"sigmoid_bce: mask shape {tuple(mask.shape)} != logits shape without the "
            f"features {tuple(logits.shape[:-1])}"
        )
    from .layers import sigmoid

    xp = backend.namespace()
    b = logits.shape[0]
    x, t = logits, targets
    m = 1.0 if mask is None else mask[..., None]  # (B, ..., 1): shared by the D features
    per_element = xp.maximum(x, 0.0) - x * t + xp.log(1.0 + xp.exp(-xp.abs(x)))
    return xp.sum(per_element * m) / b, m * (sigmoid(x) - t) / b


def error_rate(logits: Array, labels: Array) -> float:
    """Fraction of rows whose arg-max logit is not the label."""
    xp = backend.namespace()
    wrong = xp.argmax(logits, axis=1) != labels
    return backend.to_float(xp.mean(xp.astype(wrong, backend.dtype())))
