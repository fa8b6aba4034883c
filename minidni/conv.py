"""Layers for feature maps (B, C, H, W): Conv2d, BatchNorm2d, Flatten.

Same contract as :mod:`minidni.layers`: ``out, cache = forward(x, train)``, ``dx =
backward(dout, cache)`` with parameter gradients accumulated into ``p.grad``.

Shapes (CS231n's letters): B batch, C / C_in / C_out channels, H x W the map, F x F the
kernel (``kernel_size`` in the APIs), S the stride, P the zero padding,
H_out = (H + 2P - F) // S + 1 (likewise W_out), N = B H_out W_out output pixels.
``(u, v)`` is an offset inside an F x F window, ``0 <= u, v < F``.

Convolution is a matrix product over *windows* (im2col, as in CS231n and Chainer's
``im2col_cpu``): :func:`windows` gathers, for each of the F*F offsets (u, v), the
strided slice ``x_pad[:, :, u::S, v::S]`` of the zero-padded input, so the only Python
loop runs over the F*F offsets, never over pixels. Its adjoint :func:`unwindows` adds
each offset's slice back into a zero map (col2im). Both use only slicing and in-place
slice assignment or addition, which every array API backend has.

Inside a layer, maps are held channels first and batch second, (C, B, H, W). Why: the
offsets are stacked on a new *leading* axis, (F*F, C, B, H_out, W_out), so each offset's
slice is copied as one block (rows of W_out floats), and a reshape to (F F C, N) is
free: the transposed im2col matrix, one operand of a single matrix product. (Channels
last with the offsets next to the channels, the first layout, copies pieces of C
floats; docs/cnn.md times both.) The layers take and return (B, C, H, W); swapping the
first two axes moves whole H x W planes, and a layer's output is a view of its
(C, B, H, W) result, so the next layer's swap back is free.
"""

from __future__ import annotations

import math
from typing import Any

from . import backend
from .init import init_weight, zeros
from .layers import BatchNorm, Module, Parameter

Array = Any


def out_size(n: int, kernel_size: int, stride: int, padding: int) -> int:
    """Output length of an F-wide window sliding with ``stride`` over n + 2 P."""
    return (n + 2 * padding - kernel_size) // stride + 1


def swap_cb(x: Array) -> Array:
    """(B, C, H, W) <-> (C, B, H, W): the layers' layout and the windows' layout."""
    return backend.namespace().permute_dims(x, (1, 0, 2, 3))


def pad2d(x: Array, padding: int, value: float = 0.0) -> Array:
    """(C, B, H, W) -> (C, B, H + 2P, W + 2P), the border filled with ``value``."""
    if padding == 0:
        return x
    xp = backend.namespace()
    c, b, h, w = x.shape
    p = padding
    out = xp.full((c, b, h + 2 * p, w + 2 * p), value, dtype=x.dtype)
    out[:, :, p : p + h, p : p + w] = x
    return out


def _taps(offset: int, n_out: int, stride: int) -> slice:
    """Rows (or columns) ``offset, offset + S, ..., offset + (n_out - 1) S`` of a padded
    map: where offset u of each of the n_out windows falls."""
    return slice(offset, offset + (n_out - 1) * stride + 1, stride)


def windows(x: Array, kernel_size: int, stride: int, padding: int, fill: float = 0.0) -> Array:
    """All F x F windows of x (im2col): (C, B, H, W) -> (F*F, C, B, H_out, W_out).

    Entry ``[u F + v, c, b, i, j]`` is ``x_pad[c, b, i S + u, j S + v]``. In this layout
    a reshape to (F F C, N) is free: the transposed im2col matrix.
    """
    xp = backend.namespace()
    F = kernel_size
    c, b, h, w = x.shape
    h_out = out_size(h, F, stride, padding)
    w_out = out_size(w, F, stride, padding)
    x = pad2d(x, padding, fill)
    return xp.stack(
        [
            x[:, :, _taps(u, h_out, stride), _taps(v, w_out, stride)]
            for u in range(F)
            for v in range(F)
        ],
        axis=0,
    )


def unwindows(cols: Array, shape: tuple, kernel_size: int, stride: int, padding: int) -> Array:
    """The adjoint of :func:`windows` (col2im): (F*F, C, B, H_out, W_out) -> ``shape``
    (C, B, H, W), each window entry added back where it came from (overlaps sum)."""
    xp = backend.namespace()
    F = kernel_size
    c, b, h, w = shape
    h_out, w_out = cols.shape[3], cols.shape[4]
    dx = xp.zeros((c, b, h + 2 * padding, w + 2 * padding), dtype=cols.dtype)
    for u in range(F):
        for v in range(F):
            dx[:, :, _taps(u, h_out, stride), _taps(v, w_out, stride)] += cols[u * F + v, ...]
    return dx[:, :, padding : padding + h, padding : padding + w]


