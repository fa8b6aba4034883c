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
# # Chapter 2: Every layer decoupled, cDNI, and stochastic updates
#
# Jaderberg et al. 2017 (arXiv:1608.05343), the feed-forward MNIST experiments.
#
# In chapter 1 one DNI split a net in two, and its SG model learned from the true
# gradient. Now we put a DNI at **every** layer boundary of the paper's MNIST MLP,
# 784-256-256-256-10: modules `f_1, f_2, f_3` (Linear + BatchNorm + ReLU) and `f_4`
# (Linear, the logits), with SG models `M_2, M_3, M_4` between them. Every layer except
# the top one learns only from the synthetic gradient of the SG model just above it. We
# then
#
# 1. see how the SG models can learn at all when only the last one sees the loss
#    (bootstrapping), and check with oracle SG models that the machinery is exact;
# 2. train Bprop, DNI and cDNI (SG models that also see the label) on MNIST;
# 3. see why the label makes even a *linear* SG model good;
# 4. let every module update only at random times (`p_update`), as asynchronous workers;
# 5. decouple every layer of a convolutional net, with convolutional SG models.
#
# Run time: about 2.5 minutes on a laptop (measured: 154 CPU seconds with one BLAS
# thread, `OMP_NUM_THREADS=1`, on a 2-core machine). A longer CNN run is in the optional
# last section: set `FULL = True` below (or `MINIDNI_TUTORIAL_FULL=1`) to run it: at most
# 10 more minutes (the whole chapter with it took 775 CPU seconds, measured the same way
# with an earlier, slower version of the convolutions).

# %%
import copy
import os

import matplotlib.pyplot as plt
import numpy as np

from minidni import backend
from minidni.backend import RNG, to_float, to_numpy
from minidni.data import mnist_datasets
from minidni.decoupled import build_mlp
from minidni.losses import softmax_cross_entropy
from minidni.plots.tutorial import show
from minidni.schedules import Stochastic
from minidni.train import Dataset, fit

FAST = os.environ.get("MINIDNI_TUTORIAL_FAST") == "1"
FULL = os.environ.get("MINIDNI_TUTORIAL_FULL") == "1"  # True: also run the optional section
STEPS = 40 if FAST else 2000  # training steps of batch 256 per run (2000 = 8.5 epochs)
SIZES = [784, 256, 256, 256, 10]
LR = {"bprop": 1e-3, "dni": 3e-4, "cdni": 1e-3}  # Adam learning rate of the modules
SG_LR = 1e-3  # Adam learning rate of the (linear) SG models
xp = backend.namespace()

train, test = mnist_datasets()
if FAST:
    train = Dataset(*train.take(np.arange(4096)))  # the first 4096 examples
    test = Dataset(*test.take(np.arange(1000)))
print(f"backend {backend.get_backend()}, FAST={FAST}; train {len(train)}, test {len(test)}")

# %% [markdown]
# ## 1. The net: `build_mlp`
#
# `build_mlp(method, sizes, rng, ...)` splits the MLP at every layer and returns a
# `DecoupledNet`. Lists are 0-based, the paper's modules 1-based: `net.modules[i-1]` is
# `f_i`, and `net.sgs[i-1]`, right after it, is `M_{i+1}`, predicting `delta_hat_i` from `h_i`.
# For `"bprop"` there are no SG models; for `"cdni"` each SG model also takes the one-hot
# label `c` (10 more inputs).

# %%
net = build_mlp("cdni", SIZES, RNG(0), lr=LR["cdni"], sg_lr=SG_LR)
for i, f in enumerate(net.modules, start=1):  # f_i is net.modules[i - 1]
    print(f"f_{i} = {f}")
    if i <= len(net.sgs):
        sg = net.sgs[i - 1]  # M_{i+1}, right after f_i
        print(f"    M_{i + 1} = {sg.net}  (h_{i}: {sg.d_h}, context c: {sg.d_context})")

