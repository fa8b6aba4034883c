"""Every option that changes numbers has a test that fails when it is ignored or misapplied.

Found by planting plausible bugs in the library and running the suite: each test here
names the bug it catches (a cDNI model that ignores its label context, clipping to the
wrong norm, a learning rate or width that never reaches its model, a resumed experiment
that reuses runs of other settings, ...). They pin behaviour with exact relations
(linearity, ratios, identities) rather than shapes.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from minidni import backend
from minidni.backend import RNG, to_numpy
from minidni.decoupled import build_mlp
from minidni.synthetic import SyntheticGradient
from minidni.tbptt import TBPTT
from minidni.unlock import build_unlocked


def _randomise_output_layer(model: SyntheticGradient, seed: int = 3) -> None:
    """Give M's zero-initialised output layer random weights, so that it predicts something."""
    last = model.net.layers[-1] if hasattr(model.net, "layers") else model.net
    last.W.value = RNG(seed).normal(tuple(last.W.value.shape), 0.5)


def test_cdni_prediction_moves_with_the_context_exactly_as_its_weights_say(xp, float64):
    """Bug caught: a cDNI model that concatenates a zeroed (or no) context. For a linear
    M, ``M(h, c1) - M(h, c2) = (c1 - c2) W_c`` where W_c are the context rows of W."""
    rng = RNG(0)
    M = SyntheticGradient(5, rng, d_context=3)
    _randomise_output_layer(M)
    h = rng.normal((4, 5))
    c1 = backend.one_hot(backend.asarray(np.array([0, 1, 2, 0])), 3)
    c2 = backend.one_hot(backend.asarray(np.array([2, 2, 1, 1])), 3)
    d1, _ = M.predict(h, c1, train=False)
    d2, _ = M.predict(h, c2, train=False)
    W_c = M.net.layers[-1].W.value[5:, ...]  # (D_c, D_h): the rows that read c
    np.testing.assert_allclose(to_numpy(d1 - d2), to_numpy((c1 - c2) @ W_c), atol=1e-12)
    assert float(np.abs(to_numpy(d1 - d2)).max()) > 0.1


def test_decoupled_net_gives_cdni_models_the_one_hot_labels(xp):
    """Bug caught: a context built from the wrong labels (shifted, predicted, shuffled)."""
    net = build_mlp("cdni", [6, 5, 5, 3], RNG(0))
    seen = []
    for sg in net.sgs:
        predict = sg.predict
        sg.predict = lambda h, c=None, train=True, _p=predict: seen.append(c) or _p(h, c, train)
    labels = backend.asarray(np.array([2, 0, 1, 1]))
    net.step(RNG(1).normal((4, 6)), labels)
    assert len(seen) == 2
    for c in seen:
        np.testing.assert_array_equal(to_numpy(c), np.eye(3)[[2, 0, 1, 1]])


def test_build_mlp_wires_every_learning_rate_and_width():
    """Bugs caught: sg_lr or sg_hidden that never reach the SG models, lr that never
    reaches the modules."""
    net = build_mlp("cdni", [6, 5, 4, 3], RNG(0), lr=0.0123, sg_hidden=(7, 2), sg_lr=0.0456)
    assert [opt.lr for opt in net.opts] == [0.0123] * 3
    assert [sg.opt.lr for sg in net.sgs] == [0.0456] * 2
    for sg, d in zip(net.sgs, (5, 4)):
        widths = [(layer.d_in, layer.d_out) for layer in _linears(sg.net)]
        assert widths == [(d + 3, 7), (7, 2), (2, d)]


def test_build_unlocked_wires_the_synthetic_input_models():
    """Bugs caught: input_lr / input_hidden that never reach the I_i models."""
    net = build_unlocked("dni", [6, 5, 4, 3], RNG(0), input_hidden=(9,), input_lr=0.0321)
    assert net.inputs[0] is None
    for model, d in zip(net.inputs[1:], (5, 4)):
        assert model.opt.lr == 0.0321
        assert [(la.d_in, la.d_out) for la in _linears(model.net)] == [(6, 9), (9, d)]


