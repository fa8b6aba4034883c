"""Print the tables of docs/recurrent.md's long profile from its results file.

    python docs/long_table.py [results/long/rnn-copy.json]

For each task, a table of the episode length solved (median and range over seeds) per
method and T, then, per DNI cell, how good M was over the last tenth of each run
(``sg_r2_zero``: the share of its targets' energy it explains, 0 = no better than
injecting nothing; ``sg_cos``: the cosine of prediction and target; medians over
seeds) and the best cosine any evaluation reached. Cells whose runs are not all in
the file say how many are.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

TASKS = {"copy": "Copy", "repeat_copy": "Repeat Copy"}
METHODS = {"bprop": "BPTT", "dni": "DNI"}


def canonical(method: str) -> str:
    """Results files written before the rename call the baseline 'bptt'."""
    return "bprop" if method == "bptt" else method


def tail_mean(values: list[float | None]) -> float:
    """Mean over the last tenth of a learning curve (None: M had nothing to score yet)."""
    n = max(1, len(values) // 10)
    return statistics.fmean(v for v in values[-n:] if v is not None)


def main(path: Path) -> None:
    results = json.loads(path.read_text())
    config, runs = results["config"], results["runs"]
    seeds, truncations = len(config["seeds"]), config["truncations"]
    print(f"{path}: {len(runs)} of {results['runs_total']} runs, complete: {results['complete']}")
    for task, title in TASKS.items():
        print(f"\n| {title} | " + " | ".join(f"T={T}" for T in truncations) + " |")
        print("|---|" + "---|" * len(truncations))
        quality = []
        for method, label in METHODS.items():
            cells = []
            for T in truncations:
                cell = [
                    r
                    for r in runs
                    if (r["task"], canonical(r["method"]), r["T"]) == (task, method, T)
                ]
                lengths = [r["solved_episode_length"] for r in cell]
                if not lengths:
                    cells.append("-")
                    continue
                text = f"{statistics.median(lengths):g} ({min(lengths)}-{max(lengths)})"
                cells.append(text if len(lengths) == seeds else f"{text}, {len(lengths)} runs")
                if method == "dni":
                    r2 = statistics.median(tail_mean(r["curve"]["sg_r2_zero"]) for r in cell)
                    cos = statistics.median(tail_mean(r["curve"]["sg_cos"]) for r in cell)
                    best = max(v for r in cell for v in r["curve"]["sg_cos"] if v is not None)
                    quality.append(
                        f"T={T}: R^2 vs zero {r2:+.3f}, cos {cos:.3f}, best cos {best:.2f}"
                    )
            print(f"| {label} | " + " | ".join(cells) + " |")
        print(f"\n{title}, DNI's M over the last tenth of its runs: " + "; ".join(quality))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "results/long/rnn-copy.json"))
