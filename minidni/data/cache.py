"""Where data lives, and how a file gets there.

Every data file is looked up as ``<dir>/<subdir>/<filename>`` in each of
:func:`data_dirs`, in order:

1. ``$MINIDNI_DATA_DIR`` if set (a shared, read-only copy, e.g. ``../shared/data``);
2. the per-user cache: ``$MINIDNI_CACHE_DIR``, else ``$XDG_CACHE_HOME/minidni``, else
   ``~/.cache/minidni``.

A loader's explicit ``data_dir`` argument (the data root, or the ``<subdir>`` folder
itself) is searched before both.

A file found nowhere is downloaded into the cache from its URLs, in order. Every file,
found or downloaded, is checked against its known SHA-256 before use; for a ``.gz`` file
the sum is that of the *decompressed* bytes, so a re-compressed archive with the right
content passes (and the already-decompressed file is accepted too). Downloads go to a
temporary file in the target directory and are checked *before* ``os.replace`` puts them
in place, so an interrupted or wrong download never leaves a file under the final name.
Nothing here returns data that failed a check: every problem is a :class:`DataError`
that says what is wrong and what to do.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import tempfile
import urllib.request
import zlib
from collections.abc import Callable
from pathlib import Path

TIMEOUT_S = 60.0
_CHUNK = 1 << 20

# (path, mtime_ns, size, sha256, decompress_gz) of files already verified in this
# process: re-hashing 47 MB of MNIST on every load would dominate the load time.
_verified: set[tuple[str, int, int, str, bool]] = set()


class DataError(RuntimeError):
    """A data file is missing, corrupt or malformed (the message says which and why)."""


def cache_dir() -> Path:
    """The per-user download cache (``$MINIDNI_CACHE_DIR`` > ``$XDG_CACHE_HOME`` > ~/.cache)."""
    env = os.environ.get("MINIDNI_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "minidni"


def check_environment() -> None:
    """A ValueError (before any work) if ``MINIDNI_DATA_DIR`` names no folder, or
    ``MINIDNI_CACHE_DIR`` names something other than a folder: a typo would otherwise
    send the loaders to download into the cache, or fail there."""
    data = os.environ.get("MINIDNI_DATA_DIR")
    if data and not Path(data).expanduser().is_dir():
        raise ValueError(f"MINIDNI_DATA_DIR: there is no folder {data!r}")
    cache = os.environ.get("MINIDNI_CACHE_DIR")
    if cache and Path(cache).expanduser().exists() and not Path(cache).expanduser().is_dir():
        raise ValueError(f"MINIDNI_CACHE_DIR: {cache!r} is not a folder")


def data_dirs() -> list[Path]:
    """The directories searched for data, in order: ``$MINIDNI_DATA_DIR`` (if set), the cache."""
    env = os.environ.get("MINIDNI_DATA_DIR")
    return ([Path(env).expanduser()] if env else []) + [cache_dir()]


def _candidates(
    subdir: str, filename: str, decompress_gz: bool, data_dir: str | os.PathLike | None
) -> list[tuple[Path, bool]]:
    """(path, is_gzip) pairs to try, best first.

    An explicit ``data_dir`` comes first and may be either the data root or the
    ``<subdir>`` folder itself. A ``.gz`` file may also be present already decompressed.
    """
    dirs = [Path(d) / subdir for d in data_dirs()]
    if data_dir is not None:
        dirs = [Path(data_dir).expanduser() / subdir, Path(data_dir).expanduser()] + dirs
    plain = filename[:-3] if decompress_gz and filename.endswith(".gz") else None
    out = []
    for d in dirs:
        out.append((d / filename, decompress_gz))
        if plain is not None:
            out.append((d / plain, False))
    return out


def locate(
    subdir: str,
    filename: str,
    decompress_gz: bool = False,
    data_dir: str | os.PathLike | None = None,
) -> Path | None:
    """The first existing local copy of a file, or None; never downloads or verifies."""
    for path, _ in _candidates(subdir, filename, decompress_gz, data_dir):
        if path.is_file():
            return path
    return None


def _read(path: Path, is_gzip: bool) -> bytes:
    """The file's bytes, gunzipped if ``is_gzip``; a file that cannot be read or a
    damaged archive is a DataError."""
    try:
        raw = path.read_bytes()
    except OSError as e:  # no permission, a folder under a file's name, an I/O error
        raise DataError(f"cannot read the data file {path} ({e.strerror or e})") from e
    if not is_gzip:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile, truncated stream, bad CRC
        raise DataError(
            f"{path} is not a valid gzip file ({type(e).__name__}: {e}); it is damaged or "
            "incomplete. Delete it and load again to re-download it."
        ) from e


_REDOWNLOAD = (
    "The file is damaged or is not the expected file. Delete it and load again to "
    "re-download it (or replace it with a good copy)."
)


def _check(path: Path, content: bytes, sha256: str | None, what: str, advice: str) -> None:
    if sha256 is None:
        return
    actual = hashlib.sha256(content).hexdigest()
    if actual != sha256:
        raise DataError(
            f"checksum mismatch for {path}{what}: expected sha256 {sha256}, got {actual}. {advice}"
        )


def _download(
    urls: list[str],
    target: Path,
    is_gzip: bool,
    sha256: str | None,
    validate: Callable[[bytes, str], None] | None,
) -> tuple[bytes | None, list[str]]:
    """Try each URL; return (verified content, []) or (None, one failure note per URL)."""
    failures = []
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return None, [f"cannot create {target.parent} ({e})"]
    for url in urls:
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".part")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=TIMEOUT_S) as r:
                while chunk := r.read(_CHUNK):
                    f.write(chunk)
            content = _read(tmp, is_gzip)
            _check(tmp, content, sha256, f" (downloaded from {url})", "The download was discarded.")
            if validate is not None:
                validate(content, url)
            os.replace(tmp, target)
            return content, []
        except (OSError, http.client.HTTPException, DataError) as e:
            failures.append(f"{url} ({type(e).__name__}: {e})")
        finally:
            tmp.unlink(missing_ok=True)  # after a successful os.replace it is already gone
    return None, failures


def _local(
    subdir: str,
    filename: str,
    sha256: str | None,
    decompress_gz: bool,
    data_dir: str | os.PathLike | None,
) -> tuple[Path, bool, bytes | None] | None:
    """The first local copy as (path, is_gzip, content); content None if not read here."""
    for path, is_gzip in _candidates(subdir, filename, decompress_gz, data_dir):
        if not path.is_file():
            continue
        stat = path.stat()
        if sha256 is None:
            return path, is_gzip, None  # nothing to verify: the caller parses it
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, sha256, is_gzip)
        if key in _verified:
            return path, is_gzip, None
        content = _read(path, is_gzip)
        what = " (sha256 of the decompressed bytes)" if is_gzip else ""
        _check(path, content, sha256, what, _REDOWNLOAD)
        _verified.add(key)
        return path, is_gzip, content
    return None


def _fetch(
    subdir: str,
    filename: str,
    urls: list[str],
    sha256: str | None,
    decompress_gz: bool,
    data_dir: str | os.PathLike | None,
    validate: Callable[[bytes, str], None] | None,
) -> tuple[Path, bool, bytes | None]:
    found = _local(subdir, filename, sha256, decompress_gz, data_dir)
    if found is not None:
        return found
    target = cache_dir() / subdir / filename
    content, failures = _download(urls, target, decompress_gz, sha256, validate)
    if content is not None:
        return target, decompress_gz, content
    looked = ", ".join(str(p.parent) for p, _ in _candidates(subdir, filename, False, data_dir))
    raise DataError(
        f"data file {filename!r} was not found and could not be downloaded.\n"
        f"  looked in: {looked}\n"
        "  tried:\n    " + "\n    ".join(failures or ["(no URLs known)"]) + "\n"
        f"Download it by hand and put it into {target.parent}/ , or set MINIDNI_DATA_DIR to a "
        f"directory that holds {subdir}/{filename}."
    )


def fetch(
    subdir: str,
    filename: str,
    urls: list[str],
    sha256: str | None,
    decompress_gz: bool = False,
    *,
    data_dir: str | os.PathLike | None = None,
    validate: Callable[[bytes, str], None] | None = None,
) -> Path:
    """The path of a verified local copy of ``<subdir>/<filename>``, downloading it if needed.

    Args:
        subdir, filename: the file's place under a data directory (e.g. ``"mnist"``,
            ``"t10k-labels-idx1-ubyte.gz"``).
        urls: download locations, tried in order when no local copy exists.
        sha256: hex SHA-256 of the content (of the *decompressed* bytes when
            ``decompress_gz``), or None when no sum is known: then only ``validate``
            (e.g. a parser that raises :class:`DataError`) guards a download, and the
            caller must check a local copy itself (by parsing it).
        decompress_gz: the file is gzip-compressed; an already-decompressed copy under the
            name without ``.gz`` is accepted too (and its path returned).
        data_dir: searched before :func:`data_dirs`; the data root or the subdir itself.
        validate: ``validate(content, source)`` raises DataError for content that must not
            be kept; called on downloads before they are moved into place.

    Raises:
        DataError: checksum mismatch, damaged archive, or no local copy and no download.
    """
    return _fetch(subdir, filename, urls, sha256, decompress_gz, data_dir, validate)[0]


def fetch_bytes(
    subdir: str,
    filename: str,
    urls: list[str],
    sha256: str | None,
    decompress_gz: bool = False,
    *,
    data_dir: str | os.PathLike | None = None,
    validate: Callable[[bytes, str], None] | None = None,
) -> bytes:
    """Like :func:`fetch`, but return the verified content (decompressed if ``decompress_gz``).

    Loaders use this so that a file is read and decompressed once, not once to verify
    and again to parse.
    """
    path, is_gzip, content = _fetch(
        subdir, filename, urls, sha256, decompress_gz, data_dir, validate
    )
    if content is None:  # verified earlier in this process, or nothing to verify
        content = _read(path, is_gzip)
    return content
