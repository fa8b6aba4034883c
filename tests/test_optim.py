"""Optimizers (minidni.optim) against their update rules written out by hand.

Each test takes a tiny two-element Parameter, feeds it known gradients and compares the
optimizer's steps with the formulas evaluated in plain Python, one number at a time.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from minidni import backend
from minidni.backend import asarray, to_numpy
from minidni.layers import Parameter
from minidni.optim import SGD, Adam

THETA0 = [1.0, -2.0]
G1 = [0.5, -3.0]  # gradient at the first step
G2 = [-1.0, 0.25]  # gradient at the second step


def parameter():
    return Parameter(asarray(np.array(THETA0)), "theta")


def step(opt, p, grad):
    """Set the gradient and take one optimizer step."""
    p.grad = asarray(np.array(grad))
    opt.step()
    return to_numpy(p.value).tolist()


def test_sgd_without_momentum_is_theta_minus_lr_g(xp, float64):
    """momentum=0: theta <- theta - lr g."""
    p = parameter()
    got = step(SGD([p], lr=0.1), p, G1)
    assert got == pytest.approx([t - 0.1 * g for t, g in zip(THETA0, G1)], rel=1e-15)


def test_sgd_momentum_two_steps(xp, float64):
    """Heavy ball: v <- mu v + g; theta <- theta - lr v (PyTorch's convention)."""
    lr, mu = 0.1, 0.9
    p = parameter()
    opt = SGD([p], lr=lr, momentum=mu)
    theta1 = [t - lr * g for t, g in zip(THETA0, G1)]  # v1 = g1
    assert step(opt, p, G1) == pytest.approx(theta1, rel=1e-15)
    v2 = [mu * g1 + g2 for g1, g2 in zip(G1, G2)]
    theta2 = [t - lr * v for t, v in zip(theta1, v2)]
    assert step(opt, p, G2) == pytest.approx(theta2, rel=1e-15)


def adam_by_hand(theta, grads, lr, b1, b2, eps):
    """Bias-corrected Adam on a list of floats; returns theta after each step."""
    m = [0.0] * len(theta)
    v = [0.0] * len(theta)
    history = []
    for t, g in enumerate(grads, start=1):
        for i in range(len(theta)):
            m[i] = b1 * m[i] + (1 - b1) * g[i]
            v[i] = b2 * v[i] + (1 - b2) * g[i] ** 2
            m_hat = m[i] / (1 - b1**t)
            v_hat = v[i] / (1 - b2**t)
            theta[i] = theta[i] - lr * m_hat / (math.sqrt(v_hat) + eps)
        history.append(list(theta))
    return history


@pytest.mark.parametrize("betas", [(0.9, 0.999), (0.5, 0.8)])
def test_adam_two_steps(xp, float64, betas):
    """m, v moving averages of g and g^2, divided by 1 - beta^t before the update."""
    lr, eps = 0.01, 1e-8
    p = parameter()
    opt = Adam([p], lr=lr, betas=betas, eps=eps)
    expected = adam_by_hand(list(THETA0), [G1, G2], lr, *betas, eps)
    assert step(opt, p, G1) == pytest.approx(expected[0], rel=1e-14)
    assert opt.t == 1
    assert step(opt, p, G2) == pytest.approx(expected[1], rel=1e-14)
    assert opt.t == 2


def test_first_adam_step_moves_each_coordinate_by_about_lr(xp, float64):
    """Bias correction makes the first step lr * g / (|g| + eps): about lr in size,
    whatever the gradient's scale (here 0.5 and -3)."""
    p = parameter()
    got = step(Adam([p], lr=0.01), p, G1)
    moved = np.subtract(THETA0, got)
    np.testing.assert_allclose(moved, 0.01 * np.sign(G1), rtol=1e-7)


def test_optimizers_update_every_parameter_in_place(xp, float64):
    """Several parameters, each with its own state; zero_grad clears all gradients."""
    a, b = parameter(), Parameter(asarray(np.array([[3.0]])), "b")
    opt = SGD([a, b], lr=0.5, momentum=0.9)
    a.grad = asarray(np.array(G1))
    b.grad = asarray(np.array([[2.0]]))
    opt.step()  # v = g
    opt.step()  # same gradients again: v = 0.9 g + g = 1.9 g; in all theta moved by 2.9 lr g
    assert to_numpy(a.value).tolist() == pytest.approx(
        [t - 0.5 * 2.9 * g for t, g in zip(THETA0, G1)], rel=1e-14
    )
    assert to_numpy(b.value).ravel().tolist() == pytest.approx([3.0 - 0.5 * 2.9 * 2.0], rel=1e-14)
    opt.zero_grad()
    assert np.all(to_numpy(a.grad) == 0.0) and np.all(to_numpy(b.grad) == 0.0)


def test_float32_parameters_stay_float32(xp):
    """A step keeps the parameter's dtype (no silent promotion to float64)."""
    p = parameter()
    assert p.value.dtype == backend.namespace().float32
    for opt in (SGD([p], lr=0.1, momentum=0.9), Adam([p], lr=0.1)):
        p.grad = asarray(np.array(G1))
        opt.step()
        assert p.value.dtype == backend.namespace().float32


@pytest.mark.parametrize("flush", [True, False])
def test_adam_keeps_decaying_first_moments_out_of_the_subnormal_range(xp, flush):
    """After one gradient of 1e-30 and then zero gradients, m = 0.1 * 1e-30 * 0.9^(t-1)
    falls below float32's smallest normal number (1.18e-38) at step 152. With the flush,
    every 16th step zeroes entries below 1.18e-38 / 0.9^16 (6.4e-38), so m goes from
    normal to exactly 0 and is never subnormal; without it, m spends steps 152 on as a
    subnormal float (slow on x86 CPUs)."""
    p = parameter()
    assert p.value.dtype == backend.namespace().float32
    opt = Adam([p], lr=0.01, flush_subnormal=flush)
    tiny = np.finfo(np.float32).tiny
    step(opt, p, [1e-30, 1.0])
    seen = []
    for _ in range(170):
        step(opt, p, [0.0, 0.0])
        m = to_numpy(opt.m[0]).astype(np.float64)
        assert m[1] >= tiny  # 0.1 * 0.9^170 = 1.7e-9: normal, never flushed
        seen.append("zero" if m[0] == 0 else "subnormal" if m[0] < tiny else "normal")
    assert seen[0] == "normal"
    if flush:
        assert "subnormal" not in seen and seen[-1] == "zero"
        assert (seen.index("zero") + 2) % 16 == 0  # entry i is step t = i + 2: a flush step
    else:
        assert "zero" not in seen and seen[-1] == "subnormal"


def test_adam_flush_changes_nothing_above_the_subnormal_range(xp, float64):
    """Ordinary gradients over 40 steps (two flush steps): the parameters with and without
    the flush are identical."""
    p, q = parameter(), parameter()
    on, off = Adam([p], lr=0.01), Adam([q], lr=0.01, flush_subnormal=False)
    for g in [G1, G2] * 20:
        assert step(on, p, g) == step(off, q, g)
