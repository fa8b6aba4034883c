"""Figures and the Table 1 of the recurrent experiments (``rnn-copy``, ``rnn-ptb``).

- ``rnn_copy.png``: the episode length solved (time steps of an episode at the hardest
  level passed: 2N + 1 for Copy, N + 1 + N * R + 1 for Repeat Copy) against the
  training sequences seen, one row of panels per task and one panel per truncation T,
  one line per method (median over seeds, min-max band);
- ``rnn_sg_quality.png``: how good the synthetic gradient is, against sequences seen:
  ``sg_r2`` (the share of the variance of M's targets that its predictions explained),
  ``sg_r2_zero`` (the same against the zero predictor, where M starts) and ``sg_cos``
  (the cosine between predictions and targets), a panel per task, a line per (method,
  T), median over seeds (skipped for results that did not record them);
- ``rnn_ptb.png``: training bits per character against characters seen, one panel per T;
- ``rnn_table.png`` and ``rnn_table.md``: the paper's Table 1 in shape: rows Copy, Repeat
  Copy and char-PTB, columns method x T; Copy cells are the median episode length
  solved over seeds, PTB cells the test bits per character (mean over seeds).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import ticker

from ..tbptt import canonical_method
from .common import COLORS, LABELS, draw, load, mark, save_figure, subtitle

METHOD_ORDER = ("bprop", "dni", "dni_aux")
WIDTHS = {"bprop": 3.0, "dni": 2.0, "dni_aux": 1.2}  # overlapping step curves stay visible
TASK_LABELS = {"copy": "Copy", "repeat_copy": "Repeat Copy"}
LABELS = {**LABELS, "bprop": "BPTT"}  # the recurrent baseline, as the paper labels it


def _load(results_dir: Path, name: str) -> dict | None:
    """:func:`~minidni.plots.common.load`, with the method names of results files written
    by older versions (``bptt`` for bprop) mapped to today's by
    :func:`~minidni.tbptt.canonical_method`."""
    results = load(results_dir, name)
    if results is not None:
        results["config"]["methods"] = [canonical_method(m) for m in results["config"]["methods"]]
        for run in results["runs"] + results["diverged_runs"]:
            run["method"] = canonical_method(run["method"])
    return results


def _copy_runs(results: dict, task: str, T: int, method: str) -> list[dict]:
    """The runs (one per seed) of one (task, T, method) setting of ``rnn-copy``."""
    return [r for r in results["runs"] if (r["task"], r["T"], r["method"]) == (task, T, method)]


def plot_copy(results: dict, path: Path) -> Path:
    """Length solved vs sequences seen: rows = tasks, columns = T, lines = methods."""
    config = results["config"]
    tasks, truncations = config["tasks"], config["truncations"]
    fig, axes = plt.subplots(
        len(tasks),
        len(truncations),
        figsize=(2.8 * len(truncations), 2.6 * len(tasks) + 0.4),
        sharex=True,
        squeeze=False,
    )
    for row, task in enumerate(tasks):
        top = 1.0
        for ax, T in zip(axes[row], truncations):
            for method in config["methods"]:
                runs = _copy_runs(results, task, T, method)
                if not runs:
                    continue
                samples = [0] + runs[0]["curve"]["samples"]  # every run starts at 0 solved
                solved = np.asarray([[0] + r["curve"]["solved_episode"] for r in runs], dtype=float)
                top = max(top, float(solved.max()))
                ax.step(
                    samples,
                    np.median(solved, axis=0),
                    where="post",
                    color=COLORS[method],
                    linewidth=WIDTHS.get(method, 1.5),
                    label=LABELS[method],
                )
                ax.fill_between(
                    samples,
                    solved.min(axis=0),
                    solved.max(axis=0),
                    step="post",
                    color=COLORS[method],
                    alpha=0.15,
                )
            ax.set_title(f"{TASK_LABELS[task]}, T = {T}", fontsize=9)
            ax.grid(True, alpha=0.3)
            ax.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))
            if row == len(tasks) - 1:
                ax.set_xlabel("sequences seen")
        for ax in axes[row]:
            ax.set_ylim(0, top * 1.08)
        axes[row][0].set_ylabel("episode length solved (steps)")
    axes[0][0].legend(fontsize=7, loc="upper left")
    fig.suptitle(
        "Length solved under the curriculum: median over seeds, min-max band\n" + subtitle(results),
        fontsize=8,
    )
    mark(fig, results)
    return save_figure(fig, path, dpi=110)


def has_sg_quality(results: dict) -> bool:
    """Whether any DNI run of these results recorded ``sg_r2`` and ``sg_cos``."""
    return any(v is not None for r in results["runs"] for v in r["curve"].get("sg_cos", []))


def _median_over_seeds(runs: list[dict], key: str) -> list[float]:
    """Per log point, the median over runs of ``curve[key]`` where it is not None."""
    values = np.asarray(
        [[np.nan if v is None else v for v in r["curve"][key]] for r in runs], dtype=float
    )  # (seeds, log points); nan where M did not learn (one-segment sequences)
    return [np.median(c[np.isfinite(c)]) if np.isfinite(c).any() else np.nan for c in values.T]


def plot_sg_quality(results: dict, path: Path) -> Path:
    """How good M was vs sequences seen: rows = (R^2, cosine), columns = tasks, a line per
    (method, T); median over seeds."""
    config = results["config"]
    tasks, truncations = config["tasks"], config["truncations"]
    methods = [m for m in config["methods"] if m != "bprop"]
    shades = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, len(truncations)))
    rows = (
        ("sg_r2", "share of target variance\nexplained (R$^2$)"),
        ("sg_r2_zero", "R$^2$ against the\nzero predictor"),
        ("sg_cos", "cosine(prediction, target)"),
    )
    rows = tuple(r for r in rows if any(r[0] in run["curve"] for run in results["runs"]))
    fig, axes = plt.subplots(
        len(rows),
        len(tasks),
        figsize=(4.4 * len(tasks), 2.9 * len(rows)),
        sharex=True,
        squeeze=False,
    )
    for row, (key, ylabel) in enumerate(rows):
        for ax, task in zip(axes[row], tasks):
            for method, style in zip(methods, ("-", "--")):
                for T, shade in zip(truncations, shades):
                    runs = _copy_runs(results, task, T, method)
                    if runs:
                        ax.plot(
                            runs[0]["curve"]["samples"],
                            _median_over_seeds(runs, key),
                            style,
                            color=shade,
                            linewidth=1.2,
                            label=f"{LABELS[method]}, T = {T}",
                        )
            ax.axhline(0.0, color="black", linewidth=0.8)
            ax.set_ylim(-1.0, 1.0)  # early R^2 can be far below -1; the range that matters
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda x, _: f"{x / 1000:g}k"))
            ax.grid(True, alpha=0.3)
            if row == 0:
                ax.set_title(TASK_LABELS[task], fontsize=9)
            if row == len(rows) - 1:
                ax.set_xlabel("sequences seen")
        axes[row][0].set_ylabel(ylabel, fontsize=8)
    if axes[0][-1].get_legend_handles_labels()[0]:  # no DNI run finished: no lines
        axes[0][-1].legend(fontsize=6, ncol=2)
    fig.suptitle(
        "How good is the synthetic gradient? R$^2$: 1 perfect, 0 the batch mean (or zero); "
        "cosine: does it point the right way? (median over seeds; axes cut at -1)\n"
        + subtitle(results),
        fontsize=8,
    )
    mark(fig, results)
    return save_figure(fig, path, dpi=110)


def plot_ptb(results: dict, path: Path) -> Path:
    """Training bits per character vs characters seen, one panel per T, Bprop vs DNI."""
    config = results["config"]
    truncations = config["truncations"]
    fig, axes = plt.subplots(
        1, len(truncations), figsize=(2.8 * len(truncations), 2.9), sharey=True, squeeze=False
    )
    for ax, T in zip(axes[0], truncations):
        for method in config["methods"]:
            runs = [r for r in results["runs"] if (r["T"], r["method"]) == (T, method)]
            for k, r in enumerate(runs):
                bpc = f" (test {np.mean([q['test_bpc'] for q in runs]):.3f})"
                ax.plot(
                    r["curve"]["chars"],
                    r["curve"]["train_bpc"],
                    color=COLORS[method],
                    alpha=0.8,
                    label=LABELS[method] + bpc if k == 0 else None,
                )
        ax.set_title(f"T = {T}", fontsize=9)
        ax.set_xlabel("characters seen")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("training bits / char")
    fig.suptitle(
        f"char-PTB, trained on the {results.get('trained_on', '?')!r} split, test BPC in the "
        f"legend\n{subtitle(results)}",
        fontsize=8,
    )
    mark(fig, results)
    return save_figure(fig, path, dpi=110)


def table_cells(copy: dict | None, ptb: dict | None) -> tuple[list[str], list[list[str]]]:
    """(column labels, rows) of the Table 1 layout; each row starts with its task name."""
    columns: list[tuple[str, int]] = []
    for results in (copy, ptb):
        if results is not None:
            for m in results["config"]["methods"]:
                for T in results["config"]["truncations"]:
                    columns.append((m, T))
    order = {m: k for k, m in enumerate(METHOD_ORDER)}
    columns = sorted(set(columns), key=lambda c: (order.get(c[0], len(order)), c[1]))
    rows: list[list[str]] = []
    if copy is not None:
        for task in copy["config"]["tasks"]:
            cells = [TASK_LABELS[task]]
            for m, T in columns:
                v = [
                    r["solved_episode_length"]
                    for r in copy["runs"]
                    if (r["task"], r["method"], r["T"]) == (task, m, T)
                ]
                cells.append(f"{np.median(v):g}" if v else "-")
            rows.append(cells)
    if ptb is not None:
        cells = [f"char-PTB (BPC, trained on {ptb.get('trained_on', '?')})"]
        for m, T in columns:
            v = [r["test_bpc"] for r in ptb["runs"] if (r["method"], r["T"]) == (m, T)]
            cells.append(f"{np.mean(v):.3f}" if v else "-")
        rows.append(cells)
    labels = [f"{LABELS.get(m, m)} T={T}" for m, T in columns]
    return labels, rows


def _notes(copy: dict | None, ptb: dict | None) -> list[str]:
    notes = []
    if copy is not None:
        c = copy["config"]
        notes.append(
            f"Copy / Repeat Copy: median over {len(copy['seeds'])} seed(s) of the episode "
            f"length solved (time steps: 2N+1, resp. N+1+NR+1; {c['criterion']} < "
            f"{c['threshold']} per sequence over {c['window']} batches) within {c['budget']} "
            f"sequences; {'continuous streams' if c['stream'] else 'reset per episode'}; "
            f"profile {copy['profile']}, LSTM {c['hidden']}, batch {c['batch_size']}."
        )
    if ptb is not None:
        c = ptb["config"]
        notes.append(
            f"char-PTB: test bits per character (mean over {len(ptb['seeds'])} seed(s)); "
            f"trained on the {ptb.get('trained_on', '?')!r} split; profile {ptb['profile']}, "
            f"LSTM {c['hidden']}, batch {c['batch_size']}."
        )
    return notes


def table_markdown(results_dir: Path) -> str:
    """Table 1 of the paper in shape, from ``rnn-copy.json`` / ``rnn-ptb.json`` in
    ``results_dir``, as Markdown (empty string when neither file is there)."""
    return _markdown(_load(results_dir, "rnn-copy"), _load(results_dir, "rnn-ptb"))


def _markdown(copy: dict | None, ptb: dict | None) -> str:
    if copy is None and ptb is None:
        return ""
    labels, rows = table_cells(copy, ptb)
    lines = ["| task | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines + [""] + _notes(copy, ptb)) + "\n"


def plot_table(copy: dict | None, ptb: dict | None, path: Path) -> Path:
    """The same table rendered with matplotlib."""
    labels, rows = table_cells(copy, ptb)
    fig_w = 2.6 + 0.62 * len(labels)
    fig, ax = plt.subplots(figsize=(fig_w, 0.5 + 0.38 * (len(rows) + 1) + 0.3))
    ax.axis("off")
    tab = ax.table(
        cellText=[row[1:] for row in rows],
        rowLabels=[row[0] for row in rows],
        colLabels=[label.replace(" T=", "\nT=") for label in labels],
        loc="center",
        cellLoc="center",
    )
    tab.auto_set_font_size(False)
    tab.set_fontsize(7)
    tab.scale(1.0, 1.6)
    ax.set_title("Truncated BPTT vs DNI (cf. Jaderberg et al. 2017, Table 1)", fontsize=9)
    notes = [textwrap.fill(n, width=int(25 * fig_w)) for n in _notes(copy, ptb)]
    fig.text(0.01, 0.01, "\n".join(notes), fontsize=6, va="bottom")
    return save_figure(fig, path, dpi=130, rect=(0, 0.12, 1, 1), bbox_inches="tight")


def make(results_dir: Path, out_dir: Path) -> list[Path]:
    """``rnn_copy.png``, ``rnn_sg_quality.png`` (when recorded), ``rnn_ptb.png``,
    ``rnn_table.png`` and ``rnn_table.md`` from
    whichever of ``rnn-copy.json`` / ``rnn-ptb.json`` are in ``results_dir``."""
    copy, ptb = _load(results_dir, "rnn-copy"), _load(results_dir, "rnn-ptb")
    if copy is None and ptb is None:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    if copy is not None:
        what = f"{results_dir}/rnn-copy.json"
        paths += draw(what, plot_copy, copy, out_dir / "rnn_copy.png")
        if paths and has_sg_quality(copy):  # drawn: the runs have their curves
            paths += draw(what, plot_sg_quality, copy, out_dir / "rnn_sg_quality.png")
    if ptb is not None:
        paths += draw(f"{results_dir}/rnn-ptb.json", plot_ptb, ptb, out_dir / "rnn_ptb.png")
    what = "the rnn-copy and rnn-ptb results (Table 1)"
    paths += draw(what, plot_table, copy, ptb, out_dir / "rnn_table.png")
    paths += draw(what, _write_markdown, copy, ptb, out_dir / "rnn_table.md")
    return paths


def _write_markdown(copy: dict | None, ptb: dict | None, path: Path) -> Path:
    path.write_text(_markdown(copy, ptb))
    return path
