"""The main job and the benchmark command run end to end and print what the README says."""

from __future__ import annotations

import re

import pytest

from minidni.cli import main


@pytest.mark.mnist
def test_demo_trains_bprop_and_cdni_side_by_side(mnist_dir, monkeypatch, capsys):
    """One epoch of each method: a line per epoch, and a final error well below chance."""
    monkeypatch.setenv("MINIDNI_DATA_DIR", str(mnist_dir.parent))
    assert main(["demo", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "== bprop" in out and "== cdni" in out
    assert len(re.findall(r"^  epoch 1  step +234 ", out, flags=re.M)) == 2
    final = dict(re.findall(r"(bprop|cdni) ([\d.]+)%", out.splitlines()[-1]))
    assert set(final) == {"bprop", "cdni"}
    assert all(float(e) < 10.0 for e in final.values())  # 90% is chance on MNIST


def test_bench_prints_ms_per_step_for_every_model(capsys):
    """``minidni bench`` times the MLP (Bprop, cDNI, DNI) and the LSTM (three methods)."""
    assert main(["bench", "--batch", "8", "--steps", "1"]) == 0
    rows = re.findall(r"^(.+?)\s+([\d.]+) ms/(?:step|segment)$", capsys.readouterr().out, re.M)
    labels = [label.strip() for label, _ in rows]
    assert labels == [
        "bprop",
        "cdni (linear SG)",
        "dni (SG 1024-1024)",
        "lstm bptt",
        "lstm dni",
        "lstm dni_aux",
    ]
    assert all(float(ms) > 0 for _, ms in rows)
