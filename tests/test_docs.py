"""The README and docs/ stay true to the tree: links resolve, named files exist, the README stays short."""

import functools
import os
import re
from pathlib import Path

import pytest

from devtools.template import REPO_ROOT

PAGES = [REPO_ROOT / "README.md", REPO_ROOT / "CONTRIBUTING.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
# Where a path written in the docs may be rooted: the repository, the function's task root, the layer.
ROOTS = [REPO_ROOT, REPO_ROOT / "functions" / "api", REPO_ROOT / "layers" / "shared"]
_LINK = re.compile(r"\]\(([^)#\s]*)(?:#([^)\s]+))?\)")
_PATH = re.compile(r"`([\w./-]+\.(?:py|md|yaml|yml|toml|json|txt))`")


@functools.cache
def _file_names() -> frozenset[str]:
    """The name of every file in the project (not in virtual environments, npm packages or git)."""
    names: set[str] = set()
    for _folder, subfolders, files in os.walk(REPO_ROOT):
        subfolders[:] = [name for name in subfolders if not name.startswith(".") and name != "node_modules"]
        names.update(files)
    return frozenset(names)


def _anchors(page: Path) -> set[str]:
    # GitHub's slugs: lower case, punctuation dropped, spaces to hyphens.
    headings = re.findall(r"^#+ (.+)$", page.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_links_resolve(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    for target, anchor in _LINK.findall(text):
        if target.startswith(("http://", "https://")):
            continue
        linked = (page.parent / target).resolve() if target else page
        assert linked.exists(), f"{page.name} links to missing {target}"
        if anchor and linked.suffix == ".md":
            assert anchor in _anchors(linked), f"{page.name} links to missing #{anchor} in {linked.name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_named_files_exist(page: Path) -> None:
    for path in _PATH.findall(page.read_text(encoding="utf-8")):
        if path.startswith(("/", ".local/")) or "orders" in path:
            continue  # a URL path, a file make run writes, or CONTRIBUTING.md's example resource
        candidates = [root / path for root in ROOTS] + [page.parent / path]
        found = any(candidate.exists() for candidate in candidates) or (
            "/" not in path and path in _file_names()
        )
        assert found, f"{page.name} names {path}, which does not exist"


def test_the_readme_is_a_short_entry_point() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode()) < 10_000
    for page in (REPO_ROOT / "docs").glob("*.md"):
        assert f"(docs/{page.name})" in readme, f"the README does not link docs/{page.name}"
