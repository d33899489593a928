"""Changes to evidence items: typed notes and links, editing, describing images, hiding
and deleting. The only code that writes items (uploads aside: app/evidence/uploads.py).

Every change is validated (app/evidence/fields.py, whose checks file uploads can share),
audited, and committed with its audit entry."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.access import GroupContext
from app.db import utcnow
from app.evidence.access import ItemContext
from app.evidence.errors import EvidenceRejected
from app.evidence.fields import (
    IMAGE_KINDS,
    CommonFields,
    clean_alt_text,
    clean_common,
    clean_note,
    clean_reason,
    clean_url,
)
from app.evidence.models import EvidenceItem, EvidenceKind
from app.evidence.queries import coding_count
from app.evidence.searchtext import refresh_search_text
from app.models import User
from app.storage import Storage


def _target(item: EvidenceItem) -> str:
    return f"evidence:{item.id}"


async def _create(
    db: AsyncSession,
    *,
    gctx: GroupContext,
    actor: User,
    kind: EvidenceKind,
    fields: CommonFields,
    note_markdown: str = "",
    link_url: str = "",
) -> EvidenceItem:
    item = EvidenceItem(
        programme_id=gctx.ctx.programme.id,
        group_id=gctx.group.id,
        session_id=fields.session_id,
        uploader_id=actor.id,
        kind=kind.value,
        title=fields.title,
        description=fields.description,
        from_trio=fields.from_trio,
        visibility=fields.visibility,
        note_markdown=note_markdown,
        link_url=link_url,
    )
    refresh_search_text(item)
    db.add(item)
    await db.flush()
    audit.record(
        db,
        actor=actor,
        action="evidence.create",
        programme_id=item.programme_id,
        target=_target(item),
        group_id=item.group_id,
        kind=item.kind,
        visibility=item.visibility,
    )
    await db.commit()
    return item


# A written item's content: which form field holds it, and how it is checked.
WRITTEN_CONTENT: dict[EvidenceKind, tuple[str, Callable[[str], str]]] = {
    EvidenceKind.NOTE: ("markdown", clean_note),
    EvidenceKind.LINK: ("url", clean_url),
}


async def create_written(
    db: AsyncSession,
    *,
    gctx: GroupContext,
    actor: User,
    kind: EvidenceKind,
    content: str,
    title: str,
    description: str,
    session_id: int | None,
    from_trio: bool,
    visibility: str,
) -> EvidenceItem:
    """A typed note (Markdown) or a link (URL), checked like every item's common fields."""
    field_name, clean = WRITTEN_CONTENT[kind]
    fields, cleaned = await clean_common(
        db,
        gctx=gctx,
        title=title,
        description=description,
        session_id=session_id,
        from_trio=from_trio,
        visibility=visibility,
        extra={field_name: (clean, content)},
    )
    return await _create(
        db,
        gctx=gctx,
        actor=actor,
        kind=kind,
        fields=fields,
        note_markdown=cleaned.get("markdown", ""),
        link_url=cleaned.get("url", ""),
    )


def _require_editor(item_ctx: ItemContext) -> None:
    if not item_ctx.can_edit:
        raise EvidenceRejected(
            "item",
            "Only whoever added this, the group's facilitators and the hosts can change it.",
            403,
        )


def _require_organiser(item_ctx: ItemContext) -> None:
    if not item_ctx.is_organiser:
        raise EvidenceRejected(
            "item", "Only this group's facilitators and the programme's hosts can do this.", 403
        )


async def update_item(
    db: AsyncSession,
    *,
    item_ctx: ItemContext,
    actor: User,
    title: str,
    description: str,
    session_id: int | None,
    from_trio: bool,
    visibility: str,
    markdown: str | None = None,
    url: str | None = None,
) -> EvidenceItem:
    """Title, description, session, trio and who sees it; a note's text and a link's
    address too. The uploader and the organisers."""
    _require_editor(item_ctx)
    item = item_ctx.item
    fields, cleaned = await clean_common(
        db,
        gctx=item_ctx.gctx,
        title=title,
        description=description,
        session_id=session_id,
        from_trio=from_trio,
        visibility=visibility,
        extra=_content_checks(item, markdown=markdown, url=url),
    )
    changed = _apply(
        item,
        title=fields.title,
        description=fields.description,
        session_id=fields.session_id,
        from_trio=fields.from_trio,
        visibility=fields.visibility,
        note_markdown=cleaned.get("markdown"),
        link_url=cleaned.get("url"),
    )
    if not changed:
        return item
    refresh_search_text(item)
    audit.record(
        db,
        actor=actor,
        action="evidence.update",
        programme_id=item.programme_id,
        target=_target(item),
        group_id=item.group_id,
        fields=changed,
        visibility=item.visibility,
    )
    await db.commit()
    return item


