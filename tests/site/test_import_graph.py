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


def imported_modules(source: str) -> set[str]:
    """The dotted names a module's source imports: `from a.b import c` counts as both
    `a.b` and `a.b.c`, since c may be a module."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


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


def is_route_module(name: str) -> bool:
    """Route modules: a feature's `routes` (module or package) and `api`, and the app's
    own router assembly."""
    parts = name.split(".")
    return parts[0] == "app" and ("routes" in parts[1:] or "api" in parts[1:])


def route_module_names() -> list[str]:
    names = []
    for path in sorted((ROOT / "app").rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        if is_route_module(name) and path.name != "__init__.py":
            names.append(name)
    return names


def test_no_route_module_imports_another() -> None:
    """What two pages share (a path, a form's parsing, a page's context) lives in the
    feature beside them, so that a route module can be read, moved or removed alone."""
    routes = route_module_names()
    assert len(routes) > 20  # the walk finds them
    found = []
    for name in routes:
        source = (ROOT / (name.replace(".", "/") + ".py")).read_text()
        found += [
            f"{name} imports {other}" for other in imported_modules(source) if other in routes
        ]
    # The API's assembly (app/api.py) gathers the features' API routers, and nothing else.
    assert [f for f in found if not f.startswith("app.api imports")] == []


def test_the_route_check_sees_an_import_between_route_modules() -> None:
    assert is_route_module("app.live.routes.room") and is_route_module("app.people.api")
    assert not is_route_module("app.live.web")
    assert "app.live.routes.room" in imported_modules("from app.live.routes import room")


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