def test_tbptt_wires_its_learning_rates_and_sg_widths():
    model = TBPTT(3, 4, 2, RNG(0), T=2, method="dni", lr=0.011, sg_lr=0.022, sg_hidden=(6,))
    assert model.opt.lr == 0.011 and model.sg.opt.lr == 0.022
    assert [(la.d_in, la.d_out) for la in _linears(model.sg.net)] == [(8, 6), (6, 8)]


def _linears(module) -> list:
    from minidni.layers import Linear

    layers = getattr(module, "layers", [module])
    out = []
    for layer in layers:
        out += (
            [layer]
            if isinstance(layer, Linear)
            else _linears(layer)
            if hasattr(layer, "layers")
            else []
        )
    return out


def _segment_grads(clip_norm, xp_seed: int = 0):
    """One DNI segment (lr 0, so nothing moves) with an oracle SG; the core's gradients
    as host arrays, the reported norm, and M's untouched weights."""
    rng = RNG(xp_seed)
    model = TBPTT(3, 4, 2, rng, T=3, method="dni", lr=0.0, clip_norm=clip_norm)
    future = rng.normal((5, 8), 10.0)  # a large future gradient: a large norm to clip
    model.sg_fn = lambda s: future
    data = RNG(7)
    x, y = data.normal((5, 3, 3)), backend.asarray(np.ones((5, 3, 2)))
    model.reset(5)
    out = model.segment(x, y)
    return [to_numpy(p.grad) for p in model.parameters()], out["grad_norm"]


@pytest.mark.parametrize("clip", [1e-3, 0.5])
def test_clipping_scales_the_global_norm_to_clip_norm(xp, float64, clip):
    """Bugs caught: clipping each parameter to its own norm, clipping the squared norm,
    or not clipping. Clipped gradients are the unclipped ones times clip / ||g||_2, with
    ||g||_2 over all core, readout and aux parameters together."""
    reference, _ = _segment_grads(clip_norm=1e9)  # never clips, but reports the norm
    norm = math.sqrt(sum(float((g * g).sum()) for g in reference))
    clipped, reported = _segment_grads(clip_norm=clip)
    assert reported == pytest.approx(norm, rel=1e-12)
    assert norm > clip  # the case under test
    for got, ref in zip(clipped, reference):
        np.testing.assert_allclose(got, ref * (clip / norm), rtol=1e-10, atol=1e-300)
    assert math.sqrt(sum(float((g * g).sum()) for g in clipped)) == pytest.approx(clip)


def test_clipping_leaves_small_gradients_alone(xp, float64):
    reference, norm = _segment_grads(clip_norm=1e9)
    unclipped, _ = _segment_grads(clip_norm=2 * norm)
    for got, ref in zip(unclipped, reference):
        np.testing.assert_array_equal(got, ref)


def test_aux_loss_and_its_gradient_scale_with_aux_weight(xp, float64):
    """Bug caught: aux_weight ignored. With an oracle SG (so that the target is non-zero)
    the aux loss and the aux head's gradient are linear in aux_weight."""
    results = {}
    for weight in (1.0, 2.5):
        rng = RNG(0)
        model = TBPTT(3, 4, 2, rng, T=3, method="dni_aux", lr=0.0, aux_weight=weight)
        future = rng.normal((5, 8))
        model.sg_fn = lambda s, f=future: f
        model.aux.W.value = RNG(5).normal(tuple(model.aux.W.value.shape), 0.3)
        model.reset(5)
        data = RNG(7)
        y = backend.asarray(np.ones((5, 3, 2)))
        model.segment(data.normal((5, 3, 3)), y)  # A predicts the next boundary's SG ...
        out = model.segment(data.normal((5, 3, 3)), y)  # ... scored one segment later
        results[weight] = (out["aux_loss"], to_numpy(model.aux.W.grad))
    (loss1, grad1), (loss2, grad2) = results[1.0], results[2.5]
    assert loss1 > 0 and loss2 == pytest.approx(2.5 * loss1, rel=1e-12)
    np.testing.assert_allclose(grad2, 2.5 * grad1, rtol=1e-10)


