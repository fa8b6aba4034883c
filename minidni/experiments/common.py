"""What every experiment shares: the results record, JSON output, MNIST as Datasets."""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import __version__, backend
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
    the results record (plus ``extra`` keys) to ``<out>/<name>.json``, print ``table``."""
    started = time.time()
    log(f"{name} ({profile}): {len(todo)} runs, {config['workers']} worker(s)")
    runs = run_jobs(job_fn, todo, config["workers"], log, summary)
    results = {**record(name, profile, config, runs, started), **extra}
    log(f"wrote {save(results, out)} ({results['wall_seconds']:.0f}s)")
    log(table(results))
    return results


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


def _init_worker() -> None:
    # One BLAS thread per worker process: the workers already fill the cores.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"


def run_jobs(
    fn: Callable[[dict], dict],
    jobs: list[dict],
    workers: int,
    log: Callable,
    summary: Callable[[dict], str] | None = None,
) -> list:
    """Run ``fn`` on every job, in ``workers`` processes (spawned, one BLAS thread each)
    when ``workers > 1``; logs one line per finished job (``summary(result)``, by default
    its settings and final test error). Results keep the jobs' order."""
    summary = summary or _summary
    jobs = [{**job, "backend": backend.get_backend()} for job in jobs]
    if workers <= 1:
        results = []
        for job in jobs:
            results.append(fn(job))
            log(summary(results[-1]))
        return results
    _init_worker()  # inherited by the spawned children before they import numpy
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers) as pool:
        results = []
        for result in pool.imap(fn, jobs):
            results.append(result)
            log(summary(result))
    return results


def _summary(run: dict) -> str:
    keys = ("method", "depth", "p_update", "seed")
    what = " ".join(f"{k}={run[k]}" for k in keys if k in run)
    return f"  {what}: test error {100 * run['final_test_error']:.2f}%  ({run['seconds']:.0f}s)"


def error_table(results: dict, row_key: str, rows: list, label: str) -> str:
    """Markdown table of final test error %, mean (min-max) over seeds, one row per value
    of ``row_key`` and one column per method."""
    methods = results["config"]["methods"]
    lines = [f"| {label} | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for row in rows:
        cells = []
        for method in methods:
            errs = [
                100 * r["final_test_error"]
                for r in results["runs"]
                if r[row_key] == row and r["method"] == method
            ]
            cells.append(f"{sum(errs) / len(errs):.2f} ({min(errs):.2f}-{max(errs):.2f})")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
