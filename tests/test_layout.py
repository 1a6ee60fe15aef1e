"""The code's layout: imports between newsbot's own modules point one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT


def internal_imports(package: str, root: Path = ROOT) -> dict[str, set[str]]:
    """Each module of ``package`` and the modules of the same package it imports, at any
    level (a function-local or TYPE_CHECKING import closes a circle just the same)."""
    modules = {f"{package}.{p.stem}": p for p in sorted((root / package).glob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            found |= {t for t in targets if t in modules and t != name}
        graph[name] = found
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path (first module repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_find_cycle_finds_a_circle_and_only_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_internal_imports_sees_local_and_type_checking_imports(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "a.py").write_text("def f():\n    from pkg.b import g\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\n"
                              "if TYPE_CHECKING:\n    from pkg import a\n")
    assert internal_imports("pkg", tmp_path) == {"pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}}


@pytest.mark.parametrize("package", ["bot", "retrieval", "newsbot"])
def test_no_import_cycle(package):
    assert find_cycle(internal_imports(package)) is None


def test_bot_imports_point_one_way():
    """run -> app -> commands/views -> common/present: the commands and buttons never reach
    back to the client that loads them."""
    graph = internal_imports("bot")
    assert "bot.app" in graph["bot.run"]
    assert {"bot.commands", "bot.common"} <= graph["bot.app"]
    for module in ("bot.commands", "bot.views", "bot.common", "bot.present"):
        assert "bot.app" not in graph[module], module
        assert "bot.run" not in graph[module], module
