"""Changes to a programme's codebook: themes created, edited (renamed, described,
recoloured, moved), merged and deleted.

Every change is audited. Hosts and facilitators create and edit themes; only hosts merge
and delete them (the routes decide who may call what)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.evidence.models import Coding, Theme
from app.models import User
from app.themes.themes import (
    MEMO_COLUMN_MAX,
    ThemeFields,
    ThemeRejected,
    deletion_counts,
    list_themes,
)


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
