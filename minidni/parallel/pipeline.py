"""Decoupled modules on their own processes: one module per MPI rank, really concurrent.

Jaderberg et al. 2017 motivate DNI by parallelism: a module that updates from a synthetic
gradient need not wait for the rest of the network. :mod:`minidni.unlock` *simulates*
that in one process; here each module runs on its own rank (mpi4py) and the ranks only
exchange messages (:mod:`minidni.parallel.messages`).

Placement, for K ranks and K modules. MPI ranks count from 0, the paper's modules from
1: rank r runs module ``f_{r+1}``, whose input is ``h_r`` (``h_0 = x``) and output
``h_{r+1}``.

- rank r owns ``f_{r+1}`` and its Adam optimizer;
- rank r > 0 also owns the SG model of the boundary *before* it, ``M_{r+1}``, which
  predicts ``delta_hat_r = M_{r+1}(h_r, c)`` for the activations it receives, and
  (complete unlock) the synthetic-input model ``I_{r+1}(x)`` of its own input. So
  ``M_{r+1}`` is trained where its target is computed (``f_{r+1}``'s backward pass) and
  never waits for it;
- every rank draws the same minibatches (same seed); labels also travel with the
  activations, and rank 0 (and in complete unlock every rank) reads x.

One step t of rank r, by ``mode``:

- ``bprop`` (backprop across ranks, update locked): forward, send ``h_{r+1}`` on, wait for the true
  ``delta_{r+1}`` from rank r+1, backpropagate, send ``delta_r`` back, update. Every rank
  waits for every later one: nothing runs in parallel but the messages.
- ``dni`` / ``cdni``: receive ``h_r`` (rank r > 0), predict ``delta_hat_r`` and send it
  back at once; forward, send ``h_{r+1}`` on; backpropagate the gradient for one of the
  module's earlier forward passes (the last rank: the true loss gradient of this step)
  and update; the input gradient that falls out is ``M_{r+1}``'s (bootstrapped) target.
  While rank r+1 works on step t, rank r already works on step t+1: a pipeline.
- ``unlock`` (complete unlock, cDNI + synthetic inputs): as cdni, but module r > 0 runs
  on ``I_{r+1}(x)`` instead of the received ``h_r``; the received ``h_tilde_r`` (what
  ``f_r`` computed on *its* input) is ``M_{r+1}``'s input and ``I_{r+1}``'s target
  (:class:`~minidni.unlock.UnlockedNet` with ``input_targets="sent"``).

When does module r backpropagate the gradient of its step s? With ``staleness=k``
(deterministic mode), at step ``s + k`` exactly (blocking until that message is there),
so the run equals the one-process simulation :class:`~minidni.unlock.UnlockedNet` with
``Delayed([k, ..., k, 0])`` bit for bit up to float rounding (tests/test_pipeline.py).
With ``staleness=None`` (free running) a rank consumes every gradient that has arrived
after each forward pass and waits only when more than ``max_in_flight`` of its forward
passes are still waiting: the staleness is whatever the pipeline holds.

Modules are Linear + ReLU stacks without BatchNorm: BatchNorm's running statistics
would need the real forward chain, which a completely unlocked pipeline never runs.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import backend
from ..decoupled import DecoupledNet
from ..layers import Linear, Module, ReLU, Sequential
from ..losses import softmax_cross_entropy
from ..optim import Adam
from ..schedules import Delayed
from ..synthetic import SyntheticGradient, SyntheticInput
from ..train import Dataset, batches, evaluate
from ..unlock import UnlockedNet
from .messages import FORWARD, GRADIENT, RESULT, Link

Array = Any
MODES = ("bprop", "dni", "cdni", "unlock")


def stage_module(sizes: Sequence[int], rng: backend.RNG, last: bool) -> Module:
    """Linear + ReLU layers ``sizes = [D_in, ..., D_out]``; the last module ends with a
    bare Linear (the logits)."""
    layers: list[Module] = []
    for i, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(Linear(d_in, d_out, rng))
        if not (last and i == len(sizes) - 2):
            layers.append(ReLU())
    return Sequential(*layers)


@dataclass
class Chain:
    """The whole network: K modules, the K-1 SG models ``sgs[r-1] = M_{r+1}`` and the
    synthetic-input models ``inputs[r] = I_{r+1}`` (``inputs[0] = None``; all None unless
    complete unlock). Every rank builds all of it from the same seed and keeps its part,
    so a pipeline and a one-process simulation start from the same parameters."""

    modules: list[Module]
    sgs: list[SyntheticGradient] | None
    inputs: list[SyntheticInput | None]


def build_chain(
    mode: str, layout: Sequence[Sequence[int]], rng: backend.RNG, config: dict
) -> Chain:
    """Modules from ``layout`` (one size list per module), then the SG models (a context of
    ``n_classes`` for cdni and unlock), then the synthetic-input models (unlock)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; valid modes are: {', '.join(MODES)}")
    for a, b in zip(layout[:-1], layout[1:]):
        if a[-1] != b[0]:
            raise ValueError(f"layout: module output {a[-1]} does not match next input {b[0]}")
    k = len(layout)
    modules = [stage_module(sizes, rng, last=r == k - 1) for r, sizes in enumerate(layout)]
    sgs, inputs = None, [None] * k
    n_classes = layout[-1][-1]
    if mode != "bprop":
        d_context = 0 if mode == "dni" else n_classes
        sgs = [
            SyntheticGradient(
                sizes[-1], rng, d_context, tuple(config["sg_hidden"]), config["sg_lr"]
            )
            for sizes in layout[:-1]
        ]
    if mode == "unlock":
        hidden, d_x = tuple(config["input_hidden"]), layout[0][0]
        inputs = [None] + [
            SyntheticInput(d_x, sizes[0], rng, hidden, config["input_lr"]) for sizes in layout[1:]
        ]
    return Chain(modules, sgs, inputs)


