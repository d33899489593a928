"""A programme's codebook: themes nested one level deep, renamed, merged and deleted.

Every change is audited. Hosts and facilitators create and edit themes; only hosts merge
and delete them (the routes decide who may call what)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.evidence.models import Coding, Theme
from app.models import User
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


async def _check_placement(
    db: AsyncSession, *, programme_id: int, fields: ThemeFields, theme: Theme | None
) -> None:
    """Parent one level up only, and a name unique among its siblings."""
    themes = await list_themes(db, programme_id=programme_id)
    by_id = {t.id: t for t in themes}
    errors: dict[str, str] = {}
    if fields.parent_id is not None:
        parent = by_id.get(fields.parent_id)
        if parent is None:
            errors["parent_id"] = "Choose a theme of this programme from the list."
        elif theme is not None and parent.id == theme.id:
            errors["parent_id"] = "A theme cannot be its own sub-theme."
        elif parent.parent_id is not None:
            errors["parent_id"] = (
                f"“{parent.name}” is already a sub-theme; themes nest one level only. "
                "Choose a top-level theme."
            )
        elif theme is not None and any(t.parent_id == theme.id for t in themes):
            errors["parent_id"] = (
                f"“{theme.name}” has sub-themes of its own, so it cannot become a sub-theme. "
                "Move or merge its sub-themes first."
            )
    if "name" not in errors and fields.name:
        wanted = fields.name.casefold()
        for other in themes:
            if theme is not None and other.id == theme.id:
                continue
            if other.parent_id == fields.parent_id and other.name.casefold() == wanted:
                where = (
                    f"under “{by_id[fields.parent_id].name}”"
                    if fields.parent_id is not None and fields.parent_id in by_id
                    else "at the top level"
                )
                errors["name"] = f"There is already a theme called “{other.name}” {where}."
                break
    if errors:
        raise ThemeRejected(errors)


async def create_theme(
    db: AsyncSession, *, programme_id: int, actor: User, fields: ThemeFields
) -> Theme:
    await _check_placement(db, programme_id=programme_id, fields=fields, theme=None)
    theme = Theme(
        programme_id=programme_id,
        parent_id=fields.parent_id,
        name=fields.name,
        description=fields.description,
        colour=fields.colour,
        created_by_id=actor.id,
    )
    db.add(theme)
    await db.flush()
    audit.record(
        db,
        actor=actor,
        action="theme.create",
        programme_id=programme_id,
        target=f"theme:{theme.id}",
        name=theme.name,
        parent_id=theme.parent_id,
        colour=theme.colour,
    )
    await db.commit()
    return theme


async def update_theme(
    db: AsyncSession, *, theme: Theme, actor: User, fields: ThemeFields
) -> Theme:
    """Rename, describe, recolour or move a theme."""
    await _check_placement(db, programme_id=theme.programme_id, fields=fields, theme=theme)
    before = {
        "name": theme.name,
        "description": theme.description,
        "colour": theme.colour,
        "parent_id": theme.parent_id,
    }
    after = {
        "name": fields.name,
        "description": fields.description,
        "colour": fields.colour,
        "parent_id": fields.parent_id,
    }
    changed = {k: {"from": before[k], "to": after[k]} for k in before if before[k] != after[k]}
    if not changed:
        return theme
    theme.name = fields.name
    theme.description = fields.description
    theme.colour = fields.colour
    theme.parent_id = fields.parent_id
    audit.record(
        db,
        actor=actor,
        action="theme.update",
        programme_id=theme.programme_id,
        target=f"theme:{theme.id}",
        changes=changed,
    )
    await db.commit()
    return theme


@dataclass
class MergeResult:
    moved: int = 0  # codings now under the target
    dropped: int = 0  # exact duplicates of a coding the target already had
    children_moved: int = 0
    children_merged: int = 0  # sub-themes merged into a same-named sub-theme of the target


def _coding_key(c: Coding) -> tuple[int, str | None, int | None, int | None]:
    return (c.item_id, c.source, c.start_offset, c.end_offset)


async def _move_codings(
    db: AsyncSession, *, source: Theme, target: Theme, result: MergeResult
) -> None:
    target_codings = {
        _coding_key(c): c
        for c in (await db.scalars(select(Coding).where(Coding.theme_id == target.id))).all()
    }
    for coding in (await db.scalars(select(Coding).where(Coding.theme_id == source.id))).all():
        kept = target_codings.get(_coding_key(coding))
        if kept is None:
            coding.theme_id = target.id
            target_codings[_coding_key(coding)] = coding
            result.moved += 1
            continue
        # Same item, same passage: keep one coding, and keep the other's memo with it.
        memo = coding.memo.strip()
        if memo and memo not in kept.memo:
            kept.memo = (f"{kept.memo}\n\n{memo}" if kept.memo else memo)[:MEMO_COLUMN_MAX]
        await db.delete(coding)
        result.dropped += 1


async def merge_themes(
    db: AsyncSession, *, source: Theme, target: Theme, actor: User
) -> MergeResult:
    """Merge `source` into `target`: its codings and sub-themes move, then it is deleted."""
    if source.id == target.id:
        raise ThemeRejected({"target_id": "Choose a different theme to merge into."})
    if source.programme_id != target.programme_id:
        raise ThemeRejected({"target_id": "Choose a theme of this programme from the list."})
    children = list((await db.scalars(select(Theme).where(Theme.parent_id == source.id))).all())
    if children and target.parent_id is not None:
        raise ThemeRejected(
            {
                "target_id": (
                    f"“{source.name}” has sub-themes, and “{target.name}” is itself a "
                    "sub-theme, where they cannot go (themes nest one level only). Merge it "
                    "into a top-level theme, or move its sub-themes first."
                )
            }
        )
    result = MergeResult()
    source_name = source.name
    target_children = {
        t.name.casefold(): t
        for t in (await db.scalars(select(Theme).where(Theme.parent_id == target.id))).all()
    }
    for child in children:
        same_name = target_children.get(child.name.casefold())
        if same_name is not None:
            await _move_codings(db, source=child, target=same_name, result=result)
            await db.delete(child)
            result.children_merged += 1
        else:
            child.parent_id = target.id
            result.children_moved += 1
    await _move_codings(db, source=source, target=target, result=result)
    await db.flush()
    await db.delete(source)
    audit.record(
        db,
        actor=actor,
        action="theme.merge",
        programme_id=target.programme_id,
        target=f"theme:{target.id}",
        merged_theme_id=source.id,
        merged_name=source_name,
        into_name=target.name,
        codings_moved=result.moved,
        duplicates_dropped=result.dropped,
        sub_themes_moved=result.children_moved,
        sub_themes_merged=result.children_merged,
    )
    await db.commit()
    return result


async def deletion_counts(db: AsyncSession, *, theme: Theme) -> tuple[int, int]:
    """(sub-themes, codings) of a theme, across every group and including hidden items."""
    children = await db.scalar(select(func.count()).where(Theme.parent_id == theme.id))
    codings = await db.scalar(select(func.count()).where(Coding.theme_id == theme.id))
    return int(children or 0), int(codings or 0)


async def delete_theme(db: AsyncSession, *, theme: Theme, actor: User) -> int:
    """Delete a theme without sub-themes, with its codings (the page confirms first).
    Returns how many codings went with it."""
    children, codings = await deletion_counts(db, theme=theme)
    if children:
        raise ThemeRejected(
            {
                "theme": (
                    f"“{theme.name}” has {children} sub-theme{'s' if children != 1 else ''}. "
                    "Merge it into another theme instead, or move or delete its sub-themes first."
                )
            }
        )
    await db.execute(delete(Coding).where(Coding.theme_id == theme.id))
    audit.record(
        db,
        actor=actor,
        action="theme.delete",
        programme_id=theme.programme_id,
        target=f"theme:{theme.id}",
        name=theme.name,
        parent_id=theme.parent_id,
        codings_deleted=codings,
    )
    await db.delete(theme)
    await db.commit()
    return codings
