"""Layers for feature maps (minidni.conv, minidni.pooling): finite-difference checks over
hypothesis-drawn sizes, strides and paddings on every backend, a loop-based reference
convolution, and the shape errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from minidni import backend
from minidni.backend import RNG, to_numpy
from minidni.conv import BatchNorm2d, Conv2d, Flatten, out_size
from minidni.gradcheck import check_module
from minidni.pooling import AvgPool2d, MaxPool2d

TOL = 1e-6  # the acceptance threshold of `minidni gradcheck`
seeds = st.integers(0, 2**32 - 1)


@st.composite
def conv_settings(draw, max_k=4):
    """(B, C_in, H, W, k, stride, padding) with at least one output pixel."""
    k = draw(st.integers(1, max_k))
    stride = draw(st.integers(1, 3))
    padding = draw(st.integers(0, k - 1))
    h = draw(st.integers(max(1, k - 2 * padding), 7))
    w = draw(st.integers(max(1, k - 2 * padding), 7))
    return draw(st.integers(1, 3)), draw(st.integers(1, 3)), h, w, k, stride, padding


def reference_conv(x, w, b, stride, padding):
    """The definition, one output pixel at a time (float64 NumPy)."""
    n, c, h, wd = x.shape
    c_out, _, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    h_out, w_out = out_size(h, k, stride, padding), out_size(wd, k, stride, padding)
    out = np.zeros((n, c_out, h_out, w_out))
    for bi in range(n):
        for o in range(c_out):
            for i in range(h_out):
                for j in range(w_out):
                    patch = xp[bi, :, i * stride : i * stride + k, j * stride : j * stride + k]
                    out[bi, o, i, j] = np.sum(patch * w[o]) + b[o]
    return out


@given(settings=conv_settings(max_k=5), c_out=st.integers(1, 4), seed=seeds)
def test_conv2d_forward_equals_the_loop_reference(xp, float64, settings, c_out, seed):
    b, c_in, h, w, k, stride, padding = settings
    rng = RNG(seed)
    conv = Conv2d(c_in, c_out, k, rng, stride=stride, padding=padding)
    conv.b.value = rng.normal((c_out,))
    x = rng.normal((b, c_in, h, w))
    out, _ = conv.forward(x)
    expected = reference_conv(
        to_numpy(x), to_numpy(conv.W.value), to_numpy(conv.b.value), stride, padding
    )
    assert tuple(out.shape) == expected.shape
    np.testing.assert_allclose(to_numpy(out), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("bias", [True, False])
@given(settings=conv_settings(), c_out=st.integers(1, 3), seed=seeds)
def test_conv2d_gradients(xp, float64, bias, settings, c_out, seed):
    """dL/dx (col2im of dout W), dL/dW (windows^T dout), dL/db (sum of dout)."""
    b, c_in, h, w, k, stride, padding = settings
    rng = RNG(seed)
    conv = Conv2d(c_in, c_out, k, rng, stride=stride, padding=padding, bias=bias)
    errors = check_module(conv, rng.normal((b, c_in, h, w)), rng)
    assert max(errors.values()) <= TOL, errors


@st.composite
def pool_settings(draw):
    k = draw(st.integers(1, 3))
    stride = draw(st.integers(1, 3))
    padding = draw(st.integers(0, k // 2))
    h = draw(st.integers(max(1, k - 2 * padding), 7))
    w = draw(st.integers(max(1, k - 2 * padding), 7))
    return draw(st.integers(1, 3)), draw(st.integers(1, 3)), h, w, k, stride, padding


def window_gap(x: np.ndarray, k: int, stride: int, padding: int) -> float:
    """The smallest gap between the largest and second-largest entry of any window."""
    xp = np.pad(
        x, ((0, 0), (0, 0), (padding, padding), (padding, padding)), constant_values=-np.inf
    )
    h_out = out_size(x.shape[2], k, stride, padding)
    w_out = out_size(x.shape[3], k, stride, padding)
    gap = np.inf
    for i in range(h_out):
        for j in range(w_out):
            win = xp[:, :, i * stride : i * stride + k, j * stride : j * stride + k]
            top = np.sort(win.reshape(*win.shape[:2], -1), axis=-1)
            if k * k > 1:
                gap = min(gap, float(np.min(top[..., -1] - top[..., -2])))
    return gap


def test_first_conv2d_skips_the_input_gradient_only(xp, float64):
    """input_grad=False (the CNN's first layer reads images): backward returns None, and W
    gets the same gradient as with the input gradient; cnn_modules sets it on the first
    conv layer only."""
    from minidni.cnn import cnn_modules

    x = RNG(2).normal((2, 3, 6, 6))
    full, first = Conv2d(3, 4, 3, RNG(1), padding=1), Conv2d(3, 4, 3, RNG(1), padding=1)
    first.input_grad = False
    dout = RNG(3).normal((2, 4, 6, 6))
    assert full.backward(dout, full.forward(x)[1]) is not None
    assert first.backward(dout, first.forward(x)[1]) is None
    for p, q in zip(full.parameters(), first.parameters(), strict=True):
        np.testing.assert_array_equal(to_numpy(p.grad), to_numpy(q.grad))
    modules = cnn_modules((1, 12, 12), [2, 2], 10, RNG(0))
    assert [m.layers[0].input_grad for m in modules[:2]] == [False, True]


@given(settings=pool_settings(), seed=seeds)
def test_maxpool2d_gradients(xp, float64, settings, seed):
    """The gradient goes to each window's arg-max. Checked away from ties: a central
    difference across a tie (two window entries within 1e-6) measures a kink."""
    b, c, h, w, k, stride, padding = settings
    rng = RNG(seed)
    x = rng.normal((b, c, h, w))
    assume(window_gap(to_numpy(x), k, stride, padding) > 1e-3)
    errors = check_module(MaxPool2d(k, stride, padding), x, rng)
    assert max(errors.values()) <= TOL, errors


@given(settings=pool_settings(), seed=seeds)
def test_avgpool2d_gradients(xp, float64, settings, seed):
    b, c, h, w, k, stride, padding = settings
    rng = RNG(seed)
    errors = check_module(AvgPool2d(k, stride, padding), rng.normal((b, c, h, w)), rng)
    assert max(errors.values()) <= TOL, errors


@given(
    b=st.integers(1, 3),
    c=st.integers(1, 3),
    h=st.integers(2, 5),
    w=st.integers(2, 5),
    seed=seeds,
    train=st.booleans(),
)
def test_batchnorm2d_gradients(xp, float64, b, c, h, w, seed, train):
    """Per-channel statistics over B H W >= 4 pixels (Gaussian, so never degenerate)."""
    rng = RNG(seed)
    bn = BatchNorm2d(c)
    bn.bn.gamma.value = rng.uniform((c,), 0.5, 2.0)
    bn.bn.beta.value = rng.normal((c,))
    if not train:  # non-trivial running statistics first
        bn.forward(rng.normal((4, c, h, w), 2.0) + 0.5, train=True)
    errors = check_module(bn, rng.normal((b, c, h, w)), rng, train=train)
    assert max(errors.values()) <= TOL, errors


def test_batchnorm2d_normalises_each_channel_over_batch_and_pixels(xp):
    rng = RNG(0)
    x = rng.normal((4, 3, 5, 6), 3.0) + 2.0
    out = to_numpy(BatchNorm2d(3).forward(x)[0])
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(0, 2, 3)), 1.0, atol=1e-3)


@given(b=st.integers(1, 3), shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), seed=seeds)
def test_flatten_gradients_and_layout(xp, float64, b, shape, seed):
    rng = RNG(seed)
    x = rng.normal((b, *shape))
    out, _ = Flatten().forward(x)
    np.testing.assert_array_equal(to_numpy(out), to_numpy(x).reshape(b, -1))
    assert max(check_module(Flatten(), x, rng).values()) <= TOL


def test_pooling_values_on_a_small_map(xp):
    """3x3 windows, stride 2, padding 1 on a 4x4 map: max ignores the padding, the
    average counts it (divides by 9)."""
    x = backend.asarray(np.arange(16.0).reshape(1, 1, 4, 4))
    mx = to_numpy(MaxPool2d(3, 2, 1).forward(x)[0])[0, 0]
    av = to_numpy(AvgPool2d(3, 2, 1).forward(x)[0])[0, 0]
    np.testing.assert_array_equal(mx, [[5.0, 7.0], [13.0, 15.0]])
    np.testing.assert_allclose(
        av,
        [
            [(0 + 1 + 4 + 5) / 9, (1 + 2 + 3 + 5 + 6 + 7) / 9],
            [(4 + 5 + 8 + 9 + 12 + 13) / 9, 90 / 9],
        ],
        rtol=1e-6,
    )


def test_shape_errors_name_the_layer_and_both_shapes(xp):
    rng = RNG(0)
    conv = Conv2d(3, 4, 3, rng, padding=1)
    with pytest.raises(ValueError, match=r"Conv2d\(3, 4.*expected input of shape \(B, 3, H, W\)"):
        conv.forward(rng.normal((2, 2, 5, 5)))
    with pytest.raises(ValueError, match="expected input"):
        conv.forward(rng.normal((2, 3, 5)))
    out, cache = conv.forward(rng.normal((2, 3, 5, 5)))
    with pytest.raises(
        ValueError, match=r"expected dout of shape \(2, 4, 5, 5\), got \(2, 4, 5, 4\)"
    ):
        conv.backward(rng.normal((2, 4, 5, 4)), cache)
    with pytest.raises(ValueError, match="smaller than the kernel"):
        Conv2d(1, 1, 5, rng).forward(rng.normal((1, 1, 3, 3)))
    with pytest.raises(ValueError, match="padding"):
        Conv2d(1, 1, 3, rng, padding=3)
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3\).*\(B, 3, H, W\)"):
        BatchNorm2d(3).forward(rng.normal((2, 4, 2, 2)))
    pool = MaxPool2d(2)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        pool.forward(rng.normal((2, 3)))
    _, cache = pool.forward(rng.normal((1, 2, 4, 4)))
    with pytest.raises(ValueError, match=r"expected dout of shape \(1, 2, 2, 2\)"):
        pool.backward(rng.normal((1, 2, 4, 4)), cache)
    with pytest.raises(ValueError, match="padding"):
        AvgPool2d(2, padding=2)


def test_minidni_gradcheck_lists_the_map_layers():
    """`minidni gradcheck` checks every layer of conv.py and pooling.py."""
    from minidni.gradcheck import standard_cases

    with backend.use_dtype("float64"):
        names = [name for name, _ in standard_cases(RNG(0))]
    for layer in ("Conv2d", "MaxPool2d", "AvgPool2d", "BatchNorm2d (train)", "Flatten"):
        assert any(name.startswith(layer) for name in names), layer
