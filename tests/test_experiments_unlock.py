"""The unlock experiment's smoke profile runs, writes well-formed JSON, and plots."""

from __future__ import annotations

import json

import pytest

from minidni import experiments
from minidni.experiments.unlock import jobs, settings, table
from minidni.plots import unlock as plots
from minidni.tools.cli import main

pytestmark = pytest.mark.mnist


def test_settings_share_the_lockstep_run():
    """The p_update = 1, k = 0 run serves both sweeps and is run once."""
    config = {"p_update": [1.0, 0.5], "staleness": [0, 4]}
    assert settings(config) == [(1.0, 0), (0.5, 0), (1.0, 4)]


def test_smoke_profile_writes_wellformed_json_and_figures(mnist_dir, tmp_path, monkeypatch):
    """Every (setting, method, mode, seed) has a curve and a final error in [0, 1];
    complete-unlock runs report how well each I_i(x) predicts its real input."""
    monkeypatch.setenv("MINIDNI_DATA_DIR", str(mnist_dir.parent))
    assert main(["reproduce", "unlock", "--profile", "smoke", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "unlock.json").read_text())
    config = experiments.load("unlock").PROFILES["smoke"]
    assert results["experiment"] == "unlock" and results["profile"] == "smoke"
    assert results["config"] == json.loads(json.dumps(config))
    assert len(results["runs"]) == len(jobs(config)) == 12
    for run in results["runs"]:
        assert run["steps_evaluated"][-1] == config["steps"]
        assert 0.0 <= run["final_test_error"] <= 1.0
        unexplained = run["input_unexplained"]
        if run["mode"] == "unlock":
            assert len(unexplained) == config["depth"] and all(u >= 0 for u in unexplained)
        else:
            assert unexplained is None
    rows = [line for line in table(results).splitlines() if line.startswith("| ")]
    assert len(rows) == 2 + 2 + 2  # two headers, two p_update and two staleness settings

    paths = plots.make(tmp_path, tmp_path / "figures")
    assert [p.name for p in paths] == ["unlock_p_update.png", "unlock_staleness.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)
