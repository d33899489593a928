"""What the consoles' pages are drawn from (app/live/routes/consoles.py serves them): the
channels a console follows, the facilitator's room with its people, hands, requests and
quick-note form, and the host's table of every room."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from app.evidence.models import Visibility
from app.evidence.notes import NOTE_MAX
from app.live import channels
from app.live.channels import Seat
from app.live.console import meeting_channel, room_people, room_requests, rooms_overview
from app.live.controls import people
from app.live.help_queries import console_list_id
from app.live.rooms import programme_groups
from app.live.snapshot import channel_view, settings_of
from app.live.web import base_url
from app.models import Group
from app.refusals import NotAllowed
from app.state import get_app_state
from app.voice.controls import host_controls, room_controls

# The people panel and the host's table of rooms are redrawn this often (seconds).
PEOPLE_REFRESH_SECONDS = 10
ROOMS_REFRESH_SECONDS = 5


@dataclass
class ConsoleSeat:
    seat: Seat
    group: Group


def console_url(seat: Seat, group_id: int) -> str:
    return f"{base_url(seat)}/console/{group_id}"


def deadline_of(seat: Seat) -> Any:
    if seat.breakout is None:
        return None
    return seat.breakout.closes_at or seat.breakout.ends_at


async def followed(db: AsyncSession, seat: Seat) -> dict[str, Any]:
    """The channels a console follows: the same as the person's live page (a facilitator's
    help desk has their groups' hands and requests, a host's every one)."""
    help_channel = seat.help_desk
    if help_channel is None:
        # Consoles are for facilitators and hosts, who all have one.
        raise NotAllowed("Consoles are for facilitators and hosts.")
    return {
        "current": await channel_view(db, seat=seat, channel=seat.current),
        "personal": await channel_view(db, seat=seat, channel=channels.personal(seat.user_id)),
        "help_desk": await channel_view(db, seat=seat, channel=help_channel),
    }


# -- the facilitator's console --


async def people_context(request: Request, db: AsyncSession, access: ConsoleSeat) -> dict[str, Any]:
    state = get_app_state(request)
    return {
        "group": access.group,
        "here": await room_people(
            db,
            seat=access.seat,
            group=access.group,
            presence=state.presence,
            speaking=state.speaking,
        ),
        "console": console_url(access.seat, access.group.id),
        "refresh_seconds": PEOPLE_REFRESH_SECONDS,
    }


async def facilitator_context(
    request: Request,
    db: AsyncSession,
    access: ConsoleSeat,
    *,
    note_values: dict[str, str] | None = None,
    note_errors: dict[str, str] | None = None,
) -> dict[str, Any]:
    seat, group = access.seat, access.group
    room = channels.room(seat.session.id, group.id)
    state = get_app_state(request)
    return {
        "seat": seat,
        "group": group,
        "base": base_url(seat),
        "console": console_url(seat, group.id),
        "room_channel": room,
        "meets_in": meeting_channel(seat, group),
        "deadline": deadline_of(seat),
        "requests": await room_requests(db, seat=seat, group=group),
        "hands_list": console_list_id("hand", group.id),
        "help_list": console_list_id("help", group.id),
        "room_settings": await settings_of(db, room),
        "room_people": await people(db, seat=seat, channel=room),
        "note_values": note_values or {"title": "", "markdown": "", "visibility": "group"},
        "note_errors": note_errors or {},
        "visibilities": list(Visibility),
        "note_max": NOTE_MAX,
        **await followed(db, seat),
        **await people_context(request, db, access),
        **await room_controls(
            db, seat=seat, group=group, presence=state.presence, speaking=state.speaking
        ),
    }


# -- the host's console --


async def rooms_context(
    request: Request, db: AsyncSession, seat: Seat, groups: list[Group]
) -> dict[str, Any]:
    """The host's table of rooms."""
    state = get_app_state(request)
    return {
        "base": base_url(seat),
        "rows": await rooms_overview(
            db, seat=seat, presence=state.presence, speaking=state.speaking, groups=groups
        ),
        "refresh_seconds": ROOMS_REFRESH_SECONDS,
    }


async def host_context(request: Request, db: AsyncSession, seat: Seat) -> dict[str, Any]:
    groups = await programme_groups(db, seat.ctx.programme.id)
    context: dict[str, Any] = {
        "seat": seat,
        "groups": groups,
        "people": await people(db, seat=seat),
        "deadline": deadline_of(seat),
        **await rooms_context(request, db, seat, groups),
        # live/_host_controls.html (shared with the live page) leaves its table to ours.
        "in_console": True,
        **await followed(db, seat),
        **await host_controls(
            db,
            seat=seat,
            presence=get_app_state(request).presence,
            speaking=get_app_state(request).speaking,
            origin="host",
        ),
    }
    if seat.breakout is not None:
        context["enter_groups"] = groups
    return context
