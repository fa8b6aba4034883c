"""Resident memory over many training steps: does a model's footprint stay flat?

Each model trains in a fresh process of its own (``multiprocessing`` spawn), so that its
peak is its own, not the largest of the models measured before it in the same process.
Flat means: neither the current nor the peak resident memory grows with the step count
once the first steps have allocated the working set.
"""

from __future__ import annotations

import multiprocessing
import os
import resource

from .. import backend
from ..tools.allocator import retain_freed_memory
from .cases import (
    CNN_METHODS,
    LSTM_METHODS,
    LSTM_SHAPE,
    MLP_DEPTHS,
    MLP_METHODS,
    cnn_cases,
    lstm_cases,
    mlp_cases,
)

DEFAULT_MODELS = ("mlp 3x256 cdni (linear SG)", f"lstm {LSTM_SHAPE['hidden']} dni_aux")
CNN_MODELS = tuple(f"cnn {m}" for m in CNN_METHODS)
ALL_MODELS = (
    *(f"mlp {d}x256 {name}" for d in MLP_DEPTHS for name, _, _ in MLP_METHODS),
    *(f"lstm {LSTM_SHAPE['hidden']} {m}" for m in LSTM_METHODS),
    *CNN_MODELS,
)


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident memory of this process in MiB (Linux: /proc; peak from
    getrusage)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    current = peak
    try:
        with open("/proc/self/statm") as f:
            current = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        pass  # no /proc: report the peak for both
    return current, peak


def trace(label: str, steps: int, every: int, batch: int | None, backend_name: str) -> list:
    """Build the model ``label`` (a row label of ``minidni bench``), train it ``steps``
    steps and return (step, current MiB, peak MiB) at step 1 and every ``every`` steps."""
    backend.set_backend(backend_name)
    retain_freed_memory()  # as in `minidni bench` and the experiments
    family = label.split()[0]
    if family == "mlp":
        depth = int(label.split()[1].split("x")[0])
        cases = mlp_cases(batch or 256, [depth], only=label)
    elif family == "lstm":
        cases = lstm_cases(only=label)
    else:
        cases = cnn_cases(batch or 64, only=label)
    (case,) = cases  # only this model is built: the memory is its own
    step = case.step
    rows = []
    for i in range(1, steps + 1):
        step()
        if i % every == 0 or i == 1:
            rows.append((i, *rss_mb()))
    return rows


def memory(
    steps: int = 1000,
    batch: int | None = None,
    every: int | None = None,
    models: tuple[str, ...] = DEFAULT_MODELS,
) -> dict[str, list]:
    """Train each of ``models`` (row labels of ``minidni bench``) for ``steps`` steps in a
    process of its own; print and return (step, current MiB, peak MiB) at step 1 and every
    ``every`` steps (default steps / 10). ``batch`` overrides the MLP's (256) and the
    CNN's (64) batch size."""
    every = every or max(steps // 10, 1)
    result = {}
    ctx = multiprocessing.get_context("spawn")
    for label in models:
        with ctx.Pool(1) as pool:
            args = (label, steps, every, batch, backend.get_backend())
            rows = pool.apply(trace, args)
        result[label] = rows
        print(f"{label}: resident memory over {steps} steps (MiB)", flush=True)
        print(f"{'step':>8}{'current':>10}{'peak':>10}")
        for i, cur, peak in rows:
            print(f"{i:>8}{cur:>10.1f}{peak:>10.1f}", flush=True)
    return result