def test_decoupled_net_predicts_in_evaluation_mode(xp):
    """Bug caught: predict() with BatchNorm batch statistics. In evaluation mode a row's
    logits do not depend on the rest of the batch, and the running statistics stay put."""
    net = build_mlp("cdni", [6, 5, 3], RNG(0))
    rng = RNG(1)
    for _ in range(3):
        net.step(rng.normal((8, 6)), backend.asarray(np.array([0, 1, 2, 0, 1, 2, 0, 1])))
    bn = net.modules[0].layers[1]
    before = to_numpy(bn.running_mean).copy()
    x = rng.normal((8, 6))
    np.testing.assert_allclose(
        to_numpy(net.predict(x))[:2], to_numpy(net.predict(x[:2, ...])), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_array_equal(to_numpy(bn.running_mean), before)


def test_ptb_evaluation_carries_the_state_across_windows(float64):
    """Bug caught: every evaluation window starting from a zero state. With the state
    carried, cutting the stream into windows of 3 or of 12 gives the same bits/char."""
    from minidni.experiments.rnn_ptb import evaluate_bpc

    model = TBPTT(50, 8, 50, RNG(0), T=2, loss="ce")
    codes = np.random.default_rng(0).integers(0, 50, size=26)  # 2 streams of 13
    short = evaluate_bpc(model, codes, batch_size=2, seq_len=3)
    whole = evaluate_bpc(model, codes, batch_size=2, seq_len=12)
    assert short == pytest.approx(whole, rel=1e-12)


def test_experiment_jobs_carry_every_per_method_setting():
    """Bug caught: a job that drops an override (e.g. sg_hidden) on its way to the model."""
    from minidni import experiments
    from minidni.experiments import ff, unlock, update_prob

    overrides = {"lr": {"dni": 0.5}, "sg_hidden": {"cdni": [3]}, "sg_lr": {"cdni": 0.25}}
    for module, name in ((ff, "ff"), (update_prob, "update-prob"), (unlock, "unlock")):
        config = experiments.configure(name, "smoke", overrides)
        for job in module.jobs(config):
            m = job["method"]
            assert (job["lr"], job["sg_lr"], job["sg_hidden"]) == tuple(
                config[k][m] for k in ("lr", "sg_lr", "sg_hidden")
            )
    config = experiments.configure("unlock", "smoke", {"staleness": [3]})
    assert {(j["p_update"], j["staleness"]) for j in unlock.jobs(config)} >= {(1.0, 3)}


def test_mlp_job_builds_the_net_its_job_describes(monkeypatch):
    """Bugs caught: mlp_job ignoring p_update, lr, sg_lr or sg_hidden."""
    import minidni.decoupled
    from minidni.experiments import jobs
    from minidni.schedules import Stochastic
    from minidni.train import Dataset

    built = {}

    def spy(method, sizes, rng, **kw):
        built.update(method=method, sizes=sizes, **kw)
        raise StopIteration  # enough: the net is what is under test

    tiny = Dataset.from_numpy(np.zeros((4, 784), np.float32), np.zeros(4, np.int64))
    monkeypatch.setattr(minidni.decoupled, "build_mlp", spy)
    monkeypatch.setattr(jobs, "job_mnist", lambda job: (tiny, tiny))
    job = {"method": "dni", "depth": 2, "width": 7, "seed": 0, "steps": 1, "eval_every": 1,
           "batch_size": 2, "lr": 0.1, "sg_lr": 0.2, "sg_hidden": [5], "p_update": 0.3}  # fmt: skip
    with pytest.raises(StopIteration):
        jobs.mlp_job(job)
    assert built["sizes"] == [784, 7, 7, 10]
    assert (built["lr"], built["sg_lr"], built["sg_hidden"]) == (0.1, 0.2, (5,))
    assert isinstance(built["schedule"], Stochastic) and built["schedule"].p_update == 0.3


def test_resume_reuses_only_runs_with_the_same_settings(tmp_path):
    """Bug caught: a resume that matches runs by seed (or name) alone and so keeps the
    numbers of other settings."""
    from minidni import experiments

    out = tmp_path / "r"
    experiments.run("rnn-copy", "smoke", out, lambda _: None, {"truncations": [2]})
    lines: list[str] = []
    other = {"truncations": [2], "sg_scale": 0.2}
    results = experiments.run("rnn-copy", "smoke", out, lines.append, other)
    assert not any("already there" in x for x in lines)
    assert sum("elapsed" in x for x in lines) == len(results["runs"]) == 6
    assert {r["sg_scale"] for r in results["runs"]} == {0.2}
    on_disk = json.loads((out / "rnn-copy.json").read_text())
    assert on_disk["config"]["sg_scale"] == 0.2 and on_disk["complete"] is True


@pytest.mark.parametrize("momentum", [0.5, 1.0])
def test_batchnorm_running_statistics_follow_its_momentum(xp, float64, momentum):
    """Bug caught: a BatchNorm that uses a fixed momentum (the default's 0.1) whatever it
    is given. After one batch: running = (1 - m) * initial + m * batch statistic."""
    from minidni.layers import BatchNorm

    bn = BatchNorm(3, momentum=momentum)
    x = RNG(0).normal((6, 3))
    bn.forward(x, train=True)
    mean = to_numpy(x).mean(axis=0)
    var = to_numpy(x).var(axis=0, ddof=1)
    np.testing.assert_allclose(to_numpy(bn.running_mean), momentum * mean, rtol=1e-12)
    np.testing.assert_allclose(
        to_numpy(bn.running_var), (1 - momentum) + momentum * var, rtol=1e-12
    )


def test_fit_evaluates_every_eval_every_steps_and_at_the_end():
    """Bug caught: eval_every ignored (one evaluation at the end only)."""
    from minidni.train import Dataset, fit

    data = Dataset.from_numpy(
        np.random.default_rng(0).normal(size=(32, 6)).astype(np.float32),
        np.arange(32) % 3,
    )
    net = build_mlp("bprop", [6, 5, 3], RNG(0))
    history = fit(net, data, data, steps=7, rng=RNG(1), batch_size=8, eval_every=3)
    assert history.steps == [3, 6, 7]
    assert len(history.test_error) == len(history.train_loss) == 3


def test_cosine_schedule_runs_from_one_to_zero_through_one_half():
    """(1 + cos(pi (step - 1) / steps)) / 2: 1 at the first step, 1/2 half way, falling
    every step, and still above 0 at the last step (whose update would otherwise be lost)."""
    from minidni.optim import cosine

    steps = 10
    factors = [cosine(step, steps) for step in range(1, steps + 1)]
    assert factors[0] == 1.0
    assert cosine(6, steps) == pytest.approx(0.5, abs=1e-15)
    assert all(a > b for a, b in zip(factors, factors[1:]))
    assert factors[-1] == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.9)), rel=1e-15)
    assert factors[-1] > 0


