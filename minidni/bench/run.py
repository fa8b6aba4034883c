"""``minidni bench``: time every case, interleaved, and print the table."""

from __future__ import annotations

from collections.abc import Sequence

from ..tools.allocator import retain_freed_memory
from .cases import LSTM_SHAPE, MLP_DEPTHS, cnn_cases, cnn_config, lstm_cases, mlp_cases
from .matmuls import matmul_replay, record_matmuls
from .table import print_table
from .threads import blas_threads, set_blas_threads
from .timing import Case, run_rounds
from .torch_models import import_torch, torch_sync


def bench(
    batch: int | None = None,
    steps: int = 40,
    rounds: int = 3,
    warmup: int = 5,
    compare: str | None = None,
    depths: Sequence[int] = MLP_DEPTHS,
    lstm: bool = True,
    threads: int | None = None,
    clock: str = "wall",
    cnn: bool = False,
) -> list[Case]:
    """Time every case (see :mod:`minidni.bench`), print the table and return the cases
    with their per-round times (``case.times['minidni' | 'bound' | 'torch']``, ms per
    step). ``cnn=True``: the ``ff-cnn`` CNN's cases instead of the MLP's and the LSTM's.
    ``batch`` defaults to 256 for the MLP and 64 for the CNN."""
    torch = import_torch() if compare == "torch" else None
    retain_freed_memory()  # minidni and PyTorch alike reuse freed memory (no page faults)
    if threads is not None:
        set_blas_threads(threads)
    if torch is not None:
        # PyTorch gets as many threads as NumPy's BLAS: the comparison is like for like.
        torch.set_num_threads(threads or blas_threads() or torch.get_num_threads())
    if cnn:
        batch = batch or 64
        cases = cnn_cases(batch, torch)
        config = cnn_config()
        shapes = (
            f"MNIST maps, batch {batch}, CNN conv {config['channels']}, SG hidden "
            f"{list(config['sg_hidden']['cdni'])} "
            f"({config['sg_kernel_size']}x{config['sg_kernel_size']}) for cdni, "
            f"{list(config['sg_hidden']['dni'])} for dni"
        )
    else:
        batch = batch or 256
        cases = mlp_cases(batch, depths, torch) + (lstm_cases(torch) if lstm else [])
        shapes = f"MLP batch {batch}; LSTM {LSTM_SHAPE}"
    for case in cases:
        for _ in range(warmup):
            case.step()
            if case.torch_step is not None:
                case.torch_step()
        case.matmuls = record_matmuls(case.step)
        case.bound_step = matmul_replay(case.matmuls)
        case.bound_step()
    run_rounds(cases, steps, rounds, clock, torch_sync(torch))
    print_table(cases, shapes, steps, rounds, warmup, torch, clock)
    return cases
