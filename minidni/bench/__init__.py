"""``minidni bench``: milliseconds per training step, optionally beside PyTorch.

Times one training step (forward, backward, Adam update; float32) of each model in
:mod:`minidni.bench.cases` (the MNIST MLP, an LSTM segment, with ``--cnn`` the
``ff-cnn`` CNN), and with ``--compare torch`` the same Bprop / BPTT model in PyTorch,
in the same process, interleaved with minidni round by round so that load from other
processes hits both alike. Each row also gives the *matmul bound* (the step's own
matrix products replayed alone, :mod:`minidni.bench.matmuls`) and the fraction of it a
step reaches. ``--memory`` instead follows the resident memory over many steps
(:func:`minidni.bench.memory.memory`).

Method: every model runs ``warmup`` steps first (discarded); then ``rounds`` rounds, in
each of which every model (minidni, its matmul bound, PyTorch) runs ``steps`` steps; a
round's time is its mean ms per step, and the table gives the median over rounds.

Files: ``threads`` (BLAS thread control), ``timing`` (cases, clocks, rounds),
``matmuls`` (the matmul bound), ``torch_models`` (the PyTorch references), ``cases``
(the MLP, LSTM and CNN cases), ``table`` (the printout), ``memory``, ``run`` (``bench``).
"""

from .run import bench
from .threads import blas_threads, set_blas_threads

__all__ = ["bench", "blas_threads", "set_blas_threads"]