def test_fit_scales_every_optimizer_by_the_schedule_and_restores_the_rates(monkeypatch):
    """Bugs caught: the schedule reaching only the modules' optimizers (not the SG
    models'), a step running at the wrong factor, rates left decayed after fit."""
    from minidni import optim
    from minidni.train import Dataset, fit

    data = Dataset.from_numpy(
        np.random.default_rng(0).normal(size=(32, 6)).astype(np.float32),
        np.arange(32) % 3,
    )
    net = build_mlp("cdni", [6, 5, 5, 3], RNG(0), lr=0.01, sg_lr=0.002)
    opts = net.opts + [sg.opt for sg in net.sgs]
    seen = []
    monkeypatch.setattr(optim.Adam, "step", lambda self: seen.append((id(self), self.lr)))
    fit(net, data, data, steps=4, rng=RNG(1), batch_size=8, eval_every=4, lr_schedule="cosine")
    for opt, base in zip(opts, [0.01] * len(net.opts) + [0.002] * len(net.sgs)):
        lrs = [lr for who, lr in seen if who == id(opt)]
        assert lrs == pytest.approx([base * optim.cosine(s, 4) for s in range(1, 5)], rel=1e-12)
        assert opt.lr == base
    with pytest.raises(ValueError, match="lr_schedule must be one of constant, cosine"):
        fit(net, data, data, steps=2, rng=RNG(1), batch_size=8, lr_schedule="linear")


