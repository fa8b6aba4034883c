"""Run under ``mpiexec -n 2`` by tests/test_pipeline.py: the deterministic pipeline (every
gradient used exactly k steps after its forward pass) against the one-process simulation
(:class:`~minidni.unlock.UnlockedNet` with ``Delayed([k, 0])``; plain backprop for bprop).

float64, random data. Rank 0 prints one line per (mode, k) with the largest absolute
difference over every trained parameter (modules, SG models, synthetic-input models)
after the run, and exits with status 1 if any exceeds 1e-12, or if the simulation with
another k does *not* differ (then the comparison could not tell runs apart).
"""

from __future__ import annotations

import sys

import numpy as np
from mpi4py import MPI

from minidni import backend
from minidni.parallel import pipeline
from minidni.train import Dataset

LAYOUTS = {2: [[12, 16, 8], [8, 10, 5]], 3: [[12, 16, 8], [8, 9, 7], [7, 10, 5]]}
CONFIG = {
    "batch_size": 16,
    "lr": 1e-2,
    "sg_lr": 1e-2,
    "sg_hidden": [],
    "input_hidden": [],
    "input_lr": 1e-2,
    "steps": 20,
    "eval_every": 10,
    "seed": 3,
    "timeout": 30.0,
}


def largest_difference(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.max(np.abs(u - v))) for u, v in zip(a, b))


def main(comm) -> int:
    backend.set_dtype("float64")
    rng = np.random.default_rng(0)
    train = Dataset.from_numpy(rng.normal(size=(200, 12)), rng.integers(0, 5, size=200))
    worst = 0.0
    for mode in pipeline.MODES:
        for k in (1, 3) if mode != "bprop" else (None,):
            config = {**CONFIG, "layout": LAYOUTS[comm.Get_size()], "staleness": k}
            mine = pipeline.run_rank(comm, mode, train, config)
            records = pipeline.gather(comm, mine, config["timeout"])
            if records is None:
                continue  # not rank 0
            concurrent = pipeline.merge(records).final
            simulated = pipeline.run_single(mode, train, config).final
            assert len(concurrent) == len(simulated) > 0
            diff = largest_difference(concurrent, simulated)
            line = f"{mode} k={k}: {len(concurrent)} arrays, max |difference| {diff:.3g}"
            if k is not None:  # a control: the simulation with k + 1 is another run
                other = pipeline.run_single(mode, train, {**config, "staleness": k + 1}).final
                control = largest_difference(concurrent, other)
                line += f"; against the simulation with k={k + 1}: {control:.3g}"
                if control < 1e-6:
                    diff = float("inf")
            print(line, flush=True)
            worst = max(worst, diff)
    if comm.Get_rank() == 0:
        print(f"worst {worst:.3g}")
        return 0 if worst <= 1e-12 else 1
    return 0


if __name__ == "__main__":
    world = MPI.COMM_WORLD
    try:
        status = main(world)
    except Exception as e:  # end every rank at once instead of leaving the others waiting
        print(f"rank {world.Get_rank()}: error: {e!r}", file=sys.stderr, flush=True)
        world.Abort(1)
    sys.exit(status)
