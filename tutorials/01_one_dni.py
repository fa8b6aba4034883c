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
# # Chapter 1: One DNI between two halves of an MLP
#
# Jaderberg et al. 2017, *Decoupled Neural Interfaces using Synthetic Gradients*
# (arXiv:1608.05343).
#
# We cut an MNIST classifier into two modules, `h_1 = f_1(x)` and `logits = f_2(h_1)`,
# with loss `L(logits, y)`. With backprop, `f_1` cannot update until `f_2` has run forward,
# computed the loss and sent the error gradient `delta_1 = dL/dh_1` back: `f_1` is
# **update locked**. A **synthetic gradient** model `M_2` predicts
# `delta_hat_1 = M_2(h_1)` from `h_1` alone, so `f_1` can update as soon as it has
# produced `h_1`. `M_2` learns to predict `delta_1` by regression, whenever `f_2` gets
# round to computing it.
#
# This chapter writes both training steps out by hand, trains them on MNIST, looks at
# what `M_2` manages to predict (and what it cannot without the label), and finally
# checks the hand-written step against the library's `DecoupledNet`. Everything is plain
# NumPy (or CuPy) with hand-written backward passes; nothing is hidden behind autodiff.
#
# Run time: about 1.5 minutes on a laptop (measured: 78 CPU seconds with one BLAS
# thread, `OMP_NUM_THREADS=1`, on a 2-core machine); four training runs of 2000 steps.

# %%
import copy
import os
import time

import matplotlib.pyplot as plt
import numpy as np

from minidni import backend
from minidni.backend import RNG, to_float, to_numpy
from minidni.data import mnist_datasets
from minidni.decoupled import DecoupledNet
from minidni.layers import BatchNorm, Linear, ReLU, Sequential
from minidni.losses import mse, softmax_cross_entropy
from minidni.optim import Adam
from minidni.plots.tutorial import show
from minidni.synthetic import SyntheticGradient
from minidni.train import Dataset, batches, evaluate

# FAST shrinks data and steps so that the chapter runs in seconds (the test suite uses it).
FAST = os.environ.get("MINIDNI_TUTORIAL_FAST") == "1"
STEPS = 60 if FAST else 2000  # 2000 steps of 256 = 8.5 epochs of MNIST
BATCH = 256
LR = 1e-3  # Adam learning rate of f_1 and f_2
SG_LR = 1e-3  # Adam learning rate of M_2
xp = backend.namespace()  # the array namespace: numpy here, cupy on a GPU
print(f"backend {backend.get_backend()}, FAST={FAST}")

# %% [markdown]
# ## 1. Data
#
# MNIST as `Dataset`s: `x` (N, 784) pixels in [0, 1], `y` (N,) integer labels. The files
# are read from `$MINIDNI_DATA_DIR`. In FAST mode we keep only a few thousand examples.

# %%
train, test = mnist_datasets()
if FAST:
    train = Dataset(*train.take(np.arange(4096)))  # the first 4096 examples
    test = Dataset(*test.take(np.arange(1000)))
print(f"train {tuple(train.x.shape)}, test {tuple(test.x.shape)}")

fig, axes = plt.subplots(1, 8, figsize=(9, 1.6))
for ax, image, label in zip(axes, to_numpy(train.x[:8]), to_numpy(train.y[:8])):
    ax.imshow(image.reshape(28, 28), cmap="Greys")
    ax.set(title=f"y = {label}", xticks=[], yticks=[])
show(fig, "01_mnist")

# %% [markdown]
# ## 2. The two halves
#
# Each hidden layer is Linear + BatchNorm + ReLU, as in the paper's MNIST nets (the Linear
# has no bias: BatchNorm subtracts the mean, which would cancel it). `f_1` has two hidden
# layers, `f_2` one more and the output layer. Every layer has `forward(x) -> (out, cache)`
# and `backward(dout, cache) -> dx`, which *accumulates* the parameter gradients.


# %%
def bottom_half(rng):
    """f_1: x (B, 784) -> h_1 (B, 256)."""
    return Sequential(
        Linear(784, 256, rng, bias=False), BatchNorm(256), ReLU(),
        Linear(256, 256, rng, bias=False), BatchNorm(256), ReLU(),
    )  # fmt: skip


