# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Chapter 4: Complete unlock, and what staleness does
#
# Synthetic gradients remove *update locking*: module i updates as soon as it has run
# forward, with `delta_hat_i = M_{i+1}(h_i, c)` in place of the true `delta_i`. But it
# still waits for its *input*: `h_{i-1}` comes from module i-1, which waits for module
# i-2, ... (*forward locking*). Jaderberg et al., ICML 2017 (section 3.3) remove that too with
# a **synthetic input** model `h_hat_{i-1} = I_i(x)`, which predicts module i's input from
# the network input x and is trained with an L2 loss on the real `h_{i-1}`. With both
# models every module trains on its own: **complete unlock**.
#
# This chapter builds it with `minidni.unlock`, checks it against the gradients-only run,
# and then asks what happens when the workers are out of step: each module's backward
# pass `k` steps stale.
#
# Run time: about 2.5 minutes on a laptop (measured: 147 CPU seconds with one BLAS
# thread, `OMP_NUM_THREADS=1`, on a 2-core machine): five training runs of 1500 steps.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from minidni import backend
from minidni.data import mnist_datasets
from minidni.plots.tutorial import show
from minidni.schedules import Delayed
from minidni.train import Dataset, fit
from minidni.unlock import build_unlocked

FAST = os.environ.get("MINIDNI_TUTORIAL_FAST") == "1"
STEPS = 30 if FAST else 1500
SIZES = [784, 256, 256, 256, 10]  # three hidden modules and an output module

train, test = mnist_datasets(os.environ.get("MINIDNI_DATA_DIR"))
if FAST:  # a few seconds: a subset, and numbers that mean nothing
    train = Dataset(train.x[:2048], train.y[:2048])
    test = Dataset(test.x[:500], test.y[:500])

# %% [markdown]
# ## One completely unlocked step, by hand
#
# `build_unlocked` makes the same modules and SG models as `build_mlp` (same random
# numbers), then one synthetic-input model per module i >= 2: `net.inputs[i]` is
# `I_{i+1}` in the paper's 1-based numbering, and `net.inputs[0]` is None because module
# 1 reads x itself. Each `I` here has one hidden layer of 256 units.

# %%
net = build_unlocked("cdni", SIZES, backend.RNG(0), sg_lr=1e-3, input_hidden=(256,))
print([type(m).__name__ if m is not None else None for m in net.inputs])

x, labels = train.take(np.arange(256))
hs, _ = net.forward(x)  # the real chain h_0 = x, h_1, ..., h_N
h_hat, _ = net.inputs[1].predict(x)  # I_2(x): module 2's synthetic input
print("real h_1:", tuple(hs[1].shape), " I_2(x):", tuple(h_hat.shape))

# %% [markdown]
# On a step (`UnlockedNet.step`), module i >= 2 computes `f_i(I_i(x))` without waiting,
# and `I_i` takes one Adam step on `||I_i(x) - h_{i-1}||^2` as soon as the real `h_{i-1}`
# is there: the input models learn during the forward stage, before any backward pass.
# Then the SG model after module i predicts `delta_hat_i` from module i's *own* output,
# the module backpropagates `delta_hat_i` and updates, and its input gradient is the
# bootstrapped target of the SG model before it, as in chapter 2.
#
# The price: the real forward chain still runs, because the real `h_{i-1}` is what `I_i`
# learns from. It also moves the BatchNorm running statistics, and at evaluation
# (`net.predict`) the real chain is all there is: the synthetic inputs are a training
# device only. A forward pass on `I_i(x)` normalises with its own batch statistics but
# leaves the running statistics alone.

# %%
for _ in range(20):
    stats = net.step(x, labels)
print("loss", round(stats["loss"], 3), " SG losses", [round(v, 2) for v in stats["sg_loss"]])
print("input-model L2 losses", [round(v, 2) for v in stats["input_loss"]])

# %% [markdown]
# ## Complete unlock against synthetic gradients only
#
# Same net, same seed, cDNI, lockstep: once with synthetic gradients only, once
# completely unlocked. (`tests/test_unlock.py` checks that an *oracle* synthetic input,
# the true `h_{i-1}`, makes the two runs bitwise identical: any difference below comes
# from what `I` gets wrong.)

