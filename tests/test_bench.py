"""minidni.bench beyond the printed tables (tests/test_cli.py, tests/test_cnn.py): the
memory check follows exactly the benchmarked models, builds only the one it follows,
and the matmul bound counts what a step multiplies."""

from __future__ import annotations

from minidni import backend
from minidni.bench.cases import cnn_cases, lstm_cases, mlp_cases
from minidni.bench.matmuls import matmul_flops, record_matmuls
from minidni.bench.memory import ALL_MODELS, CNN_MODELS, DEFAULT_MODELS
from minidni.tools.cli import main


def test_memory_follows_every_benchmarked_model_by_its_row_label():
    labels = [c.label for c in mlp_cases(4, [3, 6]) + lstm_cases() + cnn_cases(2)]
    assert list(ALL_MODELS) == labels
    assert set(DEFAULT_MODELS) <= set(labels) and set(CNN_MODELS) <= set(labels)


def test_only_builds_the_one_case_asked_for():
    for cases, label in (
        (mlp_cases(4, [6], only="mlp 6x256 cdni (linear SG)"), "mlp 6x256 cdni (linear SG)"),
        (lstm_cases(only="lstm 256 dni"), "lstm 256 dni"),
        (cnn_cases(2, only="cnn dni"), "cnn dni"),
    ):
        assert [c.label for c in cases] == [label]


def test_recorded_matmuls_are_the_steps_products():
    """A 3-hidden-layer Bprop MLP step: 4 forward products, 4 weight gradients and 3 input
    gradients (the first layer's input is data); 2 m k n FLOPs each."""
    (case,) = mlp_cases(8, [3], only="mlp 3x256 bprop")
    shapes = record_matmuls(case.step)
    assert len(shapes) == 11
    assert ((8, 784), (784, 256)) in shapes
    assert matmul_flops([((2, 3), (3, 4))]) == 2 * 2 * 3 * 4
    assert backend.namespace().matmul.__name__ != "recording"  # restored afterwards


def test_all_without_memory_is_an_error(capsys):
    assert main(["bench", "--all"]) == 2
    assert "--all goes with --memory" in capsys.readouterr().err
