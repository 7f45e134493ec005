"""Every relative link in README.md, CHANGELOG.md and docs/*.md points to a file that exists, and to a heading
that exists when it names one (``docs/data.md#groups-…``): the README and the pages under docs/
link to each other, and a renamed page or heading must not leave a dead link behind."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^\s*(```|~~~).*?^\s*\1\s*$", flags=re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", flags=re.M)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _pages() -> list[Path]:
    return [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]


def _prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where brackets are not links."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def links(text: str) -> list[str]:
    """Every link target in a Markdown text, outside code."""
    prose = _prose(text)
    return LINK.findall(prose) + REFERENCE.findall(prose)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text, lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading counts by its text
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors GitHub gives a Markdown text's headings (a repeated heading gets -1, -2 …)."""
    seen: dict[str, int] = {}
    found = set()
    for match in re.finditer(r"^#{1,6}\s+(.*?)\s*#*\s*$", FENCE.sub("", text), flags=re.M):
        slug = _slug(match.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    """The relative links of ``page`` that lead nowhere, each with the reason."""
    problems = []
    for target in links(page.read_text(encoding="utf-8")):
        if SCHEME.match(target):
            continue  # http:, https:, mailto: … are not checked here
        path_part, _, anchor = target.partition("#")
        destination = (page.parent / unquote(path_part)).resolve() if path_part else page
        if root.resolve() not in (destination, *destination.parents):
            problems.append(f"{target}: outside the repository")
        elif not destination.exists():
            problems.append(f"{target}: no such file")
        elif anchor and destination.suffix == ".md" and destination.is_file() \
                and unquote(anchor).lower() not in anchors(destination.read_text(encoding="utf-8")):
            problems.append(f"{target}: no heading with that anchor in {destination.name}")
    return problems


@pytest.mark.parametrize("page", _pages(), ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    assert broken_links(page) == [], f"{page.relative_to(ROOT)} has dead links"


def test_the_readme_links_to_the_docs():
    targets = {target.partition("#")[0] for target in links((ROOT / "README.md").read_text(encoding="utf-8"))}
    missing = [page.name for page in sorted((ROOT / "docs").glob("*.md"))
               if page.name != "README.md" and f"docs/{page.name}" not in targets]
    assert missing == [], f"pages under docs/ that the README never links to: {missing}"


def test_a_dead_link_is_found(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# A page\n\n## Some section: `code` here\n")
    readme = tmp_path / "README.md"
    readme.write_text(
        "[ok](docs/page.md) [ok too](docs/page.md#some-section-code-here) [here](#top) [web](https://example.org)\n"
        "[gone](docs/missing.md) [no anchor](docs/page.md#nowhere) [out](../elsewhere.md)\n\n# Top\n\n"
        "```\n[in code](docs/not-a-link.md)\n```\n`[inline](docs/neither.md)`\n")
    assert broken_links(readme, root=tmp_path) == [
        "docs/missing.md: no such file",
        "docs/page.md#nowhere: no heading with that anchor in page.md",
        "../elsewhere.md: outside the repository",
    ]
