"""Long runs lose nothing and bad input gets a clear error.

- every bad command-line argument and ``--set`` value ends with exit status 2 and one
  line on stderr, before any work starts, never a traceback;
- a run that diverges is recorded as ``"diverged": true`` and the other runs complete;
- an experiment interrupted after some runs and run again with the same ``--out``
  ends with the same results as an uninterrupted one, and Ctrl-C leaves a valid file.

The experiments here are the rnn-copy smoke profile (no data files, ~0.1 s a run).
"""

from __future__ import annotations

import json
import re

import pytest

from minidni import backend, experiments
from minidni.layers import Linear
from minidni.plots import common as plots_common
from minidni.tools.cli import main
from minidni.tools.monitor import Diverged, Monitor, check_parameters

TIMING = ("seconds", "cpu_seconds", "train_seconds")


def one_line_error(capsys, argv: list[str]) -> str:
    """Run the command; assert exit status 2 and exactly one line on stderr; return it."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    return lines[0]


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["demo", "--epochs", "0"], "--epochs: expects a whole number >= 1, got '0'"),
        (["demo", "--epochs", "-1"], "--epochs: expects a whole number >= 1, got '-1'"),
        (["demo", "--epochs", "two"], "--epochs: expects a whole number >= 1"),
        (["demo", "--methods", "bprop,sg"], "names out of bprop, dni, cdni, got 'bprop,sg'"),
        (["demo", "--seed", "-3"], "--seed: expects a whole number >= 0"),
        (["gradcheck", "--tol=-1e-3"], "--tol: expects a number >= 0"),
        (["gradcheck", "--tol", "nan"], "--tol: expects a number >= 0"),
        (["bench", "--steps", "0"], "--steps: expects a whole number >= 1"),
        (["bench", "--batch", "1.5"], "--batch: expects a whole number >= 1"),
        (["reproduce", "cifar"], "invalid choice: 'cifar'"),
        (["reproduce", "ff", "--profile", "huge"], "invalid choice: 'huge'"),
        (["figures", "--only", "ff,fff"], "--only: expects comma-separated names"),
        (["--backend", "tpu", "demo"], "invalid choice: 'tpu'"),
        (["demo", "--epochz", "3"], "unrecognized arguments: --epochz 3"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_bad_arguments_are_one_line_errors(capsys, argv, expected):
    assert expected in one_line_error(capsys, argv)


SMOKE = ["reproduce", "ff", "--profile", "smoke", "--out", "unused"]


@pytest.mark.parametrize(
    "value, expected",
    [
        # a per-method setting says so and shows an example
        (
            "lr=1000",
            "--set lr: a per-method setting, expects a JSON object mapping method "
            'names (bprop, dni, cdni) to numbers >= 0, e.g. --set \'lr={"bprop": 0.001',
        ),
        ('lr={"dni": "fast"}', "--set lr.dni: expects a number >= 0"),
        ('lr={"sgd": 0.1}', "'sgd' is not one"),
        ('sg_hidden={"dni": [0]}', "--set sg_hidden.dni: expects a list of whole numbers >= 1"),
        # one per type: list of whole numbers, whole number, number, names, bool-free ints
        (
            "depths=abc",
            "--set depths: expects a non-empty list of whole numbers >= 1, "
            "e.g. --set 'depths=[3]'; got \"abc\"",
        ),
        ("depths=[3, 0]", "--set depths: expects a non-empty list of whole numbers >= 1"),
        ("depths=[]", "--set depths: expects a non-empty list"),
        ("steps=2.5", "--set steps: expects a whole number >= 1"),
        ("steps=0", "--set steps: expects a whole number >= 1"),
        ("steps=true", "--set steps: expects a whole number >= 1"),
        ("seeds=[-1]", "--set seeds: expects a non-empty list of whole numbers >= 0"),
        (
            'methods=["bprop", "bptt"]',
            "--set methods: expects a non-empty list of names out of bprop, dni, cdni",
        ),
        ("stepz=3", "unknown setting(s) stepz"),
        ("steps", "--set expects KEY=VALUE"),
    ],
)
def test_bad_set_values_are_one_line_errors(capsys, value, expected):
    assert expected in one_line_error(capsys, SMOKE + ["--set", value])


@pytest.mark.parametrize(
    "name, value, expected",
    [
        ("rnn-copy", "threshold=0", "--set threshold: expects a number > 0"),
        ("rnn-copy", "threshold=NaN", "--set threshold: expects a number > 0"),
        ("rnn-copy", 'tasks=["copy", "sort"]', "names out of copy, repeat_copy"),
        ("rnn-copy", 'methods=["cdni"]', "names out of bprop, dni, dni_aux"),
        ("rnn-copy", "sg_scale=-0.1", "--set sg_scale: expects a number >= 0"),
        ("rnn-ptb", 'train_split="training"', "--set train_split: expects one of auto, train"),
        ("update-prob", "p_update=[0.5, 0]", "list of numbers in (0, 1]"),
        ("unlock", "staleness=[-1]", "list of whole numbers >= 0"),
        ("unlock", 'modes=["sg", "both"]', "names out of sg, unlock"),
    ],
)
def test_bad_set_values_of_every_experiment(capsys, name, value, expected):
    argv = ["reproduce", name, "--profile", "smoke", "--out", "unused", "--set", value]
    assert expected in one_line_error(capsys, argv)


def test_an_out_that_is_a_file_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "taken").write_text("not a folder")
    argv = ["reproduce", "rnn-copy", "--profile", "smoke", "--out", str(tmp_path / "taken")]
    assert "--out: cannot use" in one_line_error(capsys, argv)


def test_good_set_values_are_completed_and_kept():
    """A per-method override may name one method; ints are accepted where floats are due."""
    config = experiments.configure("ff", "smoke", {"lr": {"dni": 1}, "steps": 5})
    assert config["lr"] == {"bprop": 1e-3, "dni": 1.0, "cdni": 1e-3}
    assert isinstance(config["lr"]["dni"], float)
    assert config["steps"] == 5 and config["overrides"] == {"lr": {"dni": 1}, "steps": 5}


@pytest.mark.parametrize(
    "build, expected",
    [
        (lambda rng: Linear(0, 3, rng), "Linear: d_in must be a whole number >= 1, got 0"),
        (lambda rng: Linear(3, 2.5, rng), "d_out must be a whole number >= 1, got 2.5"),
    ],
)
def test_constructors_reject_bad_sizes(build, expected):
    with pytest.raises(ValueError, match=expected):
        build(backend.RNG(0))


def test_constructors_reject_bad_rates_and_lengths():
    from minidni.decoupled import build_mlp
    from minidni.lstm import LSTM
    from minidni.optim import SGD, Adam
    from minidni.schedules import Stochastic
    from minidni.synthetic import SyntheticGradient
    from minidni.tbptt import TBPTT

    rng = backend.RNG(0)
    p = Linear(2, 2, rng).parameters()
    cases = [
        (lambda: Adam(p, lr=-1e-3), "Adam: lr must be a finite number >= 0, got -0.001"),
        (lambda: Adam(p, lr=float("nan")), "Adam: lr must be a finite number >= 0"),
        (lambda: SGD(p, lr=0.1, momentum=1.5), "SGD: momentum must be a finite number in"),
        (lambda: LSTM(3, 0, rng), "LSTM: d_hidden must be a whole number >= 1, got 0"),
        (lambda: TBPTT(3, 4, 3, rng, T=0), "truncation length T must be a whole number >= 1"),
        (lambda: TBPTT(3, 4, 3, rng, T=2, sg_scale=-1), "sg_scale must be a finite number"),
        (lambda: TBPTT(3, 4, 3, rng, T=2, clip_norm=0), "clip_norm must be a finite number"),
        (lambda: SyntheticGradient(4, rng, hidden=(8, -1)), "every entry of hidden must be"),
        (lambda: SyntheticGradient(4, rng, d_context=-10), "d_context must be a whole number"),
        (lambda: build_mlp("dni", [784, 0, 10], rng), "every entry of sizes must be"),
        (lambda: build_mlp("dni", [784, 16, 10], rng, sg_lr=-1), "sg_lr must be a finite"),
        (lambda: Stochastic(1.5, rng), "p_update must lie in \\[0, 1\\], got 1.5"),
    ]
    for build, expected in cases:
        with pytest.raises(ValueError, match=expected):
            build()


# ----------------------------------------------------------------- divergence


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # inf * 0 on the way
def test_monitor_names_the_step_and_what_is_not_finite():
    monitor = Monitor(10)
    monitor.step(1, 0.5)
    with pytest.raises(Diverged, match="diverged at step 2: loss is nan") as caught:
        monitor.step(2, float("nan"))
    assert caught.value.step == 2
    layer = Linear(2, 2, backend.RNG(0))
    check_parameters(layer.parameters(), 3)  # finite: no error
    xp = backend.namespace()
    layer.W.value = layer.W.value * xp.asarray(float("inf"))
    with pytest.raises(Diverged, match="step 7: parameter W \\(2, 2\\) is not finite"):
        check_parameters(layer.parameters(), 7)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflow on the way to NaN
def test_a_diverging_run_is_recorded_and_the_others_complete(tmp_path, capsys):
    """A huge learning rate for the SG model (an LSTM has no BatchNorm to hold it) makes
    the DNI runs diverge; bprop, which has no SG model, is untouched."""
    argv = ["reproduce", "rnn-copy", "--profile", "smoke", "--out", str(tmp_path)]
    assert main(argv + ["--set", "sg_lr=1e38", "--set", "truncations=[2]"]) == 0
    out = capsys.readouterr().out
    results = json.loads((tmp_path / "rnn-copy.json").read_text())
    assert results["complete"] is True and len(results["runs"]) == 6
    for run in results["runs"]:
        if run["method"] == "bprop":
            assert "diverged" not in run and run["solved_length"] >= 0
        else:
            assert run["diverged"] is True and run["diverged_step"] >= 1
            assert "not finite" in run["diverged_at"] or "nan" in run["diverged_at"]
            line = f"rnn-copy task={run['task']} T=2 method={run['method']} seed=0: DIVERGED"
            assert line in out
    assert "| Copy | 0 (0-0) | diverged | diverged |" in out

    from minidni.plots import make_all  # figures draw what finished and count the rest

    assert "rnn_copy.png" in [p.name for p in make_all(tmp_path, tmp_path / "figures")]
    assert "4 run(s) DIVERGED, not drawn" in plots_common.subtitle(
        plots_common.load(tmp_path, "rnn-copy")
    )


# ----------------------------------------------------------------- resume


def _without_timing(results: dict) -> dict:
    runs = [{k: v for k, v in r.items() if k not in TIMING} for r in results["runs"]]
    return {**{k: v for k, v in results.items() if k != "wall_seconds"}, "runs": runs}


class Interrupt:
    """A log that presses Ctrl-C after ``after`` runs have finished."""

    def __init__(self, after: int):
        self.after, self.lines = after, []

    def __call__(self, line: str) -> None:
        self.lines.append(line)
        if sum("elapsed" in x for x in self.lines) == self.after:
            raise KeyboardInterrupt


def test_interrupted_then_resumed_equals_uninterrupted(tmp_path):
    overrides = {"truncations": [2, 3]}  # 12 runs
    whole = experiments.run("rnn-copy", "smoke", tmp_path / "a", lambda _: None, overrides)

    log = Interrupt(after=5)
    with pytest.raises(KeyboardInterrupt):
        experiments.run("rnn-copy", "smoke", tmp_path / "b", log, overrides)
    assert "interrupted: 5 of 12 runs are saved in" in log.lines[-1]
    assert "run the same command again to resume" in log.lines[-1]
    partial = json.loads((tmp_path / "b" / "rnn-copy.json").read_text())  # valid JSON
    assert partial["complete"] is False and partial["runs_total"] == 12
    assert len(partial["runs"]) == 5

    lines: list[str] = []
    resumed = experiments.run("rnn-copy", "smoke", tmp_path / "b", lines.append, overrides)
    assert any("5 of 12 runs are already there" in x for x in lines)
    assert sum("elapsed" in x for x in lines) == 7  # only the 7 missing runs ran
    on_disk = json.loads((tmp_path / "b" / "rnn-copy.json").read_text())
    assert _without_timing(on_disk) == _without_timing(json.loads(json.dumps(whole)))
    assert _without_timing(resumed) == _without_timing(whole)
    assert resumed["runs"][:5] == partial["runs"]  # the saved runs were not run again


def test_ctrl_c_on_the_command_line_exits_130_with_a_resume_hint(tmp_path, monkeypatch, capsys):
    from minidni.experiments import rnn_copy

    calls = []

    def job(j):
        calls.append(j)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(j)

    real = rnn_copy.run_job
    monkeypatch.setattr(rnn_copy, "run_job", job)
    argv = ["reproduce", "rnn-copy", "--profile", "smoke", "--out", str(tmp_path)]
    assert main(argv) == 130
    captured = capsys.readouterr()
    assert "interrupted: 2 of 12 runs are saved" in captured.out
    assert captured.err.strip() == "minidni: interrupted"
    assert len(json.loads((tmp_path / "rnn-copy.json").read_text())["runs"]) == 2


def test_progress_lines_carry_an_estimate_of_the_time_left(capsys, monkeypatch):
    from minidni.tools import progress

    monkeypatch.setenv("MINIDNI_PROGRESS", "lines")
    monkeypatch.setenv("MINIDNI_PROGRESS_SECONDS", "0")
    progress.set_run("ff depth=3 method=dni seed=0", bars=False)
    bar = progress.Progress(4, unit="step")
    bar.update()
    bar.close()
    err = capsys.readouterr().err
    assert "ff depth=3 method=dni seed=0: step 1/4 (25%)" in err and "left" in err
    assert "\r" not in err  # readable in a log file
    assert progress.eta_line(3, 12, 30.0, 3) == "[3/12 runs, 0:00:30 elapsed, about 0:01:30 left]"


def test_results_of_other_code_are_not_resumed(tmp_path):
    """After a change to the library, a rerun runs everything again rather than mixing
    numbers computed by two versions of the code."""
    out = tmp_path / "r"
    overrides = {"truncations": [2]}
    experiments.run("rnn-copy", "smoke", out, lambda _: None, overrides)
    path = out / "rnn-copy.json"
    results = json.loads(path.read_text())
    assert len(results["environment"]["code"]) == 16
    commit = results["environment"]["commit"]  # names the code, where it is a git checkout
    assert commit is None or re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", commit), commit
    results["environment"]["code"] = "0" * 16  # as if written before an edit
    path.write_text(json.dumps(results))
    lines: list[str] = []
    experiments.run("rnn-copy", "smoke", out, lines.append, overrides)
    assert not any("already there" in x for x in lines)
    assert sum("elapsed" in x for x in lines) == 6


def test_two_workers_give_the_runs_of_one_in_the_jobs_order(tmp_path):
    """Runs finish in any order in a pool; the results keep the jobs' order and numbers."""
    from minidni.experiments import rnn_copy

    one = experiments.run("rnn-copy", "smoke", tmp_path / "1", lambda _: None, {"truncations": [2]})
    two = experiments.run(
        "rnn-copy", "smoke", tmp_path / "2", lambda _: None, {"truncations": [2], "workers": 2}
    )
    keys = ("task", "T", "method", "seed")
    jobs = rnn_copy.jobs(experiments.configure("rnn-copy", "smoke", {"truncations": [2]}))
    assert [tuple(r[k] for k in keys) for r in two["runs"]] == [
        tuple(j[k] for k in keys) for j in jobs
    ]
    assert _without_timing(two)["runs"] == _without_timing(one)["runs"]
