"""Chapter 4 (tutorials/04_complete_unlock.py) runs top to bottom in fast mode."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

pytestmark = pytest.mark.mnist

CHAPTER = Path(__file__).resolve().parents[1] / "tutorials" / "04_complete_unlock.py"


def test_complete_unlock_chapter_runs(mnist_dir, monkeypatch, capsys):
    """Every cell runs; the chapter prints its results."""
    monkeypatch.setenv("MINIDNI_DATA_DIR", str(mnist_dir.parent))
    monkeypatch.setenv("MINIDNI_TUTORIAL_FAST", "1")
    namespace = runpy.run_path(str(CHAPTER), run_name="__main__")
    assert namespace["FAST"] is True
    out = capsys.readouterr().out
    assert "complete unlock: test error" in out
    assert "k = 16: test error" in out
