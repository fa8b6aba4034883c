"""Chapter 3 (tutorials/03_truncated_bptt.py) runs in FAST mode and shows what it claims."""

from __future__ import annotations

import runpy
import time
from pathlib import Path

import numpy as np

CHAPTER = Path(__file__).resolve().parents[1] / "tutorials" / "03_truncated_bptt.py"
TIME_LIMIT_S = 20.0


def test_truncated_bptt_chapter(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("MINIDNI_TUTORIAL_FAST", "1")
    monkeypatch.setenv("MINIDNI_TUTORIAL_FIGURES", str(tmp_path))
    start = time.perf_counter()
    g = runpy.run_path(str(CHAPTER), run_name="__main__")
    seconds = time.perf_counter() - start
    assert g["FAST"] is True
    assert seconds < TIME_LIMIT_S, f"chapter 3 took {seconds:.1f}s in FAST mode"

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
    assert set(runs) == {"bprop", "dni"}
    for run in runs.values():
        assert len(run["log"]) == g["BATCHES"] // g["LOG_EVERY"]
        assert all(np.isfinite(e["bits_error"]) for e in run["log"])
    assert runs["bprop"]["sg_losses"] == []  # bprop has no SG model
    assert len(runs["dni"]["sg_losses"]) > 0 and np.all(np.isfinite(runs["dni"]["sg_losses"]))
    assert "longest N solved" in capsys.readouterr().out
    assert (tmp_path / "03_truncated_bptt.png").read_bytes()[:4] == b"\x89PNG"
