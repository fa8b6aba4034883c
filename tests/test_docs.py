"""The README is a front page that stays one, and every link in the docs leads somewhere.

- the README's test command is the line CI runs verbatim (``.ci/run``);
- the front page stays short (the lab notebook lives in ``docs/results.md``);
- every relative link in README.md, docs/*.md, tutorials/README.md and figures/README.md
  names a file that exists (and an anchor that exists, for links into docs/).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEST_COMMAND = 'pip install -e ".[test]" && python -m pytest'
PAGES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "tutorials" / "README.md",
    ROOT / "figures" / "README.md",
]


def test_readme_test_command_is_the_one_ci_runs():
    readme = (ROOT / "README.md").read_text().splitlines()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert TEST_COMMAND in readme and TEST_COMMAND in ci


def test_readme_is_a_front_page():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    assert "## Results at a glance" in text and "docs/results.md" in text
    assert re.search(r"!\[[^\]]*\]\(figures/\w+\.png\)", text)  # one figure, committed


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, - for space."""
    heads = re.findall(r"^#+ (.+)$", page.read_text(), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # code is not links
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # an external address
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.exists(), f"{page.name}: link {target!r} leads nowhere"
        if anchor and resolved.suffix == ".md":
            assert anchor in _anchors(resolved), f"{page.name}: no heading for {target!r}"
