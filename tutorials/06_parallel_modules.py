# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Chapter 6: Running decoupled modules in parallel
#
# Chapters 2 and 4 *simulated* unlocked modules in one process: every module still ran
# one after the other, so nothing got faster. The point of DNI (Jaderberg et al. 2017,
# section 1) is that an unlocked module need not wait, so modules can run *at the same
# time* on different workers. This chapter puts each module on its own process with MPI
# (`minidni.parallel.pipeline`, run by `mpiexec -n K minidni parallel`) and asks three questions:
#
# 1. what does each process do on a step, and what does it wait for?
# 2. is the concurrent run the same computation as a simulation we already trust?
# 3. how fast is it, and what bounds the speed?
#
# You need the `mpi` extra (`pip install -e '.[mpi]'`: mpi4py and the `mpich` wheel,
# no system MPI); without it the MPI cells print a note and the rest still runs.
#
# Run time: a few seconds on a laptop (measured: 7 CPU seconds with one BLAS thread,
# `OMP_NUM_THREADS=1`, on a 2-core machine, the 2-rank run included).

# %%
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from minidni import backend
from minidni.losses import softmax_cross_entropy
from minidni.optim import Adam
from minidni.parallel import pipeline
from minidni.plots.tutorial import show
from minidni.train import Dataset

FAST = os.environ.get("MINIDNI_TUTORIAL_FAST") == "1"
ROOT = Path(pipeline.__file__).resolve().parents[2]
MPIEXEC = shutil.which("mpiexec") or str(Path(sys.executable).parent / "mpiexec")
HAVE_MPI = importlib.util.find_spec("mpi4py") is not None and Path(MPIEXEC).exists()
print("mpi extra installed:", HAVE_MPI)

# %% [markdown]
# ## From one process to a pipeline
#
# The net of the `quick` profile is an MNIST MLP cut into K = 2 modules,
# `784-480-64 | 64-544-544-10` (Linear + ReLU; the last layer gives the logits). MPI
# counts ranks from 0, the paper counts modules from 1: rank 0 runs `f_1` (output
# `h_1`), rank 1 runs `f_2`. Rank 1 also owns the SG model of the boundary before it,
# `M_2`, which predicts `delta_hat_1 = M_2(h_1, c)` for the activations it receives: the
# SG model lives where its target, `f_2`'s input gradient, is computed.
#
# One step t, DNI / cDNI:
#
# ```
# rank 0:  forward h_1(t) = f_1(x_t) --h_1(t), labels--> rank 1;
#          backprop delta_hat_1(t-k) (arrived earlier), update f_1
# rank 1:  receive h_1(t); delta_hat_1(t) = M_2(h_1(t), c) --> back to rank 0 at once;
#          forward f_2, loss, backprop the true gradient, update f_2; M_2 learns from
#          the input gradient (its bootstrapped target)
# ```
#
# Rank 0 never waits for rank 1's backward pass: it uses the synthetic gradient of an
# *earlier* step (k steps stale) and moves on. So while rank 1 works on step t, rank 0
# already works on step t+1: a **pipeline**. Locked backprop across the same two ranks
# (`--mode bprop`) has rank 0 wait for the true `delta_1(t)` every step, so the ranks
# take turns and nothing overlaps.
#
# Complete unlock (`--mode unlock`) adds a synthetic-input model `I_2(x)` on rank 1:
# `f_2` runs on `I_2(x)`, and the `h_1` that arrives is `M_2`'s input and `I_2`'s
# target, *what rank 0 actually sent*. (The simulation in chapter 4 trained `I_i` on the
# real chain's `h_{i-1}` instead, which needs a locked forward pass; `UnlockedNet(...,
# input_targets="sent")` is the concurrent version. For two modules they coincide.)
#
# ## What bounds the speed
#
# A pipeline's throughput is set by its slowest rank. Time each rank's work on a step in
# this one process, one after the other: rank 0 is `f_1` forward and backward plus
# Adam; rank 1 is `f_2` plus the loss plus the SG model's prediction and update.

