"""Update schedules (minidni.schedules) and how the decoupled step runs them (DecoupledNet
and UnlockedNet): lockstep as the limit of every schedule, and staleness that is exactly
k steps."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minidni import backend
from minidni.backend import RNG, to_numpy
from minidni.decoupled import DecoupledNet, build_mlp
from minidni.layers import Module
from minidni.schedules import Delayed, Lockstep, RoundRobin, Stochastic
from minidni.unlock import UnlockedNet, build_unlocked

SIZES = [12, 10, 8, 6, 4]  # three hidden modules and an output module
N = len(SIZES) - 1


def batch(rng: RNG, n: int = 16, sizes=SIZES):
    x = rng.normal((n, sizes[0]))
    y = backend.asarray(rng.np.integers(0, sizes[-1], size=n))
    return x, y


def state(net: DecoupledNet) -> list[np.ndarray]:
    """Every parameter of modules, SG models and input models, and BatchNorm statistics."""
    models = [*net.modules, *(sg.net for sg in net.sgs)]
    models += [inp.net for inp in getattr(net, "inputs", None) or [] if hasattr(inp, "net")]
    arrays = [p.value for m in models for p in m.parameters()]
    for m in models:
        for layer in getattr(m, "layers", [m]):
            if hasattr(layer, "running_mean"):
                arrays += [layer.running_mean, layer.running_var]
    return [to_numpy(a).copy() for a in arrays]


def train(net: DecoupledNet, steps: int, seed: int) -> list[np.ndarray]:
    data = RNG(seed)
    for _ in range(steps):
        net.step(*batch(data))
    return state(net)


# --- the schedules themselves ---------------------------------------------------------


@given(n=st.integers(1, 6), per_step=st.integers(1, 7), rounds=st.integers(1, 4))
def test_round_robin_visits_every_module_equally_often(n, per_step, rounds):
    """per_step modules a step (all of them when per_step >= n), each equally often, and a
    module's input model learns on its module's turn."""
    schedule = RoundRobin(per_step)
    counts = np.zeros(n, dtype=int)
    for _ in range(rounds * n):
        flags = schedule.sample(n)
        assert sum(flags) == min(per_step, n)
        assert schedule.sample_inputs(n) == flags
        counts += flags
    assert np.all(counts == counts[0])


@given(p=st.sampled_from([0.1, 0.5, 0.9]), seed=st.integers(0, 2**16))
def test_stochastic_input_models_flip_their_own_coins(p, seed):
    """Synthetic-input models learn with probability p_update, independently of modules."""
    steps, n = 400, 4
    schedule = Stochastic(p, RNG(seed), input_rng=RNG(seed + 1))
    modules = np.array([schedule.sample(n) for _ in range(steps)])
    inputs = np.array([schedule.sample_inputs(n) for _ in range(steps)])
    sigma = np.sqrt(steps * p * (1 - p))
    assert np.all(np.abs(inputs.sum(axis=0) - steps * p) <= 5 * sigma)
    assert not np.array_equal(modules, inputs)


def test_delays_are_checked():
    """Per-module delays need one per module; negative delays are refused, and so are the
    two chains that cannot be stale: bprop and SG models trained on true gradients."""
    assert Delayed(3).delays(4) == [3, 3, 3, 3]
    assert Delayed([0, 1, 2]).delays(3) == [0, 1, 2]
    with pytest.raises(ValueError, match="3 delays given for 4 modules"):
        Delayed([0, 1, 2]).delays(4)
    with pytest.raises(ValueError, match=">= 0"):
        Delayed(-1)
    with pytest.raises(ValueError, match="cannot run Delayed.*bprop waits for the true"):
        build_mlp("bprop", SIZES, RNG(0), schedule=Delayed(1))
    with pytest.raises(ValueError, match='cannot run Delayed.*sg_targets="backprop"'):
        build_mlp("cdni", SIZES, RNG(0), schedule=Delayed([0, 1, 0, 0]), sg_targets="backprop")
    build_mlp("bprop", SIZES, RNG(0), schedule=Delayed(0))  # no delay: fine
    build_mlp("cdni", SIZES, RNG(0), schedule=Delayed(0), sg_targets="backprop")


@given(seed=st.integers(0, 2**16), ks=st.lists(st.integers(0, 3), min_size=N, max_size=N))
def test_decoupled_net_runs_delays_like_the_gradients_only_unlocked_net(seed, ks):
    """DecoupledNet honours the delays k_i itself: bitwise the same run as UnlockedNet
    without synthetic inputs (which adds nothing but them to the decoupled step)."""
    a = build_mlp("cdni", SIZES, RNG(seed), sg_hidden=(5,), schedule=Delayed(ks))
    b = build_unlocked(
        "cdni", SIZES, RNG(seed), sg_hidden=(5,), schedule=Delayed(ks), synthetic_inputs=False
    )
    assert all(np.array_equal(u, v) for u, v in zip(train(a, 6, seed + 1), train(b, 6, seed + 1)))


# --- every schedule reduces to lockstep -----------------------------------------------


def lockstep_limits(seed: int) -> list:
    """Every schedule with p_update = 1, zero delay (and all modules per round-robin step)."""
    return [
        Stochastic(1.0, RNG(seed)),
        RoundRobin(per_step=N),
        Delayed(0),
        Delayed([0] * N, base=Stochastic(1.0, RNG(seed))),
        Delayed(0, base=RoundRobin(per_step=N)),
    ]


@given(
    seed=st.integers(0, 2**16),
    steps=st.integers(1, 6),
    method=st.sampled_from(["dni", "cdni"]),
    unlock=st.booleans(),
)
def test_every_schedule_with_p1_and_no_delay_is_lockstep(seed, steps, method, unlock):
    """Bitwise the same parameters (modules, SG and input models, BatchNorm statistics)."""
    build = lambda schedule: build_unlocked(  # noqa: E731
        method, SIZES, RNG(seed), sg_hidden=(5,), schedule=schedule, synthetic_inputs=unlock
    )
    reference = train(build(Lockstep()), steps, seed + 1)
    for schedule in lockstep_limits(seed):
        got = train(build(schedule), steps, seed + 1)
        assert all(np.array_equal(a, b) for a, b in zip(reference, got, strict=True)), schedule


@given(seed=st.integers(0, 2**16), p=st.sampled_from([1.0, 0.5]))
def test_gradients_only_unlocked_net_is_decoupled_net(seed, p):
    """Without synthetic inputs and delays, UnlockedNet.step is DecoupledNet.step."""
    sched = lambda: Stochastic(p, RNG(seed + 2))  # noqa: E731
    a = build_mlp("cdni", SIZES, RNG(seed), sg_lr=1e-3, schedule=sched())
    b = build_unlocked(
        "cdni", SIZES, RNG(seed), sg_lr=1e-3, schedule=sched(), synthetic_inputs=False
    )
    assert all(np.array_equal(u, v) for u, v in zip(train(a, 4, seed + 1), train(b, 4, seed + 1)))


# --- staleness is exactly k steps ------------------------------------------------------


class Spy(Module):
    """Wraps a module; records each forward input (tagged with the net's step) and, for
    each backward pass, the step it ran on, the input in its cache and its dout."""

    def __init__(self, inner: Module):
        self.inner = inner
        self.clock = lambda: -1
        self.forwards: list[tuple[int, np.ndarray]] = []
        self.backwards: list[tuple[int, np.ndarray, np.ndarray]] = []

    def parameters(self):
        return self.inner.parameters()

    def forward(self, x, train=True):
        out, cache = self.inner.forward(x, train)
        self.forwards.append((self.clock(), to_numpy(x).copy()))
        return out, (to_numpy(x).copy(), cache)

    def backward(self, dout, cache):
        x, inner = cache
        self.backwards.append((self.clock(), x, to_numpy(dout).copy()))
        return self.inner.backward(dout, inner)


class SpySG:
    """Wraps an SG model; records each prediction with the net's step."""

    def __init__(self, sg, clock):
        self.sg, self.clock, self.d_context = sg, clock, sg.d_context
        self.predictions: dict[int, np.ndarray] = {}

    def predict(self, h, c=None, train=True):
        delta_hat, cache = self.sg.predict(h, c, train)
        self.predictions[self.clock()] = to_numpy(delta_hat).copy()
        return delta_hat, cache

    def update(self, cache, prediction, target):
        return self.sg.update(cache, prediction, target)


@given(
    ks=st.lists(st.integers(0, 4), min_size=3, max_size=3),
    steps=st.integers(0, 9),
    unlock=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_k_stale_backward_uses_exactly_the_activations_of_k_steps_ago(ks, steps, unlock, seed):
    """Module i's backward pass at step t takes the input it was given at step t - k_i
    (the real h_{i-1}, or I_i(x) under complete unlock) and the synthetic gradient M_{i+1}
    predicted at step t - k_i; there is one such pass on every step t >= k_i, none before."""
    sizes = [6, 5, 4, 3]
    rng = RNG(seed)
    plain = build_unlocked("cdni", sizes, rng, synthetic_inputs=unlock, schedule=Delayed(ks))
    spies = [Spy(m) for m in plain.modules]
    net = UnlockedNet(spies, plain.sgs, plain.inputs, n_classes=3, schedule=Delayed(ks))
    clock = lambda: net.t  # noqa: E731
    for spy in spies:
        spy.clock = clock
    net.sgs = [SpySG(sg, clock) for sg in net.sgs]
    data = RNG(seed + 1)
    for _ in range(steps):
        for sg in plain.sgs:  # non-zero SG outputs, so that stale deltas differ from fresh
            sg.net.layers[-1].W.value = rng.normal(sg.net.layers[-1].W.shape)
        net.step(*batch(data, 8, sizes))

    for i, (spy, k) in enumerate(zip(spies, ks)):
        seen = {t: x for t, x in spy.forwards}  # the last input of each step is the module's own
        assert [t for t, _, _ in spy.backwards] == list(range(k, steps))
        for t, x, dout in spy.backwards:
            assert np.array_equal(x, seen[t - k])
            if k > 0 and t - k + 1 in seen:
                assert not np.array_equal(x, seen[t - k + 1])
            if i < len(spies) - 1:
                np.testing.assert_allclose(dout * 8, net.sgs[i].predictions[t - k], rtol=1e-6)
