"""Reading the help desk: the open hands and requests a person should see, the state of
one request as the desks draw it, and where a request's updates go (app/live/help.py
changes them).

IT support and the hosts see every request (`s{session}:help`), each facilitator those of
the groups they facilitate, on a desk of their own (`s{session}:help:u{user}`): the
requests from the groups' rooms and, in the plenary, from the groups' members."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.live import channels
from app.live.channels import Seat
from app.live.events import HelpPayload
from app.live.local_time import clock
from app.live.models import HelpRequest
from app.models import Group, GroupFacilitator, Membership, Role, User

PLENARY = "Plenary"


def room_channel(session_id: int, group_id: int | None) -> str:
    return channels.plenary(session_id) if group_id is None else channels.room(session_id, group_id)


def console_list_id(kind: str, group_id: int | None) -> str:
    """The list a facilitator's console keeps this group's hands (or help requests) in;
    the live page has no such list, and the event goes to its help desk's log."""
    return f"console-{kind}-g{group_id}" if group_id is not None else f"console-{kind}-plenary"


async def whose_group(db: AsyncSession, *, programme_id: int, request: HelpRequest) -> int | None:
    """The group a request is for: the room it came from, or in the plenary the group of
    the person who asked (as `may_handle` in app/live/help.py decides who may take it on)."""
    if request.group_id is not None:
        return request.group_id
    return await db.scalar(
        select(Membership.group_id).where(
            Membership.user_id == request.requester_id, Membership.programme_id == programme_id
        )
    )


async def facilitator_desks(
    db: AsyncSession, *, session_id: int, programme_id: int, group_id: int | None
) -> list[str]:
    """The desks of the group's facilitators (hosts who facilitate see the whole help desk)."""
    if group_id is None:
        return []
    facilitators = await db.scalars(
        select(GroupFacilitator.user_id)
        .join(
            Membership,
            (Membership.user_id == GroupFacilitator.user_id)
            & (Membership.programme_id == programme_id),
        )
        .where(GroupFacilitator.group_id == group_id, Membership.role == Role.FACILITATOR.value)
        .order_by(GroupFacilitator.user_id)
    )
    return [channels.facilitator_desk(session_id, user_id) for user_id in facilitators]


async def open_request(db: AsyncSession, *, seat: Seat, kind: str) -> HelpRequest | None:
    """The person's own hand (or request for help) that is still open, if any."""
    return await db.scalar(
        select(HelpRequest)
        .where(
            HelpRequest.session_id == seat.session.id,
            HelpRequest.requester_id == seat.user_id,
            HelpRequest.kind == kind,
            HelpRequest.status != "resolved",
        )
        .order_by(HelpRequest.id.desc())
        .limit(1)
    )


def help_payload(
    request: HelpRequest, *, who: str, room: str, claimed_by: str, timezone: str
) -> HelpPayload:
    return HelpPayload(
        id=request.id,
        kind=request.kind,
        who=who,
        room=room,
        note=request.note,
        status=request.status,
        at=request.created_at,
        time_label=clock(request.created_at, timezone),
        claimed_by=claimed_by,
    )


async def request_payload(db: AsyncSession, *, request: HelpRequest, timezone: str) -> HelpPayload:
    """One request as the help desks draw it."""
    requester = await db.get(User, request.requester_id)
    claimer = await db.get(User, request.claimed_by_id) if request.claimed_by_id else None
    group = await db.get(Group, request.group_id) if request.group_id is not None else None
    return help_payload(
        request,
        who=requester.name_with_pronouns if requester else "Someone who has left",
        room=group.name if group is not None else PLENARY,
        claimed_by=claimer.name_with_pronouns if claimer else "",
        timezone=timezone,
    )


def for_groups(
    query: Select[tuple[HelpRequest]], *, programme_id: int, group_ids: list[int]
) -> Select[tuple[HelpRequest]]:
    """Only the requests for these groups: from their rooms, or in the plenary from their
    members (a request there is for the facilitators of the person's own group)."""
    members = select(Membership.user_id).where(
        Membership.programme_id == programme_id, Membership.group_id.in_(group_ids)
    )
    return query.where(
        or_(
            HelpRequest.group_id.in_(group_ids),
            and_(HelpRequest.group_id.is_(None), HelpRequest.requester_id.in_(members)),
        )
    )


async def open_help(
    db: AsyncSession, *, seat: Seat, group_id: int | None = None
) -> list[HelpPayload]:
    """Open hands and help requests the person should see (as their help desk receives
    them): all of them for IT support and hosts, their groups' for a facilitator; with
    `group_id`, only those for that group, as a facilitator's console shows them."""
    if not seat.is_staff:
        return []
    programme_id = seat.ctx.programme.id
    query = (
        select(HelpRequest)
        .options(selectinload(HelpRequest.requester))
        .where(HelpRequest.session_id == seat.session.id, HelpRequest.status != "resolved")
    )
    if not (seat.is_host or seat.ctx.role is Role.IT_SUPPORT):
        facilitated = list(seat.facilitated) or [0]
        query = for_groups(query, programme_id=programme_id, group_ids=facilitated)
    if group_id is not None:
        query = for_groups(query, programme_id=programme_id, group_ids=[group_id])
    rows = (await db.scalars(query.order_by(HelpRequest.id))).all()
    return await _payloads(db, seat=seat, requests=rows)


async def _payloads(
    db: AsyncSession, *, seat: Seat, requests: Sequence[HelpRequest]
) -> list[HelpPayload]:
    """The requests as the desks draw them, looking up who claimed them and the rooms'
    names once for the whole list."""
    claimer_ids = {r.claimed_by_id for r in requests if r.claimed_by_id}
    claimers = {
        u.id: u.name_with_pronouns
        for u in (await db.scalars(select(User).where(User.id.in_(claimer_ids or {0})))).all()
    }
    groups = {
        g.id: g.name
        for g in (
            await db.scalars(select(Group).where(Group.programme_id == seat.ctx.programme.id))
        ).all()
    }
    return [
        help_payload(
            r,
            who=r.requester.name_with_pronouns,
            room=groups.get(r.group_id, PLENARY) if r.group_id else PLENARY,
            claimed_by=claimers.get(r.claimed_by_id or 0, ""),
            timezone=seat.ctx.programme.timezone,
        )
        for r in requests
    ]
