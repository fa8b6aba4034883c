"""Spatial pooling of feature maps: MaxPool2d and AvgPool2d.

The paper's CIFAR-10 CNN (Jaderberg et al. 2017, appendix, as quoted in public code; we
could not read the appendix itself) uses 3x3 max-pooling after the first convolution and
3x3 average pooling after the others; both are here. The stride is ours to choose (the
quoted text does not give it); :mod:`minidni.cnn` uses stride 2, padding 1.

Shapes: x (B, C, H, W) -> out (B, C, H_out, W_out) with H_out = (H + 2P - F) // S + 1
for an F x F window (``kernel_size``), stride S and padding P; (u, v) is an offset
inside the window. No parameters.

Each layer is written the plain way first, in its docstring and in a reference function
(:func:`max_pool_reference`, :func:`avg_pool_reference`) that gathers every window with
:func:`~minidni.conv.windows`, an (F*F, C, B, H_out, W_out) array F*F times the size of
the output. The layers themselves never build that array: they walk the F*F offsets and
combine one strided slice ``x_pad[:, :, u::S, v::S]`` at a time (a running maximum, a
running sum), which reads each slice once and writes nothing F*F times as large. The
tests check that both give the same numbers.
"""

from __future__ import annotations

from typing import Any

from . import backend
from .conv import out_size, pad2d, swap_cb, unwindows, windows
from .layers import Module

Array = Any


def _taps(offset: int, n_out: int, stride: int) -> slice:
    """Rows (or columns) of a padded map under offset u of each of the n_out windows."""
    return slice(offset, offset + (n_out - 1) * stride + 1, stride)


class _Pool(Module):
    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0):
        F = kernel_size
        stride = F if stride is None else stride
        if F < 1 or stride < 1 or padding < 0 or 2 * padding > F:
            raise ValueError(
                f"{type(self).__name__}: need kernel_size >= 1, stride >= 1 and "
                f"0 <= padding <= kernel_size / 2, "
                f"got kernel_size={F}, stride={stride}, padding={padding}"
            )
        self.kernel_size, self.stride, self.padding = F, stride, padding

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding})"
        )

    def _out_shape(self, shape: tuple) -> tuple:
        b, c, h, w = shape
        F, s, p = self.kernel_size, self.stride, self.padding
        return b, c, out_size(h, F, s, p), out_size(w, F, s, p)

    def _check_input(self, x: Array) -> None:
        if x.ndim != 4:
            raise ValueError(
                f"{self!r}: expected input of shape (B, C, H, W), got {tuple(x.shape)}"
            )
        if min(self._out_shape(tuple(x.shape))[2:]) < 1:
            raise ValueError(f"{self!r}: input map {tuple(x.shape)[2:]} is smaller than the window")

    def _slices(self, h_out: int, w_out: int):
        """``(u F + v, rows, cols)`` for every offset (u, v), in row-major order: the
        offset's number and the slice of the padded map it reads in every window."""
        F, s = self.kernel_size, self.stride
        for u in range(F):
            for v in range(F):
                yield u * F + v, _taps(u, h_out, s), _taps(v, w_out, s)

    def _spread(self, parts, shape: tuple, h_out: int, w_out: int) -> Array:
        """The adjoint of reading the F*F slices: ``parts(offset)`` (C, B, H_out, W_out)
        is added into the slice that offset read, in row-major order (col2im without the
        (F*F, ...) array); returns (C, B, H, W)."""
        xp = backend.namespace()
        c, b, h, w = shape
        p = self.padding
        dx = None
        for offset, rows, cols in self._slices(h_out, w_out):
            part = parts(offset)
            if dx is None:
                dx = xp.zeros((c, b, h + 2 * p, w + 2 * p), dtype=part.dtype)
            dx[:, :, rows, cols] += part
        return dx[:, :, p : p + h, p : p + w]


class MaxPool2d(_Pool):
    """The maximum of each F x F window; padding counts as -inf (never the maximum,
    since ``padding <= F / 2`` leaves every window a real pixel).

    Plain form (:func:`max_pool_reference`)::

        out[b, c, i, j] = max_{u, v} x_pad[b, c, i S + u, j S + v]
        dx_pad[b, c, i S + u*, j S + v*] += dout[b, c, i, j]   at the arg-max (u*, v*)

    The gradient goes to the window's arg-max only (the first one in row-major order on
    a tie), as in PyTorch. The layer keeps a running maximum over the F*F offsets and,
    beside it, the offset ``u F + v`` where it was found (an int8 map of the output's
    shape; a later offset replaces it only when strictly larger, which keeps the first
    arg-max); the backward pass sends dout to each offset's slice where that offset won.
    """

    def forward(self, x: Array, train: bool = True) -> tuple[Array, Any]:
        self._check_input(x)
        xp = backend.namespace()
        _, _, h_out, w_out = self._out_shape(tuple(x.shape))
        x_pad = pad2d(swap_cb(x), self.padding, -float("inf"))  # (C, B, H + 2P, W + 2P)
        index = xp.int8 if self.kernel_size**2 <= 127 else xp.int32  # offsets 0 .. F*F - 1
        out, arg = None, None
        for offset, rows, cols in self._slices(h_out, w_out):
            tap = x_pad[:, :, rows, cols]  # (C, B, Ho, Wo): this offset of every window
            if out is None:  # a copy: with F = 1 and P = 0, tap is a view of x itself
                out, arg = xp.asarray(tap, copy=True), xp.zeros(tap.shape, dtype=index)
                continue
            # arg <- offset where tap > out, as arithmetic: xp.where is about 7x
            # slower in NumPy on these strided (C, B, Ho, Wo) slices.
            larger = xp.astype(tap > out, index)
            arg += larger * (offset - arg)
            out = xp.maximum(out, tap)
        return swap_cb(out), (arg, tuple(x.shape))

    def backward(self, dout: Array, cache: Any) -> Array:
        arg, shape = cache
        b, c, h_out, w_out = self._out_shape(shape)
        self._check("dout", (b, c, h_out, w_out), dout.shape)
        xp = backend.namespace()
        d = swap_cb(dout)  # (C, B, Ho, Wo)

        def won(offset: int) -> Array:  # dout where this offset was the arg-max, else 0
            return d * xp.astype(arg == offset, d.dtype)

        return swap_cb(self._spread(won, _cbhw(shape), h_out, w_out))


