"""CIFAR-10 (Krizhevsky 2009), from the canonical binary archive.

``cifar-10-binary.tar.gz`` (170,052,171 bytes) from the dataset author's page is found
or downloaded by :mod:`minidni.data.cache` (directory ``cifar10/``) and verified by the
SHA-256 of the archive itself. The archive is read in memory (no extraction to disk); a
download is written to a temporary file and moved into place only after its checksum
matched, so nothing partial is ever left under the final name.

Binary format (the "binary version" on the CIFAR page): each batch file
``cifar-10-batches-bin/data_batch_{1..5}.bin`` (training) and ``test_batch.bin`` holds
10000 records of 3073 bytes: one label byte (0..9), then 3072 pixel bytes, the 1024 red
values of the 32x32 image row-major, then the green, then the blue (so (3, 32, 32) in
channel-first order). Nothing else is in the file: a length that is not a multiple of
3073 means the file is truncated or damaged.
"""

from __future__ import annotations

import io
import os
import tarfile
import zlib

import numpy as np

from .cache import DataError, fetch_bytes, locate

SUBDIR = "cifar10"
ARCHIVE = "cifar-10-binary.tar.gz"
URLS = ("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",)
SHA256 = "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"
FOLDER = "cifar-10-batches-bin"
MEMBERS = {
    "train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
    "test": ("test_batch.bin",),
}
CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
RECORD = 1 + 3 * 32 * 32  # label byte + pixels

# Per-channel mean and std of the training pixels scaled to [0, 1] (the usual values).
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


def parse_batch(raw: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """One binary batch file -> images uint8 (N, 3, 32, 32), labels uint8 (N,).

    ``name`` only labels error messages. Raises :class:`DataError` for an empty file, a
    length that is not a whole number of 3073-byte records (truncated or trailing
    bytes), or a label outside 0..9.
    """
    if len(raw) == 0 or len(raw) % RECORD:
        whole, extra = divmod(len(raw), RECORD)
        raise DataError(
            f"{name}: {len(raw)} bytes is not a whole number of {RECORD}-byte CIFAR-10 "
            f"records ({whole} records and {extra} bytes left over); the file is truncated "
            "or damaged"
        )
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, RECORD)  # (N, 3073)
    labels = records[:, 0].copy()
    if labels.max() > 9:
        bad = int(np.argmax(labels > 9))
        raise DataError(f"{name}: record {bad} has label {labels[bad]}, not in 0..9")
    images = records[:, 1:].reshape(-1, 3, 32, 32).copy()  # (N, C, H, W)
    return images, labels


def read_archive(raw: bytes, split: str, name: str = ARCHIVE) -> tuple[np.ndarray, np.ndarray]:
    """The ``split`` batches of a (verified) archive's bytes, concatenated."""
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as tar:
            parts = []
            for member in MEMBERS[split]:
                try:
                    f = tar.extractfile(f"{FOLDER}/{member}")
                except KeyError:
                    f = None
                if f is None:
                    raise DataError(f"{name}: no file {FOLDER}/{member} in the archive")
                parts.append(parse_batch(f.read(), f"{name}:{FOLDER}/{member}"))
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{name} is not a readable tar.gz archive ({type(e).__name__}: {e})") from e
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return images, labels


def has_cifar10(data_dir: str | os.PathLike | None = None) -> bool:
    """Whether a local copy of the archive exists (not verified; nothing is downloaded)."""
    return locate(SUBDIR, ARCHIVE, data_dir=data_dir) is not None


def load_cifar10(
    split: str = "train", data_dir: str | os.PathLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 as host arrays: images float32 (N, 3, 32, 32) in [0, 1], labels int64 (N,).

    N is 50000 for ``"train"`` and 10000 for ``"test"``. ``data_dir`` (the data root
    holding ``cifar10/``, or that folder itself) is searched before
    ``$MINIDNI_DATA_DIR`` and the cache; an archive found nowhere is downloaded.
    """
    if split not in MEMBERS:
        raise ValueError(f"unknown CIFAR-10 split {split!r}; valid splits are: train, test")
    raw = fetch_bytes(SUBDIR, ARCHIVE, list(URLS), SHA256, data_dir=data_dir)
    images, labels = read_archive(raw, split)
    return images.astype(np.float32) / np.float32(255.0), labels.astype(np.int64)


def standardize(images: np.ndarray) -> np.ndarray:
    """Per-channel ``(x - mean) / std`` of (N, 3, H, W) images in [0, 1] (training-set
    statistics :data:`MEAN`, :data:`STD`)."""
    mean = np.asarray(MEAN, dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(STD, dtype=np.float32).reshape(1, 3, 1, 1)
    return ((images - mean) / std).astype(np.float32)
