"""A results file is never lost, never half-written, and never mixes two settings.

- a rerun with other settings, another profile or another environment (code, BLAS
  threads, ...) moves the earlier file aside, byte for byte, and says where;
- a rerun of part of a file's grid (fewer seeds) keeps every run of the file;
- a rerun with more seeds resumes, keeping the runs already there;
- the default ``--out`` is ``results/<profile>``, so profiles never meet;
- two ``minidni reproduce`` processes on one ``--out`` both end with status 0, no
  traceback, one valid file, and every run computed once.

The experiment is the rnn-copy smoke profile (no data files, ~0.1 s a run).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from minidni import experiments
from minidni.experiments import results as results_file
from minidni.tools.cli import main

ROOT = Path(__file__).resolve().parents[1]
ONE_T = {"truncations": [2]}  # 6 runs: 2 tasks x 3 methods, seed 0


def run(out: Path, overrides: dict, profile: str = "smoke") -> tuple[dict, list[str]]:
    """Run rnn-copy into ``out``; return its results and the lines it logged."""
    lines: list[str] = []
    return experiments.run("rnn-copy", profile, out, lines.append, overrides), lines


def ran(lines: list[str]) -> int:
    """How many runs a logged experiment computed (one progress line each)."""
    return sum("elapsed" in line for line in lines)


def aside_files(out: Path) -> list[Path]:
    return sorted(p for p in out.glob("rnn-copy.*.json"))


def test_a_rerun_with_other_settings_moves_the_file_aside_byte_for_byte(tmp_path):
    """The issue's reproduction: more steps and seeds, then the stock smoke profile, on
    one --out. The first results survive unchanged beside the new ones."""
    out = tmp_path / "R"
    run(out, {**ONE_T, "budget": 8 * 16, "seeds": [0, 1, 2]})
    before = (out / "rnn-copy.json").read_bytes()
    results, lines = run(out, ONE_T)
    (aside,) = aside_files(out)
    assert aside.read_bytes() == before  # nothing lost
    assert any(f"moved it to {aside}" in line and "budget 128 -> 96" in line for line in lines)
    assert ran(lines) == 6 and len(results["runs"]) == 6
    assert json.loads((out / "rnn-copy.json").read_text())["config"]["budget"] == 96


def test_a_rerun_of_some_seeds_keeps_every_run_of_the_file(tmp_path):
    """Seeds [0, 1], then seed [1] alone: nothing runs, and the file keeps both seeds."""
    out = tmp_path / "R"
    whole, _ = run(out, {**ONE_T, "seeds": [0, 1]})
    part, lines = run(out, {**ONE_T, "seeds": [1]})
    assert ran(lines) == 0 and aside_files(out) == []
    assert any("keeps all its runs and settings; nothing to run" in line for line in lines)
    on_disk = json.loads((out / "rnn-copy.json").read_text())
    assert on_disk["runs"] == json.loads(json.dumps(whole["runs"])) and len(on_disk["runs"]) == 12
    assert on_disk["config"]["seeds"] == [0, 1] and on_disk["complete"] is True
    assert part["runs"] == whole["runs"]


def test_a_rerun_of_part_of_an_unfinished_grid_runs_only_that_part(tmp_path):
    """Seeds [0, 1] stopped after 3 runs; then seed [0]: only seed 0's missing runs run,
    into the same file, which stays incomplete until seed 1 is done too."""

    lines: list[str] = []

    def stop_after_3(line: str) -> None:
        lines.append(line)
        if ran(lines) == 3:  # seeds 0, 1, 0: the seed is the innermost loop of the grid
            raise KeyboardInterrupt

    out = tmp_path / "R"
    with pytest.raises(KeyboardInterrupt):
        experiments.run("rnn-copy", "smoke", out, stop_after_3, {**ONE_T, "seeds": [0, 1]})
    _, lines = run(out, {**ONE_T, "seeds": [0]})
    on_disk = json.loads((out / "rnn-copy.json").read_text())
    seeds = [r["seed"] for r in on_disk["runs"]]
    assert ran(lines) == 4 and aside_files(out) == []  # seed 0's 6 runs, 2 already there
    assert (seeds.count(0), seeds.count(1)) == (6, 1) and on_disk["complete"] is False
    assert on_disk["runs_total"] == 12 and on_disk["config"]["seeds"] == [0, 1]


def test_a_rerun_with_more_seeds_resumes(tmp_path):
    out = tmp_path / "R"
    first, _ = run(out, ONE_T)
    more, lines = run(out, {**ONE_T, "seeds": [0, 1]})
    assert ran(lines) == 6 and aside_files(out) == []
    assert [r for r in more["runs"] if r["seed"] == 0] == first["runs"]  # kept, not rerun
    assert more["config"]["seeds"] == [0, 1] and len(more["runs"]) == 12


def test_overlapping_seeds_move_the_file_aside_and_reuse_the_shared_runs(tmp_path):
    out = tmp_path / "R"
    run(out, {**ONE_T, "seeds": [0, 1]})
    results, lines = run(out, {**ONE_T, "seeds": [1, 2]})
    (aside,) = aside_files(out)
    assert len(json.loads(aside.read_text())["runs"]) == 12
    assert ran(lines) == 6 and len(results["runs"]) == 12
    assert any("6 run(s) of the same settings are reused" in line for line in lines)


@pytest.mark.parametrize(
    "key, value, words",
    [
        ("blas_threads", 2, "blas_threads 2 -> 1"),
        ("code", "0" * 16, "code 0000000000000000 -> "),
        ("numpy", "1.26.4", "numpy 1.26.4 -> "),
        ("dtype", "float64", "dtype float64 -> float32"),
    ],
)
def test_results_of_another_environment_are_moved_aside_not_resumed(tmp_path, key, value, words):
    """A file computed with other BLAS threads, code, NumPy or dtype holds other bits:
    it is kept aside, and every run is computed again rather than mixed with it."""
    out = tmp_path / "R"
    run(out, ONE_T)
    path = out / "rnn-copy.json"
    earlier = json.loads(path.read_text())
    earlier["environment"][key] = value
    path.write_text(json.dumps(earlier))
    _, lines = run(out, ONE_T)
    assert ran(lines) == 6 and not any("already there" in line for line in lines)
    assert any(words in line and "moved it to" in line for line in lines), lines
    assert json.loads(aside_files(out)[0].read_text())["environment"][key] == value


def test_a_results_file_of_another_profile_is_moved_aside(tmp_path):
    out = tmp_path / "R"
    run(out, ONE_T)
    path = out / "rnn-copy.json"
    earlier = json.loads(path.read_text())
    earlier["profile"] = "quick"
    path.write_text(json.dumps(earlier))
    _, lines = run(out, ONE_T)
    assert ran(lines) == 6 and any("profile quick -> smoke" in line for line in lines)
    assert json.loads(aside_files(out)[0].read_text())["profile"] == "quick"


@pytest.mark.parametrize(
    "content, why",
    [
        (b"\x89\x00\xffbinary", "not text"),
        (b"[]", "a JSON list"),
        (b"{}", "no experiment name"),
        (b'{"experiment": "ff"', "not JSON"),
        (json.dumps({"experiment": "ff", "runs": []}).encode(), "holds the results of 'ff'"),
    ],
)
def test_anything_else_under_the_results_name_is_moved_aside(tmp_path, capsys, content, why):
    """Through the command line: the file is kept aside as it was and the run goes on."""
    out = tmp_path / "R"
    out.mkdir()
    (out / "rnn-copy.json").write_bytes(content)
    argv = ["reproduce", "rnn-copy", "--profile", "smoke", "--out", str(out)]
    assert main(argv + ["--set", "truncations=[2]"]) == 0
    captured = capsys.readouterr()
    (aside,) = aside_files(out)
    assert aside.read_bytes() == content and why in captured.out
    assert json.loads((out / "rnn-copy.json").read_text())["complete"] is True
    assert "Traceback" not in captured.err


def test_move_aside_never_replaces_another_file(tmp_path):
    """Two files written in the same second get distinct names."""
    first, second = tmp_path / "a" / "ff.json", tmp_path / "b" / "ff.json"
    for i, path in enumerate((first, second)):
        path.parent.mkdir()
        path.write_text(f"run {i}")
        os.utime(path, (1_700_000_000, 1_700_000_000))
    one = results_file.move_aside(first)
    (tmp_path / "a" / "ff.json").write_text("run 2")
    os.utime(tmp_path / "a" / "ff.json", (1_700_000_000, 1_700_000_000))
    two = results_file.move_aside(tmp_path / "a" / "ff.json")
    assert one != two and two.name.endswith("-2.json")
    assert (one.read_text(), two.read_text()) == ("run 0", "run 2")


def test_save_leaves_no_temporary_file_and_a_readable_mode(tmp_path):
    path = results_file.save({"experiment": "x", "runs": []}, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
    assert path.stat().st_mode & 0o044 == 0o044 & ~results_file._UMASK  # as a plain file


def test_the_default_out_separates_profiles(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["reproduce", "rnn-copy", "--profile", "smoke", "--set", "truncations=[2]"]) == 0
    assert json.loads(Path("results/smoke/rnn-copy.json").read_text())["profile"] == "smoke"
    assert experiments.default_out("long") == Path("results/long")  # kept in git


def test_a_folder_under_the_results_name_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "rnn-copy.json").mkdir()
    argv = ["reproduce", "rnn-copy", "--profile", "smoke", "--out", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "rnn-copy.json is a folder, not a results file" in err[0]


# ----------------------------------------------------------------- two writers


def test_two_processes_on_one_out_both_finish_with_one_valid_file(tmp_path):
    """Started together on one --out: both exit 0 without a traceback, the file is
    complete and valid, and the 12 runs are computed once between them (the second
    waits for the first and resumes from its file)."""
    out = tmp_path / "R"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "minidni", "reproduce", "rnn-copy", "--profile", "smoke"]
    procs = [
        subprocess.Popen(
            [*argv, "--out", str(out)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (stdout, stderr) in zip(procs, outputs):
        assert p.returncode == 0, stdout + stderr
        assert "Traceback" not in stderr and "Error" not in stderr, stderr
    results = json.loads((out / "rnn-copy.json").read_text())
    assert results["complete"] is True and len(results["runs"]) == 12
    assert sum(ran(stdout.splitlines()) for stdout, _ in outputs) == 12
    assert aside_files(out) == [] and not list(out.glob(".*.tmp"))


def test_a_file_kept_whole_keeps_its_own_notes(tmp_path):
    """A rerun of part of a grid keeps the notes of the whole file (e.g. which datasets
    ff-cnn ran), not those of the part asked for now."""
    from minidni.experiments.runner import run_experiment

    def jobs_of(config: dict) -> list[dict]:
        return [{"seed": s} for s in config["seeds"]]

    def go(seeds: list[int], note: str) -> dict:
        config = {"seeds": seeds, "workers": 1}
        return run_experiment(
            "toy", "smoke", config, jobs_of(config), lambda job: {**job, "x": 1},
            lambda r: "", tmp_path, lambda _: None, lambda r: "", jobs_of, note=note,
        )  # fmt: skip

    go([0, 1], "both seeds")
    part = go([1], "seed 1 only")
    assert part["note"] == "both seeds" and part["config"]["seeds"] == [0, 1]
