"""``minidni demo``: the paper's MNIST MLP trained with backprop and with every-layer cDNI.

784-256-256-10, Linear + BatchNorm + ReLU, Adam, batch 256. With cDNI every layer is
decoupled: each learns only from a linear synthetic-gradient model that sees its output
and the one-hot label (Jaderberg et al., ICML 2017, section 3.3).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

from .. import backend
from ..data import mnist_datasets
from ..decoupled import build_mlp
from ..train import fit

SIZES = [784, 256, 256, 10]
STEPS_PER_EPOCH = 60000 // 256


def demo(epochs: int = 5, methods: Sequence[str] = ("bprop", "cdni"), seed: int = 0) -> dict:
    """Train one net per method; print a line per epoch and the final test errors."""
    train, test = mnist_datasets()
    print(f"MNIST {len(train)} train / {len(test)} test; backend {backend.get_backend()}")
    final = {}
    for method in methods:
        print(
            f"\n== {method}: MLP {'-'.join(map(str, SIZES))}, every layer decoupled"
            if method != "bprop"
            else f"\n== bprop: MLP {'-'.join(map(str, SIZES))}"
        )
        net = build_mlp(method, SIZES, backend.RNG(seed))
        history = fit(
            net,
            train,
            test,
            epochs * STEPS_PER_EPOCH,
            backend.RNG(seed + 1),
            eval_every=STEPS_PER_EPOCH,
            log=_epoch_logger(),
        )
        final[method] = history.final_test_error
    print("\nfinal test error: " + ", ".join(f"{m} {100 * e:.2f}%" for m, e in final.items()))
    return final


def _epoch_logger() -> Callable[[str], None]:
    """Prints fit()'s progress lines (one per epoch here) numbered by epoch."""
    epochs = itertools.count(1)
    return lambda line: print(f"  epoch {next(epochs)}  {line}")