class AvgPool2d(_Pool):
    """The mean of each F x F window, zero padding included in the count (divides by F*F,
    PyTorch's ``count_include_pad=True``). Plain form (:func:`avg_pool_reference`)::

        out[b, c, i, j] = (1 / F^2) sum_{u, v} x_pad[b, c, i S + u, j S + v]
        dx_pad[b, c, i S + u, j S + v] += dout[b, c, i, j] / F^2   for every (u, v)

    a fixed linear map, so the backward pass spreads ``dout / F^2`` back over each
    window. The layer sums the F*F slices in row-major order and divides once, as the
    mean over the gathered windows does (the same additions in the same order)."""

    def forward(self, x: Array, train: bool = True) -> tuple[Array, Any]:
        self._check_input(x)
        xp = backend.namespace()
        _, _, h_out, w_out = self._out_shape(tuple(x.shape))
        x_pad = pad2d(swap_cb(x), self.padding)  # (C, B, H + 2P, W + 2P)
        total = None
        for _, rows, cols in self._slices(h_out, w_out):
            tap = x_pad[:, :, rows, cols]  # (C, B, Ho, Wo)
            total = xp.asarray(tap, copy=True) if total is None else total + tap
        total /= self.kernel_size * self.kernel_size  # in place: total is a fresh array
        return swap_cb(total), tuple(x.shape)

    def backward(self, dout: Array, cache: Any) -> Array:
        shape = cache
        b, c, h_out, w_out = self._out_shape(shape)
        self._check("dout", (b, c, h_out, w_out), dout.shape)
        d = swap_cb(dout) / (self.kernel_size * self.kernel_size)  # (C, B, Ho, Wo)
        return swap_cb(self._spread(lambda offset: d, _cbhw(shape), h_out, w_out))


def _cbhw(shape: tuple) -> tuple:
    """(B, C, H, W) -> (C, B, H, W)."""
    b, c, h, w = shape
    return (c, b, h, w)


# ------------------------------------------------------------------ the plain forms


def max_pool_reference(
    x: Array, dout: Array, kernel_size: int, stride: int, padding: int
) -> tuple[Array, Array]:
    """Max pooling the plain way, for the tests: ``(out, dx)`` for x (B, C, H, W) and
    an upstream gradient dout (B, C, H_out, W_out).

    Gathers every window (F*F, C, B, H_out, W_out), takes the maximum and the first
    arg-max over the window axis, and sends dout back through the one-hot arg-max mask
    with col2im.
    """
    xp = backend.namespace()
    F = kernel_size
    cols = windows(swap_cb(x), F, stride, padding, fill=-float("inf"))  # (F*F, C, B, Ho, Wo)
    first = xp.argmax(cols, axis=0)  # (C, B, Ho, Wo): the first arg-max
    offsets = xp.reshape(xp.arange(F * F, dtype=first.dtype), (-1, 1, 1, 1, 1))
    mask = xp.astype(offsets == first[None, ...], x.dtype)  # (F*F, C, B, Ho, Wo)
    dcols = mask * swap_cb(dout)[None, ...]
    dx = unwindows(dcols, _cbhw(tuple(x.shape)), F, stride, padding)
    return swap_cb(xp.max(cols, axis=0)), swap_cb(dx)


def avg_pool_reference(
    x: Array, dout: Array, kernel_size: int, stride: int, padding: int
) -> tuple[Array, Array]:
    """Average pooling the plain way, for the tests: ``(out, dx)`` for x (B, C, H, W)
    and dout (B, C, H_out, W_out): the mean over the gathered windows, and col2im of
    ``dout / F^2`` repeated for every offset."""
    xp = backend.namespace()
    F = kernel_size
    cols = windows(swap_cb(x), F, stride, padding)  # (F*F, C, B, Ho, Wo)
    d = swap_cb(dout)[None, ...] / (F * F)  # (1, C, B, Ho, Wo)
    dcols = xp.broadcast_to(d, (F * F,) + tuple(d.shape[1:]))  # (F*F, C, B, Ho, Wo)
    dx = unwindows(dcols, _cbhw(tuple(x.shape)), F, stride, padding)
    return swap_cb(xp.mean(cols, axis=0)), swap_cb(dx)
