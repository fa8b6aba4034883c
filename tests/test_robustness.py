"""Long runs lose nothing and bad input gets a clear error.

- every bad command-line argument, ``--set`` value, combination of settings and
  environment variable ends with exit status 2 and one line on stderr, before any work
  starts, never a traceback; so does a data file that cannot be read;
- a run that diverges (a NaN anywhere, or a loss four orders of magnitude above its
  first) is recorded as ``"diverged": true``, without a numpy warning on the screen,
  and the other runs complete;
- an experiment interrupted after some runs and run again with the same ``--out``
  ends with the same results as an uninterrupted one; Ctrl-C leaves a valid file, and
  so does ``minidni reproduce ... | head``.

The experiments here are the rnn-copy smoke profile (no data files, ~0.1 s a run).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minidni import backend, experiments
from minidni.layers import Linear
from minidni.plots import common as plots_common
from minidni.tools.cli import main
from minidni.tools.monitor import Diverged, Monitor, check_parameters

TIMING = ("seconds", "cpu_seconds", "train_seconds")
ROOT = Path(__file__).resolve().parents[1]


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
        (["reproduce", "ff", "--out", ""], "--out: expects a folder name, got ''"),
        (["reproduce", "ff", "--threads", "0"], "--threads: expects a whole number >= 1"),
        (["figures", "--out", " "], "--out: expects a folder name"),
        (["figures", "--run", "long"], "invalid choice: 'long'"),
        (["parallel", "--staleness", "-1"], "--staleness: expects a whole number >= 0"),
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
        ("seeds=[0, 1, 0]", "--set seeds: expects each value once (0 is repeated)"),
        ("depths=[3, 3]", "--set depths: expects each value once (3 is repeated)"),
        ('methods=["dni", "dni"]', '--set methods: expects each value once ("dni" is'),
        ("workers=0", "--set workers: expects a whole number >= 1"),
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


def test_a_setting_given_twice_is_a_one_line_error(capsys):
    argv = SMOKE + ["--set", "steps=3", "--set", "steps=4"]
    assert "--set steps: given twice" in one_line_error(capsys, argv)


@pytest.mark.parametrize(
    "name, values, expected",
    [
        ("ff", ["train_subset=10"], "batch_size 256 is larger than the 10 training examples"),
        ("ff", ["batch_size=5000"], "batch_size 5000 is larger than the 2048 training"),
        ("ff", ["train_subset=100000"], "train_subset 100000 is more than the 60000 examples"),
        ("ff", ["test_subset=20000"], "test_subset 20000 is more than the 10000 examples"),
        ("ff", ["width=100000000"], "would need about"),
        ("unlock", ["input_hidden=[10000000]"], "more than this machine's"),
        ("update-prob", ["batch_size=3000"], "batch_size 3000 is larger than the 2048"),
        ("rnn-copy", ["budget=3"], "budget 3 is less than one batch of batch_size 8"),
        ("rnn-copy", ["hidden=10000000"], "would need about"),
        ("multinet", ["steps=66"], "steps 66 must be a multiple of k^2 = 4"),
        ("multinet", ["ks=[2, 3]"], "must be a multiple of k^2 = 9"),
        ("ff-cnn", ['channels={"mnist": [100000, 2, 2]}'], "would need about"),
    ],
)
def test_settings_that_do_not_fit_together_fail_before_any_work(capsys, name, values, expected):
    """Checked before any run (or any data file) is touched: a batch larger than its
    data, a subset larger than the data, a model too large for the machine's memory."""
    argv = ["reproduce", name, "--profile", "smoke", "--out", "unused"]
    for value in values:
        argv += ["--set", value]
    assert expected in one_line_error(capsys, argv)


@pytest.mark.parametrize(
    "variable, value, expected",
    [
        ("MINIDNI_PROGRESS_SECONDS", "abc", "MINIDNI_PROGRESS_SECONDS: expects seconds"),
        ("MINIDNI_PROGRESS_SECONDS", "-5", "MINIDNI_PROGRESS_SECONDS: expects seconds"),
        ("MINIDNI_PROGRESS", "loud", "MINIDNI_PROGRESS: expects one of auto, lines, off"),
        ("MINIDNI_THREADS", "0", "MINIDNI_THREADS: expects a whole number of threads >= 1"),
        ("OMP_NUM_THREADS", "many", "OMP_NUM_THREADS: expects a whole number of threads"),
        ("MINIDNI_DATA_DIR", "/no/such/folder", "MINIDNI_DATA_DIR: there is no folder"),
        ("MINIDNI_BACKEND", "tpu", "unknown backend 'tpu'"),
    ],
)
def test_bad_environment_variables_are_one_line_errors(
    capsys, monkeypatch, variable, value, expected
):
    monkeypatch.setenv(variable, value)
    argv = ["reproduce", "rnn-copy", "--profile", "smoke", "--out", "unused"]
    assert expected in one_line_error(capsys, argv)


