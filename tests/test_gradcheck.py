"""Finite-difference gradient checks (minidni.gradcheck) of every layer and loss.

Each hand-written backward pass must agree with central differences of its own forward
pass to a relative error of at most 1e-6 in float64, for hypothesis-drawn batch sizes,
widths and values, on every backend. The checker itself must be able to fail: a
deliberately wrong backward pass is caught with a large error.

The hypothesis profiles in conftest.py suppress the ``function_scoped_fixture`` health
check: the ``xp`` and ``float64`` fixtures are entered once per test, not per example,
which is what we want (they only select the backend and the dtype).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from minidni import backend, layers, losses
from minidni.backend import RNG
from minidni.gradcheck import check_loss, check_module, dodge_kinks, standard_cases
from minidni.tools import cli

TOL = 1e-6  # the acceptance threshold of `minidni gradcheck`

batch_sizes = st.integers(1, 6)
widths = st.integers(1, 5)
seeds = st.integers(0, 2**32 - 1)


def values(shape, bound=3.0):
    """Float64 arrays of ``shape``, entries 0 or with 1e-2 <= |x| <= bound, by hypothesis.

    Why not any float: a central difference resolves a derivative only to about
    1e-16 |L| / 1e-6 = 1e-10 |L| (rounding in L over the step 1e-6). An input entry of,
    say, 1e-12 (hypothesis likes those) makes dL/dW = x^T dout just as tiny, so its
    "relative error" would measure rounding noise, not the backward pass. Exact zeros are
    fine: then both gradients are exactly zero.
    """
    magnitudes = st.floats(1e-2, bound)
    elements = st.one_of(st.just(0.0), magnitudes, magnitudes.map(lambda v: -v))
    return arrays(np.float64, shape, elements=elements)


def worst(errors):
    """The largest relative error of a ``check_module`` result (input and parameters)."""
    return max(errors.values())


@st.composite
def module_inputs(draw, min_batch=1, spread=False):
    """``(x, seed)``: an input (B, D) and a seed for the weights and check directions.

    ``spread=True`` (for BatchNorm) asks every feature to vary across the batch, so the
    batch variance is not (close to) zero, where 1 / sqrt(var + eps) makes the function
    so curved that central differences are no longer accurate to 1e-6.
    """
    b = draw(st.integers(min_batch, 6))
    d = draw(widths)
    x = draw(values((b, d)))
    if spread:
        assume(bool(np.all(x.std(axis=0) > 0.1)))
    return x, draw(seeds)


@pytest.mark.parametrize("bias", [True, False])
@given(data=module_inputs(), d_out=widths)
def test_linear_gradients(xp, float64, bias, data, d_out):
    """Linear: dL/dx = dout W^T, dL/dW = x^T dout, dL/db = sum_n dout_n."""
    x, seed = data
    rng = RNG(seed)
    layer = layers.Linear(x.shape[1], d_out, rng, bias=bias)
    if bias:  # a non-zero bias, so that its value matters in the forward pass
        layer.b.value = rng.normal((d_out,))
    assert worst(check_module(layer, backend.asarray(x), rng)) <= TOL


@pytest.mark.parametrize("make", [layers.ReLU, layers.Tanh, layers.Sigmoid])
@given(data=module_inputs())
def test_activation_gradients(xp, float64, make, data):
    """Element-wise activations; ReLU is checked away from its kink at 0."""
    x, seed = data
    x = dodge_kinks(backend.asarray(x))  # |x| >= 1e-3 >> the finite-difference step 1e-6
    assert worst(check_module(make(), x, RNG(seed))) <= TOL


@given(data=module_inputs(min_batch=3, spread=True))
def test_batchnorm_train_gradients(xp, float64, data):
    """BatchNorm in training mode: the batch statistics depend on every row, and the
    backward pass must include their two correction terms.

    At least 3 rows: normalising 2 rows gives +-1 whatever their values, so dL/dx is then
    only O(eps) and a relative error would measure nothing but rounding noise.
    """
    x, seed = data
    rng = RNG(seed)
    bn = layers.BatchNorm(x.shape[1])
    bn.gamma.value = rng.uniform((x.shape[1],), 0.5, 2.0)
    bn.beta.value = rng.normal((x.shape[1],))
    assert worst(check_module(bn, backend.asarray(x), rng, train=True)) <= TOL


@given(data=module_inputs())
def test_batchnorm_eval_gradients(xp, float64, data):
    """BatchNorm in evaluation mode: running statistics are constants, so it is affine."""
    x, seed = data
    rng = RNG(seed)
    d = x.shape[1]
    bn = layers.BatchNorm(d)
    bn.forward(rng.normal((8, d), 2.0) + 0.5, train=True)  # non-trivial running statistics
    bn.gamma.value = rng.uniform((d,), 0.5, 2.0)
    assert worst(check_module(bn, backend.asarray(x), rng, train=False)) <= TOL


@given(
    b=st.integers(3, 6),
    d_in=st.integers(2, 5),
    hidden=widths,
    d_out=widths,
    scale=st.floats(0.1, 3.0),
    seed=seeds,
)
def test_sequential_mlp_gradients(xp, float64, b, d_in, hidden, d_out, scale, seed):
    """Sequential(Linear, BatchNorm, ReLU, Linear): the chain rule through the layer list.

    The input is Gaussian (hypothesis draws its shape, scale and seed), not drawn entry by
    entry: BatchNorm makes its input scale- and shift-invariant, so on (nearly) degenerate
    batches, such as repeated rows, which hypothesis is good at finding, the true
    gradients shrink to O(1e-5), below what a central difference resolves. For the same
    reason B >= 3 (two normalised rows are always +-1) and D_in >= 2 (with one input
    feature the BatchNorm output does not depend on W at all).
    """
    rng = RNG(seed)
    net = layers.mlp([d_in, hidden, d_out], rng)
    x = rng.normal((b, d_in), scale)
    # The hidden ReLU sees the BatchNorm output: keep it away from the kink as well.
    bn_out = net[1].forward(net[0].forward(x)[0])[0]
    assume(float(np.min(np.abs(backend.to_numpy(bn_out)))) > 1e-3)
    assert worst(check_module(net, x, rng)) <= TOL


@given(b=batch_sizes, c=st.integers(2, 5), data=st.data())
def test_softmax_cross_entropy_gradient(xp, float64, b, c, data):
    """d/dlogits of the mean cross-entropy is (softmax - onehot) / B."""
    logits = data.draw(values((b, c), bound=5.0))
    labels = data.draw(arrays(np.int64, (b,), elements=st.integers(0, c - 1)))
    labels = backend.asarray(labels, dtype=xp.int64)
    err = check_loss(losses.softmax_cross_entropy, backend.asarray(logits), labels, RNG(0))
    assert err <= TOL


@given(b=batch_sizes, d=widths, data=st.data())
def test_mse_gradient(xp, float64, b, d, data):
    """d/dpred of (1/B) sum ||pred - target||^2 is 2 (pred - target) / B.

    Not at the minimum pred == target: there the gradient is exactly 0 and the numeric
    estimate is rounding noise (~1e-17), which the checker's absolute floor 1e-12 turns
    into a "relative error" of ~1e-5. So target = pred + offset with some entry of the
    offset at least 1e-2 in size.
    """
    pred, offset = data.draw(values((b, d))), data.draw(values((b, d)))
    assume(bool(np.any(offset != 0.0)))
    target = pred + offset
    err = check_loss(losses.mse, backend.asarray(pred), backend.asarray(target), RNG(0))
    assert err <= TOL


@given(b=batch_sizes, d=widths, data=st.data())
def test_sigmoid_bce_gradient(xp, float64, b, d, data):
    """d/dlogits of the mean binary cross-entropy is (sigmoid(x) - t) / B."""
    logits = data.draw(values((b, d), bound=5.0))
    targets = data.draw(arrays(np.float64, (b, d), elements=st.floats(0.0, 1.0)))
    err = check_loss(losses.sigmoid_bce, backend.asarray(logits), backend.asarray(targets), RNG(0))
    assert err <= TOL


@given(b=batch_sizes, t=st.integers(1, 4), d=widths, data=st.data())
def test_masked_sigmoid_bce_gradient(xp, float64, b, t, d, data):
    """With a (B, T) mask of weights, d/dlogits is mask * (sigmoid(x) - t) / B: the
    Copy tasks' loss on (B, T, D) logits."""
    logits = data.draw(values((b, t, d), bound=5.0))
    targets = data.draw(arrays(np.float64, (b, t, d), elements=st.floats(0.0, 1.0)))
    mask = backend.asarray(data.draw(arrays(np.float64, (b, t), elements=st.sampled_from([0, 1]))))
    err = check_loss(
        lambda z, y: losses.sigmoid_bce(z, y, mask),
        backend.asarray(logits),
        backend.asarray(targets),
        RNG(0),
    )
    assert err <= TOL


