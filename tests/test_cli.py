"""The main job and the benchmark command run end to end and print what the README says;
every command and option explains itself (``--help``, ``--version``)."""

from __future__ import annotations

import argparse
import re

import pytest

from minidni import __version__
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
    "lstm 256 bprop",
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
    assert "x mlp 3x256 bprop" in out and "x lstm 256 bprop" in out  # cost vs. the baseline


def test_bench_compares_with_pytorch(capsys):
    """``--compare torch``: PyTorch's ms and the ratio beside the Bprop and BPTT rows."""
    pytest.importorskip("torch", reason="PyTorch is an optional benchmark dependency")
    assert main([*BENCH, "--compare", "torch", "--depths", "3"]) == 0
    out = capsys.readouterr().out
    rows = {r[0]: r for r in ROW.findall(out)}
    compared = [label for label, r in rows.items() if r[3] != "-"]
    assert compared == ["mlp 3x256 bprop", "lstm 256 bprop"]
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


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"minidni {__version__}"


def test_every_command_and_option_has_a_help_text():
    """``minidni COMMAND --help`` describes the command and every option (the parallel
    command and its alias async too)."""
    from minidni.tools.cli import _parser

    parser = _parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert {"demo", "gradcheck", "reproduce", "figures", "bench", "parallel", "async"} <= set(
        commands.choices
    )
    for name, sub in commands.choices.items():
        assert sub.description, name
        for action in sub._actions:
            assert action.help and len(action.help) > 10, (name, action.dest)


@pytest.mark.mnist
def test_unlock_lines_name_mode_and_staleness(mnist_dir, monkeypatch, tmp_path):
    """Four unlock runs that differ only in mode and staleness get four distinct lines."""
    from minidni import experiments

    monkeypatch.setenv("MINIDNI_DATA_DIR", str(mnist_dir.parent))
    lines: list[str] = []
    overrides = {"p_update": [1.0], "staleness": [0, 2], "methods": ["cdni"], "steps": 2}
    experiments.run("unlock", "smoke", tmp_path, lines.append, overrides)
    finished = [line.split(":")[0].strip() for line in lines if "test error" in line]
    assert finished == [
        "method=cdni mode=sg depth=3 p_update=1.0 staleness=0 seed=0",
        "method=cdni mode=unlock depth=3 p_update=1.0 staleness=0 seed=0",
        "method=cdni mode=sg depth=3 p_update=1.0 staleness=2 seed=0",
        "method=cdni mode=unlock depth=3 p_update=1.0 staleness=2 seed=0",
    ]
