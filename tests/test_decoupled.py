"""Every-layer-decoupled training (minidni.decoupled): the properties that make it DNI."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minidni import backend
from minidni.backend import RNG, to_numpy
from minidni.decoupled import DecoupledNet, build_mlp
from minidni.layers import Linear, Module
from minidni.losses import mse, softmax_cross_entropy
from minidni.optim import SGD
from minidni.schedules import Stochastic
from minidni.synthetic import SyntheticGradient

SIZES = [12, 10, 8, 6, 4]  # three hidden modules and an output module


def batch(rng: RNG, n: int = 16, sizes=SIZES):
    x = rng.normal((n, sizes[0]))
    y = backend.asarray(rng.np.integers(0, sizes[-1], size=n))
    return x, y


def params(net: DecoupledNet) -> list[np.ndarray]:
    return [to_numpy(p.value).copy() for m in net.modules for p in m.parameters()]


class OracleSG:
    """Returns the true gradient ``delta_i`` (per-example units) by backprop through deep
    copies of the modules after the boundary. It never learns."""

    def __init__(self, net: DecoupledNet, i: int):
        self.net, self.i, self.d_context = net, i, net.n_classes

    def predict(self, h, c):
        xp = backend.namespace()
        labels = xp.argmax(c, axis=1)
        downstream = copy.deepcopy(self.net.modules[self.i + 1 :])
        out, caches = h, []
        for f in downstream:
            out, cache = f.forward(out)
            caches.append(cache)
        _, delta = softmax_cross_entropy(out, labels)
        for f, cache in zip(reversed(downstream), reversed(caches)):
            delta = f.backward(delta, cache)
        return delta * h.shape[0], None

    def update(self, cache, prediction, target):
        return 0.0


class Recorder:
    """Wraps an SG model; records the activations it reads and the targets it learns."""

    def __init__(self, sg):
        self.sg, self.d_context = sg, sg.d_context
        self.read: list[np.ndarray] = []
        self.targets: list[np.ndarray] = []

    def predict(self, h, c=None, train=True):
        self.read.append(to_numpy(h).copy())
        return self.sg.predict(h, c, train)

    def update(self, cache, prediction, target):
        self.targets.append(to_numpy(target).copy())
        return self.sg.update(cache, prediction, target)


class InputGradient(Module):
    """Wraps a module; keeps the input gradient of its last backward pass."""

    def __init__(self, inner: Module):
        self.inner, self.dx = inner, None

    def parameters(self):
        return self.inner.parameters()

    def forward(self, x, train=True):
        return self.inner.forward(x, train)

    def backward(self, dout, cache):
        self.dx = self.inner.backward(dout, cache)
        return self.dx


def test_list_positions_follow_the_notation_table(float64):
    """The notation table of minidni.decoupled, for N = 3: ``hs[i]`` is h_i, the output of
    ``modules[i-1]`` = f_i; ``sgs[0]`` is M_2: it predicts delta_hat_1 from ``hs[1]``, the
    output of ``modules[0]``, and learns from ``modules[1]``'s input gradient (its
    bootstrapped target); only ``sgs[-1]`` (M_3) learns from the true loss gradient."""
    sizes, b = [6, 5, 4, 3], 8
    rng = RNG(0)
    net = build_mlp("cdni", sizes, rng)
    for sg in net.sgs:  # non-zero SG outputs, so that a bootstrapped target is not the truth
        sg.net.layers[-1].W.value = rng.normal(sg.net.layers[-1].W.shape, 0.5)
    x, y = batch(RNG(1), b, sizes)
    before = copy.deepcopy(net)
    hs, caches = before.forward(x)
    assert len(hs) == len(net.modules) + 1 and hs[0] is x
    _, dlogits = softmax_cross_entropy(hs[3], y)
    delta_2 = before.modules[2].backward(dlogits, caches[2])  # true dL/dh_2
    delta_1 = before.modules[1].backward(delta_2, caches[1])  # true dL/dh_1

    net.sgs = [Recorder(sg) for sg in net.sgs]
    net.modules[1] = InputGradient(net.modules[1])
    net.step(x, y)
    m2, m3 = net.sgs
    assert np.array_equal(m2.read[0], to_numpy(hs[1]))  # M_2 reads h_1 = f_1(x)
    assert np.array_equal(m3.read[0], to_numpy(hs[2]))  # M_3 reads h_2
    assert np.array_equal(m2.targets[0], to_numpy(net.modules[1].dx * b))  # f_2's input grad
    np.testing.assert_allclose(m3.targets[0], to_numpy(delta_2 * b), rtol=1e-10)  # the truth
    assert not np.allclose(m2.targets[0], to_numpy(delta_1 * b), rtol=0.1)  # not the truth


def test_oracle_synthetic_gradients_reproduce_backprop(xp, float64):
    """With an oracle in place of every SG model, decoupled training *is* backprop."""
    bprop = build_mlp("bprop", SIZES, RNG(3))
    dni = build_mlp("cdni", SIZES, RNG(3))
    dni.sgs = [OracleSG(dni, i) for i in range(len(dni.modules) - 1)]
    data = RNG(4)
    for _ in range(5):
        x, y = batch(data)
        bprop.step(x, y)
        dni.step(x, y)
    for a, b in zip(params(bprop), params(dni), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)


@pytest.mark.parametrize("method", ["dni", "cdni"])
def test_fresh_sg_models_leave_all_but_the_last_module_unchanged(xp, method):
    """Zero-initialised SG output layers: delta_hat = 0, so only the last module moves."""
    net = build_mlp(method, SIZES, RNG(0), sg_hidden=(7,))
    before = [[to_numpy(p.value).copy() for p in m.parameters()] for m in net.modules]
    net.step(*batch(RNG(1)))
    for i, module in enumerate(net.modules):
        changed = [
            not np.array_equal(b, to_numpy(p.value)) for b, p in zip(before[i], module.parameters())
        ]
        assert any(changed) == (i == len(net.modules) - 1), f"module {i}"


def test_bootstrapped_target_is_the_backpropagated_synthetic_gradient(xp, float64):
    """M_i's target equals (dh_i/dh_{i-1})^T delta_hat_i, checked by finite differences."""
    rng = RNG(5)
    net = build_mlp("cdni", SIZES, rng)
    for sg in net.sgs:  # give the SG models a non-zero output so that delta_hat != 0
        last = sg.net.layers[-1]
        last.W.value = rng.normal(last.W.shape, 0.5)
    i = 1  # check the target that module i sends to the SG model just before it
    x, y = batch(RNG(6))
    c = backend.one_hot(y, SIZES[-1])
    module = copy.deepcopy(net.modules[i])
    h_prev = net.forward(x)[0][i]
    delta_hat, _ = copy.deepcopy(net.sgs[i]).predict(module.forward(h_prev)[0], c)

    recorded = {}
    update = net.sgs[i - 1].update
    net.sgs[i - 1].update = lambda cache, pred, target: (
        recorded.setdefault("t", target) is None or update(cache, pred, target)
    )
    net.step(x, y)
    target = to_numpy(recorded["t"])

    def objective(h):  # the scalar whose gradient w.r.t. h_{i-1} is J^T delta_hat
        return float(to_numpy(xp.sum(module.forward(h)[0] * delta_hat)))

    eps, numeric = 1e-6, np.zeros_like(target)
    h0 = to_numpy(h_prev)
    for idx in np.ndindex(*target.shape):
        e = np.zeros_like(h0)
        e[idx] = eps
        numeric[idx] = (objective(backend.asarray(h0 + e)) - objective(backend.asarray(h0 - e))) / (
            2 * eps
        )
    rel = np.linalg.norm(numeric - target) / np.linalg.norm(numeric)
    assert rel < 1e-6