def _content_checks(
    item: EvidenceItem, *, markdown: str | None, url: str | None
) -> dict[str, tuple[Callable[[str], str], str]]:
    """A note's text and a link's address, checked when sent for an item of that kind."""
    extra: dict[str, tuple[Callable[[str], str], str]] = {}
    if item.kind == EvidenceKind.NOTE and markdown is not None:
        extra["markdown"] = (clean_note, markdown)
    if item.kind == EvidenceKind.LINK and url is not None:
        extra["url"] = (clean_url, url)
    return extra


def _apply(item: EvidenceItem, **values: object) -> list[str]:
    """Set each value given (None: not sent) that differs; the names of those changed."""
    changed = []
    for name, value in values.items():
        if value is not None and getattr(item, name) != value:
            setattr(item, name, value)
            changed.append(name)
    return changed


async def set_alt_text(
    db: AsyncSession, *, item_ctx: ItemContext, actor: User, alt_text: str
) -> EvidenceItem:
    """The description of an image or poster for people who cannot see it."""
    _require_editor(item_ctx)
    item = item_ctx.item
    if item.kind not in IMAGE_KINDS:
        raise EvidenceRejected("alt_text", "Only images and posters have an image description.")
    item.alt_text = clean_alt_text(alt_text)
    refresh_search_text(item)
    audit.record(
        db,
        actor=actor,
        action="evidence.alt_text",
        programme_id=item.programme_id,
        target=_target(item),
        group_id=item.group_id,
    )
    await db.commit()
    return item


async def hide_item(
    db: AsyncSession, *, item_ctx: ItemContext, actor: User, reason: str
) -> EvidenceItem:
    """Take an item off the group's board; it is kept, and organisers still see it."""
    _require_organiser(item_ctx)
    item = item_ctx.item
    why = clean_reason(reason, required=True)
    if item.is_hidden:
        raise EvidenceRejected("reason", "This item is already hidden.", 409)
    item.hidden_at = utcnow()
    item.hidden_by_id = actor.id
    item.hidden_reason = why
    audit.record(
        db,
        actor=actor,
        action="evidence.hide",
        programme_id=item.programme_id,
        target=_target(item),
        group_id=item.group_id,
        reason=why,
    )
    await db.commit()
    return item


async def unhide_item(
    db: AsyncSession, *, item_ctx: ItemContext, actor: User, reason: str
) -> EvidenceItem:
    _require_organiser(item_ctx)
    item = item_ctx.item
    why = clean_reason(reason, required=False)
    if not item.is_hidden:
        raise EvidenceRejected("reason", "This item is not hidden.", 409)
    previous = item.hidden_reason
    item.hidden_at = None
    item.hidden_by_id = None
    item.hidden_reason = ""
    audit.record(
        db,
        actor=actor,
        action="evidence.unhide",
        programme_id=item.programme_id,
        target=_target(item),
        group_id=item.group_id,
        reason=why,
        hidden_reason=previous,
    )
    await db.commit()
    return item


async def delete_problem(db: AsyncSession, *, item_ctx: ItemContext) -> str | None:
    """Why this person may not delete the item, or None if they may: hosts always; whoever
    added it while no one has coded it (facilitators hide items instead)."""
    if item_ctx.gctx.ctx.is_host:
        return None
    if not item_ctx.is_uploader:
        return (
            "Only whoever added this and the programme's hosts can delete it. "
            "Facilitators can hide it from the group instead."
        )
    if await coding_count(db, item_id=item_ctx.item.id):
        return (
            "This has been coded into themes, so only a host can delete it now. "
            "Ask a facilitator to hide it if it should not be on the board."
        )
    return None


async def delete_item(
    db: AsyncSession, *, item_ctx: ItemContext, actor: User, storage: Storage
) -> None:
    problem = await delete_problem(db, item_ctx=item_ctx)
    if problem is not None:
        raise EvidenceRejected("item", problem, 403)
    item = item_ctx.item
    keys = [k for k in (item.storage_key, item.thumbnail_key) if k]
    audit.record(
        db,
        actor=actor,
        action="evidence.delete",
        programme_id=item.programme_id,
        target=_target(item),
        group_id=item.group_id,
        kind=item.kind,
        title=item.title,
        filename=item.filename,
        sha256=item.sha256,
        codings=await coding_count(db, item_id=item.id),
    )
    await db.delete(item)
    await db.commit()
    # After the commit: a failed commit must not leave a row pointing at a missing file.
    for key in keys:
        await storage.delete(key)
