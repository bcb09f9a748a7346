"""The module graph: every runtime module imports on its own, and no import (deferred ones inside
functions included) closes a cycle, in the runtime or anywhere in the package."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "astra_ros"
RUNTIME_MODULES = sorted(f"astra_ros.runtime.{p.stem}" for p in (PACKAGE / "runtime").glob("*.py"))
PACKAGE_MODULES = sorted(
    ".".join(p.relative_to(REPO).with_suffix("").parts)
    for p in PACKAGE.rglob("*.py")
    if p.name != "__init__.py"
)


def module_path(name: str) -> Path | None:
    base = REPO.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imports_of(name: str) -> set[str]:
    """astra_ros modules that ``name`` imports anywhere in its source (top level or in functions)."""
    found = set()
    for node in ast.walk(ast.parse(module_path(name).read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from package import module`` imports the module; ``from module import name`` the module
            targets = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        found |= {t for t in targets if t.startswith("astra_ros.") and module_path(t) is not None}
    found.discard(name)
    return {t for t in found if not module_path(t).name == "__init__.py"}


def import_graph(roots: list[str]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name not in graph:
            graph[name] = imports_of(name)
            todo += graph[name]
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        stack.append(name)
        for target in sorted(graph.get(name, ())):
            if state.get(target) == 1:
                return stack[stack.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[name] = 2
        return None

    for name in sorted(graph):
        if name not in state and (cycle := visit(name)):
            return cycle
    return None


def test_the_runtime_module_graph_has_no_cycle():
    assert find_cycle(import_graph(RUNTIME_MODULES)) is None


def test_the_package_module_graph_has_no_cycle():
    graph = import_graph(PACKAGE_MODULES)
    assert {"astra_ros.ros.node", "astra_ros.data.images", "astra_ros.bench"} <= set(graph)
    assert find_cycle(graph) is None


def test_the_cycle_finder_sees_a_deferred_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_engine_cache_is_a_leaf():
    graph = import_graph(["astra_ros.runtime.engine_cache"])
    below = set(graph) - {"astra_ros.runtime.engine_cache"}
    leaves = {"astra_ros.files", "astra_ros.hashing", "astra_ros.runtime.sidecar", "astra_ros.model.config"}
    leaves.add("astra_ros.model.robot_description")  # what model.config checks its kinematics with
    assert below <= leaves


@pytest.mark.parametrize("module", RUNTIME_MODULES)
def test_each_runtime_module_imports_in_a_fresh_interpreter(module):
    command = [sys.executable, "-c", f"import {module}"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
