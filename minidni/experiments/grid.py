"""The grid of an experiment: one job per point of a product of settings, and the cells
of the tables that summarise it."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from .results import finished_runs


def grid(
    config: dict, keys: Sequence[str], axes: dict, per_method: Sequence[str] = ()
) -> list[dict]:
    """One job per point of the product of ``axes`` (name -> values; the first axis is
    the outermost loop), in that order.

    A job holds the settings ``keys`` that ``config`` has, the per-method settings
    ``per_method`` (mappings method -> value in ``config``) taken for the job's method,
    and the point's own values, e.g. ``{"depth": 3, "method": "dni", "seed": 0}``.
    """
    jobs = []
    for point in itertools.product(*axes.values()):
        values = dict(zip(axes, point))
        job = {k: config[k] for k in keys if k in config}
        job.update({k: config[k][values["method"]] for k in per_method})
        jobs.append({**job, **values})
    return jobs


def cell(values: list[float], runs: int, fmt: str = ".2f") -> str:
    """A table cell: mean (min-max) of ``values``, noting the ``runs - len(values)``
    runs of that setting that diverged; "diverged" when all did, "-" when none ran."""
    if not values:
        return "diverged" if runs else "-"
    text = f"{sum(values) / len(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"
    return text + (f", {runs - len(values)} diverged" if runs > len(values) else "")


def error_table(results: dict, row_key: str, rows: list, label: str) -> str:
    """Markdown table of final test error %, mean (min-max) over seeds, one row per value
    of ``row_key`` and one column per method; diverged runs are counted, not averaged."""
    methods = results["config"]["methods"]
    lines = [f"| {label} | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for row in rows:
        cells = []
        for method in methods:
            runs = [r for r in results["runs"] if r[row_key] == row and r["method"] == method]
            errs = [100 * r["final_test_error"] for r in finished_runs(runs)]
            cells.append(cell(errs, len(runs)))
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
