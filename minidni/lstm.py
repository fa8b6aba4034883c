"""An LSTM core with hand-written backpropagation through time, and a per-step readout.

The recurrent core of the paper's RNN experiments (Jaderberg et al., ICML 2017, section 3.1):
one LSTM layer (Hochreiter & Schmidhuber 1997, with a forget gate) unrolled over a segment
of T steps. Its state is ``s = (h, C)``, the hidden state and the cell state (Colah's
notation ``C_t``; the letter c is the cDNI context elsewhere in minidni); truncated BPTT
with DNI (:mod:`minidni.tbptt`) puts a synthetic gradient ``delta_hat = M(s)`` on that
state at the end of each segment, so :meth:`LSTM.backward` takes a gradient for the final
state and returns one for the initial state.

Equations, for ``z_t = [x_t, h_{t-1}]`` and one fused gate matmul (gate order i, f, o, g)::

    a_t = z_t W + b                                  (B, 4H)
    i_t = sigmoid(a_i)  f_t = sigmoid(a_f)  o_t = sigmoid(a_o)  g_t = tanh(a_g)
    C_t = f_t * C_{t-1} + i_t * g_t
    h_t = o_t * tanh(C_t)

The input part ``x_t W_x`` of every step is computed in one matmul before the loop, and
the weight gradient in one matmul after the backward loop: only ``h_{t-1} W_h`` (forward)
and ``da_t W_h^T`` (backward) are sequential. The three sigmoid gates are adjacent, so one
sigmoid call covers them (PyTorch orders the blocks i, f, g, o; the order is only a
layout of W's columns). Shapes are batch-major: x (B, T, D_in), hs (B, T, H), h and the
cell C (B, H).
"""

from __future__ import annotations

import math
from typing import Any

from . import backend, checks
from .init import zeros
from .layers import Linear, Module, Parameter, sigmoid

Array = Any
State = tuple[Array, Array]  # (h, C): hidden state and cell state, (B, H) each


def _check_seq(layer: Module, what: str, width: int, shape: tuple) -> None:
    """Raise a ValueError naming the layer unless ``shape`` is (B, T, width)."""
    if len(shape) != 3 or shape[2] != width:
        raise ValueError(f"{layer!r}: expected {what} of shape (B, T, {width}), got {tuple(shape)}")


