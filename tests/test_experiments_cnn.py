"""``minidni reproduce ff-cnn``: the smoke profile runs, writes well-formed results JSON and
its figure; CIFAR-10 rows run only where the archive is present."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from test_data_cifar10 import make_archive  # a sibling test module (tests/ is on sys.path)

from minidni import experiments
from minidni.data import cifar10 as cifar10_module
from minidni.experiments import ff_cnn
from minidni.plots import make_all
from minidni.tools.cli import main

pytestmark = pytest.mark.mnist


def run_smoke(tmp_path, extra=()) -> dict:
    argv = ["reproduce", "ff-cnn", "--profile", "smoke", "--out", str(tmp_path), *extra]
    assert main(argv) == 0
    return json.loads((tmp_path / "ff-cnn.json").read_text())


def test_smoke_profile_without_cifar10_runs_mnist_and_says_so(
    mnist_dir, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("MINIDNI_DATA_DIR", str(mnist_dir.parent))
    monkeypatch.setenv("MINIDNI_CACHE_DIR", str(tmp_path / "cache"))  # no CIFAR-10 here
    monkeypatch.setattr(ff_cnn, "available", lambda d, data_dir=None: d == "mnist")
    results = run_smoke(tmp_path, ["--set", 'methods=["bprop", "cdni"]'])
    assert "skipping cifar10" in capsys.readouterr().out
    assert results["experiment"] == "ff-cnn" and results["profile"] == "smoke"
    assert results["datasets_run"] == ["mnist"] and results["datasets_skipped"] == ["cifar10"]
    config = ff_cnn.PROFILES["smoke"]
    assert [(r["dataset"], r["method"]) for r in results["runs"]] == [
        ("mnist", "bprop"),
        ("mnist", "cdni"),
    ]
    for run in results["runs"]:
        assert run["steps_evaluated"] == [config["eval_every"], config["steps"]]
        assert len(run["test_error"]) == len(run["train_loss"]) == 2
        assert 0.0 <= run["final_test_error"] <= 1.0
        assert run["final_test_error"] == run["test_error"][-1]
        assert run["channels"] == config["channels"]["mnist"]
    paths = make_all(tmp_path, tmp_path / "figures")
    assert "ff_cnn.png" in [p.name for p in paths]
    assert (tmp_path / "figures" / "ff_cnn.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_smoke_profile_runs_cifar10_rows_when_the_archive_is_present(
    mnist_dir, tmp_path, monkeypatch
):
    """A tiny archive in the real format stands in for CIFAR-10 (its sum pinned)."""
    monkeypatch.setenv("MINIDNI_DATA_DIR", str(mnist_dir.parent))
    monkeypatch.setenv("MINIDNI_CACHE_DIR", str(tmp_path / "cache"))
    content, _, _ = make_archive(np.random.default_rng(0), n_train=(20, 20, 20, 20, 20))
    (tmp_path / "cache" / "cifar10").mkdir(parents=True)
    (tmp_path / "cache" / "cifar10" / cifar10_module.ARCHIVE).write_bytes(content)
    monkeypatch.setattr(cifar10_module, "SHA256", hashlib.sha256(content).hexdigest())
    results = run_smoke(tmp_path, ["--set", 'datasets=["cifar10"]', "--set", 'methods=["dni"]'])
    assert results["datasets_run"] == ["cifar10"] and results["datasets_skipped"] == []
    config = ff_cnn.PROFILES["smoke"]
    assert [(r["dataset"], r["method"]) for r in results["runs"]] == [("cifar10", "dni")]
    assert results["runs"][0]["sg_hidden"] == config["sg_hidden"]["dni"]
    assert ff_cnn.table(results).splitlines()[2].startswith("| cifar10 |")


def test_quick_profile_is_the_documented_budget():
    """What docs/cnn.md reports: MNIST, 2 seeds, 3 methods, batch 64."""
    quick = experiments.configure("ff-cnn", "quick")
    assert quick["datasets"] == ["mnist"] and len(quick["seeds"]) >= 2
    assert sorted(quick["methods"]) == ["bprop", "cdni", "dni"] and quick["batch_size"] == 64
    assert len(ff_cnn.jobs(quick)) == 6
    assert {job["lr_schedule"] for job in ff_cnn.jobs(quick)} == {"cosine"}


def test_lr_schedule_is_checked_against_the_known_schedules():
    with pytest.raises(ValueError, match="lr_schedule.*one of constant, cosine"):
        experiments.configure("ff-cnn", "smoke", {"lr_schedule": "linear"})


def test_cnn_job_builds_the_net_and_schedule_its_job_describes(mnist_dir, monkeypatch):
    """Bugs caught: cnn_job ignoring the SG models' kernel size or hidden widths, or
    training without the job's learning-rate schedule."""
    import minidni.cnn
    import minidni.train

    class Built(Exception):
        pass

    seen = {}

    def spy_build(method, in_shape, channels, rng, **kw):
        seen.update(method=method, channels=list(channels), **kw)
        return "net"

    def spy_fit(net, train, test, steps, rng, batch_size, eval_every, log, lr_schedule):
        seen.update(steps=steps, lr_schedule=lr_schedule)
        raise Built

    monkeypatch.setenv("MINIDNI_DATA_DIR", str(mnist_dir.parent))
    monkeypatch.setattr(minidni.cnn, "build_cnn", spy_build)
    monkeypatch.setattr(minidni.train, "fit", spy_fit)
    config = experiments.configure(
        "ff-cnn", "smoke", {"sg_kernel_size": 3, "lr_schedule": "constant", "methods": ["cdni"]}
    )
    job = [j for j in ff_cnn.jobs(config) if j["dataset"] == "mnist"][0]
    with pytest.raises(Built):
        ff_cnn.run_job(job)
    assert seen["method"] == "cdni" and seen["sg_kernel_size"] == 3
    assert seen["sg_hidden"] == tuple(config["sg_hidden"]["cdni"])
    assert seen["lr_schedule"] == "constant" and seen["steps"] == config["steps"]
