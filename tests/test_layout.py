"""The layout shows the pipeline: each stage imports only stages before it, so the packages of
``src/reviewsense`` form no cycle (imports inside functions count too)."""

from __future__ import annotations

import ast
from pathlib import Path

import reviewsense

ROOT = Path(reviewsense.__file__).parent


def _unit(path: Path) -> str:
    """A subpackage (``models``) or a top-level module (``pipeline``)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return parts[0] if len(parts) > 1 else parts[0]


def _imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        unit = _unit(path)
        depth = len(path.relative_to(ROOT).parts) - 1  # 0: a top-level module, 1: inside a subpackage
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                up = node.level - depth  # how far above the package root the import starts (1: the root)
                if up != 1:
                    continue  # within its own subpackage
                names = [node.module.split(".")[0]] if node.module else [a.name for a in node.names]
                for name in names:
                    if name != unit and (ROOT / name).exists() or (ROOT / f"{name}.py").exists():
                        graph.setdefault(unit, set()).add(name)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt == node:
                continue
            if state.get(nxt) == 1:
                return [*path, node, nxt]
            if nxt not in state and (found := visit(nxt, [*path, node])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [])):
            return found
    return None


def test_the_packages_form_no_cycle():
    graph = _imports()
    assert {"models", "training", "data", "text"} <= set(graph)
    assert _cycle(graph) is None, " → ".join(_cycle(graph) or [])


def test_the_cycle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}}) is None


def test_the_low_stages_do_not_reach_up():
    graph = _imports()
    assert not graph.get("training", set()) & {"models", "evaluation", "export", "pipeline", "estimators"}
    assert not graph.get("text", set()) & {"data", "models", "training"}
    assert not graph.get("models", set()) & {"estimators", "pipeline", "run_config", "cli", "serving"}
