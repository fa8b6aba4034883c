"""What every experiment shares: the results record, JSON output, MNIST as Datasets."""

from __future__ import annotations

import functools
import hashlib
import json
import multiprocessing
import os
import platform
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import __version__, backend, progress
from ..monitor import Diverged
from ..train import Dataset
from .settings import SettingError, check_overrides


def mnist(data_dir: str | None = None) -> tuple[Dataset, Dataset]:
    """MNIST train and test sets on the current backend, pixels in [0, 1]."""
    from ..data import load_mnist

    return (
        Dataset.from_numpy(*load_mnist("train", data_dir)),
        Dataset.from_numpy(*load_mnist("test", data_dir)),
    )


def configure(
    profiles: dict, profile: str, overrides: dict | None = None, choices: dict | None = None
) -> dict:
    """The settings of ``profile``, with ``overrides`` (``minidni reproduce --set``) applied.

    Only keys the profile already has may be overridden, each with a value of the
    profile's type and shape (:mod:`.settings`; ``choices``: the experiment's valid
    names); a per-method override may name only some methods. The overrides, as given,
    are kept in the config under ``"overrides"`` so that a results file says it is not
    a stock profile.
    """
    config = dict(profiles[profile])
    if overrides:
        unknown = sorted(set(overrides) - set(config))
        if unknown:
            raise SettingError(
                f"unknown setting(s) {', '.join(unknown)} for profile {profile!r}; "
                f"valid ones are: {', '.join(sorted(config))}"
            )
        config.update(check_overrides(config, overrides, choices))
        config["overrides"] = dict(overrides)
    return config


def record(name: str, profile: str, config: dict, runs: list[dict], started: float) -> dict:
    """The results record every experiment writes.

    ``runs`` holds one dict per (setting, seed): its settings, its seed, its curves and
    its final numbers. ``wall_seconds`` is the time since ``started`` (time.time()).
    """
    return {
        "experiment": name,
        "profile": profile,
        "config": config,
        "seeds": sorted({r["seed"] for r in runs if "seed" in r}),
        "runs": runs,
        "wall_seconds": round(time.time() - started, 2),
        "environment": {
            "minidni": __version__,
            "backend": backend.get_backend(),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "code": code_digest(),
            "commit": git_commit(),
        },
    }


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


@functools.cache
def code_digest() -> str:
    """A short SHA-256 of the library's source (``minidni/**/*.py`` but the plots): two
    results files with the same digest were computed by the same code."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        if "plots" not in path.relative_to(root).parts:
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


@functools.cache
def git_commit() -> str | None:
    """The git commit of the checkout the library runs from (``+dirty`` when its
    ``minidni/`` differs from that commit), or None outside a git checkout: with it, a
    results file names the code that computed it, and a stopped run can be resumed from
    that commit."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "minidni"],
            capture_output=True,
            text=True,
        )
    except OSError:  # no git on this machine
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


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


def save(results: dict, out: Path) -> Path:
    """Write ``<out>/<experiment>.json`` atomically and return its path."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{results['experiment']}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1))
    os.replace(tmp, path)
    return path


@functools.cache
def _mnist_cached(data_dir: str | None, backend_name: str) -> tuple[Dataset, Dataset]:
    return mnist(data_dir)


def mlp_job(job: dict) -> dict:
    """Train one every-layer-decoupled MNIST MLP and return its run record.

    ``job`` holds: method, depth (hidden layers of ``width`` units), seed, steps,
    eval_every, batch_size, lr, sg_lr, sg_hidden, p_update (1 = lockstep) and optionally
    train_subset / test_subset (first rows only, for the smoke profile).
    """
    from ..decoupled import build_mlp
    from ..schedules import Stochastic
    from ..train import fit

    train, test = job_mnist(job)
    rng = backend.RNG(job["seed"])
    p = job.get("p_update", 1.0)
    net = build_mlp(
        job["method"],
        [784] + [job["width"]] * job["depth"] + [10],
        rng,
        lr=job["lr"],
        sg_hidden=tuple(job["sg_hidden"]),
        sg_lr=job["sg_lr"],
        schedule=None if p == 1.0 else Stochastic(p, rng.spawn()),
    )
    history = fit(net, train, test, job["steps"], rng.spawn(), job["batch_size"], job["eval_every"])
    return mlp_record(job, history)


def job_mnist(job: dict) -> tuple[Dataset, Dataset]:
    """MNIST (train, test) on the job's backend, cut to ``train_subset`` / ``test_subset``
    rows when the job has them (the smoke profiles)."""
    backend.set_backend(job.get("backend", backend.get_backend()))
    train, test = _mnist_cached(job.get("data_dir"), backend.get_backend())
    if job.get("train_subset"):
        train = Dataset(train.x[: job["train_subset"]], train.y[: job["train_subset"]])
    if job.get("test_subset"):
        test = Dataset(test.x[: job["test_subset"]], test.y[: job["test_subset"]])
    return train, test


def mlp_record(job: dict, history: Any, **extra: Any) -> dict:
    """The run record of an MNIST job: its settings, curves, final error and seconds."""
    return {
        **{k: v for k, v in job.items() if k not in ("data_dir", "backend")},
        "steps_evaluated": history.steps,
        "test_error": history.test_error,
        "train_loss": history.train_loss,
        "final_test_error": history.final_test_error,
        **extra,
        "seconds": round(history.seconds, 2),
    }


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


def finished_runs(runs: list[dict]) -> list[dict]:
    """The runs that did not diverge."""
    return [r for r in runs if not r.get("diverged")]


def cell(values: list[float], runs: int, fmt: str = ".2f") -> str:
    """A table cell: mean (min-max) of ``values``, noting the ``runs - len(values)``
    runs of that setting that diverged; "diverged" when all did, "-" when none ran."""
    if not values:
        return "diverged" if runs else "-"
    text = f"{sum(values) / len(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"
    return text + (f", {runs - len(values)} diverged" if runs > len(values) else "")


def error_table(results: dict, row_key: str, rows: list, label: str) -> str:
    """Markdown table of final test error %, mean (min-max) over seeds, one row per value
    of ``row_key`` and one column per method; diverged runs are counted, not averaged."""
    methods = results["config"]["methods"]
    lines = [f"| {label} | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for row in rows:
        cells = []
        for method in methods:
            runs = [r for r in results["runs"] if r[row_key] == row and r["method"] == method]
            errs = [100 * r["final_test_error"] for r in finished_runs(runs)]
            cells.append(cell(errs, len(runs)))
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