def conv_input_grad_col2im(w: Array, d: Array, shape: tuple, stride: int, padding: int) -> Array:
    """dL/dx of a convolution, the plain way: ``col2im(W^T D)``.

    w is the kernel (C_out, C, F, F), d the upstream gradient as (C_out, B, H_out, W_out),
    ``shape`` the input's (C, B, H, W). Every output pixel sends ``W[:, :, u, v]^T d``
    back to the input pixel under offset (u, v) of its window:
    ``dx_pad[c, b, i S + u, j S + v] += sum_o W[o, c, u, v] d[o, b, i, j]``.
    Returns (C, B, H, W). Used for any stride; :func:`conv_input_grad_flipped` is the
    fast path for stride 1 and is tested equal to this one.
    """
    xp = backend.namespace()
    c_out, c, F, _ = w.shape
    _, b, h_out, w_out = d.shape
    w_mat = xp.reshape(xp.permute_dims(w, (0, 2, 3, 1)), (c_out, F * F * c))  # (C_out, F F C)
    d_mat = xp.reshape(d, (c_out, b * h_out * w_out))  # (C_out, N)
    dcols = xp.matmul(xp.permute_dims(w_mat, (1, 0)), d_mat)  # (F F C, N)
    dcols = xp.reshape(dcols, (F * F, c, b, h_out, w_out))
    return unwindows(dcols, shape, F, stride, padding)


