"""A programme's codebook: themes nested one level deep, their colours and full names, the
form's fields checked, and the codebook read as a tree. The changes to it are in
app/themes/theme_actions.py."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.evidence.models import Coding, Theme
from app.numbers import is_digits

NAME_MAX = 80
DESCRIPTION_MAX = 1000
SEPARATOR = " › "
MEMO_COLUMN_MAX = 2000  # codings.memo; app/themes/coding.py gives people the same limit


@dataclass(frozen=True)
class Colour:
    key: str
    label: str
    hex: str


# White text on each of these, and each against the page background, is at least 4.5:1
# (tests/evidence/test_themes.py checks), so a chip stays readable whichever way it is drawn. The
# name is always shown with the colour: colour alone never carries meaning.
PALETTE: tuple[Colour, ...] = (
    Colour("blue", "Blue", "#1d70b8"),
    Colour("green", "Green", "#00703c"),
    Colour("red", "Red", "#b3261e"),
    Colour("purple", "Purple", "#5b2c8f"),
    Colour("brown", "Brown", "#8a4b08"),
    Colour("teal", "Teal", "#00636b"),
    Colour("magenta", "Magenta", "#a3195b"),
    Colour("grey", "Grey", "#505a5f"),
)
DEFAULT_COLOUR = PALETTE[0].hex
_BY_HEX = {c.hex: c for c in PALETTE}


def colour_of(hex_value: str) -> Colour:
    """The palette entry for a stored colour (the default one for anything unknown)."""
    return _BY_HEX.get(hex_value.lower(), PALETTE[0])


class ThemeRejected(ValueError):
    """Field-level problems with a theme, each with a message for the person."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


@dataclass
class ThemeFields:
    name: str
    description: str = ""
    colour: str = DEFAULT_COLOUR
    parent_id: int | None = None


@dataclass
class ThemeNode:
    """A top-level theme with its sub-themes, for pages and option lists."""

    theme: Theme
    children: list[Theme] = field(default_factory=list)


def theme_label(theme: Theme, parent: Theme | None) -> str:
    return f"{parent.name}{SEPARATOR}{theme.name}" if parent is not None else theme.name


def _clean_line(raw: str) -> str:
    text = unicodedata.normalize("NFC", raw)
    text = "".join(" " if unicodedata.category(ch)[0] in "CZ" else ch for ch in text)
    return " ".join(text.split())


def parse_fields(
    *, name: str, description: str, colour: str, parent_id: str
) -> tuple[ThemeFields, dict[str, str]]:
    """Form text to fields, with the problems found (the ids are checked later)."""
    errors: dict[str, str] = {}
    clean_name = _clean_line(name)
    if not clean_name:
        errors["name"] = "Enter a name for the theme."
    elif len(clean_name) > NAME_MAX:
        errors["name"] = (
            f"The name can be at most {NAME_MAX} characters (it has {len(clean_name)})."
        )
    elif SEPARATOR.strip() in clean_name:
        errors["name"] = (
            f"The name cannot contain “{SEPARATOR.strip()}”: "
            "it separates a theme from its sub-theme."
        )
    clean_description = unicodedata.normalize("NFC", description.replace("\r\n", "\n")).strip()
    if len(clean_description) > DESCRIPTION_MAX:
        errors["description"] = (
            f"The description can be at most {DESCRIPTION_MAX} characters "
            f"(it has {len(clean_description)})."
        )
    hex_value = colour.strip().lower() or DEFAULT_COLOUR
    if hex_value not in _BY_HEX:
        errors["colour"] = "Choose one of the colours listed."
    parent: int | None = None
    raw_parent = parent_id.strip()
    if raw_parent:
        if is_digits(raw_parent) and len(raw_parent) <= 10:
            parent = int(raw_parent)
        else:
            errors["parent_id"] = "Choose a theme from the list, or “None (a top-level theme)”."
    fields = ThemeFields(
        name=clean_name, description=clean_description, colour=hex_value, parent_id=parent
    )
    return fields, errors


async def list_themes(db: AsyncSession, *, programme_id: int) -> list[Theme]:
    rows = await db.scalars(
        select(Theme).where(Theme.programme_id == programme_id).order_by(Theme.id)
    )
    return list(rows.all())


def _sort_key(theme: Theme) -> tuple[str, int]:
    return (theme.name.casefold(), theme.id)


def build_tree(themes: Sequence[Theme]) -> list[ThemeNode]:
    """Top-level themes by name, each with its sub-themes by name."""
    nodes = {t.id: ThemeNode(t) for t in themes if t.parent_id is None}
    for theme in themes:
        if theme.parent_id is not None and theme.parent_id in nodes:
            nodes[theme.parent_id].children.append(theme)
    ordered = sorted(nodes.values(), key=lambda n: _sort_key(n.theme))
    for node in ordered:
        node.children.sort(key=_sort_key)
    return ordered


async def codebook(db: AsyncSession, *, programme_id: int) -> list[ThemeNode]:
    return build_tree(await list_themes(db, programme_id=programme_id))


def labels(themes: Sequence[Theme]) -> dict[int, str]:
    """Each theme's full name ("Parent › Child")."""
    by_id = {t.id: t for t in themes}
    return {t.id: theme_label(t, by_id.get(t.parent_id) if t.parent_id else None) for t in themes}


async def get_theme(db: AsyncSession, *, programme_id: int, theme_id: int) -> Theme | None:
    theme = await db.get(Theme, theme_id)
    if theme is None or theme.programme_id != programme_id:
        return None
    return theme


async def deletion_counts(db: AsyncSession, *, theme: Theme) -> tuple[int, int]:
    """(sub-themes, codings) of a theme, across every group and including hidden items."""
    children = await db.scalar(select(func.count()).where(Theme.parent_id == theme.id))
    codings = await db.scalar(select(func.count()).where(Coding.theme_id == theme.id))
    return int(children or 0), int(codings or 0)