def top_half(rng):
    """f_2: h_1 (B, 256) -> logits (B, 10)."""
    return Sequential(
        Linear(256, 256, rng, bias=False), BatchNorm(256), ReLU(), Linear(256, 10, rng)
    )


def predict(f1, f2, x):
    """Logits in evaluation mode (BatchNorm uses its running statistics)."""
    h1, _ = f1.forward(x, train=False)
    return f2.forward(h1, train=False)[0]


print("f_1 =", bottom_half(RNG(0)))
print("f_2 =", top_half(RNG(0)))

# %% [markdown]
# ## 3. Reference: plain backprop
#
# One step, written out. `softmax_cross_entropy` returns the batch-mean loss and its
# gradient `dL/dlogits = (softmax - onehot) / B`. Note the order: `f_1`'s backward pass
# needs `delta_1`, which exists only after `f_2` has done *everything*.


# %%
def backprop_step(f1, f2, opt1, opt2, x, y):
    h1, cache1 = f1.forward(x)  # (B, 256)
    logits, cache2 = f2.forward(h1)  # (B, 10)
    loss, dlogits = softmax_cross_entropy(logits, y)  # dlogits (B, 10)
    f1.zero_grad()
    f2.zero_grad()
    dh1 = f2.backward(dlogits, cache2)  # dL/dh_1 (B, 256): f_1 has been waiting for this
    f1.backward(dh1, cache1)
    opt1.step()
    opt2.step()
    return {"loss": to_float(loss)}


# %% [markdown]
# Every run below starts from the same `f_1`, `f_2` and sees the same batches. `run`
# prints the mean of what a step returns since the last line, and the final test error.

# %%
LOG_AT = [s for s in (1, 10, 25, 50, 100, 250, 500, 1000, 1500) if s < STEPS] + [STEPS]


def fresh_halves():
    rng = RNG(0)
    f1, f2 = bottom_half(rng), top_half(rng)
    return f1, f2, Adam(f1.parameters(), lr=LR), Adam(f2.parameters(), lr=LR)


def run(step_fn, f1, f2):
    """STEPS steps of ``step_fn(x, y) -> dict``; returns the test error and the log."""
    history, window, start = [], [], time.perf_counter()
    for step, index in zip(range(1, STEPS + 1), batches(len(train), BATCH, RNG(1))):
        window.append(step_fn(*train.take(index)))
        if step in LOG_AT:
            history.append({k: float(np.mean([s[k] for s in window])) for k in window[0]})
            window = []
            print(f"step {step:5d}  " + "  ".join(f"{k} {v:.4f}" for k, v in history[-1].items()))
    error = evaluate(lambda x: predict(f1, f2, x), test)
    print(f"test error {100 * error:.2f}%  ({time.perf_counter() - start:.0f}s)")
    return error, history


f1, f2, opt1, opt2 = fresh_halves()
bprop_error, bprop_log = run(lambda x, y: backprop_step(f1, f2, opt1, opt2, x, y), f1, f2)

# %% [markdown]
# ## 4. A synthetic gradient model `M_2`
#
# `M_2` maps `h_1` (B, 256) to `delta_hat_1` (B, 256). Here it is linear,
# `delta_hat_1 = h_1 W + b`. Its output layer starts at **zero**, so at first
# `delta_hat_1 = 0`: `f_1` receives no gradient and does not move (Adam with a zero
# gradient takes a zero step) until `M_2` has learned something. A random `M_2` would
# instead push `f_1` in random directions from the first step.

# %%
M = SyntheticGradient(256, RNG(2), lr=SG_LR)  # hidden=() by default: a linear model
print("M_2 =", M.net)
x, y = train.take(np.arange(BATCH))
h1, _ = bottom_half(RNG(3)).forward(x)
delta_hat, _ = M.predict(h1)
print("max |delta_hat_1| of a fresh M_2:", to_float(xp.max(xp.abs(delta_hat))))

