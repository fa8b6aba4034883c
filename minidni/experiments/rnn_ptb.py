"""``minidni reproduce rnn-ptb``: character-level Penn Treebank with truncated BPTT vs DNI.

Jaderberg et al., ICML 2017, section 3.1 (recurrent networks, char-PTB): an LSTM language model
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
T = 2 and 3), the level of a unigram model, against 2.21 for BPTT, and early stopping
could not rescue it; earlier, a discount of 0.9 also failed, 0.5 trained
(docs/recurrent.md has the tables). ``--set target_discount=1`` runs the undiscounted
variant.

**The protocol, as the paper describes it** (section 3.1): bits per character as in
Graves 2013, ``mean(-log2 p(next char))``; early stopping on the validation error; no
learning-rate decay (Adam at a constant rate). Here:

- **Splits.** With the training split present (:func:`~minidni.data.ptb.has_split`) the
  model trains on it and stops early on the whole validation split. Offline only
  ``valid`` and ``test`` are at hand: the model then trains on the first part of the
  validation split and stops early on its last ``val_fraction`` (10%, cut at the end
  of a sentence), which it never trains on (:func:`splits`). The results say exactly
  which characters did what (``splits``).
- **Early stopping.** Every ``val_every`` characters per stream (and at the end) the
  held-out bits per character are measured, the state carried across the held-out
  stream; the parameters of the best evaluation are kept. Training stops after
  ``patience`` evaluations in a row without a new best, or at the budget (``chars`` per
  stream, or ``epochs``). The reported number is the **test-split bits per
  character of the kept parameters**, the state carried across the whole test stream
  (cut into ``eval_batch`` parallel streams).

Every run trains on at most the same number of characters (``chars`` per stream times
B), so a smaller T makes more, shorter updates. Far from convergence (the ``quick``
budget) the extra updates outweigh the longer horizon, and test BPC *rises* with T, the
opposite of the paper's trend; compare the methods at equal T.

Profiles:

- ``smoke``: T in {2, 5}, a few segments of a tiny LSTM, evaluated on the first 2,000
  test characters; seconds, for the tests.
- ``quick``: the whole grid (15 runs, one seed), LSTM of 128 units, batch 32, at most
  50,000 characters per stream (1.6M characters, about 4.5 passes over the 90% of the
  validation split it trains on), held-out evaluation every 5,000 characters per
  stream, patience 3, Adam 1e-3, linear SG models.
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
    "val_fraction": 0.1,  # held out of a non-training split for early stopping
    "val_every": 5000,  # characters per stream between held-out evaluations
    "patience": 3,  # evaluations in a row without a new best before stopping
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
        "val_every": 20,
        "val_chars": 2000,
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
        "val_every": 10_000,
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


class EarlyStopping:
    """Early stopping on held-out bits per character: keeps a copy of the parameters at
    the best evaluation so far, and says to stop after ``patience`` evaluations in a row
    without a new best."""

    def __init__(self, patience: int):
        self.patience = patience
        self.best, self.best_step, self.since_best = float("inf"), 0, 0
        self.saved: list | None = None

    def update(self, bpc: float, step: int, params: list) -> bool:
        """Record an evaluation at ``step``; True when training should stop."""
        if bpc < self.best:
            xp = backend.namespace()
            self.best, self.best_step, self.since_best = bpc, step, 0
            self.saved = [xp.asarray(p.value, copy=True) for p in params]
        else:
            self.since_best += 1
        return self.since_best >= self.patience

    def restore(self, params: list) -> None:
        """Put the best evaluation's parameters back into ``params``."""
        for p, value in zip(params, self.saved):
            p.value = value


def holdout_cut(codes: np.ndarray, fraction: float) -> int:
    """Where the last ``fraction`` of a split begins: just after the first end of a
    sentence at or past ``(1 - fraction) * len(codes)``."""
    from ..data import PTB_VOCAB

    start = int(len(codes) * (1.0 - fraction))
    ends = np.flatnonzero(codes[start:] == PTB_VOCAB.eol)
    if not len(ends):
        raise ValueError(f"no end of sentence in the last {fraction:.0%} of the split")
    return start + int(ends[0]) + 1


