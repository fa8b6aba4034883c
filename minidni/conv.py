"""Layers for feature maps (B, C, H, W): Conv2d, BatchNorm2d, Flatten.

Same contract as :mod:`minidni.layers`: ``out, cache = forward(x, train)``, ``dx =
backward(dout, cache)`` with parameter gradients accumulated into ``p.grad``.

Convolution is a matrix product over *windows* (im2col, as in CS231n and Chainer's
``im2col_cpu``): :func:`windows` gathers, for each of the K*K kernel offsets (ki, kj), the
strided slice ``x_pad[:, ki::s, kj::s, :]`` of the zero-padded input, so the only Python
loop runs over the K*K offsets, never over pixels. Its adjoint :func:`unwindows` adds
each offset's slice back into a zero map (col2im), which is the input gradient. Both use
only slicing, ``stack``, ``concat`` and in-place slice addition, which every array API
backend has. They work channels-last, (B, H, W, C), so that the window matrix needs no
copy beyond the gather; the layers take and return (B, C, H, W) and transpose the
(small) maps at their edges.

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


def to_nhwc(x: Array) -> Array:
    """(B, C, H, W) -> (B, H, W, C): the window helpers' layout (channels contiguous)."""
    return backend.namespace().permute_dims(x, (0, 2, 3, 1))


def to_nchw(x: Array) -> Array:
    """(B, H, W, C) -> (B, C, H, W)."""
    return backend.namespace().permute_dims(x, (0, 3, 1, 2))


def pad2d(x: Array, p: int, value: float = 0.0) -> Array:
    """(B, H, W, C) -> (B, H + 2p, W + 2p, C), the border filled with ``value``."""
    if p == 0:
        return x
    xp = backend.namespace()
    b, h, w, c = x.shape
    rows = xp.full((b, p, w, c), value, dtype=x.dtype)
    x = xp.concat([rows, x, rows], axis=1)  # (B, H + 2p, W, C)
    cols = xp.full((b, h + 2 * p, p, c), value, dtype=x.dtype)
    return xp.concat([cols, x, cols], axis=2)  # (B, H + 2p, W + 2p, C)


def windows(x: Array, k: int, stride: int, padding: int, fill: float = 0.0) -> Array:
    """All K x K windows of x: (B, H, W, C) -> (B, H_out, W_out, K*K, C).

    Entry ``[b, i, j, ki * K + kj, c]`` is ``x_pad[b, i * s + ki, j * s + kj, c]``. In this
    layout a reshape to (B H_out W_out, K K C) is free: the im2col matrix.
    """
    xp = backend.namespace()
    h_out = out_size(x.shape[1], k, stride, padding)
    w_out = out_size(x.shape[2], k, stride, padding)
    x = pad2d(x, padding, fill)
    last_i, last_j = (h_out - 1) * stride + 1, (w_out - 1) * stride + 1
    return xp.stack(
        [
            x[:, ki : ki + last_i : stride, kj : kj + last_j : stride, :]
            for ki in range(k)
            for kj in range(k)
        ],
        axis=3,
    )


def unwindows(cols: Array, shape: tuple, k: int, stride: int, padding: int) -> Array:
    """The adjoint of :func:`windows` (col2im): (B, H_out, W_out, K*K, C) -> ``shape``
    (B, H, W, C), each window entry added back where it came from (overlaps sum)."""
    xp = backend.namespace()
    b, h, w, c = shape
    h_out, w_out = cols.shape[1], cols.shape[2]
    dx = xp.zeros((b, h + 2 * padding, w + 2 * padding, c), dtype=cols.dtype)
    last_i, last_j = (h_out - 1) * stride + 1, (w_out - 1) * stride + 1
    for ki in range(k):
        for kj in range(k):
            window = cols[:, :, :, ki * k + kj, :]  # (B, Ho, Wo, C)
            dx[:, ki : ki + last_i : stride, kj : kj + last_j : stride, :] += window
    return dx[:, padding : padding + h, padding : padding + w, :]


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
        """W as the (K K C_in, C_out) matrix that multiplies a window row."""
        xp = backend.namespace()
        w = xp.permute_dims(self.W.value, (2, 3, 1, 0))  # (K, K, C_in, C_out)
        return xp.reshape(w, (self.k * self.k * self.channels, self.c_out))

    def forward(self, x: Array, train: bool = True) -> tuple[Array, Any]:
        self._check_map(x)
        xp = backend.namespace()
        b, c, h, w = x.shape
        h_out = out_size(h, self.k, self.stride, self.padding)
        w_out = out_size(w, self.k, self.stride, self.padding)
        if h_out < 1 or w_out < 1:
            raise ValueError(f"{self!r}: input map {h}x{w} is smaller than the kernel")
        cols = windows(to_nhwc(x), self.k, self.stride, self.padding)  # (B, Ho, Wo, K*K, C)
        cols = xp.reshape(cols, (b * h_out * w_out, self.k * self.k * c))  # (B Ho Wo, K K C)
        out = xp.matmul(cols, self._w_matrix())  # (B Ho Wo, C_out)
        if self.b is not None:
            out = out + self.b.value
        out = xp.reshape(out, (b, h_out, w_out, self.c_out))
        return to_nchw(out), (cols, tuple(x.shape))  # (B, C_out, Ho, Wo)

    def backward(self, dout: Array, cache: Any) -> Array | None:
        cols, (b, c, h, w) = cache
        xp = backend.namespace()
        h_out = out_size(h, self.k, self.stride, self.padding)
        w_out = out_size(w, self.k, self.stride, self.padding)
        self._check("dout", (b, self.c_out, h_out, w_out), dout.shape)
        d = xp.reshape(to_nhwc(dout), (b * h_out * w_out, self.c_out))  # (B Ho Wo, C_out)
        dw = xp.matmul(xp.permute_dims(cols, (1, 0)), d)  # (K K C, C_out)
        dw = xp.reshape(dw, (self.k, self.k, c, self.c_out))
        self.W.grad += xp.permute_dims(dw, (3, 2, 0, 1))  # (C_out, C, K, K)
        if self.b is not None:
            self.b.grad += xp.sum(d, axis=0)
        if not self.input_grad:
            return None
        dcols = xp.matmul(d, xp.permute_dims(self._w_matrix(), (1, 0)))  # (B Ho Wo, K K C)
        dcols = xp.reshape(dcols, (b, h_out, w_out, self.k * self.k, c))
        dx = unwindows(dcols, (b, h, w, c), self.k, self.stride, self.padding)
        return to_nchw(dx)  # (B, C, H, W)


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
        xp = backend.namespace()
        b, c, h, w = x.shape
        return xp.reshape(xp.permute_dims(x, (0, 2, 3, 1)), (b * h * w, c))  # (B H W, C)

    @staticmethod
    def _maps(p: Array, shape: tuple) -> Array:
        xp = backend.namespace()
        b, c, h, w = shape
        return xp.permute_dims(xp.reshape(p, (b, h, w, c)), (0, 3, 1, 2))  # (B, C, H, W)

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
