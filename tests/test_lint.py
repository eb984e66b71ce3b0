"""Code checks over the repository: ruff's findings (rules in pyproject.toml), and the size limits
of library modules (400 lines) and functions (60 lines)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 60


def test_ruff_finds_nothing():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", "."],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]


def oversized(source: str, path: str) -> list[str]:
    """``path: what`` for a module over MAX_MODULE_LINES lines and each function over MAX_FUNCTION_LINES."""
    found = []
    if source.count("\n") > MAX_MODULE_LINES:
        found.append(f"{path}: {source.count(chr(10))} lines")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
            found.append(f"{path}:{node.lineno} {node.name}: {node.end_lineno - node.lineno + 1} lines")
    return found


def test_the_size_check_counts_lines_and_function_lengths():
    long_function = "def f():\n" + "    x = 1\n" * MAX_FUNCTION_LINES
    assert oversized(long_function, "m.py") == [f"m.py:1 f: {MAX_FUNCTION_LINES + 1} lines"]
    assert oversized("def f():\n    return 1\n", "m.py") == []
    assert oversized("x = 1\n" * (MAX_MODULE_LINES + 1), "m.py") == [f"m.py: {MAX_MODULE_LINES + 1} lines"]


def test_library_modules_and_functions_stay_small():
    found = [entry for path in sorted((ROOT / "src" / "advxai").rglob("*.py"))
             for entry in oversized(path.read_text(), str(path.relative_to(ROOT)))]
    assert not found, "\n".join(found)


def sibling_imports(source: str) -> tuple[set[str], list[str]]:
    """The sibling modules (``from .x import ...``) a stages module imports at its top, and
    ``line: from .x`` for each it imports inside a function or class instead (a hidden cycle)."""
    tree = ast.parse(source)
    top = {node.module.split(".")[0] for node in tree.body if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module}
    nested = [f"{node.lineno}: from .{node.module}" for node in ast.walk(tree)
              if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module and node not in tree.body]
    return top, nested


def import_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of ``graph`` (module → the modules it imports), as the modules along it; [] without one."""
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> list[str]:
        state[module] = "open"
        for imported in sorted(graph.get(module, ())):
            if state.get(imported) == "open":
                return [*path[path.index(imported):], imported]  # the open modules are the path
            if imported not in state and (cycle := visit(imported, [*path, imported])):
                return cycle
        state[module] = "done"
        return []

    for module in sorted(graph):
        if module not in state and (cycle := visit(module, [module])):
            return cycle
    return []


def test_the_import_checks_find_nested_imports_and_cycles():
    assert sibling_imports("from .a import x\n\ndef f():\n    from .b import y\n") == ({"a"}, ["4: from .b"])
    assert import_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert import_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_stage_modules_import_each_other_at_the_top_without_cycles():
    """No stage module dodges an import cycle by importing a sibling inside a function: the imports
    between the stages are all at module top, and they form no cycle."""
    graph, nested = {}, []
    for path in sorted((ROOT / "src" / "advxai" / "stages").glob("*.py")):
        graph[path.stem], inside = sibling_imports(path.read_text())
        nested += [f"{path.relative_to(ROOT)}:{entry}" for entry in inside]
    assert not nested, "\n".join(nested)
    assert not import_cycle(graph), " → ".join(import_cycle(graph))
