"""``minidni reproduce update-prob``: DNI and cDNI with stochastic updates.

Jaderberg et al., ICML 2017, section 3.3: after each forward pass, every layer's
backward pass and update happen only with probability ``p_update``, independently per
layer (:class:`minidni.schedules.Stochastic`). The paper's point: decoupled layers keep
learning when they update rarely and out of step with each other.

Profiles: ``smoke`` (seconds), ``quick`` (3 hidden layers, 3 seeds, 5000 steps, ~15
minutes on 2 cores), ``full`` (the paper's scale).
"""

from __future__ import annotations

from .grid import error_table, grid
from .jobs import MLP_BASE, PER_METHOD
from .jobs import mlp_job as run_job

__all__ = ["PROFILES", "jobs", "run_job", "table"]

P_UPDATE = [1.0, 0.5, 0.2, 0.1, 0.05]
PROFILES = {
    "smoke": {
        **MLP_BASE,
        "depth": 3,
        "p_update": [1.0, 0.2],
        "methods": ["dni", "cdni"],
        "seeds": [0],
        "steps": 20,
        "eval_every": 10,
        "sg_hidden": {"dni": [32], "cdni": []},
        "train_subset": 2048,
        "test_subset": 500,
        "workers": 1,
    },
    "quick": {
        **MLP_BASE,
        "depth": 3,
        "p_update": P_UPDATE,
        "methods": ["dni", "cdni"],
        "seeds": [0, 1, 2],
        "steps": 5000,
        "eval_every": 500,
        "sg_hidden": {"dni": [], "cdni": []},
        "workers": 2,
    },
    "full": {
        **MLP_BASE,
        "lr": {"dni": 3e-5, "cdni": 3e-5},
        "sg_lr": {"dni": 3e-5, "cdni": 3e-5},
        "depth": 4,
        "p_update": P_UPDATE,
        "methods": ["dni", "cdni"],
        "seeds": [0, 1, 2],
        "steps": 500_000,
        "eval_every": 5000,
        "sg_hidden": {"dni": [1024, 1024], "cdni": [1024, 1024]},
        "workers": 1,
    },
}


def jobs(config: dict) -> list[dict]:
    """One job per (p_update, method, seed)."""
    keys = ("width", "batch_size", "steps", "eval_every", "depth", "train_subset", "test_subset")
    axes = {"p_update": config["p_update"], "method": config["methods"], "seed": config["seeds"]}
    return grid(config, keys, axes, PER_METHOD)


def table(results: dict) -> str:
    """Markdown table: mean (min-max) final test error % per p_update and method."""
    config = results["config"]
    return error_table(results, "p_update", config["p_update"], "p_update")
