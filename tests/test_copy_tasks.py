"""Copy and Repeat Copy (Graves et al. 2014): layout, masks, and the bit-error metric."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minidni import backend
from minidni.data import bits_error, copy_batch, repeat_copy_batch

batch = st.integers(1, 6)
length = st.integers(1, 12)
bits = st.integers(1, 9)
seed = st.integers(0, 2**16)


@given(b=batch, n=length, d=bits, s=seed)
def test_copy_layout(b, n, d, s):
    x, y, m = copy_batch(np.random.default_rng(s), b, n, bits=d)
    steps = 2 * n + 1
    assert x.shape == (b, steps, d + 1) and y.shape == (b, steps, d) and m.shape == (b, steps)
    assert x.dtype == y.dtype == m.dtype == np.float32
    pattern = x[:, :n, :d]
    assert set(np.unique(pattern)) <= {0.0, 1.0}
    np.testing.assert_array_equal(y[:, n + 1 :], pattern)  # the output phase is the pattern
    np.testing.assert_array_equal(y[:, : n + 1], 0)
    delimiter = np.zeros(steps)
    delimiter[n] = 1
    np.testing.assert_array_equal(x[:, :, d], np.broadcast_to(delimiter, (b, steps)))
    np.testing.assert_array_equal(x[:, n:, :d], 0)  # nothing else on the input after reading
    np.testing.assert_array_equal(m, np.broadcast_to(np.arange(steps) > n, (b, steps)))


@given(b=batch, n=length, r=st.integers(1, 5), d=bits, s=seed)
def test_repeat_copy_layout(b, n, r, d, s):
    x, y, m = repeat_copy_batch(np.random.default_rng(s), b, n, r, bits=d, max_repeats=5)
    out, end = n + 1, n + 1 + r * n
    steps = end + 1
    assert x.shape == (b, steps, d + 2) and y.shape == (b, steps, d + 1) and m.shape == (b, steps)
    pattern = x[:, :n, :d]
    for k in range(r):  # the pattern, R times over
        np.testing.assert_array_equal(y[:, out + k * n : out + (k + 1) * n, :d], pattern)
    np.testing.assert_array_equal(y[:, :out], 0)
    np.testing.assert_array_equal(y[:, end], np.eye(d + 1)[d][None].repeat(b, 0))  # end marker
    np.testing.assert_array_equal(y[:, :end, d], 0)
    np.testing.assert_array_equal(x[:, n, : d + 1], np.eye(d + 1)[d][None].repeat(b, 0))
    np.testing.assert_allclose(x[:, n, d + 1], r / 5)  # the repeat count, normalised
    x_rest = np.delete(x, n, axis=1)[:, :, d:]  # delimiter and count only on step L
    np.testing.assert_array_equal(x_rest, 0)
    np.testing.assert_array_equal(x[:, n:, :d], 0)
    np.testing.assert_array_equal(m, np.broadcast_to(np.arange(steps) > n, (b, steps)))


def test_same_seed_same_batch_and_bad_arguments():
    a = copy_batch(np.random.default_rng(3), 4, 5)
    b = copy_batch(np.random.default_rng(3), 4, 5)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    with pytest.raises(ValueError, match="repeats"):
        repeat_copy_batch(np.random.default_rng(0), 2, 3, repeats=11, max_repeats=10)
    with pytest.raises(ValueError, match="positive"):
        copy_batch(np.random.default_rng(0), 2, 0)


@given(b=batch, n=length, r=st.integers(1, 4), s=seed, repeat=st.booleans())
def test_bits_error(b, n, r, s, repeat):
    rng = np.random.default_rng(s)
    x, y, m = repeat_copy_batch(rng, b, n, r, max_repeats=4) if repeat else copy_batch(rng, b, n)
    perfect = 2 * y - 1
    noise = np.where(m[:, :, None] == 0, rng.standard_normal(y.shape), 0)  # unmasked: ignored
    assert bits_error(perfect + 10 * noise, y, m) == 0.0
    output_bits = m.sum(axis=1).mean() * y.shape[2]
    assert bits_error(-perfect, y, m) == output_bits
    one_wrong = perfect.copy()
    one_wrong[0, -1, 0] *= -1  # the last step is always an output step
    assert bits_error(one_wrong, y, m) == pytest.approx(1 / b)


def test_bits_error_on_every_backend(xp):
    x, y, m = copy_batch(np.random.default_rng(0), 3, 4)
    logits = backend.asarray(1 - 2 * y)  # every output bit wrong
    assert bits_error(logits, backend.asarray(y), backend.asarray(m)) == 4 * 8
