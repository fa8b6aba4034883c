"""Running an experiment's jobs: in worker processes, saving each finished run, resuming.

:func:`run_experiment` is what every experiment's run does (:func:`minidni.experiments.run`):
run the jobs of its grid with :func:`run_jobs`, rewrite the results file after every
finished run, and print the experiment's table at the end.

Same seed, same bits: every job runs with the same BLAS thread count (one unless asked,
:mod:`minidni.tools.threads`), dtype and backend whether it runs in this process or in a
worker, so ``workers`` changes how long an experiment takes, never its numbers.
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

import numpy as np

from .. import backend
from ..tools import monitor, progress, threads
from ..tools.monitor import Diverged
from .results import (
    ResultsFileError,
    differences,
    environment,
    locked,
    move_aside,
    read,
    record,
    save,
)


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
    jobs_of: Callable[[dict], list[dict]] | None = None,
    blas_threads: int | None = None,
    **extra: Any,
) -> dict:
    """What every experiment's ``run`` does: run the jobs ``todo`` with ``job_fn``, write
    the results record (plus ``extra`` keys) to ``<out>/<name>.json``, print ``table``.

    Nothing is lost: the results file is rewritten (atomically) after every finished
    run, with ``"complete": false`` until the last one, under a lock that makes a second
    writer on the same ``out`` wait (:func:`.results.locked`). What is already in that
    file decides what runs (:func:`_plan`): the runs of the same settings are not run
    again (resume), and a file that the new results would not keep whole is moved
    aside, never overwritten. A run that diverges is recorded as such
    (``"diverged": true``) and the others go on. Ctrl-C leaves the partial file and
    says how to resume. ``jobs_of(config)`` gives the jobs of a config (to recognise a
    rerun of part of an earlier grid); ``blas_threads`` the BLAS thread count (default:
    :func:`minidni.tools.threads.requested`).
    """
    started = time.time()
    count = threads.requested(blas_threads)
    path = out / f"{name}.json"
    with locked(path, log):
        env = environment(count)
        config, todo, done, earlier, wanted, kept = _plan(
            path, name, profile, config, todo, env, jobs_of, log
        )
        extra = {**extra, **{k: v for k, v in kept.items() if k in extra}}
        pending = [(i, job) for i, job in enumerate(todo) if i not in done and i in wanted]
        workers = max(1, min(config["workers"], len(pending)))
        log(
            f"{name} ({profile}): {len(todo)} runs, {workers} worker(s), "
            f"{count} BLAS thread(s) each"
        )
        cpus = os.cpu_count() or 1
        if workers * count > cpus:
            log(
                f"note: {workers} worker(s) x {count} BLAS thread(s) on {cpus} CPU(s): the "
                "runs share cores (slower; the numbers are the same)"
            )

        def results(complete: bool) -> dict:
            runs = [done[i] for i in sorted(done)]
            record_ = record(name, profile, config, runs, started, env)
            record_["wall_seconds"] = round(earlier + record_["wall_seconds"], 2)
            return {**record_, **extra, "complete": complete, "runs_total": len(todo)}

        def finished(i: int, run: dict) -> None:
            done[i] = run
            save(results(complete=False), out)

        try:
            run_jobs(job_fn, pending, workers, log, summary, name, finished, len(todo), count)
        except KeyboardInterrupt:
            log(
                f"\ninterrupted: {len(done)} of {len(todo)} runs are saved in {path}; "
                "run the same command again to resume"
            )
            raise
        final = results(complete=len(done) == len(todo))
        log(f"wrote {save(final, out)} ({final['wall_seconds']:.0f}s)")
    log(table(final))
    return final


def _plan(
    path: Path,
    name: str,
    profile: str,
    config: dict,
    todo: list[dict],
    env: dict,
    jobs_of: Callable[[dict], list[dict]] | None,
    log: Callable,
) -> tuple[dict, list[dict], dict[int, dict], float, set[int], dict]:
    """What to do with the results file already at ``path``.

    Returns ``(config, todo, done, earlier, wanted, kept)``: the config and jobs the file
    will hold, the runs already done (index -> run), the wall seconds already spent on
    them, the indices of the jobs asked for now, and the earlier file's record where it
    is kept whole (its notes, e.g. the datasets it ran, stay), else {}.

    - no file: run everything;
    - the same profile, environment (:data:`.results.NUMERICS`) and the runs of the file
      all among the jobs asked for (the same settings, or more seeds, depths, ...):
      resume; the runs there are not run again;
    - a rerun of part of the file's grid (fewer seeds, one depth, ...): the file keeps
      all its runs and its settings, and only the runs asked for that it lacks are run;
    - anything else (other settings, profile, code, BLAS threads, ..., or not a results
      file at all): the file is moved aside (:func:`.results.move_aside`) and the runs
      of the same settings that it holds, where its environment matches, are reused.
    """
    everything = set(range(len(todo)))
    if not path.exists():
        return config, todo, {}, 0.0, everything, {}
    try:
        old = read(path, name)
    except ResultsFileError as e:
        log(f"{e}: moved it to {move_aside(path)}")
        return config, todo, {}, 0.0, everything, {}
    changed = [f"profile {old['profile']} -> {profile}"] if old["profile"] != profile else []
    changed += differences(old["environment"], env)
    if changed:
        log(
            f"{path} was computed with another {', '.join(changed)}: moved it to "
            f"{move_aside(path)}; running every run afresh"
        )
        return config, todo, {}, 0.0, everything, {}
    runs = old["runs"]
    done = {i: run for i, job in enumerate(todo) if (run := _match(job, runs)) is not None}
    earlier = float(old.get("wall_seconds", 0.0))
    if len(done) == len(runs):  # every run of the file is kept: resume
        if done:
            log(
                f"resuming {path}: {len(done)} of {len(todo)} runs are already there with the "
                "same settings and are not run again (use another --out to run them afresh)"
            )
        return config, todo, done, earlier, everything, {}
    grid = jobs_of(old["config"]) if jobs_of is not None else []
    if grid and all(_match(job, [_settings(g) for g in grid]) is not None for job in todo):
        # part of the file's grid: keep the file whole, run what it lacks of that part
        wanted = {i for i, job in enumerate(grid) if _match(job, [_settings(t) for t in todo])}
        have = {i: run for i, job in enumerate(grid) if (run := _match(job, runs)) is not None}
        lacking = len(wanted - set(have))
        log(
            f"{path} holds a larger grid ({len(runs)} of its {len(grid)} runs) that includes "
            f"the {len(todo)} runs asked for: it keeps all its runs and settings; "
            + (f"running the {lacking} it lacks" if lacking else "nothing to run")
        )
        return old["config"], grid, have, earlier, wanted, old
    aside = move_aside(path)
    reuse = f"; {len(done)} run(s) of the same settings are reused from it" if done else ""
    log(
        f"{path} holds {len(runs) - len(done)} of its {len(runs)} runs with other settings "
        f"({_changes(old['config'], config)}): moved it to {aside}, so that none is lost{reuse}"
    )
    reused = sum(run.get("seconds", 0.0) for run in done.values())  # their share of the time
    return config, todo, done, reused, everything, {}


def _changes(old: dict, new: dict, most: int = 3) -> str:
    """The settings that differ between configs ``old`` and ``new``, in a few words,
    e.g. ``steps 400 -> 20, seeds [0, 1, 2] -> [0]``."""
    new = json.loads(json.dumps(new))
    keys = [k for k in new if k not in ("overrides", "workers") and old.get(k) != new[k]]
    words = [f"{k} {json.dumps(old.get(k))} -> {json.dumps(new[k])}" for k in keys[:most]]
    return ", ".join(words + ["..."] * (len(keys) > most)) or "the same settings, other runs"


def _settings(job: dict) -> dict:
    """A job's settings as a results file holds them (after a JSON round trip)."""
    return json.loads(json.dumps({k: v for k, v in job.items() if k not in _NOT_SETTINGS}))


