"""Every module can be read in one sitting (docs/architecture.md): at most MODULE_LINES lines,
and no function over FUNCTION_LINES lines unless the comment just above it says why (a line
starting `# Longer than 60 lines because`)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PARTS = ("app", "realtime", "captioning")
MODULE_LINES = 420
FUNCTION_LINES = 60
EXCUSE = "# Longer than 60 lines because"


def python_files() -> list[Path]:
    return sorted(path for part in PARTS for path in (ROOT / part).rglob("*.py"))


def long_functions(source: str) -> list[tuple[str, int]]:
    """(name, lines) of each function longer than FUNCTION_LINES without its excuse."""
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
        length = (node.end_lineno or node.lineno) - first + 1
        above = lines[first - 2].strip() if first >= 2 else ""
        if length > FUNCTION_LINES and not above.startswith(EXCUSE):
            found.append((node.name, length))
    return found


def test_no_module_is_too_long_to_read_in_one_sitting() -> None:
    files = python_files()
    assert len(files) > 100  # the walk finds the code
    too_long = {
        str(path.relative_to(ROOT)): n
        for path in files
        if (n := len(path.read_text().splitlines())) > MODULE_LINES
    }
    assert too_long == {}


def test_no_function_is_too_long_without_saying_why() -> None:
    too_long = {
        f"{path.relative_to(ROOT)}: {name}": n
        for path in python_files()
        for name, n in long_functions(path.read_text())
    }
    assert too_long == {}


def test_the_size_check_sees_a_long_function_and_its_excuse() -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(FUNCTION_LINES))
    assert long_functions(f"def f():\n{body}") == [("f", FUNCTION_LINES + 1)]
    excused = f"{EXCUSE} it is one table.\ndef f():\n{body}"
    assert long_functions(excused) == []
    assert long_functions("async def g():\n    pass\n") == []
