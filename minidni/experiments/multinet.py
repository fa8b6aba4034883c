"""``minidni reproduce multinet``: two RNNs at timescales 1 and k, bprop vs joined by a DNI.

Jaderberg et al., ICML 2017, section 3.2 (the hierarchical two-timescale system); the
system and both training methods are in :mod:`minidni.multinet`, and what differs from
the paper in ``docs/multinet.md``. Network A reads a stream of MNIST digits (one a step)
and counts the odd digits of every k steps; network B ticks every k steps on A's messages
and counts the 3s of every k^2 steps. ``bprop`` (update locked): A's update waits for
B's window (one update of A per k^2 steps); ``dni``: A updates every k steps from a
synthetic gradient at its messages.

Every run trains for the same number of steps (digits per stream), so the curves of every
k share one x axis. Logged every ``log_every`` steps: the test accuracy of both counts
on fixed test streams (``eval_streams`` streams of ``eval_steps`` test digits, from zero
states), the training losses and accuracies over the interval, the seconds of training
so far (evaluation excluded), and, for DNI, the synthetic gradient's R^2 and cosine
against B's true message gradients, and its R^2 against the zero predictor (as in the
recurrent experiments, :func:`~minidni.sg_quality.sg_quality`).

**Reaching a fixed accuracy.** For each task and k the threshold is halfway from chance
(always answering the most likely count: Binomial(k, P(odd)) for A, Binomial(k^2, P(3))
for B, with the digit frequencies of the MNIST training set) to 1 (``reach = 0.5``);
``steps_to_b`` / ``seconds_to_b`` are the first log point at or above it (None: not
reached).

Profiles:

- ``smoke``: k = 2, a tiny system, 64 steps on a 2,000-digit subset; seconds, for tests.
- ``quick``: k in {2, 4, 8}, bprop and DNI, 3 seeds (18 runs), 8,192 steps of 32
  streams each, encoder 64, LSTMs of 64 units, messages of 16, linear SG model, B
  reading all k messages of its piece, evaluated on 128 test streams of 64 digits; 2
  workers. Sized for <= 30 minutes on 2
  cores when they are not shared (a k = 2 run costs about twice a k = 8 run: more,
  smaller windows).
- ``full``: 5 seeds, 100,000 steps, 128 streams, cores of 256 units (for a GPU).

The knobs of the synthetic gradient and of the wiring are settings (``--set``):
``sg_hidden`` (M's hidden widths; ``[]`` linear), ``sg_lr`` (M's Adam rate),
``sg_scale`` (the factor on ``delta_hat`` that A backpropagates) and ``b_reads``
(``"all"``: B reads the k messages of its piece; ``"last"``: only the last one).
"""

from __future__ import annotations

import time

import numpy as np

from .. import backend
from ..multinet import thresholds
from .grid import grid

BASE = {
    "methods": ["bprop", "dni"],
    "ks": [2, 4, 8],
    "lr": 1e-3,
    "sg_lr": 1e-3,
    "sg_hidden": [],
    "sg_scale": 1.0,
    "b_reads": "all",
    "d_enc": 64,
    "h_a": 64,
    "d_msg": 16,
    "h_b": 64,
    "batch_size": 32,
    "eval_streams": 256,
    "eval_steps": 64,  # a multiple of every k^2
    "reach": 0.5,
}
PROFILES = {
    "smoke": {
        **BASE,
        "ks": [2],
        "seeds": [0],
        "d_enc": 8,
        "h_a": 8,
        "d_msg": 4,
        "h_b": 8,
        "batch_size": 4,
        "steps": 64,
        "log_every": 32,
        "train_subset": 2000,
        "eval_streams": 8,
        "eval_steps": 16,
        "workers": 1,
    },
    "quick": {
        **BASE,
        "seeds": [0, 1, 2],
        "steps": 8192,
        "log_every": 1024,
        "eval_streams": 128,
        "workers": 2,
    },
    "full": {
        **BASE,
        "seeds": [0, 1, 2, 3, 4],
        "d_enc": 256,
        "h_a": 256,
        "d_msg": 64,
        "h_b": 256,
        "batch_size": 128,
        "steps": 100_352,  # a multiple of 64 and of log_every
        "log_every": 3136,
        "eval_streams": 1024,
        "workers": 1,
    },
}
SYSTEM_KEYS = ("d_enc", "h_a", "d_msg", "h_b", "lr", "sg_lr", "sg_scale", "b_reads")
CHOICES = {"methods": ["bprop", "dni"], "b_reads": ["all", "last"]}  # valid names for --set


def first_reach(curve: dict, key: str, threshold: float) -> tuple[int | None, float | None]:
    """(steps, seconds) of the first log point with ``curve[key] >= threshold``."""
    for steps, seconds, value in zip(curve["steps"], curve["seconds"], curve[key]):
        if value >= threshold:
            return steps, seconds
    return None, None