def _match(job: dict, runs: list[dict]) -> dict | None:
    """The first run whose settings are exactly ``job``'s (after a JSON round trip)."""
    settings = _settings(job)
    for run in runs:
        if all(k in run and run[k] == v for k, v in settings.items()):
            return run
    return None


_NOT_SETTINGS = ("data_dir", "backend")  # where a job runs, not what it computes


def _ignore_interrupt() -> None:
    # Ctrl-C is the parent's to handle (it saves, then stops the pool): no worker tracebacks.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_label(job: dict) -> str:
    """A run's settings in a few words, e.g. ``depth=3 method=dni seed=0``."""
    keys = ("dataset", "task", "T", "k", "method", "mode", "depth", "p_update", "staleness")
    return " ".join(f"{k}={job[k]}" for k in keys + ("seed",) if k in job)


# numpy's floating-point errors end a run as diverged (they are never printed); an
# underflow to zero is harmless and expected, e.g. in exp(-large) of a softmax.
FLOAT_ERRORS = {"over": "raise", "invalid": "raise", "divide": "raise", "under": "ignore"}


def guarded(
    fn: Callable[[dict], dict], item: tuple[int, dict, str, bool, int, str]
) -> tuple[int, dict]:
    """Run ``fn(job)`` for ``item = (index, job, label, bars, blas_threads, dtype)`` with
    that many BLAS threads and that dtype; a run that diverges (a loss or parameter not
    finite or far above the first loss, or a floating-point error in numpy) becomes a
    record with ``"diverged": true``, its step and what happened."""
    i, job, label, bars, count, dtype = item
    progress.set_run(label, bars)
    started = time.perf_counter()
    try:
        with threads.limit(count), backend.use_dtype(dtype), np.errstate(**FLOAT_ERRORS):
            return i, fn(job)
    except (Diverged, FloatingPointError) as e:
        if isinstance(e, FloatingPointError):
            e = Diverged(monitor.current_step(), f"numpy made a value not finite: {e}")
        settings = {k: v for k, v in job.items() if k not in _NOT_SETTINGS}
        seconds = round(time.perf_counter() - started, 2)
        return i, {
            **settings,
            "diverged": True,
            "diverged_step": e.step,
            "diverged_at": e.what,
            "seconds": seconds,
        }
    finally:
        monitor.close_active()  # a run stopped by an error leaves no progress bar behind


