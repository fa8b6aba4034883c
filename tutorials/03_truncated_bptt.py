# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Chapter 3: Truncated BPTT, and a synthetic gradient at the boundary
#
# Jaderberg et al., *Decoupled Neural Interfaces using Synthetic Gradients*, ICML 2017,
# section 3.1 (the version minidni cites throughout).
#
# A recurrent core reads a long sequence one step at a time. Backpropagation through time
# (BPTT) would have to keep the whole unrolled sequence and wait for its end before any
# update: the core is **update locked** to the future. **Truncated BPTT** cuts the
# sequence into segments of T steps, carries the state `s` forward from one
# segment to the next, but backpropagates only inside a segment and updates after each.
# The price: no loss more than T steps away ever sends a gradient back. (For an LSTM the
# state is the pair `s = (h, C)`: the output h and the cell C.)
#
# A DNI puts a synthetic gradient model `M` at every segment boundary: `delta_hat =
# M(s)` predicts the gradient of all future losses with respect to the boundary state,
# and the core backpropagates it as if it had come from the future. This chapter
#
# 1. builds the Copy task and backpropagates through an LSTM by hand;
# 2. shows *where* truncation cuts the gradient (exactly zero, not just small);
# 3. shows that carrying the true boundary gradient recovers full BPTT, which is what
#    `M` learns to stand in for, by bootstrapping;
# 4. trains truncated BPTT and DNI on Copy with a curriculum (`minidni.tbptt.TBPTT`);
# 5. looks at how well `M` predicts, and why its loss rises while it helps.
#
# Run time: about 1.5 minutes on a laptop (measured: 88 CPU seconds, one BLAS thread,
# 2-core machine). No data files needed.

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np

from minidni import backend
from minidni.backend import RNG, to_float, to_numpy
from minidni.data import Curriculum, bits_error, copy_batch
from minidni.losses import sigmoid_bce
from minidni.lstm import LSTM, SeqLinear
from minidni.plots.tutorial import show
from minidni.sg_quality import sg_quality, sg_sums
from minidni.tbptt import TBPTT

# FAST shrinks training so that the chapter runs in seconds (the test suite uses it).
FAST = os.environ.get("MINIDNI_TUTORIAL_FAST") == "1"
BITS = 8  # bits per pattern vector
H = 32  # LSTM units for the by-hand sections
xp = backend.namespace()
print(f"backend {backend.get_backend()}, FAST={FAST}")

# %% [markdown]
# ## 1. The Copy task
#
# The network reads N random 8-bit vectors, then a delimiter, and must then write the N
# vectors back from memory (Graves et al. 2014). Inputs have 9 channels (8 bits and the
# delimiter), targets 8; the mask is 1 exactly on the N output steps. A sequence has
# `2N + 1` steps.

# %%
N = 3
x_np, y_np, mask_np = copy_batch(np.random.default_rng(0), batch_size=16, length=N, bits=BITS)
print("x", x_np.shape, " y", y_np.shape, " mask", mask_np.shape)
print("input of sequence 0 (rows = steps; last column = delimiter):")
print(x_np[0].astype(int))
print("target of sequence 0:")
print(y_np[0].astype(int))
print("mask:", mask_np[0].astype(int))
x, y, mask = (backend.asarray(a) for a in (x_np, y_np, mask_np))
B, STEPS = x.shape[0], x.shape[1]

# %% [markdown]
# The same sequence as pictures (a column is a time step, a row a channel; black is 1):
# the network must hold the three pattern columns in its state while it reads the
# delimiter, and write them out afterwards. Only the output steps are scored (mask 1);
# the others are grey.

# %%
fig, (ax_x, ax_y) = plt.subplots(1, 2, figsize=(8, 2.6))
ax_x.imshow(x_np[0].T, cmap="Greys", vmin=0, vmax=1, aspect="auto")
ax_x.set(title="input x: 8 bits + delimiter (last row)")
ax_y.imshow(np.where(mask_np[0] > 0, y_np[0].T, 0.25), cmap="Greys", vmin=0, vmax=1, aspect="auto")
ax_y.set(title="target y (grey: not scored)")
for ax in (ax_x, ax_y):
    ax.set(xlabel="step t", xticks=range(STEPS), yticks=[])
show(fig, "03_copy_task")

