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
# sequence into segments of T steps, carries the state `s = (h, c)` forward from one
# segment to the next, but backpropagates only inside a segment and updates after each.
# The price: no loss more than T steps away ever sends a gradient back.
#
# A DNI puts a synthetic gradient model `M` at every segment boundary: `delta_hat =
# M(s)` predicts the gradient of all future losses with respect to the boundary state,
# and the core backpropagates it as if it had come from the future. This chapter
#
# 1. builds the Copy task and backpropagates through an LSTM by hand;
# 2. shows *where* truncation cuts the gradient (exactly zero, not just small);
# 3. shows that carrying the true boundary gradient recovers full BPTT, which is what
#    `M` learns to stand in for, by bootstrapping;
# 4. trains truncated BPTT and DNI on Copy with a curriculum (`minidni.tbptt.TBPTT`).

# %%
import os
import time

import numpy as np

from minidni import backend
from minidni.backend import RNG, to_float, to_numpy
from minidni.data import Curriculum, bits_error, copy_batch
from minidni.losses import sigmoid_bce
from minidni.lstm import LSTM, SeqLinear
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
# dependencies no longer than T steps.
#
# ## 4. Carrying the boundary gradient back recovers BPTT
#
# Let `s_k` be the state at the k-th boundary and `delta_k = dL/ds_k` the gradient of
# all losses after it. If segment k+1 received `delta_{k+1}` at its end, its backward
# pass would return `delta_k` at its start: running the segments' backward passes from
# the last to the first, each handing its start gradient to the previous one, is full
# BPTT, split into pieces.


# %%
def carried_bptt(x, y, mask, T, injected=None):
    """Segment-wise backward passes, last segment first. ``injected(k, s_end)`` gives the
    gradient put on segment k's end state; None: the true one, carried back."""
    core.zero_grad()
    pieces = segments(x, y, mask, T)
    dxs, carried, boundary_grads = [], None, []
    for k in reversed(range(len(pieces))):
        cache, r_cache, dlogits, s_end = pieces[k]
        d_end = carried if injected is None else injected(k, s_end)
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
# A DNI replaces the carried gradient by a prediction, `delta_hat_{k+1} = M(s_{k+1})`,
# available as soon as segment k+1 has run forward. How is `M` trained without ever
# seeing the true `delta`? By the same recursion: segment k+1's backward pass, started
# from its own loss and the synthetic gradient at its end, returns a gradient for its
# start state `s_k`; that is `M`'s **target** for `s_k` (a bootstrap, as in TD
# learning). Only the in-segment losses are ever computed exactly; the future enters
# through `M`'s own predictions. `minidni.tbptt.TBPTT` does this, with
#
# - `M` linear on `s = [h, c]` (B, 2H), its output starting at zero (no push at first);
# - `delta` in per-example units (B dL/ds, as in chapter 1), and the core backpropagating
#   `sg_scale * delta_hat / B` with `sg_scale = 0.1`, the factor implementations of the
#   paper use (we could not find it in the paper's text);
# - `M`'s target `g_k + target_discount * J^T delta_hat_{k+1}` with `target_discount = 1`:
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
def perfect_M(k, s_end):
    return None if k + 1 == len(true_deltas) else true_deltas[k + 1]


dx_oracle, _, _ = carried_bptt(x, y, mask, T, injected=perfect_M)
oracle_max_diff = float(np.max(np.abs(to_numpy(dx_oracle) - to_numpy(dx_full))))
zero = core.initial_state(B)
dx_fresh, _, _ = carried_bptt(x, y, mask, T, injected=lambda k, s_end: zero)
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
# the way. A **curriculum** sets the difficulty: start with N = 1, and move to N + 1 once
# the mean error of the last `window` batches at this level is below 0.15 per sequence
# (`minidni.data.Curriculum`). Here the error is the number of wrong
# bits, which is easy to read; the experiment uses the paper's criterion, the
# cross-entropy in bits, which is stricter. We train both methods with T = 4 on the same
# batches and record the error and the length solved.

# %%
TRAIN_T = 2 if FAST else 4  # FAST: N = 1 (3 steps) already crosses a boundary
HIDDEN = 16 if FAST else 64
BATCH = 8 if FAST else 32
BATCHES = 150 if FAST else 3000
LOG_EVERY = 50 if FAST else 250


