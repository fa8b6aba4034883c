"""``minidni reproduce rnn-copy``: Copy and Repeat Copy with truncated BPTT, DNI, DNI + Aux.

Jaderberg et al., ICML 2017, section 3.1 / Table 1: an LSTM trained with truncated BPTT
over segments of T steps, alone (``bprop``), with a synthetic gradient at every segment
boundary (``dni``) or with the auxiliary task as well (``dni_aux``), on the Copy and
Repeat Copy tasks of Graves et al. 2014 (:mod:`minidni.data.copy_tasks`). The metric is
how far a curriculum gets within a fixed budget of training sequences.

**The curriculum** (:class:`Curriculum`). A level is a pattern length N and, for Repeat
Copy, a repeat count R; both start at 1. After every training batch of B episodes the
batch's mean error is appended to a window; when the window holds ``window`` batches
*of the current level* and their mean is **strictly below** ``threshold`` (0.15 per
sequence), the level is *solved*: it advances and the window is emptied. Copy advances
N by 1. Repeat Copy alternates, N first: (N, R) = (1, 1), (2, 1), (2, 2), (3, 2), ...,
i.e. N += 1 when N == R, else R += 1; once R reaches ``max_repeats`` only N grows.
The error (``criterion``): ``"xent_bits"`` (default), the binary cross-entropy of the
output steps summed over steps and bits, in bits per sequence, which is the "cost per
sequence (bits)" of the Neural Turing Machine tasks that the DNI paper's 0.15 refers to
as we read both papers; or ``"wrong_bits"``, the bits predicted wrong per sequence
(:func:`~minidni.data.copy_tasks.bits_error`), minidni's earlier criterion. Every wrong
bit costs at least one bit of cross-entropy, so ``xent_bits`` is the stricter one.

**The metric.** ``solved_episode_length``: the number of time steps of one episode at
the hardest level solved within the budget (Copy ``2N + 1``: pattern, delimiter,
output; Repeat Copy ``N + 1 + N R + 1``: pattern, delimiter, R copies, end marker;
:func:`episode_length`). Table 1 of the paper reports "the maximum sequence length
successfully modelled"; we read that as the episode's length, but could not check the
paper's exact definition offline, so every run also records ``solved_n``,
``solved_r`` and ``solved_length`` (N * R). Each run records the curve every
``log_every`` batches; for DNI runs it also says how good the synthetic gradient was
over the interval (:func:`sg_quality`): ``sg_r2`` and ``sg_r2_zero`` (the share of the
variance of M's targets, around their mean resp. around zero, that its predictions
explained) and ``sg_cos`` (the cosine between predictions and targets).

**Two ways to present the episodes** (``stream``):

- ``stream=false`` (default): reset per episode. Every batch holds B independent
  episodes; the core starts each from the zero state (``TBPTT.reset``), trains on it
  segment by segment (``TBPTT.train_sequence``), and the future gradient at the end of
  the episode is zero. Segment boundaries always fall at the same places of an episode,
  and BPTT sees the whole episode whenever ``2N + 1 <= T``.
- ``stream=true``: every batch row is an endless stream of episodes
  (:mod:`minidni.data.episode_stream`); the state is never reset, segments of T steps
  run over the stream wherever the episodes end, and the synthetic gradient is used at
  every boundary. Episodes drawn after a level-up are at the new level; finished
  episodes of the current level count for the curriculum in groups of B. A much harder
  test of the truncation. We could not find in the paper's text which of the two it
  uses, so the reset mode, minidni's earlier setting, stays the default, and
  docs/recurrent.md reports both. On a stream nothing anchors the bootstrap at zero, and
  at T = 2 the undiscounted target ran away in our runs (as on char-PTB);
  ``--set target_discount=0.1`` tamed it on Copy, not on Repeat Copy.

Profiles (``quick``'s sizes come from pilot runs):

- ``smoke``: 2 truncations, a few batches of a tiny LSTM; seconds, for the tests.
- ``quick``: the whole grid, T in {2, 3, 4, 5, 8} x {bprop, dni, dni_aux} x 3 seeds x
  both tasks (90 runs), LSTM of 64 units, batch 32, a budget of 320,000 sequences
  (10,000 batches), linear SG models, Adam 3e-3 (core) and 3e-4 (SG model, from a sweep,
  docs/recurrent.md); sized for <= 30 minutes on 2 free cores.
- ``long``: for users who can wait hours on a CPU: LSTM of 128 units, Adam 1e-3,
  T in {2, 3, 4, 5}, Bprop vs DNI, 3 seeds, 2,000,000 sequences a run (48 runs): 6.1
  CPU-hours in all (a Bprop run 3-6 minutes, a DNI run 8-14), about 3 to 3.5 hours on 2
  free cores; its results are committed (docs/recurrent.md, "The long profile").
- ``full``: the paper's scale: LSTM of 256 units, batch 256, 3 seeds, 10M sequences
  (for a GPU: ``MINIDNI_BACKEND=cupy``).
"""

