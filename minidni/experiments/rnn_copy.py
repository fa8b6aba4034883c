"""``minidni reproduce rnn-copy``: Copy and Repeat Copy with truncated BPTT, DNI, DNI + Aux.

Jaderberg et al. 2017, section 4.2 / Table 1: an LSTM trained with truncated BPTT over
segments of T steps, alone (``bptt``), with a synthetic gradient at every segment
boundary (``dni``) or with the auxiliary loss as well (``dni_aux``), on the Copy and
Repeat Copy tasks of Graves et al. 2014 (:mod:`minidni.data.copy_tasks`). The metric is
how far a curriculum gets within a fixed budget of training sequences.

**The curriculum** (:class:`Curriculum`). A level is a pattern length N and, for Repeat
Copy, a repeat count R; both start at 1. After every training batch the batch's error,
:func:`~minidni.data.copy_tasks.bits_error` (wrong bits per sequence, on the output steps,
of the logits produced while training on that batch), is appended to a window. When the
window holds ``window`` batches *of the current level* and their mean error is
**strictly below** ``threshold`` (0.15 bits per sequence, as in the paper), the level is
*solved*: it advances and the window is emptied, so every level needs ``window`` fresh
batches. Copy advances N by 1. Repeat Copy alternates, N first: (N, R) = (1, 1), (2, 1),
(2, 2), (3, 2), (3, 3), ..., i.e. N += 1 when N == R, else R += 1; once R reaches
``max_repeats`` only N grows.

**The metric.** ``solved_length``: the output length N * R of the hardest level solved
within the budget (N for Copy; 0 if not even N = 1 was solved). Each run records the
curve (samples seen, solved_length, current N and R, mean bit error) every
``log_every`` batches, and its final numbers. For DNI runs the curve also says how good
the synthetic gradient was over the interval (:func:`sg_quality`): ``sg_r2``, the
fraction of the variance of M's targets that its predictions explained (1 perfect, 0 no
better than the batch mean, < 0 worse), and ``sg_cos``, the cosine between predictions
and targets (does the injected gradient point the right way?). docs/results.md
discusses them.

Every batch holds B independent sequences: the core starts from a zero state
(``TBPTT.reset``), trains on it segment by segment (``TBPTT.train_sequence``), and the
future gradient at the end of the sequence is zero.

Profiles (``quick``'s sizes come from pilot runs):

- ``smoke``: 2 truncations, a few batches of a tiny LSTM; seconds, for the tests.
- ``quick``: the whole grid, T in {2, 3, 4, 5, 8} x {bptt, dni, dni_aux} x 3 seeds x
  both tasks (90 runs), LSTM of 64 units, batch 32, a budget of 320,000 sequences
  (10,000 batches), linear SG models, Adam 3e-3 (core) and 1e-3 (SG model); sized for
  <= 30 minutes on 2 cores: the seed-0 third of the grid (30 runs) took 768 CPU
  seconds (at most 40 per run), so the grid needs ~2,300 CPU seconds, ~20 minutes on 2
  free cores (18 minutes of wall time for the third with both cores shared). In pilots
  (Copy, one seed each) Adam 1e-3 needed ~900 batches to solve N = 2 at T = 8, 3e-3
  ~500. Single runs are noisy at this budget: compare medians over seeds. At 64 units
  DNI gains little; ``--set hidden=256 --set lr=0.001`` opens the gap at T >= 3, at
  about 10x the CPU cost (docs/results.md).
- ``full``: the paper's scale: LSTM of 256 units, batch 256, 3 seeds, 10M sequences
  (for a GPU: ``MINIDNI_BACKEND=cupy``).
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from .. import backend
from ..monitor import Monitor, parameters_of
from .common import configure, run_experiment

TASKS = ("copy", "repeat_copy")
TASK_LABELS = {"copy": "Copy", "repeat_copy": "Repeat Copy"}
TRUNCATIONS = [2, 3, 4, 5, 8]
METHODS = ["bptt", "dni", "dni_aux"]
CHOICES = {"methods": METHODS, "tasks": TASKS}  # valid names for --set

BASE = {
    "tasks": list(TASKS),
    "methods": METHODS,
    "bits": 8,
    "max_repeats": 10,
    "threshold": 0.15,
    "lr": 1e-3,
    "sg_lr": 1e-3,
    "sg_hidden": [],
    "sg_scale": 0.1,
}
PROFILES = {
    "smoke": {
        **BASE,
        "truncations": [2, 5],
        "seeds": [0],
        "hidden": 16,
        "batch_size": 8,
        "budget": 8 * 12,  # 12 batches
        "window": 2,
        "log_every": 4,
        "workers": 1,
    },
    "quick": {
        **BASE,
        "truncations": TRUNCATIONS,
        "seeds": [0, 1, 2],
        "lr": 3e-3,
        "hidden": 64,
        "batch_size": 32,
        "budget": 32 * 10_000,  # 320,000 sequences
        "window": 10,
        "log_every": 100,
        "workers": 2,
    },
    "full": {
        **BASE,
        "lr": 1e-4,
        "sg_lr": 1e-4,
        "truncations": TRUNCATIONS,
        "seeds": [0, 1, 2],
        "hidden": 256,
        "batch_size": 256,
        "budget": 10_000_000,
        "window": 10,
        "log_every": 100,
        "workers": 1,
    },
}


class Curriculum:
    """The level (N, R) of a Copy / Repeat Copy run, raised when it is solved.

    ``update(bits_error)`` takes one training batch's error in wrong bits per sequence
    and returns True when that batch completed a window of ``window`` batches at the
    current level whose mean error is strictly below ``threshold``; the level then
    advances (Copy: N += 1; Repeat Copy: N += 1 if N == R or R == max_repeats, else
    R += 1) and the window starts empty. ``solved`` is the (N, R) of the last level
    passed, (0, 0) before the first; ``solved_length`` is N * R of it.
    """

    def __init__(self, task: str, window: int = 10, threshold: float = 0.15, max_repeats: int = 10):
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; valid tasks are: {', '.join(TASKS)}")
        if window < 1 or max_repeats < 1 or not threshold > 0:
            raise ValueError(
                f"window and max_repeats must be >= 1 and threshold > 0, "
                f"got {window}, {max_repeats}, {threshold}"
            )
        self.task, self.window, self.threshold = task, window, threshold
        self.max_repeats = max_repeats
        self.n, self.r = 1, 1
        self.solved: tuple[int, int] = (0, 0)
        self.levels_passed = 0
        self._errors: deque[float] = deque(maxlen=window)

    @property
    def solved_length(self) -> int:
        """N * R of the hardest level solved (N for Copy); 0 before the first."""
        return self.solved[0] * self.solved[1]

    def mean_error(self) -> float:
        """Mean error of the batches in the window (nan when it is empty)."""
        return float(np.mean(self._errors)) if self._errors else float("nan")

    def update(self, bits_error: float) -> bool:
        """Record one batch's error; advance (and return True) if the level is solved."""
        self._errors.append(float(bits_error))
        if len(self._errors) < self.window or not self.mean_error() < self.threshold:
            return False
        self.solved = (self.n, self.r)
        self.levels_passed += 1
        if self.task == "copy" or self.n == self.r or self.r >= self.max_repeats:
            self.n += 1
        else:
            self.r += 1
        self._errors.clear()
        return True


