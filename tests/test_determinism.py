"""Reproducibility: one seed, one result.

Every random number in minidni comes from a seeded host-side generator, so two runs of
the same training with the same seeds end with bitwise the same parameters (module
weights, BatchNorm running statistics and, for cDNI, the synthetic-gradient models).
"""

from __future__ import annotations

import numpy as np
import pytest

from minidni import backend
from minidni.backend import RNG, to_numpy
from minidni.decoupled import build_mlp

SIZES = [20, 16, 16, 5]
STEPS = 20


def train(method, seed, data_seed=100, steps=STEPS):
    """Build an MLP from ``seed``, train it on batches from ``data_seed``; return its state."""
    net = build_mlp(method, SIZES, RNG(seed))
    data = RNG(data_seed)
    for _ in range(steps):
        x = data.normal((16, SIZES[0]))
        y = backend.asarray(data.np.integers(0, SIZES[-1], size=16))
        net.step(x, y)
    return state(net)


def state(net):
    """Every learned number: parameters and running statistics, of modules and SG models."""
    models = list(net.modules) + [sg.net for sg in net.sgs or []]
    arrays = []
    for model in models:
        arrays += [to_numpy(p.value).copy() for p in model.parameters()]
        layers = getattr(model, "layers", [model])
        for layer in layers:
            if hasattr(layer, "running_mean"):
                arrays += [to_numpy(layer.running_mean).copy(), to_numpy(layer.running_var)]
    return arrays


@pytest.mark.parametrize("method", ["bprop", "cdni"])
def test_same_seed_gives_bitwise_identical_parameters(xp, method):
    """Two runs with the same seeds agree bit for bit after 20 steps, and training did
    move the parameters (so the comparison is not between two untouched nets)."""
    first, second = train(method, seed=0), train(method, seed=0)
    assert len(first) == len(second) > 0
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    untrained = train(method, seed=0, steps=0)
    assert any(not np.array_equal(a, b) for a, b in zip(first, untrained, strict=True))


@pytest.mark.parametrize("method", ["bprop", "cdni"])
def test_different_seed_gives_different_parameters(xp, method):
    """Another model seed (same data) ends somewhere else."""
    a, b = train(method, seed=0), train(method, seed=1)
    assert not np.array_equal(a[0], b[0])  # the first weight matrix
    assert sum(not np.array_equal(x, y) for x, y in zip(a, b, strict=True)) > len(a) // 2
