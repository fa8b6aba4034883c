"""The one place where the array namespace is chosen.

Library code never imports numpy or cupy for array math. It asks this module for the
namespace ``xp`` and calls the array API standard subset through it (``xp.matmul``,
``xp.concat``, ``xp.permute_dims``, ``xp.astype``, ...), so that the same code runs on

- ``numpy``            (default; CPU; through array-api-compat's standard-conforming wrapper)
- ``cupy``             (an NVIDIA GPU; ``pip install minidni[gpu]``)
- ``array_api_strict`` (tests: a reference namespace that rejects anything non-standard,
                        so code that would break on CuPy breaks on the CPU first)

Choose with the ``MINIDNI_BACKEND`` environment variable, :func:`set_backend`, or the
:func:`use_backend` context manager. What the standard lacks lives here too:

- random numbers: drawn host-side from a seeded ``numpy.random.Generator`` and moved to
  the device, so one seed gives the same numbers on every backend (:class:`RNG`);
- conversion to and from NumPy (:func:`to_numpy`, :func:`asarray`);
- one-hot encoding and scatter-add (:func:`one_hot`, :func:`scatter_add_rows`).

The default floating dtype is float32; gradient checks switch to float64 with
:func:`use_dtype`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import numpy as np

BACKENDS = ("numpy", "cupy", "array_api_strict")
DTYPES = ("float32", "float64")

_name: str | None = None
_xp: ModuleType | None = None
_dtype_name: str = "float32"


class BackendError(RuntimeError):
    """A backend was asked for that cannot be used here."""


def _load(name: str) -> ModuleType:
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; valid backends are: {', '.join(BACKENDS)}")
    if name == "numpy":
        import array_api_compat.numpy as xp

        return xp
    if name == "array_api_strict":
        try:
            import array_api_strict as xp
        except ImportError as e:
            raise BackendError(
                "backend 'array_api_strict' needs the array-api-strict package: "
                "pip install 'minidni[test]'"
            ) from e
        return xp
    try:
        import array_api_compat.cupy as xp
        import cupy

        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise BackendError("no CUDA device is visible")
    except Exception as e:  # ImportError, CUDARuntimeError, BackendError: all mean "no GPU"
        raise BackendError(
            f"backend 'cupy' is not available here ({type(e).__name__}: {e}). It needs an "
            "NVIDIA GPU and the gpu extra: pip install 'minidni[gpu]' (CUDA 12.x wheels)."
        ) from e
    return xp


def set_backend(name: str) -> ModuleType:
    """Select the array backend by name and return its namespace."""
    global _name, _xp
    _xp = _load(name)
    _name = name
    return _xp


def get_backend() -> str:
    """The current backend's name (from ``MINIDNI_BACKEND`` on first use)."""
    if _name is None:
        set_backend(os.environ.get("MINIDNI_BACKEND", "numpy"))
    assert _name is not None
    return _name


def namespace() -> ModuleType:
    """The current array namespace ``xp``."""
    if _xp is None:
        get_backend()
    assert _xp is not None
    return _xp


@contextmanager
def use_backend(name: str) -> Iterator[ModuleType]:
    """Run a block on another backend: ``with use_backend("array_api_strict") as xp: ...``."""
    previous = get_backend()
    xp = set_backend(name)
    try:
        yield xp
    finally:
        set_backend(previous)


def dtype() -> Any:
    """The current default floating dtype of the current namespace (float32 unless changed)."""
    return getattr(namespace(), _dtype_name)


def set_dtype(name: str) -> None:
    """Set the default floating dtype: ``"float32"`` or ``"float64"``."""
    global _dtype_name
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; valid dtypes are: {', '.join(DTYPES)}")
    _dtype_name = name


@contextmanager
def use_dtype(name: str) -> Iterator[None]:
    """Run a block with another default dtype: ``with use_dtype("float64"): ...``."""
    previous = _dtype_name
    set_dtype(name)
    try:
        yield
    finally:
        set_dtype(previous)


def asarray(a: Any, dtype: Any = None) -> Any:
    """Move a host (NumPy) array or a Python scalar/list to the current backend.

    Floating inputs become the current default dtype unless ``dtype`` is given.
    """
    a = np.asarray(a)
    if dtype is None and a.dtype.kind == "f":
        a = a.astype(_dtype_name)
    xp = namespace()
    return xp.asarray(a) if dtype is None else xp.asarray(a, dtype=dtype)


def to_numpy(a: Any) -> np.ndarray:
    """Copy an array of any backend to a NumPy array on the host."""
    if isinstance(a, np.ndarray | np.generic | float | int):
        return np.asarray(a)
    if hasattr(a, "get"):  # cupy: copy device -> host
        return a.get()
    return np.from_dlpack(a)


def to_float(a: Any) -> float:
    """A 0-d array of any backend as a Python float."""
    return float(to_numpy(a))


def one_hot(labels: Any, n_classes: int) -> Any:
    """Integer labels (B,) -> one-hot rows (B, n_classes) in the default dtype."""
    xp = namespace()
    classes = xp.arange(n_classes, dtype=labels.dtype)
    return xp.astype(labels[:, None] == classes[None, :], dtype())  # (B, C)


def scatter_add_rows(n_rows: int, index: Any, values: Any) -> Any:
    """Sum rows of ``values`` (K, D) into a (n_rows, D) array at row positions ``index`` (K,).

    The standard has no scatter-add; a one-hot matmul does it on every backend.
    """
    xp = namespace()
    return xp.matmul(xp.permute_dims(one_hot(index, n_rows), (1, 0)), values)  # (n_rows, D)


class RNG:
    """Seeded random numbers, drawn on the host and moved to the current backend.

    The same seed gives bitwise the same numbers on NumPy, CuPy and array-api-strict,
    because every draw comes from one ``numpy.random.Generator`` (``self.np``), which
    host-side code (data shuffling, update schedules) may also use directly.
    """

    def __init__(self, seed: int | None = 0):
        self.seed = seed
        self.np = np.random.default_rng(seed)

    def normal(self, shape: tuple[int, ...], std: float = 1.0) -> Any:
        """Gaussian N(0, std^2) array of ``shape`` in the default dtype."""
        return asarray(self.np.standard_normal(shape) * std)

    def uniform(self, shape: tuple[int, ...], low: float = 0.0, high: float = 1.0) -> Any:
        """Uniform [low, high) array of ``shape`` in the default dtype."""
        return asarray(self.np.uniform(low, high, size=shape))

    def bernoulli(self, p: float) -> bool:
        """One host-side coin flip that comes up True with probability ``p``."""
        return bool(self.np.random() < p)

    def permutation(self, n: int) -> np.ndarray:
        """A host-side permutation of ``range(n)``."""
        return self.np.permutation(n)

    def spawn(self) -> RNG:
        """An independent child generator (for a sub-model that needs its own stream)."""
        return RNG(int(self.np.integers(2**63)))
