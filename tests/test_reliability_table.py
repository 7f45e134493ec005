"""Every test RELIABILITY.md names exists: a claim there points at the test that proves it."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = re.compile(r"`((?:tests/[\w/]+\.py)?)::([\w]+)(?:\[[^`]*\])?`")


@cache
def _tests_in(path: Path) -> frozenset[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return frozenset(node.name for node in ast.walk(tree)
                     if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"))


def references(text: str) -> list[tuple[int, str, str]]:
    """(line, file, test) of every `tests/x.py::test` and `::test` (the file named last before it,
    on its row or a row above)."""
    found, current = [], ""
    for lineno, line in enumerate(text.splitlines(), 1):
        for file, name in REFERENCE.findall(line):
            current = file or current
            found.append((lineno, current, name))
    return found


def test_every_test_reliability_names_exists():
    refs = references((ROOT / "RELIABILITY.md").read_text(encoding="utf-8"))
    assert len(refs) > 100
    missing = [f"RELIABILITY.md:{line}: {file}::{name}" for line, file, name in refs
               if not file or not (ROOT / file).is_file() or name not in _tests_in(ROOT / file)]
    assert not missing, "\n".join(missing)


def test_a_missing_test_is_found():
    refs = references("| a | b | `tests/test_cli.py::test_nowhere`, `::test_version[x]` |")
    assert refs == [(1, "tests/test_cli.py", "test_nowhere"), (1, "tests/test_cli.py", "test_version")]
    assert "test_nowhere" not in _tests_in(ROOT / "tests/test_cli.py")
    assert "test_version" in _tests_in(ROOT / "tests/test_cli.py")
