"""``minidni reproduce ff-cnn``: every-layer-decoupled CNNs, Bprop vs DNI vs cDNI.

Jaderberg et al., ICML 2017, section 3.3, the CNNs: convolutional nets on MNIST and
CIFAR-10 with a DNI after every layer. The net (:func:`minidni.cnn.cnn_modules`): hidden
conv layers (5x5, resolution-preserving padding) + BatchNorm + ReLU + 3x3 pooling
(max after the first, average after the others), a Linear head; SG models are
convolutional (:class:`minidni.cnn.ConvSyntheticGradient`). CIFAR-10 rows run only where
its archive is present locally (nothing is downloaded for them); the results record
which datasets ran and which were skipped. ``docs/cnn.md`` compares the settings with
the paper's.

Profiles (record what each ran):

- ``smoke``: a tiny CNN, a few steps on a subset of MNIST; seconds, for the tests.
- ``quick``: MNIST, 3 conv layers of 16 channels, batch 64, 3600 steps (3.8 epochs),
  2 seeds; Adam 1e-3 with a cosine decay to 0 (``lr_schedule``), without which
  BatchNorm's running statistics lag the still fast-moving weights and the final test
  error jumps from one evaluation to the next. cDNI's SG models have one hidden 5x5
  conv layer of 16 (a linear one leaves cDNI a point behind Bprop; a second one, the
  paper's depth, did no better at 2400 steps); DNI's are single zero-initialised 5x5
  convolutions, to keep the profile within 30 minutes on the idle 2-core CPU (2
  workers). docs/cnn.md has the measurements behind each choice.
- ``full``: MNIST and CIFAR-10 at the paper's layout (widths 64 / 128 as we read it; see
  docs/cnn.md), SG models with two hidden conv layers, long training; for a GPU.
"""

from __future__ import annotations

import functools

from .. import backend
from ..optim import LR_SCHEDULES
from ..tools.allocator import retain_freed_memory
from ..train import Dataset
from .jobs import mlp_record

DATASETS = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32)}
METHODS = ["bprop", "dni", "cdni"]
CHOICES = {  # valid names for --set
    "methods": tuple(METHODS),
    "datasets": tuple(DATASETS),
    "lr_schedule": tuple(LR_SCHEDULES),
}
PROFILES = {
    "smoke": {
        "datasets": ["mnist", "cifar10"],
        "channels": {"mnist": [2, 2, 2], "cifar10": [2, 2, 2]},
        "methods": METHODS,
        "seeds": [0],
        "steps": 6,
        "eval_every": 3,
        "batch_size": 16,
        "lr": {"bprop": 1e-3, "dni": 1e-3, "cdni": 1e-3},
        "sg_lr": {"bprop": 0.0, "dni": 1e-3, "cdni": 1e-3},
        "sg_hidden": {"bprop": [], "dni": [2], "cdni": []},
        "sg_kernel_size": 5,
        "lr_schedule": "cosine",
        "train_subset": 256,
        "test_subset": 64,
        "workers": 1,
    },
    "quick": {
        "datasets": ["mnist"],
        "channels": {"mnist": [16, 16, 16], "cifar10": [32, 32, 32]},
        "methods": ["bprop", "cdni", "dni"],
        "seeds": [0, 1],
        "steps": 3600,
        "eval_every": 600,
        "batch_size": 64,
        "lr": {"bprop": 1e-3, "dni": 1e-3, "cdni": 1e-3},
        "sg_lr": {"bprop": 0.0, "dni": 1e-3, "cdni": 1e-3},
        "sg_hidden": {"bprop": [], "dni": [], "cdni": [16]},
        "sg_kernel_size": 5,
        "lr_schedule": "cosine",
        "workers": 2,
    },
    "full": {
        "datasets": ["mnist", "cifar10"],
        "channels": {"mnist": [64, 64, 64], "cifar10": [128, 128, 128]},
        "methods": METHODS,
        "seeds": [0, 1, 2],
        "steps": 100_000,
        "eval_every": 2000,
        "batch_size": 256,
        "lr": {"bprop": 3e-5, "dni": 3e-5, "cdni": 3e-5},
        "sg_lr": {"bprop": 0.0, "dni": 3e-5, "cdni": 3e-5},
        "sg_hidden": {"bprop": [], "dni": "width x 2", "cdni": "width x 2"},
        "sg_kernel_size": 5,
        "lr_schedule": "constant",
        "workers": 1,
    },
}


def available(dataset: str, data_dir: str | None = None) -> bool:
    """Whether a dataset's files are here: MNIST is always attempted (it downloads when
    missing, as in the other experiments); CIFAR-10 only runs from a local archive."""
    if dataset == "cifar10":
        from ..data import has_cifar10

        return has_cifar10(data_dir)
    return True


