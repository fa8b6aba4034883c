"""Chapter 6 (tutorials/06_parallel_modules.py) runs top to bottom in fast mode."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

pytestmark = pytest.mark.mnist

CHAPTER = Path(__file__).resolve().parents[1] / "tutorials" / "06_parallel_modules.py"


def test_parallel_chapter_runs(mnist_dir, monkeypatch, capsys, tmp_path):
    """Every cell runs; with the mpi extra the 2-rank smoke run reports both modes."""
    monkeypatch.setenv("MINIDNI_DATA_DIR", str(mnist_dir.parent))
    monkeypatch.setenv("MINIDNI_TUTORIAL_FAST", "1")
    monkeypatch.setenv("MINIDNI_TUTORIAL_FIGURES", str(tmp_path))
    namespace = runpy.run_path(str(CHAPTER), run_name="__main__")
    assert namespace["FAST"] is True
    out = capsys.readouterr().out
    assert "a 2-rank pipeline at best:" in out
    assert "Delayed([2, 0]), 20 steps: first weight" in out
    if namespace["HAVE_MPI"]:
        assert "bprop:" in out and "cdni:" in out and "steps/s; waited rank 0:" in out
    # a figure beside each idea: step times, the schedule they imply, the 2-rank run
    saved = {p.name for p in tmp_path.glob("06_*.png")}
    assert saved == {"06_step_times.png", "06_schedule.png", "06_smoke_run.png"}
