"""Chapter 5 (tutorials/05_multi_network.py) runs in FAST mode and shows what it claims.

How long the chapter takes is stated (and measured) in tutorials/README.md, not tested here.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.mnist

CHAPTER = Path(__file__).resolve().parents[1] / "tutorials" / "05_multi_network.py"


def test_multi_network_chapter(mnist_dir, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("MINIDNI_DATA_DIR", str(mnist_dir.parent))
    monkeypatch.setenv("MINIDNI_TUTORIAL_FAST", "1")
    monkeypatch.setenv("MINIDNI_TUTORIAL_FIGURES", str(tmp_path))
    g = runpy.run_path(str(CHAPTER), run_name="__main__")
    assert g["FAST"] is True
    # B ticked after each of the 4 full pieces of the 9-step stream, not on the short one
    ticks = [e for e in g["net"].trace if e[0] == "B"]
    assert [e[2] for e in ticks] == [(0, 1), (2, 3), (4, 5), (6, 7)]
    assert g["oracle_max_diff"] < 1e-6  # a perfect M gives A the locked gradients
    runs = g["runs"]
    assert set(runs) == {"bprop", "dni"}
    for method, log in runs.items():
        assert [e["steps"] for e in log] == [32, 64]
        assert all(0.0 <= e["acc_a"] <= 1.0 and 0.0 <= e["acc_b"] <= 1.0 for e in log)
        assert all((e["cos"] is None) == (method == "bprop") for e in log)
    assert all(np.isfinite(e["cos"]) for e in runs["dni"])
    out = capsys.readouterr().out
    assert "oracle DNI vs Bprop" in out and "B reaches" in out
    # a figure beside each idea: the task, when each network ticks, the training runs
    saved = {p.name for p in tmp_path.glob("05_*.png")}
    assert {"05_task.png", "05_ticks.png", "05_multi_network.png"} <= saved
