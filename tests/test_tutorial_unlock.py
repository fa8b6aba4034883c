"""Chapter 4 (tutorials/04_complete_unlock.py) runs top to bottom in fast mode."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.mnist

CHAPTER = Path(__file__).resolve().parents[1] / "tutorials" / "04_complete_unlock.py"


def test_complete_unlock_chapter_runs(mnist_dir, monkeypatch, capsys, tmp_path):
    """Every cell runs; the chapter prints its results and saves its figures."""
    monkeypatch.setenv("MINIDNI_DATA_DIR", str(mnist_dir.parent))
    monkeypatch.setenv("MINIDNI_TUTORIAL_FAST", "1")
    monkeypatch.setenv("MINIDNI_TUTORIAL_FIGURES", str(tmp_path))
    namespace = runpy.run_path(str(CHAPTER), run_name="__main__")
    assert namespace["FAST"] is True
    out = capsys.readouterr().out
    assert "complete unlock: test error" in out
    assert "k = 16: test error" in out
    # one curve per run, evaluated along the way
    assert set(namespace["stale_curves"]) == {0, 4, 16}
    assert all(len(h.steps) > 1 for h in namespace["stale_curves"].values())
    # the synthetic inputs leave a share of h's variance unexplained, one per I_2..I_4
    assert sorted(namespace["unexplained"]) == [1, 2, 3]
    assert all(np.isfinite(v) and v >= 0 for v in namespace["unexplained"].values())
    # a figure beside each idea: unlock vs gradients only, the synthetic inputs, staleness
    saved = {p.name for p in tmp_path.glob("04_*.png")}
    assert saved == {"04_unlock.png", "04_synthetic_inputs.png", "04_staleness.png"}
