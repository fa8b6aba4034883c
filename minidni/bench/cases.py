"""The benchmarked models, each a :class:`~minidni.bench.timing.Case`: the MNIST MLP, a
truncated-BPTT LSTM segment and the ``ff-cnn`` CNN, on random data of the real shapes.

- MLP 784-256-...-256-10 (Linear + BatchNorm + ReLU, 3 and 6 hidden layers, batch 256)
  with Bprop, every-layer cDNI (linear SG) and every-layer DNI (SG 1024-1024);
- one truncated-BPTT segment of an LSTM core (256 units, batch 64, T = 8, per-step
  readout and sigmoid BCE on Copy-shaped data) with BPTT, DNI and DNI + Aux;
- the CNN of ``minidni reproduce ff-cnn --profile quick`` (its conv widths, kernel size
  and SG models; batch 64) with Bprop, cDNI and DNI.

The Bprop / BPTT cases also get the same model in PyTorch when ``torch`` is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import backend
from ..decoupled import build_mlp
from ..tbptt import TBPTT
from . import torch_models
from .timing import Case

MLP_DEPTHS = (3, 6)
MLP_METHODS = (
    ("bprop", "bprop", ()),
    ("cdni (linear SG)", "cdni", ()),
    ("dni (SG 1024-1024)", "dni", (1024, 1024)),
)
LSTM_METHODS = ("bprop", "dni", "dni_aux")
LSTM_SHAPE = {"batch": 64, "T": 8, "hidden": 256, "d_in": 9, "d_out": 8}
CNN_METHODS = ("bprop", "cdni", "dni")
CNN_KERNEL_SIZE = 5  # the net's F x F convolutions (cnn_modules' default, which ff-cnn uses)


def mlp_sizes(depth: int) -> list[int]:
    """``[784, 256 x depth, 10]``: the paper's MNIST MLP with ``depth`` hidden layers."""
    return [784, *[256] * depth, 10]


def mlp_cases(
    batch: int, depths: Sequence[int], torch: Any = None, only: str | None = None
) -> list[Case]:
    """Bprop, cDNI and DNI steps of the MLP at each depth (batch ``batch``); ``only``: build
    just the case of that label."""
    rng = backend.RNG(0)
    x = rng.normal((batch, 784))
    labels_np = rng.np.integers(0, 10, size=batch)
    labels = backend.asarray(labels_np)
    cases = []
    for depth in depths:
        sizes = mlp_sizes(depth)
        bprop = None
        for name, method, hidden in MLP_METHODS:
            label = f"mlp {depth}x256 {name}"
            if only is not None and label != only:
                continue
            net = build_mlp(method, sizes, rng, sg_hidden=hidden)
            case = Case(label, batch, lambda net=net: net.step(x, labels), baseline=bprop)
            if method == "bprop":
                bprop = label
                if torch is not None:
                    case.torch_step = torch_models.mlp_step(torch, sizes, x, labels_np)
            cases.append(case)
    return cases


def lstm_cases(torch: Any = None, only: str | None = None) -> list[Case]:
    """One truncated-BPTT segment of the LSTM core with BPTT, DNI and DNI + Aux; ``only``:
    build just the case of that label."""
    s = LSTM_SHAPE
    rng = backend.RNG(0)
    b, T, h = s["batch"], s["T"], s["hidden"]
    x = rng.normal((b, T, s["d_in"]))
    y_np = rng.np.integers(0, 2, size=(b, T, s["d_out"])).astype("float32")
    y = backend.asarray(y_np)
    cases = []
    for method in LSTM_METHODS:
        label = f"lstm {h} {method}"
        if only is not None and label != only:
            continue
        model = TBPTT(s["d_in"], h, s["d_out"], rng, T=T, method=method)
        model.reset(b)
        # Segments are not ``last``, so DNI's SG is always used; the state carries over.
        case = Case(label, b * T, lambda m=model: m.segment(x, y))
        if method == "bprop":
            if torch is not None:
                case.torch_step = torch_models.lstm_step(torch, s, x, y_np)
        else:
            case.baseline = f"lstm {h} bprop"
        cases.append(case)
    return cases


def cnn_config() -> dict:
    """The quick ``ff-cnn`` profile's MNIST CNN: conv widths, kernel sizes, SG models."""
    from ..experiments.ff_cnn import PROFILES, sg_hidden

    quick = PROFILES["quick"]
    return {
        "channels": list(quick["channels"]["mnist"]),
        "sg_hidden": {m: tuple(sg_hidden(quick, "mnist", m)) for m in CNN_METHODS},
        "sg_kernel_size": quick["sg_kernel_size"],
    }


def cnn_cases(
    batch: int,
    torch: Any = None,
    channels: Sequence[int] | None = None,
    only: str | None = None,
) -> list[Case]:
    """Bprop, cDNI and DNI steps of the ``ff-cnn`` quick CNN on MNIST-shaped maps;
    ``only``: build just the case of that label."""
    from ..cnn import build_cnn

    config = cnn_config()
    channels = list(channels or config["channels"])
    rng = backend.RNG(0)
    x = rng.normal((batch, 1, 28, 28))
    labels_np = rng.np.integers(0, 10, size=batch)
    labels = backend.asarray(labels_np)
    cases = []
    for method in CNN_METHODS:
        if only is not None and f"cnn {method}" != only:
            continue
        net = build_cnn(
            method,
            (1, 28, 28),
            channels,
            rng,
            kernel_size=CNN_KERNEL_SIZE,
            sg_hidden=config["sg_hidden"][method],
            sg_kernel_size=config["sg_kernel_size"],
        )
        label = f"cnn {method}"
        case = Case(label, batch, lambda net=net: net.step(x, labels))
        if method == "bprop":
            if torch is not None:
                F = CNN_KERNEL_SIZE
                case.torch_step = torch_models.cnn_step(torch, channels, F, x, labels_np)
        else:
            case.baseline = "cnn bprop"
        cases.append(case)
    return cases
