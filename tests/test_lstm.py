"""The LSTM core and the per-step readout (minidni.lstm): BPTT against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minidni import backend
from minidni.backend import RNG, to_numpy
from minidni.gradcheck import check_module, check_recurrent
from minidni.lstm import LSTM, SeqLinear

TOL = 1e-6
sizes = st.integers(1, 3)


@given(b=sizes, t_len=st.integers(1, 5), d_in=sizes, h=sizes, seed=st.integers(0, 2**16))
def test_lstm_gradients_match_finite_differences(xp, float64, b, t_len, d_in, h, seed):
    """dx, dW, db and the state gradients (dh_0, dC_0), with dstate_T = (dh_T, dC_T) fed in."""
    rng = RNG(seed)
    core = LSTM(d_in, h, rng)
    state = (rng.normal((b, h)), rng.normal((b, h)))
    errors = check_recurrent(core, rng.normal((b, t_len, d_in)), state, rng)
    assert set(errors) == {"x", "h_0", "c_0", "0.W", "1.b"}
    assert max(errors.values()) <= TOL, errors


@given(b=sizes, t_len=st.integers(1, 4), d_in=sizes, d_out=sizes, seed=st.integers(0, 2**16))
def test_seq_linear_gradients_match_finite_differences(xp, float64, b, t_len, d_in, d_out, seed):
    rng = RNG(seed)
    errors = check_module(SeqLinear(d_in, d_out, rng), rng.normal((b, t_len, d_in)), rng)
    assert max(errors.values()) <= TOL, errors


def test_unrolling_composes_and_state_passes_through(xp, float64):
    """Two segments chained by the state equal one long segment, forwards and backwards:
    the state returned by forward and the dstate_0 returned by backward are what carries
    a segment boundary."""
    rng = RNG(0)
    core = LSTM(3, 4, rng)
    x = rng.normal((2, 7, 3))
    s0 = (rng.normal((2, 4)), rng.normal((2, 4)))
    dhs = rng.normal((2, 7, 4))
    d_end = (rng.normal((2, 4)), rng.normal((2, 4)))

    hs, s_end, cache = core.forward(x, s0)
    core.zero_grad()
    dx, ds0 = core.backward(dhs, d_end, cache)
    whole = [to_numpy(a) for a in (hs, *s_end, dx, *ds0, core.W.grad, core.b.grad)]

    hs1, s1, c1 = core.forward(x[:, :3, :], s0)
    hs2, s2, c2 = core.forward(x[:, 3:, :], s1)
    core.zero_grad()
    dx2, ds1 = core.backward(dhs[:, 3:, :], d_end, c2)
    dx1, ds0_split = core.backward(dhs[:, :3, :], ds1, c1)
    split = [
        to_numpy(a)
        for a in (
            xp.concat([hs1, hs2], axis=1),
            *s2,
            xp.concat([dx1, dx2], axis=1),
            *ds0_split,
            core.W.grad,
            core.b.grad,
        )
    ]
    for a, b in zip(whole, split, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_none_dstate_means_zero_and_last_output_is_final_state(xp, float64):
    rng = RNG(1)
    core = LSTM(2, 3, rng)
    x, dhs = rng.normal((4, 5, 2)), rng.normal((4, 5, 3))
    hs, (h_T, cell_T), cache = core.forward(x, core.initial_state(4))
    np.testing.assert_array_equal(to_numpy(hs[:, -1, :]), to_numpy(h_T))
    dx_none, (dh_none, dc_none) = core.backward(dhs, None, cache)
    zeros = core.initial_state(4)
    dx_zero, (dh_zero, dc_zero) = core.backward(dhs, zeros, cache)
    for a, b in ((dx_none, dx_zero), (dh_none, dh_zero), (dc_none, dc_zero)):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))


def test_one_step_is_the_lstm_equations_with_gates_i_f_o_g(xp, float64):
    """h_1 and c_1 from the equations written out in NumPy, W's column blocks i, f, o, g."""
    rng = RNG(3)
    core = LSTM(2, 3, rng)
    core.b.value = rng.normal((12,))
    x, h0, c0 = rng.normal((4, 1, 2)), rng.normal((4, 3)), rng.normal((4, 3))
    hs, (h1, c1), _ = core.forward(x, (h0, c0))
    z = np.concatenate([to_numpy(x)[:, 0, :], to_numpy(h0)], axis=1)  # (B, D_in + H)
    a = z @ to_numpy(core.W.value) + to_numpy(core.b.value)  # (B, 4H)
    i, f, o, g = np.split(a, 4, axis=1)
    i, f, o, g = 1 / (1 + np.exp(-i)), 1 / (1 + np.exp(-f)), 1 / (1 + np.exp(-o)), np.tanh(g)
    c_expected = f * to_numpy(c0) + i * g
    np.testing.assert_allclose(to_numpy(c1), c_expected, rtol=1e-12)
    np.testing.assert_allclose(to_numpy(h1), o * np.tanh(c_expected), rtol=1e-12)
    np.testing.assert_array_equal(to_numpy(hs[:, 0, :]), to_numpy(h1))


