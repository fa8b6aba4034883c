"""How good is a synthetic gradient? The fraction of its targets it explains, and its cosine.

A synthetic-gradient model M is trained online on bootstrapped targets
(:mod:`minidni.decoupled`, :mod:`minidni.tbptt`). Three numbers say how well its
predictions ``delta_hat`` match the targets they were trained on, summed over an
interval of training (:func:`sg_sums`) and then turned into ratios (:func:`sg_quality`):

- ``sg_r2 = 1 - error / variance``: the share of the targets' variance (around their
  mean) that the predictions explain;
- ``sg_r2_zero = 1 - error / power``: the same against the zero prediction, which is
  where a zero-initialised M starts (> 0: M does better than injecting nothing);
- ``sg_cos``: the cosine between predictions and targets, which is what steers the
  module that receives them.
"""

from __future__ import annotations

from typing import Any

from . import backend

SG_SUMS = ("error", "variance", "power", "dot", "pred_sq", "target_sq")


def sg_sums(segments: list[dict]) -> dict[str, Any]:
    """Sums over a sequence's segments that say how good M's predictions were.

    Segment k's ``delta_hat`` is M's prediction for the boundary state s_k, and segment
    k+1's ``sg_target`` is the target it was trained on (its ``sg_loss`` is their L2
    loss). Over those pairs, returns sums of ``error`` (sg_loss), ``variance``
    (``mean_n ||target_n - mean target||^2``, in sg_loss units), ``power``
    (``mean_n ||target_n||^2``, the loss of the zero predictor), ``dot`` (<prediction,
    target>), ``pred_sq`` and ``target_sq`` (squared norms), all over the whole (B, 2H)
    arrays; the last four stay on the device (0-d arrays) so that a training step pays
    no copy to the host for them. :func:`sg_quality` turns them into the fraction
    explained and the cosine.
    """
    xp = backend.namespace()
    sums = dict.fromkeys(SG_SUMS, 0.0)
    for before, after in zip(segments[:-1], segments[1:]):
        if after["sg_loss"] is None:
            continue
        p, t = before["delta_hat"], after["sg_target"]  # (B, 2H) each
        spread = xp.sum((t - xp.mean(t, axis=0, keepdims=True)) ** 2, axis=1)  # (B,)
        sums["error"] += after["sg_loss"]
        sums["variance"] = sums["variance"] + xp.mean(spread)
        sums["power"] = sums["power"] + xp.mean(xp.sum(t * t, axis=1))
        sums["dot"] = sums["dot"] + xp.sum(p * t)
        sums["pred_sq"] = sums["pred_sq"] + xp.sum(p * p)
        sums["target_sq"] = sums["target_sq"] + xp.sum(t * t)
    return sums


def sg_quality(sums: dict[str, Any]) -> tuple[float | None, float | None, float | None]:
    """``(sg_r2, sg_r2_zero, sg_cos)`` from summed :func:`sg_sums`; None where undefined.

    ``sg_r2 = 1 - error / variance``: the fraction of the targets' variance that the
    predictions explained (1 perfect, 0 no better than the batch mean, < 0 worse).
    ``sg_r2_zero = 1 - error / power``: the same against the zero predictor, which is
    where a zero-initialised M starts (> 0: M does better than injecting nothing).
    ``sg_cos = dot / sqrt(pred_sq * target_sq)``: the cosine between the injected
    synthetic gradients and their targets, which is what steers the core: a prediction
    can point the right way (cosine > 0) while its size is off (R^2 < 0).
    """
    v = {k: backend.to_float(x) for k, x in sums.items()}
    r2 = 1.0 - v["error"] / v["variance"] if v["variance"] > 0 else None
    r2_zero = 1.0 - v["error"] / v["power"] if v["power"] > 0 else None
    norm = (v["pred_sq"] * v["target_sq"]) ** 0.5
    return r2, r2_zero, (v["dot"] / norm if norm > 0 else None)
