"""``minidni reproduce unlock``: complete unlock, stochastic and stale updates.

Jaderberg et al., ICML 2017, section 3.3 (complete unlock): an MNIST MLP with a DNI at every
layer boundary, each layer updating with probability ``p_update``, trained either with
synthetic gradients only (``mode="sg"``: forwards still locked) or completely unlocked
(``mode="unlock"``: every module i >= 2 also trains on its own synthetic input
``I_i(x)``, :mod:`minidni.unlock`). Beyond the paper, the same nets with every module's
backward pass ``k`` steps stale (:class:`minidni.schedules.Delayed`).

Runs: test error vs ``p_update`` in {1, 0.5, 0.2, 0.1, 0.05} (no delay) and vs staleness
``k`` (``p_update = 1``) for {DNI, cDNI} x {sg, unlock}; the ``p_update = 1, k = 0`` run
is shared by both sweeps.

Profiles:

- ``smoke``: a few steps on a data subset; seconds, for the tests.
- ``quick``: 3 hidden layers of 256, one seed, 3000 steps, ~20 minutes on 2 cores.
  Module and SG learning rates as in ``ff``. Synthetic-input models have one hidden
  layer of 256 (Linear + BatchNorm + ReLU) and Adam lr 1e-3: in 1500-step pilot runs
  (cDNI, complete unlock, seed 0) linear ones left a ~4x larger L2 loss and 6.4% test
  error (6.3% with lr 3e-3), the hidden layer 3.0% for ~25% more time per step;
  synthetic gradients only reached 2.0%.
- ``full``: 4 hidden layers, the paper's 500k steps, SG models of 2 x 1024, 3 seeds.
"""

from __future__ import annotations

from .. import backend
from ..train import Dataset
from .grid import cell, grid
from .jobs import MLP_BASE, PER_METHOD, job_mnist, mlp_record
from .results import finished_runs

P_UPDATE = [1.0, 0.5, 0.2, 0.1, 0.05]
STALENESS = [0, 1, 4, 16]
MODES = ["sg", "unlock"]
MODE_LABELS = {"sg": "synthetic gradients only", "unlock": "complete unlock"}
UNLOCK = {**MLP_BASE, "input_hidden": [256], "input_lr": 1e-3}
PROFILES = {
    "smoke": {
        **UNLOCK,
        "depth": 3,
        "p_update": [1.0, 0.2],
        "staleness": [0, 2],
        "methods": ["dni", "cdni"],
        "modes": MODES,
        "seeds": [0],
        "steps": 20,
        "eval_every": 10,
        "sg_hidden": {"dni": [], "cdni": []},
        "train_subset": 2048,
        "test_subset": 500,
        "workers": 1,
    },
    "quick": {
        **UNLOCK,
        "depth": 3,
        "p_update": P_UPDATE,
        "staleness": STALENESS,
        "methods": ["dni", "cdni"],
        "modes": MODES,
        "seeds": [0],
        "steps": 3000,
        "eval_every": 500,
        "sg_hidden": {"dni": [], "cdni": []},
        "workers": 2,
    },
    "full": {
        **UNLOCK,
        "lr": {"dni": 3e-5, "cdni": 3e-5},
        "sg_lr": {"dni": 3e-5, "cdni": 3e-5},
        "input_lr": 3e-5,
        "depth": 4,
        "p_update": P_UPDATE,
        "staleness": STALENESS,
        "methods": ["dni", "cdni"],
        "modes": MODES,
        "seeds": [0, 1, 2],
        "steps": 500_000,
        "eval_every": 5000,
        "sg_hidden": {"dni": [1024, 1024], "cdni": [1024, 1024]},
        "input_hidden": [1024, 1024],
        "workers": 1,
    },
}


def settings(config: dict) -> list[tuple[float, int]]:
    """(p_update, k) pairs: the p_update sweep without delay, then the staleness sweep at
    p_update = 1 (its k = 0 point is the p_update = 1 run)."""
    pairs = [(p, 0) for p in config["p_update"]]
    return pairs + [(1.0, k) for k in config["staleness"] if (1.0, k) not in pairs]