from __future__ import annotations

import math
import time

import numpy as np

from .. import backend
from ..data.curriculum import TASKS, Curriculum, task_dims
from ..sg_quality import SG_SUMS, sg_quality, sg_sums
from ..tbptt import canonical_method
from ..tools.monitor import Monitor, parameters_of
from .grid import grid
from .jobs import tbptt_model

TASK_LABELS = {"copy": "Copy", "repeat_copy": "Repeat Copy"}
TRUNCATIONS = [2, 3, 4, 5, 8]
METHODS = ["bprop", "dni", "dni_aux"]
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
    "target_discount": 1.0,
    "stream": False,
    "criterion": "xent_bits",
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
        "sg_lr": 3e-4,  # from a sweep of 1e-3 .. 3e-5 (results document)
        "hidden": 64,
        "batch_size": 32,
        "budget": 32 * 10_000,  # 320,000 sequences
        "window": 10,
        "log_every": 100,
        "workers": 2,
    },
    "long": {
        **BASE,
        "truncations": [2, 3, 4, 5],
        "methods": ["bprop", "dni"],
        "seeds": [0, 1, 2],
        "hidden": 128,
        "batch_size": 32,
        "budget": 2_000_000,
        "window": 10,
        "log_every": 500,
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


class _Log:
    """The per-interval sums of a run, turned into its curve every ``log_every`` batches."""

    KEYS = ("samples", "solved", "solved_episode", "n", "r", "bits_error", "xent_bits")
    KEYS += ("loss", "sg_r2", "sg_r2_zero", "sg_cos")

    def __init__(self):
        self.curve: dict[str, list] = {k: [] for k in self.KEYS}
        self._clear()

    def _clear(self) -> None:
        self.errors, self.xents, self.losses = [], [], []
        self.sg = dict.fromkeys(SG_SUMS, 0.0)

    def add_sg(self, new: dict) -> None:
        self.sg = {k: self.sg[k] + new[k] for k in SG_SUMS}

    def write(self, samples: int, cur: Curriculum) -> None:
        c = self.curve
        c["samples"].append(samples)
        c["solved"].append(cur.solved_length)
        c["solved_episode"].append(cur.solved_episode_length)
        c["n"].append(cur.n)
        c["r"].append(cur.r)
        for key, values, digits in (
            ("bits_error", self.errors, 4),
            ("xent_bits", self.xents, 4),
            ("loss", self.losses, 5),
        ):
            c[key].append(round(float(np.mean(values)), digits) if values else None)
        for key, value in zip(("sg_r2", "sg_r2_zero", "sg_cos"), sg_quality(self.sg)):
            c[key].append(None if value is None else round(value, 4))
        self._clear()


def _reset_loop(job: dict, model, cur: Curriculum, log: _Log, data_rng) -> int:
    """Reset mode: every batch holds B fresh episodes, each from the zero state."""
    from ..data import bits_error

    bits, batch_size = job["bits"], job["batch_size"]
    batches = job["budget"] // batch_size
    monitor = Monitor(batches, unit="batch")  # progress; NaN / inf raise Diverged
    for step in range(1, batches + 1):
        x, y, mask = cur.batch(data_rng, batch_size, bits)
        model.reset(batch_size)
        out = model.train_sequence(backend.asarray(x), backend.asarray(y), backend.asarray(mask))
        loss = backend.to_float(out["loss"])
        log.errors.append(bits_error(out["logits"], y, mask))
        log.xents.append(loss / math.log(2.0))  # the summed BCE per sequence, in bits
        log.losses.append(loss)
        monitor.step(step, loss)
        cur.update(log.errors[-1] if job["criterion"] == "wrong_bits" else log.xents[-1])
        if job["method"] != "bprop":
            log.add_sg(sg_sums(out["segments"]))
        if step % job["log_every"] == 0 or step == batches:
            monitor.check_parameters(step, parameters_of(model))
            log.write(step * batch_size, cur)
    monitor.close()
    return batches * batch_size


def _stream_loop(job: dict, model, cur: Curriculum, log: _Log, data_rng) -> int:
    """Stream mode: each batch row is an endless stream of episodes (no reset); segments
    of T steps run over it whatever the episode boundaries, with a synthetic gradient at
    every boundary. Finished episodes of the current level count for the curriculum in
    groups of B (one "batch"); episodes drawn before a level-up do not."""
    from ..data.episode_stream import EpisodeStream

    bits, batch_size, T = job["bits"], job["batch_size"], job["T"]

    def new_episode():
        x, y, mask = cur.batch(data_rng, 1, bits)
        return x[0], y[0], mask[0], (cur.n, cur.r)

    stream = EpisodeStream(batch_size, new_episode)
    model.reset(batch_size)
    group, finished, previous = [], 0, None
    every = job["log_every"] * batch_size
    monitor = Monitor(job["budget"], unit="episode")  # progress; NaN / inf raise Diverged
    while finished < job["budget"]:
        x, y, mask = stream.next_segment(T)
        out = model.segment(backend.asarray(x), backend.asarray(y), backend.asarray(mask))
        log.losses.append(out["loss"])
        if previous is not None and job["method"] != "bprop":
            log.add_sg(sg_sums([previous, out]))
        previous = out
        for ep in stream.score(backend.to_numpy(out["logits"])):
            finished += 1
            monitor.step(finished, out["loss"])
            log.errors.append(ep.wrong_bits)
            log.xents.append(ep.xent_bits)
            if ep.tag == (cur.n, cur.r):
                group.append(ep.wrong_bits if job["criterion"] == "wrong_bits" else ep.xent_bits)
                if len(group) == batch_size:  # a level-up draws the next episodes anew
                    cur.update(float(np.mean(group)))
                    group = []
            if finished % every == 0 or finished == job["budget"]:
                monitor.check_parameters(finished, parameters_of(model))
                log.write(finished, cur)
            if finished >= job["budget"]:
                break
    monitor.close()
    return finished


def run_job(job: dict) -> dict:
    """Train one LSTM on Copy or Repeat Copy under the curriculum; return its run record."""
    backend.set_backend(job.get("backend", backend.get_backend()))
    rng = backend.RNG(job["seed"])
    data_rng = np.random.default_rng([job["seed"], 12345])  # the batches' own stream
    task = job["task"]
    model = tbptt_model(job, *task_dims(task, job["bits"]), "bce", rng)
    cur = Curriculum(task, job["window"], job["threshold"], job["max_repeats"])
    log = _Log()
    started, cpu_started = time.perf_counter(), time.process_time()
    loop = _stream_loop if job["stream"] else _reset_loop
    samples = loop(job, model, cur, log, data_rng)
    return {
        **{k: v for k, v in job.items() if k not in ("backend",)},
        "curve": log.curve,
        "final_n": cur.n,
        "final_r": cur.r,
        "solved_n": cur.solved[0],
        "solved_r": cur.solved[1],
        "solved_length": cur.solved_length,
        "solved_episode_length": cur.solved_episode_length,
        "levels_passed": cur.levels_passed,
        "samples": samples,
        "seconds": round(time.perf_counter() - started, 2),
        "cpu_seconds": round(time.process_time() - cpu_started, 2),
    }


def jobs(config: dict) -> list[dict]:
    """One job per (T, task, method, seed); the small truncations (the slow ones) first."""
    keys = ("bits", "max_repeats", "threshold", "lr", "sg_lr", "sg_hidden", "sg_scale")
    keys += ("target_discount", "stream", "criterion")
    keys += ("hidden", "batch_size", "budget", "window", "log_every", "tbptt")
    axes = {
        "T": config["truncations"],
        "task": config["tasks"],
        "method": config["methods"],
        "seed": config["seeds"],
    }
    return grid(config, keys, axes)


def summary(run: dict) -> str:
    """One line per finished run: what it solved."""
    what = f"{run['task']} T={run['T']} {run['method']} seed={run['seed']}"
    solved = f"N={run['solved_n']}" + (f" R={run['solved_r']}" if run["task"] != "copy" else "")
    steps = run["solved_episode_length"]
    return f"  {what}: solved {solved} (episodes of {steps} steps)  ({run['seconds']:.0f}s)"


def solved_lengths(
    results: dict, task: str, method: str, T: int, key: str = "solved_episode_length"
) -> list[int]:
    """``key`` (default: the episode length solved) of every seed of one setting."""
    return [
        r[key]
        for r in results["runs"]
        if (r["task"], canonical_method(r["method"]), r["T"]) == (task, method, T)
        and not r.get("diverged")
    ]


def table(results: dict) -> str:
    """Markdown table: median (min-max) over seeds of the episode length solved (time steps
    of an episode at the hardest level passed), per task, method and T. Results files
    of older versions, which call bprop ``bptt``, read the same (:func:`canonical_method`)."""
    config = results["config"]
    methods = [canonical_method(m) for m in config["methods"]]
    cols = [(m, T) for m in methods for T in config["truncations"]]
    lines = [
        "| task | " + " | ".join(f"{m} T={T}" for m, T in cols) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    for task in config["tasks"]:
        cells = []
        for m, T in cols:
            v = solved_lengths(results, task, m, T)
            ran = any(
                (r["task"], canonical_method(r["method"]), r["T"]) == (task, m, T)
                for r in results["runs"]
            )
            empty = "diverged" if ran else "-"  # every seed diverged, or none ran
            cells.append(f"{np.median(v):g} ({min(v)}-{max(v)})" if v else empty)
        lines.append(f"| {TASK_LABELS[task]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
