"""Thread control for the benchmark: NumPy's BLAS thread count, read and set at run time
(through :mod:`minidni.tools.threads`, i.e. threadpoolctl). PyTorch is then given the
same count, so that a comparison is like for like."""

from __future__ import annotations

from .. import backend
from ..tools import threads


def blas_threads() -> int | None:
    """Threads of NumPy's BLAS now, or None if unknown (or the backend is not NumPy)."""
    if backend.get_backend() != "numpy":
        return None
    return threads.in_effect()


def set_blas_threads(n: int) -> bool:
    """Set NumPy's BLAS thread count for the rest of the process; False where no BLAS
    library was found."""
    from threadpoolctl import threadpool_limits

    if threads.in_effect() is None:
        return False
    threadpool_limits(limits=n, user_api="blas")
    return True