def module_lr(mode: str, config: dict) -> float:
    """The modules' Adam learning rate: ``config["lr"]``, one number or one per mode."""
    lr = config["lr"]
    return lr[mode] if isinstance(lr, dict) else lr


def delays(k: int, n: int) -> list[int]:
    """Staleness per module: ``k`` for each module that waits for a gradient message, 0
    for the last, which computes its true gradient itself."""
    return [k] * (n - 1) + [0]


def simulated(mode: str, chain: Chain, config: dict) -> DecoupledNet:
    """The one-process net that a deterministic pipeline with ``config["staleness"]``
    equals: plain backprop for bprop, else UnlockedNet with ``Delayed``."""
    n_classes = config["layout"][-1][-1]
    if mode == "bprop":
        return DecoupledNet(chain.modules, None, module_lr(mode, config), n_classes)
    k = config["staleness"] if config["staleness"] is not None else 1
    inputs = chain.inputs if mode == "unlock" else None
    schedule = Delayed(delays(k, len(chain.modules)))
    return UnlockedNet(
        chain.modules,
        chain.sgs,
        inputs,
        module_lr(mode, config),
        n_classes,
        schedule,
        input_targets="sent",
    )


@dataclass
class Pending:
    """A forward pass of module r waiting for its gradient: its step and cache, and
    ``M_{r+1}``'s prediction for that step's input (which the backward's target trains)."""

    step: int
    cache: Any
    sg: tuple[Array, Any] | None


