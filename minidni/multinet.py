"""Two recurrent networks at different timescales, joined by a DNI (a multi-network system).

The hierarchical two-timescale system of Jaderberg et al., ICML 2017 (section 3.2):
network A ticks every step, network B every k steps, and B learns from messages that A
sends it. As built here (what we could and could not check against the paper is in
``docs/multinet.md``):

- **A** (every step t) reads one MNIST digit x_t and the phase ``t mod k`` (one-hot):
  an encoder ``e_t = relu(x_t W_e)``, an LSTM core ``h^A_t``, a message
  ``m_t = h^A_t W_m`` to B, and its own task: at the last step of every k-step *piece*,
  the number of odd digits in that piece (classes 0..k).
- **B** ticks once per piece: tick j reads A's messages of piece j and the phase
  ``j mod k``. With ``b_reads="all"`` (the default) it reads all k messages of steps
  jk .. jk+k-1, concatenated; with ``b_reads="last"`` only the message of the piece's
  last step, the one A sends as B ticks (the paper's wiring as we recall it). B is an
  LSTM core ``h^B_j`` whose task, at the last tick of every *window* of k ticks (k^2
  steps), is the number of 3s among the window's k^2 digits (classes 0..k^2). Only the
  messages carry that information: B's task trains A through the A-to-B interface alone.

Both cores carry their state from piece to piece and window to window, for ever; the
phase inputs tell them where a count starts.

Two ways to train A from B's task (``method``):

- ``bprop`` (backpropagation, update locked): B backpropagates its loss at the end of a
  window into the messages; then A backpropagates those gradients *and* its own losses
  through the window (BPTT over ``a_unroll = k^2`` steps by default) and takes **one**
  update per window. A's update waits for B: it is update locked.
- ``dni``: a synthetic-gradient model ``delta_hat_t = M(m_t, c_t)`` (the context
  ``c_t = [h^A_t, phase]``: what A can see) sits at the interface, on every message that
  B reads. After every piece (``a_unroll = k`` steps by default) A backpropagates
  ``sg_scale * delta_hat_t`` into those messages plus its own loss, and updates at
  once: k updates per window. When B's window ends, B's true message gradients
  ``delta_t`` are M's targets (``||delta_hat_t - delta_t||^2``).

In both, B takes one update per window (BPTT over its k ticks). Units as everywhere in
minidni: ``delta = S * dL_B/dm`` for the loss averaged over the S streams, and A
backpropagates ``delta / S``. With an oracle M (``delta_hat`` = B's true ``delta``) and
the same ``a_unroll``, A's gradients are the bprop ones (tested).

Shapes (S parallel streams): x (S, T, 784) digits of T steps; labels host (S, T);
m (S, T, D_m); h^A (S, H_A); h^B (S, H_B).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import backend
from .init import zeros
from .layers import Linear, ReLU, Sequential
from .losses import softmax_cross_entropy
from .lstm import LSTM, SeqLinear
from .optim import Adam
from .synthetic import SyntheticGradient

Array = Any
METHODS = ("bprop", "dni")
B_READS = ("all", "last")  # B reads every message of its piece, or only the last one
D_X = 784


def count_targets(labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The two tasks' targets for digit labels (S, N), N a multiple of k^2.

    A: odd digits per piece of k steps, (S, N // k), in 0..k. B: 3s per window of k^2
    steps, (S, N // k^2), in 0..k^2.
    """
    s, n = labels.shape
    if n % (k * k):
        raise ValueError(f"count_targets: stream length {n} is not a multiple of k^2 = {k * k}")
    odd = (labels % 2 == 1).reshape(s, n // k, k)  # (S, pieces, k)
    three = (labels == 3).reshape(s, n // (k * k), k * k)  # (S, windows, k^2)
    return odd.sum(axis=2).astype(np.int64), three.sum(axis=2).astype(np.int64)


def chance_accuracy(n: int, p: float) -> float:
    """Accuracy of always answering the most likely count of Binomial(n, p)."""
    from math import comb

    return max(comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(n + 1))


class MultiNet:
    """Networks A and B (and, with ``method="dni"``, the SG model M) with their optimizers.

    ``k``: B ticks every k steps and counts over k ticks. ``b_reads``: ``"all"`` k
    messages per tick, or ``"last"`` one. ``a_unroll``: the steps A's BPTT spans (a
    multiple of k dividing k^2; default k^2 with bprop, k with DNI). Widths: ``d_enc``
    (encoder), ``h_a``, ``d_msg`` (message), ``h_b``. Adam with ``lr`` for A and B,
    ``sg_lr`` for M (linear with ``sg_hidden=()``, else an MLP with those hidden widths;
    zero-initialised output layer); A backpropagates ``sg_scale * delta_hat``.

    ``trace``: set it to a list to record every tick: ``("A", t0, T, m)`` for a piece of
    A's steps t0 .. t0+T-1 and its messages, ``("B", j, steps, b_input)`` for B's tick j
    reading the messages of ``steps``.
    """

    def __init__(
        self,
        k: int,
        method: str,
        rng: backend.RNG,
        *,
        d_enc: int = 64,
        h_a: int = 64,
        d_msg: int = 16,
        h_b: int = 64,
        lr: float = 1e-3,
        sg_lr: float = 1e-3,
        sg_hidden: tuple[int, ...] = (),
        sg_scale: float = 1.0,
        a_unroll: int | None = None,
        b_reads: str = "all",
    ):
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; valid ones are: {', '.join(METHODS)}")
        if b_reads not in B_READS:
            raise ValueError(
                f"MultiNet: b_reads must be one of {', '.join(B_READS)}, got {b_reads!r}"
            )
        if k < 1:
            raise ValueError(f"MultiNet: k must be >= 1, got {k}")
        a_unroll = a_unroll or (k if method == "dni" else k * k)
        if a_unroll % k or (k * k) % a_unroll:
            raise ValueError(
                f"MultiNet: a_unroll must be a multiple of k dividing k^2, got {a_unroll}"
            )
        self.k, self.method, self.a_unroll, self.sg_scale = k, method, a_unroll, sg_scale
        self.d_enc, self.d_msg, self.b_reads = d_enc, d_msg, b_reads
        self.n_read = k if b_reads == "all" else 1  # messages B reads per tick
        # network A: encoder, core, message and its own readout
        self.enc = Sequential(Linear(D_X, d_enc, rng), ReLU())
        self.lstm_a = LSTM(d_enc + k, h_a, rng)
        self.msg = SeqLinear(h_a, d_msg, rng)
        self.head_a = Linear(h_a, k + 1, rng, init="lecun")
        # network B: core over the ticks and its readout
        self.lstm_b = LSTM(self.n_read * d_msg + k, h_b, rng)
        self.head_b = Linear(h_b, k * k + 1, rng, init="lecun")
        self.opt_a = Adam(self.params_a(), lr=lr)
        self.opt_b = Adam(self.params_b(), lr=lr)
        self.M = None
        if method == "dni":
            self.M = SyntheticGradient(d_msg, rng, d_context=h_a + k, hidden=sg_hidden, lr=sg_lr)
        self.state_a = self.state_b = None
        self.steps = 0  # A's steps trained so far (per stream)
        self.last_message_grads: list[Array] = []  # B's true dL_B/dm of the last window
        self.trace: list | None = None

    def params_a(self) -> list:
        return [p for m in (self.enc, self.lstm_a, self.msg, self.head_a) for p in m.parameters()]

    def params_b(self) -> list:
        return self.lstm_b.parameters() + self.head_b.parameters()

    # ----- one piece of A, one tick of B -------------------------------------------------

    def _phase(self, s: int, phases: list[int]) -> Array:
        """One-hot phases (S, len(phases), k), the same for every stream."""
        xp = backend.namespace()
        rows = backend.asarray(np.eye(self.k, dtype=np.float32)[phases])  # (T, k)
        rows = xp.expand_dims(xp.astype(rows, backend.dtype()), axis=0)  # (1, T, k)
        return xp.broadcast_to(rows, (s, len(phases), self.k))

    def _a_piece(self, x: Array, t0: int, state: Any) -> dict:
        """A's steps t0 .. t0+T-1 (T <= k, t0 a multiple of k) from ``state``."""
        xp = backend.namespace()
        s, t_len, _ = x.shape
        if state is None:
            state = self.lstm_a.initial_state(s)
        e, enc_cache = self.enc.forward(xp.reshape(x, (s * t_len, D_X)))  # (S*T, E)
        e = xp.reshape(e, (s, t_len, self.d_enc))  # (S, T, E)
        z = xp.concat([e, self._phase(s, list(range(t_len)))], axis=2)  # (S, T, E + k)
        hs, state, lstm_cache = self.lstm_a.forward(z, state)
        m, msg_cache = self.msg.forward(hs)  # (S, T, D_m)
        piece = {
            "t0": t0,
            "hs": hs,
            "m": m,
            "state": state,
            "caches": (enc_cache, lstm_cache, msg_cache),
        }
        if t_len == self.k:  # A's own output closes every full piece
            piece["logits"], piece["head_cache"] = self.head_a.forward(hs[:, -1, :])
        if self.trace is not None:
            self.trace.append(("A", t0, t_len, m))
        return piece

    def _a_backward(self, piece: dict, dm: Array, dlogits: Array | None, dstate: Any) -> Any:
        """Backpropagate message gradients dm (S, T, D_m) and A's own logit gradient into
        A's parameters (accumulated); returns the gradient for the piece's initial state."""
        xp = backend.namespace()
        enc_cache, lstm_cache, msg_cache = piece["caches"]
        dhs = self.msg.backward(dm, msg_cache)  # (S, T, H_A)
        if dlogits is not None:
            dlast = dhs[:, -1, :] + self.head_a.backward(dlogits, piece["head_cache"])  # (S, H_A)
            dhs = xp.concat([dhs[:, :-1, :], xp.expand_dims(dlast, axis=1)], axis=1)
        dz, dstate = self.lstm_a.backward(dhs, dstate, lstm_cache)  # dz (S, T, E + k)
        s, t_len, _ = dz.shape
        self.enc.backward(xp.reshape(dz[:, :, : self.d_enc], (s * t_len, self.d_enc)), enc_cache)
        return dstate

    def _b_tick(self, m: Array, j: int, t0: int, state: Any) -> dict:
        """B's tick j on the piece's k messages m (S, k, D_m) of steps t0 .. t0+k-1: it
        reads all of them, or with ``b_reads="last"`` only the last one."""
        xp = backend.namespace()
        s = m.shape[0]
        if state is None:
            state = self.lstm_b.initial_state(s)
        read = m[:, self.k - self.n_read :, :]  # (S, n_read, D_m): the messages B reads
        flat = xp.reshape(read, (s, self.n_read * self.d_msg))  # (S, n_read*D_m), in order
        inp = xp.concat(
            [flat, self._phase(s, [j % self.k])[:, 0, :]], axis=1
        )  # (S, n_read*D_m + k)
        hs, state, cache = self.lstm_b.forward(xp.expand_dims(inp, axis=1), state)  # (S, 1, H_B)
        if self.trace is not None:
            self.trace.append(("B", j, tuple(range(t0 + self.k - self.n_read, t0 + self.k)), inp))
        return {"h": hs[:, 0, :], "state": state, "cache": cache}

    # ----- training ------------------------------------------------------------------

    def train_window(self, x: Array, labels: np.ndarray) -> dict:
        """Train on one window of k^2 steps: x (S, k^2, 784), host labels (S, k^2).

        Returns the window's losses and accuracies (A's over its k pieces, B's at the
        window's end) and, with DNI, M's loss and the sums for its R^2 / cosine.
        """
        xp = backend.namespace()
        k, s = self.k, x.shape[0]
        if tuple(x.shape) != (s, k * k, D_X) or labels.shape != (s, k * k):
            raise ValueError(
                f"MultiNet.train_window: expected x (S, {k * k}, {D_X}) and labels (S, {k * k})"
            )
        ya, yb = count_targets(labels, k)  # (S, k), (S, 1)
        pieces, ticks, chunk, stats = [], [], [], {"loss_a": 0.0, "correct_a": 0}
        for j in range(k):
            t0 = self.steps + j * k
            piece = self._a_piece(x[:, j * k : (j + 1) * k, :], t0, self.state_a)
            self.state_a = piece["state"]
            target = backend.asarray(ya[:, j])
            loss, piece["dlogits"] = softmax_cross_entropy(piece["logits"], target)
            stats["loss_a"] += backend.to_float(loss) / k
            stats["correct_a"] += int(
                np.sum(backend.to_numpy(xp.argmax(piece["logits"], axis=1)) == ya[:, j])
            )
            if self.M is not None:
                self._predict_sg(piece)
                chunk.append(piece)
                if len(chunk) * k == self.a_unroll:  # A updates now, from delta_hat
                    self._update_a(chunk, [self.sg_scale * p["delta_hat"] / s for p in chunk])
                    chunk = []
            pieces.append(piece)
            tick = self._b_tick(piece["m"], t0 // k, t0, self.state_b)
            self.state_b = tick["state"]
            ticks.append(tick)
        dms, loss_b, correct_b = self._train_b(ticks, backend.asarray(yb[:, 0]), yb[:, 0])
        stats.update(loss_b=loss_b, correct_b=correct_b, n=s)
        self.last_message_grads = dms
        if self.M is None:  # bprop: A's update waited for B's gradients
            self._update_a(pieces, dms)
        else:
            stats["sg"] = self._train_sg(pieces, dms)
        self.steps += k * k
        stats["correct_a"] /= k  # per piece, so that correct / n is an accuracy
        return stats

    def _read(self, a: Array) -> Array:
        """The steps of a piece's (S, k, D) array whose messages B reads: (S*n_read, D)."""
        xp = backend.namespace()
        s, _, d = a.shape
        return xp.reshape(a[:, self.k - self.n_read :, :], (s * self.n_read, d))

    def _predict_sg(self, piece: dict) -> None:
        """``delta_hat`` (S, k, D_m) for the piece's messages, from ``M(m_t, [h^A_t, phase])``
        on the messages B reads (zero on the others, whose true gradient is zero)."""
        xp = backend.namespace()
        s, t_len, _ = piece["m"].shape
        c = xp.concat([piece["hs"], self._phase(s, list(range(t_len)))], axis=2)  # (S, k, H_A + k)
        dhat, piece["sg_cache"] = self.M.predict(self._read(piece["m"]), self._read(c))
        piece["sg_pred"] = dhat  # (S*n_read, D_m), kept for M's update when B's targets arrive
        dhat = xp.reshape(dhat, (s, self.n_read, self.d_msg))  # (S, n_read, D_m)
        if self.n_read < t_len:  # unread messages: no gradient
            unread = zeros((s, t_len - self.n_read, self.d_msg))
            dhat = xp.concat([unread, dhat], axis=1)
        piece["delta_hat"] = dhat  # (S, k, D_m)

    def _update_a(self, pieces: list[dict], dms: list[Array]) -> None:
        """One update of A from message gradients ``dms`` (one (S, k, D_m) per piece) and
        its own losses, BPTT over ``a_unroll`` steps (the state gradient is cut between
        groups of ``a_unroll // k`` pieces)."""
        for p in self.params_a():
            p.grad = backend.namespace().zeros_like(p.value)
        per = self.a_unroll // self.k
        dstate = None
        for i in reversed(range(len(pieces))):
            if (i + 1) % per == 0:
                dstate = None  # the end of a BPTT span: nothing flows in from later steps
            dstate = self._a_backward(pieces[i], dms[i], pieces[i]["dlogits"], dstate)
        self.opt_a.step()

    def _train_b(self, ticks: list[dict], target: Array, host_target: np.ndarray) -> tuple:
        """B's loss at the window's last tick, BPTT over its k ticks, one update. Returns
        the true message gradients dL_B/dm, one (S, k, D_m) per tick (zero for messages B
        does not read), the loss and the number of correct counts."""
        xp = backend.namespace()
        s, k, r = target.shape[0], self.k, self.n_read
        logits, head_cache = self.head_b.forward(ticks[-1]["h"])
        loss, dlogits = softmax_cross_entropy(logits, target)
        correct = int(np.sum(backend.to_numpy(xp.argmax(logits, axis=1)) == host_target))
        for p in self.params_b():
            p.grad = xp.zeros_like(p.value)
        dh = xp.expand_dims(self.head_b.backward(dlogits, head_cache), axis=1)  # (S, 1, H_B)
        no_output = zeros(tuple(dh.shape))
        unread = zeros((s, k - r, self.d_msg)) if r < k else None
        dms: list[Array] = [None] * k
        dstate = None  # B's BPTT spans its window
        for j in reversed(range(k)):
            dx, dstate = self.lstm_b.backward(
                dh if j == k - 1 else no_output, dstate, ticks[j]["cache"]
            )
            dm = xp.reshape(dx[:, 0, : r * self.d_msg], (s, r, self.d_msg))  # (S, n_read, D_m)
            dms[j] = dm if unread is None else xp.concat([unread, dm], axis=1)  # (S, k, D_m)
        self.opt_b.step()
        return dms, backend.to_float(loss), correct

    def _train_sg(self, pieces: list[dict], dms: list[Array]) -> dict:
        """M learns ``||delta_hat_t - delta_t||^2`` with ``delta_t = S * dL_B/dm_t``, B's
        true gradients of the messages it read, which arrive only now. Returns sums for
        R^2 and cosine."""
        xp = backend.namespace()
        # the sums minidni.sg_quality.sg_quality turns into R^2 and the cosine
        sums = dict.fromkeys(("error", "variance", "power", "dot", "pred_sq", "target_sq"), 0.0)
        for piece, dm in zip(pieces, dms):
            target = self._read(dm * dm.shape[0])  # (S*n_read, D_m): delta per example
            p = piece["sg_pred"]
            sums["error"] += self.M.update(piece["sg_cache"], p, target)
            spread = xp.sum((target - xp.mean(target, axis=0, keepdims=True)) ** 2, axis=1)
            sums["variance"] += backend.to_float(xp.mean(spread))
            sums["power"] += backend.to_float(xp.mean(xp.sum(target * target, axis=1)))
            sums["dot"] += backend.to_float(xp.sum(p * target))
            sums["pred_sq"] += backend.to_float(xp.sum(p * p))
            sums["target_sq"] += backend.to_float(xp.sum(target * target))
        return sums

    # ----- evaluation ----------------------------------------------------------------

    def forward_stream(self, x: Array) -> tuple[list[Array], list[Array]]:
        """Run both networks over a stream x (S, N, 784) from zero states, no training.

        A runs every step (pieces of k, the last one possibly shorter); B ticks after
        every full piece. Returns A's logits (S, k+1) per full piece and B's logits
        (S, k^2+1) per full window.
        """
        k, n = self.k, x.shape[1]
        state_a = state_b = None
        out_a, out_b = [], []
        for t0 in range(0, n, k):
            piece = self._a_piece(x[:, t0 : min(t0 + k, n), :], t0, state_a)
            state_a = piece["state"]
            if "logits" not in piece:
                break  # a short last piece: B does not tick
            out_a.append(piece["logits"])
            tick = self._b_tick(piece["m"], t0 // k, t0, state_b)
            state_b = tick["state"]
            if (t0 // k) % k == k - 1:
                out_b.append(self.head_b.forward(tick["h"])[0])
        return out_a, out_b

    def evaluate(self, x: Array, labels: np.ndarray) -> tuple[float, float]:
        """Accuracy of A's and B's counts on a stream x (S, N, 784), N a multiple of k^2."""
        ya, yb = count_targets(labels, self.k)
        out_a, out_b = self.forward_stream(x)
        xp = backend.namespace()
        acc_a = np.mean(
            [backend.to_numpy(xp.argmax(o, axis=1)) == ya[:, i] for i, o in enumerate(out_a)]
        )
        acc_b = np.mean(
            [backend.to_numpy(xp.argmax(o, axis=1)) == yb[:, i] for i, o in enumerate(out_b)]
        )
        return float(acc_a), float(acc_b)


def thresholds(k: int, y_train: np.ndarray, reach: float) -> dict[str, float]:
    """Chance accuracies of both counts and the accuracies that count as reached."""
    chance_a = chance_accuracy(k, float(np.mean(y_train % 2 == 1)))
    chance_b = chance_accuracy(k * k, float(np.mean(y_train == 3)))
    return {
        "chance_a": round(chance_a, 4),
        "chance_b": round(chance_b, 4),
        "threshold_a": round(chance_a + reach * (1 - chance_a), 4),
        "threshold_b": round(chance_b + reach * (1 - chance_b), 4),
    }
