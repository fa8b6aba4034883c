"""What several experiments share: the MNIST MLP job (ff, update-prob, unlock and
ff-cnn records), and the TBPTT learner of a recurrent job (rnn-copy, rnn-ptb)."""

from __future__ import annotations

import functools
from typing import Any

from .. import backend
from ..data import mnist_datasets
from ..train import Dataset

# Per-method Adam learning rates of the modules and of the SG models of the MNIST MLP
# experiments. The quick profiles' values come from short pilot runs (docs/results.md):
# DNI without labels is steadier with a smaller module learning rate; SG models learn at
# 1e-3.
MLP_BASE = {
    "width": 256,
    "batch_size": 256,
    "lr": {"bprop": 1e-3, "dni": 3e-4, "cdni": 1e-3},
    "sg_lr": {"bprop": 0.0, "dni": 1e-3, "cdni": 1e-3},
}
PER_METHOD = ("lr", "sg_lr", "sg_hidden")  # the MLP settings given per method


@functools.cache
def _mnist_cached(data_dir: str | None, backend_name: str) -> tuple[Dataset, Dataset]:
    return mnist_datasets(data_dir)


def mlp_job(job: dict) -> dict:
    """Train one every-layer-decoupled MNIST MLP and return its run record.

    ``job`` holds: method, depth (hidden layers of ``width`` units), seed, steps,
    eval_every, batch_size, lr, sg_lr, sg_hidden, p_update (1 = lockstep) and optionally
    train_subset / test_subset (first rows only, for the smoke profile).
    """
    from ..decoupled import build_mlp
    from ..schedules import Stochastic
    from ..train import fit

    train, test = job_mnist(job)
    rng = backend.RNG(job["seed"])
    p = job.get("p_update", 1.0)
    net = build_mlp(
        job["method"],
        [784] + [job["width"]] * job["depth"] + [10],
        rng,
        lr=job["lr"],
        sg_hidden=tuple(job["sg_hidden"]),
        sg_lr=job["sg_lr"],
        schedule=None if p == 1.0 else Stochastic(p, rng.spawn()),
    )
    history = fit(net, train, test, job["steps"], rng.spawn(), job["batch_size"], job["eval_every"])
    return mlp_record(job, history)


def job_mnist(job: dict) -> tuple[Dataset, Dataset]:
    """MNIST (train, test) on the job's backend, cut to ``train_subset`` / ``test_subset``
    rows when the job has them (the smoke profiles)."""
    backend.set_backend(job.get("backend", backend.get_backend()))
    train, test = _mnist_cached(job.get("data_dir"), backend.get_backend())
    if job.get("train_subset"):
        train = Dataset(train.x[: job["train_subset"]], train.y[: job["train_subset"]])
    if job.get("test_subset"):
        test = Dataset(test.x[: job["test_subset"]], test.y[: job["test_subset"]])
    return train, test


def mlp_record(job: dict, history: Any, **extra: Any) -> dict:
    """The run record of an MNIST job: its settings, curves, final error and seconds."""
    return {
        **{k: v for k, v in job.items() if k not in ("data_dir", "backend")},
        "steps_evaluated": history.steps,
        "test_error": history.test_error,
        "train_loss": history.train_loss,
        "final_test_error": history.final_test_error,
        **extra,
        "seconds": round(history.seconds, 2),
    }


def tbptt_model(job: dict, d_in: int, d_out: int, loss: str, rng: backend.RNG):
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
        target_discount=job["target_discount"],
        **job.get("tbptt", {}),
    )