def conv_input_grad_flipped(w: Array, d: Array, padding: int) -> Array:
    """dL/dx of a stride-1 convolution as a convolution of d with the flipped kernel.

    ``dx[c, b, y, x] = sum_{o, u, v} W[o, c, F-1-u, F-1-v] d_pad[o, b, y + u, x + v]``,
    with d zero-padded by F - 1 - P: the sum in :func:`conv_input_grad_col2im` regrouped
    by input pixel (the adjoint of a stride-1 convolution is a convolution with the
    kernel rotated by 180 degrees and its two channel axes swapped). Why: col2im
    multiplies out the (F F C, N) matrix W^T D, F*F times the size of dx, and then adds
    F*F overlapping slices of it into dx (read, add, write each time); here the F*F
    slices of d are copied once into a fresh array and the product writes only (C, N).
    At the CNN's shapes that is about 1.3x faster for the whole backward pass
    (docs/speed.md). w (C_out, C, F, F), d (C_out, B, H_out, W_out) -> (C, B, H, W).
    """
    xp = backend.namespace()
    c_out, c, F, _ = w.shape
    _, b, h_out, w_out = d.shape
    flipped = xp.flip(w, axis=(2, 3))  # (C_out, C, F, F), rotated by 180 degrees
    w_mat = xp.reshape(xp.permute_dims(flipped, (1, 2, 3, 0)), (c, F * F * c_out))  # (C, F F C_out)
    cols = windows(d, F, 1, F - 1 - padding)  # (F*F, C_out, B, H, W)
    h, wd = cols.shape[3], cols.shape[4]
    dx = xp.matmul(w_mat, xp.reshape(cols, (F * F * c_out, b * h * wd)))  # (C, B H W)
    return xp.reshape(dx, (c, b, h, wd))


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

    Forward and backward, one pixel at a time (x_pad: x zero-padded by P)::

        out[b, o, i, j] = bias[o] + sum_{c, u, v} W[o, c, u, v] x_pad[b, c, i S + u, j S + v]
        dW[o, c, u, v]  = sum_{b, i, j} dout[b, o, i, j] x_pad[b, c, i S + u, j S + v]
        dbias[o]        = sum_{b, i, j} dout[b, o, i, j]
        dx_pad[b, c, i S + u, j S + v] += sum_o W[o, c, u, v] dout[b, o, i, j]

    As matrices, with X = im2col(x) (F F C_in, N) and D = dout as (C_out, N):
    ``out = W X``, ``dW = D X^T``, ``dx = col2im(W^T D)``
    (:func:`conv_input_grad_col2im`); for stride 1 (and C_out <= C_in), dx is computed
    as the equal convolution of dout with the flipped kernel
    (:func:`conv_input_grad_flipped`).

    Shapes: x (B, C_in, H, W) -> out (B, C_out, H_out, W_out); W (C_out, C_in, F, F);
    bias (C_out,). ``init`` is a :mod:`minidni.init` name with fan-in C_in F F; the bias
    starts at 0; ``bias=False`` drops it (before a BatchNorm2d). ``input_grad=False``
    tells the layer its input is data (as :class:`~minidni.layers.Linear`'s does): backward
    then skips the input gradient and returns None.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel_size: int,
        rng: backend.RNG,
        stride: int = 1,
        padding: int = 0,
        init: str = "he",
        bias: bool = True,
        input_grad: bool = True,
    ):
        F = kernel_size
        if F < 1 or stride < 1 or padding < 0 or padding >= F:
            raise ValueError(
                f"Conv2d: need kernel_size >= 1, stride >= 1 and 0 <= padding < kernel_size, "
                f"got kernel_size={F}, stride={stride}, padding={padding}"
            )
        self.channels, self.c_out = c_in, c_out
        self.kernel_size, self.stride, self.padding = F, stride, padding
        xp = backend.namespace()
        w = init_weight(rng, c_in * F * F, c_out, init)  # (C_in F F, C_out)
        self.W = Parameter(xp.reshape(xp.permute_dims(w, (1, 0)), (c_out, c_in, F, F)), "W")
        self.b = Parameter(zeros((c_out,)), "b") if bias else None
        self.input_grad = input_grad

    def __repr__(self) -> str:
        extra = "" if self.b is not None else ", bias=False"
        return (
            f"Conv2d({self.channels}, {self.c_out}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}{extra})"
        )

    def parameters(self) -> list[Parameter]:
        return [self.W] if self.b is None else [self.W, self.b]

    def _w_matrix(self) -> Array:
        """W as the (C_out, F F C_in) matrix that multiplies a window column."""
        xp = backend.namespace()
        F = self.kernel_size
        w = xp.permute_dims(self.W.value, (0, 2, 3, 1))  # (C_out, F, F, C_in)
        return xp.reshape(w, (self.c_out, F * F * self.channels))

    def _out_hw(self, h: int, w: int) -> tuple[int, int]:
        F, s, p = self.kernel_size, self.stride, self.padding
        return out_size(h, F, s, p), out_size(w, F, s, p)

    EVAL_BATCH = 64  # evaluation runs larger batches in pieces of this many maps

    def _cols(self, x: Array) -> Array:
        """X = im2col(x): the (F F C_in, N) matrix of all windows of x (B, C_in, H, W)."""
        F, (b, c, h, w) = self.kernel_size, x.shape
        h_out, w_out = self._out_hw(h, w)
        cols = windows(swap_cb(x), F, self.stride, self.padding)  # (F*F, C, B, Ho, Wo)
        return backend.namespace().reshape(cols, (F * F * c, b * h_out * w_out))

    def forward(self, x: Array, train: bool = True) -> tuple[Array, Any]:
        self._check_map(x)
        xp = backend.namespace()
        b, c, h, w = x.shape
        h_out, w_out = self._out_hw(h, w)
        if h_out < 1 or w_out < 1:
            raise ValueError(f"{self!r}: input map {h}x{w} is smaller than the kernel")
        if not train and b > self.EVAL_BATCH:
            # Evaluation keeps no windows (backward rebuilds them from x if asked), so a
            # large batch runs in pieces: X is F*F times the size of the maps (313 MB for
            # a 1000-image test batch at the CNN's second layer), and building it that
            # large costs 3x the time of the pieces (docs/speed.md). Same numbers.
            n = self.EVAL_BATCH
            pieces = [x[i : min(i + n, b), ...] for i in range(0, b, n)]
            parts = [self.forward(piece, train)[0] for piece in pieces]
            return xp.concat(parts, axis=0), (None, x)
        cols = self._cols(x)  # X: (F F C, N)
        out = xp.matmul(self._w_matrix(), cols)  # W X: (C_out, N)
        if self.b is not None:
            out += self.b.value[:, None]  # in place: out is a fresh array
        out = xp.reshape(out, (self.c_out, b, h_out, w_out))
        return swap_cb(out), (cols, x)  # (B, C_out, Ho, Wo)

    def backward(self, dout: Array, cache: Any) -> Array | None:
        cols, x = cache
        b, c, h, w = x.shape
        if cols is None:  # an evaluation-mode forward pass kept no windows
            cols = self._cols(x)
        xp = backend.namespace()
        h_out, w_out = self._out_hw(h, w)
        self._check("dout", (b, self.c_out, h_out, w_out), dout.shape)
        F = self.kernel_size
        d = swap_cb(dout)  # (C_out, B, Ho, Wo)
        d_mat = xp.reshape(d, (self.c_out, b * h_out * w_out))  # D: (C_out, N)
        # dW = D X^T, computed as its transpose X D^T: the same products, and OpenBLAS
        # runs this orientation 1.3-1.9x faster at the CNN's shapes (docs/speed.md).
        dw_t = xp.matmul(cols, xp.permute_dims(d_mat, (1, 0)))  # (D X^T)^T: (F F C, C_out)
        dw_t = xp.reshape(dw_t, (F, F, c, self.c_out))
        self.W.grad += xp.permute_dims(dw_t, (3, 2, 0, 1))  # (C_out, C, F, F)
        if self.b is not None:
            self.b.grad += xp.sum(d_mat, axis=1)
        if not self.input_grad:
            return None
        # The fast path gathers F*F copies of dout (C_out channels), col2im builds F*F
        # copies of dx (C_in channels): it pays where C_out <= C_in (every conv of the
        # CNN but the first, which needs no input gradient).
        if self.stride == 1 and self.c_out <= self.channels:
            dx = conv_input_grad_flipped(self.W.value, d, self.padding)
        else:
            dx = conv_input_grad_col2im(self.W.value, d, (c, b, h, w), self.stride, self.padding)
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