# %% [markdown]
# ## 2. Backpropagation through time, by hand
#
# The model is an LSTM core with a linear readout at every step:
# `hs, s_T, cache = core.forward(x, s_0)`, `logits = readout(hs)`. The loss,
# `sigmoid_bce(logits, y, mask)` from `minidni.losses`, is the sigmoid cross-entropy of
# the output bits, counted where the mask is 1, summed over steps and bits, averaged over
# the batch. `core.backward(dhs, dstate_T, cache)` returns the
# gradient for the inputs and for the initial state, and *accumulates* the weight
# gradients; `dstate_T` is a gradient arriving at the final state from beyond the
# segment (None: nothing arrives).


# %%
core, readout = LSTM(BITS + 1, H, RNG(0)), SeqLinear(H, BITS, RNG(1))


def full_bptt(x, y, mask):
    """One backward pass through the whole sequence: dL/dx (B, T, D_in) and dL/dW."""
    core.zero_grad()
    hs, _, cache = core.forward(x, core.initial_state(x.shape[0]))  # (B, T, H)
    logits, r_cache = readout.forward(hs)  # (B, T, BITS)
    loss, dlogits = sigmoid_bce(logits, y, mask)
    dx, _ = core.backward(readout.backward(dlogits, r_cache), None, cache)
    return to_float(loss), dx, to_numpy(core.W.grad).copy()


def per_step_norm(dx):
    """|dL/dx_t| for every step t, summed over the batch: a (T,) host array."""
    return np.sqrt((to_numpy(dx) ** 2).sum(axis=(0, 2)))


loss, dx_full, dW_full = full_bptt(x, y, mask)
full_dx_norms = per_step_norm(dx_full)
print(f"loss {loss:.3f}")
print("step t        ", "  ".join(f"{t:8d}" for t in range(STEPS)))
print("|dL/dx_t| full", "  ".join(f"{v:8.2e}" for v in full_dx_norms))

# %% [markdown]
# The loss lives on the output steps N+1..2N, yet the pattern steps 0..N-1 receive a
# gradient: it flows back through the recurrent state. That gradient is what teaches the
# core to *store* the pattern.
#
# ## 3. Truncated BPTT cuts the gradient at every boundary
#
# Now the same sequence in segments of T = 2 steps: `[0, 1], [2, 3], [4, 5], [6]`. Each
# segment starts from the state the previous one ended in (the forward pass is
# unchanged), but backpropagates only its own loss, with `dstate_T = None`.

# %%
T = 2


def segments(x, y, mask, T):
    """Forward every segment from the carried state; returns per-segment pieces."""
    state, pieces = core.initial_state(x.shape[0]), []
    for start in range(0, x.shape[1], T):
        sl = slice(start, min(start + T, x.shape[1]))
        hs, state, cache = core.forward(x[:, sl, :], state)
        logits, r_cache = readout.forward(hs)
        _, dlogits = sigmoid_bce(logits, y[:, sl, :], mask[:, sl])
        pieces.append((cache, r_cache, dlogits, state))
    return pieces


def truncated_bptt(x, y, mask, T):
    core.zero_grad()
    dxs = [
        core.backward(readout.backward(dlogits, r_cache), None, cache)[0]
        for cache, r_cache, dlogits, _ in segments(x, y, mask, T)
    ]
    return xp.concat(dxs, axis=1), to_numpy(core.W.grad).copy()


dx_trunc, dW_trunc = truncated_bptt(x, y, mask, T)
truncated_dx_norms = per_step_norm(dx_trunc)
print("step t             ", "  ".join(f"{t:8d}" for t in range(STEPS)))
print("|dL/dx_t| full     ", "  ".join(f"{v:8.2e}" for v in full_dx_norms))
print("|dL/dx_t| truncated", "  ".join(f"{v:8.2e}" for v in truncated_dx_norms))
print(f"|dW| full {np.linalg.norm(dW_full):.3e}, truncated {np.linalg.norm(dW_trunc):.3e}")

# %% [markdown]
# The pattern steps now get **exactly zero**: segments `[0, 1]` and `[2, 3]` contain no
# loss at all (the mask is 0 there), and nothing flows in from the later segments. The
# weights still change, but only through what the last segments see; nothing asks the
# core to remember the pattern. With T = 2, BPTT can solve Copy only if the pattern
# happens to survive in the state by accident. In general truncated BPTT learns
# dependencies no longer than T steps. In a picture (a missing point is an exact zero):