def splits(split: str, fraction: float) -> tuple[dict, dict]:
    """The characters that train, validate (early stopping) and test: (codes, described).

    Trained on the training split, the whole validation split validates; trained on
    another split (offline: ``valid``), its last ``fraction`` is held out to validate and
    never trained on. The test split tests.
    """
    from ..data import load_ptb_chars

    train = load_ptb_chars(split)
    if split == "train":
        val = load_ptb_chars("valid")
        described = {"train": "train (all)", "validation": "valid (all)"}
    else:
        cut = holdout_cut(train, fraction)
        n = len(train)
        train, val = train[:cut], train[cut:]
        described = {
            "train": f"{split}[0:{cut}] ({cut} characters, the first {cut / n:.1%})",
            "validation": f"{split}[{cut}:{n}] ({n - cut} characters, held out)",
        }
    test = load_ptb_chars("test")
    described["test"] = f"test (all, {len(test)} characters)"
    return {"train": train, "validation": val, "test": test}, described


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
    """Train one LSTM language model with truncation T, early-stopped on held-out
    characters; return its run record (test BPC of the parameters kept)."""
    from ..data import PTB_VOCAB, ptb_batches

    backend.set_backend(job.get("backend", backend.get_backend()))
    rng = backend.RNG(job["seed"])
    vocab = len(PTB_VOCAB)
    data, described = splits(job["trained_on"], job["val_fraction"])
    train, val, test = data["train"], data["validation"], data["test"]
    if job.get("val_chars"):
        val = val[: job["val_chars"]]
    if job.get("test_chars"):
        test = test[: job["test_chars"]]
    model = tbptt_model(job, vocab, vocab, "ce", rng)
    B, T = job["batch_size"], job["T"]
    per_epoch = (len(train) // B - 1) // T  # segments in one pass over the split
    if "chars" in job:
        segments = max(1, job["chars"] // T)
    else:
        segments = job["epochs"] * per_epoch
    val_segments = max(1, job["val_every"] // T)
    curve = {"segments": [], "chars": [], "train_bpc": []}
    curve.update(val_segments=[], val_chars=[], val_bpc=[])
    stopping = EarlyStopping(job["patience"])
    window: list[float] = []
    started, cpu_started = time.perf_counter(), time.process_time()
    step, stopped_early = 0, False
    params = parameters_of(model)
    monitor = Monitor(segments, unit="segment")  # progress; NaN / inf raise Diverged
    while step < segments and not stopped_early:
        model.reset(B)  # each pass over the split starts from a zero state
        for x, y in ptb_batches(train, B, T):
            out = model.segment(backend.asarray(one_hot_chars(x, vocab)), backend.asarray(y))
            window.append(bits_per_char(out["logits"], y))
            step += 1
            monitor.step(step, out["loss"])
            if step % job["log_every"] == 0 or step == segments:
                monitor.check_parameters(step, params)
                curve["segments"].append(step)
                curve["chars"].append(step * T * B)
                curve["train_bpc"].append(round(float(np.mean(window)), 4))
                window = []
            if step % val_segments == 0 or step == segments:
                bpc = evaluate_bpc(model, val, job["eval_batch"], job["eval_len"])
                curve["val_segments"].append(step)
                curve["val_chars"].append(step * T * B)
                curve["val_bpc"].append(round(bpc, 4))
                stopped_early = stopping.update(bpc, step, params) and step < segments
            if step == segments or stopped_early:
                break
    monitor.close()
    train_seconds = time.perf_counter() - started
    stopping.restore(params)  # back to the best held-out point
    test_bpc = evaluate_bpc(model, test, job["eval_batch"], job["eval_len"])
    return {
        **{k: v for k, v in job.items() if k not in ("backend",)},
        "splits": described,
        "curve": curve,
        "epochs_done": round(step / per_epoch, 3),
        "segments_done": step,
        "stopped_early": stopped_early,
        "best_segments": stopping.best_step,
        "best_chars": stopping.best_step * T * B,
        "val_bpc": round(stopping.best, 4),
        "test_bpc": round(test_bpc, 4),
        "val_chars_evaluated": len(val),
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
    keys += ("val_fraction", "val_every", "patience", "val_chars")
    axes = {"T": config["truncations"], "method": config["methods"], "seed": config["seeds"]}
    return [{**job, "trained_on": trained_on(config)} for job in grid(config, keys, axes)]


def summary(run: dict) -> str:
    """One line per finished run: its test bits per character and where it stopped."""
    what = f"T={run['T']} {run['method']} seed={run['seed']}"
    stop = "stopped early" if run["stopped_early"] else "budget"
    best = f"best held-out {run['val_bpc']:.3f} at {run['best_chars']:,} chars, {stop}"
    return f"  {what}: test {run['test_bpc']:.3f} bits/char ({best})  ({run['seconds']:.0f}s)"


def notes(config: dict, log) -> dict:
    """What the results file records beside the runs: the split trained on and which
    characters trained, validated and tested (logged)."""
    split = trained_on(config)
    _, described = splits(split, config["val_fraction"])
    log(
        f"rnn-ptb: training on {described['train']}, stopping early on "
        f"{described['validation']}, reporting bits/char on {described['test']}"
    )
    return {"trained_on": split, "splits": described}


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