# %%
results, unlock_curves = {}, {}
for unlock in (False, True):
    rng = backend.RNG(0)
    net = build_unlocked(
        "cdni", SIZES, rng, sg_lr=1e-3, synthetic_inputs=unlock, input_hidden=(256,)
    )
    history = fit(net, train, test, STEPS, rng.spawn(), eval_every=max(STEPS // 8, 1))
    results[unlock] = net
    what = "complete unlock" if unlock else "synthetic gradients only"
    unlock_curves[what] = history
    print(f"{what:>25}: test error {100 * history.final_test_error:.2f}%")

fig, ax = plt.subplots(figsize=(5.5, 3.4))
for what, h in unlock_curves.items():
    ax.plot(h.steps, [100 * e for e in h.test_error], marker=".", label=what)
ax.set(xlabel="step", ylabel="MNIST test error (%)", yscale="log", title="cDNI")
ax.grid(True, which="both", alpha=0.3)
ax.legend(fontsize=8)
show(fig, "04_unlock")

# %% [markdown]
# How good are the synthetic inputs? The fraction of the variance of the real `h_{i-1}`
# (on test images, evaluation mode) that `I_i(x)` leaves unexplained. Deeper inputs are
# harder to predict from x, and every module's errors compound into the next one's
# target.

# %%
net = results[True]
x_test = test.x[:500]
hs, _ = net.forward(x_test, train=False)
xp = backend.namespace()
h_hats, unexplained = {}, {}
for i in range(1, len(net.modules)):
    h_hats[i] = net.inputs[i].predict(x_test, train=False)[0]
    residual = backend.to_float(xp.sum((h_hats[i] - hs[i]) ** 2))
    spread = backend.to_float(xp.sum((hs[i] - xp.mean(hs[i], axis=0)) ** 2))
    unexplained[i] = residual / spread
    print(f"I_{i + 1}(x) vs h_{i}: unexplained variance {unexplained[i]:.3f}")

# %% [markdown]
# In a picture: every entry of the real `h_1` against `I_2(x)`'s prediction of it, for 500
# test images (left; on the diagonal would be perfect), and the unexplained variance of
# each input model (right).

# %%
fig, (ax_s, ax_v) = plt.subplots(1, 2, figsize=(9, 3.4))
real, predicted = backend.to_numpy(hs[1]).ravel(), backend.to_numpy(h_hats[1]).ravel()
ax_s.plot(real[::20], predicted[::20], ".", ms=2, alpha=0.3)
top = float(max(real.max(), predicted.max()))
ax_s.plot([0, top], [0, top], color="black", linewidth=0.8)
ax_s.set(xlabel="real h_1 (one entry)", ylabel="I_2(x), the same entry", title="I_2(x) vs h_1")
ax_v.bar([f"I_{i + 1}(x) vs h_{i}" for i in unexplained], list(unexplained.values()))
ax_v.set(ylabel="unexplained variance", title="synthetic inputs, test images")
show(fig, "04_synthetic_inputs")

# %% [markdown]
# Most entries lie near the diagonal. Where the real `h_1` is exactly 0 (its ReLU is
# off), `I_2(x)` scatters around 0, a little below it too: `I` is a plain regression
# whose output has no ReLU, so it cannot be exactly 0 there. The module above trains on
# these slightly wrong inputs, which is what complete unlock costs over synthetic
# gradients alone.

# %% [markdown]
# ## Staleness
#
# Real asynchronous workers do not run in lockstep. `Delayed(k)` models a module whose
# backward pass at step t is the one for its forward pass of step `t - k`: each forward
# pass waits in a queue (`net.in_flight[i]`) as an `InFlight` record. What is stale, and
# what is not:
#
# - stale (from step t - k): the module's input activations and BatchNorm batch
#   statistics (its cache), the synthetic gradient `delta_hat_i` that `M_{i+1}` predicted
#   then, and the SG prediction that the resulting target trains;
# - current (step t): the weights the gradient flows back through, and the parameters
#   each optimizer updates.
#
# So the parameter gradient is computed from an old input and an old `delta_hat`, and
# applied to weights that have moved on since. `k` may differ per module:
# `Delayed([0, 4, 4, 0])`.

# %%
net = build_unlocked("cdni", SIZES, backend.RNG(0), schedule=Delayed(3), synthetic_inputs=False)
for t in range(5):
    net.step(x, labels)
    print(f"after step {t}: forward passes in flight per module", [len(q) for q in net.in_flight])

# %% [markdown]
# The first k steps are a warm-up (nothing is k steps old yet); from then on every
# module backpropagates one forward pass a step, always the oldest. How much does
# staleness cost? Train with k in {0, 4, 16} (synthetic gradients only, cDNI):

# %%
stale_curves = {}
for k in (0, 4, 16):
    rng = backend.RNG(0)
    net = build_unlocked(
        "cdni", SIZES, rng, sg_lr=1e-3, schedule=Delayed(k), synthetic_inputs=False
    )
    history = fit(net, train, test, STEPS, rng.spawn(), eval_every=max(STEPS // 8, 1))
    stale_curves[k] = history
    print(f"k = {k:2d}: test error {100 * history.final_test_error:.2f}%")

# %% [markdown]
# The test error along the way, with backward passes `k` steps stale:

# %%
fig, ax = plt.subplots(figsize=(5.5, 3.4))
for k, h in stale_curves.items():
    ax.plot(h.steps, [100 * e for e in h.test_error], marker=".", label=f"k = {k}")
ax.set(xlabel="step", ylabel="MNIST test error (%)", yscale="log", title="cDNI: stale updates")
ax.grid(True, which="both", alpha=0.3)
ax.legend(fontsize=8)
show(fig, "04_staleness")

# %% [markdown]
# Staleness costs far more than updating less often did in chapter 2: with k = 4 the
# net ends an order of magnitude worse than in lockstep, and with k = 16 it hardly
# learns. A stale step applies a gradient computed from an old input and an old
# `delta_hat` to weights that Adam has since moved k times, each step as large as
# Adam's learning rate allows, so the gradient no longer fits the weights it is applied
# to. In chapter 2 a module that skipped a step used only fresh gradients when it did
# update.
#
# The full study, `minidni reproduce unlock --profile quick`, sweeps `p_update` in
# {1, 0.5, 0.2, 0.1, 0.05} and `k` in {0, 1, 4, 16} for DNI and cDNI, with synthetic
# gradients only and completely unlocked, and `minidni figures` draws
# `unlock_p_update.png` and `unlock_staleness.png` (numbers in docs/results.md).
