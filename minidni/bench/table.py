"""The printed table: one row per benchmarked model."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from .. import backend
from .matmuls import matmul_flops
from .threads import blas_threads
from .timing import Case


def print_table(
    cases: Sequence[Case],
    shapes: str,
    steps: int,
    rounds: int,
    warmup: int,
    torch: Any,
    clock: str = "wall",
) -> None:
    """One row per case: ms per step, samples/s, PyTorch's ms and the ratio, the matmul
    bound (ms, GFLOP/s) and the fraction of it reached, the cost relative to the baseline.
    ``shapes`` is a line saying what the models are (batch sizes, widths)."""
    threads = blas_threads()
    print(
        f"backend {backend.get_backend()}, float32, BLAS threads "
        f"{'unknown' if threads is None else threads}"
        + (
            ""
            if torch is None
            else f", PyTorch {torch.__version__} threads {torch.get_num_threads()}"
        )
    )
    print(shapes)
    print(
        f"{rounds} interleaved rounds of {steps} steps after {warmup} warm-up; medians of "
        f"rounds; {clock} clock; load average {os.getloadavg()[0]:.2f}"
    )
    print("ratio = PyTorch ms / minidni ms (> 1: minidni is faster); bound = the step's matmuls")
    head = f"{'model':<30}{'ms':>8}{'samples/s':>11}{'torch ms':>10}{'ratio':>8}"
    print(head + f"{'bound ms':>10}{'GFLOP/s':>9}{'of bound':>10}  vs baseline")
    by_label = {c.label: c for c in cases}
    for c in cases:
        ms, bound = c.median("minidni"), c.median("bound")
        t = c.median("torch")
        torch_cols = f"{'-':>10}{'-':>8}" if t is None else f"{t:>10.2f}{t / ms:>7.2f}x"
        gflops = matmul_flops(c.matmuls) / (bound * 1e6)
        rel = ""
        if c.baseline is not None:
            rel = f"{ms / by_label[c.baseline].median('minidni'):.2f}x {c.baseline}"
        print(
            f"{c.label:<30}{ms:>8.2f}{c.samples * 1e3 / ms:>11.0f}{torch_cols}"
            f"{bound:>10.2f}{gflops:>9.0f}{bound / ms:>9.0%}  {rel}"
        )