# %% [markdown]
# ## 2. Bootstrapping: where do the SG models' targets come from?
#
# One step of `net.step(x, y)` (see `minidni/decoupled.py`):
#
# | module | backpropagates                                 | its input gradient is the target of |
# |--------|------------------------------------------------|-------------------------------------|
# | `f_4`  | the true `delta_4 = dL/dlogits`                | `M_4`: exactly the true `delta_3`   |
# | `f_3`  | `delta_hat_3 = M_4(h_3, c)`                    | `M_3`                               |
# | `f_2`  | `delta_hat_2 = M_3(h_2, c)`                    | `M_2`                               |
# | `f_1`  | `delta_hat_1 = M_2(h_1, c)`                    | (nobody: its input is `x`)          |
#
# Each module backpropagates the synthetic gradient it is given and updates at once; the
# gradient it computes at its input, `(dh_i/dh_{i-1})^T delta_hat_i`, is the **target**
# of the SG model one boundary down. Only `M_4` is trained on a true gradient. `M_3`
# learns to predict what `M_4`'s prediction looks like one layer down, and so on: a
# *bootstrap*, as in temporal-difference learning, where a value estimate learns from the
# next estimate. Errors of `M_4` therefore propagate down to `M_3` and `M_2`, and the
# lower layers only get useful gradients once the SG models above them are decent.
#
# Nothing here waits for the loss: a module's backward pass needs only its own
# `delta_hat`. If bootstrapping is right, SG models that predicted perfectly would turn
# this into backprop. We check exactly that with an **oracle** SG model that returns the
# true `delta_i`, computed by backpropagating the loss through copies of the modules above
# its boundary. `net.step` asks `M_{i+1}` for `delta_hat_i` before modules `i+1 .. N` have
# updated on this step, so the copies hold the same parameters that backprop would use.
# The oracle needs the labels: it reads them back from the cDNI context `c`.


# %%
class OracleSG:
    """In place of M_{i+1} = net.sgs[i-1]: the true delta_i at the output of f_i =
    net.modules[i-1] (per-example units), by backprop through copies of the modules
    above. Never learns."""

    def __init__(self, net, i):
        self.net, self.i = net, i
        self.d_context = net.n_classes  # so that net.step passes it the context c

    def predict(self, h, c):
        labels = xp.argmax(c, axis=1)
        above = copy.deepcopy(self.net.modules[self.i :])  # f_{i+1} .. f_N
        out, caches = h, []
        for f in above:
            out, cache = f.forward(out)
            caches.append(cache)
        _, delta = softmax_cross_entropy(out, labels)  # dL/dlogits
        for f, cache in zip(reversed(above), reversed(caches)):
            delta = f.backward(delta, cache)
        return delta * h.shape[0], None  # per-example units; no cache needed

    def update(self, cache, prediction, target):
        return 0.0  # an oracle has nothing to learn


# %% [markdown]
# A small net in float64 (so that only rounding, at 1e-16, could tell the two apart),
# a few steps on MNIST batches, the same initial parameters for both:

# %%
small = [784, 32, 32, 32, 10]
with backend.use_dtype("float64"):
    bprop_net = build_mlp("bprop", small, RNG(3))
    oracle_net = build_mlp("cdni", small, RNG(3))
    oracle_net.sgs = [OracleSG(oracle_net, i) for i in range(1, len(oracle_net.sgs) + 1)]
    for start in range(0, 5 * 64, 64):
        x, y = train.take(np.arange(start, start + 64))
        x = backend.asarray(to_numpy(x))  # float32 -> float64
        bprop_net.step(x, y)
        oracle_net.step(x, y)
    oracle_max_diff = max(
        float(np.max(np.abs(to_numpy(p.value) - to_numpy(q.value))))
        for f, g in zip(bprop_net.modules, oracle_net.modules)
        for p, q in zip(f.parameters(), g.parameters())
    )
print(f"max |backprop - decoupled with oracle SGs| over all parameters: {oracle_max_diff:.1e}")
assert oracle_max_diff < 1e-10

