"""No layer, loss, optimizer or training step silently upcasts float32 to float64.

A float64 array that sneaks into a float32 model (a NumPy float64 scalar, a host array
converted without the default dtype, a constant built in float64) promotes everything it
touches and halves the speed. These tests run every piece in float32 and then walk every
array reachable from the outputs, the caches and the model objects (parameters, gradients,
optimizer moments, BatchNorm statistics, carried states) and check that each floating
array is float32.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from minidni import backend
from minidni.backend import RNG
from minidni.decoupled import build_mlp
from minidni.layers import BatchNorm, Linear, ReLU, Sigmoid, Tanh, mlp
from minidni.losses import mse, sigmoid_bce, softmax_cross_entropy
from minidni.lstm import LSTM, SeqLinear
from minidni.optim import SGD, Adam
from minidni.tbptt import TBPTT
from minidni.unlock import build_unlocked


def float_arrays(obj: Any, path: str = "", seen: set | None = None) -> list[tuple[str, Any]]:
    """Every floating array reachable from ``obj`` (through lists, tuples, dicts and the
    attributes of minidni objects), with a path naming where it was found."""
    seen = set() if seen is None else seen
    if id(obj) in seen or obj is None or isinstance(obj, str | int | float | bool):
        return []
    seen.add(id(obj))
    xp = backend.namespace()
    if hasattr(obj, "dtype") and hasattr(obj, "shape"):
        return [(path, obj)] if xp.isdtype(obj.dtype, "real floating") else []
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, list | tuple):
        items = enumerate(obj)
    elif type(obj).__module__.startswith("minidni"):
        items = vars(obj).items()
    else:
        return []
    return [a for k, v in items for a in float_arrays(v, f"{path}.{k}", seen)]


def assert_float32(*objs: Any) -> None:
    found = [a for obj in objs for a in float_arrays(obj)]
    assert found, "nothing to check"  # the walk must reach some arrays
    xp = backend.namespace()
    wrong = [f"{path}: {a.dtype}" for path, a in found if a.dtype != xp.float32]
    assert not wrong, wrong


def test_the_walk_finds_a_float64_array(xp):
    """The checker itself can fail: a float64 optimizer moment hidden in a model is found."""
    layer = Linear(3, 2, RNG(0))
    opt = Adam(layer.parameters())
    opt.m[0] = xp.zeros((3, 2), dtype=xp.float64)
    with pytest.raises(AssertionError, match=r"\.m\.0: \S*float64"):
        assert_float32(opt)


@pytest.mark.parametrize(
    "make",
    [
        lambda rng: Linear(4, 3, rng),
        lambda rng: Linear(4, 3, rng, bias=False, input_grad=False),
        lambda rng: ReLU(),
        lambda rng: Tanh(),
        lambda rng: Sigmoid(),
        lambda rng: BatchNorm(4),
        lambda rng: mlp([4, 5, 3], rng),
    ],
    ids=["Linear", "Linear-first", "ReLU", "Tanh", "Sigmoid", "BatchNorm", "mlp"],
)
@pytest.mark.parametrize("train", [True, False])
def test_layers_stay_float32(xp, make, train):
    rng = RNG(0)
    layer = make(rng)
    out, cache = layer.forward(rng.normal((5, 4)), train)
    dx = layer.backward(rng.normal(tuple(out.shape)), cache)
    assert_float32(out, cache, dx, layer)


def test_recurrent_layers_stay_float32(xp):
    rng = RNG(0)
    for core in (LSTM(3, 4, rng), LSTM(3, 4, rng, input_grad=False)):
        hs, state, cache = core.forward(rng.normal((2, 5, 3)), core.initial_state(2))
        dx, dstate = core.backward(rng.normal((2, 5, 4)), state, cache)
        assert_float32(hs, state, cache, dx, dstate, core)
    readout = SeqLinear(4, 2, rng)
    out, cache = readout.forward(rng.normal((2, 5, 4)))
    assert_float32(out, cache, readout.backward(rng.normal((2, 5, 2)), cache), readout)


def test_losses_and_optimizers_stay_float32(xp):
    rng = RNG(0)
    labels = backend.asarray(np.array([0, 2, 1]))
    targets = backend.asarray(np.array([[0.0, 1.0], [1.0, 1.0], [0.0, 0.0]]))
    assert_float32(softmax_cross_entropy(rng.normal((3, 4)), labels))
    assert_float32(mse(rng.normal((3, 2)), rng.normal((3, 2))))
    assert_float32(sigmoid_bce(rng.normal((3, 2)), targets))
    for make in (lambda p: SGD(p, lr=0.1, momentum=0.9), lambda p: Adam(p)):
        layer = Linear(4, 3, rng)
        opt = make(layer.parameters())
        for _ in range(2):
            out, cache = layer.forward(rng.normal((5, 4)))
            opt.zero_grad()
            layer.backward(out, cache)
            opt.step()
        assert_float32(layer, opt)


@pytest.mark.parametrize("method", ["bprop", "dni", "cdni"])
def test_decoupled_training_steps_stay_float32(xp, method):
    rng = RNG(0)
    net = build_mlp(method, [6, 5, 5, 3], rng, sg_hidden=(4,) if method == "dni" else ())
    labels = backend.asarray(np.array([0, 1, 2, 1]))
    for _ in range(2):
        result = net.step(rng.normal((4, 6)), labels)
    assert_float32(net, net.forward(rng.normal((4, 6))), result)


def test_complete_unlock_stays_float32(xp):
    rng = RNG(0)
    net = build_unlocked("cdni", [6, 5, 5, 3], rng)
    labels = backend.asarray(np.array([0, 1, 2, 1]))
    for _ in range(2):
        net.step(rng.normal((4, 6)), labels)
    assert_float32(net)


@pytest.mark.parametrize("method, loss", [("bprop", "ce"), ("dni", "bce"), ("dni_aux", "bce")])
def test_tbptt_segments_stay_float32(xp, method, loss):
    rng = RNG(0)
    model = TBPTT(3, 4, 2, rng, T=3, method=method, loss=loss, clip_norm=1.0)
    x = rng.normal((2, 5, 3))
    if loss == "ce":
        y = backend.asarray(rng.np.integers(0, 2, size=(2, 5)))
    else:
        y = backend.asarray(rng.np.integers(0, 2, size=(2, 5, 2)).astype("float32"))
    result = model.train_sequence(x, y)
    assert_float32(model, result["segments"], result["logits"])
