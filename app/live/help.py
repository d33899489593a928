"""Raised hands and requests for help.

A hand is for the room: its facilitator (at the help desk) and the people in the room see
it. A request for help goes to the help desk at once, with who asked and from which room:
IT support and the hosts see every request (`s{session}:help`), each facilitator those of
the groups they facilitate, on a desk of their own (`s{session}:help:u{user}`), the same
that the panels and consoles show (app/live/help_queries.py: open_help). The person who
asked follows what happens on their own channel."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.db import utcnow
from app.live import channels
from app.live.channels import Seat
from app.live.events import HandPayload, NoticePayload
from app.live.help_queries import (
    console_list_id,
    facilitator_desks,
    open_request,
    request_payload,
    room_channel,
    whose_group,
)
from app.live.models import HelpRequest
from app.live.text import clean_message
from app.models import Role, User
from app.refusals import NotAllowed, NotFound, Refused
from realtime.publish import Live

MAX_NOTE_CHARS = 500


async def _publish(
    db: AsyncSession,
    live: Live,
    *,
    seat: Seat,
    request: HelpRequest,
    notice: str,
    action: str,
    **detail: object,
) -> None:
    """Record the change, then send the request's state to the help desk and the desks of
    its group's facilitators (and, for a hand, to its room) and a line to the person who
    asked."""
    programme = seat.ctx.programme
    payload = await request_payload(db, request=request, timezone=programme.timezone)
    audit.record(
        db,
        actor=seat.ctx.user,
        action=action,
        programme_id=programme.id,
        target=f"help:{request.id}",
        kind=request.kind,
        **detail,
    )
    group_id = await whose_group(db, programme_id=programme.id, request=request)
    desks = [
        channels.helpdesk(seat.session.id),
        *await facilitator_desks(
            db, session_id=seat.session.id, programme_id=programme.id, group_id=group_id
        ),
    ]
    outbox = live.outbox(db)
    for desk in desks:
        await outbox.add(
            desk,
            "help.update",
            payload,
            actor_id=seat.user_id,
            target=f"h{request.id}",
            data={"into": console_list_id(request.kind, group_id)},
        )
    if request.kind == "hand":
        await outbox.add(
            room_channel(seat.session.id, request.group_id),
            "hand.update",
            HandPayload(id=request.id, who=payload.who, raised=request.status != "resolved"),
            actor_id=seat.user_id,
            target=f"rh{request.id}",
        )
    await outbox.add(
        channels.personal(request.requester_id),
        "notice",
        NoticePayload(text=notice),
        actor_id=seat.user_id,
    )
    await outbox.commit()


def _new_request(seat: Seat, kind: str, note: str = "") -> HelpRequest:
    return HelpRequest(
        session_id=seat.session.id,
        kind=kind,
        requester_id=seat.user_id,
        group_id=seat.current_group.id if seat.current_group else None,
        note=note,
        status="open",
        created_at=utcnow(),
    )


async def raise_hand(db: AsyncSession, live: Live, *, seat: Seat) -> HelpRequest:
    """Raise a hand; raising it again while it is up changes nothing."""
    existing = await open_request(db, seat=seat, kind="hand")
    if existing is not None:
        return existing
    hand = _new_request(seat, "hand")
    db.add(hand)
    await db.flush()
    await _publish(
        db, live, seat=seat, request=hand, notice="Your hand is raised.", action="help.hand_raise"
    )
    return hand


async def lower_hand(db: AsyncSession, live: Live, *, seat: Seat) -> HelpRequest | None:
    hand = await open_request(db, seat=seat, kind="hand")
    if hand is None:
        return None
    hand.status = "resolved"
    hand.resolved_at = utcnow()
    await _publish(
        db, live, seat=seat, request=hand, notice="Your hand is down.", action="help.hand_lower"
    )
    return hand


async def ask_for_help(db: AsyncSession, live: Live, *, seat: Seat, note: str) -> HelpRequest:
    """Ask for help, with an optional note. Asking again while a request is open adds the
    new note to it rather than opening another."""
    note = clean_message(note)
    if len(note) > MAX_NOTE_CHARS:
        raise Refused(
            f"The note can be at most {MAX_NOTE_CHARS} characters; this one has {len(note):,}."
        )
    request = await open_request(db, seat=seat, kind="help")
    if request is None:
        request = _new_request(seat, "help", note)
        db.add(request)
        await db.flush()
        text = "You asked for help. Your facilitator and the help desk have been told."
    else:
        if note:
            request.note = note
        text = "Your request for help is still open; the help desk has your latest note."
    await _publish(
        db, live, seat=seat, request=request, notice=text, action="help.request", note=note
    )
    return request


async def may_handle(db: AsyncSession, *, seat: Seat, request: HelpRequest) -> bool:
    """IT support and hosts handle every request; a facilitator handles those from their
    groups' rooms (and, in the plenary, from people in their groups)."""
    if seat.is_host or seat.ctx.role is Role.IT_SUPPORT:
        return True
    if seat.ctx.role is not Role.FACILITATOR:
        return False
    group_id = await whose_group(db, programme_id=seat.ctx.programme.id, request=request)
    return group_id is not None and group_id in seat.facilitated


async def load_request(db: AsyncSession, *, seat: Seat, help_id: int) -> HelpRequest:
    request = await db.get(HelpRequest, help_id)
    if request is None or request.session_id != seat.session.id:
        raise NotFound("We could not find that request.")
    return request


async def claim(db: AsyncSession, live: Live, *, seat: Seat, help_id: int) -> str:
    """Take a request on; returns a line for the person who did."""
    request = await load_request(db, seat=seat, help_id=help_id)
    if not await may_handle(db, seat=seat, request=request):
        raise NotAllowed(
            "Only the facilitator of that room, IT support or a host can take this on.",
        )
    if request.status == "resolved":
        return "That request has already been resolved."
    if request.status == "claimed":
        claimer = await db.get(User, request.claimed_by_id) if request.claimed_by_id else None
        if claimer is not None and claimer.id != seat.user_id:
            return f"{claimer.display_name} is already helping."
        return "You are already helping."
    request.status = "claimed"
    request.claimed_by_id = seat.user_id
    request.claimed_at = utcnow()
    name = seat.ctx.user.display_name
    notice = (
        f"{name} is coming to help." if request.kind == "help" else f"{name} has seen your hand."
    )
    await _publish(db, live, seat=seat, request=request, notice=notice, action="help.claim")
    return "Thank you: the person knows you are on your way."


async def resolve(db: AsyncSession, live: Live, *, seat: Seat, help_id: int) -> str:
    """Mark a request done (the person who asked may also withdraw it)."""
    request = await load_request(db, seat=seat, help_id=help_id)
    own = request.requester_id == seat.user_id
    if not own and not await may_handle(db, seat=seat, request=request):
        raise NotAllowed(
            "Only the facilitator of that room, IT support or a host can resolve this.",
        )
    if request.status == "resolved":
        return "That request has already been resolved."
    request.status = "resolved"
    request.resolved_at = utcnow()
    if request.kind == "hand":
        notice = "Your hand is down."
    elif own:
        notice = "You withdrew your request for help."
    else:
        notice = f"{seat.ctx.user.display_name} marked your request for help as resolved."
    await _publish(db, live, seat=seat, request=request, notice=notice, action="help.resolve")
    return "Marked as resolved."
