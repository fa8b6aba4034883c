"""Truncated BPTT with synthetic gradients (minidni.tbptt): the properties that make it DNI."""

from __future__ import annotations

import numpy as np
import pytest

from minidni import backend, losses, tbptt
from minidni.backend import RNG, to_numpy
from minidni.gradcheck import check_directional
from minidni.losses import sequence_cross_entropy, sigmoid_bce
from minidni.optim import Adam
from minidni.tbptt import TBPTT, canonical_method

D_IN, H, D_OUT = 3, 4, 2


def bce_data(rng: RNG, b: int = 3, t_len: int = 7, masked: bool = True):
    x = rng.normal((b, t_len, D_IN))
    y = backend.asarray((rng.np.random((b, t_len, D_OUT)) > 0.5).astype("float64"))
    mask = backend.asarray((rng.np.random((b, t_len)) > 0.3).astype("float64")) if masked else None
    return x, y, mask


def ce_data(rng: RNG, b: int = 3, t_len: int = 7):
    xp = backend.namespace()
    return rng.normal((b, t_len, D_IN)), backend.asarray(
        rng.np.integers(0, D_OUT, size=(b, t_len)), dtype=xp.int64
    )


def params(model: TBPTT) -> list[np.ndarray]:
    return [to_numpy(p.value).copy() for p in model.parameters()]


def make(method: str = "bprop", T: int = 3, loss: str = "bce", seed: int = 0, **kw) -> TBPTT:
    return TBPTT(D_IN, H, D_OUT, RNG(seed), T=T, method=method, loss=loss, **kw)


def record_grads(model: TBPTT) -> list:
    """Replace the core's Adam step by a recorder: parameters stay fixed, and the gradients
    of every segment are summed into the returned list."""
    total: list = []

    def step() -> None:
        grads = [to_numpy(p.grad).copy() for p in model.opt.params]
        if not total:
            total.extend(grads)
        else:
            for a, g in zip(total, grads):
                a += g

    model.opt.step = step
    return total


def full_bptt(model: TBPTT, x, y, mask=None):
    """Reference: the segments' losses summed, differentiated by one backward pass through
    the whole sequence (segments chained by the state gradient). Returns the parameter
    gradients and, per boundary j = 1..K-1, the true future gradient B * dL/ds_j (B, 2H)."""
    xp = backend.namespace()
    b, total = x.shape[0], x.shape[1]
    bounds = [(s, min(s + model.T, total)) for s in range(0, total, model.T)]
    state, caches = model.core.initial_state(b), []
    for start, stop in bounds:
        hs, state, core_cache = model.core.forward(x[:, start:stop, ...], state)
        logits, readout_cache = model.readout.forward(hs)
        m = None if mask is None else mask[:, start:stop]
        _, dlogits = model.loss_and_grad(logits, y[:, start:stop, ...], m)
        caches.append((core_cache, readout_cache, dlogits))
    for module in (model.core, model.readout):
        module.zero_grad()
    dstate, boundary = None, []
    for core_cache, readout_cache, dlogits in reversed(caches):
        dhs = model.readout.backward(dlogits, readout_cache)
        _, dstate = model.core.backward(dhs, dstate, core_cache)
        boundary.append(b * xp.concat(list(dstate), axis=1))
    grads = [to_numpy(p.grad).copy() for p in model.core.parameters() + model.readout.parameters()]
    return grads, boundary[::-1][1:]  # drop s_0, the fixed initial state


# ---------------------------------------------------------------- (a) T = length is BPTT


