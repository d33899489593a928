"""Reading evidence: the items a person may see on their group's board (with search and
filters), their own images waiting for a description, a programme's sessions, and how
often an item is coded."""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.access import GroupContext
from app.evidence.fields import IMAGE_KINDS
from app.evidence.models import Coding, EvidenceItem, Visibility
from app.evidence.search import apply_search, normalise_query
from app.models import ProgrammeSession


async def coding_count(db: AsyncSession, *, item_id: int) -> int:
    count = await db.scalar(select(func.count()).where(Coding.item_id == item_id))
    return int(count or 0)


def _visible_to(gctx: GroupContext) -> ColumnElement[bool]:
    """`access.can_see` as SQL, for the board's query."""
    in_group = EvidenceItem.group_id == gctx.group.id
    if gctx.can_moderate:
        return in_group
    described = or_(
        EvidenceItem.kind.not_in(IMAGE_KINDS),
        EvidenceItem.thumbnail_key.is_(None),
        func.trim(EvidenceItem.alt_text) != "",
    )
    shared = and_(EvidenceItem.visibility == Visibility.GROUP.value, described)
    return and_(
        in_group,
        EvidenceItem.hidden_at.is_(None),
        or_(EvidenceItem.uploader_id == gctx.ctx.user.id, shared),
    )


NO_SESSION = 0  # the filter value for items not tied to a session


async def list_items(
    db: AsyncSession,
    *,
    gctx: GroupContext,
    session_id: int | None = None,
    kind: str | None = None,
    trio: bool | None = None,
    q: str | None = None,
) -> list[EvidenceItem]:
    """The group's items this person may see, newest first, or best match first when
    searching. `session_id=NO_SESSION` lists items not tied to a session."""
    stmt = (
        select(EvidenceItem)
        .where(_visible_to(gctx))
        .options(selectinload(EvidenceItem.uploader), selectinload(EvidenceItem.session))
    )
    if session_id == NO_SESSION:
        stmt = stmt.where(EvidenceItem.session_id.is_(None))
    elif session_id is not None:
        stmt = stmt.where(EvidenceItem.session_id == session_id)
    if kind:
        stmt = stmt.where(EvidenceItem.kind == kind)
    if trio is not None:
        stmt = stmt.where(EvidenceItem.from_trio.is_(trio))
    query = normalise_query(q or "")
    if query:
        searched = apply_search(stmt, dialect=db.get_bind().dialect.name, query=query)
        if searched is None:
            return []
        stmt = searched
    else:
        stmt = stmt.order_by(EvidenceItem.created_at.desc(), EvidenceItem.id.desc())
    rows = await db.scalars(stmt)
    return list(rows.unique().all())


async def programme_sessions(db: AsyncSession, *, programme_id: int) -> list[ProgrammeSession]:
    rows = await db.scalars(
        select(ProgrammeSession)
        .where(ProgrammeSession.programme_id == programme_id)
        .order_by(ProgrammeSession.starts_at, ProgrammeSession.id)
    )
    return list(rows.all())


async def awaiting_description(db: AsyncSession, *, gctx: GroupContext) -> list[EvidenceItem]:
    """This person's own images that wait for a description before the group sees them."""
    rows = await db.scalars(
        select(EvidenceItem)
        .where(
            EvidenceItem.group_id == gctx.group.id,
            EvidenceItem.uploader_id == gctx.ctx.user.id,
            EvidenceItem.hidden_at.is_(None),
            EvidenceItem.kind.in_(IMAGE_KINDS),
            EvidenceItem.thumbnail_key.is_not(None),
            func.trim(EvidenceItem.alt_text) == "",
        )
        .order_by(EvidenceItem.created_at, EvidenceItem.id)
    )
    return list(rows.all())
