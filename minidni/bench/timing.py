"""Timing: one benchmarked model (:class:`Case`), milliseconds per step, interleaved rounds."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import backend

Step = Callable[[], Any]
MatmulShapes = list[tuple[tuple[int, ...], tuple[int, ...]]]


@dataclass
class Case:
    """One benchmarked model: its minidni step, optionally a PyTorch step, and the baseline
    row (within the same model family) that its cost is compared to."""

    label: str
    samples: int  # examples per step (LSTM: sequences x time steps)
    step: Step
    torch_step: Step | None = None
    baseline: str | None = None
    bound_step: Step | None = None  # the step's matmuls alone (set by bench)
    matmuls: MatmulShapes = field(default_factory=list)
    times: dict[str, list[float]] = field(default_factory=dict)

    def median(self, which: str) -> float | None:
        return statistics.median(self.times[which]) if self.times.get(which) else None


def sync() -> None:
    """Wait for the GPU, so that a step's time includes its kernels."""
    if backend.get_backend() == "cupy":
        import cupy

        cupy.cuda.Device().synchronize()


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def time_steps(
    step: Step, steps: int, sync: Callable[[], None] = sync, clock: str = "wall"
) -> float:
    """Mean milliseconds per call of ``step()`` over ``steps`` calls.

    ``clock="cpu"`` counts this process's CPU time (all its threads) instead of wall time:
    on a machine shared with other jobs it is not inflated by time spent descheduled, so
    with one thread (``--threads 1``) it measures the work of a step robustly.
    """
    now = CLOCKS[clock]
    sync()
    start = now()
    for _ in range(steps):
        step()
    sync()
    return 1e3 * (now() - start) / steps


def run_rounds(
    cases: Sequence[Case],
    steps: int,
    rounds: int,
    clock: str = "wall",
    torch_sync: Callable[[], None] = lambda: None,
) -> None:
    """Time every case ``rounds`` times, interleaved: in each round every model (minidni,
    its matmul bound, PyTorch) runs ``steps`` steps, one after the other, so that load from
    other processes hits all of them alike. Appends each round's ms per step to
    ``case.times['minidni' | 'bound' | 'torch']``."""
    for _ in range(rounds):
        for case in cases:
            case.times.setdefault("minidni", []).append(time_steps(case.step, steps, clock=clock))
            if case.bound_step is not None:
                ms = time_steps(case.bound_step, steps, clock=clock)
                case.times.setdefault("bound", []).append(ms)
            if case.torch_step is not None:
                ms = time_steps(case.torch_step, steps, torch_sync, clock)
                case.times.setdefault("torch", []).append(ms)
