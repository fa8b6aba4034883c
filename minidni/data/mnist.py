"""MNIST handwritten digits (LeCun, Cortes, Burges), from the four original IDX files.

Files are looked up and downloaded by :mod:`minidni.data.cache` (directory ``mnist/``)
and verified by the SHA-256 of their *decompressed* IDX bytes, so a re-compressed
``.gz`` with the canonical content, or an already-decompressed file, is accepted.

IDX format (big-endian): a 4-byte magic number (two zero bytes, the type code 0x08 for
uint8, the number of dimensions), so ``0x00000801`` for labels (N,) and ``0x00000803``
for images (N, 28, 28); then one uint32 per dimension; then the data, row-major, and
nothing after it.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from .cache import DataError, fetch_bytes

if TYPE_CHECKING:
    from ..train import Dataset

URLS = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
)

# split -> ((images file, sha256), (labels file, sha256)); sums of the decompressed bytes
FILES = {
    "train": (
        (
            "train-images-idx3-ubyte.gz",
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        ),
        (
            "train-labels-idx1-ubyte.gz",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        ),
    ),
    "test": (
        (
            "t10k-images-idx3-ubyte.gz",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        ),
        (
            "t10k-labels-idx1-ubyte.gz",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        ),
    ),
}

# The usual per-pixel statistics of the MNIST training set (pixels scaled to [0, 1]).
MEAN, STD = 0.1307, 0.3081

_NDIM = {0x00000801: 1, 0x00000803: 3}  # the two IDX types MNIST uses, both uint8


def parse_idx(raw: bytes, name: str) -> np.ndarray:
    """Parse an uncompressed uint8 IDX file: labels (N,) or images (N, rows, cols).

    ``name`` only labels error messages. Raises :class:`DataError` for a bad magic
    number, a file shorter than its header says (truncated) or longer (trailing bytes).
    """
    if len(raw) < 4:
        raise DataError(f"{name}: truncated IDX file (expected at least 4 bytes, got {len(raw)})")
    (magic,) = struct.unpack(">I", raw[:4])
    if magic not in _NDIM:
        raise DataError(
            f"{name}: bad magic number 0x{magic:08x} (expected 0x00000801 for uint8 labels or "
            "0x00000803 for uint8 images); this is not an uncompressed MNIST IDX file"
        )
    ndim = _NDIM[magic]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{name}: truncated IDX header (expected {header} bytes, got {len(raw)})")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + math.prod(dims)  # Python ints: a corrupt header cannot overflow
    if len(raw) < expected:
        raise DataError(
            f"{name}: truncated IDX file (expected {expected} bytes for shape {dims}, "
            f"got {len(raw)})"
        )
    if len(raw) > expected:
        raise DataError(
            f"{name}: {len(raw) - expected} trailing bytes after the data of shape {dims} "
            f"(expected {expected} bytes, got {len(raw)})"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


def load_mnist(
    split: str = "train", data_dir: str | os.PathLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """MNIST as host arrays: images float32 (N, 784) in [0, 1], labels int64 (N,).

    N is 60000 for ``"train"`` and 10000 for ``"test"``. ``data_dir`` (the data root
    holding ``mnist/``, or that folder itself) is searched before ``$MINIDNI_DATA_DIR``
    and the cache; files found nowhere are downloaded. See :func:`standardize`.
    """
    if split not in FILES:
        raise ValueError(f"unknown MNIST split {split!r}; valid splits are: train, test")
    arrays = []
    for filename, sha256 in FILES[split]:
        urls = [base + filename for base in URLS]
        raw = fetch_bytes("mnist", filename, urls, sha256, decompress_gz=True, data_dir=data_dir)
        arrays.append(parse_idx(raw, filename))
    images, labels = arrays
    # the checksum already pins the content; these guard a wrong entry in FILES
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != images.shape[:1]:
        raise DataError(f"MNIST {split}: unexpected shapes {images.shape} and {labels.shape}")
    x = images.reshape(len(images), 28 * 28).astype(np.float32) / np.float32(255.0)  # (N, 784)
    return x, labels.astype(np.int64)


def standardize(images: np.ndarray) -> np.ndarray:
    """Shift and scale [0, 1] pixels by the training set's mean 0.1307 and std 0.3081.

    Optional: the paper's MLPs train fine on raw [0, 1] pixels; this is the usual
    normalisation to zero mean and unit variance (over the training set). Any shape.
    """
    return ((images - np.float32(MEAN)) / np.float32(STD)).astype(np.float32)


def mnist_batches(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    rng: np.random.Generator,
    shuffle: bool = True,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One epoch of host minibatches (x (B, 784), y (B,)).

    With ``shuffle`` (training) the order is a fresh permutation from ``rng`` and the
    last incomplete batch is dropped, so every step sees exactly ``batch_size`` examples.
    Without (evaluation) the order is the data's and the last batch may be smaller, so
    every example is seen once; ``rng`` is then unused.
    """
    n = len(images)
    if len(labels) != n:
        raise ValueError(f"images and labels differ in length: {n} vs {len(labels)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if shuffle:
        order = rng.permutation(n)
        for start in range(0, n - batch_size + 1, batch_size):
            idx = order[start : start + batch_size]
            yield images[idx], labels[idx]
    else:
        for start in range(0, n, batch_size):
            yield images[start : start + batch_size], labels[start : start + batch_size]


def mnist_datasets(data_dir: str | None = None) -> tuple[Dataset, Dataset]:
    """MNIST train and test sets as :class:`~minidni.train.Dataset` on the current backend:
    x (N, 784) pixels in [0, 1], y (N,) digit labels."""
    from ..train import Dataset

    return (
        Dataset.from_numpy(*load_mnist("train", data_dir)),
        Dataset.from_numpy(*load_mnist("test", data_dir)),
    )