# %%
fig, ax = plt.subplots(figsize=(5.5, 3.2))
steps = np.arange(STEPS)
ax.semilogy(steps, full_dx_norms, "o-", color="black", label="full BPTT")
ax.semilogy(
    steps,
    np.where(truncated_dx_norms > 0, truncated_dx_norms, np.nan),
    "s--",
    color="tab:orange",
    label=f"truncated, T = {T}",
)
for boundary in range(T, STEPS, T):
    ax.axvline(boundary - 0.5, color="gray", linewidth=0.8, linestyle=":")
ax.set(
    xlabel="input step t (dotted: segment boundaries)",
    ylabel="|dL/dx_t|",
    title="where the gradient reaches",
)
ax.legend(fontsize=8)
show(fig, "03_truncation")
#
# ## 4. Carrying the boundary gradient back recovers BPTT
#
# Let `s_j` be the state at the j-th boundary and `delta_j = dL/ds_j` the gradient of
# all losses after it. If segment j+1 received `delta_{j+1}` at its end, its backward
# pass would return `delta_j` at its start: running the segments' backward passes from
# the last to the first, each handing its start gradient to the previous one, is full
# BPTT, split into pieces.


# %%
def carried_bptt(x, y, mask, T, injected=None):
    """Segment-wise backward passes, last segment first. ``injected(j, s_end)`` gives the
    gradient put on segment j's end state; None: the true one, carried back."""
    core.zero_grad()
    pieces = segments(x, y, mask, T)
    dxs, carried, boundary_grads = [], None, []
    for j in reversed(range(len(pieces))):
        cache, r_cache, dlogits, s_end = pieces[j]
        d_end = carried if injected is None else injected(j, s_end)
        dx, carried = core.backward(readout.backward(dlogits, r_cache), d_end, cache)
        dxs.insert(0, dx)
        boundary_grads.insert(0, carried)
    return xp.concat(dxs, axis=1), to_numpy(core.W.grad).copy(), boundary_grads


dx_carried, dW_carried, true_deltas = carried_bptt(x, y, mask, T)
carried_max_diff = float(np.max(np.abs(to_numpy(dx_carried) - to_numpy(dx_full))))
carried_w_diff = float(np.max(np.abs(dW_carried - dW_full)))
print(f"max |dx carried - dx full| = {carried_max_diff:.2e}, max |dW diff| = {carried_w_diff:.2e}")

# %% [markdown]
# Equal up to float32 rounding. But carrying the gradient back means waiting for the end
# of the sequence: that is exactly the locking truncation was meant to avoid.
#
# A DNI replaces the carried gradient by a prediction, `delta_hat_{j+1} = M(s_{j+1})`,
# available as soon as segment j+1 has run forward. How is `M` trained without ever
# seeing the true `delta`? By the same recursion: segment j+1's backward pass, started
# from its own loss and the synthetic gradient at its end, returns a gradient for its
# start state `s_j`; that is `M`'s **target** for `s_j` (a bootstrap, as in TD
# learning). Only the in-segment losses are ever computed exactly; the future enters
# through `M`'s own predictions. `minidni.tbptt.TBPTT` does this, with
#
# - `M` linear on `s = [h, C]` (B, 2H), its output starting at zero (no push at first);
# - `delta` in per-example units (B dL/ds, as in chapter 1), and the core backpropagating
#   `sg_scale * delta_hat / B` with `sg_scale = 0.1`, the factor implementations of the
#   paper use (we could not find it in the paper's text);
# - `M`'s target `g_j + target_discount * J^T delta_hat_{j+1}` with `target_discount = 1`:
#   the *unscaled* synthetic gradient carried back through the segment, the paper's
#   bootstrap as we read it. The 0.1 is a step size for the core, not a discount: were it
#   also in the target (`target_discount = sg_scale`, an option), a loss m segments ahead
#   would reach the core scaled by 0.1^m;
# - no synthetic gradient after the last segment of a sequence (its future is empty).
#
# The scaled-injection version of our by-hand pass: with a perfect `M` (the true
# `delta`) and `sg_scale = 1`, the pattern steps get their full gradient back; with
# `M = 0` (a fresh DNI) we are back at truncated BPTT.


# %%
def perfect_M(j, s_end):
    return None if j + 1 == len(true_deltas) else true_deltas[j + 1]


dx_oracle, _, _ = carried_bptt(x, y, mask, T, injected=perfect_M)
oracle_max_diff = float(np.max(np.abs(to_numpy(dx_oracle) - to_numpy(dx_full))))
zero = core.initial_state(B)
dx_fresh, _, _ = carried_bptt(x, y, mask, T, injected=lambda j, s_end: zero)
fresh_max_diff = float(np.max(np.abs(to_numpy(dx_fresh) - to_numpy(dx_trunc))))
print(f"perfect M: max |dx - dx full| = {oracle_max_diff:.2e}")
print(f"fresh M (zero): max |dx - dx truncated| = {fresh_max_diff:.2e}")

