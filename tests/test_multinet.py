"""The multi-network system (minidni/multinet.py): oracle SG == bprop, and tick timing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minidni import backend
from minidni.multinet import D_X, MultiNet, count_targets

SMALL = {"d_enc": 5, "h_a": 4, "d_msg": 3, "h_b": 4}


def stream(seed: int, batch: int, n: int) -> tuple[object, np.ndarray]:
    """Random 'digits' x (B, n, 784) on the current backend and labels (B, n) in 0..9."""
    gen = np.random.default_rng(seed)
    x = backend.asarray(gen.random((batch, n, D_X)).astype(np.float64))
    return x, gen.integers(0, 10, (batch, n))


class GradSum:
    """An optimizer that moves nothing and sums the gradients it is asked to apply."""

    def __init__(self, params: list):
        self.params = params
        self.total = [np.zeros(p.shape) for p in params]
        self.steps = 0

    def step(self) -> None:
        self.steps += 1
        for acc, p in zip(self.total, self.params):
            acc += backend.to_numpy(p.grad)


class OracleM:
    """An SG model whose ``delta_hat`` is B's true ``delta = B * dL_B/dm``, given in advance."""

    def __init__(self, deltas: list):
        self.deltas = list(deltas)  # one (B*k, D_m) per piece, in order

    def predict(self, m, c):
        return self.deltas.pop(0), None

    def update(self, cache, prediction, target) -> float:
        return 0.0


def _flat(dm):
    xp = backend.namespace()
    b, t_len, d = dm.shape
    return xp.reshape(dm * b, (b * t_len, d))  # (B*k, D_m)


