"""The stage on the live page: the presenter's controls (ordinary form POSTs, so they work
on every transport and without JavaScript) and the fragments the page fetches (the stage
after a resync, an earlier slide a viewer looks back at)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from starlette.responses import Response

from app.deps import SessionDep
from app.live.channels import Seat
from app.live.deps import LiveDep, SeatOf
from app.live.web import BASE, done, required_id, whole_number
from app.refusals import NotAllowed
from app.stage import present
from app.state import get_app_state
from app.templating import render

router = APIRouter(tags=["pages: the stage"])


async def presenting_seat(seat: SeatOf, db: SessionDep) -> Seat:
    """The seat of someone who presents in the room they are in; refused first, so that
    someone who may not present is told so, not that a number is wrong."""
    if not await present.may_present(db, seat):
        raise NotAllowed("Only this room's presenters can change its slides.")
    return seat


PresenterSeat = Annotated[Seat, Depends(presenting_seat)]

Number = Annotated[str, Form(max_length=12)]
MAX_SLIDES = 10_000


@router.post(BASE + "/stage/slide")
async def show_slide(
    request: Request,
    seat: PresenterSeat,
    db: SessionDep,
    live: LiveDep,
    deck_id: Number = "",
    number: Number = "",
) -> Response:
    """Show slide `number` of a deck to everyone in the presenter's room."""
    deck = required_id(deck_id, what="deck")
    page = whole_number(number, what="slide number", low=1, high=MAX_SLIDES, default=1)
    shown = await present.show_slide(
        db, live, get_app_state(request).signer, seat=seat, deck_id=deck, number=page
    )
    return done(request, seat, f"Showing slide {shown.number} of {shown.count}.")


@router.post(BASE + "/stage/stop")
async def stop_presenting(
    request: Request, seat: PresenterSeat, db: SessionDep, live: LiveDep
) -> Response:
    await present.clear_stage(db, live, seat=seat)
    return done(request, seat, "The slides are no longer shown.")


@router.get(BASE + "/stage")
async def stage_fragment(request: Request, seat: SeatOf, db: SessionDep) -> Response:
    """The stage of the person's room as it is now (after a resync)."""
    context = await present.stage_context(db, seat, get_app_state(request).signer)
    return render(request, "stage/_stage.html", context)


@router.get(BASE + "/stage/look")
async def look_back(
    request: Request,
    seat: SeatOf,
    db: SessionDep,
    deck: Annotated[int, Query(ge=1, le=2**31 - 1)],
    n: Annotated[int, Query(ge=1, le=MAX_SLIDES)],
) -> Response:
    """An earlier slide, for a viewer looking back while the presenter goes on."""
    shown = await present.look_back(db, seat, get_app_state(request).signer, deck_id=deck, number=n)
    return render(request, "stage/_look_slide.html", {"e": shown})


@router.get(BASE + "/stage/controls")
async def presenter_controls(request: Request, seat: PresenterSeat, db: SessionDep) -> Response:
    """The presenter's controls, redrawn after each change of slide."""
    context = await present.stage_context(db, seat, get_app_state(request).signer)
    return render(request, "stage/_presenter.html", context)
