"""CIFAR-10: the binary-batch parser and the loader, on tiny hand-built files in the
real format (a tar.gz holding cifar-10-batches-bin/*.bin of 3073-byte records)."""

from __future__ import annotations

import hashlib
import io
import tarfile
import urllib.error
import urllib.request

import numpy as np
import pytest

from minidni.data import DataError, has_cifar10, load_cifar10, parse_cifar10_batch
from minidni.data import cifar10 as cifar10_module


def records(labels: np.ndarray, images: np.ndarray) -> bytes:
    """The binary batch format: per image one label byte, then R, G, B planes row-major."""
    rows = [bytes([int(lab)]) + img.astype(np.uint8).tobytes() for lab, img in zip(labels, images)]
    return b"".join(rows)


def archive(members: dict[str, bytes]) -> bytes:
    """A .tar.gz holding ``cifar-10-batches-bin/<name>`` for each member."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def tiny_split(rng: np.random.Generator, n: int):
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    images = rng.integers(0, 256, size=(n, 3, 32, 32)).astype(np.uint8)
    return labels, images


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    """(data dir, cache dir) in tmp_path; every download fails."""
    data, cache_path = tmp_path / "data", tmp_path / "cache"
    monkeypatch.setenv("MINIDNI_DATA_DIR", str(data))
    monkeypatch.setenv("MINIDNI_CACHE_DIR", str(cache_path))

    def no_network(url, timeout=None):
        raise urllib.error.URLError("network disabled in this test")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    return data, cache_path


def install(data_dir, monkeypatch, content: bytes, pin: bool = True) -> None:
    """Put ``content`` where the loader looks; ``pin`` makes its checksum the known one."""
    (data_dir / "cifar10").mkdir(parents=True, exist_ok=True)
    (data_dir / "cifar10" / cifar10_module.ARCHIVE).write_bytes(content)
    if pin:
        monkeypatch.setattr(cifar10_module, "SHA256", hashlib.sha256(content).hexdigest())


def test_parse_batch_layout():
    """Label first, then the red, green and blue 32x32 planes, row-major."""
    rng = np.random.default_rng(0)
    labels, images = tiny_split(rng, 3)
    got_images, got_labels = parse_cifar10_batch(records(labels, images), "b.bin")
    np.testing.assert_array_equal(got_labels, labels)
    np.testing.assert_array_equal(got_images, images)
    raw = records(labels, images)
    assert got_images[1, 2, 0, 1] == raw[3073 + 1 + 2 * 1024 + 1]  # image 1, blue, row 0, col 1


@pytest.mark.parametrize("cut", [1, 3072, 3074])
def test_truncated_or_padded_batch_is_an_error(cut):
    raw = records(*tiny_split(np.random.default_rng(1), 2))
    with pytest.raises(DataError, match=r"b\.bin: .* not a whole number of 3073-byte"):
        parse_cifar10_batch(raw[:-cut] if cut < len(raw) else raw + b"\0" * (cut - 3072), "b.bin")
    with pytest.raises(DataError, match="not a whole number"):
        parse_cifar10_batch(b"", "b.bin")


def test_label_out_of_range_is_an_error():
    labels, images = tiny_split(np.random.default_rng(2), 2)
    labels[1] = 10
    with pytest.raises(DataError, match="record 1 has label 10"):
        parse_cifar10_batch(records(labels, images), "b.bin")


def make_archive(rng, n_train=(2, 1, 3, 1, 2), n_test=2):
    """A tiny archive in the real layout; returns (bytes, train split, test split)."""
    members, train = {}, []
    for i, n in enumerate(n_train, start=1):
        split = tiny_split(rng, n)
        train.append(split)
        members[f"data_batch_{i}.bin"] = records(*split)
    test = tiny_split(rng, n_test)
    members["test_batch.bin"] = records(*test)
    return archive(members), train, test


def test_load_cifar10_on_a_tiny_archive(dirs, monkeypatch):
    data, _ = dirs
    content, train, test = make_archive(np.random.default_rng(3))
    assert not has_cifar10()
    install(data, monkeypatch, content)
    assert has_cifar10()
    x, y = load_cifar10("train")
    assert x.shape == (9, 3, 32, 32) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(y, np.concatenate([lab for lab, _ in train]))
    np.testing.assert_allclose(x * 255, np.concatenate([img for _, img in train]))
    x, y = load_cifar10("test")
    np.testing.assert_array_equal(y, test[0])
    assert 0.0 <= x.min() and x.max() <= 1.0
    with pytest.raises(ValueError, match="unknown CIFAR-10 split"):
        load_cifar10("validation")


def test_checksum_mismatch_is_an_error(dirs, monkeypatch):
    """A local archive whose SHA-256 is not the known one is refused (never parsed)."""
    data, _ = dirs
    content, _, _ = make_archive(np.random.default_rng(4))
    install(data, monkeypatch, content, pin=False)  # the real archive's sum is pinned
    with pytest.raises(DataError, match="checksum mismatch.*cifar-10-binary.tar.gz"):
        load_cifar10("test")


def test_truncated_member_in_an_archive_is_an_error(dirs, monkeypatch):
    """An archive (with a matching sum) whose batch file is cut short: a DataError that
    names the member."""
    data, _ = dirs
    rng = np.random.default_rng(5)
    content = archive({"test_batch.bin": records(*tiny_split(rng, 2))[:-100]})
    install(data, monkeypatch, content)
    with pytest.raises(DataError, match=r"test_batch\.bin: .* not a whole number"):
        load_cifar10("test")


def test_truncated_archive_and_missing_member_are_errors(dirs, monkeypatch):
    data, _ = dirs
    content, _, _ = make_archive(np.random.default_rng(6))
    install(data, monkeypatch, content[: len(content) // 2])
    with pytest.raises(DataError, match="not a readable tar.gz archive"):
        load_cifar10("train")
    only_test = archive({"test_batch.bin": records(*tiny_split(np.random.default_rng(7), 1))})
    install(data, monkeypatch, only_test)
    with pytest.raises(DataError, match=r"no file cifar-10-batches-bin/data_batch_1\.bin"):
        load_cifar10("train")


def test_missing_archive_without_network_says_where_to_put_it(dirs):
    _, cache_path = dirs
    with pytest.raises(DataError, match="cifar-10-binary.tar.gz") as err:
        load_cifar10("test")
    assert str(cache_path / "cifar10") in str(err.value)
    assert cifar10_module.URLS[0] in str(err.value)