# %% [markdown]
# ## 5. Training on Copy: truncated BPTT vs DNI
#
# `TBPTT(d_in, H, d_out, rng, T, method)`, with `method="bprop"` (plain truncated BPTT:
# nothing crosses a boundary) or `"dni"`, holds the core, the readout and (for `"dni"`)
# the SG model; `train_sequence(x, y, mask)` trains on a batch of sequences
# segment by segment, one Adam step per segment, and returns the logits it produced on
# the way and, per segment, M's prediction and target. A **curriculum** sets the
# difficulty: start with N = 1, and move to N + 1 once the mean error of the last
# `window` batches at this level is below 0.15 per sequence (`minidni.data.Curriculum`).
# Here the error is the number of wrong bits, which is easy to read; the experiment uses
# the paper's criterion, the cross-entropy in bits, which is stricter.
#
# We train both methods with T = 2, as in sections 3 and 4, on the same batches, for
# three seeds. With T = 2 even N = 1 (3 steps: pattern, delimiter, output; segments
# `[0, 1], [2]`) has its output in a later segment than its input, but only two steps
# later: a trace of the pattern survives that long in the state by accident, and the
# readout can learn to decode it without any gradient across the boundary. N = 2 (5
# steps, segments `[0, 1], [2, 3], [4]`) asks for more: both pattern steps lie in the
# first segment, the outputs three steps later, in the next segments.
#
# For DNI we also record how well M predicts its targets, summed over each interval of
# `LOG_EVERY` batches with `minidni.sg_quality` (section 6 reads these numbers).

# %%
TRAIN_T = 2
HIDDEN = 16 if FAST else 64
BATCH = 8 if FAST else 32
BATCHES = 150 if FAST else 6000
LOG_EVERY = 50 if FAST else 250
SEEDS = (0,) if FAST else (0, 1, 2)
PRINT = 1 if FAST else 4  # print every PRINT-th log entry


def train_copy(method, seed):
    """BATCHES batches of Copy with the curriculum; a log entry every LOG_EVERY batches."""
    model = TBPTT(BITS + 1, HIDDEN, BITS, RNG(seed), T=TRAIN_T, method=method, lr=3e-3, sg_lr=1e-3)
    cur = Curriculum("copy", window=10)
    data_rng = np.random.default_rng(1 + seed)  # the same batches for both methods
    log, errors, sums, pairs = [], [], None, 0
    for batch in range(1, BATCHES + 1):
        xb, yb, mb = copy_batch(data_rng, BATCH, cur.n, BITS)
        out = model.train_sequence(*(backend.asarray(a) for a in (xb, yb, mb)))
        errors.append(bits_error(out["logits"], yb, mb))
        cur.update(errors[-1])
        if method == "dni":  # M's predictions against the targets they were trained on
            new = sg_sums(out["segments"])
            sums = new if sums is None else {key: sums[key] + new[key] for key in sums}
            pairs += sum(r["sg_loss"] is not None for r in out["segments"])
        if batch % LOG_EVERY == 0:
            entry = {
                "batches": batch,
                "N": cur.n,
                "solved": cur.solved_length,
                "bits_error": float(np.mean(errors)),
            }
            if sums is not None:  # per boundary: M's loss, the zero predictor's, R^2, cos
                _, entry["r2_zero"], entry["cos"] = sg_quality(sums)
                entry["sg_loss"] = to_float(sums["error"]) / pairs
                entry["zero_loss"] = to_float(sums["power"]) / pairs
                entry["core_norm"] = float(np.linalg.norm(to_numpy(model.core.W.value)))
            log.append(entry)
            errors, sums, pairs = [], None, 0
    return {"log": log, "solved": cur.solved_length}


start = time.perf_counter()
runs = {(method, seed): train_copy(method, seed) for seed in SEEDS for method in ("bprop", "dni")}
print(f"{len(runs)} runs in {time.perf_counter() - start:.0f}s")
print(f"T = {TRAIN_T}: longest N solved in {BATCHES} batches of {BATCH}:")
for seed in SEEDS:
    solved = ", ".join(f"{m} {runs[m, seed]['solved']}" for m in ("bprop", "dni"))
    print(f"  seed {seed}: {solved}")
