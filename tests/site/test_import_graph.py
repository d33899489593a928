"""The arrows between the parts (docs/architecture.md): app → captioning → realtime, and
app → realtime; never back. Every import counts, including those inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# part → the Roundtable parts it must never import
FORBIDDEN = {
    "realtime": {"app", "captioning"},
    "captioning": {"app"},
}


def imported_parts(source: str) -> set[str]:
    """The top-level packages a module's source imports (absolute imports only: the
    parts never use relative ones)."""
    parts: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            parts.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            parts.add(node.args[0].value.split(".")[0])
    return parts


def violations() -> list[str]:
    found = []
    for part, forbidden in FORBIDDEN.items():
        for path in sorted((ROOT / part).rglob("*.py")):
            for other in sorted(imported_parts(path.read_text()) & forbidden):
                found.append(f"{path.relative_to(ROOT)} imports {other}")
    return found


def test_lower_parts_never_import_higher_ones() -> None:
    assert violations() == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from app.db import utcnow", {"app"}),
        ("import app.models as m", {"app"}),
        ("def f():\n    from app.live import events\n", {"app"}),
        ("import importlib\nimportlib.import_module('app.db')", {"importlib", "app"}),
        ("from . import frames\nfrom realtime.db import Base", {"realtime"}),
    ],
)
def test_every_kind_of_import_is_seen(source: str, expected: set[str]) -> None:
    assert imported_parts(source) == expected


def test_the_check_names_the_module_that_breaks_the_rule(tmp_path: Path) -> None:
    # The same walk over a copy of realtime/ with one bad import added reports it.
    bad = "from app.db import utcnow\n"
    assert imported_parts((ROOT / "realtime" / "db.py").read_text() + bad) >= {"app"}
