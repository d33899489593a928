"""The files of a deck: its slides' images and its downloads (the original and the PDF).

Images never change once rendered (a new upload is a new deck with new storage keys), so
they are cached for a year and carry their key as ETag; they are served only to people
who may see the deck, and a room's deck is a 404 to anyone outside that room. Downloads
are for the deck's managers always, for everyone else who may see it once the presenter
allows."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from sqlalchemy import select
from starlette.responses import FileResponse, Response

from app.access import ProgrammeContext
from app.deps import MemberOf, SessionDep, SessionOf
from app.models import ProgrammeSession
from app.programmes.papers import content_disposition
from app.refusals import NotAllowed, NotFound
from app.stage import access, deck_files
from app.stage.decks import DECK_NOT_FOUND
from app.stage.models import Deck, Slide
from app.stage.urls import COMMON_WIDTH, SLIDE_WIDTHS
from app.state import get_app_state
from app.storage import LocalStorage

router = APIRouter(tags=["pages: decks"])

DeckIdPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="Deck id")]
SlidePath = Annotated[int, Path(ge=1, le=10_000, description="Slide number")]
IMAGE_CACHE = "private, max-age=31536000, immutable"


def _storage(request: Request) -> LocalStorage:
    storage: LocalStorage = get_app_state(request).storage
    return storage


def _image_response(request: Request, slide: Slide, width: int) -> Response:
    entry = slide.images.get(str(width))
    if entry is None:
        raise NotFound("We could not find that slide's image.")
    return _stored_image(request, entry["key"])


def _stored_image(request: Request, key: str) -> Response:
    etag = f'"{key}"'
    headers = {
        "ETag": etag,
        "Cache-Control": IMAGE_CACHE,
        "X-Content-Type-Options": "nosniff",
        "Cross-Origin-Resource-Policy": "same-origin",
    }
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    path = _storage(request).path(key)
    if not path.is_file():
        raise NotFound("We could not find that slide's image.")
    return FileResponse(path, media_type="image/webp", headers=headers)


@router.get("/slide-images/{key}.webp")
async def signed_slide_image(
    request: Request,
    key: Annotated[str, Path(pattern="^[0-9a-f]{32}$", description="Storage key")],
    s: Annotated[str, Query(max_length=64, description="The link's signature")] = "",
) -> Response:
    """A slide's image through the link the stage gave out (app/stage/urls.py)."""
    expected = get_app_state(request).signer.slide_image_signature(key)
    if not hmac.compare_digest(s.encode(), expected.encode()):
        raise NotFound("We could not find that slide's image.")
    return _stored_image(request, key)


@router.get("/programmes/{programme_id}/sessions/{session_id}/decks/{deck_id}/slides/{number}.webp")
async def slide_image(
    request: Request,
    ctx: MemberOf,
    session: SessionOf,
    deck_id: DeckIdPath,
    number: SlidePath,
    db: SessionDep,
    w: Annotated[int, Query(ge=1, le=10_000)] = COMMON_WIDTH,
) -> Response:
    deck = await db.get(Deck, deck_id)
    if (
        deck is None
        or deck.session_id != session.id
        or not await access.may_view_deck(db, ctx, deck)
    ):
        raise NotFound(DECK_NOT_FOUND)
    if w not in SLIDE_WIDTHS:
        raise NotFound(f"Slides are drawn {', '.join(map(str, SLIDE_WIDTHS))} pixels wide.")
    slide = await db.scalar(select(Slide).where(Slide.deck_id == deck.id, Slide.number == number))
    if slide is None:
        raise NotFound("We could not find that slide.")
    return _image_response(request, slide, w)


async def _download(
    request: Request,
    db: SessionDep,
    ctx: ProgrammeContext,
    session: ProgrammeSession,
    deck_id: int,
    *,
    pdf: bool,
) -> Response:
    deck = await db.get(Deck, deck_id)
    if (
        deck is None
        or deck.session_id != session.id
        or not await access.may_view_deck(db, ctx, deck)
    ):
        raise NotFound(DECK_NOT_FOUND)
    if not deck.downloadable and not await access.may_manage_deck(db, ctx, deck):
        raise NotAllowed("The presenter has not made this deck available to download.")
    key = deck.pdf_key if pdf else deck.original_key
    kind = "pdf" if pdf else deck.original_type
    name = deck.original_name
    if pdf and deck.original_type != "pdf":
        name = f"{name.rpartition('.')[0] or 'slides'}.pdf"
    path = _storage(request).path(key)
    if not path.is_file():
        raise NotFound("We could not find that deck's file.")
    return FileResponse(
        path,
        media_type=deck_files.CONTENT_TYPES[kind],
        headers={
            "Content-Disposition": content_disposition(name),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, no-store",
        },
    )


@router.get("/programmes/{programme_id}/sessions/{session_id}/decks/{deck_id}/original")
async def download_original(
    request: Request, ctx: MemberOf, session: SessionOf, deck_id: DeckIdPath, db: SessionDep
) -> Response:
    return await _download(request, db, ctx, session, deck_id, pdf=False)


@router.get("/programmes/{programme_id}/sessions/{session_id}/decks/{deck_id}/pdf")
async def download_pdf(
    request: Request, ctx: MemberOf, session: SessionOf, deck_id: DeckIdPath, db: SessionDep
) -> Response:
    return await _download(request, db, ctx, session, deck_id, pdf=True)