def test_without_input_gradient_the_rest_is_unchanged(xp, float64):
    """input_grad=False (x is data): dx is None; the state and weight gradients are equal."""
    rng = RNG(4)
    x, dhs, s0 = rng.normal((3, 4, 2)), rng.normal((3, 4, 3)), (rng.normal((3, 3)),) * 2
    results = []
    for input_grad in (True, False):
        core = LSTM(2, 3, RNG(5), input_grad=input_grad)
        _, s_end, cache = core.forward(x, s0)
        dx, ds0 = core.backward(dhs, s_end, cache)
        assert (dx is None) == (not input_grad)
        results.append([to_numpy(a) for a in (*ds0, core.W.grad, core.b.grad)])
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)


def test_parameters_shapes_and_forget_bias(xp):
    core = LSTM(5, 4, RNG(0))
    assert core.W.shape == (9, 16) and core.b.shape == (16,)
    np.testing.assert_array_equal(to_numpy(core.b.value), [0] * 4 + [1] * 4 + [0] * 8)
    h, c = core.initial_state(3)
    assert tuple(h.shape) == (3, 4) and not np.any(to_numpy(c))


def test_backward_accumulates(xp, float64):
    rng = RNG(2)
    core = LSTM(2, 2, rng)
    x, dhs = rng.normal((3, 4, 2)), rng.normal((3, 4, 2))
    _, _, cache = core.forward(x, core.initial_state(3))
    core.backward(dhs, None, cache)
    once = to_numpy(core.W.grad).copy()
    core.backward(dhs, None, cache)
    np.testing.assert_allclose(to_numpy(core.W.grad), 2 * once, rtol=1e-12)


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda m, s: m.forward(backend.asarray(np.zeros((2, 3, 4))), s),
            "LSTM(5, 6): expected input of shape (B, T, 5), got (2, 3, 4)",
        ),
        (
            lambda m, s: m.forward(backend.asarray(np.zeros((2, 5))), s),
            "LSTM(5, 6): expected input",
        ),
        (
            lambda m, s: m.forward(backend.asarray(np.zeros((3, 4, 5))), s),
            "LSTM(5, 6): expected h_0 of shape (3, 6), got (2, 6)",
        ),
        (
            lambda m, s: m.forward(backend.asarray(np.zeros((2, 0, 5))), s),
            "LSTM(5, 6): a segment needs at least one step",
        ),
    ],
)
def test_lstm_shape_errors_name_the_layer(xp, call, message):
    core = LSTM(5, 6, RNG(0))
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(core, core.initial_state(2))


def test_lstm_backward_shape_errors_name_the_layer(xp):
    core = LSTM(5, 6, RNG(0))
    _, _, cache = core.forward(backend.asarray(np.zeros((2, 3, 5))), core.initial_state(2))
    with pytest.raises(ValueError, match=r"LSTM\(5, 6\): expected dhs of shape \(2, 3, 6\)"):
        core.backward(backend.asarray(np.zeros((2, 4, 6))), None, cache)
    bad = (backend.asarray(np.zeros((2, 6))), backend.asarray(np.zeros((2, 5))))
    with pytest.raises(ValueError, match=r"LSTM\(5, 6\): expected dC_T"):
        core.backward(backend.asarray(np.zeros((2, 3, 6))), bad, cache)


