"""Convolutional nets decoupled at every layer, and their convolutional SG models.

The paper (Jaderberg et al., ICML 2017, section 3.3) decouples every layer of CNNs on
MNIST and CIFAR-10 as well as of MLPs. Its appendix, as quoted in public code (we could
not read the appendix itself), describes the CIFAR-10 CNN so: every hidden layer is a
convolution with 128 5x5 filters and resolution-preserving padding, batch normalisation,
ReLU, then 3x3 spatial max-pooling after the first layer and average pooling after the
others; the SG model has two hidden layers of 128 5x5 filters (resolution-preserving
padding, batch norm, ReLU) and a final convolution of 128 5x5 filters, which keeps the
map's shape. What we build (:func:`cnn_modules`) follows that layout with a chosen width
and pooling stride 2; ``docs/cnn.md`` lists what differs.

Modules (``h_i`` is (B, C, H_i, W_i) for i < N):

- hidden module i: Conv2d(F x F, padding F // 2, no bias) + BatchNorm2d + ReLU + pool
  (3x3, stride 2, padding 1; max after the first module, average after the others);
- output module: Flatten + Linear (logits).

SG models (:class:`ConvSyntheticGradient`): ``delta_hat = M(h, c)`` has h's shape. The
body is ``len(hidden)`` layers of Conv2d + BatchNorm2d + ReLU and a zero-initialised
output Conv2d, all with resolution-preserving padding. For cDNI the one-hot label c
enters through a linear map to a spatial map of h's shape, ``U c`` (U zero-initialised
too), added to the body's output: with ``hidden=()`` the model is linear in (h, c), the
convolutional counterpart of the paper's linear cDNI models. This placement is our
choice; the paper does not say (in what we could read) how its CNN cDNI models see c.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import backend
from .conv import BatchNorm2d, Conv2d, Flatten
from .decoupled import METHODS, DecoupledNet
from .layers import Linear, Module, ReLU, Sequential
from .losses import mse
from .optim import Adam
from .pooling import AvgPool2d, MaxPool2d
from .schedules import Schedule

Array = Any


def pooled(n: int) -> int:
    """Map size after a 3x3 pool with stride 2 and padding 1: ceil(n / 2)."""
    return (n + 2 - 3) // 2 + 1


def cnn_shapes(in_shape: Sequence[int], channels: Sequence[int]) -> list[tuple[int, int, int]]:
    """(C, H, W) of ``h_1 .. h_{N-1}`` for inputs (C_0, H_0, W_0) and hidden ``channels``."""
    _, h, w = in_shape
    shapes = []
    for c in channels:
        h, w = pooled(h), pooled(w)
        shapes.append((c, h, w))
    return shapes


def cnn_modules(
    in_shape: Sequence[int],
    channels: Sequence[int],
    n_classes: int,
    rng: backend.RNG,
    kernel_size: int = 5,
) -> list[Module]:
    """The CNN split at every layer: one module per conv layer, then the Linear head.

    ``in_shape`` is (C_0, H_0, W_0), e.g. (1, 28, 28) for MNIST; ``channels`` the width of
    each hidden conv layer; ``kernel_size`` F the side of every conv kernel (padding F // 2
    keeps the map's size).
    """
    modules: list[Module] = []
    c_prev = in_shape[0]
    for i, c in enumerate(channels):
        pool = MaxPool2d(3, 2, 1) if i == 0 else AvgPool2d(3, 2, 1)
        # the first conv layer reads the images: nobody needs its input gradient
        F = kernel_size
        conv = Conv2d(c_prev, c, F, rng, padding=F // 2, bias=False, input_grad=i > 0)
        modules.append(Sequential(conv, BatchNorm2d(c), ReLU(), pool))
        c_prev = c
    c, h, w = cnn_shapes(in_shape, channels)[-1]
    modules.append(Sequential(Flatten(), Linear(c * h * w, n_classes, rng)))
    return modules


class ConvSyntheticGradient:
    """``delta_hat = M(h, c)`` for a feature map h (B, C, H, W); same shape out.

    Args:
        shape: (C, H, W) of h.
        d_context: width of the context c (B, d_context) (cDNI), or 0 (DNI).
        hidden: channels of the hidden Conv2d + BatchNorm2d + ReLU layers (() = linear).
        kernel_size: F, the side of every conv kernel; padding F // 2 keeps the map's shape.
        lr: Adam learning rate.

    The output Conv2d (and the context map U) start at zero, so ``delta_hat = 0`` at
    first. Same interface as :class:`minidni.synthetic.SyntheticGradient`: ``predict``
    returns ``(delta_hat, cache)``, ``update(cache, delta_hat, target)`` takes one Adam
    step on ``mse(delta_hat, target)`` and returns that loss.
    """

    def __init__(
        self,
        shape: Sequence[int],
        rng: backend.RNG,
        d_context: int = 0,
        hidden: Sequence[int] = (),
        kernel_size: int = 5,
        lr: float = 1e-4,
    ):
        self.shape, self.d_context = tuple(shape), d_context
        c = self.shape[0]
        layers: list[Module] = []
        c_prev, F = c, kernel_size
        # M is trained, never backpropagated through: its first layer skips dL/dh
        for width in hidden:
            conv = Conv2d(
                c_prev, width, F, rng, padding=F // 2, bias=False, input_grad=bool(layers)
            )
            layers += [conv, BatchNorm2d(width), ReLU()]
            c_prev = width
        layers.append(
            Conv2d(c_prev, c, F, rng, padding=F // 2, init="zeros", input_grad=bool(layers))
        )
        self.net = Sequential(*layers)
        self.context = (
            Linear(d_context, c * self.shape[1] * self.shape[2], rng, init="zeros", bias=False)
            if d_context
            else None
        )
        self.opt = Adam(self.parameters(), lr=lr)

    def __repr__(self) -> str:
        return f"ConvSyntheticGradient({self.shape}, d_context={self.d_context}, {self.net!r})"

    def parameters(self) -> list:
        return self.net.parameters() + ([] if self.context is None else self.context.parameters())

    def predict(self, h: Array, c: Array | None = None, train: bool = True) -> tuple[Array, Any]:
        """``delta_hat`` (B, C, H, W) for h (B, C, H, W) and context c (B, D_c) or None."""
        if (c is None) != (self.d_context == 0):
            raise ValueError(
                f"ConvSyntheticGradient: built with d_context={self.d_context}, "
                f"called with context {'None' if c is None else tuple(c.shape)}"
            )
        out, cache = self.net.forward(h, train)
        if c is None:
            return out, (cache, None)
        u, u_cache = self.context.forward(c, train)  # (B, C H W)
        u = backend.namespace().reshape(u, tuple(out.shape))  # (B, C, H, W)
        return out + u, (cache, u_cache)

    def update(self, cache: Any, prediction: Array, target: Array) -> float:
        """One Adam step on ``mse(prediction, target)``; returns that loss."""
        net_cache, u_cache = cache
        loss, dpred = mse(prediction, target)
        self.net.zero_grad()
        self.net.backward(dpred, net_cache)
        if self.context is not None:
            self.context.zero_grad()
            b = dpred.shape[0]
            self.context.backward(backend.namespace().reshape(dpred, (b, -1)), u_cache)
        self.opt.step()
        return backend.to_float(loss)


def build_cnn(
    method: str,
    in_shape: Sequence[int],
    channels: Sequence[int],
    rng: backend.RNG,
    n_classes: int = 10,
    lr: float = 1e-3,
    kernel_size: int = 5,
    sg_hidden: Sequence[int] = (),
    sg_kernel_size: int = 5,
    sg_lr: float = 1e-3,
    schedule: Schedule | None = None,
    sg_targets: str = "bootstrap",
) -> DecoupledNet:
    """An every-layer-decoupled CNN trained by ``method`` in {"bprop", "dni", "cdni"}.

    Inputs are (B, C_0, H_0, W_0) maps; a DNI sits after every conv module (after its
    pooling), with a :class:`ConvSyntheticGradient` of the pooled map's shape.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid methods are: {', '.join(METHODS)}")
    modules = cnn_modules(in_shape, channels, n_classes, rng, kernel_size)
    sgs = None
    if method != "bprop":
        d_context = n_classes if method == "cdni" else 0
        sgs = [
            ConvSyntheticGradient(shape, rng, d_context, sg_hidden, sg_kernel_size, sg_lr)
            for shape in cnn_shapes(in_shape, channels)
        ]
    return DecoupledNet(modules, sgs, lr, n_classes, schedule, sg_targets)
