"""``minidni bench``: milliseconds per training step on the current backend.

Times one step (forward, backward, Adam update; float32) of the paper's MNIST MLP
784-256-256-256-10 with BatchNorm, for backprop and for every-layer DNI and cDNI, on
random data of MNIST's shape. The median of ``steps`` timed steps is reported, after
5 warm-up steps.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

from . import backend
from .decoupled import build_mlp

SIZES = [784, 256, 256, 256, 10]


def _sync() -> None:
    """Wait for the GPU, so that a step's time includes its kernels."""
    if backend.get_backend() == "cupy":
        import cupy

        cupy.cuda.Device().synchronize()


def time_step(model, x, y, steps: int) -> float:
    """Median milliseconds of ``model.step(x, y)`` over ``steps`` calls after a warm-up."""
    for _ in range(5):
        model.step(x, y)
    times = []
    for _ in range(steps):
        _sync()
        start = time.perf_counter()
        model.step(x, y)
        _sync()
        times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times)


def bench(
    batch: int = 256,
    steps: int = 50,
    configs: Sequence[tuple[str, str, tuple[int, ...]]] = (
        ("bprop", "bprop", ()),
        ("cdni (linear SG)", "cdni", ()),
        ("dni (SG 1024-1024)", "dni", (1024, 1024)),
    ),
) -> dict[str, float]:
    """Print and return the median ms per step of each (label, method, SG hidden) config."""
    rng = backend.RNG(0)
    x = rng.normal((batch, SIZES[0]))
    y = backend.asarray(rng.np.integers(0, SIZES[-1], size=batch))
    print(f"backend {backend.get_backend()}, float32, batch {batch}, MLP {SIZES}")
    result = {}
    for label, method, hidden in configs:
        ms = time_step(build_mlp(method, SIZES, rng, sg_hidden=hidden), x, y, steps)
        result[label] = ms
        print(f"{label:<24}{ms:8.2f} ms/step")
    return result
