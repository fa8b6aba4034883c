"""The main job and the benchmark command run end to end and print what the README says."""

from __future__ import annotations

import re

import pytest

from minidni.tools.cli import main


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


BENCH = ["bench", "--batch", "8", "--steps", "1", "--rounds", "1", "--warmup", "1"]
BENCH_ROWS = [
    "mlp 3x256 bprop",
    "mlp 3x256 cdni (linear SG)",
    "mlp 3x256 dni (SG 1024-1024)",
    "mlp 6x256 bprop",
    "mlp 6x256 cdni (linear SG)",
    "mlp 6x256 dni (SG 1024-1024)",
    "lstm 256 bptt",
    "lstm 256 dni",
    "lstm 256 dni_aux",
]
ROW = re.compile(r"^((?:mlp|lstm) .+?)\s+([\d.]+)\s+(\d+)\s+([\d.]+|-)\s+([\d.]+x|-)\s", re.M)


def test_bench_prints_ms_per_step_for_every_model(capsys):
    """``minidni bench`` times the MLP (3 and 6 layers; Bprop, cDNI, DNI) and the LSTM
    (three methods); without --compare the PyTorch columns are empty."""
    assert main(BENCH) == 0
    out = capsys.readouterr().out
    rows = ROW.findall(out)
    assert [r[0] for r in rows] == BENCH_ROWS
    assert all(float(r[1]) > 0 and r[3] == "-" for r in rows)
    assert "x mlp 3x256 bprop" in out and "x lstm 256 bptt" in out  # cost vs. the baseline


def test_bench_compares_with_pytorch(capsys):
    """``--compare torch``: PyTorch's ms and the ratio beside the Bprop and BPTT rows."""
    pytest.importorskip("torch", reason="PyTorch is an optional benchmark dependency")
    assert main([*BENCH, "--compare", "torch", "--depths", "3"]) == 0
    out = capsys.readouterr().out
    rows = {r[0]: r for r in ROW.findall(out)}
    compared = [label for label, r in rows.items() if r[3] != "-"]
    assert compared == ["mlp 3x256 bprop", "lstm 256 bptt"]
    for label in compared:
        _, ms, _, torch_ms, ratio = rows[label]
        assert float(ratio[:-1]) == pytest.approx(float(torch_ms) / float(ms), abs=0.01)
    assert re.search(r"PyTorch \S+ threads \d+", out)


def test_bench_memory_prints_resident_memory(capsys):
    assert main(["bench", "--memory", "4", "--batch", "8"]) == 0
    out = capsys.readouterr().out
    for label in ("mlp 3x256 cdni (linear SG)", "lstm 256 dni_aux"):
        assert f"{label}: resident memory over 4 steps" in out
    rows = re.findall(r"^\s+(\d+)\s+([\d.]+)\s+([\d.]+)$", out, re.M)
    assert [int(r[0]) for r in rows] == [1, 2, 3, 4] * 2
