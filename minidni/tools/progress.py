"""Progress of long runs, with an estimate of the time left, readable in a log file.

On a terminal (stderr is a TTY) and with one worker, a run shows a tqdm bar. Otherwise
(a log file, or several worker processes sharing one terminal) it prints a plain line
every ``MINIDNI_PROGRESS_SECONDS`` seconds (default 60), e.g.::

    ff depth=3 dni seed=0: step 1200/3000 (40%), 0:01:10 elapsed, about 0:01:45 left

``MINIDNI_PROGRESS=off`` silences both; ``=lines`` forces lines on a terminal too
(``auto``, the default, chooses). :func:`check_environment` refuses other values before
any work starts. The runner (:mod:`minidni.experiments.runner`) names the current run
with :func:`set_run` and adds the overall estimate after each finished run (:func:`eta_line`).
"""

from __future__ import annotations

import datetime
import os
import sys
import time

_run = {"label": "", "bars": True}
MODES = ("auto", "lines", "off")


def settings() -> tuple[str, float]:
    """(``MINIDNI_PROGRESS``, ``MINIDNI_PROGRESS_SECONDS``) from the environment; a
    ValueError naming the variable when one cannot be used."""
    mode = os.environ.get("MINIDNI_PROGRESS", "auto").strip() or "auto"
    if mode not in MODES:
        raise ValueError(f"MINIDNI_PROGRESS: expects one of {', '.join(MODES)}, got {mode!r}")
    text = os.environ.get("MINIDNI_PROGRESS_SECONDS", "60")
    try:
        every = float(text)
    except ValueError:
        every = float("nan")
    if not every >= 0 or every == float("inf"):
        raise ValueError(
            f"MINIDNI_PROGRESS_SECONDS: expects seconds between progress lines, a number "
            f">= 0, got {text!r}"
        )
    return mode, every


def check_environment() -> None:
    """A ValueError (before any work) if a progress variable cannot be used."""
    settings()


def set_run(label: str, bars: bool = True) -> None:
    """Name the run that the next :class:`Progress` belongs to; ``bars=False`` asks for
    plain lines even on a terminal (several workers share it)."""
    _run.update(label=label, bars=bars)


def duration(seconds: float) -> str:
    """``0:01:45`` for 105 seconds (whole seconds)."""
    return str(datetime.timedelta(seconds=round(max(seconds, 0.0))))


def eta_line(done: int, total: int, elapsed: float, finished_here: int) -> str:
    """``[5/36 runs, 0:04:10 elapsed, about 0:25:50 left]``: the time left is the
    runs still to do at the pace of the ``finished_here`` runs run in this session."""
    left = ""
    if 0 < finished_here and done < total:
        left = f", about {duration(elapsed / finished_here * (total - done))} left"
    return f"[{done}/{total} runs, {duration(elapsed)} elapsed{left}]"


class Progress:
    """``total`` steps of the current run; :meth:`update` after each, :meth:`close` at
    the end."""

    def __init__(self, total: int, unit: str = "step"):
        mode, self.every = settings()
        self.total, self.unit, self.n = total, unit, 0
        self.label = _run["label"] or "training"
        self.started = self.last = time.perf_counter()
        self.bar = None
        self.lines = mode != "off"
        if mode == "auto" and _run["bars"] and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.label, unit=unit, leave=False)
            self.lines = False

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.lines:
            now = time.perf_counter()
            if now - self.last >= self.every and self.n < self.total:
                self.last = now
                print(self.line(now - self.started), file=sys.stderr, flush=True)

    def line(self, elapsed: float) -> str:
        """The plain progress line after ``elapsed`` seconds."""
        rate = self.n / elapsed if elapsed > 0 else 0.0
        left = f", about {duration((self.total - self.n) / rate)} left" if rate > 0 else ""
        pct = 100 * self.n / self.total if self.total else 100
        return (
            f"  {self.label}: {self.unit} {self.n}/{self.total} ({pct:.0f}%), "
            f"{duration(elapsed)} elapsed{left}"
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