def train_copy(method):
    model = TBPTT(BITS + 1, HIDDEN, BITS, RNG(0), T=TRAIN_T, method=method, lr=3e-3, sg_lr=1e-3)
    cur = Curriculum("copy", window=10)
    data_rng = np.random.default_rng(1)  # the same batches for both methods
    log, errors, sg_losses, start = [], [], [], time.perf_counter()
    for step in range(1, BATCHES + 1):
        xb, yb, mb = copy_batch(data_rng, BATCH, cur.n, BITS)
        out = model.train_sequence(*(backend.asarray(a) for a in (xb, yb, mb)))
        errors.append(bits_error(out["logits"], yb, mb))
        if out["sg_loss"] is not None:
            sg_losses.append(out["sg_loss"])
        cur.update(errors[-1])
        if step % LOG_EVERY == 0:
            log.append({"batches": step, "N": cur.n, "solved": cur.solved_length,
                        "bits_error": float(np.mean(errors))})  # fmt: skip
            errors = []
            print(f"{method:5s} batch {step:5d}  N {cur.n:2d}  error {log[-1]['bits_error']:.2f}")
    print(f"{method}: solved N = {cur.solved_length} ({time.perf_counter() - start:.0f}s)")
    return {"log": log, "solved": cur.solved_length, "sg_losses": sg_losses}


runs = {method: train_copy(method) for method in ("bprop", "dni")}

# %%
print(f"T = {TRAIN_T}: longest N solved in {BATCHES} batches of {BATCH}: ", end="")
print(", ".join(f"{m} {r['solved']}" for m, r in runs.items()))
sg = runs["dni"]["sg_losses"]
if sg:
    print(f"DNI: M's loss, first {min(10, len(sg))} segments {np.mean(sg[:10]):.3g}, ", end="")
    print(f"last {min(10, len(sg))} {np.mean(sg[-10:]):.3g}")

# %% [markdown]
# In pictures: the gradient each input step receives, full BPTT against truncation at
# T = 2 (left; a gap is an exact zero), and the Copy runs (right: wrong bits per
# sequence, and the curriculum's pattern length N).

# %%
import matplotlib.pyplot as plt

from minidni.plots.tutorial import show

fig, (ax_g, ax_c) = plt.subplots(1, 2, figsize=(10, 3.4))
steps = np.arange(len(full_dx_norms))
ax_g.semilogy(steps, full_dx_norms, "o-", color="black", label="full BPTT")
ax_g.semilogy(steps, np.where(truncated_dx_norms > 0, truncated_dx_norms, np.nan), "s--",
              color="tab:orange", label="truncated, T = 2")  # fmt: skip
ax_g.set(xlabel="input step t", ylabel="|dL/dx_t|", title="where the gradient reaches")
ax_n = ax_c.twinx()
for method, color in (("bprop", "black"), ("dni", "tab:blue")):
    log = runs[method]["log"]
    batches_seen = [e["batches"] for e in log]
    ax_c.plot(batches_seen, [e["bits_error"] for e in log], color=color, label=f"{method} error")
    ax_n.step(batches_seen, [e["N"] for e in log], ":", color=color, where="post")
ax_c.set(xlabel="batches", ylabel="wrong bits per sequence", title=f"Copy, T = {TRAIN_T}")
ax_n.set_ylabel("pattern length N (dotted)")
for ax in (ax_g, ax_c):
    ax.legend(fontsize=8)
show(fig, "03_truncated_bptt")

# %% [markdown]
# (In FAST mode the numbers mean nothing.) With T = 4, Copy with N = 2 already needs a
# gradient across a boundary: the second output (step 4) depends on the second input
# (step 1), three steps back and in the previous segment. Truncated BPTT can still make
# progress there, slowly, because the state keeps *some* trace of step 1 that the
# readout can learn to decode; DNI adds a (scaled, learned, at first zero) gradient
# that asks the core to keep it. On a budget this small a single seed decides little;
# `minidni reproduce rnn-copy` runs the grid (T = 2, 3, 4, 5, 8; Bprop, DNI, DNI + Aux;
# Copy and Repeat Copy; 3 seeds) and `minidni figures` draws the paper's Table 1 from it.
#
# **How good is M?** DNI helps only as far as `delta_hat` points where the gradient it
# stands in for points. The experiment scores M against its targets: `sg_r2` and
# `sg_r2_zero`, the share of their variance it explains (around their mean, resp. around
# zero, where a fresh M starts), and `sg_cos`, the cosine between prediction and target.
# How these and the lengths solved depend on the target's discount, M's learning rate,
# the criterion and the width of the core is measured in docs/recurrent.md.
#
# **Summary.** Truncated BPTT runs the state forward across boundaries but never a
# gradient backward, so nothing longer than T steps is learned on purpose. Passing the
# true boundary gradient back restores BPTT but locks the core to the end of the
# sequence. A synthetic gradient `M(s)` at the boundary stands in for it at once, is
# trained on targets bootstrapped from the next boundary's prediction, and so lets the
# core learn from beyond its window while still updating after every segment.
