"""``mpiexec -n K minidni parallel``: an MNIST MLP split into K modules on K processes.

Runs each mode of :mod:`minidni.parallel.pipeline` (backprop, DNI, cDNI, complete unlock)
in turn on K ranks, one module per rank, and writes ``<out>/parallel.json``: per run the
steps per second, the per-rank wall and waiting times, the staleness of the gradients
used, and the learning curve (MNIST test error against wall-clock seconds). Without
``mpiexec`` (one process) each mode runs as its one-process simulation (bprop is then
the ordinary Bprop step): the baseline to compare with, e.g. with 1 and 2 BLAS threads.

Profiles:

- ``smoke``: a small net, 40 steps on a data subset; seconds, for the tests.
- ``quick``: 784-480-64 | 64-544-544-10, batch 256, 1000 steps (4.3 epochs). The two
  modules are balanced *including* the SG model, which lives on the second rank: the
  narrow 64-unit boundary between wide layers keeps the linear SG model (and the
  messages) cheap, and the widths make both ranks' multiply-adds per step about equal
  (f_1: 784 x 480 + 480 x 64, backward twice that; f_2: 64 x 544 + 544 x 544 + 544 x 10,
  likewise, plus M_2 and the loss). 784-512-64 | 64-512-512-10 left the first rank
  about 1.4x the second's work in timings of each rank's step. Learning rates as in
  ``reproduce ff``'s quick profile (Adam 1e-3 for modules, 3e-4 for DNI's; 1e-3 for SG
  models); synthetic inputs are linear (one Linear layer from x).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..data import mnist_datasets
from ..parallel import pipeline
from ..tools import threads
from ..train import Dataset
from .results import ResultsFileError, locked, move_aside, read, record, save
from .results import check_target as check_file
from .settings import configure

# Module learning rates per mode, as reproduce ff's quick profile (DNI without labels is
# steadier with a smaller one); SG and synthetic-input models learn at 1e-3.
LR = {"bprop": 1e-3, "dni": 3e-4, "cdni": 1e-3, "unlock": 1e-3}
PROFILES = {
    "smoke": {
        "layout": [[784, 64, 32], [32, 64, 10]],
        "batch_size": 64,
        "lr": LR,
        "sg_lr": 1e-3,
        "sg_hidden": [],
        "input_hidden": [],
        "input_lr": 1e-3,
        "steps": 40,
        "eval_every": 20,
        "staleness": None,
        "max_in_flight": 2,
        "seed": 0,
        "timeout": 60.0,
        "train_subset": 2048,
        "test_subset": 500,
    },
    "quick": {
        "layout": [[784, 480, 64], [64, 544, 544, 10]],
        "batch_size": 256,
        "lr": LR,
        "sg_lr": 1e-3,
        "sg_hidden": [],
        "input_hidden": [],
        "input_lr": 1e-3,
        "steps": 1000,
        "eval_every": 100,
        "staleness": None,
        "max_in_flight": 2,
        "seed": 0,
        "timeout": 120.0,
    },
}


def communicator() -> Any:
    """``MPI.COMM_WORLD``, or None where mpi4py is not installed (one process)."""
    try:
        from mpi4py import MPI
    except ImportError:
        return None
    return MPI.COMM_WORLD


def blas_threads() -> int:
    """The BLAS thread count of each rank: 1, unless the environment asks for more
    (:func:`minidni.tools.threads.requested`; ``minidni parallel`` applies it)."""
    return threads.requested()


def check_target(out: Path, config: dict, append: bool) -> None:
    """Before any work: ``<out>/parallel.json`` can be written, and with ``append`` an
    existing one holds parallel results of the same settings. A ValueError otherwise."""
    path = Path(out) / "parallel.json"
    check_file(path)
    if append and path.exists():
        try:
            old = read(path, "parallel")
        except ResultsFileError as e:
            raise ValueError(f"--append: {e}") from e
        if old["config"] != json.loads(json.dumps(config)):
            raise ValueError(
                f"--append: {path} was written with other settings (profile "
                f"{old['profile']}); append only runs of the same profile and settings"
            )


def data(config: dict) -> tuple[Dataset, Dataset]:
    """MNIST, cut to ``train_subset`` / ``test_subset`` rows where the profile says so."""
    train, test = mnist_datasets(os.environ.get("MINIDNI_DATA_DIR"))
    if config.get("train_subset"):
        train = Dataset(train.x[: config["train_subset"]], train.y[: config["train_subset"]])
    if config.get("test_subset"):
        test = Dataset(test.x[: config["test_subset"]], test.y[: config["test_subset"]])
    return train, test


def run_mode(comm: Any, mode: str, train: Dataset, test: Dataset, config: dict) -> dict | None:
    """One run of ``mode``: on every rank of ``comm`` (a pipeline) or, with one process,
    its simulation. Returns the run record on rank 0, None on the others."""
    ranks = 1 if comm is None else comm.Get_size()
    load = os.getloadavg()[0]
    if ranks == 1:
        records = [pipeline.run_single(mode, train, config)]
    else:
        mine = pipeline.run_rank(comm, mode, train, config)
        records = pipeline.gather(comm, mine, config["timeout"])
        if records is None:
            return None
    merged = pipeline.merge(records)
    errors = pipeline.curve_errors(merged, config["layout"], test)
    losses = np.asarray(merged.losses)
    bounds = [0, *merged.steps]
    return {
        "mode": mode,
        "seed": config["seed"],
        "ranks": ranks,
        "blas_threads": blas_threads(),
        "staleness": config["staleness"],
        "steps": config["steps"],
        "wall_seconds": round(merged.wall, 3),
        "steps_per_second": round(config["steps"] / merged.wall, 2),
        "rank_wall_seconds": [round(r.wall, 3) for r in records],
        "rank_waited_seconds": [round(r.waited, 3) for r in records],
        "rank_cpu_seconds": [round(r.cpu, 3) for r in records],
        "mean_staleness": float(np.mean(merged.staleness)) if merged.staleness else None,
        "steps_evaluated": merged.steps,
        "seconds": [round(s, 3) for s in merged.seconds],
        "test_error": errors,
        "train_loss": [float(losses[a:b].mean()) for a, b in zip(bounds[:-1], bounds[1:])],
        "final_test_error": errors[-1],
        "load_before": round(load, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def run(
    profile: str,
    out: Path,
    modes: list[str],
    comm: Any = None,
    overrides: dict | None = None,
    append: bool = False,
    log=print,
) -> dict | None:
    """Run ``modes`` in turn and (rank 0) write ``<out>/parallel.json``; with ``append`` the
    runs are added to those already in that file (same profile and settings)."""
    config = configure(PROFILES, profile, overrides)
    check_modes(modes)
    is_root = comm is None or comm.Get_rank() == 0
    train, test = data(config)
    started = time.time()
    runs = []
    for mode in modes:
        run_record = run_mode(comm, mode, train, test, config)
        if run_record is not None:
            runs.append(run_record)
            log(summary(run_record))
    if not is_root:
        return None
    results = record("parallel", profile, config, runs, started)
    path = Path(out) / "parallel.json"
    with locked(path, log):  # another writer on this --out goes first, then this one
        if append and path.exists():
            check_target(out, config, append)  # (checked before the work, too)
            old = read(path, "parallel")
            results["runs"] = old["runs"] + results["runs"]
            results["wall_seconds"] = round(old["wall_seconds"] + results["wall_seconds"], 2)
        elif path.exists():  # never lose earlier measurements
            log(f"{path} holds earlier runs: moved it to {move_aside(path)} (--append adds to it)")
        log(f"wrote {save(results, Path(out))}")
    return results


def configuration(run: dict) -> str:
    """'cdni, 2 ranks' or 'Bprop, 1 process, 2 BLAS threads' (one table row / curve)."""
    if run["ranks"] == 1:
        name = "Bprop" if run["mode"] == "bprop" else f"{run['mode']} simulated"
        return f"{name}, 1 process, {run['blas_threads']} BLAS thread(s)"
    return f"{run['mode']}, {run['ranks']} ranks"


def cpu_bound_rate(run: dict) -> float:
    """Steps/s the run would make with a free core per rank, from its CPU seconds: one
    process, or ranks that take turns (bprop), need the sum of their CPU time per step;
    a pipeline (dni, cdni, unlock) needs that of its busiest rank. CPU time includes the
    ranks' polling for messages, so this slightly understates a pipeline; it says
    nothing about BLAS threads (their CPU time adds up while their wall time does not)."""
    cpu = run["rank_cpu_seconds"]
    pipelined = run["ranks"] > 1 and run["mode"] != "bprop"
    return run["steps"] / (max(cpu) if pipelined else sum(cpu))


def table(results: dict) -> str:
    """Markdown: per configuration, over its repeats, the median (min-max) wall-clock
    steps/s; the modelled steps/s with a free core per rank (:func:`cpu_bound_rate`);
    median seconds each rank waited; the final test error; the load averages."""
    rows = [
        "| configuration | runs | steps/s (wall) | steps/s, a free core per rank (model) | "
        "waited s per rank | test error % | load |",
        "|---|---|---|---|---|---|---|",
    ]
    names = list(dict.fromkeys(configuration(r) for r in results["runs"]))
    for name in names:
        runs = [r for r in results["runs"] if configuration(r) == name]
        rate = [r["steps_per_second"] for r in runs]
        cpu = [cpu_bound_rate(r) for r in runs]
        waited = np.median([r["rank_waited_seconds"] for r in runs], axis=0)
        err = [100 * r["final_test_error"] for r in runs]
        load = [r["load_before"] for r in runs]
        rows.append(
            f"| {name} | {len(runs)} | {np.median(rate):.1f} ({min(rate):.1f}-{max(rate):.1f}) "
            f"| {np.median(cpu):.1f} ({min(cpu):.1f}-{max(cpu):.1f}) "
            f"| {' / '.join(f'{w:.1f}' for w in waited)} "
            f"| {np.median(err):.2f} ({min(err):.2f}-{max(err):.2f}) "
            f"| {min(load):.1f}-{max(load):.1f} |"
        )
    return "\n".join(rows)


def check_modes(modes: list[str]) -> None:
    """A ValueError naming the valid modes if one of ``modes`` is not one."""
    unknown = [m for m in modes if m not in pipeline.MODES]
    if unknown:
        valid = ", ".join(pipeline.MODES)
        raise ValueError(f"unknown mode(s) {', '.join(unknown)}; valid: {valid}")


def summary(run: dict) -> str:
    """One line per run: mode, ranks, threads, speed, waiting, final error."""
    waited = "/".join(f"{w:.1f}" for w in run["rank_waited_seconds"])
    cpu = "/".join(f"{c:.1f}" for c in run["rank_cpu_seconds"])
    return (
        f"  {run['mode']:<7} ranks {run['ranks']} BLAS threads {run['blas_threads']}: "
        f"{run['steps_per_second']:7.1f} steps/s  ({run['wall_seconds']:.1f} s, waited "
        f"{waited} s, CPU {cpu} s)  test error {100 * run['final_test_error']:.2f}%  "
        f"load {run['load_before']:.1f}"
    )
