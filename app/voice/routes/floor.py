"""Voice controls of a live session: the host gives and takes back the floor and opens the
mic; facilitators and hosts mute someone, or everyone in a room.

Ordinary form POSTs (CSRF checked by the router), so they work without JavaScript
(answered with a redirect back to the page the form was on, `?voice=` naming what was
done) and with htmx (answered with the controls redrawn, the answer in their status
line; or, from a form that names no page, a short line of text). Refusals are the
usual plain-text 4xx. The rules are in app/voice/actions.py and app/voice/mutes.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import RedirectResponse, Response

from app.deps import SessionDep
from app.live.channels import Seat
from app.live.deps import LiveDep, SeatOf
from app.live.moderation import require_moderator
from app.live.web import BASE, required_id, wants_fragment
from app.models import Group
from app.refusals import Refused
from app.state import get_app_state
from app.templating import render
from app.voice import actions, mutes
from app.voice.controls import FROM_PATTERN, back_url, here_in, host_controls, room_controls

router = APIRouter(tags=["pages: live voice"])

VOICE = BASE + "/voice"

Number = Annotated[str, Form(max_length=12)]
Choice = Annotated[str, Form(max_length=20)]
Channel = Annotated[str, Form(max_length=100)]
# The page the form is on: "live", "host" or "console-{group}".
Origin = Annotated[str, Form(alias="from", max_length=20)]


async def floor_host_seat(seat: SeatOf) -> Seat:
    actions.require_floor_host(seat)
    return seat


async def moderator_seat(seat: SeatOf) -> Seat:
    require_moderator(seat)
    return seat


FloorHostSeat = Annotated[Seat, Depends(floor_host_seat)]
ModeratorSeat = Annotated[Seat, Depends(moderator_seat)]


async def redrawn(
    request: Request, db: SessionDep, seat: Seat, origin: str, said: str
) -> Response | None:
    """The controls as the page `origin` shows them, with `said` in their status line;
    None when that page has no voice controls for this person."""
    match = FROM_PATTERN.match(origin)
    if match is None:
        return None
    state = get_app_state(request)
    if match.group(2) is None:
        if not seat.is_host:
            return None
        context = await host_controls(
            db, seat=seat, presence=state.presence, speaking=state.speaking, origin=origin
        )
        template = "voice/_floor_controls.html"
    else:
        group = await db.get(Group, int(match.group(2)))
        if group is None or group.programme_id != seat.ctx.programme.id:
            return None
        if not (seat.is_host or group.id in seat.facilitated):
            return None
        context = await room_controls(
            db, seat=seat, group=group, presence=state.presence, speaking=state.speaking
        )
        template = "voice/_room_voice.html"
    return render(request, template, {**context, "voice_said": said})  # type: ignore[no-any-return]


async def answer(
    request: Request, db: SessionDep, seat: Seat, message: str, *, origin: str, done: str
) -> Response:
    if wants_fragment(request):
        html = await redrawn(request, db, seat, origin, message)
        return html or Response(message, media_type="text/plain")
    return RedirectResponse(f"{back_url(seat, origin)}?voice={done}#voice-controls", 303)


@router.post(VOICE + "/floor/give")
async def give_floor(
    request: Request,
    seat: FloorHostSeat,
    db: SessionDep,
    live: LiveDep,
    user_id: Number = "",
    origin: Origin = "",
) -> Response:
    person_id = required_id(user_id, what="person")
    message = await actions.give_floor(db, live, seat=seat, user_id=person_id)
    return await answer(request, db, seat, message, origin=origin, done="given")


@router.post(VOICE + "/floor/take")
async def take_floor(
    request: Request,
    seat: FloorHostSeat,
    db: SessionDep,
    live: LiveDep,
    user_id: Number = "",
    origin: Origin = "",
) -> Response:
    person_id = required_id(user_id, what="person")
    message = await actions.take_floor(db, live, seat=seat, user_id=person_id)
    return await answer(request, db, seat, message, origin=origin, done="taken")


@router.post(VOICE + "/open-mic")
async def open_mic(
    request: Request,
    seat: FloorHostSeat,
    db: SessionDep,
    live: LiveDep,
    channel: Channel = "",
    action: Choice = "",
    origin: Origin = "",
) -> Response:
    if action not in ("on", "off"):
        raise Refused("Choose to turn open mic on or off.")
    if not channel.strip():
        raise Refused("Choose the room.")
    message = await actions.set_open_mic(
        db, live, seat=seat, channel=channel.strip(), open_mic=action == "on"
    )
    done = "open" if action == "on" else "closed"
    return await answer(request, db, seat, message, origin=origin, done=done)


@router.post(VOICE + "/mute")
async def mute(
    request: Request,
    seat: ModeratorSeat,
    db: SessionDep,
    live: LiveDep,
    user_id: Number = "",
    action: Choice = "mute",
    origin: Origin = "",
) -> Response:
    if action == "unmute":
        mutes.refuse_unmute()
    elif action != "mute":
        raise Refused("Choose to mute someone's microphone.")
    person_id = required_id(user_id, what="person")
    message = await mutes.mute_voice(db, live, seat=seat, user_id=person_id)
    return await answer(request, db, seat, message, origin=origin, done="muted")


@router.post(VOICE + "/mute-all")
async def mute_all(
    request: Request,
    seat: ModeratorSeat,
    db: SessionDep,
    live: LiveDep,
    channel: Channel = "",
    origin: Origin = "",
) -> Response:
    state = get_app_state(request)

    async def who_is_here(room: str) -> set[int]:
        return await here_in(room, presence=state.presence, speaking=state.speaking)

    message = await mutes.mute_all(
        db, live, seat=seat, channel=channel.strip(), who_is_here=who_is_here
    )
    return await answer(request, db, seat, message, origin=origin, done="muted-all")
