"""The library is the ground floor: it imports none of its shells, and its modules form no cycle.

Every import is counted, those inside functions too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIBRARY = Path(__file__).resolve().parents[1] / "qanchor"
SHELLS = ("components", "dags", "services", "monitoring")


def _module(path: Path) -> str:
    parts = path.relative_to(LIBRARY.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """Module -> every module name it imports (absolute; relative ones resolved)."""
    out: dict[str, set[str]] = {}
    for path in sorted(LIBRARY.rglob("*.py")):
        name = _module(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))  # fmt: skip
                found.add(base)
                found |= {f"{base}.{a.name}" for a in node.names}  # `from pkg import module`
        out[name] = found
    return out


def test_the_library_imports_no_shell() -> None:
    bad = {
        m: sorted(i for i in found if i.split(".")[0] in SHELLS) for m, found in imports().items()
    }
    assert not {m: b for m, b in bad.items() if b}


def test_the_library_has_no_import_cycle() -> None:
    graph = imports()
    modules = set(graph)
    edges = {m: {i for i in found if i in modules and i != m} for m, found in graph.items()}
    # A package's __init__ importing its own submodules is how packages work, not a cycle.
    edges = {m: {i for i in e if not (i.startswith(m + "."))} for m, e in edges.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in sorted(edges[m]):
            if state.get(n) == 1:
                cycles.append(stack[stack.index(n) :] + [n] if n in stack else [m, n])
            elif n not in state:
                visit(n, [*stack, n])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    assert not cycles, cycles


@pytest.mark.parametrize("shell", SHELLS)
def test_each_shell_exists_beside_the_library(shell: str) -> None:
    assert (LIBRARY.parent / shell).is_dir()


def test_modules_and_functions_stay_small() -> None:
    """STYLE.md: modules of at most 300 lines, functions of at most 60, in the library and the
    shells (a DAG's body, which wires its tasks, aside)."""
    roots = [LIBRARY, *(LIBRARY.parent / s for s in SHELLS)]
    long_modules, long_functions = [], []
    for path in sorted(p for root in roots for p in root.rglob("*.py")):
        text = path.read_text()
        if text.count("\n") > 300:
            long_modules.append(f"{path.name}: {text.count(chr(10))} lines")
        dag_bodies = path.parent.name == "dags"
        for node in ast.walk(ast.parse(text, str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = node.end_lineno - node.lineno + 1
                is_dag = dag_bodies and any(
                    getattr(d, "id", getattr(getattr(d, "func", None), "id", "")) == "dag"
                    for d in node.decorator_list
                )
                if size > 60 and not is_dag:
                    long_functions.append(f"{path.name}:{node.lineno} {node.name}: {size} lines")
    assert long_modules == [] and long_functions == []
