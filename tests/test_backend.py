"""The backend switch (minidni.backend): names, errors, context managers, RNG, helpers.

Library code sees one array namespace ``xp``; these tests pin down how it is chosen and
what the helpers the standard lacks (random numbers, host transfer, one-hot,
scatter-add) return, bitwise the same on every backend.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from minidni import backend
from minidni.backend import RNG, BackendError, asarray, to_numpy


def run_python(code, **env):
    """Run ``code`` in a fresh interpreter (this venv's python) with extra env vars."""
    full_env = {k: v for k, v in os.environ.items() if k != "MINIDNI_BACKEND"}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=60
    )


# --- choosing a backend --------------------------------------------------------------


def test_unknown_backend_name_lists_the_valid_ones():
    """set_backend("jax") raises ValueError naming every valid backend; nothing changes."""
    with backend.use_backend("numpy"):
        with pytest.raises(ValueError, match="'jax'") as info:
            backend.set_backend("jax")
        for name in backend.BACKENDS:
            assert name in str(info.value)
        assert backend.get_backend() == "numpy"


def test_unknown_backend_from_the_environment_variable():
    """MINIDNI_BACKEND=jax fails on first use, with the same list of valid names."""
    result = run_python("from minidni import backend; backend.namespace()", MINIDNI_BACKEND="jax")
    assert result.returncode != 0
    assert "ValueError: unknown backend 'jax'" in result.stderr
    assert "numpy, cupy, array_api_strict" in result.stderr


def test_environment_variable_selects_the_backend_and_the_default_dtype_is_float32():
    """A fresh process honours MINIDNI_BACKEND and starts in float32."""
    code = (
        "from minidni import backend; xp = backend.namespace(); "
        "print(backend.get_backend(), backend.dtype() == xp.float32, "
        "backend.RNG(0).normal((2,)).dtype == xp.float32)"
    )
    result = run_python(code, MINIDNI_BACKEND="array_api_strict")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["array_api_strict", "True", "True"]


def test_default_dtype_is_float32(xp):
    """Unless use_dtype says otherwise, arrays are float32 (the training default)."""
    assert backend.dtype() == xp.float32
    assert asarray([1.0, 2.0]).dtype == xp.float32
    assert RNG(0).normal((3,)).dtype == xp.float32


def test_cupy_without_a_gpu_names_the_gpu_extra():
    """Asking for cupy where it cannot run says how to get it: the `gpu` extra."""
    try:
        backend._load("cupy")
    except BackendError as e:
        error = e
    else:
        pytest.skip("cupy works here: there is no missing-GPU error to check")
    assert "minidni[gpu]" in str(error)
    assert "cupy" in str(error)


def test_a_failed_switch_to_cupy_keeps_the_current_backend():
    """set_backend raises before changing anything, so the caller can fall back."""
    try:
        backend._load("cupy")
    except BackendError:
        pass
    else:
        pytest.skip("cupy works here")
    with backend.use_backend("array_api_strict"):
        with pytest.raises(BackendError, match="gpu"):
            backend.set_backend("cupy")
        assert backend.get_backend() == "array_api_strict"


# --- context managers ----------------------------------------------------------------


def test_use_backend_restores_the_previous_backend():
    """Leaving a use_backend block, normally or by an exception, restores the backend."""
    with backend.use_backend("numpy") as outer:
        with backend.use_backend("array_api_strict") as inner:
            assert backend.get_backend() == "array_api_strict"
            assert backend.namespace() is inner and inner is not outer
        assert backend.get_backend() == "numpy" and backend.namespace() is outer
        with pytest.raises(KeyError):
            with backend.use_backend("array_api_strict"):
                raise KeyError("boom")
        assert backend.get_backend() == "numpy" and backend.namespace() is outer


def test_use_dtype_restores_the_previous_dtype(xp):
    """use_dtype nests and restores, also when its body raises; bad names are refused."""
    assert backend.dtype() == xp.float32
    with backend.use_dtype("float64"):
        assert backend.dtype() == xp.float64
        with backend.use_dtype("float32"):
            assert backend.dtype() == xp.float32
        assert backend.dtype() == xp.float64
    with pytest.raises(KeyError):
        with backend.use_dtype("float64"):
            raise KeyError("boom")
    assert backend.dtype() == xp.float32
    with pytest.raises(ValueError, match="float16.*float32, float64"):
        backend.set_dtype("float16")
    assert backend.dtype() == xp.float32


# --- random numbers ------------------------------------------------------------------