class LSTM(Module):
    """One LSTM layer unrolled over a segment, batch-major.

    Parameters: W (D_in + H, 4H) acting on ``[x_t, h_{t-1}]``, gate blocks in the order
    [i, f, o, g]; b (4H,), zero except the forget-gate block, which starts at 1 so that
    the cell remembers by default (Gers et al. 2000; Jozefowicz et al. 2015). W starts at
    N(0, 1 / (D_in + H)) (LeCun: the gates are sigmoid / tanh).

    The contract extends the layer contract of :mod:`minidni.layers` by the state:

    - ``hs, state_T, cache = lstm.forward(x, state)``: x (B, T, D_in), state = (h_0, C_0)
      each (B, H) -> hs (B, T, H) (``hs[:, t]`` is h_{t+1}), state_T = (h_T, C_T);
    - ``dx, dstate_0 = lstm.backward(dhs, dstate_T, cache)``: dhs (B, T, H), dstate_T =
      (dh_T, dC_T) or None (no gradient from beyond the segment) -> dx (B, T, D_in) and
      (dh_0, dC_0); W.grad and b.grad are *accumulated*.

    ``dh_T`` adds to ``dhs[:, -1]`` (both are gradients for the same h_T): the first comes
    from beyond the segment (a synthetic or carried-over gradient), the second from this
    segment's outputs. ``input_grad=False``: x is data (as in :mod:`minidni.tbptt`), so
    backward skips dx and returns None in its place.
    """

    def __init__(self, d_in: int, d_hidden: int, rng: backend.RNG, input_grad: bool = True):
        self.d_in = checks.count(self, "d_in", d_in)
        self.d_hidden = h = checks.count(self, "d_hidden", d_hidden)
        self.input_grad = input_grad
        self.W = Parameter(rng.normal((d_in + h, 4 * h), math.sqrt(1.0 / (d_in + h))), "W")
        forget = [1.0 if h <= k < 2 * h else 0.0 for k in range(4 * h)]
        self.b = Parameter(backend.asarray(forget), "b")

    def __repr__(self) -> str:
        return f"LSTM({self.d_in}, {self.d_hidden})"

    def parameters(self) -> list[Parameter]:
        return [self.W, self.b]

    def initial_state(self, batch_size: int) -> State:
        """``(h_0, C_0)``, zeros of shape (B, H) each."""
        return zeros((batch_size, self.d_hidden)), zeros((batch_size, self.d_hidden))

    def forward(self, x: Array, state: State, train: bool = True) -> tuple[Array, State, Any]:
        """Run T steps from ``state``; returns hs (B, T, H), (h_T, C_T) and the cache."""
        _check_seq(self, "input", self.d_in, x.shape)
        b, t_len, d = x.shape
        h, cell = state
        self._check("h_0", (b, self.d_hidden), h.shape)
        self._check("C_0", (b, self.d_hidden), cell.shape)
        if t_len < 1:
            raise ValueError(f"{self!r}: a segment needs at least one step, got T = {t_len}")
        xp = backend.namespace()
        H = self.d_hidden
        W_x, W_h = self.W.value[:d, :], self.W.value[d:, :]  # (D_in, 4H), (H, 4H)
        # Time-major inside: each step's slice [t] is then contiguous (a strided (B, 4H)
        # slice of a batch-major array makes the backward matmul about 1.3x slower).
        x_tm = xp.permute_dims(x, (1, 0, 2))  # (T, B, D_in)
        # The input contributions of all steps in one matmul: only h @ W_h is sequential.
        x_flat = xp.reshape(x_tm, (t_len * b, d))  # (T*B, D_in)
        ax = xp.reshape(xp.matmul(x_flat, W_x), (t_len, b, 4 * H))  # (T, B, 4H)
        ax += self.b.value  # in place: ax is a fresh array
        hs, h_prev, steps = [], [], []
        for t in range(t_len):
            a = xp.matmul(h, W_h)  # (B, 4H)
            a += ax[t, ...]  # in place: a is a fresh array
            ifo = sigmoid(a[:, : 3 * H])  # (B, 3H): i, f and o in one call
            g = xp.tanh(a[:, 3 * H :])  # (B, H)
            i, f, o = ifo[:, :H], ifo[:, H : 2 * H], ifo[:, 2 * H :]
            cell_new = f * cell  # C_t = f_t C_{t-1} + i_t g_t
            cell_new += i * g
            tanh_cell = xp.tanh(cell_new)
            h_prev.append(h)
            steps.append((ifo, g, cell, tanh_cell))
            h, cell = o * tanh_cell, cell_new  # h_t = o_t tanh(C_t)
            hs.append(h)
        hs_arr = xp.stack(hs, axis=1)  # (B, T, H)
        cache = (x_flat, xp.stack(h_prev, axis=0), steps)  # h_prev: (T, B, H), h_0 .. h_{T-1}
        return hs_arr, (h, cell), cache

    def backward(
        self, dhs: Array, dstate_T: State | None, cache: Any, grads: bool = True
    ) -> tuple[Array | None, State]:
        """BPTT through the segment: dx (B, T, D_in) (None without ``input_grad``) and
        (dh_0, dC_0); accumulates W, b grads.

        Step t backwards, from dh_t (this step's output gradient plus what step t+1 sends
        back) and dC_t (what step t+1 sends back; zero or dC_T at the end)::

            dh_t  += dhs_t
            dC_t  += dh_t o_t (1 - tanh(C_t)^2)            through h_t = o_t tanh(C_t)
            da_i   = dC_t g_t       i_t (1 - i_t)           sigmoid' = s (1 - s)
            da_f   = dC_t C_{t-1}   f_t (1 - f_t)
            da_o   = dh_t tanh(C_t) o_t (1 - o_t)
            da_g   = dC_t i_t       (1 - g_t^2)             tanh' = 1 - tanh^2
            dh_{t-1} = da_t W_h^T        dC_{t-1} = dC_t f_t

        and after the loop ``dW = sum_t z_t^T da_t``, ``db = sum_t da_t``,
        ``dx_t = da_t W_x^T``.

        ``grads=False`` carries the gradient back to the start state only: no parameter
        gradient and no dx (returned as None). Truncated BPTT with DNI uses it for the
        synthetic-gradient model's target, which needs ``J^T delta_hat`` on its own.
        """
        x_flat, h_prev, steps = cache  # (T*B, D_in), (T, B, H): time-major as in forward
        t_len, b, d = len(steps), h_prev.shape[1], x_flat.shape[1]
        H = self.d_hidden
        self._check("dhs", (b, t_len, H), dhs.shape)
        xp = backend.namespace()
        if dstate_T is None:  # nothing flows in from beyond the segment
            dh, dcell = zeros((b, H)), zeros((b, H))
        else:
            dh, dcell = dstate_T
            self._check("dh_T", (b, H), dh.shape)
            self._check("dC_T", (b, H), dcell.shape)
        W_h = self.W.value[d:, :]  # (H, 4H)
        da = xp.empty((t_len, b, 4 * H), dtype=dhs.dtype)  # dL/da_t of every step, filled below
        for t in reversed(range(t_len)):
            ifo, g, cell_prev, tanh_cell = steps[t]
            i, f, o = ifo[:, :H], ifo[:, H : 2 * H], ifo[:, 2 * H :]
            dh = dh + dhs[:, t, :]  # from this step's output and from step t+1
            dcell = dcell + dh * o * (1.0 - tanh_cell * tanh_cell)
            da_t = da[t, ...]  # (B, 4H), a view: the four blocks are written in place
            da_t[:, :H] = dcell * g  # dL/di_t
            da_t[:, H : 2 * H] = dcell * cell_prev  # dL/df_t
            da_t[:, 2 * H : 3 * H] = dh * tanh_cell  # dL/do_t
            da_t[:, : 3 * H] *= ifo  # times sigmoid' = s (1 - s), the three gates at once
            da_t[:, : 3 * H] *= 1.0 - ifo
            da_t[:, 3 * H :] = (dcell * i) * (1.0 - g * g)
            # dh_{t-1} = da_t W_h^T, computed as (W_h da_t^T)^T: the same products, and
            # OpenBLAS runs this orientation of the (B, 4H) x (4H, H) product about 1.2x
            # faster (W_h^T is a transposed view; docs/speed.md).
            dh = xp.permute_dims(xp.matmul(W_h, xp.permute_dims(da_t, (1, 0))), (1, 0))
            dcell = dcell * f  # dL/dC_{t-1}
        if not grads:
            return None, (dh, dcell)
        da_flat = xp.reshape(da, (t_len * b, 4 * H))  # (T*B, 4H)
        h_flat = xp.reshape(h_prev, (t_len * b, H))  # (T*B, H)
        z = xp.concat([x_flat, h_flat], axis=1)  # (T*B, D_in + H): z_t = [x_t, h_{t-1}]
        self.W.grad += xp.matmul(xp.permute_dims(z, (1, 0)), da_flat)  # (D_in + H, 4H)
        self.b.grad += xp.sum(da_flat, axis=0)  # (4H,)
        if not self.input_grad:
            return None, (dh, dcell)
        W_x_T = xp.permute_dims(self.W.value[:d, :], (1, 0))  # (4H, D_in)
        dx = xp.reshape(xp.matmul(da_flat, W_x_T), (t_len, b, d))  # (T, B, D_in)
        dx = xp.permute_dims(dx, (1, 0, 2))  # (B, T, D_in)
        return dx, (dh, dcell)


