"""Running an experiment's jobs: in worker processes, saving each finished run, resuming.

:func:`run_experiment` is what every experiment's run does (:func:`minidni.experiments.run`):
run the jobs of its grid with :func:`run_jobs`, rewrite the results file after every
finished run, and print the experiment's table at the end.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import backend
from ..tools import progress
from ..tools.monitor import Diverged
from .results import code_digest, record, save


def run_experiment(
    name: str,
    profile: str,
    config: dict,
    todo: list[dict],
    job_fn: Callable[[dict], dict],
    table: Callable[[dict], str],
    out: Path,
    log: Callable,
    summary: Callable[[dict], str] | None = None,
    **extra: Any,
) -> dict:
    """What every experiment's ``run`` does: run the jobs ``todo`` with ``job_fn``, write
    the results record (plus ``extra`` keys) to ``<out>/<name>.json``, print ``table``.

    Nothing is lost: the results file is rewritten (atomically) after every finished
    run, with ``"complete": false`` until the last one. Run again with the same ``out``,
    the jobs whose settings match a run already in that file are not run again (resume),
    so an interrupted experiment ends with the same results as an uninterrupted one. A
    run that diverges is recorded as such (``"diverged": true``) and the others go on.
    Ctrl-C leaves the partial file and says how to resume.
    """
    started = time.time()
    path = out / f"{name}.json"
    previous = _finished_runs(path)
    done = {i: run for i, job in enumerate(todo) if (run := _match(job, previous)) is not None}
    earlier = _previous_wall(path) if done else 0.0
    log(f"{name} ({profile}): {len(todo)} runs, {config['workers']} worker(s)")
    if done:
        log(
            f"resuming {path}: {len(done)} of {len(todo)} runs are already there with the same "
            "settings and are not run again (use another --out to run them afresh)"
        )
    elif path.exists():
        log(f"{path} holds no finished run of these settings, code and backend: replacing it")

    def results(complete: bool) -> dict:
        runs = [done[i] for i in sorted(done)]
        record_ = record(name, profile, config, runs, started)
        record_["wall_seconds"] = round(earlier + record_["wall_seconds"], 2)
        return {**record_, **extra, "complete": complete, "runs_total": len(todo)}

    def finished(i: int, run: dict) -> None:
        done[i] = run
        save(results(complete=False), out)

    pending = [(i, job) for i, job in enumerate(todo) if i not in done]
    try:
        run_jobs(job_fn, pending, config["workers"], log, summary, name, finished, len(todo))
    except KeyboardInterrupt:
        log(
            f"\ninterrupted: {len(done)} of {len(todo)} runs are saved in {path}; "
            "run the same command again to resume"
        )
        raise
    final = results(complete=True)
    log(f"wrote {save(final, out)} ({final['wall_seconds']:.0f}s)")
    log(table(final))
    return final


def _finished_runs(path: Path) -> list[dict]:
    """The runs of an earlier results file at ``path`` written by this very code on this
    backend (else []): after a change to the library, every run is run again."""
    if not path.exists():
        return []
    try:
        earlier = json.loads(path.read_text())
    except json.JSONDecodeError:
        return []  # not a results file we wrote (ours are written atomically)
    env = earlier.get("environment", {})
    if (env.get("backend"), env.get("code")) != (backend.get_backend(), code_digest()):
        return []
    return earlier.get("runs", [])


def _previous_wall(path: Path) -> float:
    """Wall seconds already spent on the runs in ``path``."""
    return float(json.loads(path.read_text()).get("wall_seconds", 0.0))


def _match(job: dict, runs: list[dict]) -> dict | None:
    """The first run whose settings are exactly ``job``'s (after a JSON round trip)."""
    settings = json.loads(json.dumps({k: v for k, v in job.items() if k not in _NOT_SETTINGS}))
    for run in runs:
        if all(k in run and run[k] == v for k, v in settings.items()):
            return run
    return None


_NOT_SETTINGS = ("data_dir", "backend")  # where a job runs, not what it computes


def _init_worker() -> None:
    # One BLAS thread per worker process: the workers already fill the cores.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"


def _ignore_interrupt() -> None:
    # Ctrl-C is the parent's to handle (it saves, then stops the pool): no worker tracebacks.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_label(job: dict) -> str:
    """A run's settings in a few words, e.g. ``depth=3 method=dni seed=0``."""
    keys = ("task", "T", "method", "mode", "depth", "p_update", "staleness", "seed")
    return " ".join(f"{k}={job[k]}" for k in keys if k in job)


def guarded(fn: Callable[[dict], dict], item: tuple[int, dict, str, bool]) -> tuple[int, dict]:
    """Run ``fn(job)`` for ``item = (index, job, label, bars)``; a run that diverges
    becomes a record with ``"diverged": true``, its step and what was not finite."""
    i, job, label, bars = item
    progress.set_run(label, bars)
    started = time.perf_counter()
    try:
        return i, fn(job)
    except Diverged as e:
        settings = {k: v for k, v in job.items() if k not in _NOT_SETTINGS}
        seconds = round(time.perf_counter() - started, 2)
        return i, {
            **settings,
            "diverged": True,
            "diverged_step": e.step,
            "diverged_at": e.what,
            "seconds": seconds,
        }


def run_jobs(
    fn: Callable[[dict], dict],
    jobs: list,
    workers: int,
    log: Callable,
    summary: Callable[[dict], str] | None = None,
    name: str = "",
    finished: Callable[[int, dict], None] | None = None,
    total: int | None = None,
) -> list:
    """Run ``fn`` on every job, in ``workers`` processes (spawned, one BLAS thread each)
    when ``workers > 1``. ``jobs`` holds job dicts or ``(index, job)`` pairs;
    ``finished(index, result)`` is called as each run ends (in any order), and one line
    is logged for it: ``summary(result)`` (by default its settings and final test error)
    and the progress over ``total`` runs with the time left. Returns the results in the
    jobs' order."""
    summary = summary or _summary
    pairs = [item if isinstance(item, tuple) else (i, item) for i, item in enumerate(jobs)]
    total = total or len(pairs)
    items = [
        (
            i,
            {**job, "backend": backend.get_backend()},
            f"{name} {run_label(job)}".strip(),
            workers <= 1,
        )
        for i, job in pairs
    ]
    results: dict[int, dict] = {}
    started = time.perf_counter()

    def report(i: int, result: dict) -> None:
        results[i] = result
        if result.get("diverged"):
            line = (
                f"  {name} {run_label(result)}: DIVERGED at step {result['diverged_step']} "
                f"({result['diverged_at']}); recorded as diverged, the other runs go on"
            )
        else:
            line = summary(result)
        if finished is not None:
            finished(i, result)
        done = total - len(items) + len(results)
        log(
            f"{line}  {progress.eta_line(done, total, time.perf_counter() - started, len(results))}"
        )

    work = functools.partial(guarded, fn)
    if workers <= 1:
        for item in items:
            report(*work(item))
    else:
        _init_worker()  # inherited by the spawned children before they import numpy
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(workers, initializer=_ignore_interrupt) as pool:
            for i, result in pool.imap_unordered(work, items):
                report(i, result)
    return [results[i] for i, _ in pairs]


def _summary(run: dict) -> str:
    keys = ("method", "depth", "p_update", "seed")
    what = " ".join(f"{k}={run[k]}" for k in keys if k in run)
    return f"  {what}: test error {100 * run['final_test_error']:.2f}%  ({run['seconds']:.0f}s)"
