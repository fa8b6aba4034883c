"""Shared fixtures: the backend parametrisation and the hypothesis profiles.

Hypothesis profiles (choose with ``HYPOTHESIS_PROFILE`` or ``--hypothesis-profile``):

- ``ci``       (default): few examples, no deadline; keeps the suite fast on 2 cores;
- ``thorough``: many examples, for a long run on demand:
  ``HYPOTHESIS_PROFILE=thorough pytest``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from minidni import backend

settings.register_profile(
    "ci",
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "thorough",
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _available_backends() -> list[str]:
    names = ["numpy", "array_api_strict"]
    try:
        backend._load("cupy")
        names.append("cupy")
    except backend.BackendError:
        pass  # no GPU here: the cupy backend is simply not part of this run
    return names


BACKENDS = _available_backends()


@pytest.fixture(params=BACKENDS)
def xp(request):
    """Run the test once per available backend (numpy, array_api_strict, cupy with a GPU)."""
    with backend.use_backend(request.param) as namespace:
        yield namespace


@pytest.fixture
def float64():
    """Make float64 the default dtype for the test (gradient checks)."""
    with backend.use_dtype("float64"):
        yield


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The directory with the real data sets; tests that need them skip when it is absent."""
    env = os.environ.get("MINIDNI_DATA_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
    return path.resolve()


@pytest.fixture(scope="session")
def mnist_dir(data_dir: Path) -> Path:
    """``<data dir>/mnist``; skips the test (with the reason) when the files are not there."""
    path = data_dir / "mnist"
    if not (path / "t10k-images-idx3-ubyte.gz").exists():
        reason = f"MNIST not found in {path}; set MINIDNI_DATA_DIR to the data directory"
        if os.environ.get("CI"):  # in CI the data must be there: a skip would hide it
            pytest.fail(reason)
        pytest.skip(reason)
    return path


class _CtrlCAfter:
    """A progress log that presses Ctrl-C once ``after`` runs have finished (a finished
    run's line reports the time elapsed), keeping every line it saw in ``lines``."""

    def __init__(self, after: int):
        self.after, self.lines = after, []

    def __call__(self, line: str) -> None:
        self.lines.append(line)
        if sum("elapsed" in x for x in self.lines) == self.after:
            raise KeyboardInterrupt


@pytest.fixture
def ctrl_c_after():
    """``ctrl_c_after(n)``: a log for ``experiments.run`` that interrupts it after n runs."""
    return _CtrlCAfter