def test_deep_linear_net_with_linear_sgs_reaches_the_least_squares_optimum():
    """Czarnecki et al. 2017: synthetic gradients keep the critical points. A deep linear
    net whose hidden modules learn only through linear SG models reaches the least-squares
    optimum, provided the SG models learn faster than the modules (here SGD, 0.1 vs 0.001)."""
    with backend.use_dtype("float64"):
        rng = RNG(0)
        d, n = 4, 64
        x_np = np.linalg.qr(rng.np.standard_normal((n, d)))[0] * np.sqrt(n)  # x^T x / n = I
        y_np = x_np @ rng.np.standard_normal((d, 2)) + 0.1 * rng.np.standard_normal((n, 2))
        x, y = backend.asarray(x_np), backend.asarray(y_np)
        modules = [
            Linear(d, d, rng, "lecun"),
            Linear(d, d, rng, "lecun"),
            Linear(d, 2, rng, "lecun"),
        ]
        for m in modules[:2]:  # orthogonal: keeps h well conditioned for the SG regressions
            m.W.value = backend.asarray(np.linalg.qr(rng.np.standard_normal((d, d)))[0])
        sgd = lambda lr: lambda params: SGD(params, lr=lr)  # noqa: E731
        sgs = [SyntheticGradient(d, rng, batchnorm=False, optimizer=sgd(0.1)) for _ in range(2)]
        net = DecoupledNet(modules, sgs, loss_fn=mse, optimizer=sgd(0.001))
        first = net.step(x, y)["loss"]
        for _ in range(20000):
            last = net.step(x, y)["loss"]
        optimum = backend.to_float(mse(backend.asarray(_lstsq_fit(x_np, y_np)), y)[0])
        assert first > 10 * optimum
        assert last == pytest.approx(optimum, rel=1e-6)