def task_dims(task: str, bits: int) -> tuple[int, int]:
    """(D_in, D_out) of a task's batches with ``bits``-bit patterns."""
    return (bits + 1, bits) if task == "copy" else (bits + 2, bits + 1)


def make_batch(task: str, rng: np.random.Generator, batch_size: int, cur: Curriculum, bits: int):
    """A host batch (x, y, mask) at the curriculum's current level."""
    from ..data import copy_batch, repeat_copy_batch

    if task == "copy":
        return copy_batch(rng, batch_size, cur.n, bits)
    return repeat_copy_batch(rng, batch_size, cur.n, cur.r, bits, cur.max_repeats)


def build_model(job: dict, d_in: int, d_out: int, loss: str, rng: backend.RNG):
    """The TBPTT learner of a job: an LSTM core of ``hidden`` units and a linear readout."""
    from ..tbptt import TBPTT

    return TBPTT(
        d_in,
        job["hidden"],
        d_out,
        rng,
        T=job["T"],
        method=job["method"],
        loss=loss,
        lr=job["lr"],
        sg_lr=job["sg_lr"],
        sg_hidden=tuple(job["sg_hidden"]),
        sg_scale=job["sg_scale"],
        **job.get("tbptt", {}),
    )


SG_SUMS = ("error", "variance", "dot", "pred_sq", "target_sq")


