"""The live session page, its panels, and chat actions (ordinary POSTs, so they work on
every transport and without JavaScript)."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from starlette.responses import RedirectResponse, Response

from app.captions.actions import public_status
from app.captions.view import caption_panel
from app.deps import ProgrammeIdPath, SessionDep, SessionIdPath
from app.live import channels
from app.live.channels import Seat
from app.live.chat import remove_message, report_message, send_message
from app.live.controls import controls_context
from app.live.deps import LiveDep, SeatOf
from app.live.seats import seat_for_post
from app.live.snapshot import channel_view, room_title, settings_of
from app.live.text import linkify
from app.live.web import BASE, base_url, wants_fragment
from app.refusals import NotAllowed
from app.stage.present import stage_context
from app.stage.tiles_view import tiles_context
from app.state import get_app_state
from app.templating import render
from app.voice.controls import live_page_controls
from app.voice.recording_actions import indicator_context

router = APIRouter(tags=["pages: live session"])

# The answer to a chat post names the stored message's id.
MESSAGE_ID_HEADER = "X-Message-Id"

MessageIdPath = Annotated[int, Path(ge=1, le=2**31 - 1)]
# ?text=1 turns text-only mode on for this visit, ?text=0 off, whatever the profile says.
TextQuery = Annotated[
    str | None, Query(pattern="^[01]$", description="1: text only (chat and captions); 0: all")
]


def text_only_mode(seat: Seat, text: str | None) -> dict[str, Any]:
    """Text-only mode (for weak connections): only chat and captions, and nothing else
    loaded. The person's low-bandwidth preference turns it on; ?text= overrides it for one
    visit, and the room, redrawn when the person moves, keeps the override (room_url)."""
    on = text == "1" if text is not None else seat.ctx.user.low_bandwidth
    room_url = f"{base_url(seat)}/room?text={text}" if text is not None else None
    return {"text_only": on, "room_url": room_url}


async def room_context(db: Any, seat: Seat, request: Request) -> dict[str, Any]:
    views = {seat.current: await channel_view(db, seat=seat, channel=seat.current)}
    personal = channels.personal(seat.user_id)
    views[personal] = await channel_view(db, seat=seat, channel=personal)
    state = get_app_state(request)
    staff_views = {}
    for channel in (channels.staff(seat.session.id), seat.help_desk):
        if channel is not None and channel in seat.followable():
            staff_views[channel] = await channel_view(db, seat=seat, channel=channel)
    return {
        "seat": seat,
        "base": base_url(seat),
        "room_title": room_title(seat),
        "room": views[seat.current],
        "personal": views[personal],
        "staff_views": staff_views,
        "staff_channel": channels.staff(seat.session.id),
        "help_channel": seat.help_desk,
        "client_id": secrets.token_hex(8),
        "room_settings": await settings_of(db, seat.current),
        "linkify": linkify,
        **await controls_context(db, seat=seat, presence=get_app_state(request).presence),
        "speaking_view": await get_app_state(request).speaking.payload(seat.current),
        **await caption_panel(db, seat=seat),
        "captions_status": public_status(get_app_state(request).captions),
        **await live_page_controls(db, seat=seat, presence=state.presence, speaking=state.speaking),
        **await indicator_context(db, state.recorders, seat=seat),
        # After the room's head id (channel_view): a newer slide also arrives live.
        **await stage_context(db, seat, state.signer),
        **await tiles_context(db, seat=seat),
    }


@router.get(BASE)
async def live_page(
    request: Request, seat: SeatOf, db: SessionDep, text: TextQuery = None
) -> Response:
    context = await room_context(db, seat, request)
    context.update(text_only_mode(seat, text))
    context["title"] = f"{seat.session.title}: {context['room_title']}"
    return render(request, "live/page.html", context)


@router.get(BASE + "/room")
async def live_room(
    request: Request, seat: SeatOf, db: SessionDep, text: TextQuery = None
) -> Response:
    """The person's current room, to swap in without a reload when rooms open or close."""
    context = await room_context(db, seat, request)
    context.update(text_only_mode(seat, text))
    return render(request, "live/_room.html", context)


@router.get(BASE + "/panel")
async def live_panel(
    request: Request,
    seat: SeatOf,
    db: SessionDep,
    channel: Annotated[str, Query(max_length=100)],
) -> Response:
    """One channel's panel, redrawn after a resync."""
    if channel not in seat.followable():
        raise NotAllowed("You cannot see that room.")
    view = await channel_view(db, seat=seat, channel=channel)
    return render(
        request,
        "live/_channel.html",
        {"view": view, "seat": seat, "base": base_url(seat), "linkify": linkify},
    )


async def get_seat_for_post(
    request: Request, programme_id: ProgrammeIdPath, session_id: SessionIdPath
) -> Seat:
    return await seat_for_post(request, programme_id, session_id)


# The poster's seat: the one their open connection keeps, else from the database.
PostingSeat = Annotated[Seat, Depends(get_seat_for_post)]


@router.post(BASE + "/chat")
async def post_chat(
    request: Request,
    seat: PostingSeat,
    text: Annotated[str, Form(max_length=10_000)] = "",
    channel: Annotated[str, Form(max_length=100)] = "",
    client_id: Annotated[str, Form(max_length=100)] = "",
    private: Annotated[str | None, Form(max_length=10)] = None,
) -> Response:
    """Send a chat message (the one way in for chat, on every transport): to `channel`
    (the person's room if empty), or privately to their room's facilitators. A retry with
    the same client id gets the message stored the first time; either way the answer
    names its id (X-Message-Id)."""
    message_id, _new = await send_message(
        writer=get_app_state(request).chat_writer,
        seat=seat,
        channel=channel or seat.current,
        text=text,
        client_id=client_id,
        private=private is not None,
    )
    headers = {MESSAGE_ID_HEADER: str(message_id)}
    if wants_fragment(request):
        return Response(status_code=204, headers=headers)
    return RedirectResponse(base_url(seat) + "#composer", status_code=303, headers=headers)


@router.post(BASE + "/messages/{message_id}/report")
async def post_report(
    request: Request,
    seat: SeatOf,
    db: SessionDep,
    live: LiveDep,
    message_id: MessageIdPath,
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    await report_message(db, live, seat=seat, message_id=message_id, reason=reason)
    if wants_fragment(request):
        return Response("Thank you. The facilitators have been told.", media_type="text/plain")
    return RedirectResponse(base_url(seat), status_code=303)


@router.post(BASE + "/messages/{message_id}/remove")
async def post_remove(
    request: Request,
    seat: SeatOf,
    db: SessionDep,
    live: LiveDep,
    message_id: MessageIdPath,
) -> Response:
    await remove_message(db, live, seat=seat, message_id=message_id)
    if wants_fragment(request):
        return Response(status_code=204)
    return RedirectResponse(base_url(seat), status_code=303)
