"""``minidni reproduce ff``: every-layer-decoupled MNIST MLPs, Bprop vs DNI vs cDNI.

Jaderberg et al., ICML 2017, section 3.3: fully connected nets with 3
to 6 hidden layers of 256 units (Linear + BatchNorm + ReLU), Adam, batch 256, a DNI at
every layer boundary. Bprop is the same net trained by backpropagation.

Profiles (record what each ran; ``quick`` is sized for a 2-core CPU in ~20 minutes):

- ``smoke``: one depth, a few steps on a data subset; seconds, for the tests.
- ``quick``: depths 3-6, 3 seeds, 3000 steps (12.8 epochs); linear DNI and cDNI models:
  the paper's 2 x 1024 SG models cost ~10x a Bprop step here, and in pilot runs of 1000
  steps linear SG models learned faster than ones with a hidden layer of 256.
- ``full``:  the paper's scale, 500k steps and SG models of 2 hidden layers of 1024.
"""

from __future__ import annotations

from .grid import error_table, grid
from .jobs import MLP_BASE, PER_METHOD
from .jobs import mlp_job as run_job

__all__ = ["PROFILES", "jobs", "run_job", "table"]
PROFILES = {
    "smoke": {
        **MLP_BASE,
        "depths": [3],
        "methods": ["bprop", "dni", "cdni"],
        "seeds": [0],
        "steps": 20,
        "eval_every": 10,
        "sg_hidden": {"bprop": [], "dni": [32], "cdni": []},
        "train_subset": 2048,
        "test_subset": 500,
        "workers": 1,
    },
    "quick": {
        **MLP_BASE,
        "depths": [3, 4, 5, 6],
        "methods": ["bprop", "dni", "cdni"],
        "seeds": [0, 1, 2],
        "steps": 3000,
        "eval_every": 250,
        "sg_hidden": {"bprop": [], "dni": [], "cdni": []},
        "workers": 2,
    },
    "full": {
        **MLP_BASE,
        "lr": {"bprop": 3e-5, "dni": 3e-5, "cdni": 3e-5},
        "sg_lr": {"bprop": 0.0, "dni": 3e-5, "cdni": 3e-5},
        "depths": [3, 4, 5, 6],
        "methods": ["bprop", "dni", "cdni"],
        "seeds": [0, 1, 2],
        "steps": 500_000,
        "eval_every": 5000,
        "sg_hidden": {"bprop": [], "dni": [1024, 1024], "cdni": [1024, 1024]},
        "workers": 1,
    },
}


def jobs(config: dict) -> list[dict]:
    """One job per (depth, method, seed)."""
    keys = ("width", "batch_size", "steps", "eval_every", "train_subset", "test_subset")
    axes = {"depth": config["depths"], "method": config["methods"], "seed": config["seeds"]}
    return grid(config, keys, axes, PER_METHOD)


def table(results: dict) -> str:
    """Markdown table: mean (min-max) final test error % per depth and method."""
    config = results["config"]
    return error_table(results, "depth", config["depths"], "hidden layers")