def _lstsq_fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Predictions of the least-squares affine fit (the backprop optimum)."""
    x1 = np.concatenate([x, np.ones((x.shape[0], 1))], axis=1)
    w, *_ = np.linalg.lstsq(x1, y, rcond=None)
    return x1 @ w


def test_p_update_zero_changes_nothing():
    """With p_update = 0 no module and no SG model ever updates."""
    net = build_mlp("dni", SIZES, RNG(0), sg_hidden=(5,), schedule=Stochastic(0.0, RNG(1)))
    before = params(net) + [to_numpy(p.value).copy() for sg in net.sgs for p in sg.net.parameters()]
    for _ in range(5):
        net.step(*batch(RNG(2)))
    after = params(net) + [to_numpy(p.value) for sg in net.sgs for p in sg.net.parameters()]
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))


@given(p=st.sampled_from([0.05, 0.2, 0.5, 0.9]), seed=st.integers(0, 2**16))
def test_update_frequency_matches_p_update(p, seed):
    """Each module updates on a Binomial(steps, p_update) number of steps (5-sigma bounds)."""
    steps = 200
    net = build_mlp("cdni", [6, 5, 5, 3], RNG(seed), schedule=Stochastic(p, RNG(seed + 1)))
    x, y = batch(RNG(seed + 2), 8, [6, 5, 5, 3])
    for _ in range(steps):
        net.step(x, y)
    sigma = np.sqrt(steps * p * (1 - p))
    for opt in net.opts:
        assert abs(opt.t - steps * p) <= 5 * sigma
    # an SG model learns exactly when the module after its boundary ran backward
    for sg, downstream in zip(net.sgs, net.opts[1:]):
        assert sg.opt.t == downstream.t


def test_backprop_targets_option_trains_sgs_on_true_gradients(float64):
    """sg_targets="backprop" (analysis only): after one step on fixed data the SG loss is
    measured against the true gradient, which an oracle would match exactly."""
    net = build_mlp("cdni", SIZES, RNG(0), sg_targets="backprop")
    x, y = batch(RNG(1))
    stats = net.step(x, y)
    assert all(loss is not None and loss > 0 for loss in stats["sg_loss"])
    with pytest.raises(ValueError, match="sg_targets"):
        build_mlp("cdni", SIZES, RNG(0), sg_targets="oracle")


def test_unknown_method_and_wrong_number_of_sgs():
    """Misconfiguration raises a ValueError that says what is valid."""
    with pytest.raises(ValueError, match="bprop, dni, cdni"):
        build_mlp("sgd", SIZES, RNG(0))
    net = build_mlp("dni", SIZES, RNG(0))
    with pytest.raises(ValueError, match="need 3 SG models"):
        DecoupledNet(net.modules, net.sgs[:2])
