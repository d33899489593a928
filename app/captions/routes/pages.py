"""The captions of one's current room on a page of their own (for a second screen, or for a
person who wants nothing but large captions). The caption panel inside the room is drawn
with the room (app/live/routes/room.py); both take their data from app/captions/view.py."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.captions.actions import public_status
from app.captions.view import caption_panel
from app.deps import SessionDep
from app.live import channels
from app.live.deps import SeatOf
from app.live.snapshot import room_title
from app.live.web import BASE, base_url
from app.state import get_app_state
from app.templating import render
from realtime import log as event_log

router = APIRouter(tags=["pages: live session"])


@router.get(BASE + "/captions")
async def captions_page(request: Request, seat: SeatOf, db: SessionDep) -> Response:
    personal = channels.personal(seat.user_id)
    # The channels' positions first, then the captions: anything newer also arrives live,
    # and the page replaces a line it already has instead of showing it twice.
    heads = await event_log.heads(db, [seat.current, personal])
    context = {
        "seat": seat,
        "base": base_url(seat),
        "room_title": room_title(seat),
        "room_last_id": heads[seat.current],
        "personal_channel": personal,
        "personal_last_id": heads[personal],
        "captions_status": public_status(get_app_state(request).captions),
    }
    context.update(await caption_panel(db, seat=seat))
    return render(request, "live/captions_full.html", context)