def test_an_unreadable_data_file_is_a_one_line_error(capsys, monkeypatch, mnist_dir, tmp_path):
    """The system refuses to read an MNIST file (here: as it would without permission)."""
    from minidni.data import cache

    real = Path.read_bytes

    def refuse(path: Path) -> bytes:
        if path.name == "train-labels-idx1-ubyte.gz":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setenv("MINIDNI_DATA_DIR", str(mnist_dir.parent))
    monkeypatch.setattr(cache, "_verified", set())  # verify again, as a fresh process would
    monkeypatch.setattr(Path, "read_bytes", refuse)
    line = one_line_error(capsys, ["reproduce", "ff", "--profile", "smoke", "--out", str(tmp_path)])
    assert not (tmp_path / "ff.json").exists()
    assert "cannot read the data file" in line and "train-labels-idx1-ubyte.gz" in line
    assert "Permission denied" in line


def test_an_out_that_is_a_file_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "taken").write_text("not a folder")
    argv = ["reproduce", "rnn-copy", "--profile", "smoke", "--out", str(tmp_path / "taken")]
    assert "--out: cannot use" in one_line_error(capsys, argv)


def _rates(profile: dict) -> list[tuple[str, str | None]]:
    """Every learning rate of ``profile``: (key, None) for a plain rate, (key, method) for
    each method's entry of a per-method one."""
    rates = []
    for key in ("lr", "sg_lr", "input_lr"):
        if isinstance(profile.get(key), dict):
            rates += [(key, method) for method in profile[key]]
        elif key in profile:
            rates.append((key, None))
    return rates


@pytest.mark.parametrize("name", [*experiments.EXPERIMENTS, "parallel"])
def test_no_learning_rate_of_any_experiment_takes_a_negative_value(name):
    """Bug caught: a range rule that lets a negative rate through ``--set`` (a negative
    learning rate climbs the loss). Every lr, sg_lr and input_lr of every profile, plain
    or per method, refuses -0.001 (and NaN) and takes 0 (a frozen part is legitimate)."""
    from minidni.experiments import parallel, settings

    if name == "parallel":
        profiles = parallel.PROFILES

        def configure(profile, overrides):
            return settings.configure(profiles, profile, overrides)
    else:
        profiles = experiments.load(name).PROFILES

        def configure(profile, overrides):
            return experiments.configure(name, profile, overrides)

    checked = 0
    for profile, config in profiles.items():
        for key, method in _rates(config):
            where = key if method is None else f"{key}.{method}"
            for bad in (-1e-3, float("nan")):
                value = bad if method is None else {method: bad}
                with pytest.raises(settings.SettingError, match=rf"--set {where}: expects a "):
                    configure(profile, {key: value})
            applied = configure(profile, {key: 0 if method is None else {method: 0}})[key]
            assert (applied if method is None else applied[method]) == 0.0
            checked += 1
    assert checked >= 3  # every experiment has a module, an SG model or both to train


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


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_single_bad_entry_in_a_parameter_is_divergence(xp, bad):
    """Bug caught: a check that only sees a NaN or inf through a sum (one NaN entry in a
    large matrix must be found on its own, as must a single +inf or -inf)."""
    layer = Linear(4, 3, backend.RNG(0))
    check_parameters(layer.parameters(), 1)  # finite: no error
    value = backend.to_numpy(layer.W.value).copy()
    value[2, 1] = bad
    layer.W.value = backend.asarray(value)
    with pytest.raises(Diverged, match="step 5: parameter W \\(4, 3\\) is not finite"):
        check_parameters(layer.parameters(), 5)
    check_parameters([layer.b], 5)  # the other parameter is fine


def test_a_loss_far_above_the_first_is_divergence():
    """A loss 10^4 times the first one (here 2.3 -> 3e4) stops the run even though it is
    finite; a loss that rises tenfold does not."""
    monitor = Monitor(10)
    monitor.step(1, 2.3)
    monitor.step(2, 23.0)
    monitor.step(3, 2.3e4 - 1)
    with pytest.raises(Diverged, match="step 4: loss 2.3e\\+04 is above 10000 x the first loss"):
        monitor.step(4, 2.3e4 + 1)
    small = Monitor(10)  # a first loss near 0 is counted as 1: 0.5 later is no divergence
    small.step(1, 1e-6)
    small.step(2, 0.5)


def test_a_finite_blow_up_is_recorded_as_diverged(tmp_path, capsys):
    """A learning rate of 1e9: the loss grows by nine orders of magnitude while still
    finite. Every run is recorded as diverged at its second step, with what happened."""
    argv = ["reproduce", "rnn-copy", "--profile", "smoke", "--out", str(tmp_path)]
    assert main(argv + ["--set", "lr=1e9", "--set", "truncations=[2]"]) == 0
    captured = capsys.readouterr()
    runs = json.loads((tmp_path / "rnn-copy.json").read_text())["runs"]
    assert len(runs) == 6 and all(r["diverged"] and r["diverged_step"] == 2 for r in runs)
    assert all("is above 10000 x the first loss" in r["diverged_at"] for r in runs)
    assert "Warning" not in captured.err


