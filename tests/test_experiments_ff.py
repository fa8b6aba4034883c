"""The feed-forward experiments' smoke profiles run, and write well-formed results JSON."""

from __future__ import annotations

import json

import pytest

from minidni import experiments
from minidni.plots import make_all
from minidni.tools.cli import main

pytestmark = pytest.mark.mnist


@pytest.mark.parametrize("name", ["ff", "update-prob"])
def test_smoke_profile_writes_wellformed_json(name, mnist_dir, tmp_path, monkeypatch):
    """Every run has its settings, seed, a test-error curve and a final error in [0, 1]."""
    monkeypatch.setenv("MINIDNI_DATA_DIR", str(mnist_dir.parent))
    assert main(["reproduce", name, "--profile", "smoke", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / f"{name}.json").read_text())
    config = experiments.load(name).PROFILES["smoke"]
    assert results["experiment"] == name and results["profile"] == "smoke"
    assert results["config"] == json.loads(json.dumps(config))
    assert results["seeds"] == config["seeds"]
    assert results["wall_seconds"] > 0
    assert len(results["runs"]) == len(experiments.load(name).jobs(config))
    for run in results["runs"]:
        assert run["method"] in config["methods"]
        assert run["steps_evaluated"][-1] == config["steps"]
        assert len(run["test_error"]) == len(run["steps_evaluated"]) == len(run["train_loss"])
        assert 0.0 <= run["final_test_error"] <= 1.0
        assert run["final_test_error"] == run["test_error"][-1]

    paths = make_all(tmp_path, tmp_path / "figures")
    png = {"ff": "ff.png", "update-prob": "update_prob.png"}[name]
    assert [p.name for p in paths] == [png]
    assert (tmp_path / "figures" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_experiment_and_profile_are_rejected(tmp_path):
    """Names are checked before anything runs."""
    with pytest.raises(ValueError, match="ff, update-prob"):
        experiments.run("cifar", "quick", tmp_path)
    with pytest.raises(ValueError, match="smoke, quick, long, full"):
        experiments.run("ff", "huge", tmp_path)


def test_set_overrides_profile_settings_and_is_recorded(mnist_dir, tmp_path, monkeypatch, capsys):
    """``--set KEY=VALUE`` changes one setting (JSON value) and the results say so."""
    monkeypatch.setenv("MINIDNI_DATA_DIR", str(mnist_dir.parent))
    argv = ["reproduce", "ff", "--profile", "smoke", "--out", str(tmp_path)]
    overrides = ["--set", "steps=6", "--set", "eval_every=3", "--set", 'methods=["bprop"]']
    assert main(argv + overrides) == 0
    results = json.loads((tmp_path / "ff.json").read_text())
    assert results["config"]["overrides"] == {"steps": 6, "eval_every": 3, "methods": ["bprop"]}
    assert [run["steps_evaluated"] for run in results["runs"]] == [[3, 6]]

    assert main(argv + ["--set", "stepz=6"]) == 2  # a typo is a one-line error, not a run
    assert "unknown setting(s) stepz" in capsys.readouterr().err
