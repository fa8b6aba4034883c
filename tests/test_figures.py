"""``minidni figures`` draws every figure it can and never hides what is missing.

- a results file that cannot be read (corrupt JSON, binary, ``{}``, ``[]``, another
  experiment's results, a folder under its name, contents of another shape) is named
  in one line, and the figures of the other files are drawn (status 0);
- the figures go next to the results (``RESULTS/figures``), never into minidni's own
  ``figures/`` unless asked (``--out figures``);
- ``--only`` chooses figures without ``--run``; a missing ``--results`` is status 2;
- a figure of unfinished results, or with diverged runs, says so on the figure itself,
  wrapped to its width.

The results are the rnn-copy smoke profile's (no data files).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from minidni import experiments
from minidni.plots import common
from minidni.tools.cli import main

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"
BAD_FILES = {
    "ff": (b'{"experiment": "ff", "runs": [', "ff.json is not a results file (not JSON"),
    "update-prob": (b"\x00\xff\xfe binary", "update-prob.json is not a results file (not text)"),
    "unlock": (b"{}", "unlock.json is not a results file (no experiment name)"),
    "ff-cnn": (b"[]", "ff-cnn.json is not a results file (a JSON list)"),
    "multinet": (None, "multinet.json holds the results of 'rnn-copy', not of 'multinet'"),
    "parallel": (None, "a figure of"),  # a parallel file with rnn-copy's runs: other shape
}


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """A folder with the rnn-copy smoke results."""
    out = tmp_path_factory.mktemp("good")
    experiments.run("rnn-copy", "smoke", out, lambda _: None, {"truncations": [2]})
    return out


def test_every_kind_of_bad_file_is_named_and_the_others_are_drawn(good, tmp_path, capsys):
    shutil.copy(good / "rnn-copy.json", tmp_path)
    copy = json.loads((good / "rnn-copy.json").read_text())
    for name, (content, _) in BAD_FILES.items():
        if name == "multinet":
            content = json.dumps(copy).encode()
        if name == "parallel":
            content = json.dumps({**copy, "experiment": "parallel"}).encode()
        (tmp_path / f"{name}.json").write_bytes(content)
    (tmp_path / "rnn-ptb.json").mkdir()  # a folder under a results file's name
    assert main(["figures", "--results", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    drawn = sorted(Path(line).name for line in captured.out.splitlines())
    assert drawn == ["rnn_copy.png", "rnn_sg_quality.png", "rnn_table.md", "rnn_table.png"]
    for name in drawn:
        assert (tmp_path / "figures" / name).stat().st_size > 0
    err = captured.err.splitlines()
    for name, (_, why) in BAD_FILES.items():
        assert sum(why in line for line in err) == 1, (name, captured.err)
    assert sum("rnn-ptb.json is a folder, not a results file" in line for line in err) == 1
    assert "Traceback" not in captured.err


def test_figures_go_next_to_the_results_not_into_minidnis_own(good, tmp_path, capsys):
    committed = {p.name: p.stat().st_mtime_ns for p in (ROOT / "figures").glob("*.png")}
    results = tmp_path / "results"
    shutil.copytree(good, results)
    assert main(["figures", "--results", str(results)]) == 0
    assert (results / "figures" / "rnn_copy.png").read_bytes()[:8] == PNG
    assert {p.name: p.stat().st_mtime_ns for p in (ROOT / "figures").glob("*.png")} == committed
    out = tmp_path / "chosen"
    assert main(["figures", "--results", str(results), "--out", str(out)]) == 0
    assert (out / "rnn_copy.png").exists()


def test_only_chooses_the_figures_without_run(good, tmp_path, capsys):
    shutil.copy(good / "rnn-copy.json", tmp_path)
    shutil.copy(good / "rnn-copy.json", tmp_path / "spare.json")
    assert main(["figures", "--results", str(tmp_path), "--only", "ff"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "no figure drawn" in captured.err
    assert "rnn-copy" not in captured.err  # not asked for: not even named as missing
    assert main(["figures", "--results", str(tmp_path), "--only", "rnn-copy"]) == 0
    assert "rnn_copy.png" in capsys.readouterr().out


def test_a_missing_results_folder_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results" / "smoke").mkdir(parents=True)
    assert main(["figures"]) == 2  # the default: results/quick
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "minidni: error: --results: there is no folder 'results/quick'; results folders "
        "here: results/smoke"
    ]
    assert main(["figures", "--results", "nowhere"]) == 2
    assert "there is no folder 'nowhere'" in capsys.readouterr().err


def test_figures_without_matplotlib_is_a_one_line_error(good, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    assert main(["figures", "--results", str(good)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["minidni: error: minidni figures needs matplotlib: pip install matplotlib"]


def _drawn_texts(monkeypatch) -> list[tuple[float, list[tuple[str, float]]]]:
    """Collect (figure width, [(text, its width)]) of every figure saved from now on
    (widths in inches)."""
    saved = []
    real = common.save_figure

    def spy(fig, path, *args, **kw):
        renderer = fig.canvas.get_renderer()
        texts = [fig._suptitle] if fig._suptitle is not None else []
        texts += list(fig.texts)
        widths = [(t.get_text(), t.get_window_extent(renderer).width / fig.dpi) for t in texts]
        saved.append((fig.get_figwidth(), widths))
        return real(fig, path, *args, **kw)

    monkeypatch.setattr(common, "save_figure", spy)
    return saved


def test_unfinished_results_and_diverged_runs_are_marked_on_the_figure(tmp_path, monkeypatch):
    """Two runs of twelve finished, one of them diverged: the figure says both, in red
    text no wider than the figure (a one-panel figure cut its caption before)."""
    results = experiments.run("rnn-copy", "smoke", tmp_path, lambda _: None, {"truncations": [2]})
    results["runs"] = results["runs"][:2]
    results["runs"][1] = {**results["runs"][1], "diverged": True, "diverged_step": 3}
    results.update(complete=False, runs_total=12)
    (tmp_path / "rnn-copy.json").write_text(json.dumps(results))
    saved = _drawn_texts(monkeypatch)
    from minidni.plots import rnn

    monkeypatch.setattr(rnn, "save_figure", common.save_figure)
    rnn.make(tmp_path, tmp_path / "figures")
    width, texts = saved[0]  # rnn_copy.png: one panel per task, one truncation
    words = " ".join(text for text, _ in texts)
    assert "1 run(s) DIVERGED, not drawn" in words
    assert "INCOMPLETE: 2 of 12 runs finished" in words
    red = [w for text, w in texts if text.startswith("1 run(s) DIVERGED")]
    assert len(red) == 1 and red[0] <= width
