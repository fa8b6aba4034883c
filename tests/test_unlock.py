"""Synthetic inputs and complete unlock (minidni.unlock)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from test_schedules import SIZES, batch, state, train

from minidni import backend
from minidni.backend import RNG, to_numpy
from minidni.decoupled import build_mlp
from minidni.schedules import Delayed, Lockstep, RoundRobin, Stochastic
from minidni.unlock import UnlockedNet, build_unlocked


class OracleInput:
    """Returns the true input h_{i-1} of module i: the real chain through deep copies of
    the modules before it. It never learns, but checks that its target is that input."""

    def __init__(self, net: UnlockedNet, i: int):
        self.owner, self.i = net, i

    def predict(self, x, train=True):
        h = x
        for f in copy.deepcopy(self.owner.modules[: self.i]):
            h, _ = f.forward(h)
        return h, None

    def update(self, cache, prediction, target):
        assert np.array_equal(to_numpy(prediction), to_numpy(target))
        return 0.0


def with_oracle_inputs(net: UnlockedNet) -> UnlockedNet:
    net.inputs = [None] + [OracleInput(net, i) for i in range(1, len(net.modules))]
    return net


@pytest.mark.parametrize(
    "schedule",
    [
        lambda: Lockstep(),
        lambda: Stochastic(0.5, RNG(7), input_rng=RNG(8)),
        lambda: RoundRobin(),
        lambda: Delayed([2, 0, 3, 1]),
    ],
    ids=["lockstep", "stochastic", "round-robin", "delayed"],
)
@pytest.mark.parametrize("method", ["dni", "cdni"])
def test_oracle_inputs_make_complete_unlock_the_gradients_only_run(xp, method, schedule):
    """With I_i(x) = the true h_{i-1}, complete unlock trains bitwise like synthetic
    gradients only (modules, SG models, BatchNorm statistics) under every schedule."""
    grads_only = build_unlocked(method, SIZES, RNG(3), schedule=schedule(), synthetic_inputs=False)
    unlocked = with_oracle_inputs(build_unlocked(method, SIZES, RNG(3), schedule=schedule()))
    for a, b in zip(train(grads_only, 6, 4), train(unlocked, 6, 4), strict=True):
        np.testing.assert_array_equal(a, b)


def test_oracle_complete_unlock_is_the_decoupled_net(xp):
    """... and in lockstep that run is minidni.decoupled's DNI step itself."""
    dni = build_mlp("cdni", SIZES, RNG(3), sg_lr=1e-3)
    unlocked = with_oracle_inputs(build_unlocked("cdni", SIZES, RNG(3), sg_lr=1e-3))
    for a, b in zip(train(dni, 5, 4), train(unlocked, 5, 4)):
        np.testing.assert_array_equal(a, b)


def test_modules_train_on_synthetic_inputs_and_evaluate_on_the_real_chain():
    """Module i >= 2 backpropagates through f_i(I_i(x)), not f_i(h_{i-1}): a net whose
    input models are broken trains differently, yet predict() uses only the modules."""
    a = build_unlocked("cdni", SIZES, RNG(0))
    b = build_unlocked("cdni", SIZES, RNG(0))
    for inp in b.inputs[1:]:
        inp.net.layers[-1].W.value = 0.0 * inp.net.layers[-1].W.value
    x, y = batch(RNG(1))
    assert np.array_equal(to_numpy(a.predict(x)), to_numpy(b.predict(x)))
    a.step(x, y)
    b.step(x, y)
    assert not np.array_equal(to_numpy(a.predict(x)), to_numpy(b.predict(x)))
    # the first module's input is x itself: both nets updated it identically
    assert all(
        np.array_equal(to_numpy(p.value), to_numpy(q.value))
        for p, q in zip(a.modules[0].parameters(), b.modules[0].parameters())
    )


def test_batchnorm_statistics_come_from_the_real_chain_only():
    """A forward pass on a synthetic input leaves the BatchNorm running statistics alone."""
    net = build_unlocked("dni", SIZES, RNG(0), schedule=Stochastic(0.0, RNG(1)))
    x, y = batch(RNG(2))
    real = copy.deepcopy(net)
    real.forward(x)
    net.step(x, y)
    assert all(np.array_equal(a, b) for a, b in zip(state(real), state(net), strict=True))


def test_synthetic_inputs_learn_the_real_inputs():
    """On a fixed batch the L2 loss of every I_i falls, and it is reported per model."""
    net = build_unlocked("cdni", SIZES, RNG(0), input_lr=1e-2)
    x, y = batch(RNG(1))
    first = net.step(x, y)["input_loss"]
    for _ in range(100):
        last = net.step(x, y)["input_loss"]
    assert len(first) == len(SIZES) - 2
    assert all(b < 0.5 * a for a, b in zip(first, last))


def test_p_update_zero_changes_nothing_in_complete_unlock():
    """Stochastic(0): no module, SG model or input model ever updates."""
    net = build_unlocked("cdni", SIZES, RNG(0), schedule=Stochastic(0.0, RNG(1)))
    params = lambda: [to_numpy(p.value).copy() for p in _all_params(net)]  # noqa: E731
    before = params()
    stats = [net.step(*batch(RNG(2))) for _ in range(3)]
    assert all(np.array_equal(a, b) for a, b in zip(before, params(), strict=True))
    assert all(s["sg_loss"] == [None] * 3 and s["input_loss"] == [None] * 3 for s in stats)


def _all_params(net):
    models = [*net.modules, *(s.net for s in net.sgs), *(i.net for i in net.inputs[1:])]
    return [p for m in models for p in m.parameters()]


def test_round_robin_updates_one_module_and_its_input_model_per_step():
    """Each step exactly one module moves (and, from its turn, its SG target and I)."""
    net = build_unlocked("cdni", SIZES, RNG(0), schedule=RoundRobin())
    for t in range(8):
        stats = net.step(*batch(RNG(t)))
        turn = t % len(net.modules)
        assert [opt.t for opt in net.opts] == [
            t // 4 + (i <= turn) for i in range(len(net.modules))
        ]
        assert [loss is not None for loss in stats["input_loss"]] == [
            i == turn for i in range(1, len(net.modules))
        ]


def test_misconfiguration_is_rejected():
    """bprop has nothing to unlock; inputs need one entry per module, the first None."""
    with pytest.raises(ValueError, match="valid: dni, cdni"):
        build_unlocked("bprop", SIZES, RNG(0))
    net = build_unlocked("dni", SIZES, RNG(0))
    with pytest.raises(ValueError, match="inputs = \\[None, I_2"):
        UnlockedNet(net.modules, net.sgs, net.inputs[1:])
    with pytest.raises(ValueError, match="needs SG models"):
        UnlockedNet(net.modules, None)
    assert backend.get_backend() in backend.BACKENDS
