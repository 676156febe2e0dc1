"""The front door: the README stays one short page, and every relative link in it and in
docs/ leads to a file that is in the repo."""
import re

import pytest
from conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def relative_links(page):
    """The link targets of a Markdown page that point into the repo (no URLs, no anchors)."""
    targets = re.findall(r"\]\(([^)\s]+)\)", page.read_text())
    return [t.split("#")[0] for t in targets if not t.startswith(("http://", "https://", "#", "mailto:"))]


def test_readme_is_at_most_10_kb():
    assert (REPO / "README.md").stat().st_size <= 10_000


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page):
    links = relative_links(page)
    missing = [t for t in links if not (page.parent / t).exists()]
    assert not missing, f"{page.name} links to missing files: {missing}"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(REPO / t).resolve() for t in relative_links(REPO / "README.md")}
    assert not [p.name for p in PAGES[1:] if p.resolve() not in linked]


def test_every_study_is_named_where_the_studies_are_listed():
    page = (REPO / "docs/studies.md").read_text()
    assert not [p.stem for p in sorted((REPO / "studies").glob("*.toml")) if f"`{p.stem}`" not in page]