def run_jobs(
    fn: Callable[[dict], dict],
    jobs: list,
    workers: int,
    log: Callable,
    summary: Callable[[dict], str] | None = None,
    name: str = "",
    finished: Callable[[int, dict], None] | None = None,
    total: int | None = None,
    blas_threads: int = 1,
) -> list:
    """Run ``fn`` on every job, in ``workers`` processes (spawned) when ``workers > 1``,
    each job with ``blas_threads`` BLAS threads wherever it runs. ``jobs`` holds job
    dicts or ``(index, job)`` pairs; ``finished(index, result)`` is called as each run
    ends (in any order), and one line is logged for it: ``summary(result)`` (by default
    its settings and final test error) and the progress over ``total`` runs with the
    time left. Returns the results in the jobs' order."""
    summary = summary or _summary
    pairs = [item if isinstance(item, tuple) else (i, item) for i, item in enumerate(jobs)]
    total = total or len(pairs)
    dtype = next(d for d in backend.DTYPES if getattr(backend.namespace(), d) == backend.dtype())
    items = [
        (
            i,
            {**job, "backend": backend.get_backend()},
            f"{name} {run_label(job)}".strip(),
            workers <= 1,
            blas_threads,
            dtype,
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
            finished(i, result)  # saved before the line is printed: a broken pipe loses nothing
        done = total - len(items) + len(results)
        log(
            f"{line}  {progress.eta_line(done, total, time.perf_counter() - started, len(results))}"
        )

    work = functools.partial(guarded, fn)
    if workers <= 1:
        for item in items:
            report(*work(item))
    else:
        ctx = multiprocessing.get_context("spawn")
        with threads.for_children(blas_threads):  # the workers' BLAS starts with that count
            pool = ctx.Pool(workers, initializer=_ignore_interrupt)
        with pool:
            for i, result in pool.imap_unordered(work, items):
                report(i, result)
    return [results[i] for i, _ in pairs]


def _summary(run: dict) -> str:
    error = 100 * run["final_test_error"]
    return f"  {run_label(run)}: test error {error:.2f}%  ({run['seconds']:.0f}s)"