class SeqLinear(Module):
    """A :class:`~minidni.layers.Linear` applied at every time step (shared weights).

    Shapes: x (B, T, D_in) -> out (B, T, D_out); W (D_in, D_out); b (D_out,). The readout
    of the RNN experiments (logits per step); ``init`` defaults to LeCun (linear output).
    """

    def __init__(self, d_in: int, d_out: int, rng: backend.RNG, init: str = "lecun"):
        self.d_in, self.d_out = d_in, d_out
        self.linear = Linear(d_in, d_out, rng, init=init)

    def __repr__(self) -> str:
        return f"SeqLinear({self.d_in}, {self.d_out})"

    def parameters(self) -> list[Parameter]:
        return self.linear.parameters()

    def forward(self, x: Array, train: bool = True) -> tuple[Array, Any]:
        _check_seq(self, "input", self.d_in, x.shape)
        xp = backend.namespace()
        b, t_len, _ = x.shape
        out, cache = self.linear.forward(xp.reshape(x, (b * t_len, self.d_in)))  # (B*T, D_out)
        return xp.reshape(out, (b, t_len, self.d_out)), (b, t_len, cache)  # (B, T, D_out)

    def backward(self, dout: Array, cache: Any) -> Array:
        b, t_len, lin_cache = cache
        self._check("dout", (b, t_len, self.d_out), dout.shape)
        xp = backend.namespace()
        dflat = xp.reshape(dout, (b * t_len, self.d_out))  # (B*T, D_out)
        dx = self.linear.backward(dflat, lin_cache)  # (B*T, D_in)
        return xp.reshape(dx, (b, t_len, self.d_in))  # (B, T, D_in)
