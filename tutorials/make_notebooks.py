"""Regenerate the executed notebooks from the chapter scripts: one command.

    MINIDNI_DATA_DIR=../shared/data python tutorials/make_notebooks.py [CHAPTER ...]

Each ``tutorials/NN_name.py`` (a jupytext percent script, the source of truth) is turned
into ``tutorials/NN_name.ipynb`` and executed top to bottom in a fresh Jupyter kernel,
so the committed notebook shows every printed number and figure. Without arguments every
chapter is regenerated; ``CHAPTER`` may be given as ``01`` or ``01_one_dni.py``. A full
run takes some minutes per chapter on a CPU; ``MINIDNI_TUTORIAL_FAST=1`` makes it
seconds (numbers then mean nothing: do not commit such notebooks). The kernel runs with
``MINIDNI_PROGRESS=off``, so that no progress lines of long training runs end up in the
notebooks. The test suite checks that each notebook's code is its script's
(``tests/test_notebooks.py``); it does not execute them.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def chapters(names: list[str]) -> list[Path]:
    """The chapter scripts named (by number or file name), or all of them."""
    scripts = sorted(HERE.glob("[0-9][0-9]_*.py"))
    if not names:
        return scripts
    chosen = [s for s in scripts if any(s.name.startswith(n) for n in names)]
    if len(chosen) < len(names):
        sys.exit(
            f"make_notebooks: no chapter matches one of {names}; have {[s.name for s in scripts]}"
        )
    return chosen


def build(script: Path, timeout: int = 3600) -> Path:
    """Convert ``script`` to a notebook, execute it from the repository root, write it."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient

    notebook = jupytext.read(script)
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT)}},
    )
    client.execute()
    path = script.with_suffix(".ipynb")
    nbformat.write(notebook, path)
    return path


def main(argv: list[str]) -> int:
    # the kernel imports minidni from this checkout, installed or not
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
    )
    # the kernel inherits this environment: no progress lines in the notebooks
    os.environ["MINIDNI_PROGRESS"] = "off"
    for script in chapters(argv):
        start = time.perf_counter()
        path = build(script)
        print(
            f"{path.relative_to(ROOT)}: executed in {time.perf_counter() - start:.0f}s", flush=True
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