# %% [markdown]
# ### Units: per-example gradients and the `/ B` convention
#
# The loss is a batch mean, `L = (1/B) sum_n l_n`, so every row of `dL/dh_1` carries a
# factor `1/B`. `M_2` sees one example's `h_1` at a time and should not have to know the
# batch size, so it predicts the **per-example** gradient `delta_1 = B dL/dh_1 = dl_n/dh_1`
# (see the docstring of `minidni/decoupled.py`). Hence two conversions below: `f_1`
# backpropagates `delta_hat_1 / B` (so its parameter gradients are those of the batch-mean
# loss, as with backprop), and the gradient `f_2` returns is multiplied by `B` to give
# `M_2`'s target.
#
# ### The decoupled step
#
# 1. `h_1 = f_1(x)`; `delta_hat_1 = M_2(h_1)`; `f_1` backpropagates it and **updates at
#    once**. `f_1` is now finished with this batch; it never waits for `f_2`.
# 2. `f_2` runs forward on `h_1` (it could do so later, or on another machine), gets the
#    true loss gradient, backpropagates and updates. Its input gradient is the true
#    `delta_1`.
# 3. `M_2` takes one Adam step on its loss `(1/B) sum_n ||delta_hat_1 - delta_1||^2`
#    (`losses.mse`; this is what `M.update` does).
#
# To watch `M_2` learn we also record `E||delta_1||^2` (the loss of always predicting
# zero) and the cosine between `delta_hat_1` and `delta_1`, each taken as one long vector
# (so examples with large gradients count more, as they do in `f_1`'s update). These are
# diagnostics only: a real decoupled `f_1` would never see `delta_1`. The argument `c` (a
# context for `M_2`) stays `None` until section 6.


# %%
def cosine(a, b):
    """cos of the angle between two arrays, flattened; 0 if one of them is zero."""
    return to_float(xp.sum(a * b) / (xp.sqrt(xp.sum(a * a) * xp.sum(b * b)) + 1e-12))


def dni_step(f1, f2, M, opt1, opt2, x, y, c=None):
    B = x.shape[0]
    # 1. f_1: forward, synthetic gradient, backward, update. No waiting.
    h1, cache1 = f1.forward(x)  # h_1 (B, 256)
    delta_hat, cache_M = M.predict(h1, c)  # delta_hat_1 (B, 256), per-example units
    f1.zero_grad()
    f1.backward(delta_hat / B, cache1)
    opt1.step()
    # 2. f_2: forward, true loss, backward, update. Its input gradient is delta_1.
    logits, cache2 = f2.forward(h1)  # (B, 10)
    loss, dlogits = softmax_cross_entropy(logits, y)
    f2.zero_grad()
    delta_1 = f2.backward(dlogits, cache2) * B  # (B, 256), per-example units
    opt2.step()
    # 3. M_2 regresses delta_hat_1 onto delta_1.
    sg_loss, d_delta_hat = mse(delta_hat, delta_1)
    M.net.zero_grad()
    M.net.backward(d_delta_hat, cache_M)
    M.opt.step()
    return {
        "loss": to_float(loss),
        "sg_loss": to_float(sg_loss),
        "|delta_1|^2": to_float(xp.mean(xp.sum(delta_1 * delta_1, axis=1))),
        "cos": cosine(delta_hat, delta_1),
    }


# %% [markdown]
# ## 5. Training with the DNI

# %%
f1, f2, opt1, opt2 = fresh_halves()
M = SyntheticGradient(256, RNG(2), lr=SG_LR)
dni_error, dni_log = run(lambda x, y: dni_step(f1, f2, M, opt1, opt2, x, y), f1, f2)
cos_history = [entry["cos"] for entry in dni_log]

# %% [markdown]
# How `M_2` learns, in a picture: its loss against the loss of always predicting zero,
# `E||delta_1||^2` (left), and the cosine between `delta_hat_1` and `delta_1` (right).

# %%
fig, (ax_l, ax_c) = plt.subplots(1, 2, figsize=(9, 3.2), sharex=True)
ax_l.plot(LOG_AT, [e["sg_loss"] for e in dni_log], "o-", ms=3, label="M_2's loss")
ax_l.plot(LOG_AT, [e["|delta_1|^2"] for e in dni_log], "k--", label="predicting zero")
ax_c.plot(LOG_AT, cos_history, "o-", ms=3, color="tab:blue")
ax_c.axhline(0, color="gray", linewidth=0.8)
ax_l.set(xscale="log", yscale="log", xlabel="step", title="M_2's loss")
ax_c.set(xlabel="step", title="cosine(delta_hat_1, delta_1)")
ax_l.legend(fontsize=8)
show(fig, "01_sg_learns")