@pytest.mark.parametrize("loss", ["bce", "ce"])
def test_one_segment_is_full_bptt(xp, float64, loss):
    """T >= the sequence length: truncated BPTT is ordinary BPTT plus an Adam step."""
    t_len = 6
    data = RNG(5)
    for method in ("bprop", "dni"):  # a single segment is the last one: no SG either way
        model = make(method, T=t_len, loss=loss, lr=1e-2)
        ref = make("bprop", T=t_len, loss=loss, lr=1e-2)
        opt = Adam(ref.parameters(), lr=1e-2)
        for _ in range(2):
            x, y, mask = bce_data(data, t_len=t_len) if loss == "bce" else (*ce_data(data), None)
            x, y = x[:, :t_len, ...], y[:, :t_len, ...]
            model.train_sequence(x, y, mask)
            # the reference, written out: forward, loss, backward, Adam
            hs, _, core_cache = ref.core.forward(x, ref.core.initial_state(3))
            logits, readout_cache = ref.readout.forward(hs)
            if loss == "bce":
                flat = (3, t_len * D_OUT)
                _, dflat = sigmoid_bce(xp.reshape(logits, flat), xp.reshape(y, flat))
                dlogits = xp.reshape(dflat, (3, t_len, D_OUT)) * mask[:, :, None]
            else:
                dlogits = ref.loss_and_grad(logits, y, None)[1]
            opt.zero_grad()
            ref.core.backward(ref.readout.backward(dlogits, readout_cache), None, core_cache)
            opt.step()
        for a, b in zip(params(model), params(ref), strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


# ---------------------------------------------------------------- (b) oracle SG is full BPTT


@pytest.mark.parametrize("loss, t_len, T", [("bce", 10, 3), ("ce", 9, 3), ("bce", 5, 1)])
def test_oracle_synthetic_gradient_gives_full_bptt_gradients(xp, float64, loss, t_len, T):
    """With M replaced by the true future gradient and sg_scale = target_discount = 1, the
    per-segment gradients sum to full BPTT's, and every bootstrapped target is the true
    gradient."""
    data = RNG(7)
    if loss == "bce":
        x, y, mask = bce_data(data, t_len=t_len)
    else:
        (x, y), mask = ce_data(data, t_len=t_len), None
    model = make("dni", T=T, loss=loss, sg_scale=1.0, target_discount=1.0)
    ref_grads, true_deltas = full_bptt(model, x, y, mask)
    assert len(true_deltas) == -(-t_len // T) - 1
    calls = []

    def oracle(s):
        calls.append(to_numpy(s))
        return true_deltas[len(calls) - 1]

    model.sg_fn = oracle
    got = record_grads(model)
    out = model.train_sequence(x, y, mask)
    assert len(calls) == len(true_deltas)
    for a, b in zip(got, ref_grads, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10 * max(1.0, np.abs(b).max()))
    # the target for s_j is computed from segment j+1 and the oracle at s_{j+1}
    for r, true in zip(out["segments"][1:], true_deltas, strict=True):
        np.testing.assert_allclose(to_numpy(r["sg_target"]), to_numpy(true), rtol=0, atol=1e-10)


def test_truncation_cuts_the_gradient(xp, float64):
    """The same setting without the oracle (bprop) misses the future: gradients differ."""
    x, y, mask = bce_data(RNG(7), t_len=10)
    model = make("bprop", T=3)
    ref_grads, _ = full_bptt(model, x, y, mask)
    got = record_grads(model)
    model.train_sequence(x, y, mask)
    assert max(np.abs(a - b).max() for a, b in zip(got, ref_grads)) > 1e-4


# ---------------------------------------------------------------- (c) the bootstrap target


@pytest.mark.parametrize("last", [False, True])
@pytest.mark.parametrize("sg_scale, discount", [(0.1, 1.0), (0.3, 0.3), (1.0, 1.0), (0.3, 0.5)])
def test_sg_target_is_the_derivative_of_loss_plus_discounted_synthetic_gradient(
    xp, float64, last, sg_scale, discount
):
    """target_j = B * d/ds_j [L_{j+1} + <target_discount * delta_hat_{j+1} / B, s_{j+1}>],
    checked by finite differences: with the default (sg_scale 0.1, target_discount 1) the
    *unscaled* synthetic gradient is carried back, whatever the core was given
    (last=True: the loss term alone)."""
    rng = RNG(11)
    b = 3
    model = make("dni", T=4, sg_scale=sg_scale, target_discount=discount, lr=0.0)
    x, y, mask = bce_data(rng, b=b, t_len=8)
    model.reset(b)
    model.segment(x[:, :4, ...], y[:, :4, ...], mask[:, :4])  # a non-trivial start state s_1
    fixed = rng.normal((b, 2 * H))
    model.sg_fn = lambda s: fixed
    s_start = xp.concat(list(model.state), axis=1)  # (B, 2H)
    x2, y2, m2 = x[:, 4:, ...], y[:, 4:, ...], mask[:, 4:]
    target = model.segment(x2, y2, m2, last=last)["sg_target"]
    carried = 0.0 if last else discount * fixed / b
    box = {"s": s_start}

    def objective() -> float:
        s = box["s"]
        hs, s_end, _ = model.core.forward(x2, (s[:, :H], s[:, H:]))
        loss, _ = model.loss_and_grad(model.readout.forward(hs)[0], y2, m2)
        end = xp.concat(list(s_end), axis=1)
        return b * backend.to_float(loss + xp.sum(carried * end))

    def put(v) -> None:
        box["s"] = v

    err = check_directional(objective, lambda: box["s"], put, target, rng)
    assert err <= 1e-6


def test_core_receives_sg_scale_whatever_the_target_discount(xp, float64):
    """target_discount changes what M learns, never what the core is given."""
    x, y, mask = bce_data(RNG(12), t_len=8)
    fixed = RNG(13).normal((3, 2 * H))
    grads = []
    for discount in (0.1, 1.0):
        model = make("dni", T=4, sg_scale=0.1, target_discount=discount, lr=0.0)
        model.sg_fn = lambda s: fixed
        grads.append(record_grads(model))
        model.train_sequence(x, y, mask)
    for a, b in zip(*grads, strict=True):
        np.testing.assert_array_equal(a, b)


def test_target_discount_is_validated(xp):
    with pytest.raises(ValueError, match="target_discount"):
        make("dni", target_discount=-1.0)
    with pytest.raises(ValueError, match="sg_scale"):
        make("dni", sg_scale=float("nan"))


# ---------------------------------------------------------------- (d) zero-initialised M


@pytest.mark.parametrize("method", ["dni", "dni_aux"])
def test_fresh_sg_leaves_training_equal_to_bprop_until_m_has_learned(xp, float64, method):
    """M (and the aux head) start at zero: segments 1 and 2 are bprop steps exactly. M first
    learns at the end of segment 2 (its target for s_1), so segment 3 differs."""
    x, y, mask = bce_data(RNG(3), t_len=9)
    bprop, dni = make("bprop", lr=1e-2), make(method, lr=1e-2, sg_lr=1e-2)
    for model in (bprop, dni):
        model.reset(3)
    for k in range(3):
        sl = slice(3 * k, 3 * k + 3)
        rb = bprop.segment(x[:, sl, ...], y[:, sl, ...], mask[:, sl])
        rd = dni.segment(x[:, sl, ...], y[:, sl, ...], mask[:, sl])
        same = all(np.array_equal(a, b) for a, b in zip(params(bprop), params(dni)))
        assert same == (k < 2), k
        assert rb["sg_loss"] is None and (rd["sg_loss"] is None) == (k == 0)
        if k == 0:
            assert not np.any(to_numpy(rd["delta_hat"]))


# ---------------------------------------------------------------- (e) losses and the mask


def test_bce_loss_value_and_mask(xp, float64):
    rng = RNG(4)
    model = make("bprop", T=10, lr=1e-2)
    x, y, mask = bce_data(rng, t_len=5)
    logits = rng.normal((3, 5, D_OUT))
    loss, dlogits = model.loss_and_grad(logits, y, mask)
    z, t, m = to_numpy(logits), to_numpy(y), to_numpy(mask)
    p = 1 / (1 + np.exp(-z))
    expected = -(m[:, :, None] * (t * np.log(p) + (1 - t) * np.log(1 - p))).sum() / 3
    assert backend.to_float(loss) == pytest.approx(expected, rel=1e-12)
    box = {"z": logits}
    err = check_directional(
        lambda: backend.to_float(model.loss_and_grad(box["z"], y, mask)[0]),
        lambda: box["z"],
        lambda v: box.update(z=v),
        dlogits,
        rng,
    )
    assert err <= 1e-6
    # targets where the mask is 0 change nothing, in the loss or in training
    y_np = to_numpy(y).copy()
    y_np[m == 0] = 1 - y_np[m == 0]
    other = make("bprop", T=10, lr=1e-2)
    r1 = model.train_sequence(x, y, mask)
    r2 = other.train_sequence(x, backend.asarray(y_np), mask)
    assert r1["loss"] == r2["loss"]
    for a, b in zip(params(model), params(other)):
        np.testing.assert_array_equal(a, b)
    # an all-zero mask: no loss, no gradient, no movement (fresh Adam: no momentum yet)
    fresh = make("bprop", T=10, lr=1e-2)
    before = params(fresh)
    r = fresh.train_sequence(x, y, backend.asarray(np.zeros((3, 5))))
    assert r["loss"] == 0.0
    for a, b in zip(before, params(fresh)):
        np.testing.assert_array_equal(a, b)


def test_ce_loss_value_gradient_and_sequence_mean(xp, float64):
    rng = RNG(6)
    model = make("bprop", T=3, loss="ce", lr=0.0)
    x, y = ce_data(rng, t_len=7)
    logits = rng.normal((3, 7, D_OUT))
    loss, dlogits = model.loss_and_grad(logits, y, None)
    z, t = to_numpy(logits), to_numpy(y)
    logp = z - np.log(np.exp(z).sum(axis=2, keepdims=True))
    expected = -np.take_along_axis(logp, t[:, :, None], axis=2).mean()
    assert backend.to_float(loss) == pytest.approx(expected, rel=1e-12)
    box = {"z": logits}
    err = check_directional(
        lambda: backend.to_float(model.loss_and_grad(box["z"], y, None)[0]),
        lambda: box["z"],
        lambda v: box.update(z=v),
        dlogits,
        rng,
    )
    assert err <= 1e-6
    # train_sequence: segments 3 + 3 + 1; its loss is the mean nats over all 7 steps,
    # and (lr = 0) its logits are predict()'s
    out = model.train_sequence(x, y)
    pred, _ = model.predict(x)
    np.testing.assert_allclose(to_numpy(out["logits"]), to_numpy(pred), rtol=1e-12)
    p = to_numpy(pred)
    logp = p - np.log(np.exp(p).sum(axis=2, keepdims=True))
    nats = -np.take_along_axis(logp, t[:, :, None], axis=2).mean()
    assert out["loss"] == pytest.approx(nats, rel=1e-12)
    assert [r["logits"].shape[1] for r in out["segments"]] == [3, 3, 1]


def test_tbptt_trains_with_the_losses_of_minidni_losses(xp, float64, monkeypatch):
    """The losses `minidni gradcheck` checks are the ones TBPTT trains with: "bce" is
    sigmoid_bce with the (B, T) mask, "ce" sequence_cross_entropy (bitwise), and the
    DNI + Aux loss is aux_weight * mse."""
    rng = RNG(9)
    logits = rng.normal((3, 5, D_OUT))
    _, y, mask = bce_data(rng, t_len=5)
    for m in (mask, None):
        got, want = make(loss="bce").loss_and_grad(logits, y, m), sigmoid_bce(logits, y, m)
        assert backend.to_float(got[0]) == backend.to_float(want[0])
        np.testing.assert_array_equal(to_numpy(got[1]), to_numpy(want[1]))
    _, labels = ce_data(rng, t_len=5)
    got, want = (
        make(loss="ce").loss_and_grad(logits, labels, None),
        sequence_cross_entropy(logits, labels),
    )
    assert backend.to_float(got[0]) == backend.to_float(want[0])
    np.testing.assert_array_equal(to_numpy(got[1]), to_numpy(want[1]))

    calls = []

    def spy(pred, target):
        calls.append(losses.mse(pred, target))
        return calls[-1]

    monkeypatch.setattr(tbptt, "mse", spy)
    model = make("dni_aux", aux_weight=2.5)
    model.sg_fn = lambda s: 0.5 * s  # a non-zero synthetic gradient: a non-zero aux target
    model.aux.W.value = RNG(5).normal(tuple(model.aux.W.value.shape), 0.3)
    x, y, mask = bce_data(RNG(10), t_len=6)
    model.reset(3)
    model.segment(x[:, :3, ...], y[:, :3, ...], mask[:, :3])  # A predicts ...
    out = model.segment(x[:, 3:, ...], y[:, 3:, ...], mask[:, 3:])  # ... scored one later
    assert len(calls) == 1 and out["aux_loss"] == 2.5 * backend.to_float(calls[0][0]) > 0


def test_the_old_name_of_the_baseline_is_read_as_bprop(xp):
    """Results files of older versions call the baseline "bptt": readers map it once; the
    model itself takes only today's name (one word for the baseline)."""
    assert canonical_method("bptt") == "bprop"
    assert [canonical_method(m) for m in tbptt.METHODS] == list(tbptt.METHODS)
    with pytest.raises(ValueError, match="unknown method 'bptt'"):
        make("bptt")


def test_argument_errors(xp):
    with pytest.raises(ValueError, match="unknown method"):
        make("backprop")
    with pytest.raises(ValueError, match="unknown loss"):
        make(loss="mse")
    model = make("dni", T=2, loss="ce")
    x, y = ce_data(RNG(0), t_len=3)
    with pytest.raises(ValueError, match="reset"):
        model.segment(x[:, :2, ...], y[:, :2, ...])
    model.reset(3)
    with pytest.raises(ValueError, match="at most T=2"):
        model.segment(x, y)
    with pytest.raises(ValueError, match="does not take a mask"):
        model.segment(x[:, :2, ...], y[:, :2, ...], mask=backend.asarray(np.ones((3, 2))))


# ---------------------------------------------------------------- (f) DNI + Aux


def per_step_grads(model: TBPTT) -> list:
    """Replace the core's Adam step by a recorder of each step's gradients (a list per step)."""
    steps: list = []
    model.opt.step = lambda: steps.append([to_numpy(p.grad).copy() for p in model.opt.params])
    return steps


def test_aux_gradient_reaches_the_previous_segment_one_segment_late(xp, float64):
    """DNI + Aux: at the end of segment 2, A's prediction from h_1 (the last h of segment
    1) is scored against delta_hat_2, and the gradient of that loss with respect to the
    core's weights (through segment 1) joins segment 2's step; M's targets are those of
    DNI without the aux task. Finite differences, lr = 0 (weights fixed)."""
    rng = RNG(8)
    b, w = 3, 0.7
    x, y, mask = bce_data(rng, b=b, t_len=9)
    fixed = rng.normal((b, 2 * H))
    aux, ref = make("dni_aux", lr=0.0, aux_weight=w), make("dni", lr=0.0)
    aux.aux.W.value = rng.normal(aux.aux.W.shape)  # away from its zero start
    outs, steps = [], []
    for model in (aux, ref):
        model.sg_fn = lambda s: fixed
        steps.append(per_step_grads(model))
        outs.append(model.train_sequence(x, y, mask))
    (aux_steps, ref_steps), (aux_out, ref_out) = steps, outs
    np.testing.assert_array_equal(aux_steps[0][0], ref_steps[0][0])  # nothing to score yet
    for ra, rr in zip(aux_out["segments"], ref_out["segments"], strict=True):
        if rr["sg_target"] is not None:
            np.testing.assert_array_equal(to_numpy(ra["sg_target"]), to_numpy(rr["sg_target"]))
    dW = backend.asarray(aux_steps[1][0] - ref_steps[1][0])  # the aux part of the core's W grad

    def aux_loss() -> float:
        hs, _, _ = aux.core.forward(x[:, :3, ...], aux.core.initial_state(b))
        pred, _ = aux.aux.forward(hs[:, -1, :])
        return w * backend.to_float(xp.sum((pred - fixed) ** 2)) / b

    err = check_directional(
        aux_loss, lambda: aux.core.W.value, lambda v: setattr(aux.core.W, "value", v), dW, rng
    )
    assert err <= 1e-6
    assert aux_out["segments"][1]["aux_loss"] == pytest.approx(aux_loss(), rel=1e-12)
    # nothing to score in segment 1; the last segment has no delta_hat to score against
    assert aux_out["segments"][0]["aux_loss"] is None
    assert aux_out["segments"][2]["aux_loss"] is None


def test_aux_head_learns_to_predict_the_future_synthetic_gradient(xp):
    """The aux loss must fall when there is something to learn: here the synthetic gradient
    at each boundary is a fixed random array (an SG that does not depend on the state,
    so the core cannot chase its own target), and sg_scale = 0 keeps it out of the core's
    task gradient. Head and core learn, from h_t, to predict it."""
    rng = RNG(9)
    targets = [rng.normal((8, 2 * H)) for _ in range(2)]  # boundaries after segments 1, 2
    calls = []

    def fixed_sg(s):
        calls.append(s)
        return targets[(len(calls) - 1) % 2]

    model = make("dni_aux", T=4, lr=3e-2, aux_weight=1.0, sg_scale=0.0)
    model.sg_fn = fixed_sg
    x, y, mask = bce_data(rng, b=8, t_len=12, masked=False)
    aux = [model.train_sequence(x, y, mask)["aux_loss"] for _ in range(40)]
    assert len(calls) == 80 and all(np.isfinite(aux))
    assert np.mean(aux[-5:]) < 0.7 * np.mean(aux[:5]), aux
