"""Every refusal of the sweep of bad inputs, in-process: exit status 2, one line on
stderr naming the problem, no traceback, and no work done (no results file written).

The cases are those of ``tests/sweep_bad_inputs.py`` (arguments, ``--set`` values,
settings that do not fit together, environment variables, ``--out`` targets, damaged
data files, figures, ``minidni parallel``), which also runs each of them, and the inputs
that must be accepted, as a separate ``python -m minidni`` process. Refusals come
before any work, so here they take milliseconds each.
"""

from __future__ import annotations

import pytest
import sweep_bad_inputs as sweep

from minidni.tools import threads
from minidni.tools.cli import main

REFUSALS = [(n, case) for n, case in enumerate(sweep.CASES, 1) if case.expect == "refuse"]


@pytest.mark.parametrize(
    "case", [c for _, c in REFUSALS], ids=[f"{n}-{c.category}" for n, c in REFUSALS]
)
def test_a_bad_input_is_refused_before_any_work(case, request, tmp_path, monkeypatch, capsys):
    if case.data:
        data = request.getfixturevalue("mnist_dir").parent
        monkeypatch.setenv("MINIDNI_DATA_DIR", str(data))
    for var in threads.ENV:  # the case's own variables only
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    if case.setup is not None:
        case.setup(tmp_path)
    for var, value in case.env.items():
        monkeypatch.setenv(var, sweep.fill(value, tmp_path))
    before = sweep._results_files(tmp_path)
    assert main([sweep.fill(a, tmp_path) for a in case.argv]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and case.words in lines[0] and "error:" in lines[0], captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    assert sweep._results_files(tmp_path) == before
