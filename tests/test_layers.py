"""Layers, initialisers and losses (minidni.layers, minidni.init, minidni.losses) by value.

The gradient checks live in test_gradcheck.py; here each forward pass is compared with
the same formula written out in plain NumPy, and the layer contract is pinned down:
gradients accumulate, BatchNorm's two modes, stable activations and losses, and shape
errors that say which layer and which shapes.
"""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest

from minidni import backend
from minidni.backend import RNG, asarray, to_numpy
from minidni.init import INITS, init_weight
from minidni.layers import BatchNorm, Linear, ReLU, Sigmoid, Tanh, mlp
from minidni.losses import (
    error_rate,
    mse,
    sequence_cross_entropy,
    sigmoid_bce,
    softmax_cross_entropy,
)

X = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, -1.5]])  # (B=2, D=3)


def labels(values):
    return asarray(np.array(values), dtype=backend.namespace().int64)


# --- Linear --------------------------------------------------------------------------


def make_linear(rng, d_in=3, d_out=2, bias=True):
    """A Linear with a non-zero bias, so that forgetting it would show."""
    layer = Linear(d_in, d_out, rng, bias=bias)
    if bias:
        layer.b.value = rng.normal((d_out,))
    return layer


def test_linear_forward_is_x_at_w_plus_b(xp, float64):
    """out = x @ W + b, the bias broadcast over the batch."""
    layer = make_linear(RNG(0))
    out, _ = layer.forward(asarray(X))
    w, b = to_numpy(layer.W.value), to_numpy(layer.b.value)
    np.testing.assert_allclose(to_numpy(out), X @ w + b, rtol=1e-12)


def test_linear_without_bias_has_only_w(xp, float64):
    """bias=False: out = x @ W and W is the only parameter."""
    layer = Linear(3, 2, RNG(0), bias=False)
    out, _ = layer.forward(asarray(X))
    assert layer.parameters() == [layer.W]
    np.testing.assert_allclose(to_numpy(out), X @ to_numpy(layer.W.value), rtol=1e-12)


def test_linear_backward_values(xp, float64):
    """dx = dout W^T, dW = x^T dout, db = column sums of dout."""
    rng = RNG(1)
    layer = make_linear(rng)
    _, cache = layer.forward(asarray(X))
    dout = np.array([[1.0, -1.0], [0.5, 2.0]])
    dx = layer.backward(asarray(dout), cache)
    w = to_numpy(layer.W.value)
    np.testing.assert_allclose(to_numpy(dx), dout @ w.T, rtol=1e-12)
    np.testing.assert_allclose(to_numpy(layer.W.grad), X.T @ dout, rtol=1e-12)
    np.testing.assert_allclose(to_numpy(layer.b.grad), dout.sum(axis=0), rtol=1e-12)


def test_first_linear_skips_the_input_gradient_only(xp, float64):
    """input_grad=False (a first layer): backward returns None, and W, b get the same
    gradients as with the input gradient."""
    full, first = make_linear(RNG(1)), make_linear(RNG(1))
    first.input_grad = False
    dout = asarray(np.array([[1.0, -1.0], [0.5, 2.0]]))
    assert full.backward(dout, full.forward(asarray(X))[1]) is not None
    assert first.backward(dout, first.forward(asarray(X))[1]) is None
    for p, q in zip(full.parameters(), first.parameters(), strict=True):
        np.testing.assert_array_equal(to_numpy(p.grad), to_numpy(q.grad))


def test_mlp_without_input_gradient_returns_none_with_the_same_gradients(xp, float64):
    full, first = mlp([3, 4, 2], RNG(0)), mlp([3, 4, 2], RNG(0), input_grad=False)
    assert [layer.input_grad for layer in first.layers[::3]] == [False, True]
    dout = asarray(np.array([[1.0, -1.0], [0.5, 2.0]]))
    assert full.backward(dout, full.forward(asarray(X))[1]) is not None
    assert first.backward(dout, first.forward(asarray(X))[1]) is None
    for p, q in zip(full.parameters(), first.parameters(), strict=True):
        np.testing.assert_array_equal(to_numpy(p.grad), to_numpy(q.grad))


