"""MNIST: the IDX parser, the verified fetch (checksums, downloads, atomic writes), the loader."""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minidni.data import (
    DataError,
    cache,
    data_dirs,
    fetch,
    load_mnist,
    mnist_batches,
    parse_idx,
    standardize,
)
from minidni.data import mnist as mnist_module

URLS = ["https://example.invalid/a/file.gz", "https://mirror.invalid/b/file.gz"]


def idx(data: np.ndarray) -> bytes:
    """An uncompressed uint8 IDX file holding ``data`` (1-d or 3-d)."""
    magic = {1: 0x00000801, 3: 0x00000803}[data.ndim]
    return struct.pack(f">I{data.ndim}I", magic, *data.shape) + data.astype(np.uint8).tobytes()


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def no_network(url, timeout=None):
    raise urllib.error.URLError("network disabled in this test")


@pytest.fixture
def dirs(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """(data dir, cache dir) in tmp_path, with every download failing unless a test allows it."""
    data, cache_path = tmp_path / "data", tmp_path / "cache"
    monkeypatch.setenv("MINIDNI_DATA_DIR", str(data))
    monkeypatch.setenv("MINIDNI_CACHE_DIR", str(cache_path))
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    return data, cache_path


def put(directory: Path, name: str, content: bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(content)
    return directory / name


# --- the IDX parser on hand-built files ---------------------------------------------


def test_parse_labels():
    labels = np.array([5, 0, 4, 1, 9], dtype=np.uint8)
    out = parse_idx(idx(labels), "labels")
    assert out.dtype == np.uint8 and out.shape == (5,)
    np.testing.assert_array_equal(out, labels)


def test_parse_images():
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    out = parse_idx(idx(images), "images")
    assert out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, images)
    out[0, 0, 0] = 99  # a writable copy, not a view of the bytes


def test_bad_magic_number():
    raw = struct.pack(">II", 0x00000802, 1) + b"\x00"
    with pytest.raises(DataError, match=r"myfile.*bad magic number 0x00000802"):
        parse_idx(raw, "myfile")


def test_gzip_bytes_are_not_idx():
    with pytest.raises(DataError, match="bad magic number"):
        parse_idx(gzip.compress(idx(np.zeros(3, np.uint8))), "x.gz")


def test_truncated():
    raw = idx(np.zeros((2, 3, 4), np.uint8))  # 16 header + 24 data bytes
    with pytest.raises(DataError, match=r"imgs: truncated .*expected 40 bytes.*got 39"):
        parse_idx(raw[:-1], "imgs")
    with pytest.raises(DataError, match="truncated IDX header"):
        parse_idx(raw[:10], "imgs")
    with pytest.raises(DataError, match="truncated"):
        parse_idx(b"\x00\x00", "imgs")


def test_trailing_bytes():
    raw = idx(np.zeros(4, np.uint8)) + b"\x00\x00"
    with pytest.raises(DataError, match=r"lbl: 2 trailing bytes.*expected 12 bytes, got 14"):
        parse_idx(raw, "lbl")


@given(
    shape=st.one_of(
        st.tuples(st.integers(0, 20)),
        st.tuples(st.integers(0, 4), st.integers(1, 5), st.integers(1, 5)),
    ),
    seed=st.integers(0, 2**16),
    cut=st.integers(1, 1000),
)
def test_parse_roundtrip_and_any_truncation_fails(shape, seed, cut):
    data = np.random.default_rng(seed).integers(0, 256, size=shape).astype(np.uint8)
    raw = idx(data)
    np.testing.assert_array_equal(parse_idx(raw, "x"), data)
    with pytest.raises(DataError):
        parse_idx(raw[: max(0, len(raw) - cut)], "x")


# --- fetch: where files are found, checksums, downloads -----------------------------


def test_data_dirs_order(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIDNI_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("MINIDNI_CACHE_DIR", str(tmp_path / "c"))
    assert data_dirs() == [tmp_path / "d", tmp_path / "c"]
    monkeypatch.delenv("MINIDNI_DATA_DIR")
    monkeypatch.delenv("MINIDNI_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_dirs() == [tmp_path / "xdg" / "minidni"]


def test_fetch_verifies_decompressed_content(dirs):
    data, _ = dirs
    content = idx(np.arange(7, dtype=np.uint8))
    # a re-compressed archive: different .gz bytes, same content, must be accepted
    put(data / "mnist", "f.gz", gzip.compress(content, compresslevel=1, mtime=123))
    assert fetch("mnist", "f.gz", URLS, sha(content), decompress_gz=True) == data / "mnist/f.gz"
    assert cache.fetch_bytes("mnist", "f.gz", URLS, sha(content), True) == content


def test_fetch_accepts_decompressed_copy(dirs):
    data, _ = dirs
    content = idx(np.arange(7, dtype=np.uint8))
    put(data / "mnist", "f", content)
    assert fetch("mnist", "f.gz", URLS, sha(content), decompress_gz=True) == data / "mnist/f"


def test_checksum_mismatch(dirs):
    data, _ = dirs
    path = put(data / "mnist", "f.gz", gzip.compress(b"wrong content"))
    expected = "0" * 64
    with pytest.raises(DataError) as err:
        fetch("mnist", "f.gz", URLS, expected, decompress_gz=True)
    msg = str(err.value)
    assert str(path) in msg and expected in msg and sha(b"wrong content") in msg
    assert "Delete it" in msg


def test_verification_is_cached_until_the_file_changes(dirs, monkeypatch):
    data, _ = dirs
    content, good = b"good content", sha(b"good content")
    path = put(data / "x", "f.bin", content)
    hashed = []
    real_sha256 = hashlib.sha256
    monkeypatch.setattr(hashlib, "sha256", lambda b: hashed.append(len(b)) or real_sha256(b))
    for _ in range(3):
        assert cache.fetch_bytes("x", "f.bin", URLS, good) == content
    assert len(hashed) == 1  # verified once per process, not on every load
    path.write_bytes(b"bad content!!")  # another size: the old verification no longer holds
    with pytest.raises(DataError, match="checksum mismatch"):
        cache.fetch_bytes("x", "f.bin", URLS, good)


def test_corrupted_gzip_is_an_error_not_data(dirs):
    data, _ = dirs
    content = idx(np.arange(200, dtype=np.uint8))
    packed = gzip.compress(content)
    put(data / "mnist", "f.gz", packed[: len(packed) // 2])
    with pytest.raises(DataError, match=r"f\.gz is not a valid gzip file.*Delete it"):
        fetch("mnist", "f.gz", URLS, sha(content), decompress_gz=True)


def test_missing_file_without_network_names_the_directory(dirs):
    data, cache_path = dirs
    with pytest.raises(DataError) as err:
        fetch("mnist", "f.gz", URLS, "0" * 64, decompress_gz=True)
    msg = str(err.value)
    assert "'f.gz'" in msg and all(url in msg for url in URLS)
    assert f"put it into {cache_path / 'mnist'}/" in msg and "MINIDNI_DATA_DIR" in msg
    assert str(data / "mnist") in msg  # where it looked


class FakeResponse(io.BytesIO):
    """What urlopen returns: a readable context manager; optionally fails mid-stream."""

    def __init__(self, content: bytes, fail_after: int | None = None):
        super().__init__(content)
        self.fail_after = fail_after

    def read(self, n=-1):
        if self.fail_after is not None and self.tell() >= self.fail_after:
            raise ConnectionResetError("connection lost mid-download")
        return super().read(n if self.fail_after is None else min(n, self.fail_after))


def serve(monkeypatch, responses: dict[str, FakeResponse]) -> list[str]:
    """Answer urlopen from ``responses`` (others fail); return the list of URLs asked for."""
    asked = []

    def urlopen(url, timeout=None):
        asked.append(url)
        assert timeout is not None, "a download without a timeout can hang forever"
        if url not in responses:
            raise urllib.error.URLError("unreachable")
        return responses[url]

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return asked


def test_download_falls_back_to_the_next_url(dirs, monkeypatch):
    _, cache_path = dirs
    content = idx(np.arange(9, dtype=np.uint8))
    asked = serve(monkeypatch, {URLS[1]: FakeResponse(gzip.compress(content))})
    path = fetch("mnist", "f.gz", URLS, sha(content), decompress_gz=True)
    assert asked == URLS and path == cache_path / "mnist" / "f.gz"
    assert gzip.decompress(path.read_bytes()) == content
    assert sorted(p.name for p in path.parent.iterdir()) == ["f.gz"]  # no temporary files


def test_failed_download_leaves_no_partial_file(dirs, monkeypatch):
    _, cache_path = dirs
    content = idx(np.arange(100, dtype=np.uint8))
    serve(monkeypatch, {URLS[0]: FakeResponse(gzip.compress(content), fail_after=10)})
    with pytest.raises(DataError, match="ConnectionResetError"):
        fetch("mnist", "f.gz", URLS, sha(content), decompress_gz=True)
    assert list((cache_path / "mnist").iterdir()) == []


def test_wrong_download_is_not_kept(dirs, monkeypatch):
    _, cache_path = dirs
    serve(monkeypatch, {url: FakeResponse(gzip.compress(b"not it")) for url in URLS})
    with pytest.raises(DataError, match="checksum mismatch.*downloaded from"):
        fetch("mnist", "f.gz", URLS, "0" * 64, decompress_gz=True)
    assert list((cache_path / "mnist").iterdir()) == []


# --- the loader, batches, standardisation --------------------------------------------


def test_load_mnist_on_tiny_files(dirs, monkeypatch):
    data, _ = dirs
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(6, 28, 28)).astype(np.uint8)
    labels = np.array([3, 1, 4, 1, 5, 9], dtype=np.uint8)
    files = []
    for name, array in [("ti.gz", images), ("tl.gz", labels)]:
        put(data / "mnist", name, gzip.compress(idx(array)))
        files.append((name, sha(idx(array))))
    monkeypatch.setitem(mnist_module.FILES, "test", tuple(files))
    x, y = load_mnist("test")
    assert x.shape == (6, 784) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_allclose(x * 255, images.reshape(6, 784))
    np.testing.assert_array_equal(y, labels)
    with pytest.raises(ValueError, match="unknown MNIST split"):
        load_mnist("validation")


def test_standardize():
    x = np.array([[0.1307, 0.1307 + 0.3081]], dtype=np.float32)
    out = standardize(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.0, 1.0]], atol=1e-6)


@given(n=st.integers(0, 50), batch_size=st.integers(1, 20), seed=st.integers(0, 100))
def test_mnist_batches(n, batch_size, seed):
    x = np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)  # row i is i
    y = np.arange(n)
    shuffled = list(mnist_batches(x, y, batch_size, np.random.default_rng(seed)))
    assert len(shuffled) == n // batch_size  # the last incomplete batch is dropped
    seen = np.concatenate([yb for _, yb in shuffled]) if shuffled else np.array([], int)
    assert all(len(yb) == batch_size for _, yb in shuffled)
    assert len(set(seen.tolist())) == len(seen)  # no example twice in an epoch
    assert all((xb[:, 0] == yb).all() for xb, yb in shuffled)  # rows stay paired
    ordered = list(mnist_batches(x, y, batch_size, np.random.default_rng(seed), shuffle=False))
    np.testing.assert_array_equal(np.concatenate([yb for _, yb in ordered] + [[]]), y)


# --- the real files -------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_mnist(mnist_dir):
    return {split: load_mnist(split, mnist_dir) for split in ("train", "test")}


@pytest.mark.mnist
@pytest.mark.parametrize("split, n", [("train", 60000), ("test", 10000)])
def test_real_mnist(real_mnist, split, n):
    x, y = real_mnist[split]
    assert x.shape == (n, 784) and x.dtype == np.float32
    assert y.shape == (n,) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    counts = np.bincount(y, minlength=10)
    assert len(counts) == 10 and counts.sum() == n and counts.min() > n // 20
    assert y[0] == {"train": 5, "test": 7}[split]  # the well-known first digits