def sg_sums(segments: list[dict]) -> dict[str, Any]:
    """Sums over a sequence's segments that say how good M's predictions were.

    Segment k's ``delta_hat`` is M's prediction for the boundary state s_k, and segment
    k+1's ``sg_target`` is the target it was trained on (its ``sg_loss`` is their L2
    loss). Over those pairs, returns sums of ``error`` (sg_loss), ``variance``
    (``mean_n ||target_n - mean target||^2``, in sg_loss units), ``dot`` (<prediction,
    target>), ``pred_sq`` and ``target_sq`` (squared norms), all over the whole (B, 2H)
    arrays; the last four stay on the device (0-d arrays) so that a training step pays
    no copy to the host for them. :func:`sg_quality` turns them into the fraction
    explained and the cosine.
    """
    xp = backend.namespace()
    sums = dict.fromkeys(SG_SUMS, 0.0)
    for before, after in zip(segments[:-1], segments[1:]):
        if after["sg_loss"] is None:
            continue
        p, t = before["delta_hat"], after["sg_target"]  # (B, 2H) each
        spread = xp.sum((t - xp.mean(t, axis=0, keepdims=True)) ** 2, axis=1)  # (B,)
        sums["error"] += after["sg_loss"]
        sums["variance"] = sums["variance"] + xp.mean(spread)
        sums["dot"] = sums["dot"] + xp.sum(p * t)
        sums["pred_sq"] = sums["pred_sq"] + xp.sum(p * p)
        sums["target_sq"] = sums["target_sq"] + xp.sum(t * t)
    return sums


def sg_quality(sums: dict[str, Any]) -> tuple[float | None, float | None]:
    """``(sg_r2, sg_cos)`` from summed :func:`sg_sums`; None where undefined.

    ``sg_r2 = 1 - error / variance``: the fraction of the targets' variance that the
    predictions explained (1 perfect, 0 no better than the batch mean, < 0 worse).
    ``sg_cos = dot / sqrt(pred_sq * target_sq)``: the cosine between the injected
    synthetic gradients and their targets, which is what steers the core: a prediction
    can point the right way (cosine > 0) while its size is off (R^2 < 0).
    """
    v = {k: backend.to_float(x) for k, x in sums.items()}
    r2 = 1.0 - v["error"] / v["variance"] if v["variance"] > 0 else None
    norm = (v["pred_sq"] * v["target_sq"]) ** 0.5
    return r2, (v["dot"] / norm if norm > 0 else None)