def jobs(config: dict) -> list[dict]:
    """One job per (setting, method, mode, seed)."""
    keys = ("width", "batch_size", "steps", "eval_every", "depth", "input_lr")
    keys += ("input_hidden", "train_subset", "test_subset")
    axes = {"method": config["methods"], "mode": config["modes"], "seed": config["seeds"]}
    return [
        {**job, "p_update": p, "staleness": k}
        for p, k in settings(config)
        for job in grid(config, keys, axes, PER_METHOD)
    ]


def run_job(job: dict) -> dict:
    """Train one MNIST MLP with DNI or cDNI, gradients only or completely unlocked, under
    ``Stochastic(p_update)`` and/or ``Delayed(staleness)``; return its run record.

    Besides the curves it records, per synthetic-input model, the fraction of the
    variance of the real ``h_{i-1}`` (on 1000 test images) that ``I_i(x)`` leaves
    unexplained: ``||I_i(x) - h_{i-1}||^2 / ||h_{i-1} - mean||^2``.
    """
    from ..schedules import Delayed, Stochastic
    from ..train import fit
    from ..unlock import build_unlocked

    train, test = job_mnist(job)
    rng = backend.RNG(job["seed"])
    p, k = job["p_update"], job["staleness"]
    schedule = Stochastic(p, rng.spawn()) if p < 1.0 else None
    if k > 0:
        schedule = Delayed(k, base=schedule)
    net = build_unlocked(
        job["method"],
        [784] + [job["width"]] * job["depth"] + [10],
        rng,
        lr=job["lr"],
        sg_hidden=tuple(job["sg_hidden"]),
        sg_lr=job["sg_lr"],
        schedule=schedule,
        synthetic_inputs=job["mode"] == "unlock",
        input_hidden=tuple(job["input_hidden"]),
        input_lr=job["input_lr"],
    )
    history = fit(net, train, test, job["steps"], rng.spawn(), job["batch_size"], job["eval_every"])
    unexplained = _input_unexplained(net, test) if net.inputs else None
    return mlp_record(job, history, input_unexplained=unexplained)


def _input_unexplained(net, test: Dataset) -> list[float]:
    """Per input model I_2..I_N: unexplained variance fraction of the real input."""
    x = test.x[:1000]
    hs = net.forward(x, train=False)[0]
    xp = backend.namespace()
    fractions = []
    for i in range(1, len(net.modules)):
        h_hat = net.inputs[i].predict(x, train=False)[0]
        h = hs[i]
        residual = backend.to_float(xp.sum((h_hat - h) ** 2))
        spread = backend.to_float(xp.sum((h - xp.mean(h, axis=0)) ** 2))
        fractions.append(round(residual / spread, 4))
    return fractions


def columns(config: dict) -> list[tuple[str, str]]:
    """(method, mode) pairs, one table column each."""
    return [(method, mode) for mode in config["modes"] for method in config["methods"]]


def setting_runs(results: dict, method: str, mode: str, p: float, k: int) -> list[dict]:
    """The runs (every seed, diverged or not) of one setting."""
    return [
        r
        for r in results["runs"]
        if (r["method"], r["mode"], r["p_update"], r["staleness"]) == (method, mode, p, k)
    ]


def errors(results: dict, method: str, mode: str, p: float, k: int) -> list[float]:
    """Final test errors (%) over the seeds of one setting that did not diverge."""
    runs = finished_runs(setting_runs(results, method, mode, p, k))
    return [100 * r["final_test_error"] for r in runs]


def table(results: dict) -> str:
    """Two markdown tables, mean (min-max) final test error %: vs p_update, vs staleness."""
    config = results["config"]
    cols = columns(config)
    head = " | ".join(f"{m.upper() if m == 'dni' else 'cDNI'} {mode}" for m, mode in cols)
    parts = []
    for label, rows in (
        ("p_update", [(p, 0) for p in config["p_update"]]),
        ("staleness k", [(1.0, k) for k in config["staleness"]]),
    ):
        lines = [f"| {label} | {head} |", "|---" * (len(cols) + 1) + "|"]
        for p, k in rows:
            cells = []
            for method, mode in cols:
                e = errors(results, method, mode, p, k)
                cells.append(cell(e, len(setting_runs(results, method, mode, p, k))))
            lines.append(f"| {p if label == 'p_update' else k} | " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)
