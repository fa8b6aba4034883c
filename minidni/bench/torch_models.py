"""The PyTorch reference models: the same Bprop MLP, BPTT LSTM segment and Bprop CNN
as minidni's benchmark cases (same shapes, dtype, optimizer and thread count).

PyTorch is an optional benchmark dependency only (``pip install 'minidni[bench]'``); the
library never imports it. Each step ends with ``loss.item()``, as each minidni step
returns its loss as a float.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .. import backend
from .timing import Step


def import_torch() -> Any:
    """PyTorch, or a one-line error saying how to install it (an optional dependency)."""
    try:
        import torch
    except ImportError as e:
        raise backend.BackendError(
            "--compare torch needs PyTorch: pip install 'minidni[bench]' "
            "(CPU wheels: --index-url https://download.pytorch.org/whl/cpu)"
        ) from e
    return torch


def device(torch: Any) -> str:
    """CUDA when minidni runs on CuPy (and PyTorch sees a GPU), else the CPU."""
    return "cuda" if backend.get_backend() == "cupy" and torch.cuda.is_available() else "cpu"


def torch_sync(torch: Any) -> Callable[[], None]:
    """Wait for PyTorch's GPU kernels (nothing to wait for on the CPU)."""
    if torch is not None and device(torch) == "cuda":
        return torch.cuda.synchronize
    return lambda: None


def _tensor(torch: Any, a: Any) -> Any:
    return torch.from_numpy(backend.to_numpy(a)).to(device(torch))


def _adam_step(torch: Any, model: Any, x: Any, loss_of: Callable[[Any], Any]) -> Step:
    """One Adam (lr 1e-3) step on ``loss_of(model(x))``, returning the loss as a float."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        loss = loss_of(model(x))
        loss.backward()
        opt.step()
        return loss.item()

    return step


def mlp_step(torch: Any, sizes: Sequence[int], x: Any, labels: Any) -> Step:
    """The Bprop MLP: Linear (no bias) + BatchNorm1d + ReLU per hidden layer, a Linear
    output, softmax cross-entropy, one Adam over all parameters."""
    nn = torch.nn
    layers: list[Any] = []
    for d_in, d_out in zip(sizes[:-2], sizes[1:-1]):
        layers += [nn.Linear(d_in, d_out, bias=False), nn.BatchNorm1d(d_out), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(sizes[-2], sizes[-1])).to(device(torch))
    y = torch.from_numpy(labels).to(device(torch))
    return _adam_step(torch, model, _tensor(torch, x), lambda z: nn.functional.cross_entropy(z, y))


def cnn_step(torch: Any, channels: Sequence[int], kernel_size: int, x: Any, labels: Any) -> Step:
    """The Bprop CNN of :func:`minidni.cnn.cnn_modules`: per hidden layer Conv2d (F x F,
    padding F // 2, no bias) + BatchNorm2d + ReLU + 3x3 pooling (stride 2, padding 1;
    max after the first layer, average, padding counted, after the others), then Flatten
    + Linear; softmax cross-entropy, one Adam."""
    nn = torch.nn
    layers: list[Any] = []
    _, c_prev, h, w = tuple(x.shape)
    for i, c in enumerate(channels):
        pool = nn.MaxPool2d(3, 2, 1) if i == 0 else nn.AvgPool2d(3, 2, 1)
        conv = nn.Conv2d(c_prev, c, kernel_size, padding=kernel_size // 2, bias=False)
        layers += [conv, nn.BatchNorm2d(c), nn.ReLU(), pool]
        c_prev, h, w = c, (h - 1) // 2 + 1, (w - 1) // 2 + 1
    head = [nn.Flatten(), nn.Linear(c_prev * h * w, 10)]
    model = nn.Sequential(*layers, *head).to(device(torch))
    y = torch.from_numpy(labels).to(device(torch))
    return _adam_step(torch, model, _tensor(torch, x), lambda z: nn.functional.cross_entropy(z, y))


def lstm_step(torch: Any, shape: dict, x: Any, y: Any) -> Step:
    """The truncated-BPTT segment: ``nn.LSTM`` + a per-step Linear readout, BCE with
    logits summed over steps and bits and averaged over the batch, one Adam; the state is
    carried (detached) from one segment to the next."""
    nn, dev = torch.nn, device(torch)
    core = nn.LSTM(shape["d_in"], shape["hidden"], batch_first=True).to(dev)
    readout = nn.Linear(shape["hidden"], shape["d_out"]).to(dev)
    opt = torch.optim.Adam([*core.parameters(), *readout.parameters()], lr=1e-3)
    tx, ty = _tensor(torch, x), torch.from_numpy(y).to(dev)
    zeros = torch.zeros(1, shape["batch"], shape["hidden"], device=dev)
    state = [(zeros, zeros.clone())]
    bce = torch.nn.functional.binary_cross_entropy_with_logits

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        hs, (h, cell) = core(tx, state[0])
        loss = bce(readout(hs), ty, reduction="sum") / shape["batch"]  # readout: (B, T, D_out)
        loss.backward()
        opt.step()
        state[0] = (h.detach(), cell.detach())
        return loss.item()

    return step