def run_job(job: dict) -> dict:
    """Train one two-network system with one method and k; return its run record."""
    from ..data import load_mnist
    from ..multinet import D_X, MultiNet
    from ..sg_quality import sg_quality

    backend.set_backend(job.get("backend", backend.get_backend()))
    xp = backend.namespace()
    x_train, y_train = load_mnist("train", job.get("data_dir"))
    x_test, y_test = load_mnist("test", job.get("data_dir"))
    if job.get("train_subset"):
        x_train, y_train = x_train[: job["train_subset"]], y_train[: job["train_subset"]]
    k, batch = job["k"], job["batch_size"]
    window = k * k
    if job["steps"] % window or job["log_every"] % window or job["eval_steps"] % window:
        raise ValueError(
            f"multinet: steps, log_every and eval_steps must be multiples of k^2 = {window}"
        )
    X = backend.asarray(x_train)
    # the same test streams for every run
    idx = np.random.default_rng(12345).integers(
        0, len(y_test), (job["eval_streams"], job["eval_steps"])
    )
    x_eval = backend.asarray(x_test[idx.reshape(-1)].reshape(*idx.shape, D_X))  # (S, N, 784)
    y_eval = y_test[idx]
    data_rng = np.random.default_rng([job["seed"], 2024])  # the training digits' own stream
    net = MultiNet(
        k,
        job["method"],
        backend.RNG(job["seed"]),
        sg_hidden=tuple(job["sg_hidden"]),
        **{key: job[key] for key in SYSTEM_KEYS},
    )
    keys = ("steps", "seconds", "acc_a", "acc_b", "loss_a", "loss_b", "train_acc_a", "train_acc_b")
    curve = {key: [] for key in keys + ("sg_r2", "sg_r2_zero", "sg_cos")}
    acc = {"loss_a": 0.0, "loss_b": 0.0, "correct_a": 0.0, "correct_b": 0.0, "n": 0, "windows": 0}
    sg = None
    train_seconds = 0.0
    started = time.perf_counter()
    for _ in range(job["steps"] // window):
        digits = data_rng.integers(0, len(y_train), (batch, window))
        x = xp.reshape(
            xp.take(X, backend.asarray(digits.reshape(-1)), axis=0), (batch, window, D_X)
        )
        tick = time.perf_counter()
        stats = net.train_window(x, y_train[digits])
        train_seconds += time.perf_counter() - tick
        for key in ("loss_a", "loss_b", "correct_a", "correct_b", "n"):
            acc[key] += stats[key]
        acc["windows"] += 1
        if "sg" in stats:
            sg = (
                dict(stats["sg"]) if sg is None else {key: sg[key] + stats["sg"][key] for key in sg}
            )
        if net.steps % job["log_every"] == 0:
            acc_a, acc_b = net.evaluate(x_eval, y_eval)
            r2, r2_zero, cos = sg_quality(sg) if sg is not None else (None, None, None)
            point = {
                "steps": net.steps,
                "seconds": round(train_seconds, 2),
                "acc_a": round(acc_a, 4),
                "acc_b": round(acc_b, 4),
                "loss_a": round(acc["loss_a"] / acc["windows"], 4),
                "loss_b": round(acc["loss_b"] / acc["windows"], 4),
                "train_acc_a": round(acc["correct_a"] / acc["n"], 4),
                "train_acc_b": round(acc["correct_b"] / acc["n"], 4),
                "sg_r2": None if r2 is None else round(r2, 4),
                "sg_r2_zero": None if r2_zero is None else round(r2_zero, 4),
                "sg_cos": None if cos is None else round(cos, 4),
            }
            for key, value in point.items():
                curve[key].append(value)
            acc = dict.fromkeys(acc, 0)
            sg = None
    reached = thresholds(k, y_train, job["reach"])
    steps_b, seconds_b = first_reach(curve, "acc_b", reached["threshold_b"])
    steps_a, seconds_a = first_reach(curve, "acc_a", reached["threshold_a"])
    return {
        **{key: value for key, value in job.items() if key not in ("backend", "data_dir")},
        "curve": curve,
        **reached,
        "steps_to_a": steps_a,
        "seconds_to_a": seconds_a,
        "steps_to_b": steps_b,
        "seconds_to_b": seconds_b,
        "final_acc_a": curve["acc_a"][-1],
        "final_acc_b": curve["acc_b"][-1],
        "train_seconds": round(train_seconds, 2),
        "seconds": round(time.perf_counter() - started, 2),
    }


def jobs(config: dict) -> list[dict]:
    """One job per (k, method, seed)."""
    keys = SYSTEM_KEYS + ("sg_hidden", "batch_size", "steps", "log_every", "train_subset")
    keys += ("eval_streams", "eval_steps", "reach", "data_dir")
    axes = {"k": config["ks"], "method": config["methods"], "seed": config["seeds"]}
    return grid(config, keys, axes)


def summary(run: dict) -> str:
    """One line per finished run: final accuracies and when B reached its threshold."""
    what = f"k={run['k']} {run['method']} seed={run['seed']}"
    reach = "-" if run["steps_to_b"] is None else run["steps_to_b"]
    return (
        f"  {what}: test acc A {run['final_acc_a']:.3f} B {run['final_acc_b']:.3f}, "
        f"B reached {run['threshold_b']:.2f} at step {reach}  ({run['seconds']:.0f}s)"
    )


def _mean(values: list) -> str:
    got = [v for v in values if v is not None]
    if not got:
        return f"not reached (0/{len(values)})"
    note = "" if len(got) == len(values) else f" ({len(got)}/{len(values)} seeds)"
    return f"{np.mean(got):.0f}{note}"


def table(results: dict) -> str:
    """Markdown table per k and method: steps and training seconds to B's threshold (mean
    over the seeds that reached it), final test accuracies of both counts (mean over seeds)."""
    config = results["config"]
    lines = [
        "| k | method | B threshold | steps to it | seconds to it | final acc B | final acc A |",
        "|---|---|---|---|---|---|---|",
    ]
    for k in config["ks"]:
        for method in config["methods"]:
            runs = [r for r in results["runs"] if (r["k"], r["method"]) == (k, method)]
            lines.append(
                f"| {k} | {method} | {runs[0]['threshold_b']:.3f} "
                f"| {_mean([r['steps_to_b'] for r in runs])} "
                f"| {_mean([r['seconds_to_b'] for r in runs])} "
                f"| {np.mean([r['final_acc_b'] for r in runs]):.3f} "
                f"| {np.mean([r['final_acc_a'] for r in runs]):.3f} |"
            )
    return "\n".join(lines)
