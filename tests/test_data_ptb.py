"""Character-level PTB: the vocabulary, the parser and loader, checksums, TBPTT batches."""

from __future__ import annotations

import hashlib
import io
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minidni.data import (
    PTB_VOCAB,
    DataError,
    has_split,
    load_ptb_chars,
    parse_ptb_chars,
    ptb_batches,
)
from minidni.data import ptb as ptb_module

TINY = "a _ c a t \n t h e _ N _ < u n k > \n\n"


def no_network(url, timeout=None):
    raise urllib.error.URLError("network disabled in this test")


@pytest.fixture
def dirs(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """(data dir, cache dir) in tmp_path; downloads fail unless a test serves them."""
    data, cache_path = tmp_path / "data", tmp_path / "cache"
    (data / "ptb").mkdir(parents=True)
    monkeypatch.setenv("MINIDNI_DATA_DIR", str(data))
    monkeypatch.setenv("MINIDNI_CACHE_DIR", str(cache_path))
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    return data, cache_path


@pytest.fixture(scope="module")
def ptb_dir(data_dir: Path) -> Path:
    path = data_dir / "ptb"
    if not (path / "ptb.char.valid.txt").exists() or not (path / "ptb.char.test.txt").exists():
        pytest.skip(f"PTB valid/test not found in {path}; set MINIDNI_DATA_DIR to the data dir")
    return path


# --- vocabulary and parser ------------------------------------------------------------


def test_vocabulary():
    assert len(PTB_VOCAB) == 50
    assert list(PTB_VOCAB.symbols) == sorted(PTB_VOCAB.symbols)
    assert PTB_VOCAB.eol == 0 and PTB_VOCAB.symbols[0] == "\n"
    assert set("abcdefghijklmnopqrstuvwxyz0123456789_N<>") <= set(PTB_VOCAB.symbols)
    assert "A" not in PTB_VOCAB.symbols and " " not in PTB_VOCAB.symbols


@given(st.text(alphabet=PTB_VOCAB.symbols, max_size=200))
def test_encode_decode_roundtrip(text):
    codes = PTB_VOCAB.encode(text)
    assert codes.dtype == np.int64 and codes.shape == (len(text),)
    assert ((codes >= 0) & (codes < 50)).all()
    assert PTB_VOCAB.decode(codes) == text


def test_parse_tiny_file():
    codes = parse_ptb_chars(TINY.encode(), "tiny")
    assert PTB_VOCAB.decode(codes) == "a_cat\nthe_N_<unk>\n"  # blank line skipped


def test_last_line_without_newline_still_ends_with_eol():
    assert PTB_VOCAB.decode(parse_ptb_chars("a b", "x")) == "ab\n"


@pytest.mark.parametrize(
    "text, match",
    [
        ("a b\nab c\n", r"bad\.txt, line 2: token 'ab' is not a single character"),
        ("a B c\n", r"bad\.txt: symbols not in the vocabulary: \['B'\]"),
        ("<!DOCTYPE html>\n<html>\n", r"bad\.txt, line 1: token '<!DOCTYPE'"),
        ("a é\n", r"bad\.txt: not a PTB character file"),
    ],
)
def test_parse_rejects_malformed_files(text, match):
    with pytest.raises(DataError, match=match):
        parse_ptb_chars(text.encode("utf-8"), "bad.txt")


# --- loader, has_split, checksums, downloads ------------------------------------------


def test_load_tiny_train_split(dirs):
    data, _ = dirs
    (data / "ptb" / "ptb.char.train.txt").write_text(TINY)
    assert has_split("train") and not has_split("test")
    codes = load_ptb_chars("train")
    assert codes.dtype == np.int64
    assert PTB_VOCAB.decode(codes) == "a_cat\nthe_N_<unk>\n"
    assert (codes == PTB_VOCAB.eol).sum() == 2


def test_damaged_train_split_names_the_file(dirs):
    data, _ = dirs
    path = data / "ptb" / "ptb.char.train.txt"
    path.write_text("<html>Not Found</html>\n")
    with pytest.raises(DataError, match=rf"token .*{path}.*delete it"):
        load_ptb_chars("train")


def test_has_split_never_downloads(dirs, monkeypatch):
    def urlopen(url, timeout=None):
        raise AssertionError("has_split must not download")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    assert not has_split("train")
    with pytest.raises(ValueError, match="unknown PTB split"):
        has_split("dev")


def test_checksum_mismatch_for_valid_split(dirs):
    data, _ = dirs
    (data / "ptb" / "ptb.char.valid.txt").write_text(TINY)
    with pytest.raises(DataError, match=f"expected sha256 {ptb_module.SHA256['valid']}"):
        load_ptb_chars("valid")


def test_missing_split_without_network(dirs):
    _, cache_path = dirs
    with pytest.raises(DataError) as err:
        load_ptb_chars("train")
    msg = str(err.value)
    assert "ptb.char.train.txt" in msg and ptb_module.URL in msg
    assert str(cache_path / "ptb") in msg and "MINIDNI_DATA_DIR" in msg


@pytest.mark.parametrize("served, ok", [(TINY, True), ("<!DOCTYPE html>\n<p>429</p>\n", False)])
def test_train_download_without_checksum_must_parse(dirs, monkeypatch, served, ok):
    _, cache_path = dirs
    monkeypatch.setattr(
        urllib.request, "urlopen", lambda url, timeout=None: io.BytesIO(served.encode())
    )
    if ok:
        assert PTB_VOCAB.decode(load_ptb_chars("train")) == "a_cat\nthe_N_<unk>\n"
        assert (cache_path / "ptb" / "ptb.char.train.txt").read_text() == served
    else:
        with pytest.raises(DataError, match="DOCTYPE"):
            load_ptb_chars("train")
        assert list((cache_path / "ptb").iterdir()) == []  # the bad download was not kept


# --- TBPTT batches --------------------------------------------------------------------


@given(n=st.integers(2, 400), batch_size=st.integers(1, 8), seq_len=st.integers(1, 30))
def test_ptb_batches(n, batch_size, seq_len):
    codes = np.arange(n, dtype=np.int64)  # distinct values: positions are recoverable
    per_row = n // batch_size
    if per_row < seq_len + 1:
        with pytest.raises(ValueError, match="too short"):
            next(ptb_batches(codes, batch_size, seq_len))
        return
    windows = list(ptb_batches(codes, batch_size, seq_len))
    assert len(windows) == (per_row - 1) // seq_len
    for k, (x, y) in enumerate(windows):
        assert x.shape == y.shape == (batch_size, seq_len)
        # row b is the b-th contiguous slice of the stream; targets are the next symbols
        start = np.arange(batch_size)[:, None] * per_row + k * seq_len
        np.testing.assert_array_equal(x, start + np.arange(seq_len))
        np.testing.assert_array_equal(y, x + 1)
        if k + 1 < len(windows):  # the next window continues where this one ended
            np.testing.assert_array_equal(windows[k + 1][0][:, 0], y[:, -1])


# --- the real files -------------------------------------------------------------------


@pytest.mark.parametrize("split, n_symbols", [("valid", 50), ("test", 48)])
def test_real_ptb(ptb_dir, split, n_symbols):
    path = ptb_dir / f"ptb.char.{split}.txt"
    raw = path.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == ptb_module.SHA256[split]
    codes = load_ptb_chars(split, ptb_dir.parent)
    assert codes.dtype == np.int64 and codes.min() >= 0 and codes.max() < len(PTB_VOCAB)
    assert len(np.unique(codes)) == n_symbols  # test lacks '*' and '4'
    text = raw.decode("ascii")
    assert (codes == PTB_VOCAB.eol).sum() == text.count("\n")  # one EOL per sentence
    assert PTB_VOCAB.decode(codes) == text.replace(" ", "")  # nothing lost, nothing added
    x, y = next(ptb_batches(codes, 32, 100))
    assert x.shape == y.shape == (32, 100)
