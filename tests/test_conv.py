"""Layers for feature maps (minidni.conv, minidni.pooling): finite-difference checks over
hypothesis-drawn sizes, strides and paddings on every backend, a loop-based reference
convolution, each fast path against its plain form, and the shape errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from minidni import backend
from minidni.backend import RNG, to_numpy
from minidni.conv import (
    BatchNorm2d,
    Conv2d,
    Flatten,
    conv_input_grad_col2im,
    conv_input_grad_flipped,
    out_size,
    swap_cb,
)
from minidni.gradcheck import check_module
from minidni.pooling import AvgPool2d, MaxPool2d, avg_pool_reference, max_pool_reference

TOL = 1e-6  # the acceptance threshold of `minidni gradcheck`
seeds = st.integers(0, 2**32 - 1)


@st.composite
def conv_settings(draw, max_kernel=4, strides=(1, 3)):
    """(B, C_in, H, W, F, stride, padding) with at least one output pixel (F: kernel size)."""
    F = draw(st.integers(1, max_kernel))
    stride = draw(st.integers(*strides))
    padding = draw(st.integers(0, F - 1))
    h = draw(st.integers(max(1, F - 2 * padding), 7))
    w = draw(st.integers(max(1, F - 2 * padding), 7))
    return draw(st.integers(1, 3)), draw(st.integers(1, 3)), h, w, F, stride, padding


def reference_conv(x, w, b, stride, padding):
    """The definition, one output pixel at a time (float64 NumPy)."""
    n, c, h, wd = x.shape
    c_out, _, F, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    h_out, w_out = out_size(h, F, stride, padding), out_size(wd, F, stride, padding)
    out = np.zeros((n, c_out, h_out, w_out))
    for bi in range(n):
        for o in range(c_out):
            for i in range(h_out):
                for j in range(w_out):
                    patch = xp[bi, :, i * stride : i * stride + F, j * stride : j * stride + F]
                    out[bi, o, i, j] = np.sum(patch * w[o]) + b[o]
    return out


@given(settings=conv_settings(max_kernel=5), c_out=st.integers(1, 4), seed=seeds)
def test_conv2d_forward_equals_the_loop_reference(xp, float64, settings, c_out, seed):
    b, c_in, h, w, F, stride, padding = settings
    rng = RNG(seed)
    conv = Conv2d(c_in, c_out, F, rng, stride=stride, padding=padding)
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
    """dL/dx (col2im of dout W, or the flipped-kernel convolution), dL/dW (windows^T
    dout), dL/db (sum of dout)."""
    b, c_in, h, w, F, stride, padding = settings
    rng = RNG(seed)
    conv = Conv2d(c_in, c_out, F, rng, stride=stride, padding=padding, bias=bias)
    errors = check_module(conv, rng.normal((b, c_in, h, w)), rng)
    assert max(errors.values()) <= TOL, errors


@st.composite
def pool_settings(draw):
    F = draw(st.integers(1, 3))
    stride = draw(st.integers(1, 3))
    padding = draw(st.integers(0, F // 2))
    h = draw(st.integers(max(1, F - 2 * padding), 7))
    w = draw(st.integers(max(1, F - 2 * padding), 7))
    return draw(st.integers(1, 3)), draw(st.integers(1, 3)), h, w, F, stride, padding


def window_gap(x: np.ndarray, F: int, stride: int, padding: int) -> float:
    """The smallest gap between the largest and second-largest entry of any window."""
    xp = np.pad(
        x, ((0, 0), (0, 0), (padding, padding), (padding, padding)), constant_values=-np.inf
    )
    h_out = out_size(x.shape[2], F, stride, padding)
    w_out = out_size(x.shape[3], F, stride, padding)
    gap = np.inf
    for i in range(h_out):
        for j in range(w_out):
            win = xp[:, :, i * stride : i * stride + F, j * stride : j * stride + F]
            top = np.sort(win.reshape(*win.shape[:2], -1), axis=-1)
            if F * F > 1:
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
    b, c, h, w, F, stride, padding = settings
    rng = RNG(seed)
    x = rng.normal((b, c, h, w))
    assume(window_gap(to_numpy(x), F, stride, padding) > 1e-3)
    errors = check_module(MaxPool2d(F, stride, padding), x, rng)
    assert max(errors.values()) <= TOL, errors


@given(settings=pool_settings(), seed=seeds)
def test_avgpool2d_gradients(xp, float64, settings, seed):
    b, c, h, w, F, stride, padding = settings
    rng = RNG(seed)
    errors = check_module(AvgPool2d(F, stride, padding), rng.normal((b, c, h, w)), rng)
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


# --- each fast path equals its plain form ---------------------------------------------


@given(settings=conv_settings(max_kernel=5, strides=(1, 1)), c_out=st.integers(1, 4), seed=seeds)
def test_flipped_kernel_input_gradient_equals_col2im(xp, float64, settings, c_out, seed):
    """Stride 1: dL/dx as the convolution of dout with the flipped kernel equals the plain
    col2im(W^T D), on random shapes, kernel sizes and paddings (float64, to rounding)."""
    b, c_in, h, w, F, _, padding = settings
    rng = RNG(seed)
    kernel = rng.normal((c_out, c_in, F, F))
    d = rng.normal((c_out, b, out_size(h, F, 1, padding), out_size(w, F, 1, padding)))
    fast = conv_input_grad_flipped(kernel, d, padding)
    plain = conv_input_grad_col2im(kernel, d, (c_in, b, h, w), 1, padding)
    assert tuple(fast.shape) == (c_in, b, h, w)
    np.testing.assert_allclose(to_numpy(fast), to_numpy(plain), rtol=1e-12, atol=1e-12)


@given(settings=conv_settings(max_kernel=5), c_out=st.integers(1, 4), seed=seeds)
def test_conv2d_gradients_equal_the_plain_matrix_forms(xp, float64, settings, c_out, seed):
    """Whichever path Conv2d.backward takes (flipped kernel for stride 1 and C_out <= C_in,
    col2im otherwise), dx = col2im(W^T D), and dW = D X^T, db = sum of D, with X the
    windows and D dout as (C_out, N): written out here with the loop of the forward
    reference, one output pixel at a time."""
    b, c_in, h, w, F, stride, padding = settings
    rng = RNG(seed)
    conv = Conv2d(c_in, c_out, F, rng, stride=stride, padding=padding)
    x = rng.normal((b, c_in, h, w))
    out, cache = conv.forward(x)
    dout = rng.normal(tuple(out.shape))
    dx = conv.backward(dout, cache)
    plain = conv_input_grad_col2im(conv.W.value, swap_cb(dout), (c_in, b, h, w), stride, padding)
    np.testing.assert_allclose(to_numpy(dx), to_numpy(swap_cb(plain)), rtol=1e-12, atol=1e-12)
    xn, dn = to_numpy(x), to_numpy(dout)
    x_pad = np.pad(xn, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    dw = np.zeros((c_out, c_in, F, F))
    for i in range(dn.shape[2]):
        for j in range(dn.shape[3]):
            patch = x_pad[:, :, i * stride : i * stride + F, j * stride : j * stride + F]
            dw += np.einsum("bo,bcuv->ocuv", dn[:, :, i, j], patch)
    np.testing.assert_allclose(to_numpy(conv.W.grad), dw, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(to_numpy(conv.b.grad), dn.sum(axis=(0, 2, 3)), rtol=1e-12)


@pytest.mark.parametrize("ties", [False, True])
@given(settings=pool_settings(), seed=seeds)
def test_maxpool2d_equals_the_gathered_windows_exactly(xp, settings, seed, ties):
    """MaxPool2d (a running maximum over the offsets, and the winning offset beside it)
    equals the plain form (every window gathered, first arg-max, col2im of the one-hot
    mask) bit for bit, forward and backward; with ties (small integers, float32) the
    gradient goes to the first arg-max in both."""
    b, c, h, w, F, stride, padding = settings
    rng = RNG(seed)
    x = rng.normal((b, c, h, w))
    if ties:
        x = backend.namespace().round(x)  # values in {..., -1, 0, 1, ...}: many ties
    pool = MaxPool2d(F, stride, padding)
    out, cache = pool.forward(x)
    dout = rng.normal(tuple(out.shape))
    dx = pool.backward(dout, cache)
    out_ref, dx_ref = max_pool_reference(x, dout, F, stride, padding)
    np.testing.assert_array_equal(to_numpy(out), to_numpy(out_ref))
    np.testing.assert_array_equal(to_numpy(dx), to_numpy(dx_ref))


@given(settings=pool_settings(), seed=seeds)
def test_avgpool2d_equals_the_gathered_windows(xp, settings, seed):
    """AvgPool2d (a running sum over the offsets, then one division) equals the mean over
    the gathered windows (float32): the backward pass bit for bit (the same additions in
    the same order); the forward pass to rounding, because NumPy's mean adds the F*F
    entries of a window in another order when the map has very few output pixels (at
    the CNN's shapes the two agree bit for bit)."""
    b, c, h, w, F, stride, padding = settings
    rng = RNG(seed)
    x = rng.normal((b, c, h, w))
    pool = AvgPool2d(F, stride, padding)
    out, cache = pool.forward(x)
    dout = rng.normal(tuple(out.shape))
    dx = pool.backward(dout, cache)
    out_ref, dx_ref = avg_pool_reference(x, dout, F, stride, padding)
    np.testing.assert_allclose(to_numpy(out), to_numpy(out_ref), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(to_numpy(dx), to_numpy(dx_ref))


def test_avgpool2d_forward_is_the_mean_bit_for_bit_at_the_cnns_shapes(xp):
    """At map sizes like the CNN's (3x3, stride 2, padding 1 on 14x14 and 7x7 maps), the
    running sum and NumPy's mean over the gathered windows add in the same order."""
    rng = RNG(7)
    for size in (14, 7):
        x = rng.normal((8, 4, size, size))
        out, _ = AvgPool2d(3, 2, 1).forward(x)
        out_ref, _ = avg_pool_reference(x, out, 3, 2, 1)
        np.testing.assert_array_equal(to_numpy(out), to_numpy(out_ref))


def test_conv2d_evaluates_large_batches_in_pieces_with_the_same_numbers(xp):
    """Evaluation (train=False) runs a batch larger than EVAL_BATCH in pieces, keeping no
    windows: the output is bit for bit the one-piece output, and a backward pass from
    that cache (which rebuilds the windows) gives the same gradients."""
    rng = RNG(3)
    x, dout = rng.normal((7, 3, 6, 5)), rng.normal((7, 4, 6, 5))
    results = []
    for train in (True, False):
        conv = Conv2d(3, 4, 3, RNG(1), padding=1)
        conv.EVAL_BATCH = 2  # pieces of 2, 2, 2 and 1 maps
        out, cache = conv.forward(x, train=train)
        assert (cache[0] is None) == (not train)
        dx = conv.backward(dout, cache)
        results.append([to_numpy(a) for a in (out, dx, conv.W.grad, conv.b.grad)])
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)