print("seed 0, wrong bits per sequence (and N) every", PRINT * LOG_EVERY, "batches:")
for method in ("bprop", "dni"):
    entries = runs[method, 0]["log"][PRINT - 1 :: PRINT]
    print(f"  {method:5s}", "  ".join(f"{e['bits_error']:.2f} ({e['N']})" for e in entries))

# %% [markdown]
# The error of each run (thin lines: the other seeds) and the pattern length N the
# curriculum asks for:

# %%
fig, (ax_e, ax_n) = plt.subplots(1, 2, figsize=(10, 3.4), sharex=True)
colors = {"bprop": "black", "dni": "tab:blue"}
for (method, seed), run in runs.items():
    batches_seen = [e["batches"] for e in run["log"]]
    style = {"color": colors[method], "linewidth": 1.8 if seed == 0 else 0.7}
    label = f"{method}, T = {TRAIN_T}" if seed == 0 else None
    ax_e.plot(batches_seen, [e["bits_error"] for e in run["log"]], label=label, **style)
    ax_n.step(batches_seen, [e["N"] for e in run["log"]], where="post", label=label, **style)
ax_e.set(xlabel="batches", ylabel="wrong bits per sequence", title="Copy: error at its level")
levels = range(1, 1 + max(e["N"] for run in runs.values() for e in run["log"]))
ax_n.set(xlabel="batches", ylabel="pattern length N", title="the curriculum's level", yticks=levels)
for ax in (ax_e, ax_n):
    ax.legend(fontsize=8)
show(fig, "03_copy_training")

# %% [markdown]
# (In FAST mode the numbers mean nothing.) Both methods pass N = 1 within a few hundred
# batches, from that accidental trace. At N = 2 truncated BPTT has no
# gradient that asks the core to keep the first segment's bits for the outputs in the
# next segments; its error still falls slowly (the state keeps *some* trace of them by
# accident, and the readout learns to decode it), but within this budget it stays at
# N = 2 in every seed. DNI injects `0.1 * delta_hat` at each boundary, a learned guess
# of that missing gradient, and passes N = 2 in every seed. `minidni reproduce rnn-copy`
# runs the full grid (T = 2, 3, 4, 5, 8; Bprop, DNI, DNI + Aux; Copy and Repeat Copy;
# 3 seeds) and `minidni figures` draws the paper's Table 1 from it.
#
# ## 6. How good is M, and why does its loss rise?
#
# M's loss, the squared error `||delta_hat - target||^2` per sequence, is the natural
# thing to watch, and in the DNI runs it *rises* over training:

# %%
dni_log = runs["dni", 0]["log"]
print("seed 0, every", PRINT * LOG_EVERY, "batches, per boundary:")
print("  batches      ", "  ".join(f"{e['batches']:6d}" for e in dni_log[PRINT - 1 :: PRINT]))
rows = [
    ("N", "N", "6d"),
    ("sg_loss", "M's loss", "6.1f"),
    ("zero_loss", "zero's loss", "6.1f"),
    ("r2_zero", "R^2 vs zero", "+6.3f"),
    ("cos", "cosine", "+6.3f"),
    ("core_norm", "|W| core", "6.1f"),
]
for key, name, fmt in rows:
    print(f"  {name:13s}", "  ".join(format(e[key], fmt) for e in dni_log[PRINT - 1 :: PRINT]))
first, last = dni_log[0], dni_log[-1]
print(
    f"from the first {LOG_EVERY} batches to the last: M's loss {first['sg_loss']:.3g} -> "
    f"{last['sg_loss']:.3g}, the zero predictor's {first['zero_loss']:.3g} -> "
    f"{last['zero_loss']:.3g}"
)
at_n2 = [e for e in dni_log if e["N"] == 2]
if len(at_n2) > 1:
    growth = at_n2[-1]["zero_loss"] / at_n2[0]["zero_loss"]
    norms = f"{at_n2[0]['core_norm']:.0f} -> {at_n2[-1]['core_norm']:.0f}"
    print(f"at N = 2 alone: the targets' power x{growth:.1f}, |W| of the core {norms}")

