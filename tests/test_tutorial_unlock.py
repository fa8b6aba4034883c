"""Chapter 4 (tutorials/04_complete_unlock.py) runs top to bottom in fast mode."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

pytestmark = pytest.mark.mnist

CHAPTER = Path(__file__).resolve().parents[1] / "tutorials" / "04_complete_unlock.py"


def test_complete_unlock_chapter_runs(mnist_dir, monkeypatch, capsys, tmp_path):
    """Every cell runs; the chapter prints its results and saves its figure."""
    monkeypatch.setenv("MINIDNI_DATA_DIR", str(mnist_dir.parent))
    monkeypatch.setenv("MINIDNI_TUTORIAL_FAST", "1")
    monkeypatch.setenv("MINIDNI_TUTORIAL_FIGURES", str(tmp_path))
    namespace = runpy.run_path(str(CHAPTER), run_name="__main__")
    assert namespace["FAST"] is True
    out = capsys.readouterr().out
    assert "complete unlock: test error" in out
    assert "k = 16: test error" in out
    assert (tmp_path / "04_complete_unlock.png").read_bytes()[:4] == b"\x89PNG"
    # one curve per run, evaluated along the way
    assert set(namespace["stale_curves"]) == {0, 4, 16}
    assert all(len(h.steps) > 1 for h in namespace["stale_curves"].values())