def sg_hidden(config: dict, dataset: str, method: str) -> list[int]:
    """The SG models' hidden widths; ``"width x 2"`` means two layers of the net's width."""
    hidden = config["sg_hidden"][method]
    if hidden == "width x 2":
        return [config["channels"][dataset][0]] * 2
    return list(hidden)


def jobs(config: dict, data_dir: str | None = None) -> list[dict]:
    """One job per (dataset, method, seed), for the datasets that are present."""
    settings = ("batch_size", "steps", "eval_every", "lr_schedule", "sg_kernel_size")
    subsets = ("train_subset", "test_subset")
    return [
        {
            **{k: config[k] for k in settings + subsets if k in config},
            "lr": config["lr"][method],
            "sg_lr": config["sg_lr"][method],
            "sg_hidden": sg_hidden(config, dataset, method),
            "channels": config["channels"][dataset],
            "dataset": dataset,
            "method": method,
            "seed": seed,
        }
        for dataset in config["datasets"]
        if available(dataset, data_dir)
        for seed in config["seeds"]  # seeds outermost: a cut-short run has every method
        for method in config["methods"]
    ]


@functools.cache
def _data(dataset: str, data_dir: str | None, backend_name: str) -> tuple[Dataset, Dataset]:
    """(train, test) images as (N, C, H, W) maps on the current backend."""
    if dataset == "mnist":
        from ..data import load_mnist, standardize

        def load(split):
            x, y = load_mnist(split, data_dir)
            return Dataset.from_numpy(standardize(x).reshape(-1, 1, 28, 28), y)  # (N, 1, 28, 28)
    else:
        from ..data import cifar10, load_cifar10

        def load(split):
            x, y = load_cifar10(split, data_dir)
            return Dataset.from_numpy(cifar10.standardize(x), y)  # (N, 3, 32, 32)

    return load("train"), load("test")


def run_job(job: dict) -> dict:
    """Train one every-layer-decoupled CNN and return its run record."""
    from ..cnn import build_cnn
    from ..train import fit

    backend.set_backend(job.get("backend", backend.get_backend()))
    retain_freed_memory()  # a CNN step's large temporaries: reuse, not page faults
    train, test = _data(job["dataset"], job.get("data_dir"), backend.get_backend())
    if job.get("train_subset"):
        train = Dataset(train.x[: job["train_subset"]], train.y[: job["train_subset"]])
    if job.get("test_subset"):
        test = Dataset(test.x[: job["test_subset"]], test.y[: job["test_subset"]])
    rng = backend.RNG(job["seed"])
    net = build_cnn(
        job["method"],
        DATASETS[job["dataset"]],
        job["channels"],
        rng,
        lr=job["lr"],
        sg_hidden=tuple(job["sg_hidden"]),
        sg_kernel_size=job["sg_kernel_size"],
        sg_lr=job["sg_lr"],
    )
    name = f"{job['dataset']} {job['method']} seed={job['seed']}"

    def progress(line: str) -> None:  # one line per evaluation: a long run shows its curve
        print(f"  [{name}] {line}", flush=True)

    history = fit(
        net,
        train,
        test,
        job["steps"],
        rng.spawn(),
        job["batch_size"],
        job["eval_every"],
        progress,
        job["lr_schedule"],
    )
    return mlp_record(job, history)


def summary(run: dict) -> str:
    """One line per finished run: its final test error."""
    what = f"{run['dataset']} method={run['method']} seed={run['seed']}"
    return f"  {what}: test error {100 * run['final_test_error']:.2f}%  ({run['seconds']:.0f}s)"


def notes(config: dict, log) -> dict:
    """What the results file records beside the runs: the datasets run and skipped (a
    dataset whose files are not here is skipped, and said so)."""
    ran = [d for d in config["datasets"] if available(d)]
    skipped = [d for d in config["datasets"] if d not in ran]
    for d in skipped:
        log(f"ff-cnn: skipping {d}: its data is not present here (see docs/cnn.md)")
    return {"datasets_run": ran, "datasets_skipped": skipped}


def table(results: dict) -> str:
    """Markdown table: mean (min-max) final test error % per dataset and method."""
    methods = results["config"]["methods"]
    lines = ["| CNN | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for dataset in results["datasets_run"]:
        cells = []
        for method in methods:
            errs = [
                100 * r["final_test_error"]
                for r in results["runs"]
                if r["dataset"] == dataset and r["method"] == method
            ]
            cells.append(f"{sum(errs) / len(errs):.2f} ({min(errs):.2f}-{max(errs):.2f})")
        lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
