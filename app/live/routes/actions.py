"""Actions in a live session besides chat: breakout rooms, hands and help, moderation,
and the host's view of who is where.

Every action is an ordinary form POST (CSRF checked by the router), so it works without
JavaScript (answered with a redirect back to the live page) and with htmx (answered with
a short line of text, or the refusal as plain text). The routes only read the form and
call the feature's action, which checks who may act before anything changes; where only
some people may act at all, a guard (`HostSeat`, `ModeratorSeat`, `EnteringSeat`) runs that
same check first, so someone who may not act is told so, not that a number is wrong."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Request
from starlette.responses import Response

from app.deps import SessionDep
from app.live import breakouts, moderation, moves
from app.live import help as help_desk
from app.live.channels import Seat
from app.live.controls import staff_occupancy
from app.live.deps import LiveDep, SeatOf
from app.live.web import (
    BASE,
    base_url,
    done,
    optional_id,
    required_id,
    whole_number,
)
from app.refusals import Refused
from app.state import get_app_state
from app.templating import render

router = APIRouter(tags=["pages: live session actions"])

HelpIdPath = Annotated[int, Path(ge=1, le=2**31 - 1)]
Number = Annotated[str, Form(max_length=12)]
Choice = Annotated[str, Form(max_length=20)]


async def host_seat(seat: SeatOf) -> Seat:
    breakouts.require_host(seat)
    return seat


async def moderator_seat(seat: SeatOf) -> Seat:
    moderation.require_moderator(seat)
    return seat


async def entering_seat(seat: SeatOf) -> Seat:
    moves.require_may_enter(seat)
    return seat


HostSeat = Annotated[Seat, Depends(host_seat)]
ModeratorSeat = Annotated[Seat, Depends(moderator_seat)]
EnteringSeat = Annotated[Seat, Depends(entering_seat)]


@router.post(BASE + "/breakouts/open")
async def open_breakouts(
    request: Request, seat: HostSeat, db: SessionDep, live: LiveDep, minutes: Number = ""
) -> Response:
    length = whole_number(
        minutes, what="length in minutes", low=breakouts.MIN_MINUTES, high=breakouts.MAX_MINUTES
    )
    await breakouts.open_rooms(db, live, seat=seat, minutes=length)
    return done(request, seat, f"Breakout rooms are open for {length} minutes.")


@router.post(BASE + "/breakouts/extend")
async def extend_breakouts(
    request: Request, seat: HostSeat, db: SessionDep, live: LiveDep, minutes: Number = ""
) -> Response:
    extra = whole_number(
        minutes,
        what="number of minutes to add",
        low=breakouts.MIN_MINUTES,
        high=breakouts.MAX_MINUTES,
    )
    await breakouts.extend(db, live, seat=seat, minutes=extra)
    return done(request, seat, f"Added {extra} minutes.")


@router.post(BASE + "/breakouts/close")
async def close_breakouts(
    request: Request,
    seat: HostSeat,
    db: SessionDep,
    live: LiveDep,
    warning_seconds: Number = "",
) -> Response:
    warning = whole_number(
        warning_seconds,
        what="warning in seconds",
        low=0,
        high=breakouts.MAX_WARNING_SECONDS,
        default=breakouts.WARNING_SECONDS,
    )
    await breakouts.close_rooms(db, live, seat=seat, warning_seconds=warning)
    return done(
        request, seat, f"Rooms close in {warning} seconds." if warning else "Rooms are closed."
    )


@router.post(BASE + "/broadcast")
async def broadcast(
    request: Request,
    seat: SeatOf,
    db: SessionDep,
    live: LiveDep,
    text: Annotated[str, Form(max_length=5000)] = "",
) -> Response:
    await breakouts.broadcast(db, live, seat=seat, text=text)
    return done(request, seat, "Sent to every room.")


@router.post(BASE + "/move")
async def move_person(
    request: Request,
    seat: HostSeat,
    db: SessionDep,
    live: LiveDep,
    user_id: Number = "",
    group_id: Number = "",
) -> Response:
    person_id = required_id(user_id, what="person")
    room_id = optional_id(group_id, what="room")
    person = await moves.move(db, live, seat=seat, user_id=person_id, group_id=room_id)
    return done(request, seat, f"{person.display_name} has been moved.")


@router.post(BASE + "/enter")
async def enter_room(
    request: Request, seat: EnteringSeat, db: SessionDep, live: LiveDep, group_id: Number = ""
) -> Response:
    room_id = optional_id(group_id, what="room")
    await moves.enter(db, live, seat=seat, group_id=room_id)
    return done(request, seat, "Moving you now.")


@router.post(BASE + "/hand")
async def hand(
    request: Request, seat: SeatOf, db: SessionDep, live: LiveDep, action: Choice = "raise"
) -> Response:
    if action == "raise":
        await help_desk.raise_hand(db, live, seat=seat)
        message = "Your hand is raised."
    elif action == "lower":
        await help_desk.lower_hand(db, live, seat=seat)
        message = "Your hand is down."
    else:
        raise Refused("Choose to raise or lower your hand.")
    return done(request, seat, message)


@router.post(BASE + "/help")
async def ask_for_help(
    request: Request,
    seat: SeatOf,
    db: SessionDep,
    live: LiveDep,
    note: Annotated[str, Form(max_length=5000)] = "",
) -> Response:
    await help_desk.ask_for_help(db, live, seat=seat, note=note)
    return done(request, seat, "Help is on its way: your facilitator and the help desk know.")


@router.post(BASE + "/help/{help_id}/claim")
async def claim_help(
    request: Request, seat: SeatOf, db: SessionDep, live: LiveDep, help_id: HelpIdPath
) -> Response:
    message = await help_desk.claim(db, live, seat=seat, help_id=help_id)
    return done(request, seat, message)


@router.post(BASE + "/help/{help_id}/resolve")
async def resolve_help(
    request: Request, seat: SeatOf, db: SessionDep, live: LiveDep, help_id: HelpIdPath
) -> Response:
    message = await help_desk.resolve(db, live, seat=seat, help_id=help_id)
    return done(request, seat, message)


@router.post(BASE + "/mute")
async def mute(
    request: Request,
    seat: ModeratorSeat,
    db: SessionDep,
    live: LiveDep,
    user_id: Number = "",
    minutes: Number = "",
    action: Choice = "mute",
) -> Response:
    person_id = required_id(user_id, what="person")
    if action == "unmute":
        length = None
    elif action == "mute":
        length = whole_number(
            minutes,
            what="length of the pause in minutes",
            low=moderation.MIN_MUTE_MINUTES,
            high=moderation.MAX_MUTE_MINUTES,
        )
    else:
        raise Refused("Choose to pause someone's chat or let them chat again.")
    message = await moderation.set_mute(db, live, seat=seat, user_id=person_id, minutes=length)
    return done(request, seat, message)


@router.post(BASE + "/room-settings")
async def room_settings(
    request: Request,
    seat: ModeratorSeat,
    db: SessionDep,
    live: LiveDep,
    channel: Annotated[str, Form(max_length=100)] = "",
    locked: Annotated[str | None, Form(max_length=10)] = None,
    slow_mode_seconds: Number = "",
) -> Response:
    slow = whole_number(
        slow_mode_seconds,
        what="slow mode in seconds",
        low=0,
        high=moderation.MAX_SLOW_MODE_SECONDS,
        default=0,
    )
    rules = await moderation.set_room_rules(
        db,
        live,
        seat=seat,
        channel=channel.strip(),
        locked=locked is not None,
        slow_mode_seconds=slow,
    )
    return done(request, seat, moderation.rules_summary(rules))


@router.get(BASE + "/occupancy")
async def room_occupancy(request: Request, seat: SeatOf, db: SessionDep) -> Response:
    """How many people are in each room, for the host's table (refreshed by htmx)."""
    rows = await staff_occupancy(db, seat=seat, presence=get_app_state(request).presence)
    return render(request, "live/_occupancy.html", {"occupancy": rows, "base": base_url(seat)})