def test_unlock_job_builds_the_schedule_its_job_describes(monkeypatch):
    """Bugs caught: unlock_job ignoring staleness k or p_update, or the input models'
    settings."""
    import minidni.unlock
    from minidni.experiments import unlock
    from minidni.schedules import Delayed, Stochastic
    from minidni.train import Dataset

    built = {}

    def spy(method, sizes, rng, **kw):
        built.update(method=method, sizes=sizes, **kw)
        raise StopIteration

    tiny = Dataset.from_numpy(np.zeros((4, 784), np.float32), np.zeros(4, np.int64))
    monkeypatch.setattr(minidni.unlock, "build_unlocked", spy)
    monkeypatch.setattr(unlock, "job_mnist", lambda job: (tiny, tiny))
    job = {"method": "cdni", "mode": "unlock", "depth": 1, "width": 4, "seed": 0,
           "steps": 1, "eval_every": 1, "batch_size": 2, "lr": 0.1, "sg_lr": 0.2,
           "sg_hidden": [], "input_hidden": [6], "input_lr": 0.3, "p_update": 0.5,
           "staleness": 3}  # fmt: skip
    with pytest.raises(StopIteration):
        unlock.run_job(job)
    schedule = built["schedule"]
    assert isinstance(schedule, Delayed) and schedule.k == 3
    assert isinstance(schedule.base, Stochastic) and schedule.base.p_update == 0.5
    assert built["synthetic_inputs"] is True
    assert (built["input_hidden"], built["input_lr"]) == ((6,), 0.3)


def test_batchnorm_uses_its_eps(xp, float64):
    """Bug caught: a BatchNorm that ignores a non-default eps."""
    from minidni.layers import BatchNorm

    x = RNG(0).normal((6, 3))
    out, _ = BatchNorm(3, eps=0.5).forward(x, train=True)
    h = to_numpy(x)
    expected = (h - h.mean(axis=0)) / np.sqrt(h.var(axis=0) + 0.5)
    np.testing.assert_allclose(to_numpy(out), expected, rtol=1e-12)


def test_adam_uses_its_eps(xp, float64):
    """Bug caught: Adam with a fixed eps. Its first step is lr * g / (|g| + eps)."""
    from minidni.layers import Parameter
    from minidni.optim import Adam

    g = np.array([0.5, -2.0, 0.0])
    p = Parameter(backend.asarray(np.zeros(3)))
    p.grad = backend.asarray(g)
    Adam([p], lr=0.1, eps=1.0).step()
    np.testing.assert_allclose(to_numpy(p.value), -0.1 * g / (np.abs(g) + 1.0), rtol=1e-12)


def test_stochastic_input_coins_come_from_input_rng():
    """Bug caught: input models' coins drawn from the modules' generator. With its own
    ``input_rng`` they are that generator's draws, and the modules' coins do not move."""
    from minidni.schedules import Stochastic

    schedule = Stochastic(0.5, RNG(1), input_rng=RNG(2))
    inputs = [schedule.sample_inputs(4) for _ in range(5)]
    modules = [schedule.sample(4) for _ in range(5)]
    fresh_inputs, fresh_modules = RNG(2), RNG(1)
    assert inputs == [[fresh_inputs.bernoulli(0.5) for _ in range(4)] for _ in range(5)]
    assert modules == [[fresh_modules.bernoulli(0.5) for _ in range(4)] for _ in range(5)]


@pytest.mark.parametrize("k", [2, 3])
def test_max_pool_sends_a_tied_windows_gradient_to_exactly_one_entry(xp, k):
    """Bug caught: a max-pool that sends a window's gradient to every tied maximum (it
    would count the gradient twice or more). With non-overlapping windows (stride = K),
    every window's input gradient has exactly one nonzero entry, at a maximum of the
    window, equal to that window's output gradient."""
    from minidni.pooling import MaxPool2d

    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, size=(2, 3, 2 * k, 3 * k)).astype(np.float32)  # ties galore
    x[1, 2] = 1.0  # a whole channel of equal values: every window tied K*K ways
    dout = rng.uniform(1.0, 2.0, size=(2, 3, 2, 3)).astype(np.float32)
    pool = MaxPool2d(k)
    _, cache = pool.forward(backend.asarray(x))
    dx = to_numpy(pool.backward(backend.asarray(dout), cache))
    tied = 0
    for b, c, i, j in np.ndindex(dout.shape):
        window = np.s_[b, c, i * k : (i + 1) * k, j * k : (j + 1) * k]
        nonzero = np.flatnonzero(dx[window])
        assert len(nonzero) == 1, (b, c, i, j, dx[window])
        assert x[window].flat[nonzero[0]] == x[window].max()
        assert dx[window].flat[nonzero[0]] == dout[b, c, i, j]
        tied += int((x[window] == x[window].max()).sum() > 1)
    assert tied >= 6  # the check met many tied windows
