"""Who may see a deck, and who may upload and change decks (who presents on a stage is
app/stage/present.py: may_present, from the person's seat).

- Hosts: everything, everywhere.
- A presenter named for the session (StageRole "presenter"): presents in the plenary;
  manages the session's decks (the plenary's and any room's).
- A breakout room's facilitators: manage and present their rooms' decks.
- Everyone in the programme sees the plenary's decks; a room's deck is seen only by the
  people of that room (its group's members, people moved there for this session, its
  facilitators) and hosts.

The caller has already checked that the deck or session belongs to `ctx.programme`."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.access import ProgrammeContext, facilitates
from app.live.models import RoomAssignment
from app.models import Group, GroupFacilitator, ProgrammeSession
from app.stage.models import Deck, StageRole, StageRoleKind


async def is_presenter(db: AsyncSession, ctx: ProgrammeContext, session_id: int) -> bool:
    """Named as a presenter for this session."""
    found = await db.scalar(
        select(StageRole.id).where(
            StageRole.session_id == session_id,
            StageRole.user_id == ctx.user.id,
            StageRole.role == StageRoleKind.PRESENTER.value,
        )
    )
    return found is not None


async def in_room(db: AsyncSession, ctx: ProgrammeContext, session_id: int, group_id: int) -> bool:
    """Whether this person belongs in that breakout room of the session."""
    if await facilitates(db, user_id=ctx.user.id, group_id=group_id):
        return True
    assignment = await db.get(RoomAssignment, (session_id, ctx.user.id))
    if assignment is not None and assignment.group_id is not None:
        # Moved (or placed) for this session: that room replaces their usual one.
        return assignment.group_id == group_id
    return ctx.membership is not None and ctx.membership.group_id == group_id


async def may_view_deck(db: AsyncSession, ctx: ProgrammeContext, deck: Deck) -> bool:
    if ctx.is_host or deck.group_id is None:
        return True
    if await is_presenter(db, ctx, deck.session_id):
        return True
    return await in_room(db, ctx, deck.session_id, deck.group_id)


async def may_manage_deck(
    db: AsyncSession,
    ctx: ProgrammeContext,
    deck_or_session: Deck | ProgrammeSession,
    group_id: int | None = None,
) -> bool:
    """Upload a deck for that room (`group_id`; None: the plenary), or change or delete a
    deck (its own room counts, `group_id` is ignored)."""
    if isinstance(deck_or_session, Deck):
        session_id, group_id = deck_or_session.session_id, deck_or_session.group_id
    else:
        session_id = deck_or_session.id
    if ctx.is_host or await is_presenter(db, ctx, session_id):
        return True
    return group_id is not None and await facilitates(db, user_id=ctx.user.id, group_id=group_id)


async def may_manage_any(db: AsyncSession, ctx: ProgrammeContext, session_id: int) -> bool:
    """Whether the session's decks page is for this person: hosts, the session's
    presenters, and facilitators (for their rooms)."""
    if ctx.is_host or await is_presenter(db, ctx, session_id):
        return True
    return bool(await managed_groups(db, ctx))


async def managed_groups(db: AsyncSession, ctx: ProgrammeContext) -> set[int]:
    """The groups whose rooms this person facilitates in the programme."""
    rows = await db.scalars(
        select(GroupFacilitator.group_id)
        .join(Group, Group.id == GroupFacilitator.group_id)
        .where(GroupFacilitator.user_id == ctx.user.id, Group.programme_id == ctx.programme.id)
    )
    return set(rows.all())