# %%
config = {  # the net and settings of `minidni parallel --profile quick`
    "layout": [[784, 480, 64], [64, 544, 544, 10]],  # f_1 | f_2: the widths of each module
    "batch_size": 256,
    "lr": {"bprop": 1e-3, "dni": 3e-4, "cdni": 1e-3, "unlock": 1e-3},  # modules, by mode
    "sg_lr": 1e-3,
    "sg_hidden": [],  # linear SG models
    "input_hidden": [],  # linear synthetic-input models (unlock)
    "input_lr": 1e-3,
    "steps": 1000,
    "eval_every": 100,  # steps between two points of the learning curve
    "seed": 0,
    "staleness": 1,  # deterministic mode: every gradient is used 1 step after its forward pass
}
layout = config["layout"]
chain = pipeline.build_chain("cdni", layout, backend.RNG(0), config)
batch = config["batch_size"]
rng = np.random.default_rng(0)
x = backend.asarray(rng.random((batch, 784)).astype("float32"))
labels = backend.asarray(rng.integers(0, 10, batch))
c = backend.one_hot(labels, 10)
f_1, f_2, M_2 = chain.modules[0], chain.modules[1], chain.sgs[0]
opt_1, opt_2 = Adam(f_1.parameters()), Adam(f_2.parameters())
h_1, _ = f_1.forward(x)


def rank0_work():
    h, cache = f_1.forward(x)
    f_1.zero_grad()
    f_1.backward(h / batch, cache)  # any delta of the right shape costs the same
    opt_1.step()


def rank1_work(with_sg=True):
    if with_sg:
        delta_hat, sg_cache = M_2.predict(h_1, c)
    out, cache = f_2.forward(h_1)
    _, dlogits = softmax_cross_entropy(out, labels)
    f_2.zero_grad()
    target = f_2.backward(dlogits, cache) * batch
    opt_2.step()
    if with_sg:
        M_2.update(sg_cache, delta_hat, target)


def ms(fn, repeats=5 if FAST else 40):
    fn()  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


t0, t1, t1_module = ms(rank0_work), ms(rank1_work), ms(lambda: rank1_work(False))
print(f"rank 0: {t0:.2f} ms   rank 1: {t1:.2f} ms (module alone {t1_module:.2f} ms)")
print(f"one process, both modules in turn: {1e3 / (t0 + t1_module):.0f} steps/s")
print(f"a 2-rank pipeline at best:          {1e3 / max(t0, t1):.0f} steps/s")

fig, ax = plt.subplots(figsize=(5.5, 3.2))
parts = {
    "rank 0\n(f_1)": t0,
    "rank 1\n(f_2 + M_2)": t1,
    "one process\n(both in turn)": t0 + t1_module,
    "pipeline\n(slowest rank)": max(t0, t1),
}
ax.bar(list(parts), list(parts.values()), color=["tab:blue", "tab:blue", "gray", "tab:green"])
ax.set(ylabel="ms per step", title="where a step's time goes")
ax.tick_params(axis="x", labelsize=8)
show(fig, "06_step_times")

# %% [markdown]
# The same timings as a schedule, four steps of each (idealised: messages cost nothing
# here). Locked backprop across two ranks takes turns: rank 0 waits for rank 1's
# gradient every step, so a step costs the sum of the two. Decoupled, rank 0 moves on to
# the next batch at once and the two overlap: a step costs the slower rank's time.

# %%
fig, (ax_b, ax_d) = plt.subplots(2, 1, figsize=(8, 3.4), sharex=True)
bar = {"edgecolor": "white", "linewidth": 1.5}  # a white edge between two steps
for step in range(4):
    ax_b.broken_barh([(step * (t0 + t1), t0)], (1, 0.8), color="tab:blue", **bar)
    ax_b.broken_barh([(step * (t0 + t1) + t0, t1)], (0, 0.8), color="tab:orange", **bar)
    period = max(t0, t1)
    ax_d.broken_barh([(step * period, t0)], (1, 0.8), color="tab:blue", **bar)
    ax_d.broken_barh([(t0 + step * period, t1)], (0, 0.8), color="tab:orange", **bar)
for ax, title in ((ax_b, "bprop: the ranks take turns"), (ax_d, "dni / cdni: a pipeline")):
    ax.set(yticks=[0.4, 1.4], yticklabels=["rank 1", "rank 0"], title=title)
ax_d.set(xlabel="ms")
show(fig, "06_schedule")

# %% [markdown]
# The best a pipeline can do is `1 / max(rank times)`; one process does `1 / sum`. So
# the split must balance the ranks *including* the SG model: here the boundary is only
# 64 units wide, so the linear `M_2` is a 74 x 64 map (h and the one-hot label in),
# tiny next to the modules' 784 x 480 and 544 x 544 layers. (A linear SG model on a
# 512-wide boundary would add three 512 x 512 products a step to its rank, about 40% of
# a 784-512-512 module's work.) Messages add a little more: `h_1` and `delta_hat_1` are
# 256 x 64 floats each. The widths were chosen so that the two ranks' times above come
# out about equal; on a loaded machine these timings are noisy, so time them more than
# once.
#
# ## The concurrent run is the simulation
#
# With `--staleness k` the pipeline is deterministic: rank 0 backpropagates the gradient
# of step `t - k` at step t, exactly, blocking until it is there. That is precisely
# `UnlockedNet` with `Delayed([k, 0])` from chapter 4: same initial parameters (every
# rank builds the whole chain from one seed and keeps its part), same minibatches, same
# arithmetic. `tests/mpi/deterministic_vs_simulation.py` runs every mode for 20 steps in
# float64 on 2 ranks and compares every parameter with the one-process run; they agree
# to 1e-12 (in fact exactly). Here is the one-process side of that comparison:

