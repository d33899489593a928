"""axe-core in the browser tests: inject the npm package into a page, run it with the WCAG
2.0, 2.1 and 2.2 A/AA rules plus best practice, and report what it found readably.

axe-core is a devDependency (package.json); scripts/setup installs it with `npm ci`, and
.ci/run runs scripts/setup. It is read from node_modules and never copied into static/."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest

from app.config import PROJECT_ROOT
from tests.conftest import IN_CI

AXE_PATH = PROJECT_ROOT / "node_modules" / "axe-core" / "axe.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
BLOCKING = ("serious", "critical")
# Headings and landmarks, which axe rates moderate, block too: people who use a screen
# reader move through a page by them.
STRUCTURE = frozenset(
    {
        "page-has-heading-one",
        "heading-order",
        "empty-heading",
        "landmark-one-main",
        "region",
        "landmark-unique",
        "landmark-no-duplicate-banner",
        "landmark-no-duplicate-contentinfo",
        "landmark-no-duplicate-main",
        "landmark-banner-is-top-level",
        "landmark-contentinfo-is-top-level",
        "landmark-main-is-top-level",
        "landmark-complementary-is-top-level",
    }
)


@cache
def axe_source() -> str:
    if not AXE_PATH.is_file():
        message = (
            f"axe-core is not installed ({AXE_PATH} is missing): run scripts/setup, "
            "which installs the npm devDependencies with `npm ci`"
        )
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return AXE_PATH.read_text(encoding="utf-8")


@dataclass
class Violation:
    """One axe rule broken on one page (or state), with the elements that break it."""

    where: str
    rule: str
    impact: str
    help: str
    help_url: str
    nodes: list[tuple[str, str, str]]  # (CSS target, HTML snippet, axe's summary)

    def __str__(self) -> str:
        lines = [f"[{self.impact}] {self.where}: {self.rule}: {self.help} ({self.help_url})"]
        for target, html, summary in self.nodes[:8]:
            lines.append(f"    at {target}: {html[:200]}")
            if summary:
                first = summary.replace("\n", " ")[:300]
                lines.append(f"       {first}")
        if len(self.nodes) > 8:
            lines.append(f"    … and {len(self.nodes) - 8} more")
        return "\n".join(lines)


async def inject(page: Any) -> None:
    """Load axe into the page. An evaluated script is not subject to the page's
    Content-Security-Policy (script-src 'self'), unlike an added <script> element."""
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        await page.evaluate(axe_source())


async def violations(page: Any, where: str = "", *, include: str | None = None) -> list[Violation]:
    """Every axe violation on the page as it is now (all impacts)."""
    await inject(page)
    result = await page.evaluate(
        """async ([tags, include]) => {
            const context = include ? { include: [include] } : document;
            const r = await axe.run(context, { runOnly: { type: "tag", values: tags },
                                               resultTypes: ["violations"] });
            return r.violations.map(v => ({
                id: v.id, impact: v.impact || "", help: v.help, helpUrl: v.helpUrl,
                nodes: v.nodes.map(n => [n.target.join(" "), n.html, n.failureSummary || ""]),
            }));
        }""",
        [TAGS, include],
    )
    where = where or page.url
    return [
        Violation(
            where, v["id"], v["impact"], v["help"], v["helpUrl"], [tuple(n) for n in v["nodes"]]
        )
        for v in result
    ]


async def serious(page: Any, where: str = "", *, include: str | None = None) -> list[Violation]:
    """The violations that block: serious or critical, or about headings and landmarks."""
    return [
        v
        for v in await violations(page, where, include=include)
        if v.impact in BLOCKING or v.rule in STRUCTURE
    ]


def report(found: list[Violation]) -> str:
    return (
        f"{len(found)} axe violation(s), serious or critical or about headings and landmarks:\n"
        + "\n".join(str(v) for v in found)
    )


async def assert_no_serious_violations(page: Any, where: str = "") -> None:
    found = await serious(page, where)
    assert not found, report(found)
