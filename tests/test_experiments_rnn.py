"""The recurrent experiments' smoke profiles run, write well-formed JSON, and plot."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from minidni import backend, experiments, sg_quality
from minidni.data import curriculum, has_split
from minidni.experiments import rnn_copy, rnn_ptb
from minidni.plots import make_all
from minidni.plots import rnn as plots
from minidni.tools.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def ptb_root(data_dir: Path) -> Path:
    """The data root holding ``ptb/`` with at least the test and valid splits."""
    path = data_dir / "ptb"
    if not (path / "ptb.char.test.txt").exists() or not (path / "ptb.char.valid.txt").exists():
        reason = f"PTB characters not found in {path}; set MINIDNI_DATA_DIR to the data directory"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return data_dir


@pytest.fixture(scope="module")
def copy_results_dir(tmp_path_factory) -> Path:
    """The rnn-copy smoke profile, run once through the command line (needs no data)."""
    out = tmp_path_factory.mktemp("rnn-results")
    assert main(["reproduce", "rnn-copy", "--profile", "smoke", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def results_dir(copy_results_dir, ptb_root) -> Path:
    """The rnn-ptb smoke profile as well, in the same directory."""
    mp = pytest.MonkeyPatch()
    mp.setenv("MINIDNI_DATA_DIR", str(ptb_root))
    try:
        out = str(copy_results_dir)
        assert main(["reproduce", "rnn-ptb", "--profile", "smoke", "--out", out]) == 0
    finally:
        mp.undo()
    return copy_results_dir


def _load(results_dir: Path, name: str) -> dict:
    return json.loads((results_dir / f"{name}.json").read_text())


def _common(results: dict, name: str, module) -> dict:
    config = module.PROFILES["smoke"]
    assert results["experiment"] == name and results["profile"] == "smoke"
    assert results["config"] == json.loads(json.dumps(config))
    assert results["seeds"] == config["seeds"]
    assert results["wall_seconds"] > 0
    return config


def test_rnn_copy_smoke_json(copy_results_dir):
    """One run per (task, T, method, seed); curves on a common grid; consistent finals."""
    results = _load(copy_results_dir, "rnn-copy")
    config = _common(results, "rnn-copy", rnn_copy)
    runs = results["runs"]
    assert len(runs) == len(rnn_copy.jobs(config))
    settings = {(r["task"], r["T"], r["method"], r["seed"]) for r in runs}
    assert settings == {
        (task, T, m, s)
        for task in config["tasks"]
        for T in config["truncations"]
        for m in config["methods"]
        for s in config["seeds"]
    }
    batches = config["budget"] // config["batch_size"]
    grid = [k * config["batch_size"] for k in range(1, batches + 1) if k % config["log_every"] == 0]
    for run in runs:
        curve = run["curve"]
        assert curve["samples"] == grid and run["samples"] == grid[-1]
        assert all(len(curve[k]) == len(grid) for k in rnn_copy._Log.KEYS)
        assert curve["solved"] == sorted(curve["solved"])  # the level never goes down
        assert curve["solved"][-1] == run["solved_length"] == run["solved_n"] * run["solved_r"]
        assert curve["solved_episode"][-1] == run["solved_episode_length"]
        if run["solved_n"]:
            n, r = run["solved_n"], run["solved_r"]
            assert run["solved_episode_length"] == curriculum.episode_length(run["task"], n, r)
        assert (run["final_n"], run["final_r"]) == (curve["n"][-1], curve["r"][-1])
        assert all(e >= 0 for e in curve["bits_error"])
        if run["method"] == "bprop":  # no M, nothing to score
            assert curve["sg_r2"] == curve["sg_cos"] == curve["sg_r2_zero"] == [None] * len(grid)
        else:
            assert all(v is None or v <= 1 for v in curve["sg_r2"])
            assert all(v is None or -1 <= v <= 1 for v in curve["sg_cos"])
        if run["task"] == "copy":
            assert run["final_r"] == 1
        assert run["seconds"] >= 0
    rows = [line for line in rnn_copy.table(results).splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + len(config["tasks"])


def test_rnn_ptb_smoke_json(results_dir, ptb_root, monkeypatch):
    """One run per (T, method, seed); test BPC finite and below log2(50) + slack."""
    results = _load(results_dir, "rnn-ptb")
    config = _common(results, "rnn-ptb", rnn_ptb)
    monkeypatch.setenv("MINIDNI_DATA_DIR", str(ptb_root))
    assert results["trained_on"] == ("train" if has_split("train") else "valid")
    runs = results["runs"]
    assert len(runs) == len(config["truncations"]) * len(config["methods"]) * len(config["seeds"])
    assert set(results["splits"]) == {"train", "validation", "test"}
    for run in runs:
        assert run["trained_on"] == results["trained_on"]
        assert run["splits"] == results["splits"]
        assert run["test_chars_evaluated"] == config["test_chars"]
        assert run["val_chars_evaluated"] == config["val_chars"]
        assert 0.5 < run["test_bpc"] < 7.0  # log2(50) = 5.64: a fresh model is near it
        curve = run["curve"]
        assert len(curve["segments"]) == len(curve["chars"]) == len(curve["train_bpc"]) > 0
        assert curve["segments"][-1] == config["chars"] // run["T"]
        assert curve["chars"][-1] == curve["segments"][-1] * run["T"] * config["batch_size"]
        # held-out evaluations every val_every characters per stream; the best one is kept
        every = config["val_every"] // run["T"]
        assert curve["val_segments"][:-1] == list(range(every, run["segments_done"], every))
        assert curve["val_segments"][-1] == run["segments_done"]
        assert run["val_bpc"] == min(curve["val_bpc"])
        assert run["best_segments"] == curve["val_segments"][curve["val_bpc"].index(run["val_bpc"])]
    rows = [line for line in rnn_ptb.table(results).splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + len(config["methods"])


def test_rnn_figures_and_table(results_dir, tmp_path):
    """make_all draws the curves and Table 1 as PNG and Markdown from the smoke results."""
    paths = make_all(results_dir, tmp_path / "figures")
    names = {p.name for p in paths}
    assert {"rnn_copy.png", "rnn_ptb.png", "rnn_table.png", "rnn_table.md"} <= names
    assert "rnn_sg_quality.png" in names  # the smoke run has DNI runs, which record it
    for p in paths:
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == PNG
    md = plots.table_markdown(results_dir)
    assert (tmp_path / "figures" / "rnn_table.md").read_text() == md
    lines = [line for line in md.splitlines() if line.startswith("|")]
    header, rows = lines[0], lines[2:]
    # columns: method x T over both experiments (dni_aux only in rnn-copy)
    for label in ("BPTT T=2", "DNI T=5", "DNI + Aux T=2"):
        assert label in header
    assert [row.split("|")[1].strip() for row in rows][:2] == ["Copy", "Repeat Copy"]
    assert rows[2].split("|")[1].strip().startswith("char-PTB")
    ncols = header.count("|")
    assert all(row.count("|") == ncols for row in rows)
    # char-PTB runs every method too: every cell is a number
    cells = [c.strip() for c in rows[2].split("|")[2:-1]]
    assert all(float(cell) > 0 for cell in cells)


def test_results_files_of_older_versions_still_draw_and_tabulate(results_dir, tmp_path):
    """Results files written before the baseline was renamed call bprop "bptt": the tables
    and the figures read them exactly as today's files (tbptt.canonical_method)."""
    old_dir = tmp_path / "old"
    old_dir.mkdir()
    for name in ("rnn-copy", "rnn-ptb"):
        results = _load(results_dir, name)
        assert "bprop" in results["config"]["methods"]
        old = {"bprop": "bptt"}
        results["config"]["methods"] = [old.get(m, m) for m in results["config"]["methods"]]
        for run in results["runs"]:
            run["method"] = old.get(run["method"], run["method"])
        (old_dir / f"{name}.json").write_text(json.dumps(results))
    for module, name in ((rnn_copy, "rnn-copy"), (rnn_ptb, "rnn-ptb")):
        assert module.table(_load(old_dir, name)) == module.table(_load(results_dir, name))
    assert plots.table_markdown(old_dir) == plots.table_markdown(results_dir)
    assert "BPTT T=2" in plots.table_markdown(old_dir)
    drawn_old = plots.make(old_dir, tmp_path / "old_figures")
    drawn_new = plots.make(results_dir, tmp_path / "new_figures")
    assert [p.name for p in drawn_old] == [p.name for p in drawn_new]
    for a, b in zip(drawn_old, drawn_new):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_table_markdown_without_results_is_empty(tmp_path):
    assert plots.table_markdown(tmp_path) == ""
    assert plots.make(tmp_path, tmp_path / "figures") == []


