"""The README is a user's page that links to the design and speed pages in docs/, and neither it
nor they refer to a file outside the repository, to one that does not exist, or to the issues
the project was built in."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TOP = ("graphbp/", "tests/", "docs/", "backends/", "plugins/", ".ci/")
"""Backticked text that starts with one of these names a file or folder of the repository."""


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", page.read_text(), flags=re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_link_is_to_a_file_of_the_repository_that_exists(page: Path) -> None:
    text = page.read_text()
    assert "DESIGN.md" not in text and "../shared" not in text and "/work/" not in text
    history = re.findall(r"(?i)\b(?:issue \d+|\w+ issue\b|until issue|version before)", text)
    assert history == [], f"{page.name} refers to the project's history: {history}"
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert links or page.name != "README.md"
    for link in links:
        if re.match(r"[a-z]+://", link):
            continue  # a web address
        target, _, anchor = link.partition("#")
        path = (page.parent / target).resolve() if target else page
        assert path.is_relative_to(ROOT), f"{page.name} links outside the repository: {link}"
        assert path.exists(), f"{page.name} links to {link}, which does not exist"
        if anchor:
            assert anchor in _anchors(path), f"{page.name}: no heading for {link}"
    for name in re.findall(r"`([^`\s]+)`", text):
        if name.startswith(TOP):  # graphbp/program.py, tests/test_safe_*.py, docs/seed_w1.svg
            assert list(ROOT.glob(name.rstrip("/"))), f"{page.name} names {name}: not found"


def test_the_readme_is_a_users_page_and_the_design_and_speed_notes_are_in_docs() -> None:
    readme = (ROOT / "README.md").read_text()
    headings = re.findall(r"^## (.+)$", readme, flags=re.M)
    for section in ("Quick start", "Concepts", "Errors"):
        assert section in headings
    assert headings.index("Quick start") < headings.index("Errors")
    assert "(docs/design.md)" in readme and "(docs/speed.md)" in readme
    design = (ROOT / "docs" / "design.md").read_text()
    for section in ("How the backward pass works", "Design notes", "Layout"):
        assert section not in headings and f"\n## {section}\n" in design
    assert "| (32, 8, 16, 1) |" in (ROOT / "docs" / "speed.md").read_text()
    assert "| (32, 8, 16, 1) |" not in readme and "## Speed" not in readme
