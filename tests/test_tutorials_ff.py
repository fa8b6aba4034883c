"""The feed-forward tutorial chapters run end to end (FAST mode) and compute what they claim.

Each chapter is executed as a script with ``runpy.run_path`` under
``MINIDNI_TUTORIAL_FAST=1``; the assertions read the chapter's module-level results.
How long a chapter takes is stated (and measured) in tutorials/README.md, not tested here.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"

pytestmark = pytest.mark.mnist


def run_chapter(
    name: str, monkeypatch: pytest.MonkeyPatch, mnist_dir: Path, figures: Path, full: bool = False
) -> dict:
    """Run ``tutorials/<name>`` in FAST mode (with its optional section if ``full``);
    return its globals. Fails unless it saved at least three figures (as a script, a
    chapter writes ``<figures>/<NN>_<what>.png``, one file per figure)."""
    monkeypatch.setenv("MINIDNI_TUTORIAL_FAST", "1")
    monkeypatch.setenv("MINIDNI_TUTORIAL_FULL", "1" if full else "0")
    monkeypatch.setenv("MINIDNI_TUTORIAL_FIGURES", str(figures))
    monkeypatch.setenv("MINIDNI_DATA_DIR", str(mnist_dir.parent))
    result = runpy.run_path(str(TUTORIALS / name), run_name="__main__")
    assert result["FAST"] is True
    saved = sorted(figures.glob(f"{name[:2]}_*.png"))
    assert len(saved) >= 3, [p.name for p in saved]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in saved)
    return result


def test_chapter_01_one_dni(monkeypatch, mnist_dir, tmp_path):
    g = run_chapter("01_one_dni.py", monkeypatch, mnist_dir, tmp_path)
    # the hand-written decoupled step and DecoupledNet([f_1, f_2], [M_2]) agree
    assert g["sg_moved"]
    assert g["max_param_diff"] <= 1e-6
    # a fresh M_2 predicts zero; after training its prediction points along delta_1
    assert g["cos_history"][0] == 0.0
    assert g["cos_history"][-1] > g["cos_history"][0] + 0.05
    assert g["cdni_log"][-1]["cos"] > 0.1
    # the control: training only f_2 on a frozen f_1 is worse than backprop
    assert g["bprop_error"] < g["frozen_error"]
    # a figure beside each idea: the data, M_2 learning, DNI vs backprop, cDNI
    figures = {p.name for p in tmp_path.glob("01_*.png")}
    assert {"01_mnist.png", "01_sg_learns.png", "01_dni_vs_backprop.png", "01_cdni.png"} <= figures


def test_chapter_02_every_layer_cdni(monkeypatch, mnist_dir, tmp_path):
    g = run_chapter("02_every_layer_cdni.py", monkeypatch, mnist_dir, tmp_path, full=True)
    steps = g["STEPS"]
    # oracle SG models turn every-layer-decoupled training into backprop
    assert g["oracle_max_diff"] < 1e-10
    # with the label, a linear model explains the top gradient of a fresh net almost fully
    without_label, with_label = g["linear_fit"][3]
    assert with_label > 0.9 and with_label > without_label + 0.2
    # stochastic updates: lockstep at p = 1, fewer updates at p < 1
    assert g["update_counts"][1.0] == [steps] * 4
    assert all(t < steps for t in g["update_counts"][0.2])
    assert set(g["stochastic_errors"]) == {1.0, 0.5, 0.2}
    assert set(g["errors"]) == {"bprop", "dni", "cdni"}
    # section 5: the SG models of the CNN return maps of their activation's shape
    assert [h for h, _ in g["cnn_shapes"]] == [(8, 4, 14, 14), (8, 4, 7, 7), (8, 4, 4, 4)]
    assert all(h == d for h, d in g["cnn_shapes"])
    assert set(g["cnn_errors"]) == {"bprop", "cdni"}
    assert -1.0 <= g["cnn_cosine"] <= 1.0
    # the optional longer CNN run (FULL) runs too, with all three methods
    assert g["FULL"] is True and set(g["full_curves"]) == {"bprop", "dni", "cdni"}
    assert (tmp_path / "02_cnn_full.png").exists()
