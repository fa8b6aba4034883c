"""How many BLAS threads a run uses: one by default, recorded, the same in every worker.

The thread count changes the numbers: a multi-threaded matrix product splits its sums
differently, so the same seed gives other bits with 1 and with 2 threads. And two
processes that each use every core (the BLAS library's default) slow each other down
many times over. So every minidni command runs its BLAS with **one thread** unless asked
for more, the same in the main process and in every worker of ``workers > 1``, and the
experiment runner records the count with the results (a resumed run must match it).

Ask for more with ``minidni reproduce --threads N``, or with the first of these
environment variables that is set: ``MINIDNI_THREADS``, ``OMP_NUM_THREADS``,
``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS`` (the usual ones, so that a shell set up for
other tools means the same here). OpenMP's nested form ``OMP_NUM_THREADS=2,1`` counts
its first level.

The count is applied inside the running process with ``threadpoolctl``, and through the
environment to worker processes before they start.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import numpy  # noqa: F401  (loaded first, so that threadpoolctl finds its BLAS)

ENV = ("MINIDNI_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
CHILD_ENV = ENV[1:]  # what a BLAS library reads when it loads in a new process


def parse(text: str, name: str) -> int:
    """The thread count in ``text`` (the value of option or variable ``name``): a whole
    number >= 1, or OpenMP's comma-separated per-level list (its first entry)."""
    first = text.split(",")[0].strip()
    try:
        value = int(first)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(
            f"{name}: expects a whole number of threads >= 1 (or OpenMP's list such as "
            f"2,1), got {text!r}"
        )
    return value


def requested(explicit: int | None = None) -> int:
    """The BLAS thread count to use: ``explicit`` (e.g. ``--threads``), else the first of
    :data:`ENV` that is set, else 1. A ValueError names a variable that is not a count."""
    if explicit is not None:
        return parse(str(explicit), "--threads")
    for var in ENV:
        if os.environ.get(var, "").strip():
            return parse(os.environ[var], var)
    return 1


def _blas_pools() -> list[dict]:
    from threadpoolctl import threadpool_info

    return [p for p in threadpool_info() if p.get("user_api") == "blas"]


def blas() -> str:
    """NumPy's BLAS in a few words, e.g. ``openblas 0.3.31 SkylakeX``: the library, its
    version and the CPU kernels it chose (each can change the last bits of a result)."""
    pools = _blas_pools()
    if not pools:
        return "unknown"
    p = pools[0]
    return " ".join(str(p.get(k)) for k in ("internal_api", "version", "architecture") if p.get(k))


def in_effect() -> int | None:
    """The BLAS thread count of this process now (None where no BLAS is found)."""
    pools = _blas_pools()
    return pools[0]["num_threads"] if pools else None


@contextlib.contextmanager
def limit(n: int) -> Iterator[None]:
    """Run the block with ``n`` BLAS threads in this process."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=n, user_api="blas"):
        yield


@contextlib.contextmanager
def for_children(n: int) -> Iterator[None]:
    """Within the block, processes started by this one load their BLAS with ``n`` threads
    (the variables are set back afterwards)."""
    saved = {var: os.environ.get(var) for var in CHILD_ENV}
    os.environ.update(dict.fromkeys(CHILD_ENV, str(n)))
    try:
        yield
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
