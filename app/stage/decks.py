"""Decks: uploading one (checked, converted and rendered by app/stage/deck_files.py),
renaming it, letting participants download it, describing its slides, deleting it; and
the queries the stage and the pages use.

An upload is all or nothing: it is received and rendered in a private folder, its files
are moved into storage only when every page is rendered, and the deck and its slides are
recorded in one transaction; when anything fails, whatever was stored is deleted."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import anyio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app import audit
from app.access import ProgrammeContext, group_in_programme
from app.bodylimits import release_connection
from app.models import ProgrammeSession
from app.programmes.papers import extension_of, safe_filename
from app.refusals import NotAllowed, NotFound, Unprocessable
from app.stage import deck_files
from app.stage.access import may_manage_deck
from app.stage.deck_files import PDF, RenderedPage
from app.stage.models import Deck, Slide
from app.storage import LocalStorage, StoredFile

TITLE_MAX = 200
ALT_TEXT_MAX = 2_000
NOTES_MAX = 10_000
DECK_NOT_FOUND = "We could not find that deck."
NOT_YOURS = "Only the session's hosts and presenters, and a room's facilitators, can change decks."


async def decks_for_room(db: AsyncSession, session_id: int, group_id: int | None) -> list[Deck]:
    """The decks of one room of the session (group_id None: the plenary's), oldest first,
    with their slides."""
    query = select(Deck).where(Deck.session_id == session_id).options(selectinload(Deck.slides))
    if group_id is None:
        query = query.where(Deck.group_id.is_(None))
    else:
        query = query.where(Deck.group_id == group_id)
    return list((await db.scalars(query.order_by(Deck.id))).all())


async def decks_for_session(db: AsyncSession, session_id: int) -> list[Deck]:
    """Every deck of the session, the plenary's first, without their slides."""
    rows = await db.scalars(
        select(Deck)
        .where(Deck.session_id == session_id)
        .order_by(Deck.group_id.is_not(None), Deck.group_id, Deck.id)
    )
    return list(rows.all())


async def load_deck(db: AsyncSession, deck_id: int, session_id: int) -> Deck:
    """The deck with its slides, when it is this session's; NotFound otherwise."""
    deck = await db.scalar(
        select(Deck)
        .where(Deck.id == deck_id, Deck.session_id == session_id)
        .options(selectinload(Deck.slides))
    )
    if deck is None:
        raise NotFound(DECK_NOT_FOUND)
    return deck


class RoomRefused(NotAllowed):
    """The room chosen for a new deck is not one this person may add decks to."""


@dataclass(frozen=True)
class DeckUpload:
    filename: str
    title: str
    group_id: int | None
    chunks: AsyncIterator[bytes]


def clean_title(raw: str) -> str:
    title = " ".join(raw.split())
    if len(title) > TITLE_MAX:
        raise Unprocessable(f"A deck's title may be at most {TITLE_MAX} characters.")
    return title


async def _check_room(
    db: AsyncSession, ctx: ProgrammeContext, session: ProgrammeSession, group_id: int | None
) -> None:
    if group_id is not None:
        try:
            await group_in_programme(db, ctx, group_id)
        except NotFound:
            raise RoomRefused("Choose one of the rooms listed.", status=422) from None
    if not await may_manage_deck(db, ctx, session, group_id):
        raise RoomRefused(
            "You can add decks only for the rooms you facilitate."
            if group_id is not None
            else "Only the session's hosts and presenters can add decks to the plenary."
        )


async def upload_deck(
    db: AsyncSession,
    *,
    storage: LocalStorage,
    ctx: ProgrammeContext,
    session: ProgrammeSession,
    upload: DeckUpload,
    max_bytes: int | None = None,
    renders: anyio.CapacityLimiter | None = None,
) -> Deck:
    """Receive, convert, render and store a deck (`renders`: how many decks this process
    converts and renders at once; each takes a core while it does)."""
    title = clean_title(upload.title)
    await _check_room(db, ctx, session, upload.group_id)
    # Receiving, converting and rendering take a while: no connection is held meanwhile.
    await release_connection(db)
    work = Path(await anyio.to_thread.run_sync(_workspace, storage.root))
    stored: list[str] = []
    try:
        limit = deck_files.DECK_MAX_BYTES if max_bytes is None else max_bytes
        original, kind = await deck_files.receive(upload.chunks, work, max_bytes=limit)
        async with renders if renders is not None else contextlib.nullcontext():
            pdf = original if kind == PDF else await deck_files.convert_to_pdf(original, work)
            pages = await deck_files.render_pages(pdf, work)
        original_stored = await storage.adopt(original)
        stored.append(original_stored.key)
        pdf_key = original_stored.key
        if pdf is not original:
            pdf_key = (await storage.adopt(pdf)).key
            stored.append(pdf_key)
        slides = [await _store_slide(storage, page, stored) for page in pages]
        deck = _new_deck(ctx, session, upload, title, kind, original_stored, pdf_key, slides)
        db.add(deck)
        await db.flush()
        audit.record(
            db,
            actor=ctx.user,
            action="deck.upload",
            programme_id=ctx.programme.id,
            target=f"deck:{deck.id}",
            session_id=session.id,
            group_id=upload.group_id,
            filename=deck.original_name,
            type=kind,
            pages=len(slides),
            size_bytes=original_stored.size,
            sha256=original_stored.sha256,
        )
        await db.commit()
    except BaseException:
        with anyio.CancelScope(shield=True):
            await db.rollback()
            for key in stored:
                await storage.delete(key)
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(shutil.rmtree, work, True)
    return deck


def _new_deck(
    ctx: ProgrammeContext,
    session: ProgrammeSession,
    upload: DeckUpload,
    title: str,
    kind: str,
    original: StoredFile,
    pdf_key: str,
    slides: list[Slide],
) -> Deck:
    name = _download_name(upload.filename, kind)
    return Deck(
        session_id=session.id,
        group_id=upload.group_id,
        title=title or name.rpartition(".")[0][:TITLE_MAX] or "Slides",
        original_name=name,
        original_type=kind,
        original_key=original.key,
        original_size=original.size,
        pdf_key=pdf_key,
        page_count=len(slides),
        uploaded_by_id=ctx.user.id,
        slides=slides,
    )


# A working folder older than this is left from a process that stopped mid-upload: no
# upload takes so long (conversion and rendering are time-limited well below it).
WORKSPACE_MAX_AGE_SECONDS = 3600.0


def sweep_workspaces(root: Path, *, now: float | None = None) -> int:
    """Remove the working folders of uploads that a stopped process left behind (at start);
    returns how many. Recent ones may be another process's upload in progress: kept."""
    if not root.is_dir():
        return 0
    cutoff = (time.time() if now is None else now) - WORKSPACE_MAX_AGE_SECONDS
    removed = 0
    for folder in root.glob(".deck-*"):
        if folder.is_dir() and folder.stat().st_mtime < cutoff:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def _workspace(root: Path) -> str:
    """A private folder on storage's own disk, so that finished files are moved into
    storage, not copied; its dot keeps it apart from storage's keys."""
    root.mkdir(parents=True, exist_ok=True)
    return tempfile.mkdtemp(prefix=".deck-", dir=root)


def _download_name(raw: str, kind: str) -> str:
    """The uploader's file name, made safe, with the extension its content deserves."""
    name = safe_filename(raw, fallback=f"slides.{kind}")
    if extension_of(name) != kind:
        stem = name.rpartition(".")[0] if "." in name else name
        name = f"{stem or 'slides'}.{kind}"
    return name[:TITLE_MAX]


async def _store_slide(storage: LocalStorage, page: RenderedPage, stored: list[str]) -> Slide:
    images = {}
    for width, (path, size, height) in sorted(page.images.items()):
        key = (await storage.adopt(path)).key
        stored.append(key)
        images[str(width)] = {"key": key, "bytes": size, "height": height}
    return Slide(
        number=page.number,
        width=page.width,
        height=page.height,
        images=images,
        text=page.text,
        title=page.title,
    )


async def _require_manager(db: AsyncSession, ctx: ProgrammeContext, deck: Deck) -> None:
    if not await may_manage_deck(db, ctx, deck):
        raise NotAllowed(NOT_YOURS)


def _audit(
    ctx: ProgrammeContext, db: AsyncSession, deck: Deck, action: str, **detail: object
) -> None:
    audit.record(
        db,
        actor=ctx.user,
        action=action,
        programme_id=ctx.programme.id,
        target=f"deck:{deck.id}",
        session_id=deck.session_id,
        **detail,
    )


async def rename_deck(db: AsyncSession, *, ctx: ProgrammeContext, deck: Deck, title: str) -> None:
    await _require_manager(db, ctx, deck)
    cleaned = clean_title(title)
    if not cleaned:
        raise Unprocessable("Give the deck a title.")
    _audit(ctx, db, deck, "deck.rename", before=deck.title, after=cleaned)
    deck.title = cleaned
    await db.commit()


async def set_downloadable(
    db: AsyncSession, *, ctx: ProgrammeContext, deck: Deck, downloadable: bool
) -> None:
    await _require_manager(db, ctx, deck)
    if deck.downloadable != downloadable:
        _audit(ctx, db, deck, "deck.downloadable", downloadable=downloadable)
        deck.downloadable = downloadable
    await db.commit()


def _clean_long_text(raw: str, *, limit: int, what: str) -> str:
    text = raw.replace("\r\n", "\n").strip()
    if len(text) > limit:
        raise Unprocessable(f"{what} may be at most {limit:,} characters (this is {len(text):,}).")
    return text


async def edit_slide(
    db: AsyncSession,
    *,
    ctx: ProgrammeContext,
    deck: Deck,
    number: int,
    alt_text: str,
    notes: str,
) -> Slide:
    """A slide's description (alt text) and speaker notes, as the presenter writes them."""
    await _require_manager(db, ctx, deck)
    slide = next((s for s in deck.slides if s.number == number), None)
    if slide is None:
        raise NotFound("We could not find that slide.")
    slide.alt_text = _clean_long_text(alt_text, limit=ALT_TEXT_MAX, what="A slide's description")
    slide.notes = _clean_long_text(notes, limit=NOTES_MAX, what="Speaker notes")
    _audit(ctx, db, deck, "deck.slide_edit", number=number)
    await db.commit()
    return slide


def stored_keys(deck: Deck) -> list[str]:
    keys = {deck.original_key, deck.pdf_key}
    for slide in deck.slides:
        keys.update(entry["key"] for entry in slide.images.values())
    return sorted(keys)


async def delete_deck(
    db: AsyncSession, *, storage: LocalStorage, ctx: ProgrammeContext, deck: Deck
) -> None:
    """The deck, its slides and every file of theirs (after the commit, so that a failed
    commit never leaves rows pointing at missing files)."""
    await _require_manager(db, ctx, deck)
    keys = stored_keys(deck)
    _audit(ctx, db, deck, "deck.delete", title=deck.title, pages=deck.page_count)
    await db.delete(deck)
    await db.commit()
    for key in keys:
        await storage.delete(key)
