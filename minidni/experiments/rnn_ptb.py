"""``minidni reproduce rnn-ptb``: character-level Penn Treebank with truncated BPTT vs DNI.

Jaderberg et al., ICML 2017, section 3.1 / Table 1 (last row): an LSTM language model
over the 50 PTB characters (:mod:`minidni.data.ptb`), trained with truncated BPTT over
segments of T in {2, 3, 4, 5, 8} steps, without (``bprop``) and with (``dni``) a synthetic
gradient at every segment boundary, and with the auxiliary task as well (``dni_aux``, the
paper's "DNI + Aux" row; :mod:`minidni.tbptt` says how it is built). The character
stream is cut into B parallel streams (:func:`~minidni.data.ptb.ptb_batches`) and the
LSTM state is carried from one segment to the next, so T only limits how far back
gradients flow, never what the model sees.

**M's target is discounted here** (``target_discount = 0.1``, the same factor as the
injected ``sg_scale``), unlike ``rnn-copy``'s undiscounted bootstrap (the paper's, as we
read it). The character stream never ends, so the undiscounted target, the sum of *all*
future loss gradients carried back, has no end of sequence to anchor it, and in the
quick setting it diverged: at T = 2 DNI ended at 4.36 test bits/char (DNI + Aux 4.36 at
T = 2 and 3), the level of a unigram model, against 2.17 for Bprop; a discount of 0.9
also failed (4.62), 0.5 trained (2.15), 0.1 is the old default (docs/recurrent.md has
the table). ``--set target_discount=1`` runs the undiscounted variant.

Every run trains on the same number of characters (``chars`` per stream-batch row times
B), so a smaller T makes more, shorter updates. Far from convergence (the ``quick``
budget) the extra updates outweigh the longer horizon, and test BPC *rises* with T
(quick, one seed: Bprop 2.17 at T = 2, 2.44 at T = 8), the opposite of the paper's
trend; compare the methods at equal T. The metric is the **test-split bits per
character**, ``mean(-log2 p(next char))``, with the state carried across the whole test
stream (cut into ``eval_batch`` parallel streams).

**Which split trains.** The training split is used when its file is present
(:func:`~minidni.data.ptb.has_split`); offline, where only ``valid`` and ``test`` are at
hand, the model trains on the *validation* split instead. Either way it is evaluated on
the test split, and ``trained_on`` in the results (and the log) says which split trained.

Profiles:

- ``smoke``: T in {2, 5}, a few segments of a tiny LSTM, evaluated on the first 2,000
  test characters; seconds, for the tests.
- ``quick``: the whole grid (10 runs, one seed), LSTM of 128 units, batch 32, 50,000
  characters per stream (1.6M characters, about 4 passes over the validation split),
  Adam 1e-3, linear SG models; sized for <= 30 minutes on 2 cores: the whole grid took
  822 s of wall time with both cores shared with other jobs (runs of 110-190 s).
- ``full``: LSTM of 1024 units, batch 256, 3 seeds, 20 epochs of the training split
  (for a GPU).
"""

from __future__ import annotations

import time

import numpy as np

from .. import backend
from ..tbptt import canonical_method
from ..tools.monitor import Monitor, parameters_of
from .grid import cell, grid
from .jobs import tbptt_model
from .results import finished_runs

TRUNCATIONS = [2, 3, 4, 5, 8]

BASE = {
    "methods": ["bprop", "dni", "dni_aux"],
    "lr": 1e-3,
    "sg_lr": 1e-3,
    "sg_hidden": [],
    "sg_scale": 0.1,
    # Our choice, not the paper's: on the endless character stream the undiscounted
    # bootstrap (1.0) diverged at T = 2 (module docstring).
    "target_discount": 0.1,
    "train_split": "auto",  # "train" when present, else "valid"
    "eval_batch": 32,
    "eval_len": 100,
}
PROFILES = {
    "smoke": {
        **BASE,
        "truncations": [2, 5],
        "seeds": [0],
        "hidden": 16,
        "batch_size": 8,
        "chars": 40,  # per stream: 40 * 8 = 320 characters
        "log_every": 5,
        "test_chars": 2000,
        "eval_batch": 4,
        "eval_len": 50,
        "workers": 1,
    },
    "quick": {
        **BASE,
        "truncations": TRUNCATIONS,
        "seeds": [0],
        "hidden": 128,
        "batch_size": 32,
        "chars": 50_000,
        "log_every": 500,
        "workers": 2,
    },
    "full": {
        **BASE,
        "lr": 1e-4,
        "sg_lr": 1e-4,
        "truncations": TRUNCATIONS,
        "seeds": [0, 1, 2],
        "hidden": 1024,
        "batch_size": 256,
        "epochs": 20,
        "log_every": 1000,
        "workers": 1,
    },
}
LN2 = float(np.log(2.0))
CHOICES = {"methods": ["bprop", "dni", "dni_aux"]}  # valid names for --set


def trained_on(config: dict) -> str:
    """The split a profile trains on: its ``train_split``, or with "auto" the training
    split when it is present locally and else the validation split."""
    from ..data import has_split

    if config["train_split"] != "auto":
        return config["train_split"]
    return "train" if has_split("train") else "valid"


def one_hot_chars(codes: np.ndarray, vocab_size: int) -> np.ndarray:
    """Host one-hot of integer codes (B, T) -> float32 (B, T, V)."""
    return np.eye(vocab_size, dtype=np.float32)[codes]


def _log_probs(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """log p(target) under softmax(logits): logits (B, T, V), targets (B, T) -> (B, T)."""
    z = logits - logits.max(axis=-1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=-1))
    return np.take_along_axis(z, targets[..., None], axis=-1)[..., 0] - log_norm