def _overflowing_job(job: dict) -> dict:
    monitor = Monitor(3)
    monitor.step(1, 1.0)
    x = np.full(4, 3e38, dtype=np.float32)
    return {**job, "value": float(np.sum(x * x))}  # overflows to inf in step 2


def test_numpy_floating_point_errors_become_the_diverged_record_not_warnings(capfd):
    """An overflow in numpy inside a job ends that run as diverged, at the step it was in,
    and nothing is printed (numpy would warn on stderr and go on with an infinity)."""
    from minidni.experiments.runner import run_jobs

    (result,) = run_jobs(_overflowing_job, [{"seed": 0}], 1, lambda _: None)
    assert result["diverged"] is True and result["diverged_step"] == 2
    assert result["diverged_at"].startswith("numpy made a value not finite: overflow")
    assert capfd.readouterr().err == ""
    assert np.geterr()["over"] == "warn"  # outside a job, numpy is left as it was


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


def test_interrupted_then_resumed_equals_uninterrupted(tmp_path, ctrl_c_after):
    overrides = {"truncations": [2, 3]}  # 12 runs
    whole = experiments.run("rnn-copy", "smoke", tmp_path / "a", lambda _: None, overrides)

    log = ctrl_c_after(5)
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


def test_a_closed_pipe_ends_the_command_quietly_and_the_file_stays_valid(tmp_path):
    """``minidni reproduce ... | head -1``: when the reader goes away the command ends
    without a word (status 141, as a process ended by SIGPIPE), and the results file
    holds the runs finished so far, resumable. (On a very slow machine every run may end
    before the pipe closes: then the command ends normally with a complete file.)"""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env["PYTHONUNBUFFERED"] = "1"  # each line reaches the pipe at once, as on a terminal
    argv = [sys.executable, "-m", "minidni", "reproduce", "rnn-copy", "--profile", "smoke"]
    argv += ["--out", str(tmp_path), "--set", "truncations=[2, 3]", "--set", "seeds=[0, 1, 2]"]
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    first = proc.stdout.readline()
    proc.stdout.close()  # as head does after its line
    err = proc.stderr.read()
    proc.wait(timeout=300)
    assert first.startswith("rnn-copy (smoke): 36 runs")
    assert proc.returncode in (141, 0) and err == ""
    results = json.loads((tmp_path / "rnn-copy.json").read_text())
    assert results["complete"] is (proc.returncode == 0) and len(results["runs"]) >= 1


# ----------------------------------------------------------------- minidni parallel


@pytest.mark.parametrize(
    "setup, args, expected",
    [
        ("file", [], "--out: cannot use"),
        ("other", ["--append"], "parallel.json was written with other settings (profile quick)"),
        ("corrupt", ["--append"], "parallel.json is not a results file (not JSON"),
        ("folder", [], "parallel.json is a folder, not a results file"),
        (None, ["--set", "layout=[[784, 3], [4, 10]]"], "--set layout: a module's output 3"),
        (None, ["--set", "layout=[[784, 3]]"], "--set layout: the first module reads"),
        (None, ["--set", "staleness=-1"], "--set staleness: expects null or a whole number"),
        (None, ["--set", "lr=1"], "--set lr: a per-method setting"),
    ],
)
def test_parallel_checks_everything_before_any_work(
    tmp_path, capsys, monkeypatch, setup, args, expected
):
    """--out, --append and the settings are checked before the data is even loaded."""
    from minidni.experiments import parallel

    monkeypatch.setattr(parallel, "data", lambda config: pytest.fail("work started"))
    out = tmp_path / "out"
    if setup == "file":
        out.write_text("not a folder")
    elif setup == "folder":
        (out / "parallel.json").mkdir(parents=True)
    elif setup in ("other", "corrupt"):
        out.mkdir()
        other = {"experiment": "parallel", "profile": "quick", "config": {"steps": 1}}
        text = json.dumps({**other, "runs": [], "environment": {}}) if setup == "other" else "{"
        (out / "parallel.json").write_text(text)
    argv = ["parallel", "--profile", "smoke", "--out", str(out), "--mode", "bprop", *args]
    assert expected in one_line_error(capsys, argv)


def test_parallel_moves_an_earlier_file_aside_unless_appending(
    tmp_path, capsys, mnist_dir, monkeypatch
):
    monkeypatch.setenv("MINIDNI_DATA_DIR", str(mnist_dir.parent))
    argv = ["parallel", "--profile", "smoke", "--out", str(tmp_path), "--mode", "bprop"]
    argv += ["--set", "steps=4", "--set", "eval_every=2"]
    assert main(argv) == 0
    first = (tmp_path / "parallel.json").read_bytes()
    assert main(argv) == 0
    (aside,) = tmp_path.glob("parallel.*.json")
    assert aside.read_bytes() == first and "moved it to" in capsys.readouterr().out
    assert main([*argv, "--append"]) == 0
    assert len(json.loads((tmp_path / "parallel.json").read_text())["runs"]) == 2
