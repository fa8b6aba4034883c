"""Spatial pooling of feature maps: MaxPool2d and AvgPool2d.

The paper's CIFAR-10 CNN (Jaderberg et al. 2017, appendix, as quoted in public code; we
could not read the appendix itself) uses 3x3 max-pooling after the first convolution and
3x3 average pooling after the others; both are here. The stride is ours to choose (the
quoted text does not give it); :mod:`minidni.cnn` uses stride 2, padding 1.

Both reuse the window gathering of :mod:`minidni.conv` (a Python loop over the K*K
kernel offsets only). Shapes: x (B, C, H, W) -> out (B, C, H_out, W_out) with
H_out = (H + 2p - K) // s + 1. No parameters.
"""

from __future__ import annotations

from typing import Any

from . import backend
from .conv import out_size, swap_cb, unwindows, windows
from .layers import Module

Array = Any


class _Pool(Module):
    def __init__(self, k: int, stride: int | None = None, padding: int = 0):
        stride = k if stride is None else stride
        if k < 1 or stride < 1 or padding < 0 or 2 * padding > k:
            raise ValueError(
                f"{type(self).__name__}: need k >= 1, stride >= 1 and 0 <= padding <= k / 2, "
                f"got k={k}, stride={stride}, padding={padding}"
            )
        self.k, self.stride, self.padding = k, stride, padding

    def __repr__(self) -> str:
        return f"{type(self).__name__}(k={self.k}, stride={self.stride}, padding={self.padding})"

    def _out_shape(self, shape: tuple) -> tuple:
        b, c, h, w = shape
        return (
            b,
            c,
            out_size(h, self.k, self.stride, self.padding),
            out_size(w, self.k, self.stride, self.padding),
        )

    def _check_input(self, x: Array) -> None:
        if x.ndim != 4:
            raise ValueError(
                f"{self!r}: expected input of shape (B, C, H, W), got {tuple(x.shape)}"
            )
        if min(self._out_shape(tuple(x.shape))[2:]) < 1:
            raise ValueError(f"{self!r}: input map {tuple(x.shape)[2:]} is smaller than the window")


class MaxPool2d(_Pool):
    """The maximum of each K x K window; padding counts as -inf (never the maximum,
    since ``padding <= K / 2`` leaves every window a real pixel).

    The gradient goes to the window's arg-max only (the first one on a tie), as in
    PyTorch; the cache holds that one-hot choice (K*K, C, B, H_out, W_out).
    """

    def forward(self, x: Array, train: bool = True) -> tuple[Array, Any]:
        self._check_input(x)
        xp = backend.namespace()
        cols = windows(swap_cb(x), self.k, self.stride, self.padding, fill=-float("inf"))
        first = xp.argmax(cols, axis=0)  # (C, B, Ho, Wo): the first arg-max
        offsets = xp.reshape(xp.arange(self.k * self.k, dtype=first.dtype), (-1, 1, 1, 1, 1))
        mask = xp.astype(offsets == first[None, ...], x.dtype)  # (K*K, C, B, Ho, Wo)
        return swap_cb(xp.max(cols, axis=0)), (mask, tuple(x.shape))

    def backward(self, dout: Array, cache: Any) -> Array:
        mask, shape = cache
        self._check("dout", self._out_shape(shape), dout.shape)
        cols = mask * swap_cb(dout)[None, ...]  # (K*K, C, B, Ho, Wo)
        return swap_cb(unwindows(cols, _cbhw(shape), self.k, self.stride, self.padding))


class AvgPool2d(_Pool):
    """The mean of each K x K window, zero padding included in the count (divides by K*K,
    PyTorch's ``count_include_pad=True``): a fixed linear map, so the backward pass
    spreads ``dout / K^2`` back over each window."""

    def forward(self, x: Array, train: bool = True) -> tuple[Array, Any]:
        self._check_input(x)
        cols = windows(swap_cb(x), self.k, self.stride, self.padding)  # (K*K, C, B, Ho, Wo)
        return swap_cb(backend.namespace().mean(cols, axis=0)), tuple(x.shape)

    def backward(self, dout: Array, cache: Any) -> Array:
        shape = cache
        self._check("dout", self._out_shape(shape), dout.shape)
        xp = backend.namespace()
        kk = self.k * self.k
        d = swap_cb(dout)[None, ...] / kk  # (1, C, B, Ho, Wo)
        cols = xp.broadcast_to(d, (kk,) + tuple(d.shape[1:]))  # (K*K, C, B, Ho, Wo)
        return swap_cb(unwindows(cols, _cbhw(shape), self.k, self.stride, self.padding))


def _cbhw(shape: tuple) -> tuple:
    """(B, C, H, W) -> (C, B, H, W)."""
    b, c, h, w = shape
    return (c, b, h, w)