@given(b=batch_sizes, t=st.integers(1, 4), c=st.integers(2, 5), data=st.data())
def test_sequence_cross_entropy_gradient(xp, float64, b, t, c, data):
    """d/dlogits of the mean over batch and steps is (softmax - onehot) / (B T)."""
    logits = data.draw(values((b, t, c), bound=5.0))
    labels = data.draw(arrays(np.int64, (b, t), elements=st.integers(0, c - 1)))
    labels = backend.asarray(labels, dtype=xp.int64)
    err = check_loss(losses.sequence_cross_entropy, backend.asarray(logits), labels, RNG(0))
    assert err <= TOL


# --- the checker must be able to fail ------------------------------------------------


class DoubledInputGradLinear(layers.Linear):
    """A broken Linear: returns twice the true input gradient."""

    def backward(self, dout, cache):
        return 2.0 * super().backward(dout, cache)


class ForgetfulBiasLinear(layers.Linear):
    """A broken Linear: never accumulates the bias gradient."""

    def backward(self, dout, cache):
        xp = backend.namespace()
        self.W.grad += xp.matmul(xp.permute_dims(cache, (1, 0)), dout)
        return xp.matmul(dout, xp.permute_dims(self.W.value, (1, 0)))


def test_gradcheck_catches_a_doubled_input_gradient(xp, float64):
    """A factor-2 error in dx gives relative error |2a - a| / |2a| = 1/2, far above 1e-6."""
    rng = RNG(0)
    errors = check_module(DoubledInputGradLinear(4, 3, rng), rng.normal((5, 4)), rng)
    assert errors["x"] > 0.4
    assert errors["0.W"] <= TOL  # the parameter gradients are still right