@dataclass
class Record:
    """What one rank measured: parameter snapshots and times at the evaluation steps,
    its wall and CPU seconds (all threads of the process), the seconds it spent waiting
    for messages, the staleness of each gradient it used,
    (last rank) the training loss, and at the end every parameter this rank trains (module,
    SG model, synthetic-input model: :func:`trained_by`)."""

    steps: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    params: list[list[np.ndarray]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    staleness: list[int] = field(default_factory=list)
    final: list[np.ndarray] = field(default_factory=list)
    waited: float = 0.0
    wall: float = 0.0
    cpu: float = 0.0


def parameters(module: Module) -> list[np.ndarray]:
    """Host copies of a module's parameter values."""
    return [backend.to_numpy(p.value).copy() for p in module.parameters()]


def trained_by(chain: Chain, r: int) -> list[Module]:
    """What rank r trains: its module, then ``M_{r+1}`` and ``I_{r+1}`` where they exist."""
    models = [chain.modules[r]]
    if chain.sgs is not None and r > 0:
        models.append(chain.sgs[r - 1].net)
    if chain.inputs[r] is not None:
        models.append(chain.inputs[r].net)
    return models


def load_parameters(module: Module, values: Sequence[np.ndarray]) -> None:
    """Set a module's parameters from host arrays (the inverse of :func:`parameters`)."""
    for p, v in zip(module.parameters(), values):
        p.value = backend.asarray(v)


class Rank:
    """Rank r's part of the pipeline and its step (see the module docstring)."""

    def __init__(self, link: Link, mode: str, chain: Chain, config: dict):
        self.link, self.mode = link, mode
        self.r, self.n = link.rank, link.size
        self.module = chain.modules[self.r]
        self.opt = Adam(self.module.parameters(), lr=module_lr(mode, config))
        self.sg = chain.sgs[self.r - 1] if chain.sgs is not None and self.r > 0 else None
        self.inp = chain.inputs[self.r]
        self.n_classes = config["layout"][-1][-1]
        self.staleness = config["staleness"]
        self.max_in_flight = config.get("max_in_flight", 2)
        self.queue: deque[Pending] = deque()
        self.record = Record()

    def _backward(self, delta: Array, cache: Any, batch: int, send_at: int | None) -> Array:
        """Backpropagate ``delta`` (per-example units) through the module and update it;
        with ``send_at`` the input gradient goes to rank r-1 *before* the update (bprop)."""
        self.module.zero_grad()
        d_in = self.module.backward(delta / batch, cache) * batch
        if send_at is not None and self.r > 0:
            self.link.send(self.r - 1, GRADIENT, (send_at, d_in))
        self.opt.step()
        return d_in

    def _learn(self, pending: Pending, delta: Array, batch: int, t: int) -> None:
        """Module r backpropagates ``delta`` for its forward pass ``pending``; the input
        gradient trains ``M_{r+1}``'s prediction of that step."""
        target = self._backward(delta, pending.cache, batch, None)
        if self.sg is not None:
            delta_hat, cache = pending.sg
            self.sg.update(cache, delta_hat, target)
        self.record.staleness.append(t - pending.step)

    def step(self, t: int, x: Array | None, labels: Array) -> None:
        """Rank r's step t: x is the batch input where this rank reads it (rank 0, unlock)."""
        link, r, n = self.link, self.r, self.n
        batch = int(labels.shape[0])
        sg_pred = None
        if r == 0:
            inp = x
        else:
            if self.mode == "unlock":
                inp_hat, inp_cache = self.inp.predict(x)  # I_{r+1}(x), no waiting
            _, h_prev, labels = link.recv(r - 1, FORWARD, t)
            h_prev = backend.asarray(h_prev)
            labels = backend.asarray(labels)
            if self.sg is not None:
                c = backend.one_hot(labels, self.n_classes) if self.sg.d_context else None
                sg_pred = self.sg.predict(h_prev, c)  # delta_hat_r = M_{r+1}(h_r, c)
                link.send(r - 1, GRADIENT, (t, backend.to_numpy(sg_pred[0])))
            if self.mode == "unlock":
                self.inp.update(inp_cache, inp_hat, h_prev)  # I_{r+1} learns what f_r sent
                inp = inp_hat
            else:
                inp = h_prev
        out, cache = self.module.forward(inp)
        if r < n - 1:
            link.send(r + 1, FORWARD, (t, backend.to_numpy(out), backend.to_numpy(labels)))

        if r == n - 1:  # the last module computes its true gradient itself
            loss, dlogits = softmax_cross_entropy(out, labels)
            self.record.losses.append(backend.to_float(loss))
            if self.mode == "bprop":
                self._backward(dlogits * batch, cache, batch, send_at=t)
            else:
                self._learn(Pending(t, cache, sg_pred), dlogits * batch, batch, t)
            return
        if self.mode == "bprop":
            _, delta = link.recv(r + 1, GRADIENT, t)
            self._backward(backend.asarray(delta), cache, batch, send_at=t)
            return
        self.queue.append(Pending(t, cache, sg_pred))
        if self.staleness is not None:  # deterministic: the gradient of step t - k, now
            if t >= self.staleness:
                self._consume(t)
            return
        # free running: whatever has arrived; wait only when too much is in flight
        while self.queue and (link.ready(r + 1, GRADIENT) or len(self.queue) > self.max_in_flight):
            self._consume(t)

    def _consume(self, t: int) -> None:
        """Receive the gradient for the oldest waiting forward pass and learn from it."""
        pending = self.queue.popleft()
        _, delta_hat = self.link.recv(self.r + 1, GRADIENT, pending.step)
        self._learn(pending, backend.asarray(delta_hat), int(delta_hat.shape[0]), t)

    def finish(self) -> None:
        """Drop the gradients still on their way (the simulation never applies them
        either) and wait for the sends to complete."""
        if self.mode != "bprop" and self.r < self.n - 1:
            self.link.drain(self.r + 1, GRADIENT, len(self.queue))
            self.queue.clear()
        self.link.close()


def _snapshot(record: Record, step: int, start: float, modules: Sequence[Module]) -> None:
    record.steps.append(step)
    record.seconds.append(time.perf_counter() - start)
    record.params.append([parameters(m) for m in modules])


def minibatches(train: Dataset, config: dict) -> Iterator[tuple[Array, Array]]:
    """The run's minibatches (x, labels): the same on every rank for the same seed."""
    rng = backend.RNG(config["seed"] + 1)
    for index in batches(len(train), config["batch_size"], rng):
        yield train.take(index)


def eval_steps(config: dict) -> set[int]:
    """Steps after which parameters are snapshotted for the learning curve."""
    steps, every = config["steps"], config["eval_every"]
    return {s for s in range(every, steps + 1, every)} | {steps}


def run_rank(comm: Any, mode: str, train: Dataset, config: dict) -> Record:
    """Run this rank's module of a K-rank pipeline for ``config["steps"]`` steps.

    ``comm`` is an mpi4py communicator of K = ``len(config["layout"])`` ranks. Returns
    this rank's :class:`Record` (rank 0 collects the others' with :func:`gather`).
    """
    link = Link(comm, timeout=config.get("timeout", 60.0))
    if link.size != len(config["layout"]):
        raise ValueError(f"{link.size} ranks for {len(config['layout'])} modules; need one each")
    chain = build_chain(mode, config["layout"], backend.RNG(config["seed"]), config)
    rank = Rank(link, mode, chain, config)
    needs_x = link.rank == 0 or mode == "unlock"
    snap_at = eval_steps(config)
    data = minibatches(train, config)
    link.barrier()
    start, cpu = time.perf_counter(), time.process_time()
    for t in range(config["steps"]):
        x, labels = next(data)
        rank.step(t, x if needs_x else None, labels)
        if t + 1 in snap_at:
            _snapshot(rank.record, t + 1, start, [rank.module])
    rank.finish()
    rank.record.wall = time.perf_counter() - start
    rank.record.cpu = time.process_time() - cpu
    rank.record.waited = link.waited
    rank.record.final = [v for m in trained_by(chain, link.rank) for v in parameters(m)]
    return rank.record


def run_single(mode: str, train: Dataset, config: dict) -> Record:
    """The same run in one process (:func:`simulated`): the baseline and the reference."""
    chain = build_chain(mode, config["layout"], backend.RNG(config["seed"]), config)
    net = simulated(mode, chain, config)
    record = Record()
    snap_at = eval_steps(config)
    data = minibatches(train, config)
    start, cpu = time.perf_counter(), time.process_time()
    for t in range(config["steps"]):
        x, labels = next(data)
        record.losses.append(net.step(x, labels)["loss"])
        if t + 1 in snap_at:
            _snapshot(record, t + 1, start, chain.modules)
    record.wall = time.perf_counter() - start
    record.cpu = time.process_time() - cpu
    models = [m for r in range(len(chain.modules)) for m in trained_by(chain, r)]
    record.final = [v for m in models for v in parameters(m)]
    return record


def gather(comm: Any, record: Record, timeout: float) -> list[Record] | None:
    """Every rank's record on rank 0 (None elsewhere)."""
    link = Link(comm, timeout=timeout)
    if link.rank > 0:
        link.send(0, RESULT, (0, record))
        link.close()
        return None
    return [record] + [link.recv(r, RESULT)[1] for r in range(1, link.size)]


def merge(records: Sequence[Record]) -> Record:
    """One record for the whole chain: per snapshot every module's parameters and the
    latest rank's time; the last rank's losses; the summed waiting."""
    merged = Record(
        steps=list(records[0].steps),
        seconds=[max(s) for s in zip(*(r.seconds for r in records))],
        params=[[p for r in records for p in r.params[i]] for i in range(len(records[0].steps))],
        losses=records[-1].losses,
        staleness=[s for r in records[:-1] for s in r.staleness],
        final=[v for r in records for v in r.final],
        wall=max(r.wall for r in records),
    )
    return merged


def curve_errors(record: Record, layout: Sequence[Sequence[int]], test: Dataset) -> list[float]:
    """Test error of the real chain at every snapshot of ``record``."""
    modules = [
        stage_module(s, backend.RNG(0), last=r == len(layout) - 1) for r, s in enumerate(layout)
    ]
    net = DecoupledNet(modules, None)
    errors = []
    for params in record.params:
        for m, values in zip(modules, params):
            load_parameters(m, values)
        errors.append(evaluate(net.predict, test))
    return errors