def test_ptb_trains_on_valid_when_train_is_absent(tmp_path, monkeypatch, ptb_root):
    """Offline (no train file) the experiment trains on 'valid' and says so."""
    data = tmp_path / "data"
    (data / "ptb").mkdir(parents=True)
    for split in ("valid", "test"):
        src = ptb_root / "ptb" / f"ptb.char.{split}.txt"
        (data / "ptb" / src.name).symlink_to(src)
    monkeypatch.setenv("MINIDNI_DATA_DIR", str(data))
    monkeypatch.setenv("MINIDNI_CACHE_DIR", str(tmp_path / "cache"))
    assert rnn_ptb.trained_on(rnn_ptb.PROFILES["smoke"]) == "valid"
    (data / "ptb" / "ptb.char.train.txt").write_text("a b c\n")
    assert rnn_ptb.trained_on(rnn_ptb.PROFILES["smoke"]) == "train"


def test_ptb_holdout_is_never_trained_on(ptb_root, monkeypatch):
    """Offline, training uses the first part of the validation split, early stopping its
    last tenth (whole sentences), and the two do not overlap."""
    from minidni.data import PTB_VOCAB, load_ptb_chars

    monkeypatch.setenv("MINIDNI_DATA_DIR", str(ptb_root))
    data, described = rnn_ptb.splits("valid", 0.1)
    valid = load_ptb_chars("valid")
    train, held_out = data["train"], data["validation"]
    assert len(train) + len(held_out) == len(valid)
    np.testing.assert_array_equal(np.concatenate([train, held_out]), valid)
    assert train[-1] == PTB_VOCAB.eol  # the cut ends a sentence
    assert 0.09 < len(held_out) / len(valid) <= 0.1
    np.testing.assert_array_equal(data["test"], load_ptb_chars("test"))
    assert described["train"].startswith(f"valid[0:{len(train)}]")
    assert described["validation"].startswith(f"valid[{len(train)}:{len(valid)}]")
    assert rnn_ptb.holdout_cut(valid, 0.1) == len(train)


