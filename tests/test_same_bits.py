"""Same seed, same bits, however the runs are spread over processes.

A multi-threaded matrix product sums in another order than a one-threaded one, so the
BLAS thread count changes the last bits of every number. Every job therefore runs with
one recorded thread count (one by default), in the main process as in each worker:

- an experiment with ``workers=1`` and with ``workers=2`` gives bitwise equal runs,
  and one interrupted under one and resumed under the other gives them too;
- inside every job the BLAS thread count in effect is the recorded one;
- ``minidni`` uses one BLAS thread unless ``--threads`` or the environment asks for more.

The experiment is the rnn-copy smoke profile (no data files, ~0.1 s a run).
"""

from __future__ import annotations

import json

import pytest

from minidni import experiments
from minidni.experiments import rnn_copy
from minidni.experiments.runner import run_jobs
from minidni.tools import threads
from minidni.tools.cli import main

TIMING = ("seconds", "cpu_seconds", "train_seconds")
TWO_T = {"truncations": [2, 5]}  # 12 runs


def numbers(results: dict) -> list[dict]:
    """The runs without their timings: what must be equal bit for bit."""
    return [{k: v for k, v in r.items() if k not in TIMING} for r in results["runs"]]


def probe(job: dict) -> dict:
    """A job that reports the BLAS thread count in effect where it runs."""
    return {**job, "threads_in_effect": threads.in_effect()}


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("one")
    return experiments.run("rnn-copy", "smoke", out, lambda _: None, {**TWO_T, "workers": 1})


def test_one_and_two_workers_give_bitwise_equal_runs(one_worker, tmp_path):
    two = experiments.run("rnn-copy", "smoke", tmp_path, lambda _: None, {**TWO_T, "workers": 2})
    assert numbers(two) == numbers(one_worker)
    assert two["environment"]["blas_threads"] == one_worker["environment"]["blas_threads"] == 1


@pytest.mark.parametrize("first, then", [(1, 2), (2, 1)])
def test_a_run_resumed_with_other_workers_equals_an_uninterrupted_one(
    one_worker, tmp_path, ctrl_c_after, first, then
):
    """Stopped after 5 runs with ``first`` workers, resumed with ``then``: the saved runs
    are kept, the others computed, and every number equals the uninterrupted run's."""
    with pytest.raises(KeyboardInterrupt):
        experiments.run("rnn-copy", "smoke", tmp_path, ctrl_c_after(5), {**TWO_T, "workers": first})
    lines: list[str] = []
    resumed = experiments.run(
        "rnn-copy", "smoke", tmp_path, lines.append, {**TWO_T, "workers": then}
    )
    assert any("5 of 12 runs are already there" in line for line in lines)
    assert sum("elapsed" in line for line in lines) == 7
    assert numbers(resumed) == numbers(one_worker)
    assert numbers(json.loads((tmp_path / "rnn-copy.json").read_text())) == numbers(one_worker)


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("count", [1, 2])
def test_every_job_runs_with_the_thread_count_asked_for(workers, count):
    """In this process (workers=1) and in spawned workers alike."""
    jobs = [{"seed": s} for s in range(3)]
    done = run_jobs(probe, jobs, workers, lambda _: None, lambda r: "", blas_threads=count)
    assert [r["threads_in_effect"] for r in done] == [count] * 3


def test_minidni_uses_one_blas_thread_unless_asked(tmp_path, monkeypatch, capsys):
    """With no thread variable set, a run records and uses 1 thread; --threads 2 records
    and uses 2, and a rerun with 1 does not resume those runs (it moves the file aside)."""
    for var in threads.ENV:
        monkeypatch.delenv(var, raising=False)
    seen = []
    real = rnn_copy.run_job
    monkeypatch.setattr(
        rnn_copy, "run_job", lambda job: seen.append(threads.in_effect()) or real(job)
    )
    argv = ["reproduce", "rnn-copy", "--profile", "smoke", "--out", str(tmp_path)]
    argv += ["--set", "truncations=[2]"]
    assert main(argv) == 0 and set(seen) == {1}
    path = tmp_path / "rnn-copy.json"
    assert json.loads(path.read_text())["environment"]["blas_threads"] == 1
    seen.clear()
    assert main([*argv, "--threads", "2"]) == 0 and set(seen) == {2}
    assert json.loads(path.read_text())["environment"]["blas_threads"] == 2
    assert "blas_threads 1 -> 2" in capsys.readouterr().out
    monkeypatch.setenv("MINIDNI_THREADS", "2")  # the same through the environment: resumed
    assert main(argv) == 0 and "6 of 6 runs are already there" in capsys.readouterr().out


@pytest.mark.parametrize(
    "variables, expected",
    [
        ({}, 1),
        ({"OMP_NUM_THREADS": "3"}, 3),
        ({"OMP_NUM_THREADS": "2,1"}, 2),  # OpenMP's nested form: the first level
        ({"MINIDNI_THREADS": "4", "OMP_NUM_THREADS": "1"}, 4),
    ],
)
def test_the_thread_count_comes_from_the_first_variable_set(monkeypatch, variables, expected):
    for var in threads.ENV:
        monkeypatch.delenv(var, raising=False)
    for var, value in variables.items():
        monkeypatch.setenv(var, value)
    assert threads.requested() == expected
    assert threads.requested(5) == 5  # --threads wins
