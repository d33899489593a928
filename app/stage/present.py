"""The slide sync: what each room's stage shows, changed by its presenter, followed by
everyone in the room (docs/stage.md).

The current slide of a room is a row (StageState) and an event in the room's log
(`stage.slide`), written in one transaction: a page drawn now shows the row, a page that
is connected gets the event on whatever transport it uses, and a page that reconnects gets
what it missed, so a late joiner or a reconnecting viewer is on the live slide at once.

Who presents: hosts, in any room they are in; a presenter named for the session, in the
plenary; a breakout room's facilitators, in their room. A plenary deck is shown only on the
plenary's stage, a breakout room's deck only in that room."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app import audit
from app.db import utcnow
from app.live import channels
from app.live.channels import Seat
from app.live.events import StageSlidePayload
from app.live.web import base_url
from app.models import User
from app.refusals import NotAllowed, NotFound, Refused
from app.security import Signer
from app.stage.access import is_presenter
from app.stage.decks import decks_for_room, load_deck
from app.stage.models import Deck, Slide, StageState
from app.stage.urls import (
    COMMON_WIDTH,
    SLIDE_WIDTHS,
    deck_original_url,
    deck_pdf_url,
    deck_url,
    decks_url,
    signed_slide_image_url,
    slide_image_url,
)
from realtime.publish import Live

NOTHING_SHOWN = StageSlidePayload(deck_id=0)


async def may_present(db: AsyncSession, seat: Seat) -> bool:
    """Whether this person steps through slides on the stage of the room they are in."""
    if seat.is_host or seat.may_moderate(seat.current):
        return True
    if seat.current != channels.plenary(seat.session.id):
        return False
    return await is_presenter(db, seat.ctx, seat.session.id)


async def room_deck(db: AsyncSession, seat: Seat, deck_id: int) -> Deck:
    """One of the decks of the person's current room, with its slides; NotFound otherwise
    (a plenary deck is not shown in a breakout room, nor one room's deck in another)."""
    deck = await load_deck(db, deck_id, seat.session.id)
    if deck.group_id != channels.room_group_id(seat.current):
        raise NotFound("That deck is not one of this room's decks.")
    return deck


def _srcset(signer: Signer, slide: Slide) -> str:
    """Every width of a slide's image, as signed links (app/stage/urls.py)."""
    return ", ".join(
        f"{signed_slide_image_url(entry['key'], signer.slide_image_signature(entry['key']))} {w}w"
        for w in SLIDE_WIDTHS
        if (entry := slide.images.get(str(w)))
    )


def slide_payload(
    signer: Signer,
    programme_id: int,
    session_id: int,
    deck: Deck,
    slide: Slide,
    presenter: str = "",
) -> StageSlidePayload:
    common = slide.images.get(str(COMMON_WIDTH))
    downloads = {}
    if deck.downloadable:
        downloads = {
            "pdf_url": deck_pdf_url(programme_id, session_id, deck.id),
            "original_url": deck_original_url(programme_id, session_id, deck.id),
            "original_type": deck.original_type,
        }
    following = next((s for s in deck.slides if s.number == slide.number + 1), None)
    return StageSlidePayload(
        deck_id=deck.id,
        deck_title=deck.title,
        number=slide.number,
        count=deck.page_count,
        title=slide.title,
        text=slide.text,
        alt_text=slide.alt_text,
        image_url=(
            signed_slide_image_url(common["key"], signer.slide_image_signature(common["key"]))
            if common
            else ""
        ),
        srcset=_srcset(signer, slide),
        next_srcset=_srcset(signer, following) if following is not None else "",
        width=slide.width,
        height=slide.height,
        presenter=presenter,
        **downloads,
    )


def _payload(
    seat: Seat, signer: Signer, deck: Deck, slide: Slide, presenter: str = ""
) -> StageSlidePayload:
    return slide_payload(signer, seat.ctx.programme.id, seat.session.id, deck, slide, presenter)


async def current_slide(db: AsyncSession, seat: Seat, signer: Signer) -> StageSlidePayload:
    """What the stage of the person's current room shows now."""
    state = await db.get(StageState, seat.current)
    if state is None or state.deck_id is None:
        return NOTHING_SHOWN
    deck = await db.scalar(
        select(Deck).where(Deck.id == state.deck_id).options(selectinload(Deck.slides))
    )
    if deck is None or not deck.slides:
        return NOTHING_SHOWN
    slide = deck.slides[min(state.slide_number, len(deck.slides)) - 1]
    return _payload(seat, signer, deck, slide, await _name(db, state))


async def _name(db: AsyncSession, state: StageState) -> str:
    """Who presents on that stage, as the room sees them."""
    user = await db.get(User, state.presenter_id) if state.presenter_id is not None else None
    return user.name_with_pronouns if user else ""


async def look_back(
    db: AsyncSession, seat: Seat, signer: Signer, *, deck_id: int, number: int
) -> StageSlidePayload:
    """An earlier slide of the deck on the stage, for a viewer looking back: never one the
    presenter has not reached yet (presenters see any)."""
    deck = await room_deck(db, seat, deck_id)
    if not 1 <= number <= len(deck.slides):
        raise NotFound(f"This deck has slides 1 to {len(deck.slides)}.")
    if not await may_present(db, seat):
        state = await db.get(StageState, seat.current)
        if state is None or state.deck_id != deck_id or number > state.slide_number:
            raise NotAllowed("You can look back at slides already shown, not ahead.")
    return _payload(seat, signer, deck, deck.slides[number - 1])


async def show_slide(
    db: AsyncSession, live: Live, signer: Signer, *, seat: Seat, deck_id: int, number: int
) -> StageSlidePayload:
    """Put slide `number` of a deck on the stage of the presenter's room, for everyone in it."""
    if not await may_present(db, seat):
        raise NotAllowed("Only this room's presenters can change its slides.")
    deck = await room_deck(db, seat, deck_id)
    if not 1 <= number <= len(deck.slides):
        raise Refused(f"This deck has slides 1 to {len(deck.slides)}.")
    state = await db.get(StageState, seat.current, with_for_update=True)
    if state is None:
        state = StageState(channel=seat.current, session_id=seat.session.id)
        db.add(state)
    changed_deck = state.deck_id != deck.id
    state.deck_id, state.slide_number = deck.id, number
    state.presenter_id, state.updated_at = seat.user_id, utcnow()
    if changed_deck:
        audit.record(
            db,
            actor=seat.ctx.user,
            action="stage.present",
            programme_id=seat.ctx.programme.id,
            target=f"deck:{deck.id}",
            room=seat.current,
        )
    payload = _payload(
        seat, signer, deck, deck.slides[number - 1], seat.ctx.user.name_with_pronouns
    )
    outbox = live.outbox(db)
    await outbox.add(seat.current, "stage.slide", payload, actor_id=seat.user_id)
    await outbox.commit()
    return payload


async def clear_stage(db: AsyncSession, live: Live, *, seat: Seat) -> None:
    """Stop presenting: the room's stage shows no deck."""
    if not await may_present(db, seat):
        raise NotAllowed("Only this room's presenters can stop the slides.")
    state = await db.get(StageState, seat.current, with_for_update=True)
    if state is None or state.deck_id is None:
        return
    state.deck_id, state.presenter_id, state.updated_at = None, seat.user_id, utcnow()
    outbox = live.outbox(db)
    await outbox.add(seat.current, "stage.slide", NOTHING_SHOWN, actor_id=seat.user_id)
    await outbox.commit()


async def stage_context(db: AsyncSession, seat: Seat, signer: Signer) -> dict[str, object]:
    """What the stage of the person's room needs to be drawn: the live slide, and for its
    presenters the room's decks and the deck on the stage (thumbnails and notes)."""
    shown = await current_slide(db, seat, signer)
    context: dict[str, object] = {
        "stage": shown,
        "seat": seat,
        "base": base_url(seat),
        "may_present": False,
    }
    if not await may_present(db, seat):
        return context
    context["may_present"] = True
    context["decks"] = await decks_for_room(
        db, seat.session.id, channels.room_group_id(seat.current)
    )
    context["decks_url"] = decks_url(seat.ctx.programme.id, seat.session.id)
    if shown.deck_id:
        deck = await room_deck(db, seat, shown.deck_id)
        context["deck"] = deck
        programme_id, session_id = seat.ctx.programme.id, seat.session.id
        context["thumbnails"] = {
            s.number: slide_image_url(programme_id, session_id, deck.id, s.number, 480)
            for s in deck.slides
            if "480" in s.images
        }
        context["notes"] = deck.slides[shown.number - 1].notes
        context["deck_page"] = deck_url(seat.ctx.programme.id, seat.session.id, deck.id)
    return context


async def rooms_showing(db: AsyncSession, deck_id: int) -> list[str]:
    """The rooms whose stage shows this deck now."""
    rows = await db.scalars(select(StageState.channel).where(StageState.deck_id == deck_id))
    return list(rows.all())


async def restage(
    db: AsyncSession,
    live: Live,
    signer: Signer,
    *,
    programme_id: int,
    deck_id: int,
    rooms: list[str],
) -> None:
    """After a deck changed (a description, downloads allowed) or was deleted: the rooms that
    showed it see the change at once (the same slide, or nothing)."""
    if not rooms:
        return
    outbox = live.outbox(db)
    for room in rooms:
        state = await db.get(StageState, room)
        deck = None
        if state is not None and state.deck_id == deck_id:
            deck = await db.scalar(
                select(Deck).where(Deck.id == deck_id).options(selectinload(Deck.slides))
            )
        if state is None or deck is None or not deck.slides:
            await outbox.add(room, "stage.slide", NOTHING_SHOWN)
            continue
        slide = deck.slides[min(state.slide_number, len(deck.slides)) - 1]
        presenter = await _name(db, state)
        payload = slide_payload(signer, programme_id, deck.session_id, deck, slide, presenter)
        await outbox.add(room, "stage.slide", payload)
    await outbox.commit()