class _Param:
    def __init__(self, value: float):
        self.value = np.array([value])


def test_early_stopping_keeps_the_best_and_stops_after_patience():
    stop = rnn_ptb.EarlyStopping(patience=2)
    params = [_Param(0.0)]
    for step, bpc in enumerate([3.0, 2.0, 2.5], start=1):
        params[0].value = np.array([float(step)])
        assert stop.update(bpc, step, params) is False
    params[0].value = np.array([4.0])
    assert stop.update(2.0, 4, params) is True  # equal to the best is no new best
    assert (stop.best, stop.best_step) == (2.0, 2)
    stop.restore(params)
    assert params[0].value.tolist() == [2.0]  # the parameters of step 2


def test_ptb_stops_early_when_heldout_stops_improving(ptb_root, monkeypatch):
    """With nothing learning (rates 0) the held-out BPC never improves on the first
    evaluation: the run stops after patience more, and reports the first point."""
    monkeypatch.setenv("MINIDNI_DATA_DIR", str(ptb_root))
    sets = {"lr": 0.0, "sg_lr": 0.0, "patience": 2, "chars": 400, "val_every": 20}
    sets["train_split"] = "valid"
    config = experiments.configure("rnn-ptb", "smoke", sets)
    job = rnn_ptb.jobs(config)[0]
    run = rnn_ptb.run_job(job)
    every = 20 // job["T"]
    assert run["stopped_early"] and run["segments_done"] == 3 * every < 400 // job["T"]
    assert run["best_segments"] == every and run["curve"]["val_segments"] == [
        every,
        2 * every,
        3 * every,
    ]
    assert len(set(run["curve"]["val_bpc"])) == 1


