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
# (arXiv:1608.05343), sections 1-3.
#
# We cut an MNIST classifier into two modules, `h_1 = f_1(x)` and `logits = f_2(h_1)`,
# with loss `L(logits, y)`. With backprop, `f_1` cannot update until `f_2` has run forward,
# computed the loss and sent the error gradient `delta_1 = dL/dh_1` back: `f_1` is
# **update locked**. A **synthetic gradient** model `M_2` predicts
# `delta_hat_1 = M_2(h_1)` from `h_1` alone, so `f_1` can update as soon as it has
# produced `h_1`. `M_2` learns to predict `delta_1` by regression, whenever `f_2` gets
# round to computing it.
#
# This chapter builds every piece by hand, checks it against the library's
# `DecoupledNet`, and trains both ways on MNIST. Everything is plain NumPy (or CuPy) with
# hand-written backward passes; nothing is hidden behind autodiff.

# %%
import copy
import os
import time

import numpy as np

from minidni import backend
from minidni.backend import RNG, to_float, to_numpy
from minidni.decoupled import DecoupledNet
from minidni.experiments.common import mnist
from minidni.layers import BatchNorm, Linear, ReLU, Sequential
from minidni.losses import mse, softmax_cross_entropy
from minidni.optim import Adam
from minidni.synthetic import SyntheticGradient
from minidni.train import Dataset, batches, evaluate

# FAST shrinks data and steps so that the chapter runs in seconds (the test suite uses it).
FAST = os.environ.get("MINIDNI_TUTORIAL_FAST") == "1"
STEPS = 60 if FAST else 2000  # 2000 steps of 256 = 8.5 epochs of MNIST
LOG_EVERY = 20 if FAST else 250
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
train, test = mnist()
if FAST:
    train = Dataset(train.x[:4096], train.y[:4096])
    test = Dataset(test.x[:1000], test.y[:1000])
print(f"train {tuple(train.x.shape)}, test {tuple(test.x.shape)}")

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
    return Sequential(Linear(256, 256, rng, bias=False), BatchNorm(256), ReLU(), Linear(256, 10, rng))


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
    return to_float(loss)


rng = RNG(0)
f1, f2 = bottom_half(rng), top_half(rng)
opt1, opt2 = Adam(f1.parameters(), lr=LR), Adam(f2.parameters(), lr=LR)
start, losses = time.perf_counter(), []
for step, index in zip(range(1, STEPS + 1), batches(len(train), BATCH, RNG(1))):
    losses.append(backprop_step(f1, f2, opt1, opt2, *train.take(index)))
    if step % LOG_EVERY == 0:
        print(f"step {step:5d}  loss {np.mean(losses[-LOG_EVERY:]):.4f}")
bprop_error = evaluate(lambda x: predict(f1, f2, x), test)
print(f"backprop: test error {100 * bprop_error:.2f}%  ({time.perf_counter() - start:.0f}s)")

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
# We also measure how well `delta_hat_1` points along `delta_1`: the cosine similarity,
# averaged over the examples of the batch.

# %%
def cosine(a, b):
    """Mean over rows of cos(a_n, b_n); 0 where a row is all zero."""
    dot = xp.sum(a * b, axis=1)
    norms = xp.sqrt(xp.sum(a * a, axis=1) * xp.sum(b * b, axis=1))
    return to_float(xp.mean(dot / (norms + 1e-12)))


def dni_step(f1, f2, M, opt1, opt2, x, y):
    B = x.shape[0]
    # 1. f_1: forward, synthetic gradient, backward, update. No waiting.
    h1, cache1 = f1.forward(x)  # h_1 (B, 256)
    delta_hat, cache_M = M.predict(h1)  # delta_hat_1 (B, 256), per-example units
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
    stats = {"loss": to_float(loss), "sg_loss": to_float(sg_loss)}
    stats["delta_sq"] = to_float(xp.mean(xp.sum(delta_1 * delta_1, axis=1)))  # E||delta_1||^2
    stats["cos"] = cosine(delta_hat, delta_1)
    return stats


# %% [markdown]
# ## 5. Training with the DNI
#
# Same initial `f_1`, `f_2` and the same batches as the backprop run. Every `LOG_EVERY`
# steps we print the task loss, `M_2`'s loss, that loss relative to `E||delta_1||^2`
# (1 would mean "no better than predicting zero"), and the cosine similarity.
# `delta_1` shrinks as the task loss falls, so the relative error and the cosine are the
# fairer measures of how well `M_2` tracks the true gradient.

# %%
rng = RNG(0)
f1, f2 = bottom_half(rng), top_half(rng)
opt1, opt2 = Adam(f1.parameters(), lr=LR), Adam(f2.parameters(), lr=LR)
M = SyntheticGradient(256, RNG(2), lr=SG_LR)
log, cos_history = [], []
start = time.perf_counter()
for step, index in zip(range(1, STEPS + 1), batches(len(train), BATCH, RNG(1))):
    log.append(dni_step(f1, f2, M, opt1, opt2, *train.take(index)))
    if step == 1 or step % LOG_EVERY == 0:
        window = log[-LOG_EVERY:] if step > 1 else log
        mean = {k: float(np.mean([s[k] for s in window])) for k in window[0]}
        cos_history.append(mean["cos"])
        print(
            f"step {step:5d}  loss {mean['loss']:.4f}  SG loss {mean['sg_loss']:.4f}  "
            f"relative {mean['sg_loss'] / mean['delta_sq']:.3f}  cos {mean['cos']:.3f}"
        )
dni_error = evaluate(lambda x: predict(f1, f2, x), test)
print(f"DNI: test error {100 * dni_error:.2f}%  ({time.perf_counter() - start:.0f}s)")

# %% [markdown]
# At step 1 `delta_hat_1 = 0` (cosine 0). `M_2` quickly learns a direction that agrees with
# the true gradient, and `f_1` then trains on it. Its prediction is far from perfect
# (`M_2` is linear and sees no label, so it cannot know whether `f_2` classified an
# example correctly), but `f_1` only needs a useful descent direction on average.

# %%
print(f"test error: backprop {100 * bprop_error:.2f}%, DNI {100 * dni_error:.2f}%")
print(f"cosine(delta_hat_1, delta_1): first step {cos_history[0]:.3f}, end {cos_history[-1]:.3f}")

# %% [markdown]
# ## 6. The same thing with the library: `DecoupledNet([f_1, f_2], [M_2])`
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
# They agree (here exactly: the two do the same arithmetic in the same order).
#
# **Summary.** A DNI lets `f_1` update from `delta_hat_1 = M_2(h_1)` the moment it has
# computed `h_1`. `M_2` starts at zero and is trained by regression on the true `delta_1`
# that `f_2` sends back whenever it is ready. With one interface, only `M_2` needs the
# true gradient, and the net still trains to nearly the test error of backprop.
#
# Next, [chapter 2](02_every_layer_cdni.py): a DNI at *every* layer boundary, where the SG
# models must learn from each other (bootstrapping); labels as context (cDNI); and modules
# that update only some of the time.
