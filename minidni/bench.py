"""``minidni bench``: milliseconds per training step on the current backend.

Times one step (forward, backward, Adam update; float32) of the paper's MNIST MLP
784-256-256-256-10 with BatchNorm, for backprop and for every-layer DNI and cDNI, on
random data of MNIST's shape; and one truncated-BPTT segment (:func:`bench_lstm`) of an
LSTM core with 256 units, batch 64, T = 8, with plain truncated BPTT and with DNI. The
median of ``steps`` timed steps is reported, after 5 warm-up steps.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

from . import backend
from .decoupled import build_mlp
from .tbptt import TBPTT

SIZES = [784, 256, 256, 256, 10]


def _sync() -> None:
    """Wait for the GPU, so that a step's time includes its kernels."""
    if backend.get_backend() == "cupy":
        import cupy

        cupy.cuda.Device().synchronize()


def time_step(model, x, y, steps: int, step=None) -> float:
    """Median milliseconds of ``model.step(x, y)`` (or ``step(x, y)``) over ``steps`` calls
    after a warm-up."""
    step = step or model.step
    for _ in range(5):
        step(x, y)
    times = []
    for _ in range(steps):
        _sync()
        start = time.perf_counter()
        step(x, y)
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
    lstm: bool = True,
) -> dict[str, float]:
    """Print and return the median ms per step of each (label, method, SG hidden) config,
    then (``lstm=True``) the LSTM rows of :func:`bench_lstm`."""
    rng = backend.RNG(0)
    x = rng.normal((batch, SIZES[0]))
    y = backend.asarray(rng.np.integers(0, SIZES[-1], size=batch))
    print(f"backend {backend.get_backend()}, float32, batch {batch}, MLP {SIZES}")
    result = {}
    for label, method, hidden in configs:
        ms = time_step(build_mlp(method, SIZES, rng, sg_hidden=hidden), x, y, steps)
        result[label] = ms
        print(f"{label:<24}{ms:8.2f} ms/step")
    if lstm:
        result.update(bench_lstm(steps=steps))
    return result


def bench_lstm(
    batch: int = 64,
    T: int = 8,
    hidden: int = 256,
    steps: int = 50,
    methods: Sequence[str] = ("bptt", "dni", "dni_aux"),
) -> dict[str, float]:
    """Median ms of one training segment (forward, BPTT, Adam; DNI: M's prediction and
    update) of an LSTM core on Copy-shaped random data (8 bits + delimiter in, 8 out, bce),
    float32, for each method. Segments are not ``last``, so DNI's SG is always used."""
    rng = backend.RNG(0)
    d_in, d_out = 9, 8
    x = rng.normal((batch, T, d_in))
    y = backend.asarray(rng.np.integers(0, 2, size=(batch, T, d_out)).astype("float32"))
    print(f"backend {backend.get_backend()}, float32, batch {batch}, LSTM {hidden}, T = {T}")
    result = {}
    for method in methods:
        model = TBPTT(d_in, hidden, d_out, rng, T=T, method=method)
        model.reset(batch)
        label = f"lstm {method}"
        result[label] = ms = time_step(model, x, y, steps, step=model.segment)
        print(f"{label:<24}{ms:8.2f} ms/segment")
    return result


def bench_cnn(
    batch: int = 64,
    steps: int = 20,
    channels: Sequence[int] = (16, 16, 16),
    methods: Sequence[str] = ("bprop", "cdni", "dni"),
) -> dict[str, tuple[float, float]]:
    """Median ms per training step of the MNIST CNN of ``minidni reproduce ff-cnn``
    (quick profile: 5x5 convs of ``channels``, linear convolutional SG models), float32:
    wall-clock time and this process's CPU time (``time.process_time``).

    The methods' steps are *interleaved* (one step of each in turn), so that a load that
    changes over time (other jobs on a shared machine) affects them alike and their
    ratios stay meaningful; on a loaded machine the CPU time is the better measure of the
    work a step does (it excludes the time spent waiting for a core). Returns ``{method:
    (wall ms, cpu ms)}`` and prints the ratios to the first method.
    """
    from .cnn import build_cnn

    rng = backend.RNG(0)
    x = rng.normal((batch, 1, 28, 28))
    y = backend.asarray(rng.np.integers(0, 10, size=batch))
    nets = {m: build_cnn(m, (1, 28, 28), channels, rng) for m in methods}
    for net in nets.values():  # warm-up
        net.step(x, y)
    wall: dict[str, list[float]] = {m: [] for m in methods}
    cpu: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(steps):
        for m, net in nets.items():
            _sync()
            start, start_cpu = time.perf_counter(), time.process_time()
            net.step(x, y)
            _sync()
            wall[m].append(1e3 * (time.perf_counter() - start))
            cpu[m].append(1e3 * (time.process_time() - start_cpu))
    print(f"backend {backend.get_backend()}, float32, batch {batch}, CNN conv {list(channels)}")
    result = {m: (statistics.median(wall[m]), statistics.median(cpu[m])) for m in methods}
    first = methods[0]
    for m, (w, c) in result.items():
        ratio = (
            ""
            if m == first
            else f"  ({w / result[first][0]:.2f} / {c / result[first][1]:.2f} x {first})"
        )
        print(f"cnn {m:<8}{w:9.1f} ms/step wall {c:9.1f} ms/step CPU{ratio}")
    return result