def test_seq_linear_shape_errors_name_the_layer(xp):
    layer = SeqLinear(4, 3, RNG(0))
    with pytest.raises(
        ValueError, match=r"SeqLinear\(4, 3\): expected input of shape \(B, T, 4\), got \(2, 5, 3\)"
    ):
        layer.forward(backend.asarray(np.zeros((2, 5, 3))))
    out, cache = layer.forward(backend.asarray(np.zeros((2, 5, 4))))
    assert tuple(out.shape) == (2, 5, 3)
    with pytest.raises(ValueError, match=r"SeqLinear\(4, 3\): expected dout"):
        layer.backward(backend.asarray(np.zeros((2, 4, 3))), cache)


def lstm_bptt_written_out(x, W, b, h0, cell0, dhs, dh_T, dcell_T):
    """BPTT of the LSTM with the equations of LSTM.backward's docstring, one time step
    and one gate at a time, in plain NumPy (float64): (dx, dh_0, dC_0, dW, db)."""

    def sig(a):
        return 1.0 / (1.0 + np.exp(-a))

    n, t_len, d = x.shape
    H = h0.shape[1]
    hs, cells, gates, zs = [h0], [cell0], [], []
    for t in range(t_len):
        z = np.concatenate([x[:, t], hs[-1]], axis=1)
        a = z @ W + b
        i, f, o, g = (
            sig(a[:, :H]),
            sig(a[:, H : 2 * H]),
            sig(a[:, 2 * H : 3 * H]),
            np.tanh(a[:, 3 * H :]),
        )
        cells.append(f * cells[-1] + i * g)
        hs.append(o * np.tanh(cells[-1]))
        gates.append((i, f, o, g))
        zs.append(z)
    dW, db, dx = np.zeros_like(W), np.zeros_like(b), np.zeros_like(x)
    dh, dcell = dh_T.copy(), dcell_T.copy()
    for t in reversed(range(t_len)):
        i, f, o, g = gates[t]
        tanh_cell = np.tanh(cells[t + 1])
        dh = dh + dhs[:, t]
        dcell = dcell + dh * o * (1 - tanh_cell**2)
        da_i = dcell * g * i * (1 - i)
        da_f = dcell * cells[t] * f * (1 - f)
        da_o = dh * tanh_cell * o * (1 - o)
        da_g = dcell * i * (1 - g**2)
        da = np.concatenate([da_i, da_f, da_o, da_g], axis=1)
        dW += zs[t].T @ da
        db += da.sum(axis=0)
        dz = da @ W.T
        dx[:, t] = dz[:, :d]
        dh, dcell = dz[:, d:], dcell * f
    return dx, dh, dcell, dW, db


@given(b=sizes, t_len=st.integers(1, 5), d_in=sizes, h=sizes, seed=st.integers(0, 2**16))
def test_backward_equals_the_equations_written_out(xp, float64, b, t_len, d_in, h, seed):
    """LSTM.backward (the three sigmoid derivatives in one pass, dh_{t-1} as (W_h da_t^T)^T)
    equals its docstring's equations evaluated gate by gate, to rounding."""
    rng = RNG(seed)
    core = LSTM(d_in, h, rng)
    core.b.value = rng.normal((4 * h,))
    x, dhs = rng.normal((b, t_len, d_in)), rng.normal((b, t_len, h))
    state, dstate_T = (
        (rng.normal((b, h)), rng.normal((b, h))),
        (rng.normal((b, h)), rng.normal((b, h))),
    )
    _, _, cache = core.forward(x, state)
    dx, (dh0, dcell0) = core.backward(dhs, dstate_T, cache)
    expected = lstm_bptt_written_out(
        *(to_numpy(a) for a in (x, core.W.value, core.b.value, *state, dhs, *dstate_T))
    )
    got = (dx, dh0, dcell0, core.W.grad, core.b.grad)
    for a, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(to_numpy(a), e, rtol=1e-10, atol=1e-12)
