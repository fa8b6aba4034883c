"""The multinet experiment's smoke profile runs, writes well-formed JSON, and plots."""

from __future__ import annotations

import json

import numpy as np
import pytest

from minidni import experiments
from minidni.experiments.multinet import CHOICES, PROFILES, first_reach, jobs, table
from minidni.experiments.settings import SettingError, configure
from minidni.multinet import chance_accuracy, thresholds
from minidni.plots import multinet as plots
from minidni.tools.cli import main


def test_chance_and_thresholds():
    """Chance is the most likely count's probability; the threshold lies halfway to 1."""
    assert chance_accuracy(2, 0.5) == pytest.approx(0.5)
    assert chance_accuracy(4, 0.1) == pytest.approx(0.9**4)
    y = np.array([0, 1, 2, 3] * 5)  # P(odd) = 0.5, P(3) = 0.25
    th = thresholds(2, y, 0.5)
    assert th["chance_a"] == pytest.approx(0.5) and th["threshold_a"] == pytest.approx(0.75)
    assert th["chance_b"] == pytest.approx(max(0.75**4, 4 * 0.25 * 0.75**3), abs=1e-4)


def test_first_reach():
    curve = {"steps": [4, 8, 12], "seconds": [1.0, 2.0, 3.0], "acc_b": [0.1, 0.6, 0.9]}
    assert first_reach(curve, "acc_b", 0.5) == (8, 2.0)
    assert first_reach(curve, "acc_b", 0.95) == (None, None)


@pytest.mark.mnist
def test_smoke_profile_writes_wellformed_json_and_figure(mnist_dir, tmp_path, monkeypatch):
    """Every (k, method, seed) has curves at every log point, accuracies in [0, 1], an
    SG cosine exactly when it is DNI, and the table and figure are drawn."""
    monkeypatch.setenv("MINIDNI_DATA_DIR", str(mnist_dir.parent))
    assert main(["reproduce", "multinet", "--profile", "smoke", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "multinet.json").read_text())
    config = experiments.load("multinet").PROFILES["smoke"]
    assert results["experiment"] == "multinet" and results["profile"] == "smoke"
    assert results["config"] == json.loads(json.dumps(config))
    assert len(results["runs"]) == len(jobs(config)) == 2
    logged = list(range(config["log_every"], config["steps"] + 1, config["log_every"]))
    for run in results["runs"]:
        curve = run["curve"]
        assert curve["steps"] == logged
        assert all(0.0 <= a <= 1.0 for a in curve["acc_a"] + curve["acc_b"])
        assert curve["seconds"] == sorted(curve["seconds"])
        for key in ("sg_cos", "sg_r2", "sg_r2_zero"):
            has_sg = [c is not None for c in curve[key]]
            assert all(has_sg) if run["method"] == "dni" else not any(has_sg)
        assert run["final_acc_b"] == curve["acc_b"][-1]
    rows = [line for line in table(results).splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 2  # the header, one row per method
    paths = plots.make(tmp_path, tmp_path / "figures")
    assert [p.name for p in paths] == ["multinet.png"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_settings_are_checked():
    """The SG and wiring knobs are settings; bad values and the old method name are refused."""
    config = configure(PROFILES, "smoke", {"b_reads": "last", "sg_hidden": [8]}, CHOICES)
    assert config["b_reads"] == "last" and config["sg_hidden"] == [8]
    assert all(job["b_reads"] == "last" and job["sg_hidden"] == [8] for job in jobs(config))
    config = configure(PROFILES, "smoke", {"sg_lr": 1e-4, "sg_scale": 0.1}, CHOICES)
    assert all(job["sg_lr"] == 1e-4 and job["sg_scale"] == 0.1 for job in jobs(config))
    with pytest.raises(SettingError, match="b_reads"):
        configure(PROFILES, "smoke", {"b_reads": "first"}, CHOICES)
    with pytest.raises(SettingError, match="methods"):
        configure(PROFILES, "smoke", {"methods": ["locked", "dni"]}, CHOICES)
    with pytest.raises(SettingError, match="sg_scale"):
        configure(PROFILES, "smoke", {"sg_scale": -1.0}, CHOICES)


@pytest.mark.mnist
def test_smoke_with_knobs_set(mnist_dir, tmp_path, monkeypatch):
    """The knobs reach the system: B reads one message a tick and M is an MLP."""
    monkeypatch.setenv("MINIDNI_DATA_DIR", str(mnist_dir.parent))
    sets = ["--set", "b_reads=last", "--set", "sg_hidden=[8]", "--set", 'methods=["dni"]']
    assert main(["reproduce", "multinet", "--profile", "smoke", *sets, "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "multinet.json").read_text())
    assert results["config"]["overrides"] == {
        "b_reads": "last",
        "sg_hidden": [8],
        "methods": ["dni"],
    }
    (run,) = results["runs"]
    assert run["b_reads"] == "last" and run["sg_hidden"] == [8] and run["method"] == "dni"
    assert all(-1.0 <= c <= 1.0 for c in run["curve"]["sg_cos"])
