"""Layers for feature maps (B, C, H, W): Conv2d, BatchNorm2d, Flatten.

Same contract as :mod:`minidni.layers`: ``out, cache = forward(x, train)``, ``dx =
backward(dout, cache)`` with parameter gradients accumulated into ``p.grad``.

Convolution is a matrix product over *windows* (im2col, as in CS231n and Chainer's
``im2col_cpu``): :func:`windows` gathers, for each of the K*K kernel offsets (ki, kj), the
strided slice ``x_pad[:, :, ki::s, kj::s]`` of the zero-padded input, so the only Python
loop runs over the K*K offsets, never over pixels. Its adjoint :func:`unwindows` adds
each offset's slice back into a zero map (col2im), which is the input gradient. Both use
only slicing, ``stack``, ``concat`` and in-place slice addition, which every array API
backend has.

Inside a layer, maps are held channels first and batch second, (C, B, H, W). Why: the
offsets are stacked on a new *leading* axis, (K*K, C, B, H_out, W_out), so each offset's
slice is copied as one block (rows of W_out floats), and a reshape to (K K C, B H_out
W_out) is free: the transposed im2col matrix, one operand of a single matrix product.
(Channels last with the offsets next to the channels, the first layout, copies pieces
of C floats; docs/cnn.md times both.) The layers take and return (B, C, H, W);
swapping the first two axes moves whole H x W planes, and a layer's output is a view of
its (C, B, H, W) result, so the next layer's swap back is free.

Shapes: B batch, C / C_in / C_out channels, H x W the map, K the kernel size, s the
stride, p the zero padding, H_out = (H + 2p - K) // s + 1 (likewise W_out).
"""

from __future__ import annotations

import math
from typing import Any

from . import backend
from .init import init_weight, zeros
from .layers import BatchNorm, Module, Parameter

Array = Any


def out_size(n: int, k: int, stride: int, padding: int) -> int:
    """Output length of a window of size k sliding with ``stride`` over n + 2 padding."""
    return (n + 2 * padding - k) // stride + 1


def swap_cb(x: Array) -> Array:
    """(B, C, H, W) <-> (C, B, H, W): the layers' layout and the windows' layout."""
    return backend.namespace().permute_dims(x, (1, 0, 2, 3))


def pad2d(x: Array, p: int, value: float = 0.0) -> Array:
    """(C, B, H, W) -> (C, B, H + 2p, W + 2p), the border filled with ``value``."""
    if p == 0:
        return x
    xp = backend.namespace()
    c, b, h, w = x.shape
    rows = xp.full((c, b, p, w), value, dtype=x.dtype)
    x = xp.concat([rows, x, rows], axis=2)  # (C, B, H + 2p, W)
    cols = xp.full((c, b, h + 2 * p, p), value, dtype=x.dtype)
    return xp.concat([cols, x, cols], axis=3)  # (C, B, H + 2p, W + 2p)


def windows(x: Array, k: int, stride: int, padding: int, fill: float = 0.0) -> Array:
    """All K x K windows of x: (C, B, H, W) -> (K*K, C, B, H_out, W_out).

    Entry ``[ki * K + kj, c, b, i, j]`` is ``x_pad[c, b, i * s + ki, j * s + kj]``. In this
    layout a reshape to (K K C, B H_out W_out) is free: the transposed im2col matrix.
    """
    xp = backend.namespace()
    h_out = out_size(x.shape[2], k, stride, padding)
    w_out = out_size(x.shape[3], k, stride, padding)
    x = pad2d(x, padding, fill)
    last_i, last_j = (h_out - 1) * stride + 1, (w_out - 1) * stride + 1
    return xp.stack(
        [
            x[:, :, ki : ki + last_i : stride, kj : kj + last_j : stride]
            for ki in range(k)
            for kj in range(k)
        ],
        axis=0,
    )


