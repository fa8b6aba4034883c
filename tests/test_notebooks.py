"""Every tutorial chapter is committed as an executed notebook whose cells are the script's.

The scripts (``tutorials/NN_*.py``) are the source of truth and what the other tutorial
tests run; ``python tutorials/make_notebooks.py`` regenerates the notebooks. These
checks are cheap (no notebook is executed here): the notebook's code and text cells
equal the script's, every code cell ran (in order), none ended in an error, the
chapter's figures (at least three) are in the notebook, so a reader browsing the
repository sees them, and no progress lines of training runs are. Each chapter states
its measured run time in its header and in tutorials/README.md; the two must agree.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext", reason="the test extra installs jupytext")
nbformat = pytest.importorskip("nbformat")

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
CHAPTERS = sorted(TUTORIALS.glob("[0-9][0-9]_*.py"))
REGENERATE = "run: MINIDNI_DATA_DIR=../shared/data python tutorials/make_notebooks.py"


def code_cells(notebook) -> list:
    return [c for c in notebook.cells if c.cell_type == "code"]


def test_there_are_chapters():
    assert len(CHAPTERS) >= 4


@pytest.mark.parametrize("script", CHAPTERS, ids=lambda p: p.name)
def test_notebook_is_the_executed_script(script):
    path = script.with_suffix(".ipynb")
    assert path.exists(), f"{path.name} is missing; {REGENERATE}"
    notebook = nbformat.read(path, as_version=4)
    cells = code_cells(notebook)
    source = jupytext.read(script)
    expected = [c.source for c in code_cells(source)]
    assert [c.source for c in cells] == expected, f"{path.name} is out of date; {REGENERATE}"
    text = [c.source for c in notebook.cells if c.cell_type == "markdown"]
    expected_text = [c.source for c in source.cells if c.cell_type == "markdown"]
    assert text == expected_text, f"{path.name}'s text is out of date; {REGENERATE}"
    assert [c.execution_count for c in cells] == list(range(1, len(cells) + 1)), "not executed"
    outputs = [o for c in cells for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3, f"{path.name} shows {len(images)} figures, fewer than three"
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "FAST=True" not in text, f"{path.name} was executed in FAST mode; {REGENERATE}"
    stderr = "".join(o.get("text", "") for o in outputs if o.get("name") == "stderr")
    assert "elapsed" not in stderr, f"{path.name} holds progress lines; {REGENERATE}"


MEASURED = re.compile(r"measured:\s+(\d+)\s+CPU\s+seconds")


@pytest.mark.parametrize("script", CHAPTERS, ids=lambda p: p.name)
def test_run_time_is_stated_the_same_in_readme_and_chapter(script):
    """The chapter's header and its line in tutorials/README.md quote one measurement."""
    header = MEASURED.findall(script.read_text())
    assert len(header) == 1, f"{script.name} states its measured run time once in its header"
    readme = (TUTORIALS / "README.md").read_text()
    entry = readme[readme.index(f"]({script.name})") :].split("\n- ", 1)[0]
    assert MEASURED.findall(entry) == header, f"README and {script.name} disagree"
