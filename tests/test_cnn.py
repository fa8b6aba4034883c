"""Every-layer-decoupled CNNs (minidni.cnn): the DNI properties hold for feature maps too."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest
from test_decoupled import OracleSG, params  # a sibling test module (tests/ is on sys.path)

from minidni import backend
from minidni.backend import RNG
from minidni.cnn import ConvSyntheticGradient, build_cnn, cnn_shapes
from minidni.conv import Conv2d
from minidni.gradcheck import check_directional

IN_SHAPE = (2, 9, 8)  # (C, H, W): small, non-square, not a power of two
CHANNELS = (3, 4, 3)


def batch(rng: RNG, n: int = 6):
    x = rng.normal((n, *IN_SHAPE))
    y = backend.asarray(rng.np.integers(0, 10, size=n))
    return x, y


def test_oracle_synthetic_gradients_reproduce_backprop_in_a_cnn(xp, float64):
    """With an oracle in place of every SG model, decoupled CNN training *is* backprop:
    the same parameters after 4 steps, to 1e-10 (through Conv2d, BatchNorm2d, max and
    average pooling and Flatten)."""
    bprop = build_cnn("bprop", IN_SHAPE, CHANNELS, RNG(3))
    dni = build_cnn("cdni", IN_SHAPE, CHANNELS, RNG(3))
    dni.sgs = [OracleSG(dni, i) for i in range(len(dni.modules) - 1)]
    data = RNG(4)
    for _ in range(4):
        x, y = batch(data)
        bprop.step(x, y)
        dni.step(x, y)
    before = params(build_cnn("bprop", IN_SHAPE, CHANNELS, RNG(3)))
    for a, b, c in zip(params(bprop), params(dni), before, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)
        assert not np.array_equal(a, c)  # every parameter moved


@pytest.mark.parametrize("method", ["dni", "cdni"])
def test_fresh_conv_sg_models_leave_all_but_the_last_module_unchanged(xp, method):
    """Zero-initialised SG outputs (and label map): delta_hat = 0 at first."""
    net = build_cnn(method, IN_SHAPE, CHANNELS, RNG(0), sg_hidden=(2,))
    before = params(net)
    net.step(*batch(RNG(1)))
    after = params(net)
    n_last = len(net.modules[-1].parameters())
    for i, (b, a) in enumerate(zip(before, after)):
        assert np.array_equal(a, b) == (i < len(before) - n_last), f"parameter {i}"
    sg_loss = net.step(*batch(RNG(2)))["sg_loss"]
    assert all(loss is not None for loss in sg_loss) and sg_loss[-1] > 0


@pytest.mark.parametrize("hidden", [(), (3,)])
def test_conv_sg_model_keeps_the_shape_and_learns_a_label_map(hidden):
    """delta_hat has h's shape; with labels as context, a few hundred updates fit a
    target that is a fixed spatial map per label (what a linear cDNI model can express).
    NumPy only: a learning check; the layers' arithmetic is checked on every backend."""
    rng = RNG(5)
    shape = (2, 5, 4)
    sg = ConvSyntheticGradient(shape, rng, d_context=3, hidden=hidden, kernel_size=3, lr=1e-2)
    maps = rng.normal((3, *shape))
    losses = []
    for _ in range(200):
        labels = backend.asarray(rng.np.integers(0, 3, size=16))
        h = rng.normal((16, *shape))
        c = backend.one_hot(labels, 3)
        delta_hat, cache = sg.predict(h, c)
        assert tuple(delta_hat.shape) == (16, *shape)
        target = backend.namespace().take(maps, labels, axis=0)
        losses.append(sg.update(cache, delta_hat, target))
    assert losses[-1] < 0.05 * losses[0]
    with pytest.raises(ValueError, match="d_context=3"):
        sg.predict(rng.normal((2, *shape)))


@pytest.mark.parametrize("hidden", [(), (3,), (3, 4)])
def test_conv_sg_model_skips_only_the_gradient_with_respect_to_h(hidden):
    """M is trained on its own loss and never backpropagated through, so its first
    convolution skips dL/dh (a matmul and a col2im); every later one computes its input's."""
    sg = ConvSyntheticGradient((2, 5, 4), RNG(0), hidden=hidden, kernel_size=3)
    convs = [layer for layer in sg.net.layers if isinstance(layer, Conv2d)]
    assert [conv.input_grad for conv in convs] == [False] + [True] * len(hidden)
    delta_hat, cache = sg.predict(RNG(1).normal((3, 2, 5, 4)))
    assert sg.net.backward(delta_hat, cache[0]) is None