def copy_job(job: dict) -> dict:
    """Train one LSTM on Copy or Repeat Copy under the curriculum; return its run record."""
    from ..data import bits_error

    backend.set_backend(job.get("backend", backend.get_backend()))
    rng = backend.RNG(job["seed"])
    data_rng = np.random.default_rng([job["seed"], 12345])  # the batches' own stream
    task, bits, batch_size = job["task"], job["bits"], job["batch_size"]
    model = build_model(job, *task_dims(task, bits), "bce", rng)
    cur = Curriculum(task, job["window"], job["threshold"], job["max_repeats"])
    keys = ("samples", "solved", "n", "r", "bits_error", "loss", "sg_r2", "sg_cos")
    curve = {k: [] for k in keys}
    errors, losses, sg = [], [], dict.fromkeys(SG_SUMS, 0.0)
    started, cpu_started = time.perf_counter(), time.process_time()
    batches = job["budget"] // batch_size
    monitor = Monitor(batches, unit="batch")  # progress; NaN / inf raise Diverged
    for step in range(1, batches + 1):
        x, y, mask = make_batch(task, data_rng, batch_size, cur, bits)
        model.reset(batch_size)
        out = model.train_sequence(backend.asarray(x), backend.asarray(y), backend.asarray(mask))
        errors.append(bits_error(out["logits"], y, mask))
        losses.append(backend.to_float(out["loss"]))
        monitor.step(step, losses[-1])
        cur.update(errors[-1])
        if job["method"] != "bptt":
            new = sg_sums(out["segments"])
            sg = {k: sg[k] + new[k] for k in SG_SUMS}
        if step % job["log_every"] == 0 or step == batches:
            monitor.check_parameters(step, parameters_of(model))
            curve["samples"].append(step * batch_size)
            curve["solved"].append(cur.solved_length)
            curve["n"].append(cur.n)
            curve["r"].append(cur.r)
            curve["bits_error"].append(round(float(np.mean(errors)), 4))
            curve["loss"].append(round(float(np.mean(losses)), 5))
            for key, value in zip(("sg_r2", "sg_cos"), sg_quality(sg)):
                curve[key].append(None if value is None else round(value, 4))
            errors, losses, sg = [], [], dict.fromkeys(SG_SUMS, 0.0)
    monitor.close()
    return {
        **{k: v for k, v in job.items() if k not in ("backend",)},
        "curve": curve,
        "final_n": cur.n,
        "final_r": cur.r,
        "solved_n": cur.solved[0],
        "solved_r": cur.solved[1],
        "solved_length": cur.solved_length,
        "levels_passed": cur.levels_passed,
        "samples": batches * batch_size,
        "seconds": round(time.perf_counter() - started, 2),
        "cpu_seconds": round(time.process_time() - cpu_started, 2),
    }


def jobs(config: dict) -> list[dict]:
    """One job per (task, T, method, seed); the small truncations (the slow ones) first."""
    keys = ("bits", "max_repeats", "threshold", "lr", "sg_lr", "sg_hidden", "sg_scale")
    keys += ("hidden", "batch_size", "budget", "window", "log_every", "tbptt")
    return [
        {
            **{k: config[k] for k in keys if k in config},
            "task": task,
            "T": T,
            "method": method,
            "seed": seed,
        }
        for T in config["truncations"]
        for task in config["tasks"]
        for method in config["methods"]
        for seed in config["seeds"]
    ]


def _summary(run: dict) -> str:
    what = f"{run['task']} T={run['T']} {run['method']} seed={run['seed']}"
    solved = f"N={run['solved_n']}" + (f" R={run['solved_r']}" if run["task"] != "copy" else "")
    return f"  {what}: solved {solved} (length {run['solved_length']})  ({run['seconds']:.0f}s)"


def run(profile: str, out: Path, log=print, overrides: dict | None = None) -> dict:
    """Run the profile, write ``<out>/rnn-copy.json`` and print the table of lengths solved."""
    config = configure(PROFILES, profile, overrides)
    todo = jobs(config)
    return run_experiment("rnn-copy", profile, config, todo, copy_job, table, out, log, _summary)


def solved_lengths(results: dict, task: str, method: str, T: int) -> list[int]:
    """``solved_length`` of every seed of one setting."""
    return [
        r["solved_length"]
        for r in results["runs"]
        if (r["task"], r["method"], r["T"]) == (task, method, T) and not r.get("diverged")
    ]


def table(results: dict) -> str:
    """Markdown table: median (min-max) over seeds of the length solved, per task, method, T."""
    config = results["config"]
    cols = [(m, T) for m in config["methods"] for T in config["truncations"]]
    lines = [
        "| task | " + " | ".join(f"{m} T={T}" for m, T in cols) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    for task in config["tasks"]:
        cells = []
        for m, T in cols:
            v = solved_lengths(results, task, m, T)
            ran = any((r["task"], r["method"], r["T"]) == (task, m, T) for r in results["runs"])
            empty = "diverged" if ran else "-"  # every seed diverged, or none ran
            cells.append(f"{np.median(v):g} ({min(v)}-{max(v)})" if v else empty)
        lines.append(f"| {TASK_LABELS[task]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