# %% [markdown]
# Identical. So whatever separates DNI from backprop below is the SG models' prediction
# error, nothing else.
#
# ## 3. Bprop vs DNI vs cDNI on MNIST
#
# Settings that worked in short runs of this library (`minidni reproduce ff --profile
# quick`): Adam, batch 256, module learning rate 1e-3 (3e-4 for DNI without labels, which
# is steadier with smaller steps), SG learning rate 1e-3, **linear** SG models. (The
# paper's DNI models have two hidden layers of 1024 units and train for 500k steps; on a
# CPU budget, linear ones learn faster.) `fit` is the library's training loop: it calls
# `net.step` on shuffled batches and reports the test error.

# %%
nets, errors, curves = {}, {}, {}
for method in ("bprop", "dni", "cdni"):
    print(f"== {method}")
    nets[method] = build_mlp(method, SIZES, RNG(0), lr=LR[method], sg_lr=SG_LR)
    history = fit(
        nets[method], train, test, STEPS, RNG(1), eval_every=max(STEPS // 4, 1), log=print
    )
    errors[method] = history.final_test_error
    curves[method] = history  # steps and test errors, for the figure
print("test error after", STEPS, "steps:", {m: f"{100 * e:.2f}%" for m, e in errors.items()})

# %% [markdown]
# The test error along the way:

# %%
colors = {"bprop": "black", "dni": "tab:blue", "cdni": "tab:red"}
fig, ax = plt.subplots(figsize=(5.5, 3.4))
for method, h in curves.items():
    percent = [100 * e for e in h.test_error]
    ax.plot(h.steps, percent, marker=".", color=colors[method], label=method)
ax.set(xlabel="step", ylabel="MNIST test error (%)", yscale="log", title="every layer decoupled")
ax.grid(True, which="both", alpha=0.3)
ax.legend(fontsize=8)
show(fig, "02_bprop_dni_cdni")

# %% [markdown]
# cDNI reaches about the test error of Bprop, with every layer below the top learning
# only from a linear SG model. DNI without labels is far behind on this budget. Section 4 shows why.
#
# ## 4. Why the label helps so much
#
# Look at the top boundary. `f_4` is linear, `logits = h_3 W + b`, so the true gradient
# (per example, as a row) is
#
# `delta_3 = (p - y) W^T`, with `p = softmax(h_3 W + b)` and `y` the one-hot label.
#
# The term `-y W^T` is *exactly linear in the label*. So a linear cDNI model
# `M_4(h_3, c) = h_3 A + c C + b_M` can represent it (`C = -W^T`) and only has to
# approximate `p W^T` from `h_3`, which is smooth in `h_3`. A DNI model without `c` must
# guess `y` from `h_3`, which is the classification problem itself, and a linear model
# cannot do that well. Further down, `delta_2` and `delta_1` pass through ReLUs and
# BatchNorms, so they are less linear, but the label still carries much of what is
# predictable.
#
# First the claim itself, on a fresh net: fit the best linear model (least squares) from
# `[h_i, 1]` and from `[h_i, c, 1]` to the true `delta_i` on half of a set of training
# examples, and report the fraction of `E||delta_i||^2` it explains on the other half
# (1 = perfect, 0 = no better than predicting zero).


# %%
def true_deltas(net, x, y):
    """[h_1..h_{N-1}] and the true [delta_1..delta_{N-1}] (per-example units) by backprop,
    on a copy of the net, forward in training mode as in a training step."""
    net = copy.deepcopy(net)  # the passes below change BatchNorm statistics and p.grad
    hs, caches = net.forward(x)
    _, dlogits = softmax_cross_entropy(hs[-1], y)
    delta, deltas = dlogits * x.shape[0], []
    for i in reversed(range(2, len(net.modules) + 1)):  # f_N .. f_2 return delta_{N-1} .. delta_1
        delta = net.modules[i - 1].backward(delta, caches[i - 1])  # linear: units carry over
        deltas.append(delta)
    return hs[1:-1], deltas[::-1]


def explained(features, targets):
    """Least-squares fit on the first half; 1 - E||pred - target||^2 / E||target||^2 on
    the second half."""
    half = len(targets) // 2
    a = np.concatenate([features, np.ones((len(features), 1))], axis=1)
    w, *_ = np.linalg.lstsq(a[:half], targets[:half], rcond=None)
    residual = a[half:] @ w - targets[half:]
    return 1 - np.sum(residual**2) / np.sum(targets[half:] ** 2)


x, y = train.take(np.arange(2048 if FAST else 8192))
c = to_numpy(backend.one_hot(y, 10))
hs, deltas = true_deltas(build_mlp("bprop", SIZES, RNG(0)), x, y)
print("fresh net: fraction of E||delta_i||^2 a linear model explains on held-out examples")
linear_fit = {}
for i, (h, d) in enumerate(zip(hs, deltas), start=1):
    h, d = to_numpy(h), to_numpy(d)
    linear_fit[i] = (explained(h, d), explained(np.concatenate([h, c], axis=1), d))
    print(
        f"  delta_{i}:  from h_{i} {linear_fit[i][0]:.3f}   from (h_{i}, c) {linear_fit[i][1]:.3f}"
    )

fig, ax = plt.subplots(figsize=(5.5, 3.2))
layers = np.arange(1, len(linear_fit) + 1)
ax.bar(layers - 0.2, [linear_fit[i][0] for i in layers], 0.4, label="from h_i", color="tab:blue")
ax.bar(
    layers + 0.2, [linear_fit[i][1] for i in layers], 0.4, label="from (h_i, c)", color="tab:red"
)
ax.set(
    xticks=layers,
    xticklabels=[f"delta_{i}" for i in layers],
    ylim=(0, 1),
    ylabel="share of E||delta_i||^2 explained",
    title="a linear model of the true gradient",
)
ax.legend(fontsize=8)
show(fig, "02_linear_fit")

# %% [markdown]
# At the top, the label makes the gradient almost exactly linear. Now the SG models that
# were actually trained above: how well does each `delta_hat_i = M_{i+1}(h_i[, c])` point
# along the true `delta_i` at the end of training? (Cosine of the two (B, 256) arrays,
# averaged over four batches; `train=False` only stops the SG model's forward pass from
# touching any state.)


# %%
def cosine(a, b):
    return to_float(xp.sum(a * b) / (xp.sqrt(xp.sum(a * a) * xp.sum(b * b)) + 1e-12))


sg_cosine = {}
for method in ("dni", "cdni"):
    cosines = []
    for start in range(0, 4 * 256, 256):
        x, y = train.take(np.arange(start, start + 256))
        c = backend.one_hot(y, 10)
        hs, deltas = true_deltas(nets[method], x, y)
        row = []
        for sg, h, d in zip(nets[method].sgs, hs, deltas):
            delta_hat, _ = sg.predict(h, c if sg.d_context else None, train=False)
            row.append(cosine(delta_hat, d))
        cosines.append(row)
    sg_cosine[method] = np.mean(cosines, axis=0)
    print(
        f"{method:4s}: cosine(delta_hat_i, delta_i) for i = 1, 2, 3: {sg_cosine[method].round(3)}"
    )

fig, ax = plt.subplots(figsize=(5.5, 3.2))
for shift, method in ((-0.2, "dni"), (0.2, "cdni")):
    ax.bar(layers + shift, sg_cosine[method], 0.4, label=method, color=colors[method])
ax.axhline(0, color="gray", linewidth=0.8)
ax.set(
    xticks=layers,
    xticklabels=[f"M_{i + 1}: delta_hat_{i}" for i in layers],
    ylabel="cosine(delta_hat_i, delta_i)",
    title="trained SG models, end of training",
)
ax.legend(fontsize=8)
show(fig, "02_sg_cosine")

# %% [markdown]
# Without the label the linear SG models predict next to nothing at the end of
# training: once the top of the net fits the data, the part of `delta_i` that `h_i` alone
# determines is small (chapter 1, section 6). Their useful signal came early (chapter
# 1's control, a frozen `f_1`, showed that such early signal does teach the layers below
# something). With the label, every SG
# model keeps a clear positive alignment with the true gradient, best at the top, where
# it is learned from true gradients, and weaker further down, where each target is
# bootstrapped from the SG model above. That is why cDNI gets close to backprop.
#
# ## 5. Stochastic updates
#
# In the paper each module, after each forward pass, runs its backward pass and update
# only with probability `p_update`, independently of the others: a stand-in for workers
# that are busy or late. With backprop this would stall every module below a skipping
# one; with DNIs the others carry on. `schedules.Stochastic(p_update, rng)` draws these
# coins; `DecoupledNet` consults it on every step.
#
# What does an SG model learn from on a step where some module skipped?
#
# - `M_{i+1}`'s target is produced by the backward pass of `f_{i+1}`, the module *above*
#   its boundary. If `f_{i+1}` skipped, there is no target and `M_{i+1}` does not learn.
# - If `f_{i+1}` ran but `f_i` (the consumer of `delta_hat_i`) skipped, `M_{i+1}` still
#   predicts `delta_hat_i` and learns from the target: the prediction is then used only for
#   the regression.
#
# So `M_{i+1}` makes exactly as many steps as `f_{i+1}`, which we check below. Every run
# has the same number of forward passes (`STEPS`); at `p_update = 0.2` each module updates
# on about a fifth of them.

# %%
stochastic = {1.0: nets["cdni"]}  # p_update = 1 is the lockstep cDNI net trained above
stochastic_errors = {1.0: errors["cdni"]}
stochastic_curves = {1.0: curves["cdni"]}
for p in (0.5, 0.2):
    print(f"== cdni, p_update = {p}")
    schedule = Stochastic(p, RNG(7))
    stochastic[p] = build_mlp("cdni", SIZES, RNG(0), lr=LR["cdni"], sg_lr=SG_LR, schedule=schedule)
    history = fit(
        stochastic[p], train, test, STEPS, RNG(1), eval_every=max(STEPS // 4, 1), log=print
    )
    stochastic_errors[p] = history.final_test_error
    stochastic_curves[p] = history

# %% [markdown]
# `net.opts[i-1].t` counts the Adam steps of `f_i`, `net.sgs[i-1].opt.t` those of
# `M_{i+1}`.

# %%
update_counts = {}
for p, model in stochastic.items():
    modules = [opt.t for opt in model.opts]  # f_1 .. f_4
    sgs = [sg.opt.t for sg in model.sgs]  # M_2 .. M_4
    assert sgs == modules[1:], "M_{i+1} learns exactly when f_{i+1} ran backward"
    update_counts[p] = modules
    print(
        f"p_update {p:3.1f}: test error {100 * stochastic_errors[p]:5.2f}%   "
        f"updates of f_1..f_4 {modules}   of M_2..M_4 {sgs}   (forward passes: {STEPS})"
    )

# %% [markdown]
# The test error along the way (left) and how often each module updated (right):

# %%
fig, (ax_p, ax_u) = plt.subplots(1, 2, figsize=(9, 3.4))
for p, h in stochastic_curves.items():
    ax_p.plot(h.steps, [100 * e for e in h.test_error], marker=".", label=f"p_update = {p}")
ax_p.set(xlabel="step", ylabel="MNIST test error (%)", yscale="log", title="cDNI, stochastic")
ax_p.grid(True, which="both", alpha=0.3)
ax_p.legend(fontsize=8)
modules = np.arange(1, len(update_counts[1.0]) + 1)
for shift, (p, counts) in zip((-0.25, 0, 0.25), update_counts.items()):
    ax_u.bar(modules + shift, counts, 0.25, label=f"p_update = {p}")
ax_u.set(
    xticks=modules,
    xticklabels=[f"f_{i}" for i in modules],
    ylabel="updates",
    title=f"updates in {STEPS} forward passes",
)
show(fig, "02_stochastic")

# %% [markdown]
# Training slows down as `p_update` falls, since each module makes fewer updates, but it
# does not break: no module ever waits for another, and each SG model keeps learning
# whenever the module above it runs.
#
# ## 6. Convolutional nets
#
# The paper decouples every layer of CNNs as well, on MNIST and CIFAR-10. Nothing in
# `DecoupledNet` changes: a module is now a 5x5 convolution + `BatchNorm2d` + ReLU + 3x3
# pooling (`minidni.cnn.cnn_modules`), its output `h_i` is a feature map (B, C, H, W),
# and the SG model must return a map of that same shape. `ConvSyntheticGradient` is a
# zero-initialised 5x5 convolution (optionally after hidden conv layers), so
# `delta_hat_i = 0` at first, as before. For cDNI the one-hot label enters through a
# linear map `U c` to a map of h's shape, added to the output: our choice, documented in
# `docs/cnn.md`. The layers' backward passes are hand-written like the others (`minidni
# gradcheck` lists them).

# %%
from minidni.cnn import build_cnn  # noqa: E402

CNN_STEPS = 6 if FAST else 300  # batch 64: a third of an epoch
CNN_CHANNELS = (4, 4, 4) if FAST else (16, 16, 16)
maps_train = Dataset(xp.reshape(train.x, (-1, 1, 28, 28)), train.y)  # (N, 1, 28, 28)
maps_test = Dataset(xp.reshape(test.x, (-1, 1, 28, 28)), test.y)
if FAST:  # conv layers on a CPU are slow: evaluate on fewer test images
    maps_test = Dataset(*maps_test.take(np.arange(200)))
cnn = build_cnn("cdni", (1, 28, 28), CNN_CHANNELS, RNG(0))
hs, _ = cnn.forward(maps_train.x[:8])
c8 = backend.one_hot(maps_train.y[:8], 10)
cnn_shapes = []
for i, sg in enumerate(cnn.sgs, start=1):  # M_{i+1} reads h_i = hs[i]
    delta_hat, _ = sg.predict(hs[i], c8)
    cnn_shapes.append((tuple(hs[i].shape), tuple(delta_hat.shape)))
    print(f"h_{i} {tuple(hs[i].shape)} -> M_{i + 1} -> delta_hat_{i} {tuple(delta_hat.shape)}")

cnns, cnn_errors = {}, {}
for method in ("bprop", "cdni"):
    print(f"== CNN {method}")
    cnns[method] = build_cnn(method, (1, 28, 28), CNN_CHANNELS, RNG(0), lr=1e-3, sg_lr=1e-3)
    history = fit(cnns[method], maps_train, maps_test, CNN_STEPS, RNG(1), 64, CNN_STEPS, log=print)
    cnn_errors[method] = history.final_test_error

# %% [markdown]
# Pooling sits inside each module, so the SG models see the pooled maps: (16, 14, 14),
# (16, 7, 7) and (16, 4, 4) for MNIST. With the label, a linear convolutional SG model is
# again enough for cDNI to train every layer of the CNN close to Bprop on this short
# budget; `minidni reproduce ff-cnn` runs the comparison with DNI as well, longer and
# with several seeds.
#
# What the SG model of the lowest boundary, `M_2`, returns after training, for the first
# of 64 test digits: the first four channels of `h_1`, of the true `delta_1` (by backprop
# through a copy of the trained cDNI net, as in section 4) and of
# `delta_hat_1 = M_2(h_1, c)`. Each map of `delta_hat_1` has the shape of its `h_1`.

# %%
x_some, y_some = maps_test.take(np.arange(64))
hs, deltas = true_deltas(cnns["cdni"], x_some, y_some)
delta_hat, _ = cnns["cdni"].sgs[0].predict(hs[0], backend.one_hot(y_some, 10), train=False)
cnn_cosine = cosine(delta_hat, deltas[0])
print(f"cosine(delta_hat_1, delta_1) over the 64 digits: {cnn_cosine:.2f}")
rows = {"h_1": hs[0], "delta_1 (true)": deltas[0], "delta_hat_1\n= M_2(h_1, c)": delta_hat}
fig, axes = plt.subplots(3, 5, figsize=(8, 5))
axes[0, 0].imshow(to_numpy(x_some)[0, 0], cmap="Greys")
axes[0, 0].set_title(f"x (a {int(to_numpy(y_some)[0])})", fontsize=8)
for row, (name, maps) in zip(axes, rows.items()):
    maps = to_numpy(maps)[0]  # (C, 14, 14): the first digit's maps
    scale = np.abs(maps[:4]).max() + 1e-12  # one colour scale per row
    for channel, ax in enumerate(row[1:]):
        if name == "h_1":
            ax.imshow(maps[channel], cmap="viridis", vmin=0, vmax=scale)
            ax.set_title(f"channel {channel}", fontsize=8)
        else:  # red positive, blue negative
            ax.imshow(maps[channel], cmap="RdBu_r", vmin=-scale, vmax=scale)
    row[1].set_ylabel(name, fontsize=8)
    for ax in row:
        ax.set(xticks=[], yticks=[])
for ax in axes[1:, 0]:
    ax.set_axis_off()
show(fig, "02_cnn_maps")

# %% [markdown]
# `M_2` is a single 5x5 convolution of `h_1` plus a term for the label, so its maps are
# smoother than the speckled true gradient; on the whole they still point the same way
# (the cosine printed above), about as well as the lowest SG model of the MLP did in
# section 4.
#
# **Summary.**
#
# - With a DNI at every boundary only the top SG model sees the loss; the others learn
#   from the backward pass of the synthetic gradient one layer up (bootstrapping). With
#   perfect SG models this *is* backprop.
# - Giving the SG models the label (cDNI) makes the top gradient nearly linear in their
#   inputs, so small linear SG models suffice, and cDNI gets close to Bprop. Without it,
#   the SG models can predict only what `h_i` determines, which fades as the net fits.
# - Modules can update at random times (`p_update`); each SG model learns whenever the
#   module above it does.
# - CNNs decouple the same way: the SG models become small convolutions that map a
#   feature map (and the label) to a map of the same shape.
#
# The paper goes on to recurrent nets (a DNI at the truncation boundary of BPTT) and to
# unlocking the forward pass too (synthetic inputs); see the other chapters.
#
# ## Optional: a longer CNN run
#
# Off by default: set `FULL = True` at the top (or run with `MINIDNI_TUTORIAL_FULL=1`).
# The CNN of section 6 for 1800 steps (about two epochs) with Bprop, DNI and cDNI,
# evaluated along the way: about 10 minutes on a laptop.

# %%
if FULL:
    full_steps = 12 if FAST else 1800
    full_curves = {}
    for method in ("bprop", "dni", "cdni"):
        print(f"== CNN {method}, {full_steps} steps")
        net = build_cnn(method, (1, 28, 28), CNN_CHANNELS, RNG(0), lr=1e-3, sg_lr=1e-3)
        full_curves[method] = fit(
            net, maps_train, maps_test, full_steps, RNG(1), 64, full_steps // 6, log=print
        )
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for method, h in full_curves.items():
        percent = [100 * e for e in h.test_error]
        ax.plot(h.steps, percent, marker=".", color=colors[method], label=method)
    ax.set(xlabel="step", ylabel="MNIST test error (%)", yscale="log", title="CNN, every layer")
    ax.legend(fontsize=8)
    show(fig, "02_cnn_full")
else:
    print("skipped: set FULL = True (or MINIDNI_TUTORIAL_FULL=1) to run it")
