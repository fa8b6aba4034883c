"""The results file every experiment writes: its record, how it is written and read, and
what computed it.

A results file (``<out>/<NAME>.json``) holds the experiment's name and profile, its
settings (``config``), one record per run (settings, seed, curves, final numbers), the
wall time, and the environment that computed it (:func:`environment`): minidni's
version, the Python version and machine, the git commit, and everything that changes the
numbers (:data:`NUMERICS`): the backend and dtype, the NumPy version, the BLAS library
and its thread count, and a digest of the library's source (:func:`code_digest`).

Nothing is lost and nothing is half-written:

- :func:`save` writes a temporary file with a name of its own and renames it into place,
  so a reader sees the old file or the new one, never a mix, whoever else writes;
- :func:`locked` holds a lock on the file while an experiment writes it, so that a
  second process on the same ``--out`` waits for the first instead of racing it;
- :func:`move_aside` renames a file that a new run would replace to
  ``NAME.<time>.json`` (the time it was last written), never over another file.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__, backend
from ..tools import threads

# The environment keys that change the numbers: a run is resumed only where they match.
NUMERICS = ("backend", "dtype", "numpy", "backend_version", "blas", "blas_threads", "code")


class ResultsFileError(ValueError):
    """A file where a results file should be is not one (the message says why)."""


def numerics(blas_threads: int) -> dict:
    """What changes the numbers of a run here, with ``blas_threads`` BLAS threads."""
    xp = backend.namespace()
    name = backend.get_backend()
    dtype = next(d for d in backend.DTYPES if getattr(xp, d) == backend.dtype())
    module = {"numpy": "numpy", "cupy": "cupy", "array_api_strict": "array_api_strict"}[name]
    return {
        "backend": name,
        "dtype": dtype,
        "numpy": np.__version__,  # the host-side random numbers, whatever the backend
        "backend_version": __import__(module).__version__,
        "blas": threads.blas(),
        "blas_threads": blas_threads,
        "code": code_digest(),
    }


def environment(blas_threads: int | None = None) -> dict:
    """The environment a results file records (``blas_threads``: by default the count
    :func:`minidni.tools.threads.requested` gives)."""
    count = threads.requested() if blas_threads is None else blas_threads
    return {
        "minidni": __version__,
        **numerics(count),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "commit": git_commit(),
    }


def differences(old: dict, new: dict) -> list[str]:
    """The :data:`NUMERICS` in which environment ``old`` differs from ``new``, each as
    ``key old -> new`` (a key that ``old`` lacks counts as different)."""
    return [
        f"{k} {old.get(k, 'not recorded')} -> {new[k]}"
        for k in NUMERICS
        if k in new and old.get(k) != new[k]
    ]


def record(
    name: str,
    profile: str,
    config: dict,
    runs: list[dict],
    started: float,
    env: dict | None = None,
) -> dict:
    """The results record every experiment writes.

    ``runs`` holds one dict per (setting, seed): its settings, its seed, its curves and
    its final numbers. ``wall_seconds`` is the time since ``started`` (time.time());
    ``env`` is the :func:`environment` (computed here if not given).
    """
    return {
        "experiment": name,
        "profile": profile,
        "config": config,
        "seeds": sorted({r["seed"] for r in runs if "seed" in r}),
        "runs": runs,
        "wall_seconds": round(time.time() - started, 2),
        "environment": environment() if env is None else env,
    }


# ----------------------------------------------------------------- reading and writing


def read(path: Path, name: str) -> dict:
    """The results of experiment ``name`` in ``path``; a :class:`ResultsFileError`
    saying why when it is not such a file (unreadable, not JSON, another experiment's,
    missing its runs or settings). A missing file is a FileNotFoundError."""
    try:
        text = path.read_bytes().decode("utf-8")
        results = json.loads(text)
    except FileNotFoundError:
        raise
    except IsADirectoryError as e:
        raise ResultsFileError(f"{path} is a folder, not a results file") from e
    except OSError as e:
        raise ResultsFileError(f"{path} cannot be read ({e.strerror})") from e
    except UnicodeDecodeError as e:
        raise ResultsFileError(f"{path} is not a results file (not text)") from e
    except json.JSONDecodeError as e:
        raise ResultsFileError(f"{path} is not a results file (not JSON: {e})") from e
    if not isinstance(results, dict) or "experiment" not in results:
        kinds = {list: "a JSON list", str: "a JSON string", type(None): "null"}
        what = "no experiment name" if isinstance(results, dict) else kinds.get(type(results))
        what = what or "a JSON number or boolean"
        raise ResultsFileError(f"{path} is not a results file ({what})")
    if results["experiment"] != name:
        raise ResultsFileError(
            f"{path} holds the results of {results['experiment']!r}, not of {name!r}"
        )
    shapes = {"profile": str, "config": dict, "runs": list, "environment": dict}
    wrong = [k for k, kind in shapes.items() if not isinstance(results.get(k), kind)]
    if wrong or not all(isinstance(r, dict) for r in results["runs"]):
        raise ResultsFileError(
            f"{path} is not a complete results file (missing or malformed: "
            f"{', '.join(wrong) or 'runs'})"
        )
    return results


def check_target(path: Path) -> None:
    """A ValueError before any work if ``path`` cannot become a results file: it is a
    folder, or it exists and cannot be read. (Any other file there is moved aside.)"""
    if path.is_dir():
        raise ResultsFileError(
            f"{path} is a folder, not a results file: move it away or choose another --out"
        )
    if path.exists() and not os.access(path, os.R_OK):
        raise ResultsFileError(f"{path} exists but cannot be read: fix its permissions")


_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read, then restored: the process's umask, for save()


def save(results: dict, out: Path) -> Path:
    """Write ``<out>/<experiment>.json`` atomically and return its path.

    The temporary file has a name of its own (two writers never share one) and is
    flushed to disk before it replaces the old file."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{results['experiment']}.json"
    fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # as a plainly created file (mkstemp gives 0600)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(results, indent=1))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):  # only after a failure: os.replace moved it
            os.unlink(tmp)
    return path