def bits_per_char(logits, targets: np.ndarray) -> float:
    """Mean -log2 p(target) of logits (B, T, V) (any backend) and host targets (B, T)."""
    logp = _log_probs(backend.to_numpy(logits).astype(np.float64), np.asarray(targets))
    return float(-logp.mean() / LN2)


def evaluate_bpc(model, codes: np.ndarray, batch_size: int, seq_len: int) -> float:
    """Bits per character of ``codes`` under ``model``, the state carried across windows."""
    from ..data import PTB_VOCAB, ptb_batches

    total, count, state = 0.0, 0, None
    for x, y in ptb_batches(codes, batch_size, seq_len):
        logits, state = model.predict(backend.asarray(one_hot_chars(x, len(PTB_VOCAB))), state)
        logp = _log_probs(backend.to_numpy(logits).astype(np.float64), y)
        total, count = total - float(logp.sum()), count + logp.size
    return total / count / LN2


def run_job(job: dict) -> dict:
    """Train one LSTM language model with truncation T; return its run record."""
    from ..data import PTB_VOCAB, load_ptb_chars, ptb_batches

    backend.set_backend(job.get("backend", backend.get_backend()))
    rng = backend.RNG(job["seed"])
    vocab = len(PTB_VOCAB)
    train = load_ptb_chars(job["trained_on"])
    test = load_ptb_chars("test")
    if job.get("test_chars"):
        test = test[: job["test_chars"]]
    model = tbptt_model(job, vocab, vocab, "ce", rng)
    B, T = job["batch_size"], job["T"]
    per_epoch = (len(train) // B - 1) // T  # segments in one pass over the split
    if "chars" in job:
        segments = max(1, job["chars"] // T)
    else:
        segments = job["epochs"] * per_epoch
    curve = {"segments": [], "chars": [], "train_bpc": []}
    window: list[float] = []
    started, cpu_started = time.perf_counter(), time.process_time()
    step = 0
    monitor = Monitor(segments, unit="segment")  # progress; NaN / inf raise Diverged
    while step < segments:
        model.reset(B)  # each pass over the split starts from a zero state
        for x, y in ptb_batches(train, B, T):
            out = model.segment(backend.asarray(one_hot_chars(x, vocab)), backend.asarray(y))
            window.append(bits_per_char(out["logits"], y))
            step += 1
            monitor.step(step, out["loss"])
            if step % job["log_every"] == 0 or step == segments:
                monitor.check_parameters(step, parameters_of(model))
                curve["segments"].append(step)
                curve["chars"].append(step * T * B)
                curve["train_bpc"].append(round(float(np.mean(window)), 4))
                window = []
            if step == segments:
                break
    monitor.close()
    train_seconds = time.perf_counter() - started
    test_bpc = evaluate_bpc(model, test, job["eval_batch"], job["eval_len"])
    return {
        **{k: v for k, v in job.items() if k not in ("backend",)},
        "curve": curve,
        "epochs_done": round(step / per_epoch, 3),
        "test_bpc": round(test_bpc, 4),
        "test_chars_evaluated": len(test),
        "train_seconds": round(train_seconds, 2),
        "seconds": round(time.perf_counter() - started, 2),
        "cpu_seconds": round(time.process_time() - cpu_started, 2),
    }


def jobs(config: dict) -> list[dict]:
    """One job per (T, method, seed), training on the split :func:`trained_on` names."""
    keys = ("lr", "sg_lr", "sg_hidden", "sg_scale", "target_discount", "hidden", "batch_size")
    keys += ("chars", "epochs")
    keys += ("log_every", "test_chars", "eval_batch", "eval_len", "tbptt")
    axes = {"T": config["truncations"], "method": config["methods"], "seed": config["seeds"]}
    return [{**job, "trained_on": trained_on(config)} for job in grid(config, keys, axes)]


def summary(run: dict) -> str:
    """One line per finished run: its test bits per character."""
    what = f"T={run['T']} {run['method']} seed={run['seed']}"
    return f"  {what}: test {run['test_bpc']:.3f} bits/char  ({run['seconds']:.0f}s)"


def notes(config: dict, log) -> dict:
    """What the results file records beside the runs: the split trained on (logged)."""
    split = trained_on(config)
    log(f"rnn-ptb: training on the {split!r} split, reporting bits/char on the 'test' split")
    return {"trained_on": split}


def bpcs_of(results: dict, method: str, T: int) -> list[float]:
    """Test bits per character of every seed of one setting."""
    runs = finished_runs(results["runs"])
    return [r["test_bpc"] for r in runs if (canonical_method(r["method"]), r["T"]) == (method, T)]


def _cell(results: dict, method: str, T: int) -> str:
    """Mean test BPC over seeds, or what diverged."""
    runs = [r for r in results["runs"] if (canonical_method(r["method"]), r["T"]) == (method, T)]
    bpcs = bpcs_of(results, method, T)
    if len(bpcs) == len(runs) and bpcs:
        return f"{np.mean(bpcs):.3f}"
    return cell(bpcs, len(runs), ".3f")


def table(results: dict) -> str:
    """Markdown table: mean test bits per character over seeds, per method and T. Results
    files of older versions, which call bprop ``bptt``, read the same
    (:func:`~minidni.tbptt.canonical_method`)."""
    config = results["config"]
    head = " | ".join(f"T={T}" for T in config["truncations"])
    lines = [f"| method (trained on {results['trained_on']}) | {head} |"]
    lines.append("|---" * (len(config["truncations"]) + 1) + "|")
    for method in map(canonical_method, config["methods"]):
        cells = [_cell(results, method, T) for T in config["truncations"]]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