def test_backward_accumulates_and_zero_grad_resets(xp, float64):
    """Two backward calls add up (a layer used twice gets the sum); zero_grad clears."""
    layer = make_linear(RNG(2))
    _, cache = layer.forward(asarray(X))
    dout = asarray(np.array([[1.0, -1.0], [0.5, 2.0]]))
    layer.backward(dout, cache)
    once = [to_numpy(p.grad).copy() for p in layer.parameters()]
    assert all(np.any(g != 0) for g in once)
    layer.backward(dout, cache)
    for p, g in zip(layer.parameters(), once):
        np.testing.assert_allclose(to_numpy(p.grad), 2 * g, rtol=1e-12)
    layer.zero_grad()
    for p in layer.parameters():
        assert np.all(to_numpy(p.grad) == 0.0) and p.grad.shape == p.value.shape


def test_parameters_are_in_a_fixed_order(xp):
    """A Sequential lists its layers' parameters in layer order, with their names."""
    net = mlp([4, 5, 3], RNG(0))  # Linear(bias=False), BatchNorm, ReLU, Linear
    assert [p.name for p in net.parameters()] == ["W", "gamma", "beta", "W", "b"]
    assert [p.shape for p in net.parameters()] == [(4, 5), (5,), (5,), (5, 3), (3,)]


# --- BatchNorm -----------------------------------------------------------------------


def batch(rng, n=32, d=4):
    """A batch whose features have clearly non-zero means and non-unit variances."""
    return to_numpy(rng.normal((n, d))) * np.array([1.0, 2.0, 0.5, 3.0])[:d] + 1.5


def test_batchnorm_train_normalises_with_batch_statistics(xp, float64):
    """Train mode, gamma=1, beta=0: every feature of the output has mean 0 and variance
    var / (var + eps) ~ 1 over the batch."""
    x = batch(RNG(0))
    bn = BatchNorm(4)
    out = to_numpy(bn.forward(asarray(x), train=True)[0])
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-12)
    var = x.var(axis=0)
    np.testing.assert_allclose(out.var(axis=0), var / (var + bn.eps), rtol=1e-10)
    np.testing.assert_allclose(out.var(axis=0), 1.0, atol=1e-4)


def test_batchnorm_train_updates_running_statistics(xp, float64):
    """running <- (1 - m) running + m batch, with the unbiased variance n / (n - 1)."""
    rng = RNG(1)
    bn = BatchNorm(4, momentum=0.1)
    mean, var = np.zeros(4), np.ones(4)
    for _ in range(3):
        x = batch(rng)
        bn.forward(asarray(x), train=True)
        mean = 0.9 * mean + 0.1 * x.mean(axis=0)
        var = 0.9 * var + 0.1 * x.var(axis=0, ddof=1)
    np.testing.assert_allclose(to_numpy(bn.running_mean), mean, rtol=1e-12)
    np.testing.assert_allclose(to_numpy(bn.running_var), var, rtol=1e-12)


def trained_batchnorm(rng):
    """A BatchNorm after two training batches, with non-trivial gamma and beta."""
    bn = BatchNorm(4)
    for _ in range(2):
        bn.forward(asarray(batch(rng)), train=True)
    bn.gamma.value = asarray(np.array([1.0, 2.0, 0.5, -1.0]))
    bn.beta.value = asarray(np.array([0.0, 1.0, -1.0, 0.25]))
    return bn


