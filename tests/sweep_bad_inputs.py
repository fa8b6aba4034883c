"""The sweep of bad and odd inputs: every case a clean refusal or a legitimate acceptance.

Run it as a new user would meet these inputs, each case in a fresh folder and a fresh
``python -m minidni`` process::

    MINIDNI_DATA_DIR=../shared/data python tests/sweep_bad_inputs.py [CATEGORY ...]

It prints one row per case and a summary per category, and exits 1 if any case is not
clean. A case is one of:

- ``refuse``: exit status 2, no traceback, the first line on stderr is
  ``minidni...: error: ...`` naming the problem (the expected words), and no work done
  (no results file written);
- ``accept``: exit status 0, no traceback, and what the case checks afterwards (a valid
  results file, the earlier file kept aside, figures drawn);
- ``process``: a signal or a closed pipe during a run (their own checks below).

``tests/test_bad_inputs.py`` runs every refusal here in-process as part of the test
suite (they fail before any work, so they take milliseconds).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ["--profile", "smoke", "--out", "{out}"]


@dataclass
class Case:
    """One input: ``argv`` after ``minidni`` ("{out}" and "{dir}" are filled in with
    the case's results folder and its scratch folder), ``env`` overrides, an optional
    ``setup(dir)``, and what must happen."""

    category: str
    argv: list[str]
    expect: str  # "refuse", "accept" or "process"
    words: str = ""  # refuse: in the error line; accept: in stdout or stderr
    env: dict = field(default_factory=dict)
    setup: Callable[[Path], None] | None = None
    check: Callable[[Path], str | None] | None = None  # accept: None if fine, else why
    data: bool = False  # needs the MNIST / PTB files


def reproduce(name: str, *sets: str, out: bool = True) -> list[str]:
    argv = ["reproduce", name, *SMOKE] if out else ["reproduce", name, "--profile", "smoke"]
    for value in sets:
        argv += ["--set", value]
    return argv


def refuse(category: str, argv: list[str], words: str, **kw) -> Case:
    return Case(category, argv, "refuse", words, **kw)


def accept(category: str, argv: list[str], words: str = "", **kw) -> Case:
    return Case(category, argv, "accept", words, **kw)


# ----------------------------------------------------------------- setups and checks


def write(relative: str, content: bytes | str) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        path = d / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)

    return setup


def folder(relative: str) -> Callable[[Path], None]:
    return lambda d: (d / relative).mkdir(parents=True)


def results_of(name: str, runs: int) -> Callable[[Path], str | None]:
    """A check: ``out/NAME.json`` is a complete results file with ``runs`` runs."""

    def check(d: Path) -> str | None:
        results = json.loads((d / "out" / f"{name}.json").read_text())
        ok = results["complete"] and len(results["runs"]) == runs
        return None if ok else f"{len(results['runs'])} runs, complete {results['complete']}"

    return check


def kept_aside(content: bytes, name: str = "rnn-copy") -> Callable[[Path], str | None]:
    """A check: the earlier file is kept, byte for byte, as NAME.<time>.json."""

    def check(d: Path) -> str | None:
        aside = list((d / "out").glob(f"{name}.*.json"))
        if len(aside) != 1 or aside[0].read_bytes() != content:
            return f"earlier file not kept: {aside}"
        return results_of(name, 6)(d)

    return check


def earlier_run(*sets: str) -> Callable[[Path], None]:
    """A setup: an rnn-copy smoke run into out/ first (with ``sets``)."""

    def setup(d: Path) -> None:
        argv = [sys.executable, "-m", "minidni", *reproduce("rnn-copy", *sets)]
        argv = [a.replace("{out}", str(d / "out")) for a in argv]
        subprocess.run(argv, env=_env({}), capture_output=True, check=True, cwd=d)
        shutil.copy(d / "out" / "rnn-copy.json", d / "earlier.json")

    return setup


def earlier_kept_and(runs: int, seeds: list[int]) -> Callable[[Path], str | None]:
    """A check: the earlier run's file survives (in place or aside) with all its runs."""

    def check(d: Path) -> str | None:
        earlier = json.loads((d / "earlier.json").read_text())["runs"]
        files = [d / "out" / "rnn-copy.json", *(d / "out").glob("rnn-copy.*.json")]
        kept = [r for f in files for r in json.loads(f.read_text())["runs"]]
        if any(r not in kept for r in earlier):
            return "runs of the earlier file were lost"
        now = json.loads((d / "out" / "rnn-copy.json").read_text())
        if len(now["runs"]) != runs or sorted({r["seed"] for r in now["runs"]}) != seeds:
            return f"{len(now['runs'])} runs, seeds {sorted({r['seed'] for r in now['runs']})}"
        return None

    return check


def mnist_copy(damage: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    """A setup: a data folder dir/data with MNIST, one file damaged by ``damage``."""

    def setup(d: Path) -> None:
        source = Path(os.environ["MINIDNI_DATA_DIR"]) / "mnist"
        shutil.copytree(source, d / "data" / "mnist")
        path = d / "data" / "mnist" / "train-labels-idx1-ubyte.gz"
        path.write_bytes(damage(path.read_bytes()))

    return setup


def figures_drawn(*names: str) -> Callable[[Path], str | None]:
    def check(d: Path) -> str | None:
        missing = [n for n in names if not (d / "out" / "figures" / n).is_file()]
        return f"not drawn: {missing}" if missing else None

    return check


def flip_byte(raw: bytes) -> bytes:
    content = bytearray(gzip.decompress(raw))
    content[100] ^= 0xFF
    return gzip.compress(bytes(content))


def with_figure_files(extra: dict) -> Callable[[Path], None]:
    """A setup: out/ with a real rnn-copy results file and ``extra`` files (name ->
    content; "COPY": the rnn-copy file; "COPY-AS-PARALLEL": it, named a parallel one;
    "FOLDER": a folder under that name)."""

    def setup(d: Path) -> None:
        out = d / "out"
        out.mkdir(parents=True, exist_ok=True)
        (out / "rnn-copy.json").write_text(RNN_RESULTS)
        for name, content in extra.items():
            if content == "FOLDER":
                (out / name).mkdir()
                continue
            if content == "COPY":
                content = RNN_RESULTS
            elif content == "COPY-AS-PARALLEL":
                content = json.dumps({**json.loads(RNN_RESULTS), "experiment": "parallel"})
            (out / name).write_bytes(content.encode() if isinstance(content, str) else content)

    return setup


RNN_RESULTS = "{}"  # set by main() (and the tests): a real rnn-copy results file
ONE_T = reproduce("rnn-copy", "truncations=[2]")  # 6 runs, about a second
SIX_RUNS = results_of("rnn-copy", 6)
RESULTS = "out/rnn-copy.json"
UNDER_A_FILE = ["reproduce", "rnn-copy", "--profile", "smoke", "--out", "{dir}/f/sub"]
DATA = {"MINIDNI_DATA_DIR": "{dir}/data"}
FIGURES = ["figures", "--results", "{out}"]
DRAWN = figures_drawn("rnn_copy.png")
OTHER_PARALLEL = {
    "experiment": "parallel",
    "profile": "quick",
    "config": {},
    "runs": [],
    "environment": {},
}

# ----------------------------------------------------------------- the cases

CASES: list[Case] = [
    # A. command-line arguments
    refuse("arguments", ["demo", "--epochs", "0"], "--epochs: expects a whole number >= 1"),
    refuse("arguments", ["demo", "--epochs", "two"], "--epochs: expects a whole number >= 1"),
    refuse("arguments", ["demo", "--methods", "bprop,sg"], "names out of bprop, dni, cdni"),
    refuse("arguments", ["demo", "--seed", "-3"], "--seed: expects a whole number >= 0"),
    refuse("arguments", ["demo", "--epochz", "3"], "unrecognized arguments: --epochz 3"),
    refuse("arguments", ["gradcheck", "--tol=-1e-3"], "--tol: expects a number >= 0"),
    refuse("arguments", ["gradcheck", "--tol", "nan"], "--tol: expects a number >= 0"),
    refuse("arguments", ["bench", "--steps", "0"], "--steps: expects a whole number >= 1"),
    refuse("arguments", ["bench", "--batch", "1.5"], "--batch: expects a whole number >= 1"),
    refuse("arguments", ["bench", "--depths", "3,x"], "--depths: expects whole numbers"),
    refuse("arguments", ["reproduce", "cifar"], "invalid choice: 'cifar'"),
    refuse("arguments", ["reproduce"], "the following arguments are required: name"),
    refuse("arguments", ["reproduce", "ff", "--profile", "huge"], "invalid choice: 'huge'"),
    refuse("arguments", ["reproduce", "ff", "--out", ""], "--out: expects a folder name"),
    refuse("arguments", ["reproduce", "ff", "--threads", "0"], "--threads: expects a whole"),
    refuse("arguments", ["reproduce", "ff", "--set"], "--set: expected one argument"),
    refuse("arguments", ["reproduce", "ff", "--profile", "long"], "has no profile 'long'"),
    refuse("arguments", ["figures", "--only", "ff,fff"], "--only: expects comma-separated"),
    refuse("arguments", ["figures", "--run", "long"], "invalid choice: 'long'"),
    refuse("arguments", ["figures", "--out", ""], "--out: expects a folder name"),
    refuse("arguments", ["--backend", "tpu", "demo"], "invalid choice: 'tpu'"),
    refuse("arguments", [], "the following arguments are required: COMMAND"),
    refuse("arguments", ["parallel", "--staleness", "-1"], "--staleness: expects a whole"),
    refuse("arguments", ["parallel", "--profile", "full"], "invalid choice: 'full'"),
    refuse("arguments", ["parallel", "--mode", "dn", "--out", "{out}"], "unknown mode(s) dn"),
    accept("arguments", ["--version"], "minidni 0.1.0"),
    accept("arguments", ["reproduce", "--help"], "NAME.<time>.json"),
    accept("arguments", ["async", "--help"], "OMP_NUM_THREADS"),
    # B. --set values, one at a time
    refuse("--set", reproduce("ff", "lr=1000"), "--set lr: a per-method setting, expects"),
    refuse("--set", reproduce("ff", 'lr={"dni": "fast"}'), "--set lr.dni: expects a number >= 0"),
    refuse("--set", reproduce("ff", 'lr={"sgd": 0.1}'), "'sgd' is not one"),
    refuse("--set", reproduce("ff", 'lr={"dni": -0.001}'), "--set lr.dni: expects a number >= 0"),
    refuse("--set", reproduce("ff", 'sg_lr={"cdni": -1}'), "--set sg_lr.cdni: expects a number"),
    refuse("--set", reproduce("ff", 'sg_hidden={"dni": [0]}'), "--set sg_hidden.dni: expects"),
    refuse("--set", reproduce("ff", "depths=abc"), "--set depths: expects a non-empty list"),
    refuse("--set", reproduce("ff", "depths=[3, 0]"), "--set depths: expects a non-empty list"),
    refuse("--set", reproduce("ff", "depths=[]"), "--set depths: expects a non-empty list"),
    refuse("--set", reproduce("ff", "depths=[3, 3]"), "--set depths: expects each value once"),
    refuse("--set", reproduce("ff", "steps=2.5"), "--set steps: expects a whole number >= 1"),
    refuse("--set", reproduce("ff", "steps=0"), "--set steps: expects a whole number >= 1"),
    refuse("--set", reproduce("ff", "steps=true"), "--set steps: expects a whole number >= 1"),
    refuse("--set", reproduce("ff", "steps=1e3"), "--set steps: expects a whole number >= 1"),
    refuse("--set", reproduce("ff", "seeds=[-1]"), "--set seeds: expects a non-empty list"),
    refuse("--set", reproduce("ff", "seeds=[0, 0]"), "--set seeds: expects each value once"),
    refuse("--set", reproduce("ff", 'methods=["bprop", "bptt"]'), "--set methods: expects"),
    refuse("--set", reproduce("ff", "stepz=3"), "unknown setting(s) stepz"),
    refuse("--set", reproduce("ff", "steps"), "--set expects KEY=VALUE"),
    refuse("--set", reproduce("ff", "=3"), "--set expects KEY=VALUE"),
    refuse("--set", reproduce("ff", "steps=3", "steps=4"), "--set steps: given twice"),
    refuse("--set", reproduce("ff", "workers=0"), "--set workers: expects a whole number"),
    refuse("--set", reproduce("ff", "eval_every=0"), "--set eval_every: expects a whole"),
    refuse("--set", reproduce("rnn-copy", "threshold=0"), "--set threshold: expects a number > 0"),
    refuse("--set", reproduce("rnn-copy", "threshold=NaN"), "--set threshold: expects a number"),
    refuse("--set", reproduce("rnn-copy", 'tasks=["copy", "sort"]'), "out of copy, repeat_copy"),
    refuse("--set", reproduce("rnn-copy", 'methods=["cdni"]'), "names out of bprop, dni, dni_aux"),
    refuse("--set", reproduce("rnn-copy", "sg_scale=-0.1"), "--set sg_scale: expects a number"),
    refuse("--set", reproduce("rnn-copy", "lr=-1"), "--set lr: expects a number >= 0"),
    refuse("--set", reproduce("rnn-copy", "truncations=[2, 2]"), "expects each value once"),
    refuse("--set", reproduce("rnn-ptb", 'train_split="training"'), "--set train_split: expects"),
    refuse("--set", reproduce("update-prob", "p_update=[0.5, 0]"), "list of numbers in (0, 1]"),
    refuse("--set", reproduce("update-prob", "p_update=[1.5]"), "list of numbers in (0, 1]"),
    refuse("--set", reproduce("unlock", "staleness=[-1]"), "list of whole numbers >= 0"),
    refuse("--set", reproduce("unlock", 'modes=["sg", "both"]'), "names out of sg, unlock"),
    refuse("--set", reproduce("unlock", "input_lr=-1"), "--set input_lr: expects a number >= 0"),
    refuse("--set", reproduce("ff-cnn", 'lr_schedule="linear"'), "--set lr_schedule: expects"),
    refuse("--set", reproduce("ff-cnn", 'datasets=["svhn"]'), "--set datasets: expects"),
    refuse("--set", reproduce("multinet", "ks=[0]"), "--set ks: expects a non-empty list"),
    refuse(
        "--set",
        ["parallel", *SMOKE, "--set", 'lr={"unlock": -1}'],
        "--set lr.unlock: expects a number >= 0",
    ),
    refuse("--set", ["parallel", *SMOKE, "--set", 'staleness="abc"'], "--set staleness: expects"),
    accept("--set", reproduce("rnn-copy", "sg_lr=0", "truncations=[2]"), check=SIX_RUNS),
    # C. settings that do not fit together, or not into memory
    refuse("together", reproduce("ff", "train_subset=10"), "batch_size 256 is larger than the 10"),
    refuse("together", reproduce("ff", "batch_size=5000"), "batch_size 5000 is larger than"),
    refuse("together", reproduce("ff", "train_subset=100000"), "train_subset 100000 is more"),
    refuse("together", reproduce("ff", "test_subset=20000"), "test_subset 20000 is more"),
    refuse("together", reproduce("ff", "width=100000000"), "would need about"),
    refuse("together", reproduce("unlock", "input_hidden=[10000000]"), "would need about"),
    refuse("together", reproduce("update-prob", "batch_size=3000"), "batch_size 3000 is larger"),
    refuse("together", reproduce("rnn-copy", "budget=3"), "budget 3 is less than one batch"),
    refuse("together", reproduce("rnn-copy", "hidden=10000000"), "would need about"),
    refuse("together", reproduce("multinet", "steps=66"), "steps 66 must be a multiple of k^2"),
    refuse("together", reproduce("multinet", "ks=[2, 3]"), "must be a multiple of k^2 = 9"),
    refuse("together", reproduce("ff-cnn", 'channels={"mnist": [100000, 2, 2]}'), "would need"),
    refuse(
        "together",
        reproduce("rnn-ptb", "batch_size=100000"),
        "too few for one window",
        data=True,
    ),
    refuse(
        "together",
        ["parallel", *SMOKE, "--set", "layout=[[784, 3], [4, 10]]"],
        "--set layout: a module's output 3",
    ),
    refuse(
        "together",
        ["parallel", *SMOKE, "--set", "layout=[[100, 3], [3, 10]]"],
        "--set layout: the first module reads the 784 pixels",
    ),
    # D. environment variables
    *[
        refuse("environment", reproduce("rnn-copy"), words, env={var: value})
        for var, value, words in [
            ("MINIDNI_PROGRESS_SECONDS", "abc", "MINIDNI_PROGRESS_SECONDS: expects"),
            ("MINIDNI_PROGRESS_SECONDS", "-1", "MINIDNI_PROGRESS_SECONDS: expects"),
            ("MINIDNI_PROGRESS", "loud", "MINIDNI_PROGRESS: expects one of"),
            ("MINIDNI_THREADS", "0", "MINIDNI_THREADS: expects a whole number"),
            ("OMP_NUM_THREADS", "many", "OMP_NUM_THREADS: expects a whole number"),
            ("MINIDNI_DATA_DIR", "/no/such/folder", "MINIDNI_DATA_DIR: there is no folder"),
            ("MINIDNI_BACKEND", "tpu", "unknown backend 'tpu'"),
        ]
    ],
    refuse(
        "environment",
        reproduce("rnn-copy"),
        "MINIDNI_CACHE_DIR: ",
        env={"MINIDNI_CACHE_DIR": "{dir}/afile"},
        setup=write("afile", "a file, not a folder"),
    ),
    refuse("environment", ["--backend", "cupy", *reproduce("rnn-copy")], "'cupy' is not available"),
    accept("environment", ONE_T, env={"OMP_NUM_THREADS": "2,1"}, check=results_of("rnn-copy", 6)),
    accept("environment", ONE_T, env={"MINIDNI_PROGRESS_SECONDS": "0"}, check=SIX_RUNS),
    # E. --out and what is already there
    refuse("--out", reproduce("rnn-copy"), "--out: cannot use", setup=write("out", "a file")),
    refuse("--out", UNDER_A_FILE, "--out: cannot use", setup=write("f", "a file")),
    refuse(
        "--out",
        reproduce("rnn-copy"),
        "rnn-copy.json is a folder, not a results file",
        setup=folder("out/rnn-copy.json"),
    ),
    *[
        accept("--out", ONE_T, words, setup=write(RESULTS, content), check=kept_aside(content))
        for content, words in [
            (b"\x00\xffbin", "not a results file (not text)"),
            (b"[]", "(a JSON list)"),
            (b"{}", "(no experiment name)"),
            (b'{"runs": [', "not JSON"),
            (b'{"experiment": "ff"}', "holds the results of 'ff'"),
        ]
    ],
    accept(  # the reproduction: other settings on one --out
        "--out",
        ONE_T,
        "moved it to",
        setup=earlier_run("truncations=[2]", "budget=128", "seeds=[0, 1, 2]"),
        check=earlier_kept_and(6, [0]),
    ),
    accept(  # a rerun of some seeds
        "--out",
        ONE_T,
        "nothing to run",
        setup=earlier_run("truncations=[2]", "seeds=[0, 1]"),
        check=earlier_kept_and(12, [0, 1]),
    ),
    accept(  # a rerun with more seeds
        "--out",
        reproduce("rnn-copy", "truncations=[2]", "seeds=[0, 1]"),
        "resuming",
        setup=earlier_run("truncations=[2]"),
        check=earlier_kept_and(12, [0, 1]),
    ),
    # F. data files
    *[
        refuse("data", reproduce("ff"), words, env=DATA, setup=mnist_copy(damage), data=True)
        for damage, words in [
            (lambda raw: raw[: len(raw) // 2], "is not a valid gzip file"),
            (flip_byte, "checksum mismatch"),
            (lambda raw: b"not gzip at all", "is not a valid gzip file"),
        ]
    ],
    # G. minidni figures
    refuse("figures", ["figures", "--results", "{dir}/nowhere"], "--results: there is no folder"),
    *[
        accept("figures", FIGURES, words, setup=with_figure_files(extra), check=DRAWN)
        for extra, words in [
            ({"ff.json": b"{"}, "not a results file (not JSON"),
            ({"ff.json": b"\x00\xff"}, "not a results file (not text)"),
            ({"unlock.json": b"[]"}, "(a JSON list)"),
            ({"ff-cnn.json": b"{}"}, "(no experiment name)"),
            ({"multinet.json": "COPY"}, "holds the results of 'rnn-copy'"),
            ({"parallel.json": "COPY-AS-PARALLEL"}, "skipping a figure of"),
            ({"ff.json": "FOLDER"}, "a folder, not a results file"),
        ]
    ],
    accept("figures", [*FIGURES, "--only", "rnn-copy"], setup=with_figure_files({}), check=DRAWN),
    # H. minidni parallel: every check before any work
    refuse("parallel", ["parallel", *SMOKE], "--out: cannot use", setup=write("out", "a file")),
    refuse(
        "parallel",
        ["parallel", *SMOKE, "--append"],
        "was written with other settings",
        setup=write("out/parallel.json", json.dumps(OTHER_PARALLEL)),
    ),
    refuse(
        "parallel",
        ["parallel", *SMOKE, "--append"],
        "parallel.json is not a results file",
        setup=write("out/parallel.json", "{"),
    ),
    refuse(
        "parallel", ["parallel", *SMOKE], "OMP_NUM_THREADS: expects", env={"OMP_NUM_THREADS": "x"}
    ),
    accept(
        "parallel",
        ["parallel", *SMOKE, "--mode", "bprop", "--set", "steps=4", "--set", "eval_every=2"],
        "wrote",
        env={"OMP_NUM_THREADS": "2,1"},
        data=True,
    ),
    # I. signals and pipes during a run
    Case("process", ["broken pipe"], "process"),
    Case("process", ["Ctrl-C"], "process"),
    Case("process", ["kill -9"], "process"),
    Case("process", ["two writers"], "process"),
]


# ----------------------------------------------------------------- running the sweep


def _env(extra: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.update(extra)
    return env


def fill(text: str, d: Path) -> str:
    return text.replace("{out}", str(d / "out")).replace("{dir}", str(d))


def run_case(case: Case, d: Path) -> tuple[bool, str]:
    """Run one case in a fresh process in folder ``d``: (clean, what happened)."""
    if case.expect == "process":
        return PROCESS[case.argv[0]](d)
    if case.setup is not None:
        case.setup(d)
    before = _results_files(d)
    env = _env({k: fill(v, d) for k, v in case.env.items()})
    argv = [sys.executable, "-m", "minidni", *(fill(a, d) for a in case.argv)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=d, timeout=600)
    err = done.stderr.strip().splitlines()
    said = done.stdout + done.stderr
    if "Traceback" in said:
        return False, "traceback: " + said[-300:]
    if case.expect == "refuse":
        first = err[0] if err else ""
        ok = done.returncode == 2 and case.words in first and "error:" in first
        untouched = _results_files(d) == before  # no work: no results file written
        return ok and untouched, f"exit {done.returncode}: {first[:150]}"
    ok = done.returncode == 0 and case.words in said
    why = case.check(d) if ok and case.check is not None else None
    return ok and why is None, f"exit {done.returncode}" + (f": {why}" if why else "")


def _results_files(d: Path) -> dict:
    """Every JSON file under ``d/out`` with its modification time."""
    out = d / "out"
    return {p: p.stat().st_mtime_ns for p in out.rglob("*.json")} if out.is_dir() else {}


def _start(d: Path, *sets: str, unbuffered: bool = False) -> subprocess.Popen:
    argv = [sys.executable, "-m", "minidni", *reproduce("rnn-copy", *sets)]
    env = _env({"PYTHONUNBUFFERED": "1"} if unbuffered else {})
    return subprocess.Popen(
        [fill(a, d) for a in argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=d,
        preexec_fn=_ctrl_c_as_on_a_terminal,
    )


def _ctrl_c_as_on_a_terminal() -> None:
    # A sweep started in the background (cmd &) passes on an ignored SIGINT, and Python
    # then never sees Ctrl-C; a command typed at a terminal gets the default handling.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _valid(d: Path) -> dict:
    return json.loads((d / "out" / "rnn-copy.json").read_text())


def broken_pipe(d: Path) -> tuple[bool, str]:
    proc = _start(d, "truncations=[2, 3]", "seeds=[0, 1, 2]", unbuffered=True)
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    proc.wait(timeout=300)
    results = _valid(d)
    ok = proc.returncode in (141, 0) and err == "" and len(results["runs"]) >= 1
    return ok, f"exit {proc.returncode}, {len(results['runs'])} runs saved, stderr {err!r:.60}"


def interrupted(d: Path, sig: int) -> tuple[bool, str]:
    """Stop a run with ``sig`` after its third finished run; resume; compare with an
    uninterrupted run (timings aside)."""
    proc = _start(d, *LONGER, unbuffered=True)
    for _ in range(4):  # the header and three finished runs
        proc.stdout.readline()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=300)
    partial = _valid(d)
    resumed = _start(d, *LONGER)
    _, resumed_err = resumed.communicate(timeout=300)
    whole = d / "whole"
    whole.mkdir()
    (whole_run := _start(whole, *LONGER)).communicate(timeout=300)
    if whole_run.returncode != 0:
        return False, "the uninterrupted run failed"

    def numbers(results: dict) -> list[dict]:
        timing = ("seconds", "cpu_seconds", "train_seconds")
        return [{k: v for k, v in r.items() if k not in timing} for r in results["runs"]]

    same = numbers(_valid(d)) == numbers(_valid(whole))
    expected = 130 if sig == signal.SIGINT else -signal.SIGKILL
    ok = proc.returncode == expected and "Traceback" not in err + resumed_err
    ok = ok and resumed.returncode == 0
    ok = ok and same and not partial["complete"]
    return ok, (
        f"exit {proc.returncode}, {len(partial['runs'])} runs saved (valid JSON), resumed "
        f"exit {resumed.returncode}, equal to an uninterrupted run: {same}"
    )


def two_writers(d: Path) -> tuple[bool, str]:
    procs = [_start(d) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    results = _valid(d)
    runs = sum(o.count("elapsed") for o, _ in outputs)
    ok = all(p.returncode == 0 for p in procs) and results["complete"] and runs == 12
    ok = ok and not any("Traceback" in e for _, e in outputs)
    codes = [p.returncode for p in procs]
    return ok, f"exits {codes}, valid complete file, {runs} runs computed between them"


LONGER = ("truncations=[2, 3, 4, 5]",)  # 24 runs: time to stop it in the middle
PROCESS = {
    "broken pipe": broken_pipe,
    "Ctrl-C": lambda d: interrupted(d, signal.SIGINT),
    "kill -9": lambda d: interrupted(d, signal.SIGKILL),
    "two writers": two_writers,
}


def main(categories: list[str]) -> int:
    global RNN_RESULTS
    if not os.environ.get("MINIDNI_DATA_DIR"):
        print("set MINIDNI_DATA_DIR to the data folder (MNIST, PTB) first")
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        seed = Path(scratch) / "seed"
        argv = [sys.executable, "-m", "minidni", "reproduce", "rnn-copy", "--profile", "smoke"]
        argv += ["--out", str(seed), "--set", "truncations=[2]"]
        subprocess.run(argv, env=_env({}), capture_output=True, check=True)
        RNN_RESULTS = (seed / "rnn-copy.json").read_text()
        summary: dict[str, list[int]] = {}
        for n, case in enumerate(CASES, 1):
            if categories and case.category not in categories:
                continue
            d = Path(scratch) / f"case{n}"
            d.mkdir()
            clean, what = run_case(case, d)
            counts = summary.setdefault(case.category, [0, 0, 0])
            counts[0 if case.expect == "refuse" else 1] += 1
            counts[2] += not clean
            shown = " ".join(case.argv)[:70]
            verdict = "ok " if clean else "BAD"
            print(f"{n:3d} {case.category:<12} {case.expect:<8} {verdict} {shown:<70} {what}")
            sys.stdout.flush()
    print("\ncategory      cases  refused  accepted  not clean")
    for category, (refused, accepted, bad) in summary.items():
        print(f"{category:<12} {refused + accepted:6d} {refused:8d} {accepted:9d} {bad:10d}")
    total = [sum(c[i] for c in summary.values()) for i in range(3)]
    print(f"{'all':<12} {total[0] + total[1]:6d} {total[0]:8d} {total[1]:9d} {total[2]:10d}")
    return 1 if total[2] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