def test_cnn_shapes_and_logits(xp):
    """Pooling (3x3, stride 2, padding 1) takes each map to ceil(n / 2)."""
    assert cnn_shapes((1, 28, 28), (16, 16, 16)) == [(16, 14, 14), (16, 7, 7), (16, 4, 4)]
    assert cnn_shapes((3, 32, 32), (8, 8)) == [(8, 16, 16), (8, 8, 8)]
    net = build_cnn("dni", IN_SHAPE, CHANNELS, RNG(0))
    x, y = batch(RNG(1))
    assert tuple(net.predict(x).shape) == (6, 10)
    assert [sg.shape for sg in net.sgs] == cnn_shapes(IN_SHAPE, CHANNELS)
    with pytest.raises(ValueError, match="unknown method"):
        build_cnn("dfa", IN_SHAPE, CHANNELS, RNG(0))


def test_bootstrapped_cnn_target_is_the_backpropagated_synthetic_gradient(xp, float64):
    """M_i's target equals (dh_i/dh_{i-1})^T delta_hat_i, checked by finite differences
    through a conv module (conv, batch norm, ReLU, average pooling)."""
    rng = RNG(7)
    net = build_cnn("cdni", IN_SHAPE, CHANNELS, rng)
    for sg in net.sgs:  # non-zero SG outputs so that delta_hat != 0
        last = sg.net.layers[-1]
        last.W.value = rng.normal(last.W.shape, 0.5)
    i = 1
    x, y = batch(RNG(8))
    c = backend.one_hot(y, 10)
    module = copy.deepcopy(net.modules[i])
    h_prev = net.forward(x)[0][i]
    delta_hat, _ = copy.deepcopy(net.sgs[i]).predict(module.forward(h_prev)[0], c)

    recorded = {}
    update = net.sgs[i - 1].update
    net.sgs[i - 1].update = lambda cache, pred, target: (
        recorded.setdefault("t", target) is None or update(cache, pred, target)
    )
    net.step(x, y)
    state = {"h": h_prev}

    def objective() -> float:  # its gradient w.r.t. h_{i-1} is J^T delta_hat
        out = module.forward(state["h"])[0]
        return backend.to_float(backend.namespace().sum(out * delta_hat))

    def put(v) -> None:
        state["h"] = v

    target = recorded["t"]
    assert check_directional(objective, lambda: state["h"], put, target, rng, n_random=8) < 1e-6


CNN_ROW = re.compile(r"^(cnn \w+)\s+([\d.]+)\s+(\d+)\s+([\d.]+|-)\s+([\d.]+x|-)\s", re.M)


def test_bench_cnn_prints_ms_per_step_and_ratios(capsys):
    """``minidni bench --cnn`` times Bprop, cDNI and DNI steps of the CNN, interleaved, in
    the table of the MLP and LSTM rows: one row per method, the cost relative to Bprop."""
    from minidni.tools.cli import main

    bench = ["bench", "--cnn", "--batch", "4", "--steps", "1", "--rounds", "1", "--warmup", "1"]
    assert main(bench) == 0
    out = capsys.readouterr().out
    assert "batch 4, CNN conv [16, 16, 16]" in out
    rows = CNN_ROW.findall(out)
    assert [r[0] for r in rows] == ["cnn bprop", "cnn cdni", "cnn dni"]
    assert all(float(r[1]) > 0 and r[3] == "-" for r in rows)  # no PyTorch without --compare
    assert out.count("x cnn bprop") == 2


def test_bench_cnn_compares_with_pytorch(capsys):
    """``--cnn --compare torch``: the same Bprop CNN in PyTorch beside minidni's."""
    pytest.importorskip("torch", reason="PyTorch is an optional benchmark dependency")
    from minidni.tools.cli import main

    bench = ["bench", "--cnn", "--batch", "4", "--steps", "1", "--rounds", "1", "--warmup", "1"]
    assert main([*bench, "--compare", "torch"]) == 0
    rows = {r[0]: r for r in CNN_ROW.findall(capsys.readouterr().out)}
    _, ms, _, torch_ms, ratio = rows["cnn bprop"]
    assert float(ratio[:-1]) == pytest.approx(float(torch_ms) / float(ms), abs=0.01)
    assert rows["cnn cdni"][3] == "-" and rows["cnn dni"][3] == "-"


def test_bench_memory_follows_the_cnn(capsys):
    """``--memory N --cnn``: resident memory of each CNN method, in a process of its own."""
    from minidni.tools.cli import main

    assert main(["bench", "--memory", "3", "--cnn", "--batch", "2"]) == 0
    out = capsys.readouterr().out
    for method in ("bprop", "cdni", "dni"):
        assert f"cnn {method}: resident memory over 3 steps" in out
    rows = re.findall(r"^\s+(\d+)\s+([\d.]+)\s+([\d.]+)$", out, re.M)
    assert [int(r[0]) for r in rows] == [1, 2, 3] * 3
    assert all(float(cur) > 0 and float(peak) > 0 for _, cur, peak in rows)
