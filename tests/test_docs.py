"""The docs in docs/ build with ``mkdocs build --strict`` (a broken link or anchor, or an API reference to a
name that no longer exists, fails), and every page is one click from the README."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def nav_pages(nav: list) -> list[str]:
    pages = []
    for entry in nav:
        for value in entry.values() if isinstance(entry, dict) else [entry]:
            pages += nav_pages(value) if isinstance(value, list) else [value]
    return pages


def anchors(page: Path) -> set[str]:
    """The heading ids of a Markdown page, as MkDocs (the toc extension) and GitHub make them."""
    from markdown.extensions.toc import slugify

    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)  # '# comment' lines in code blocks
    return {slugify(heading, "-") for heading in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)}


def test_the_docs_build_strictly(tmp_path):
    build = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                            str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
                           cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert build.returncode == 0, build.stderr[-3000:]
    assert (tmp_path / "site" / "api" / "index.html").read_text().count("nerre.predict.Extractor") > 0
    assert (tmp_path / "site" / "results" / "ablations" / "comparison.png").is_file()


def test_every_page_is_one_click_from_the_readme():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = nav_pages(config["nav"])
    assert sorted(pages) == sorted(p.name for p in (ROOT / "docs").glob("*.md")), "a page is missing from the nav"
    linked = LINK.findall((ROOT / "README.md").read_text())
    assert not [page for page in pages if not any(link.split("#")[0] == f"docs/{page}" for link in linked)]


@pytest.mark.parametrize("page", ["README.md", *(f"docs/{p.name}" for p in sorted((ROOT / "docs").glob("*.md")))])
def test_links_to_pages_and_their_sections_resolve(page):
    """What GitHub shows too: the README's links into docs/ and the pages' links to each other."""
    source = ROOT / page
    for link in LINK.findall(source.read_text()):
        if re.match(r"[a-z]+:", link):
            continue
        path, _, anchor = link.partition("#")
        target = (source.parent / path) if path else source
        assert target.exists(), f"{page}: {link} points to no file"
        if anchor:
            assert anchor in anchors(target), f"{page}: {link} names no section of {path or page}"