def test_batchnorm_eval_uses_running_statistics(xp, float64):
    """Eval mode: gamma (x - running_mean) / sqrt(running_var + eps) + beta, and the
    running statistics stay as they are."""
    rng = RNG(2)
    bn = trained_batchnorm(rng)
    mean, var = to_numpy(bn.running_mean).copy(), to_numpy(bn.running_var).copy()
    x = batch(rng, n=5)
    out = to_numpy(bn.forward(asarray(x), train=False)[0])
    expected = to_numpy(bn.gamma.value) * (x - mean) / np.sqrt(var + bn.eps)
    expected += to_numpy(bn.beta.value)
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    np.testing.assert_array_equal(to_numpy(bn.running_mean), mean)
    np.testing.assert_array_equal(to_numpy(bn.running_var), var)


def batchnorm_backward_staged(x, gamma, dout, eps):
    """BatchNorm's backward pass through its computational graph, one node at a time
    (CS231n's ``batchnorm_backward``): the plain form the layer's compact formula is
    checked against. Plain NumPy, (B, D)."""
    n = x.shape[0]
    mu = x.mean(axis=0)
    xmu = x - mu
    var = (xmu**2).mean(axis=0)
    sqrtvar = np.sqrt(var + eps)
    ivar = 1.0 / sqrtvar
    xhat = xmu * ivar
    dgamma, dbeta = (dout * xhat).sum(axis=0), dout.sum(axis=0)
    dxhat = dout * gamma
    divar = (dxhat * xmu).sum(axis=0)
    dxmu1 = dxhat * ivar
    dsqrtvar = -divar / sqrtvar**2
    dvar = 0.5 * dsqrtvar / np.sqrt(var + eps)
    dsq = np.ones_like(x) * dvar / n
    dxmu2 = 2 * xmu * dsq
    dx1 = dxmu1 + dxmu2
    dmu = -(dx1).sum(axis=0)
    dx2 = np.ones_like(x) * dmu / n
    return dx1 + dx2, dgamma, dbeta