def draws(seed):
    """A fixed sequence of every kind of draw, as host arrays and Python values."""
    rng = RNG(seed)
    return [
        to_numpy(rng.normal((3, 4))),
        to_numpy(rng.normal((5,), std=0.1)),
        to_numpy(rng.uniform((2, 3), -1.0, 2.0)),
        [rng.bernoulli(0.5) for _ in range(16)],
        rng.permutation(10),
        to_numpy(rng.spawn().normal((4,))),
    ]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_same_seed_same_numbers_on_every_backend(dtype):
    """One seed gives bitwise the same draws on numpy and array_api_strict."""
    results = {}
    for name in ("numpy", "array_api_strict"):
        with backend.use_backend(name), backend.use_dtype(dtype):
            results[name] = draws(7)
    for a, b in zip(results["numpy"], results["array_api_strict"], strict=True):
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_rng_draws_come_from_numpy_default_rng():
    """The draws are numpy.random.default_rng(seed)'s, in the default dtype."""
    with backend.use_backend("array_api_strict"), backend.use_dtype("float64"):
        ours = RNG(3)
        normal = to_numpy(ours.normal((2, 3), std=2.0))
        uniform = to_numpy(ours.uniform((4,), -1.0, 1.0))
    reference = np.random.default_rng(3)
    np.testing.assert_array_equal(normal, reference.standard_normal((2, 3)) * 2.0)
    np.testing.assert_array_equal(uniform, reference.uniform(-1.0, 1.0, size=(4,)))


def test_rng_values_and_seeds(xp):
    """Draws have the right shape and range; a different seed gives different numbers."""
    rng = RNG(0)
    u = to_numpy(rng.uniform((1000,), 2.0, 3.0))
    assert u.shape == (1000,) and u.min() >= 2.0 and u.max() < 3.0
    assert sorted(rng.permutation(7).tolist()) == list(range(7))
    assert not any(RNG(1).bernoulli(0.0) for _ in range(20))
    assert all(RNG(1).bernoulli(1.0) for _ in range(20))
    assert not np.array_equal(to_numpy(RNG(0).normal((8,))), to_numpy(RNG(1).normal((8,))))
    np.testing.assert_array_equal(to_numpy(RNG(5).normal((8,))), to_numpy(RNG(5).normal((8,))))


# --- host transfer and helpers -------------------------------------------------------


def test_asarray_to_numpy_round_trip(xp):
    """Host -> backend -> host: exact in float64; floats become the default dtype;
    integers keep their dtype."""
    a = np.array([[0.1, -2.5], [1e-3, 7.0]])
    with backend.use_dtype("float64"):
        back = to_numpy(asarray(a))
        assert isinstance(back, np.ndarray) and back.dtype == np.float64
        np.testing.assert_array_equal(back, a)
    back32 = to_numpy(asarray(a))  # the default float32
    assert back32.dtype == np.float32
    np.testing.assert_array_equal(back32, a.astype(np.float32))
    ints = np.array([3, 1, 2], dtype=np.int64)
    back_ints = to_numpy(asarray(ints))
    assert back_ints.dtype == np.int64
    np.testing.assert_array_equal(back_ints, ints)
    assert to_numpy(asarray([1.5, 2.5])).tolist() == [1.5, 2.5]
    assert backend.to_float(xp.sum(asarray([1.5, 2.5]))) == 4.0


def test_asarray_with_an_explicit_dtype(xp):
    """asarray(a, dtype) uses that dtype instead of the default."""
    assert asarray(np.array([1.0, 2.0]), dtype=xp.float64).dtype == xp.float64
    assert asarray(np.array([1, 2]), dtype=xp.int32).dtype == xp.int32


def test_one_hot(xp):
    """Labels (B,) -> rows of the identity (B, C) in the default dtype."""
    labels = asarray(np.array([2, 0, 1, 2]), dtype=xp.int64)
    y = backend.one_hot(labels, 3)
    assert y.dtype == backend.dtype()
    expected = [[0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]]
    np.testing.assert_array_equal(to_numpy(y), np.array(expected, dtype=np.float32))


def test_scatter_add_rows(xp):
    """Rows of values are summed into the output rows named by index; others stay 0."""
    index = asarray(np.array([1, 3, 1]), dtype=xp.int64)
    values = asarray(np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    out = to_numpy(backend.scatter_add_rows(4, index, values))
    np.testing.assert_array_equal(out, [[0.0, 0.0], [6.0, 8.0], [0.0, 0.0], [3.0, 4.0]])