# %% [markdown]
# Is M getting worse? No: its *targets* are getting bigger. A squared error means little
# without a yardstick, and the natural one is the loss of predicting zero, which is what
# a fresh M (zero-initialised output) scores and what truncated BPTT injects: the mean
# squared size of the targets, `E||target||^2` ("zero's loss" above). It rises as fast as
# M's loss, for two reasons:
#
# - **The core's weights grow as it learns**, and a gradient that flows back through
#   larger weights (and out of a readout that has become confident) is larger. Within
#   N = 2 alone, the norm of the core's weights more than doubles and the targets'
#   power triples (the last line above).
# - **Longer episodes put more loss ahead of each boundary.** When the curriculum moves
#   to N = 3, every boundary has more output steps after it, each adding its gradient,
#   and on the new one the core is at first wrong: the targets' size jumps.
#
# (With T = 4 and this budget the curriculum never leaves N = 2, and M's loss rises all
# the same, several times over: the first reason alone.) So judge M *relative to its
# targets*, with the two numbers of `minidni.sg_quality`:
#
# - `R^2 vs zero = 1 - M's loss / zero's loss`: the share of the targets' power M
#   explains (1: perfect; 0: no better than injecting nothing; < 0: worse);
# - the **cosine** between M's predictions and its targets.
#
# In the figure, M's loss follows the zero predictor's (left, log scale); R^2 vs zero
# stays a little *below* zero while the cosine stays positive (right).

# %%
fig, (ax_l, ax_q) = plt.subplots(1, 2, figsize=(10, 3.4), sharex=True)
batches_seen = [e["batches"] for e in dni_log]
ax_l.semilogy(batches_seen, [e["sg_loss"] for e in dni_log], "o-", ms=3, label="M's loss")
ax_l.semilogy(
    batches_seen,
    [e["zero_loss"] for e in dni_log],
    "k--",
    label="loss of predicting zero = E||target||^2",
)
ax_q.plot(
    batches_seen,
    [e["cos"] for e in dni_log],
    "o-",
    ms=3,
    color="tab:green",
    label="cosine(delta_hat, target)",
)
ax_q.plot(
    batches_seen,
    [e["r2_zero"] for e in dni_log],
    "o-",
    ms=3,
    color="tab:purple",
    label="R^2 vs zero = 1 - M's loss / zero's",
)
ax_q.axhline(0, color="gray", linewidth=0.8)
for ax in (ax_l, ax_q):  # shade the batches spent at each level N
    for e0, e1 in zip(dni_log, dni_log[1:]):
        if e1["N"] % 2:
            ax.axvspan(e0["batches"], e1["batches"], color="gray", alpha=0.12, linewidth=0)
    ax.set(xlabel="batches (shaded: N = 3)")
    ax.legend(fontsize=8)
ax_l.set(ylabel="per boundary, per sequence", title="M's loss rises with its targets")
ax_q.set(title="M relative to its targets")
show(fig, "03_sg_quality")

# %% [markdown]
# Read together, the two numbers say what M does:
#
# - **Its direction is right, a little.** The cosine stays positive, around 0.1 to 0.2,
#   over the whole run. That is what the core uses: it receives `0.1 * delta_hat`, so
#   the size of the prediction matters less than where it points, and a gradient
#   direction that agrees even weakly with the true one is a descent direction, as
#   SGD's own noisy minibatch gradients are.
# - **It explains almost none of its targets' power.** That follows from the cosine:
#   even the best rescaling of a prediction with cosine `cos` to its target leaves
#   `1 - cos^2` of the target's power unexplained, so at a cosine of 0.1 R^2 vs zero is
#   at most 0.01. M's predictions are also somewhat too large for how well they point,
#   which puts R^2 slightly below zero.
# - **Why the cosine is low** is the same reason as in chapter 1, section 6: M sees only
#   the boundary state s. The part of the future gradient that says "you forgot this
#   bit" depends on the bit itself, which is exactly what s no longer holds, so M can
#   predict it only on average over what s still determines.
#
# So "DNI asks the core to keep the pattern" is true in a weak, statistical sense: M's
# gradient points slightly the right way, the core follows it at a tenth of its size,
# and that was enough here to pass N = 2 where truncated BPTT did not. How M's quality
# and the lengths solved depend on the target's discount, M's learning rate, the
# criterion and the width of the core is measured in docs/recurrent.md.
#
# **Summary.** Truncated BPTT runs the state forward across boundaries but never a
# gradient backward, so nothing longer than T steps is learned on purpose. Passing the
# true boundary gradient back restores BPTT but locks the core to the end of the
# sequence. A synthetic gradient `M(s)` at the boundary stands in for it at once, is
# trained on targets bootstrapped from the next boundary's prediction, and so lets the
# core learn from beyond its window while still updating after every segment. Judge M
# against the size of its targets, which grow with the core's weights and the episodes'
# length: its loss rising says little; its cosine says what the core receives.