def test_gradcheck_catches_a_missing_bias_gradient(xp, float64):
    """A bias gradient left at zero gives relative error 1 on the bias."""
    rng = RNG(0)
    errors = check_module(ForgetfulBiasLinear(4, 3, rng), rng.normal((5, 4)), rng)
    assert errors["1.b"] > 0.9
    assert errors["x"] <= TOL and errors["0.W"] <= TOL


def test_gradcheck_catches_a_wrong_loss_gradient(xp, float64):
    """A loss gradient missing its 1/B factor is caught too."""
    rng = RNG(0)

    def mse_without_batch_mean(pred, target):
        loss, dpred = losses.mse(pred, target)
        return loss, dpred * pred.shape[0]

    err = check_loss(mse_without_batch_mean, rng.normal((4, 3)), rng.normal((4, 3)), rng)
    assert err > 0.5


# --- the `minidni gradcheck` command -------------------------------------------------

FOUNDATION_ROWS = [  # every layer and loss of layers.py / losses.py (other modules add rows)
    "Linear",
    "ReLU",
    "Tanh",
    "Sigmoid",
    "BatchNorm (train)",
    "BatchNorm (eval)",
    "Sequential MLP",
    "softmax_cross_entropy",
    "mse",
    "sigmoid_bce",
    "sigmoid_bce (masked)",
    "sequence_cross_entropy",
]


def case_names():
    with backend.use_dtype("float64"):
        return [name for name, _ in standard_cases(RNG(0))]


def run_cli(name, *args):
    """Run ``minidni --backend NAME gradcheck ARGS`` in-process; restore the backend after."""
    with backend.use_backend("numpy"):
        return cli.main(["--backend", name, "gradcheck", *args])


def table_rows(out):
    """``{name: error}`` from the lines between the table header and the ``worst`` line."""
    lines = out.strip().splitlines()
    assert lines[0].startswith("backend ") and lines[-1].startswith("worst ")
    rows = {}
    for line in lines[2:-1]:
        name, err = line[:28].strip(), line[28:48]
        rows[name] = float(err)
    return rows


def test_standard_cases_cover_every_layer_and_loss():
    """The cases behind `minidni gradcheck` include every layer and loss, in this order."""
    names = case_names()
    assert [name for name in names if name in FOUNDATION_ROWS] == FOUNDATION_ROWS


@pytest.mark.parametrize("name", ["numpy", "array_api_strict"])
def test_cli_gradcheck_prints_one_row_per_case_and_passes(capsys, name):
    """`minidni gradcheck` prints a row per layer/loss, each <= 1e-6, and exits with 0."""
    assert run_cli(name) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"backend {name}, float64")
    rows = table_rows(out)
    assert list(rows) == case_names()
    assert all(0.0 <= err <= TOL for err in rows.values())
    assert "FAIL" not in out and out.strip().endswith("ok")


def test_cli_gradcheck_fails_when_the_tolerance_is_not_met(capsys):
    """With a tolerance no float can meet the command flags the rows and exits with 1."""
    assert run_cli("numpy", "--tol", "0") == 1
    out = capsys.readouterr().out
    rows = table_rows(out)
    flagged = [line for line in out.splitlines() if line.endswith("   FAIL")]
    assert len(flagged) == sum(err > 0.0 for err in rows.values()) > 0
    assert out.strip().endswith("FAILED")
