"""Dependencies of live routes: the live machinery and the person's seat in the session."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from app.deps import MemberOf, SessionDep, SessionOf
from app.live.channels import Seat, seat_for
from app.state import get_app_state
from realtime.hub import Hub
from realtime.publish import Live


def get_live(request: HTTPConnection) -> Live:
    live: Live = get_app_state(request).live
    return live


def get_hub(request: HTTPConnection) -> Hub:
    hub: Hub = get_app_state(request).hub
    return hub


LiveDep = Annotated[Live, Depends(get_live)]
HubDep = Annotated[Hub, Depends(get_hub)]


async def get_seat(ctx: MemberOf, session: SessionOf, db: SessionDep) -> Seat:
    return await seat_for(db, ctx=ctx, session=session)


SeatOf = Annotated[Seat, Depends(get_seat)]