@pytest.mark.parametrize("n, d", [(2, 1), (5, 3), (64, 7)])
def test_batchnorm_backward_equals_the_staged_graph(xp, float64, n, d):
    """dx = gamma inv_std (dout - mean(dout) - xhat mean(dout xhat)), dgamma, dbeta equal
    the node-by-node backward pass through mean, variance and normalisation."""
    rng = RNG(n + d)
    x, dout = to_numpy(rng.normal((n, d))) * 3.0 + 1.0, to_numpy(rng.normal((n, d)))
    bn = BatchNorm(d)
    bn.gamma.value = rng.uniform((d,), 0.5, 2.0)
    _, cache = bn.forward(asarray(x), train=True)
    dx = bn.backward(asarray(dout), cache)
    dx_ref, dgamma_ref, dbeta_ref = batchnorm_backward_staged(
        x, to_numpy(bn.gamma.value), dout, bn.eps
    )
    np.testing.assert_allclose(to_numpy(dx), dx_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(to_numpy(bn.gamma.grad), dgamma_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(to_numpy(bn.beta.grad), dbeta_ref, rtol=1e-12, atol=1e-12)


def test_batchnorm_eval_output_of_a_row_ignores_the_rest_of_the_batch(xp, float64):
    """In eval mode each example is normalised on its own; in train mode it is not."""
    rng = RNG(3)
    bn = trained_batchnorm(rng)
    x = batch(rng, n=6)
    alone = to_numpy(bn.forward(asarray(x[:1]), train=False)[0])
    in_batch = to_numpy(bn.forward(asarray(x), train=False)[0])[:1]
    np.testing.assert_allclose(alone, in_batch, rtol=1e-12)
    other = np.concatenate([x[:1], batch(rng, n=5)])
    train_a = to_numpy(bn.forward(asarray(x), train=True)[0])[:1]
    train_b = to_numpy(bn.forward(asarray(other), train=True)[0])[:1]
    assert not np.allclose(train_a, train_b)


# --- activations ---------------------------------------------------------------------

ACTIVATION_X = np.array([[-3.0, -0.5, 0.0], [0.25, 1.0, 4.0]])


@pytest.mark.parametrize(
    "make, formula",
    [
        (ReLU, lambda x: np.maximum(x, 0.0)),
        (Tanh, np.tanh),
        (Sigmoid, lambda x: 1.0 / (1.0 + np.exp(-x))),
    ],
)
def test_activation_values(xp, float64, make, formula):
    """ReLU, Tanh and Sigmoid agree with their textbook formulas, shape kept."""
    out, _ = make().forward(asarray(ACTIVATION_X))
    assert tuple(out.shape) == ACTIVATION_X.shape
    np.testing.assert_allclose(to_numpy(out), formula(ACTIVATION_X), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    "make, local_grad",
    [
        (ReLU, lambda x: (x > 0).astype(float)),
        (Tanh, lambda x: 1.0 - np.tanh(x) ** 2),
        (Sigmoid, lambda x: np.exp(-x) / (1.0 + np.exp(-x)) ** 2),
    ],
)
def test_activation_backward_is_dout_times_local_gradient(xp, float64, make, local_grad):
    """dx = dout * f'(x), element by element."""
    layer = make()
    _, cache = layer.forward(asarray(ACTIVATION_X))
    dout = np.arange(1.0, 7.0).reshape(2, 3)
    dx = to_numpy(layer.backward(asarray(dout), cache))
    np.testing.assert_allclose(dx, dout * local_grad(ACTIVATION_X), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigmoid_is_stable_for_huge_inputs(xp, dtype):
    """sigmoid(+-1000) is exactly 1 and 0 with no overflow warning; its gradient is 0."""
    with backend.use_dtype(dtype), warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow in exp would be a RuntimeWarning
        layer = Sigmoid()
        out, cache = layer.forward(asarray(np.array([[-1000.0, 1000.0]])))
        dx = layer.backward(asarray(np.array([[1.0, 1.0]])), cache)
    np.testing.assert_array_equal(to_numpy(out), [[0.0, 1.0]])
    np.testing.assert_array_equal(to_numpy(dx), [[0.0, 0.0]])


# --- shape errors --------------------------------------------------------------------


def raises_naming(*parts):
    """pytest.raises(ValueError) whose message contains every one of ``parts``."""
    return pytest.raises(ValueError, match="".join(f"(?=.*{re.escape(p)})" for p in parts))


def test_linear_rejects_a_wrong_input_width(xp):
    """Linear(4, 3) fed width 5: the message names the layer and both shapes."""
    layer = Linear(4, 3, RNG(0))
    with raises_naming("Linear(4, 3)", "(B, 4)", "(2, 5)"):
        layer.forward(asarray(np.zeros((2, 5))))


def test_linear_backward_rejects_a_wrong_dout_shape(xp):
    """dout must be (B, D_out) for the B of the cached forward pass."""
    layer = Linear(4, 3, RNG(0))
    _, cache = layer.forward(asarray(np.zeros((2, 4))))
    with raises_naming("Linear(4, 3)", "dout", "(2, 3)", "(2, 4)"):
        layer.backward(asarray(np.zeros((2, 4))), cache)
    with raises_naming("Linear(4, 3)", "dout", "(2, 3)", "(5, 3)"):
        layer.backward(asarray(np.zeros((5, 3))), cache)


def test_batchnorm_rejects_a_wrong_width(xp):
    """BatchNorm(3) fed width 4, and a dout of the wrong shape."""
    bn = BatchNorm(3)
    with raises_naming("BatchNorm(3)", "(B, 3)", "(2, 4)"):
        bn.forward(asarray(np.zeros((2, 4))))
    _, cache = bn.forward(asarray(np.arange(6.0).reshape(2, 3)))
    with raises_naming("BatchNorm(3)", "dout", "(2, 3)", "(3, 2)"):
        bn.backward(asarray(np.zeros((3, 2))), cache)


def test_activation_backward_rejects_a_wrong_dout_shape(xp):
    """Element-wise layers need dout of the input's shape."""
    layer = Tanh()
    _, cache = layer.forward(asarray(np.zeros((2, 3))))
    with raises_naming("Tanh()", "(2, 3)", "(3, 2)"):
        layer.backward(asarray(np.zeros((3, 2))), cache)


def test_a_one_dimensional_input_is_rejected(xp):
    """A missing batch axis is a shape error too, not a silent broadcast."""
    with raises_naming("Linear(4, 3)", "(B, 4)", "(4,)"):
        Linear(4, 3, RNG(0)).forward(asarray(np.zeros(4)))


# --- initialisers --------------------------------------------------------------------

FAN_IN, FAN_OUT = 400, 300  # 120000 draws: sample moments are accurate to ~0.3 %


@pytest.mark.parametrize("kind", INITS)
def test_init_shape_and_dtype(xp, kind):
    """Every initialiser gives a (fan_in, fan_out) matrix in the default dtype."""
    w = init_weight(RNG(0), 5, 7, kind)
    assert tuple(w.shape) == (5, 7) and w.dtype == backend.dtype()


@pytest.mark.parametrize(
    "kind, std",
    [("he", math.sqrt(2.0 / FAN_IN)), ("lecun", math.sqrt(1.0 / FAN_IN))],
)
def test_gaussian_init_scale(xp, kind, std):
    """He: N(0, 2/fan_in); LeCun: N(0, 1/fan_in). Sample mean and std lie within 5
    standard errors (std/sqrt(n) for the mean, about std/sqrt(2n) for the std)."""
    w = to_numpy(init_weight(RNG(0), FAN_IN, FAN_OUT, kind)).astype(np.float64)
    n = w.size
    assert abs(w.mean()) < 5 * std / math.sqrt(n)
    assert abs(w.std() - std) < 5 * std / math.sqrt(2 * n)


def test_xavier_init_range_and_scale(xp):
    """Xavier: U(-a, a) with a = sqrt(6 / (fan_in + fan_out)), so std a / sqrt(3)."""
    a = math.sqrt(6.0 / (FAN_IN + FAN_OUT))
    w = to_numpy(init_weight(RNG(0), FAN_IN, FAN_OUT, "xavier")).astype(np.float64)
    assert w.min() >= -a and w.max() <= a
    std = a / math.sqrt(3.0)
    # The sample variance of U(-a, a) has std (2 a^2 / sqrt(45)) / sqrt(n): 5 of those.
    assert abs(w.var() - std**2) < 5 * (2 * a**2 / math.sqrt(45)) / math.sqrt(w.size)


def test_zeros_init_and_unknown_init(xp):
    """ "zeros" is all zero; an unknown name raises a ValueError listing the valid ones."""
    assert np.all(to_numpy(init_weight(RNG(0), 3, 4, "zeros")) == 0.0)
    with raises_naming("glorot", *INITS):
        init_weight(RNG(0), 3, 4, "glorot")


def test_linear_uses_its_initialiser_and_a_zero_bias(xp):
    """Linear(init="zeros") has W = 0; the bias always starts at 0."""
    layer = Linear(3, 4, RNG(0), init="zeros")
    assert np.all(to_numpy(layer.W.value) == 0.0)
    assert np.all(to_numpy(layer.b.value) == 0.0)


# --- losses --------------------------------------------------------------------------


def test_softmax_cross_entropy_by_hand(xp, float64):
    """Loss = mean_n -log softmax(logits_n)[label_n]; gradient (softmax - onehot) / B."""
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    loss, grad = softmax_cross_entropy(asarray(logits), labels([2, 1]))
    z1 = math.exp(1) + math.exp(2) + math.exp(3)
    row1 = -math.log(math.exp(3) / z1)
    row2 = -math.log(1 / 3)  # uniform over 3 classes
    assert backend.to_float(loss) == pytest.approx((row1 + row2) / 2, rel=1e-12)
    p1 = [math.exp(1) / z1, math.exp(2) / z1, math.exp(3) / z1]
    expected = np.array([[p1[0], p1[1], p1[2] - 1], [1 / 3, 1 / 3 - 1, 1 / 3]]) / 2
    np.testing.assert_allclose(to_numpy(grad), expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_cross_entropy_is_stable_for_huge_logits(xp, dtype):
    """Logits of 1e4: no overflow; a confident right answer costs 0, a wrong one 1e4."""
    logits = np.array([[1e4, 0.0, -1e4], [1e4, 0.0, -1e4]])
    with backend.use_dtype(dtype), warnings.catch_warnings():
        warnings.simplefilter("error")
        right, grad_right = softmax_cross_entropy(asarray(logits[:1]), labels([0]))
        wrong, grad_wrong = softmax_cross_entropy(asarray(logits[1:]), labels([1]))
    assert backend.to_float(right) == 0.0
    assert backend.to_float(wrong) == pytest.approx(1e4, rel=1e-6)
    np.testing.assert_array_equal(to_numpy(grad_right), [[0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(to_numpy(grad_wrong), [[1.0, -1.0, 0.0]])


def test_mse_by_hand(xp, float64):
    """(1/B) sum of squared differences; gradient 2 (pred - target) / B."""
    pred = np.array([[1.0, 2.0], [3.0, 4.0]])
    target = np.array([[0.0, 2.0], [1.0, 1.0]])  # differences 1, 0, 2, 3
    loss, grad = mse(asarray(pred), asarray(target))
    assert backend.to_float(loss) == (1 + 0 + 4 + 9) / 2
    np.testing.assert_array_equal(to_numpy(grad), [[1.0, 0.0], [2.0, 3.0]])  # 2 diff / 2


def test_sigmoid_bce_by_hand(xp, float64):
    """(1/B) sum -[t log s + (1 - t) log(1 - s)], s = sigmoid(x); gradient (s - t) / B."""
    logits = np.array([[0.0, 2.0], [-1.0, 0.5]])
    targets = np.array([[1.0, 0.25], [0.0, 1.0]])
    loss, grad = sigmoid_bce(asarray(logits), asarray(targets))
    total = 0.0
    for x, t in zip(logits.ravel(), targets.ravel()):
        s = 1 / (1 + math.exp(-x))
        total += -(t * math.log(s) + (1 - t) * math.log(1 - s))
    assert backend.to_float(loss) == pytest.approx(total / 2, rel=1e-12)
    s = 1 / (1 + np.exp(-logits))
    np.testing.assert_allclose(to_numpy(grad), (s - targets) / 2, rtol=1e-12)


def test_sigmoid_bce_is_stable_for_huge_logits(xp):
    """Logits +-1000 with the wrong targets cost 1000 each, with no overflow."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, grad = sigmoid_bce(asarray(np.array([[1000.0, -1000.0]])), asarray([[0.0, 1.0]]))
    assert backend.to_float(loss) == 2000.0
    np.testing.assert_array_equal(to_numpy(grad), [[1.0, -1.0]])


def test_masked_sigmoid_bce_is_the_plain_formula(xp, float64):
    """On (B, T, D) logits with a (B, T) mask m: loss (1/B) sum_{n,t,d} m_nt *
    -[y log s + (1 - y) log(1 - s)], gradient m (s - y) / B, s = sigmoid(x); without a
    mask, bitwise the all-ones mask, and the unmasked loss of the (B, T * D) flattening."""
    rng = np.random.default_rng(0)
    z, y = rng.normal(size=(3, 4, 2)), rng.uniform(size=(3, 4, 2))
    m = np.array([[1.0, 1.0, 0.0, 0.0], [0.0, 1.0, 1.0, 1.0], [1.0, 0.0, 1.0, 0.0]])
    loss, grad = sigmoid_bce(asarray(z), asarray(y), asarray(m))
    s = 1 / (1 + np.exp(-z))
    plain = -(m[:, :, None] * (y * np.log(s) + (1 - y) * np.log(1 - s))).sum() / 3
    assert backend.to_float(loss) == pytest.approx(plain, rel=1e-12)
    np.testing.assert_allclose(to_numpy(grad), m[:, :, None] * (s - y) / 3, rtol=1e-12)
    unmasked = sigmoid_bce(asarray(z), asarray(y))
    ones = sigmoid_bce(asarray(z), asarray(y), asarray(np.ones((3, 4))))
    flat = sigmoid_bce(asarray(z.reshape(3, 8)), asarray(y.reshape(3, 8)))
    assert backend.to_float(unmasked[0]) == backend.to_float(ones[0])
    np.testing.assert_array_equal(to_numpy(unmasked[1]), to_numpy(ones[1]))
    assert backend.to_float(unmasked[0]) == pytest.approx(backend.to_float(flat[0]), rel=1e-12)
    np.testing.assert_array_equal(to_numpy(unmasked[1]).reshape(3, 8), to_numpy(flat[1]))


def test_sequence_cross_entropy_is_the_plain_formula(xp, float64):
    """Logits (B, T, C), labels (B, T): loss mean_{n,t} -log softmax(logits_nt)[label_nt],
    gradient (softmax - onehot) / (B T); the same numbers as softmax_cross_entropy on the
    B*T steps as rows."""
    rng = np.random.default_rng(1)
    z, y = rng.normal(size=(2, 3, 4)), rng.integers(0, 4, size=(2, 3))
    loss, grad = sequence_cross_entropy(asarray(z), labels(y))
    p = np.exp(z) / np.exp(z).sum(axis=2, keepdims=True)
    plain = -np.log(np.take_along_axis(p, y[:, :, None], axis=2)).mean()
    assert backend.to_float(loss) == pytest.approx(plain, rel=1e-12)
    onehot = np.eye(4)[y]  # (B, T, C)
    np.testing.assert_allclose(to_numpy(grad), (p - onehot) / 6, rtol=1e-12, atol=1e-15)
    rows = softmax_cross_entropy(asarray(z.reshape(6, 4)), labels(y.reshape(6)))
    assert backend.to_float(loss) == backend.to_float(rows[0])
    np.testing.assert_array_equal(to_numpy(grad).reshape(6, 4), to_numpy(rows[1]))


def test_losses_reject_mismatched_shapes(xp):
    """A prediction/target shape mismatch names the loss and both shapes."""
    with raises_naming("mse", "(2, 3)", "(3, 2)"):
        mse(asarray(np.zeros((2, 3))), asarray(np.zeros((3, 2))))
    with raises_naming("sigmoid_bce", "(2, 3)", "(2, 4)"):
        sigmoid_bce(asarray(np.zeros((2, 3))), asarray(np.zeros((2, 4))))
    with raises_naming("softmax_cross_entropy", "(2, 3)", "(3,)"):
        softmax_cross_entropy(asarray(np.zeros((2, 3))), labels([0, 1, 2]))
    with raises_naming("sequence_cross_entropy", "(2, 3, 4)", "(2, 4)"):
        sequence_cross_entropy(asarray(np.zeros((2, 3, 4))), labels(np.zeros((2, 4), int)))
    with raises_naming("sigmoid_bce", "mask", "(2, 4)", "(2, 3)"):
        sigmoid_bce(
            asarray(np.zeros((2, 3, 5))), asarray(np.zeros((2, 3, 5))), asarray(np.ones((2, 4)))
        )


def test_error_rate(xp):
    """The fraction of rows whose arg-max logit is not the label."""
    logits = np.array([[5.0, 1.0, 0.0], [0.0, 1.0, 2.0], [0.0, 3.0, 1.0], [1.0, 2.0, 0.0]])
    # arg-max per row: 0, 2, 1, 1
    assert error_rate(asarray(logits), labels([0, 1, 1, 0])) == 0.5
    assert error_rate(asarray(logits), labels([0, 2, 1, 1])) == 0.0
    assert error_rate(asarray(logits), labels([1, 0, 0, 0])) == 1.0