def test_ptb_val_fraction_is_checked(tmp_path):
    from minidni.experiments.settings import SettingError

    with pytest.raises(SettingError, match="val_fraction"):
        experiments.run("rnn-ptb", "smoke", tmp_path, overrides={"val_fraction": 1.5})


def test_experiments_are_registered():
    assert experiments.load("rnn-copy") is rnn_copy
    assert experiments.load("rnn-ptb") is rnn_ptb


def test_set_overrides_reach_the_copy_grid(tmp_path):
    """``--set`` narrows the grid; the runs and the recorded config follow it."""
    argv = ["reproduce", "rnn-copy", "--profile", "smoke", "--out", str(tmp_path)]
    sets = ["--set", "truncations=[3]", "--set", 'methods=["dni"]', "--set", 'tasks=["copy"]']
    assert main(argv + sets) == 0
    results = _load(tmp_path, "rnn-copy")
    assert results["config"]["overrides"] == {
        "truncations": [3],
        "methods": ["dni"],
        "tasks": ["copy"],
    }
    assert [(r["task"], r["T"], r["method"]) for r in results["runs"]] == [("copy", 3, "dni")]


def test_sg_sums_pair_each_prediction_with_its_target(xp, float64):
    """Segment k's delta_hat is scored against segment k+1's sg_target, only where M
    learned; the sums match a NumPy reference, and sg_quality turns them into R^2 and
    the cosine (a perfect prediction: 1 and 1; a reversed one: cosine -1)."""
    rng = np.random.default_rng(0)
    preds = [rng.normal(size=(8, 6)) for _ in range(3)]
    targets = [rng.normal(size=(8, 6)) for _ in range(3)]

    def segment(pred, target, sg_loss):
        a = backend.asarray
        return {
            "delta_hat": pred if pred is None else a(pred),
            "sg_target": a(target),
            "sg_loss": sg_loss,
        }

    segments = [
        segment(preds[0], targets[0], None),  # the first segment: M has nothing to learn
        segment(preds[1], targets[1], 0.5),  # scores preds[0] against targets[1]
        segment(None, targets[2], 2.0),  # the last: no prediction, scores preds[1]
    ]
    sums = sg_quality.sg_sums(segments)
    pairs = [(preds[0], targets[1]), (preds[1], targets[2])]
    assert sums["error"] == 2.5
    want = {
        "variance": sum(((t - t.mean(axis=0)) ** 2).sum(axis=1).mean() for _, t in pairs),
        "power": sum((t * t).sum(axis=1).mean() for _, t in pairs),
        "dot": sum((p * t).sum() for p, t in pairs),
        "pred_sq": sum((p * p).sum() for p, _ in pairs),
        "target_sq": sum((t * t).sum() for _, t in pairs),
    }
    for key, value in want.items():
        np.testing.assert_allclose(backend.to_float(sums[key]), value, rtol=1e-12)
    assert sg_quality.sg_sums(segments[:1]) == dict.fromkeys(sg_quality.SG_SUMS, 0.0)

    t = targets[1]
    variance = ((t - t.mean(axis=0)) ** 2).sum(axis=1).mean()
    power = (t * t).sum(axis=1).mean()
    exact = {"error": 0.0, "variance": variance, "power": power, "dot": (t * t).sum()}
    exact |= {"pred_sq": (t * t).sum(), "target_sq": (t * t).sum()}
    assert sg_quality.sg_quality(exact) == (1.0, 1.0, 1.0)
    *_, cos = sg_quality.sg_quality({**exact, "dot": -(t * t).sum()})
    assert cos == -1.0
    # a zero prediction: no better than the zero predictor (0), worse than the mean (< 0)
    r2, r2_zero, _ = sg_quality.sg_quality({**exact, "error": power})
    assert r2_zero == 0.0 and r2 == pytest.approx(1 - power / variance)
    assert sg_quality.sg_quality(dict.fromkeys(sg_quality.SG_SUMS, 0.0)) == (None, None, None)