# %%
tiny = {**config, "layout": [[12, 16, 8], [8, 10, 5]], "batch_size": 16, "steps": 20}
with backend.use_dtype("float64"):
    data = np.random.default_rng(0)
    toy = Dataset.from_numpy(data.normal(size=(200, 12)), data.integers(0, 5, size=200))
    for k in (1, 2):
        final = pipeline.run_single("dni", toy, {**tiny, "staleness": k}).final
        print(f"Delayed([{k}, 0]), 20 steps: first weight {final[0][0, 0]:+.12f}")

# %% [markdown]
# ## Running it
#
# `mpiexec -n 2 minidni parallel --profile quick --out results` runs the four modes in
# turn on 2 ranks (1000 steps each) and writes
# `results/parallel.json`; the same command without `mpiexec` runs each mode's one-process
# simulation, which for `bprop` is the ordinary Bprop step: the baseline. Set one BLAS
# thread per rank (`OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1`); for the baseline, try
# 1 and 2 threads. Here, the `smoke` profile (a small net, 40 steps):

# %%
out = Path(tempfile.mkdtemp())
if HAVE_MPI:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    command = [MPIEXEC, "-n", "2", sys.executable, "-m", "minidni", "parallel"]
    command += ["--profile", "smoke", "--out", str(out), "--mode", "bprop,cdni"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    print(done.stdout + done.stderr)
    for run in json.loads((out / "parallel.json").read_text())["runs"]:
        waited = ", ".join(f"rank {r}: {w:.2f} s" for r, w in enumerate(run["rank_waited_seconds"]))
        print(f"{run['mode']:>7}: {run['steps_per_second']:.0f} steps/s; waited {waited}")
else:
    print("mpi extra not installed: pip install -e '.[mpi]' to run this cell")

# %% [markdown]
# The same numbers as a picture (when the `mpi` extra is installed): the speed of each
# mode (left) and how long each rank waited for a message (right).

# %%
fig, (ax_s, ax_w) = plt.subplots(1, 2, figsize=(9, 3.2))
if HAVE_MPI:
    smoke = json.loads((out / "parallel.json").read_text())["runs"]
    modes = [r["mode"] for r in smoke]
    ax_s.bar(modes, [r["steps_per_second"] for r in smoke], color="tab:green")
    ax_s.set(ylabel="steps / s", title="2 ranks, smoke profile")
    where = np.arange(len(modes))
    for rank, shift in ((0, -0.2), (1, 0.2)):
        waited = [r["rank_waited_seconds"][rank] for r in smoke]
        ax_w.bar(where + shift, waited, 0.4, label=f"rank {rank}")
    ax_w.set(xticks=where, xticklabels=modes, ylabel="seconds waited", title="waiting")
    ax_w.legend(fontsize=8)
else:
    for ax in (ax_s, ax_w):
        ax.text(0.5, 0.5, "mpi extra not installed", ha="center", va="center")
        ax.set_axis_off()
show(fig, "06_smoke_run")

# %% [markdown]
# `rank_waited_seconds` is the pipeline picture in numbers: in `bprop` each rank waits
# for the other on every step, and in `cdni` the ranks overlap, so the run makes more
# steps per second. The smoke net is far too small for the waiting times to show the
# picture cleanly (a step is a fraction of a millisecond of arithmetic, about the cost
# of a message, so both modes spend much of their time on messages); the `quick` net is
# sized so that parallelism pays.
#
# The measured speeds and learning curves of the `quick` profile, against one process
# with 1 and 2 BLAS threads, are in `docs/parallel.md` and
# [`figures/parallel.png`](../figures/parallel.png): test error against *wall-clock* seconds,
# the quantity that parallelism is meant to improve.
#
# ## Across machines
#
# MPI does not care where the ranks run. With the same environment on every machine and
# a hostfile listing them, `mpiexec -f hosts -n 2 minidni parallel ...` puts one module on
# each; `docs/parallel.md` has the details. Only activations, labels and gradients cross
# the network: 2 x 256 x 64 floats a step here.
