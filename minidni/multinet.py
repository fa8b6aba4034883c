"""Two recurrent networks at different timescales, joined by a DNI (a multi-network system).

The last experiment of Jaderberg et al. 2017 (section 3.3, figure 7; details in the
supplementary material): network A ticks every step, network B every k steps, and B
learns from messages that A sends it. As built here (what we could and could not check
against the paper is in ``docs/multinet.md``):

- **A** (every step t) reads one MNIST digit x_t and the phase ``t mod k`` (one-hot):
  an encoder ``e_t = relu(x_t W_e)``, an LSTM core ``h^A_t``, a message
  ``m_t = h^A_t W_m`` to B, and its own task: at the last step of every k-step *piece*,
  the number of odd digits in that piece (classes 0..k).
- **B** (every k steps: tick j reads the k messages of steps jk .. jk+k-1,
  concatenated, and the phase ``j mod k``) is an LSTM core ``h^B_j`` whose task, at the
  last tick of every *window* of k ticks (k^2 steps), is the number of 3s among the
  window's k^2 digits (classes 0..k^2). Only the messages carry that information: B's
  task trains A through the A-to-B interface alone.

Both cores carry their state from piece to piece and window to window, for ever; the
phase inputs tell them where a count starts.

Two ways to train A from B's task (``method``):

- ``locked``: B backpropagates its loss at the end of a window into the k^2 messages;
  then A backpropagates those gradients *and* its own losses through the window (BPTT
  over ``a_unroll = k^2`` steps by default) and takes **one** update per window. A's
  update waits for B: it is update locked.
- ``dni``: a synthetic-gradient model ``delta_hat_t = M(m_t, c_t)`` (the context
  ``c_t = [h^A_t, phase]``: what A can see) sits at the interface. After every piece
  (``a_unroll = k`` steps by default) A backpropagates ``sg_scale * delta_hat_t`` into
  its messages plus its own loss, and updates at once: k updates per window. When B's
  window ends, B's true message gradients ``delta_t`` are M's targets
  (``||delta_hat_t - delta_t||^2``).

In both, B takes one update per window (BPTT over its k ticks). Units as everywhere in
minidni: ``delta = B_batch * dL_B/dm`` for the batch-mean loss, and A backpropagates
``delta / B_batch``. With an oracle M (``delta_hat`` = B's true ``delta``) and the same
``a_unroll``, A's gradients are the locked ones (tested).

Shapes: x (B, T, 784) digits of T steps for B parallel streams; labels host (B, T);
m (B, T, D_m); h^A (B, H_A); h^B (B, H_B).
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
METHODS = ("locked", "dni")
D_X = 784


def count_targets(labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The two tasks' targets for digit labels (B, N), N a multiple of k^2.

    A: odd digits per piece of k steps, (B, N // k), in 0..k. B: 3s per window of k^2
    steps, (B, N // k^2), in 0..k^2.
    """
    b, n = labels.shape
    if n % (k * k):
        raise ValueError(f"count_targets: stream length {n} is not a multiple of k^2 = {k * k}")
    odd = (labels % 2 == 1).reshape(b, n // k, k)  # (B, pieces, k)
    three = (labels == 3).reshape(b, n // (k * k), k * k)  # (B, windows, k^2)
    return odd.sum(axis=2).astype(np.int64), three.sum(axis=2).astype(np.int64)


def chance_accuracy(n: int, p: float) -> float:
    """Accuracy of always answering the most likely count of Binomial(n, p)."""
    from math import comb

    return max(comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(n + 1))


class MultiNet:
    """Networks A and B (and, with ``method="dni"``, the SG model M) with their optimizers.

    ``k``: B ticks every k steps and counts over k ticks. ``a_unroll``: the steps A's
    BPTT spans (a multiple of k dividing k^2; default k^2 locked, k with DNI). Widths:
    ``d_enc`` (encoder), ``h_a``, ``d_msg`` (message), ``h_b``. Adam with ``lr`` for A and
    B, ``sg_lr`` for M (linear with ``sg_hidden=()``, zero-initialised output layer).

    ``trace``: set it to a list to record every tick: ``("A", t0, T, m)`` for a piece of
    A's steps t0 .. t0+T-1 and its messages, ``("B", j, steps, b_input)`` for B's tick j.
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
    ):
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; valid ones are: {', '.join(METHODS)}")
        if k < 1:
            raise ValueError(f"MultiNet: k must be >= 1, got {k}")
        a_unroll = a_unroll or (k if method == "dni" else k * k)
        if a_unroll % k or (k * k) % a_unroll:
            raise ValueError(
                f"MultiNet: a_unroll must be a multiple of k dividing k^2, got {a_unroll}"
            )
        self.k, self.method, self.a_unroll, self.sg_scale = k, method, a_unroll, sg_scale
        self.d_enc, self.d_msg = d_enc, d_msg
        # network A: encoder, core, message and its own readout
        self.enc = Sequential(Linear(D_X, d_enc, rng), ReLU())
        self.lstm_a = LSTM(d_enc + k, h_a, rng)
        self.msg = SeqLinear(h_a, d_msg, rng)
        self.head_a = Linear(h_a, k + 1, rng, init="lecun")
        # network B: core over the ticks and its readout
        self.lstm_b = LSTM(k * d_msg + k, h_b, rng)
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

    def _phase(self, b: int, phases: list[int]) -> Array:
        """One-hot phases (B, len(phases), k), the same for every stream."""
        xp = backend.namespace()
        rows = backend.asarray(np.eye(self.k, dtype=np.float32)[phases])  # (T, k)
        rows = xp.expand_dims(xp.astype(rows, backend.dtype()), axis=0)  # (1, T, k)
        return xp.broadcast_to(rows, (b, len(phases), self.k))

    def _a_piece(self, x: Array, t0: int, state: Any) -> dict:
        """A's steps t0 .. t0+T-1 (T <= k, t0 a multiple of k) from ``state``."""
        xp = backend.namespace()
        b, t_len, _ = x.shape
        if state is None:
            state = self.lstm_a.initial_state(b)
        e, enc_cache = self.enc.forward(xp.reshape(x, (b * t_len, D_X)))  # (B*T, E)
        e = xp.reshape(e, (b, t_len, self.d_enc))  # (B, T, E)
        z = xp.concat([e, self._phase(b, list(range(t_len)))], axis=2)  # (B, T, E + k)
        hs, state, lstm_cache = self.lstm_a.forward(z, state)
        m, msg_cache = self.msg.forward(hs)  # (B, T, D_m)
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
        """Backpropagate message gradients dm (B, T, D_m) and A's own logit gradient into
        A's parameters (accumulated); returns the gradient for the piece's initial state."""
        xp = backend.namespace()
        enc_cache, lstm_cache, msg_cache = piece["caches"]
        dhs = self.msg.backward(dm, msg_cache)  # (B, T, H_A)
        if dlogits is not None:
            dlast = dhs[:, -1, :] + self.head_a.backward(dlogits, piece["head_cache"])  # (B, H_A)
            dhs = xp.concat([dhs[:, :-1, :], xp.expand_dims(dlast, axis=1)], axis=1)
        dz, dstate = self.lstm_a.backward(dhs, dstate, lstm_cache)  # dz (B, T, E + k)
        b, t_len, _ = dz.shape
        self.enc.backward(xp.reshape(dz[:, :, : self.d_enc], (b * t_len, self.d_enc)), enc_cache)
        return dstate

    def _b_tick(self, m: Array, j: int, t0: int, state: Any) -> dict:
        """B's tick j: reads the k messages m (B, k, D_m) of steps t0 .. t0+k-1."""
        xp = backend.namespace()
        b = m.shape[0]
        if state is None:
            state = self.lstm_b.initial_state(b)
        flat = xp.reshape(m, (b, self.k * self.d_msg))  # (B, k*D_m): the k messages in order
        inp = xp.concat([flat, self._phase(b, [j % self.k])[:, 0, :]], axis=1)  # (B, k*D_m + k)
        hs, state, cache = self.lstm_b.forward(xp.expand_dims(inp, axis=1), state)  # (B, 1, H_B)
        if self.trace is not None:
            self.trace.append(("B", j, tuple(range(t0, t0 + self.k)), inp))
        return {"h": hs[:, 0, :], "state": state, "cache": cache}

    # ----- training ------------------------------------------------------------------

    def train_window(self, x: Array, labels: np.ndarray) -> dict:
        """Train on one window of k^2 steps: x (B, k^2, 784), host labels (B, k^2).

        Returns the window's losses and accuracies (A's over its k pieces, B's at the
        window's end) and, with DNI, M's loss and the sums for its R^2 / cosine.
        """
        xp = backend.namespace()
        k, b = self.k, x.shape[0]
        if tuple(x.shape) != (b, k * k, D_X) or labels.shape != (b, k * k):
            raise ValueError(
                f"MultiNet.train_window: expected x (B, {k * k}, {D_X}) and labels (B, {k * k})"
            )
        ya, yb = count_targets(labels, k)  # (B, k), (B, 1)
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
                    self._update_a(chunk, [self.sg_scale * p["delta_hat"] / b for p in chunk])
                    chunk = []
            pieces.append(piece)
            tick = self._b_tick(piece["m"], t0 // k, t0, self.state_b)
            self.state_b = tick["state"]
            ticks.append(tick)
        dms, loss_b, correct_b = self._train_b(ticks, backend.asarray(yb[:, 0]), yb[:, 0])
        stats.update(loss_b=loss_b, correct_b=correct_b, n=b)
        self.last_message_grads = dms
        if self.M is None:  # locked: A's update waited for B's gradients
            self._update_a(pieces, dms)
        else:
            stats["sg"] = self._train_sg(pieces, dms)
        self.steps += k * k
        stats["correct_a"] /= k  # per piece, so that correct / n is an accuracy
        return stats

    def _predict_sg(self, piece: dict) -> None:
        """``delta_hat`` (B, k, D_m) for the piece's messages, from ``M(m_t, [h^A_t, phase])``."""
        xp = backend.namespace()
        b, t_len, _ = piece["m"].shape
        m = xp.reshape(piece["m"], (b * t_len, self.d_msg))  # (B*k, D_m)
        c = xp.concat([piece["hs"], self._phase(b, list(range(t_len)))], axis=2)  # (B, k, H_A + k)
        c = xp.reshape(c, (b * t_len, c.shape[2]))  # (B*k, H_A + k)
        dhat, piece["sg_cache"] = self.M.predict(m, c)
        piece["sg_pred"] = dhat  # (B*k, D_m), kept for M's update when B's targets arrive
        piece["delta_hat"] = xp.reshape(dhat, (b, t_len, self.d_msg))  # (B, k, D_m)

    def _update_a(self, pieces: list[dict], dms: list[Array]) -> None:
        """One update of A from message gradients ``dms`` (one (B, k, D_m) per piece) and
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
        the true message gradients dL_B/dm, one (B, k, D_m) per tick, the loss and the
        number of correct counts."""
        xp = backend.namespace()
        b, k = target.shape[0], self.k
        logits, head_cache = self.head_b.forward(ticks[-1]["h"])
        loss, dlogits = softmax_cross_entropy(logits, target)
        correct = int(np.sum(backend.to_numpy(xp.argmax(logits, axis=1)) == host_target))
        for p in self.params_b():
            p.grad = xp.zeros_like(p.value)
        dh = xp.expand_dims(self.head_b.backward(dlogits, head_cache), axis=1)  # (B, 1, H_B)
        no_output = zeros(tuple(dh.shape))
        dms: list[Array] = [None] * k
        dstate = None  # B's BPTT spans its window
        for j in reversed(range(k)):
            dx, dstate = self.lstm_b.backward(
                dh if j == k - 1 else no_output, dstate, ticks[j]["cache"]
            )
            dms[j] = xp.reshape(dx[:, 0, : k * self.d_msg], (b, k, self.d_msg))  # (B, k, D_m)
        self.opt_b.step()
        return dms, backend.to_float(loss), correct

    def _train_sg(self, pieces: list[dict], dms: list[Array]) -> dict:
        """M learns ``||delta_hat_t - delta_t||^2`` with ``delta_t = B * dL_B/dm_t``, B's
        true gradients, which arrive only now. Returns sums for R^2 and cosine."""
        xp = backend.namespace()
        # the sums minidni.sg_quality.sg_quality turns into R^2 and the cosine
        sums = dict.fromkeys(("error", "variance", "power", "dot", "pred_sq", "target_sq"), 0.0)
        for piece, dm in zip(pieces, dms):
            b, t_len, d = dm.shape
            target = xp.reshape(dm * b, (b * t_len, d))  # (B*k, D_m): delta in per-example units
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
        """Run both networks over a stream x (B, N, 784) from zero states, no training.

        A runs every step (pieces of k, the last one possibly shorter); B ticks after
        every full piece. Returns A's logits (B, k+1) per full piece and B's logits
        (B, k^2+1) per full window.
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
        """Accuracy of A's and B's counts on a stream x (B, N, 784), N a multiple of k^2."""
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