def unwindows(cols: Array, shape: tuple, k: int, stride: int, padding: int) -> Array:
    """The adjoint of :func:`windows` (col2im): (K*K, C, B, H_out, W_out) -> ``shape``
    (C, B, H, W), each window entry added back where it came from (overlaps sum)."""
    xp = backend.namespace()
    c, b, h, w = shape
    h_out, w_out = cols.shape[3], cols.shape[4]
    dx = xp.zeros((c, b, h + 2 * padding, w + 2 * padding), dtype=cols.dtype)
    last_i, last_j = (h_out - 1) * stride + 1, (w_out - 1) * stride + 1
    for ki in range(k):
        for kj in range(k):
            dx[:, :, ki : ki + last_i : stride, kj : kj + last_j : stride] += cols[ki * k + kj, ...]
    return dx[:, :, padding : padding + h, padding : padding + w]


class _Spatial(Module):
    """A module on (B, C, H, W) maps: checks the rank and the channel count."""

    channels: int

    def _check_map(self, x: Array) -> None:
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(
                f"{self!r}: expected input of shape (B, {self.channels}, H, W), "
                f"got {tuple(x.shape)}"
            )


class Conv2d(_Spatial):
    """2-d convolution (cross-correlation, as in every deep learning library).

    ``out[b, o, i, j] = bias[o] + sum_{c, ki, kj} W[o, c, ki, kj] x_pad[b, c, i s + ki, j s + kj]``

    Shapes: x (B, C_in, H, W) -> out (B, C_out, H_out, W_out); W (C_out, C_in, K, K);
    bias (C_out,). ``init`` is a :mod:`minidni.init` name with fan-in C_in K K; the bias
    starts at 0; ``bias=False`` drops it (before a BatchNorm2d). ``input_grad=False``
    tells the layer its input is data (as :class:`~minidni.layers.Linear`'s does): backward
    then skips the input gradient (a matmul and a col2im) and returns None.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        k: int,
        rng: backend.RNG,
        stride: int = 1,
        padding: int = 0,
        init: str = "he",
        bias: bool = True,
        input_grad: bool = True,
    ):
        if k < 1 or stride < 1 or padding < 0 or padding >= k:
            raise ValueError(
                f"Conv2d: need k >= 1, stride >= 1 and 0 <= padding < k, "
                f"got k={k}, stride={stride}, padding={padding}"
            )
        self.channels, self.c_out = c_in, c_out
        self.k, self.stride, self.padding = k, stride, padding
        xp = backend.namespace()
        w = init_weight(rng, c_in * k * k, c_out, init)  # (C_in K K, C_out)
        self.W = Parameter(xp.reshape(xp.permute_dims(w, (1, 0)), (c_out, c_in, k, k)), "W")
        self.b = Parameter(zeros((c_out,)), "b") if bias else None
        self.input_grad = input_grad

    def __repr__(self) -> str:
        extra = "" if self.b is not None else ", bias=False"
        return (
            f"Conv2d({self.channels}, {self.c_out}, k={self.k}, stride={self.stride}, "
            f"padding={self.padding}{extra})"
        )

    def parameters(self) -> list[Parameter]:
        return [self.W] if self.b is None else [self.W, self.b]

    def _w_matrix(self) -> Array:
        """W as the (C_out, K K C_in) matrix that multiplies a window column."""
        xp = backend.namespace()
        w = xp.permute_dims(self.W.value, (0, 2, 3, 1))  # (C_out, K, K, C_in)
        return xp.reshape(w, (self.c_out, self.k * self.k * self.channels))

    def forward(self, x: Array, train: bool = True) -> tuple[Array, Any]:
        self._check_map(x)
        xp = backend.namespace()
        b, c, h, w = x.shape
        h_out = out_size(h, self.k, self.stride, self.padding)
        w_out = out_size(w, self.k, self.stride, self.padding)
        if h_out < 1 or w_out < 1:
            raise ValueError(f"{self!r}: input map {h}x{w} is smaller than the kernel")
        cols = windows(swap_cb(x), self.k, self.stride, self.padding)  # (K*K, C, B, Ho, Wo)
        cols = xp.reshape(cols, (self.k * self.k * c, b * h_out * w_out))  # (K K C, B Ho Wo)
        out = xp.matmul(self._w_matrix(), cols)  # (C_out, B Ho Wo)
        if self.b is not None:
            out = out + self.b.value[:, None]
        out = xp.reshape(out, (self.c_out, b, h_out, w_out))
        return swap_cb(out), (cols, tuple(x.shape))  # (B, C_out, Ho, Wo)

    def backward(self, dout: Array, cache: Any) -> Array | None:
        cols, (b, c, h, w) = cache
        xp = backend.namespace()
        h_out = out_size(h, self.k, self.stride, self.padding)
        w_out = out_size(w, self.k, self.stride, self.padding)
        self._check("dout", (b, self.c_out, h_out, w_out), dout.shape)
        d = xp.reshape(swap_cb(dout), (self.c_out, b * h_out * w_out))  # (C_out, B Ho Wo)
        dw = xp.matmul(d, xp.permute_dims(cols, (1, 0)))  # (C_out, K K C)
        dw = xp.reshape(dw, (self.c_out, self.k, self.k, c))
        self.W.grad += xp.permute_dims(dw, (0, 3, 1, 2))  # (C_out, C, K, K)
        if self.b is not None:
            self.b.grad += xp.sum(d, axis=1)
        if not self.input_grad:
            return None
        dcols = xp.matmul(xp.permute_dims(self._w_matrix(), (1, 0)), d)  # (K K C, B Ho Wo)
        dcols = xp.reshape(dcols, (self.k * self.k, c, b, h_out, w_out))
        dx = unwindows(dcols, (c, b, h, w), self.k, self.stride, self.padding)
        return swap_cb(dx)  # (B, C, H, W)


class BatchNorm2d(_Spatial):
    """Batch normalisation per channel over the batch and both spatial axes.

    Every pixel of a channel is one sample of that channel's statistics (B H W samples),
    as in Ioffe & Szegedy 2015, section 3.2. It is :class:`~minidni.layers.BatchNorm` on
    the (B H W, C) matrix of pixels. Shapes: x (B, C, H, W) -> out (B, C, H, W); gamma,
    beta, running_mean, running_var (C,).
    """

    def __init__(self, channels: int, momentum: float = 0.1, eps: float = 1e-5):
        self.channels = channels
        self.bn = BatchNorm(channels, momentum, eps)

    def __repr__(self) -> str:
        return f"BatchNorm2d({self.channels})"

    def parameters(self) -> list[Parameter]:
        return self.bn.parameters()

    @staticmethod
    def _pixels(x: Array) -> Array:
        """(B, C, H, W) -> (B H W, C), a transposed view of the (C, B H W) matrix."""
        xp = backend.namespace()
        c = x.shape[1]
        return xp.permute_dims(xp.reshape(swap_cb(x), (c, -1)), (1, 0))  # (B H W, C)

    @staticmethod
    def _maps(p: Array, shape: tuple) -> Array:
        """(B H W, C) -> (B, C, H, W), the inverse of :meth:`_pixels`."""
        xp = backend.namespace()
        b, c, h, w = shape
        return swap_cb(xp.reshape(xp.permute_dims(p, (1, 0)), (c, b, h, w)))  # (B, C, H, W)

    def forward(self, x: Array, train: bool = True) -> tuple[Array, Any]:
        self._check_map(x)
        out, cache = self.bn.forward(self._pixels(x), train)
        return self._maps(out, tuple(x.shape)), (cache, tuple(x.shape))

    def backward(self, dout: Array, cache: Any) -> Array:
        bn_cache, shape = cache
        self._check("dout", shape, dout.shape)
        return self._maps(self.bn.backward(self._pixels(dout), bn_cache), shape)


class Flatten(Module):
    """(B, C, H, W) -> (B, C H W), row-major (channel slowest), for a Linear head."""

    def __repr__(self) -> str:
        return "Flatten()"

    def forward(self, x: Array, train: bool = True) -> tuple[Array, Any]:
        if x.ndim < 2:
            raise ValueError(f"Flatten(): expected input of shape (B, ...), got {tuple(x.shape)}")
        b = x.shape[0]
        return backend.namespace().reshape(x, (b, math.prod(x.shape[1:]))), tuple(x.shape)

    def backward(self, dout: Array, cache: Any) -> Array:
        shape = cache
        self._check("dout", (shape[0], math.prod(shape[1:])), dout.shape)
        return backend.namespace().reshape(dout, shape)