def _window_grads(
    k: int, a_unroll: int, oracle: bool | None, windows: int = 2, b_reads: str = "all"
):
    """A's and B's gradients summed over ``windows`` windows, parameters frozen: for the
    bprop system (oracle None), and for DNI with an oracle M (True) or a fresh M (False)."""
    batch = 3
    wiring = {"a_unroll": a_unroll, "b_reads": b_reads, **SMALL}
    bprop = MultiNet(k, "bprop", backend.RNG(0), **wiring)
    bprop.opt_a, bprop.opt_b = GradSum(bprop.params_a()), GradSum(bprop.params_b())
    deltas = []
    for w in range(windows):
        x, y = stream(w, batch, k * k)
        bprop.train_window(x, y)
        # the oracle predicts only the messages B reads, as M does
        deltas += [_flat(dm[:, k - bprop.n_read :, :]) for dm in bprop.last_message_grads]
    if oracle is None:
        return bprop
    dni = MultiNet(k, "dni", backend.RNG(0), **wiring)
    dni.opt_a, dni.opt_b = GradSum(dni.params_a()), GradSum(dni.params_b())
    if oracle:
        dni.M = OracleM(deltas)
    for w in range(windows):
        x, y = stream(w, batch, k * k)
        dni.train_window(x, y)
    return bprop, dni


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("span", ["piece", "window"])
@pytest.mark.parametrize("b_reads", ["all", "last"])
def test_oracle_sg_gives_the_bprop_gradients(xp, float64, k, span, b_reads):
    """With B's true gradient delivered at once as delta_hat, DNI's A gradients (summed
    over its k updates a window) are the bprop system's (one update a window)."""
    a_unroll = k if span == "piece" else k * k
    bprop, dni = _window_grads(k, a_unroll, oracle=True, b_reads=b_reads)
    assert dni.opt_a.steps == 2 * (k * k // a_unroll) and bprop.opt_a.steps == 2
    for got, want in zip(dni.opt_a.total, bprop.opt_a.total):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    for got, want in zip(dni.opt_b.total, bprop.opt_b.total):  # B is trained alike
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    # B's gradient does reach A through the messages: a fresh (zero) M loses it
    _, fresh = _window_grads(k, a_unroll, oracle=False, b_reads=b_reads)
    diff = max(np.max(np.abs(g - w)) for g, w in zip(fresh.opt_a.total, bprop.opt_a.total))
    assert diff > 1e-8


def test_unread_messages_get_no_gradient():
    """With b_reads="last", B's gradient reaches only the last message of every piece."""
    k = 3
    bprop = _window_grads(k, k * k, oracle=None, b_reads="last")
    for dm in bprop.last_message_grads:
        dm = backend.to_numpy(dm)  # (S, k, D_m)
        assert np.all(dm[:, : k - 1, :] == 0) and np.any(dm[:, k - 1, :] != 0)


def test_parameters_match_between_methods():
    """Same seed, same A and B: the DNI system only adds M (built last)."""
    bprop = MultiNet(2, "bprop", backend.RNG(3), **SMALL)
    dni = MultiNet(2, "dni", backend.RNG(3), **SMALL)
    for p, q in zip(bprop.params_a() + bprop.params_b(), dni.params_a() + dni.params_b()):
        np.testing.assert_array_equal(backend.to_numpy(p.value), backend.to_numpy(q.value))


def _check_ticks(trace: list, k: int, n: int, d_msg: int, b_reads: str = "all") -> None:
    """A ran every step 0..n-1 in pieces of k; B ticked after every full piece, reading
    exactly that piece's messages (all of them in order, or only the last one), with
    the phase j mod k."""
    a_events = [e for e in trace if e[0] == "A"]
    b_events = [e for e in trace if e[0] == "B"]
    assert [e[1] for e in a_events] == list(range(0, n, k))
    assert sum(e[2] for e in a_events) == n
    assert len(b_events) == n // k
    messages = {}
    for _, t0, t_len, m in a_events:
        for i in range(t_len):
            messages[t0 + i] = backend.to_numpy(m[:, i, :])
    first = 0 if b_reads == "all" else k - 1  # the first step of a piece that B reads
    for j, (_, tick, steps, inp) in enumerate(b_events):
        assert tick == j and steps == tuple(range(j * k + first, (j + 1) * k))
        inp = backend.to_numpy(inp)
        width = len(steps) * d_msg
        want = np.concatenate([messages[t] for t in steps], axis=1)  # (S, n_read*D_m)
        np.testing.assert_array_equal(inp[:, :width], want)
        np.testing.assert_array_equal(inp[:, width:], np.eye(k)[[j % k] * inp.shape[0]])
        # B's tick j comes right after the A piece that ends with step jk + k - 1
        at = trace.index(b_events[j])
        assert trace[at - 1][0] == "A" and trace[at - 1][1] == j * k


@given(k=st.integers(1, 4), n=st.integers(1, 40), b_reads=st.sampled_from(["all", "last"]))
def test_b_ticks_every_k_steps_on_a_stream(k, n, b_reads):
    net = MultiNet(k, "bprop", backend.RNG(0), b_reads=b_reads, **SMALL)
    net.trace = []
    x, _ = stream(1, 2, n)
    out_a, out_b = net.forward_stream(x)
    _check_ticks(net.trace, k, n, SMALL["d_msg"], b_reads)
    assert len(out_a) == n // k and len(out_b) == n // (k * k)


@given(
    k=st.integers(1, 3),
    windows=st.integers(1, 3),
    method=st.sampled_from(["bprop", "dni"]),
    b_reads=st.sampled_from(["all", "last"]),
)
def test_b_ticks_every_k_steps_while_training(k, windows, method, b_reads):
    net = MultiNet(k, method, backend.RNG(0), b_reads=b_reads, **SMALL)
    net.trace = []
    for w in range(windows):
        x, y = stream(w, 2, k * k)
        net.train_window(x, y)
    _check_ticks(net.trace, k, windows * k * k, SMALL["d_msg"], b_reads)
    assert net.steps == windows * k * k


@given(k=st.integers(1, 4), windows=st.integers(1, 3), seed=st.integers(0, 100))
def test_count_targets(k, windows, seed):
    labels = np.random.default_rng(seed).integers(0, 10, (2, windows * k * k))
    ya, yb = count_targets(labels, k)
    for n in range(2):
        for i in range(windows * k):
            assert ya[n, i] == sum(1 for d in labels[n, i * k : (i + 1) * k] if d % 2 == 1)
        for w in range(windows):
            assert yb[n, w] == list(labels[n, w * k * k : (w + 1) * k * k]).count(3)


def test_rejects_bad_settings():
    with pytest.raises(ValueError, match="method"):
        MultiNet(2, "locked", backend.RNG(0))  # the old name of bprop
    with pytest.raises(ValueError, match="b_reads"):
        MultiNet(2, "dni", backend.RNG(0), b_reads="first")
    with pytest.raises(ValueError, match="a_unroll"):
        MultiNet(3, "dni", backend.RNG(0), a_unroll=4)
    with pytest.raises(ValueError, match="multiple of k"):
        count_targets(np.zeros((1, 5), dtype=np.int64), 2)
