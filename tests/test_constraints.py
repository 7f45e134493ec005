"""constraints.txt pins everything the README's install and test commands pull, so that a fresh
machine gets the versions CI tested (a newest schemathesis with a newest pytest once broke the
test command). Walks the installed dependency tree of ``reviewsense[all,test]``."""

from __future__ import annotations

import os
import re
from importlib import metadata
from pathlib import Path

import pytest

requirements = pytest.importorskip("packaging.requirements")
from packaging.utils import canonicalize_name  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = ("all", "test")


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
            assert match, f"constraints.txt: {line!r} is not NAME==VERSION"
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def _installed_tree() -> dict[str, str]:
    """Every distribution ``reviewsense[all,test]`` pulls (markers evaluated for this machine;
    extras followed where a requirement names them) → its installed version."""
    found: dict[str, str] = {}
    todo = [("reviewsense", frozenset(EXTRAS))]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an optional dependency this platform does not install
        if name != "reviewsense":
            found[name] = dist.version
        for text in dist.requires or []:
            req = requirements.Requirement(text)
            wanted = any(req.marker is None or req.marker.evaluate({"extra": extra}) for extra in ("", *extras))
            if wanted:
                todo.append((canonicalize_name(req.name), frozenset(req.extras)))
    return found


def test_every_package_the_install_and_tests_pull_is_pinned_at_its_installed_version():
    pins, tree = _pins(), _installed_tree()
    assert len(tree) > 50
    unpinned = sorted(name for name in tree if name not in pins)
    assert not unpinned, f"add to constraints.txt (see its header for the command): {unpinned}"
    if any(pins[name].split("+")[0] != version.split("+")[0] for name, version in tree.items()):
        other = {name: (pins[name], version) for name, version in tree.items()
                 if pins[name].split("+")[0] != version.split("+")[0]}
        assert not os.environ.get("CI"), f"pinned version ≠ installed one (pin, installed): {other}"
        pytest.skip(f"installed without -c constraints.txt: {other}")  # a developer's own environment
