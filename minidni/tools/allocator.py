"""Keep freed memory in the process, so that NumPy's large temporaries reuse it.

Why this exists: every training step allocates and frees the same large temporaries (a
convolution's window matrix is 20 MB at the ``ff-cnn`` quick profile's second layer).
glibc's malloc hands large freed blocks back to the operating system (blocks above its
mmap threshold are unmapped, and the top of the heap is trimmed once more than the trim
threshold is free), so the next step's allocation of the same size touches fresh pages,
and each first touch of a page is a page fault. Measured on a 2-core virtual machine: a
CNN training step took about 3,000 page faults, a fifth of its time (docs/speed.md).

:func:`retain_freed_memory` raises both thresholds with glibc's ``mallopt``: blocks up
to ``max_block`` bytes come from the heap, and freed memory stays with the process (up
to ``keep`` bytes), to be reused by the next step without faults. The process's peak
resident memory is unchanged (it is reached in the first steps anyway); it is simply
not given back between steps. Setting ``MALLOC_MMAP_THRESHOLD_`` and
``MALLOC_TRIM_THRESHOLD_`` in the environment before Python starts does the same.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1  # glibc's <malloc.h> parameter numbers
M_MMAP_THRESHOLD = -3


def retain_freed_memory(max_block: int = 32 * 2**20, keep: int = 2**30) -> bool:
    """Serve blocks up to ``max_block`` bytes from the heap and keep up to ``keep`` freed
    bytes in the process. Returns False where the C library is not glibc (nothing done).

    glibc accepts at most 32 MiB as the mmap threshold on 64-bit systems.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl without mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_MMAP_THRESHOLD, max_block)) and bool(mallopt(M_TRIM_THRESHOLD, keep))
