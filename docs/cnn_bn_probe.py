"""Why the Bprop CNN's test error jumps between evaluations: BatchNorm's running statistics.

Trains the quick profile's Bprop CNN (MNIST, conv widths 16-16-16, batch 64, Adam 1e-3,
constant rate) and, every 50 steps, measures the test error three ways on the first
N_TEST test images:

- ``running``: evaluation mode, BatchNorm normalising with its running statistics
  (what ``fit`` and every experiment report);
- ``batch``: BatchNorm normalising each test batch (1000 images) with its own statistics;
- ``population``: evaluation mode with running statistics replaced by the mean over 30
  training batches of 256 of the batch statistics at the current weights.

If only ``running`` jumps, the weights are fine and the statistics lag them (docs/cnn.md).

    MINIDNI_DATA_DIR=../shared/data PYTHONPATH=. python docs/cnn_bn_probe.py SEED [STEPS]
"""

from __future__ import annotations

import json
import sys

from minidni import backend
from minidni.cnn import build_cnn
from minidni.conv import BatchNorm2d
from minidni.data import load_mnist, standardize
from minidni.train import Dataset, batches, evaluate

N_TEST = 5000


def mnist(split: str) -> Dataset:
    x, y = load_mnist(split)
    return Dataset.from_numpy(standardize(x).reshape(-1, 1, 28, 28), y)  # (N, 1, 28, 28)


def main(seed: int, steps: int) -> None:
    train, test = mnist("train"), mnist("test")
    test = Dataset(test.x[:N_TEST], test.y[:N_TEST])
    rng = backend.RNG(seed)
    net = build_cnn("bprop", (1, 28, 28), [16, 16, 16], rng, lr=1e-3)
    bns = [layer.bn for m in net.modules for layer in m.layers if isinstance(layer, BatchNorm2d)]
    index = batches(len(train), 64, rng.spawn())  # the same batches as ``fit``

    def batch_stats(x):  # forward in training mode: each batch normalised by itself
        for m in net.modules:
            x, _ = m.forward(x, True)
        return x

    for step in range(1, steps + 1):
        net.step(*train.take(next(index)))
        if step % 50:
            continue
        saved = [(bn.running_mean, bn.running_var, bn.momentum) for bn in bns]
        row = {"step": step, "running": evaluate(net.predict, test)}
        row["batch"] = evaluate(batch_stats, test)
        means, variances = [0.0] * len(bns), [0.0] * len(bns)
        probe = batches(len(train), 256, backend.RNG(123))
        for _ in range(30):
            for bn in bns:
                bn.momentum = 1.0  # running statistics := this batch's
            batch_stats(train.take(next(probe))[0])
            for j, bn in enumerate(bns):
                means[j] = means[j] + bn.running_mean / 30
                variances[j] = variances[j] + bn.running_var / 30
        for bn, mean, var in zip(bns, means, variances):
            bn.running_mean, bn.running_var = mean, var
        row["population"] = evaluate(net.predict, test)
        for bn, (mean, var, momentum) in zip(bns, saved):
            bn.running_mean, bn.running_var, bn.momentum = mean, var, momentum
        print(json.dumps({k: round(100 * v, 2) if k != "step" else v for k, v in row.items()}))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 600)
