"""Chapter 3 (tutorials/03_truncated_bptt.py) runs in FAST mode and shows what it claims.

How long the chapter takes is stated (and measured) in tutorials/README.md, not tested here.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np

CHAPTER = Path(__file__).resolve().parents[1] / "tutorials" / "03_truncated_bptt.py"


def test_truncated_bptt_chapter(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("MINIDNI_TUTORIAL_FAST", "1")
    monkeypatch.setenv("MINIDNI_TUTORIAL_FIGURES", str(tmp_path))
    g = runpy.run_path(str(CHAPTER), run_name="__main__")
    assert g["FAST"] is True

    n = g["N"]  # pattern steps 0..N-1, delimiter N, outputs N+1..2N
    full, truncated = g["full_dx_norms"], g["truncated_dx_norms"]
    # full BPTT reaches the pattern; truncation (T = 2) cuts it off exactly
    assert np.all(full[:n] > 0)
    assert np.all(truncated[: 2 * (n // 2 + 1)] == 0.0)
    assert np.all(truncated[n + 1 :] > 0)
    # the true boundary gradient, carried back segment by segment, is full BPTT
    assert g["carried_max_diff"] < 1e-6 and g["carried_w_diff"] < 1e-5
    assert g["oracle_max_diff"] < 1e-6  # a perfect M restores BPTT
    assert g["fresh_max_diff"] == 0.0  # a fresh (zero) M is truncated BPTT

    runs = g["runs"]
    assert set(runs) == {(m, s) for m in ("bprop", "dni") for s in g["SEEDS"]}
    for (method, _), run in runs.items():
        assert len(run["log"]) == g["BATCHES"] // g["LOG_EVERY"]
        assert all(np.isfinite(e["bits_error"]) for e in run["log"])
        # only DNI has an M to score: its loss, the zero predictor's, R^2 vs zero, cosine
        scored = ["sg_loss" in e for e in run["log"]]
        assert all(scored) if method == "dni" else not any(scored)
    for e in runs["dni", 0]["log"]:
        assert e["sg_loss"] > 0 and e["zero_loss"] > 0 and -1.0 <= e["cos"] <= 1.0
        # R^2 vs zero is 1 - M's loss / the zero predictor's loss, per boundary
        assert np.isclose(e["r2_zero"], 1 - e["sg_loss"] / e["zero_loss"])
    out = capsys.readouterr().out
    assert "longest N solved" in out and "the zero predictor's" in out
    saved = {p.name for p in tmp_path.glob("03_*.png")}
    assert saved == {
        "03_copy_task.png",
        "03_truncation.png",
        "03_copy_training.png",
        "03_sg_quality.png",
    }
    assert all((tmp_path / name).read_bytes()[:4] == b"\x89PNG" for name in saved)
