"""Losses, each returning ``(loss, dpred)``: the scalar and its gradient w.r.t. the prediction.

Every loss is a *sum over features, mean over the batch*: for a batch of B rows the loss
is ``(1/B) sum_n loss_n``, so ``dpred`` carries a factor 1/B. The same convention holds
everywhere in minidni, including the synthetic-gradient and synthetic-input losses.
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


def sigmoid_bce(logits: Array, targets: Array) -> tuple[Array, Array]:
    """Binary cross-entropy of targets in [0, 1] under sigmoid(logits).

    Shapes: logits, targets (B, D). Loss ``(1/B) sum_{n,d} [max(x, 0) - x t + log(1 +
    exp(-|x|))]`` (stable for any x); gradient ``(sigmoid(x) - t) / B``.
    """
    _check("sigmoid_bce", logits, targets)
    from .layers import sigmoid

    xp = backend.namespace()
    b = logits.shape[0]
    x, t = logits, targets
    per_element = xp.maximum(x, 0.0) - x * t + xp.log(1.0 + xp.exp(-xp.abs(x)))
    return xp.sum(per_element) / b, (sigmoid(x) - t) / b


def error_rate(logits: Array, labels: Array) -> float:
    """Fraction of rows whose arg-max logit is not the label."""
    xp = backend.namespace()
    wrong = xp.argmax(logits, axis=1) != labels
    return backend.to_float(xp.mean(xp.astype(wrong, backend.dtype())))
