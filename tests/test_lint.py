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