# %% [markdown]
# At step 1, `delta_hat_1 = 0` (cosine 0, SG loss = `E||delta_1||^2`). Within ten steps
# `M_2` has learned a direction that agrees with `delta_1`, and `f_1` trains on it.
# After that the cosine falls towards zero, and `M_2`'s loss, though it shrinks with
# `delta_1`, stays a little above the loss of predicting zero. Section 6 explains why.
#
# First, did `f_1` learn anything useful? The control: train `f_2` alone on a `f_1` that
# never updates (its random features), with the same batches.


# %%
def top_only_step(f1, f2, opt2, x, y):
    h1, _ = f1.forward(x)  # f_1 stays at its initialisation
    logits, cache2 = f2.forward(h1)
    loss, dlogits = softmax_cross_entropy(logits, y)
    f2.zero_grad()
    f2.backward(dlogits, cache2)
    opt2.step()
    return {"loss": to_float(loss)}


f1, f2, opt1, opt2 = fresh_halves()
frozen_error, frozen_log = run(lambda x, y: top_only_step(f1, f2, opt2, x, y), f1, f2)

# %% [markdown]
# The three runs side by side: the training loss (left) and the test error (right).

# %%
colors = {"backprop": "black", "DNI": "tab:blue", "cDNI": "tab:red", "f_1 frozen": "tab:gray"}
logs = {"backprop": bprop_log, "DNI": dni_log, "f_1 frozen": frozen_log}
errors = {"backprop": bprop_error, "DNI": dni_error, "f_1 frozen": frozen_error}
fig, (ax_loss, ax_err) = plt.subplots(1, 2, figsize=(9, 3.2), gridspec_kw={"width_ratios": [2, 1]})
for name, log in logs.items():
    ax_loss.plot(LOG_AT, [e["loss"] for e in log], marker=".", color=colors[name], label=name)
ax_err.bar(list(errors), [100 * e for e in errors.values()], color=[colors[n] for n in errors])
ax_loss.set(xscale="log", yscale="log", xlabel="step", ylabel="training loss")
ax_err.set(ylabel="test error (%)")
ax_loss.legend(fontsize=8)
show(fig, "01_dni_vs_backprop")

# %% [markdown]
# A frozen `f_1` is clearly worse than backprop. DNI lands in between: `f_1` learned
# useful features from `M_2`, mostly early, while its predictions were good.

# %% [markdown]
# ## 6. What `M_2` can predict, and the label as context
#
# Near the top, `delta_1` is roughly `(p - y) W^T`, where `p = softmax(logits)` and `y` is
# the one-hot label: the gradient says "move towards the right class". `M_2` sees `h_1`
# but not `y`. The best it can do is predict the average gradient over the labels that
# go with such an `h_1`: `E[delta_1 | h_1] ~ (p - E[y | h_1]) W^T`. Early in training `p`
# is far from `E[y | h_1]` and there is a lot to predict. Once `f_2` fits the data,
# `p ~ E[y | h_1]` and the expected gradient is about zero: what remains of `delta_1` is,
# from `M_2`'s point of view, noise. So DNI gives `f_1` a useful signal mostly early on.
#
# The fix of the paper (cDNI) is to give the SG model a **context** `c`, here the one-hot
# label: `delta_hat_1 = M_2(h_1, c)`. The term `-y W^T` is then linear in `c`, so even a
# linear `M_2` can represent much of `delta_1` (chapter 2 measures this). In code it is
# one argument: `d_context=10`, and `c = one_hot(y)` at every step.

# %%
f1, f2, opt1, opt2 = fresh_halves()
M_c = SyntheticGradient(256, RNG(2), d_context=10, lr=SG_LR)  # input: concat(h_1, c)
cdni_error, cdni_log = run(
    lambda x, y: dni_step(f1, f2, M_c, opt1, opt2, x, y, c=backend.one_hot(y, 10)), f1, f2
)

