"""Pages: a session's decks (list, upload) and one deck (its slides, their text, alt text
and speaker notes, the download switch, deletion). The files themselves are served by
app/stage/routes/deck_files.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import RedirectResponse, Response

from app.access import ProgrammeContext
from app.deps import MemberOf, SessionDep, SessionOf
from app.live.deps import LiveDep
from app.models import Group, ProgrammeSession
from app.refusals import NotAllowed, NotFound, Refused
from app.stage import access, deck_files, decks, present
from app.stage.decks import DECK_NOT_FOUND, DeckUpload
from app.stage.models import Deck
from app.stage.urls import COMMON_WIDTH, SLIDE_WIDTHS, deck_url, decks_url
from app.state import get_app_state
from app.storage import CHUNK, LocalStorage
from app.templating import render
from realtime.publish import Live

router = APIRouter(tags=["pages: decks"])

DeckIdPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="Deck id")]
SlidePath = Annotated[int, Path(ge=1, le=10_000, description="Slide number")]
LongText = Annotated[str, Form(max_length=40_000)]
DoneParam = Annotated[str, Query(max_length=20)]

DONE = {
    "uploaded": "The deck has been uploaded and its slides are ready.",
    "renamed": "The deck has been renamed.",
    "downloadable": "Participants can now download this deck.",
    "private": "Participants can no longer download this deck.",
    "slide": "The slide has been saved.",
    "deleted": "The deck has been deleted.",
}
NOT_STAFF = (
    "Only the session's hosts and presenters, and breakout rooms' facilitators, manage decks."
)


def _storage(request: Request) -> LocalStorage:
    storage: LocalStorage = get_app_state(request).storage
    return storage


async def _room_choices(
    db: SessionDep, ctx: ProgrammeContext, session: ProgrammeSession
) -> list[tuple[str, str]]:
    """(value, label) of the rooms this person may add a deck for ("" is the plenary)."""
    groups = list(
        (
            await db.scalars(
                select(Group)
                .where(Group.programme_id == ctx.programme.id)
                .order_by(Group.position, Group.name)
            )
        ).all()
    )
    everywhere = await access.may_manage_deck(db, ctx, session, None)
    mine = await access.managed_groups(db, ctx)
    choices = [("", "The plenary (everyone)")] if everywhere else []
    choices += [
        (str(g.id), f"{g.name} (breakout room)") for g in groups if everywhere or g.id in mine
    ]
    return choices


async def _decks_page(
    request: Request,
    db: SessionDep,
    ctx: ProgrammeContext,
    session: ProgrammeSession,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
    done: str = "",
) -> Response:
    if not await access.may_manage_any(db, ctx, session.id):
        raise NotAllowed(NOT_STAFF)
    shown = [
        d
        for d in await decks.decks_for_session(db, session.id)
        if await access.may_view_deck(db, ctx, d)
    ]
    groups = {g.id: g.name for g in (await db.scalars(_groups_query(ctx))).all()}
    context: dict[str, Any] = {
        "title": f"Slides: {session.title}",
        "programme": ctx.programme,
        "session": session,
        "decks": shown,
        "group_names": groups,
        "rooms": await _room_choices(db, ctx, session),
        "values": values or {"title": "", "room": ""},
        "errors": errors or {},
        "flash_messages": [DONE[done]] if done in DONE else [],
        "accept": deck_files.ACCEPT,
        "max_mb": deck_files.DECK_MAX_BYTES // deck_files.MB,
        "max_pages": deck_files.MAX_PAGES,
        "libreoffice": deck_files.soffice_path() is not None,
        "base": decks_url(ctx.programme.id, session.id),
    }
    return render(request, "stage/decks.html", context, status_code=status_code)


def _groups_query(ctx: ProgrammeContext) -> Any:
    return select(Group).where(Group.programme_id == ctx.programme.id)


@router.get("/programmes/{programme_id}/sessions/{session_id}/decks")
async def decks_page(
    request: Request, ctx: MemberOf, session: SessionOf, db: SessionDep, done: DoneParam = ""
) -> Response:
    return await _decks_page(request, db, ctx, session, done=done)


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(CHUNK):
        yield chunk


@router.post("/programmes/{programme_id}/sessions/{session_id}/decks")
async def upload(
    request: Request,
    ctx: MemberOf,
    session: SessionOf,
    db: SessionDep,
    file: Annotated[UploadFile | None, File()] = None,
    title: Annotated[str, Form(max_length=1_000)] = "",
    room: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    values = {"title": title, "room": room}
    if not await access.may_manage_any(db, ctx, session.id):
        raise NotAllowed(NOT_STAFF)
    try:
        if room and not (room.isascii() and room.isdigit() and len(room) <= 9):
            raise decks.RoomRefused("Choose the room the deck is for.")
        if file is None or not file.filename:
            raise deck_files.DeckRefused("Choose the deck's file (PDF, PPTX or ODP).", status=400)
        deck = await decks.upload_deck(
            db,
            storage=_storage(request),
            renders=get_app_state(request).deck_renders,
            ctx=ctx,
            session=session,
            upload=DeckUpload(
                filename=file.filename,
                title=title,
                group_id=int(room) if room else None,
                chunks=_chunks(file),
            ),
        )
    except Refused as exc:
        field = "title"
        if isinstance(exc, deck_files.DeckRefused):
            field = "file"
        elif isinstance(exc, decks.RoomRefused):
            field = "room"
        return await _decks_page(
            request,
            db,
            ctx,
            session,
            values=values,
            errors={field: exc.message},
            status_code=exc.status,
        )
    return RedirectResponse(
        deck_url(ctx.programme.id, session.id, deck.id) + "?done=uploaded", status_code=303
    )


async def _viewable(
    db: SessionDep, ctx: ProgrammeContext, session: ProgrammeSession, deck_id: int
) -> Deck:
    deck = await decks.load_deck(db, deck_id, session.id)
    if not await access.may_view_deck(db, ctx, deck):
        raise NotFound(DECK_NOT_FOUND)
    return deck


async def _deck_page(
    request: Request,
    db: SessionDep,
    ctx: ProgrammeContext,
    session: ProgrammeSession,
    deck: Deck,
    *,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
    done: str = "",
) -> Response:
    manager = await access.may_manage_deck(db, ctx, deck)
    group = await db.get(Group, deck.group_id) if deck.group_id else None
    context: dict[str, Any] = {
        "title": f"{deck.title}: slides",
        "programme": ctx.programme,
        "session": session,
        "deck": deck,
        "room_name": f"{group.name} (breakout room)" if group else "The plenary",
        "manager": manager,
        "may_download": manager or deck.downloadable,
        "may_list": await access.may_manage_any(db, ctx, session.id),
        "errors": errors or {},
        "flash_messages": [DONE[done]] if done in DONE else [],
        "url": deck_url(ctx.programme.id, session.id, deck.id),
        "decks_url": decks_url(ctx.programme.id, session.id),
        "widths": SLIDE_WIDTHS,
        "common_width": COMMON_WIDTH,
        "type_label": {"pdf": "PDF", "pptx": "PowerPoint", "odp": "Impress"}[deck.original_type],
    }
    return render(request, "stage/deck.html", context, status_code=status_code)


@router.get("/programmes/{programme_id}/sessions/{session_id}/decks/{deck_id}")
async def deck_page(
    request: Request,
    ctx: MemberOf,
    session: SessionOf,
    deck_id: DeckIdPath,
    db: SessionDep,
    done: DoneParam = "",
) -> Response:
    deck = await _viewable(db, ctx, session, deck_id)
    return await _deck_page(request, db, ctx, session, deck, done=done)


def _back(ctx: ProgrammeContext, deck: Deck, done: str, anchor: str = "") -> Response:
    url = deck_url(ctx.programme.id, deck.session_id, deck.id)
    return RedirectResponse(f"{url}?done={done}{anchor}", status_code=303)


@router.post("/programmes/{programme_id}/sessions/{session_id}/decks/{deck_id}/rename")
async def rename(
    request: Request,
    ctx: MemberOf,
    session: SessionOf,
    deck_id: DeckIdPath,
    db: SessionDep,
    title: Annotated[str, Form(max_length=1_000)] = "",
) -> Response:
    deck = await _viewable(db, ctx, session, deck_id)
    try:
        await decks.rename_deck(db, ctx=ctx, deck=deck, title=title)
    except NotAllowed:
        raise
    except Refused as exc:
        return await _deck_page(
            request, db, ctx, session, deck, errors={"title": exc.message}, status_code=exc.status
        )
    return _back(ctx, deck, "renamed")


async def _restage(
    request: Request,
    db: AsyncSession,
    live: Live,
    ctx: ProgrammeContext,
    deck_id: int,
    *,
    rooms: list[str] | None = None,
) -> None:
    """A deck on a stage changed (or was deleted, after finding the `rooms` showing it): the
    rooms showing it see the change at once."""
    if rooms is None:
        rooms = await present.rooms_showing(db, deck_id)
    signer = get_app_state(request).signer
    await present.restage(
        db, live, signer, programme_id=ctx.programme.id, deck_id=deck_id, rooms=rooms
    )


@router.post("/programmes/{programme_id}/sessions/{session_id}/decks/{deck_id}/downloadable")
async def downloadable(
    request: Request,
    ctx: MemberOf,
    session: SessionOf,
    deck_id: DeckIdPath,
    db: SessionDep,
    live: LiveDep,
    downloadable: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    deck = await _viewable(db, ctx, session, deck_id)
    allowed = downloadable in ("on", "1", "true", "yes")
    await decks.set_downloadable(db, ctx=ctx, deck=deck, downloadable=allowed)
    await _restage(request, db, live, ctx, deck.id)
    return _back(ctx, deck, "downloadable" if allowed else "private", "#downloads")


@router.post("/programmes/{programme_id}/sessions/{session_id}/decks/{deck_id}/slides/{number}")
async def edit_slide(
    request: Request,
    ctx: MemberOf,
    session: SessionOf,
    deck_id: DeckIdPath,
    number: SlidePath,
    db: SessionDep,
    live: LiveDep,
    alt_text: LongText = "",
    notes: LongText = "",
) -> Response:
    deck = await _viewable(db, ctx, session, deck_id)
    try:
        await decks.edit_slide(
            db, ctx=ctx, deck=deck, number=number, alt_text=alt_text, notes=notes
        )
    except (NotAllowed, NotFound):
        raise
    except Refused as exc:
        field = "notes" if exc.message.startswith("Speaker notes") else "alt_text"
        return await _deck_page(
            request,
            db,
            ctx,
            session,
            deck,
            errors={f"{field}-{number}": exc.message},
            status_code=exc.status,
        )
    await _restage(request, db, live, ctx, deck.id)
    return _back(ctx, deck, "slide", f"#slide-{number}")


@router.get("/programmes/{programme_id}/sessions/{session_id}/decks/{deck_id}/delete")
async def confirm_delete(
    request: Request, ctx: MemberOf, session: SessionOf, deck_id: DeckIdPath, db: SessionDep
) -> Response:
    deck = await _viewable(db, ctx, session, deck_id)
    if not await access.may_manage_deck(db, ctx, deck):
        raise NotAllowed(decks.NOT_YOURS)
    return render(
        request,
        "stage/deck_delete.html",
        {
            "title": f"Delete {deck.title}?",
            "programme": ctx.programme,
            "session": session,
            "deck": deck,
            "url": deck_url(ctx.programme.id, session.id, deck.id),
            "decks_url": decks_url(ctx.programme.id, session.id),
        },
    )


@router.post("/programmes/{programme_id}/sessions/{session_id}/decks/{deck_id}/delete")
async def delete(
    request: Request,
    ctx: MemberOf,
    session: SessionOf,
    deck_id: DeckIdPath,
    db: SessionDep,
    live: LiveDep,
) -> Response:
    deck = await _viewable(db, ctx, session, deck_id)
    showing = await present.rooms_showing(db, deck.id)
    await decks.delete_deck(db, storage=_storage(request), ctx=ctx, deck=deck)
    # The rooms that showed it show nothing now.
    await _restage(request, db, live, ctx, deck_id, rooms=showing)
    return RedirectResponse(
        decks_url(ctx.programme.id, session.id) + "?done=deleted", status_code=303
    )