def move_aside(path: Path) -> Path:
    """Rename ``path`` (``NAME.json``) to ``NAME.<time it was written>.json`` beside it,
    adding ``-2``, ``-3``, ... rather than replacing another file; return the new path."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(path.stat().st_mtime))
    for n in range(1, 1000):
        target = path.with_name(f"{path.stem}.{stamp}{'' if n == 1 else f'-{n}'}{path.suffix}")
        try:
            os.link(path, target)  # fails if target exists: never overwrites
        except FileExistsError:
            continue
        except OSError:  # a file system without hard links; the writer's lock is held
            if target.exists():
                continue
            os.rename(path, target)
            return target
        os.unlink(path)
        return target
    raise ResultsFileError(f"cannot move {path} aside: too many earlier copies beside it")


@contextlib.contextmanager
def locked(path: Path, log: Callable[[str], Any] = print) -> Iterator[None]:
    """Hold the writer's lock of results file ``path`` for the block.

    The lock is a ``flock`` on ``.NAME.json.lock`` beside the file: the system releases
    it when the process ends, however it ends, so it never goes stale. A second process
    that wants it says once that it waits, and goes on when the first one ends. (Where
    ``fcntl`` does not exist, on Windows, there is no lock.)"""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.parent / f".{path.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            log(
                f"waiting: another minidni process (pid {holder}) is writing {path}; "
                "this one goes on from its results when it ends (Ctrl-C to stop waiting)"
            )
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def finished_runs(runs: list[dict]) -> list[dict]:
    """The runs that did not diverge."""
    return [r for r in runs if not r.get("diverged")]


# ----------------------------------------------------------------- the code


@functools.cache
def code_digest() -> str:
    """A short SHA-256 of the library's source (``minidni/**/*.py`` but the plots): two
    results files with the same digest were computed by the same code."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        if "plots" not in path.relative_to(root).parts:
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


@functools.cache
def git_commit() -> str | None:
    """The git commit of the checkout the library runs from (``+dirty`` when its
    ``minidni/`` differs from that commit), or None outside a git checkout: with it, a
    results file names the code that computed it, and a stopped run can be resumed from
    that commit."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "minidni"],
            capture_output=True,
            text=True,
        )
    except OSError:  # no git on this machine
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