# %%
print(f"test error: backprop {100 * bprop_error:.2f}%   DNI {100 * dni_error:.2f}%   ", end="")
print(f"cDNI {100 * cdni_error:.2f}%   f_1 frozen {100 * frozen_error:.2f}%")
for name, history in [("DNI ", dni_log), ("cDNI", cdni_log)]:
    cos = "  ".join(f"{e['cos']:.2f}" for e in history)
    print(f"cosine(delta_hat_1, delta_1), {name}, at steps {LOG_AT}: {cos}")

# %% [markdown]
# With the label, `M_2` keeps tracking `delta_1` (left: the cosine stays well above
# zero), and the split net trains about as well as with backprop (right):

# %%
logs["cDNI"], errors["cDNI"] = cdni_log, cdni_error
fig, (ax_cos, ax_err) = plt.subplots(1, 2, figsize=(9, 3.2), gridspec_kw={"width_ratios": [2, 1]})
for name in ("DNI", "cDNI"):
    ax_cos.plot(LOG_AT, [e["cos"] for e in logs[name]], marker=".", color=colors[name], label=name)
order = ["backprop", "DNI", "cDNI", "f_1 frozen"]
ax_err.bar(order, [100 * errors[n] for n in order], color=[colors[n] for n in order])
ax_cos.set(xscale="log", xlabel="step", ylabel="cosine(delta_hat_1, delta_1)")
ax_err.set(ylabel="test error (%)")
ax_err.tick_params(axis="x", labelsize=8)
ax_cos.legend(fontsize=8)
show(fig, "01_cdni")

# %% [markdown]
# cDNI's test error is about backprop's on this budget (one seed: expect a few tenths of
# a percent between seeds).
#
# ## 7. The same thing with the library: `DecoupledNet([f_1, f_2], [M_2])`
#
# `minidni.decoupled.DecoupledNet` runs exactly this step for a chain of any length, with
# an SG model at every boundary: `sgs[0]` sits right after `modules[0]` (`f_1`), so it is
# our `M_2`. We start two copies from the same parameters, train one with `dni_step` and
# one with `net.step` on the same batches, and check that every parameter of `f_1`, `f_2`
# and `M_2` agrees.

# %%
rng = RNG(5)
mine = (bottom_half(rng), top_half(rng), SyntheticGradient(256, rng, lr=SG_LR))
f1_lib, f2_lib, M_lib = copy.deepcopy(mine)  # identical starting point
net = DecoupledNet([f1_lib, f2_lib], [M_lib], lr=LR)
f1, f2, M = mine
opt1, opt2 = Adam(f1.parameters(), lr=LR), Adam(f2.parameters(), lr=LR)
for _, index in zip(range(10), batches(len(train), BATCH, RNG(6))):
    x, y = train.take(index)
    dni_step(f1, f2, M, opt1, opt2, x, y)
    net.step(x, y)


def all_params(*models):
    return [to_numpy(p.value) for m in models for p in m.parameters()]


mine_params = all_params(f1, f2, M.net)
lib_params = all_params(f1_lib, f2_lib, M_lib.net)
max_param_diff = max(float(np.max(np.abs(a - b))) for a, b in zip(mine_params, lib_params))
sg_moved = bool(np.any(all_params(M.net)[0] != 0))
assert sg_moved, "M_2 should have learned something in 10 steps"
assert max_param_diff <= 1e-6, max_param_diff
print(f"{len(mine_params)} parameter arrays; max |hand-written - DecoupledNet| = {max_param_diff}")

# %% [markdown]
# They agree, here exactly: the two do the same arithmetic in the same order.
# (`DecoupledNet` multiplies `dL/dlogits` by B and divides it again, which is exact for
# B = 256, a power of 2; for other batch sizes expect rounding differences.)
#
# **Summary.** A DNI lets `f_1` update from `delta_hat_1 = M_2(h_1)` the moment it has
# computed `h_1`. `M_2` starts at zero and is trained by regression on the true `delta_1`
# that `f_2` sends back whenever it is ready. Without the label, `M_2` can predict only
# the part of `delta_1` that `h_1` determines, which fades as `f_2` fits the data; with
# the label as context it keeps tracking `delta_1`, and the split net trains about as
# well as with backprop.
#
# Next, [chapter 2](02_every_layer_cdni.py): a DNI at *every* layer boundary, where the SG
# models must learn from each other (bootstrapping); labels as context (cDNI); and modules
# that update only some of the time.
