"""Thread control: how many threads NumPy's BLAS (OpenBLAS) uses, read and set at run time.

NumPy has no API for its BLAS thread count; OpenBLAS exports one, which we find among
the shared libraries this process has loaded (Linux: /proc/self/maps) and call through
ctypes. PyTorch is then given the same count, so that a comparison is like for like.
"""

from __future__ import annotations

import ctypes

from .. import backend


def blas_threads() -> int | None:
    """Threads of NumPy's OpenBLAS (read from the loaded library), or None if unknown."""
    if backend.get_backend() != "numpy":
        return None
    for lib in _openblas_libs():
        for name in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads"):
            if hasattr(lib, name):
                return int(getattr(lib, name)())
    return None


def set_blas_threads(n: int) -> bool:
    """Set NumPy's OpenBLAS thread count; False where the library could not be found."""
    for lib in _openblas_libs():
        for name in ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads"):
            if hasattr(lib, name):
                getattr(lib, name)(n)
                return True
    return False


def _openblas_libs() -> list[ctypes.CDLL]:
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower()}
    except OSError:  # not Linux: thread counts are reported as unknown
        return []
    return [ctypes.CDLL(p) for p in sorted(paths)]
