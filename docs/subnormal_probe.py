"""Subnormal floats in Adam's first moments, and what flushing them does (docs/parallel.md).

    PYTHONPATH=. python docs/subnormal_probe.py count cdni on|off [LR]
        1000 one-process steps of ``minidni parallel``'s quick profile in ``mode`` with
        Adam's subnormal flush on or off: seconds per 200 steps and, at the end, how many
        entries of the parameters, m and v are subnormal.
    PYTHONPATH=. python docs/subnormal_probe.py cli on|off async --profile quick ...
        any ``minidni`` command with every Adam's flush forced on or off (under mpiexec
        too), for interleaved A/B timings.

Set OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 and MINIDNI_DATA_DIR as for the experiment.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from minidni import backend, optim
from minidni.experiments.parallel import PROFILES, data
from minidni.parallel import pipeline
from minidni.tools.monitor import optimizers_of


def subnormal(a: np.ndarray) -> int:
    """How many entries are nonzero and below the dtype's smallest normal number."""
    a = np.abs(backend.to_numpy(a))
    return int(((a > 0) & (a < np.finfo(a.dtype).smallest_normal)).sum())


def count(mode: str, flush: bool, lr: float | None) -> None:
    config = dict(PROFILES["quick"])
    if lr is not None:
        config["lr"] = {**config["lr"], mode: lr}
    train, _ = data(config)
    chain = pipeline.build_chain(mode, config["layout"], backend.RNG(0), config)
    net = pipeline.simulated(mode, chain, config)
    opts = optimizers_of(net)
    for opt in opts:
        opt.flush_subnormal = flush
    batches = pipeline.minibatches(train, config)
    times, start = [], time.perf_counter()
    for t in range(config["steps"]):
        net.step(*next(batches))
        if (t + 1) % 200 == 0:
            times.append(round(time.perf_counter() - start - sum(times), 2))
    params = [p.value for o in opts for p in o.params]
    m = [a for o in opts for a in o.m]
    v = [a for o in opts for a in o.v]
    print(
        f"{mode} flush={'on' if flush else 'off'}: seconds per 200 steps {times}; subnormal "
        f"entries: parameters {sum(map(subnormal, params))}, m {sum(map(subnormal, m))}, "
        f"v {sum(map(subnormal, v))} of {sum(a.size for a in params)} each"
    )


def cli(flush: bool, argv: list[str]) -> int:
    init = optim.Adam.__init__

    def forced(self, *args, **kwargs):
        init(self, *args, **{**kwargs, "flush_subnormal": flush})

    optim.Adam.__init__ = forced
    from minidni.tools.cli import main

    return main(argv)


if __name__ == "__main__":
    what, mode_or_flag = sys.argv[1], sys.argv[2]
    if what == "count":
        lr = float(sys.argv[4]) if len(sys.argv) > 4 else None
        count(mode_or_flag, sys.argv[3] == "on", lr)
    else:
        sys.exit(cli(mode_or_flag == "on", sys.argv[3:]))
