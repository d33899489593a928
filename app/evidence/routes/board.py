"""Pages: a group's evidence board, typed notes and links, and the ZIP of it all (one
item's pages are in items.py, uploads in uploads.py).

These pages admit the group (`GroupOf`: its members, its facilitators, the programme's
hosts)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.background import BackgroundTask
from starlette.responses import FileResponse, RedirectResponse, Response

from app.access import GroupContext
from app.db import utcnow
from app.deps import GroupOf, SessionDep, SettingsDep
from app.evidence import actions, export_zip, fields, queries
from app.evidence import board as board_view
from app.evidence.errors import EvidenceRejected
from app.evidence.models import EvidenceKind, Visibility
from app.evidence.notes import NOTE_MAX
from app.evidence.pages import (
    BASE,
    TRIO_VALUES,
    NoteForm,
    ShortQuery,
    UrlForm,
    WrittenFields,
    WrittenForm,
    board_url,
    checked,
    flash_for,
    group_page_context,
    storage_of,
    upload_form_context,
)
from app.evidence.search import QUERY_MAX, normalise_query
from app.evidence.serving import FILE_CSP
from app.numbers import is_digits
from app.programmes.papers import content_disposition
from app.templating import render

router = APIRouter(tags=["pages: evidence"])


# The board


def _filters(
    *, session: str, kind: str, trio: str, q: str, session_ids: set[int]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The board's filters from the address: known values only (an unknown one is ignored
    and shown as ignored, never echoed as anything but text)."""
    values: dict[str, Any] = {"session": "", "kind": "", "trio": "", "q": normalise_query(q)}
    notes: dict[str, str] = {}
    if session == "none":
        values["session"] = "none"
    elif session:
        if is_digits(session) and int(session) in session_ids:
            values["session"] = session
        else:
            notes["session"] = "That session is not one of this programme's; showing all."
    if kind:
        if kind in {k.value for k in EvidenceKind}:
            values["kind"] = kind
        else:
            notes["kind"] = "That is not a kind of evidence; showing every kind."
    if trio in TRIO_VALUES:
        values["trio"] = trio
    return values, notes


@router.get(BASE)
async def board(
    request: Request,
    gctx: GroupOf,
    db: SessionDep,
    settings: SettingsDep,
    session: ShortQuery = "",
    kind: ShortQuery = "",
    trio: ShortQuery = "",
    q: Annotated[str, Query(max_length=QUERY_MAX * 4)] = "",
    done: ShortQuery = "",
) -> Response:
    upload = await upload_form_context(db, gctx, max_upload_mb=settings.max_upload_mb)
    sessions = upload["sessions"]
    values, filter_notes = _filters(
        session=session, kind=kind, trio=trio, q=q, session_ids={s.id for s in sessions}
    )
    session_filter: int | None = None
    if values["session"] == "none":
        session_filter = queries.NO_SESSION
    elif values["session"]:
        session_filter = int(values["session"])
    items = await queries.list_items(
        db,
        gctx=gctx,
        session_id=session_filter,
        kind=values["kind"] or None,
        trio=TRIO_VALUES.get(values["trio"]),
        q=values["q"],
    )
    filtered = any(values[k] for k in ("session", "kind", "trio", "q"))
    context = {
        **group_page_context(gctx),
        **upload,
        "title": f"Evidence · {gctx.group.name}",
        "filters": values,
        "filter_notes": filter_notes,
        "filtered": filtered,
        "item_count": len(items),
        "results": [board_view.card_for(i, values["q"]) for i in items] if values["q"] else [],
        "sections": [] if values["q"] else board_view.sections(items, sessions),
        "awaiting": await queries.awaiting_description(db, gctx=gctx),
        "flash_messages": flash_for(done),
    }
    return render(request, "evidence/board.html", context)


# Typed notes and links


def _new_page(
    request: Request,
    gctx: GroupContext,
    *,
    kind: EvidenceKind,
    sessions: list[Any],
    values: dict[str, Any],
    errors: dict[str, str],
    status_code: int = 200,
) -> Response:
    template = "evidence/note_form.html" if kind is EvidenceKind.NOTE else "evidence/link_form.html"
    heading = "Write a note" if kind is EvidenceKind.NOTE else "Add a link"
    return render(
        request,
        template,
        {
            **group_page_context(gctx),
            "title": f"{heading} · {gctx.group.name}",
            "heading": heading,
            "sessions": sessions,
            "values": values,
            "errors": errors,
            "note_max": NOTE_MAX,
        },
        status_code=status_code,
    )


def _blank_values() -> dict[str, Any]:
    return {
        "title": "",
        "description": "",
        "markdown": "",
        "url": "",
        "session_id": "",
        "from_trio": False,
        "visibility": Visibility.GROUP.value,
    }


async def _blank_page(
    request: Request, gctx: GroupContext, db: AsyncSession, kind: EvidenceKind
) -> Response:
    sessions = await queries.programme_sessions(db, programme_id=gctx.ctx.programme.id)
    return _new_page(request, gctx, kind=kind, sessions=sessions, values=_blank_values(), errors={})


@router.get(BASE + "/notes/new")
async def new_note_page(request: Request, gctx: GroupOf, db: SessionDep) -> Response:
    return await _blank_page(request, gctx, db, EvidenceKind.NOTE)


@router.get(BASE + "/links/new")
async def new_link_page(request: Request, gctx: GroupOf, db: SessionDep) -> Response:
    return await _blank_page(request, gctx, db, EvidenceKind.LINK)


async def _create_written(
    request: Request,
    gctx: GroupContext,
    db: AsyncSession,
    *,
    kind: EvidenceKind,
    content: str,
    form: WrittenFields,
) -> Response:
    content_field = "markdown" if kind is EvidenceKind.NOTE else "url"
    values = {
        **_blank_values(),
        "title": form.title,
        content_field: content,
        "description": form.description,
        "session_id": form.session_id,
        "from_trio": checked(form.from_trio),
        "visibility": form.visibility,
    }
    try:
        item = await actions.create_written(
            db,
            gctx=gctx,
            actor=gctx.ctx.user,
            kind=kind,
            content=content,
            title=form.title,
            description=form.description,
            session_id=fields.parse_session_id(form.session_id),
            from_trio=checked(form.from_trio),
            visibility=form.visibility,
        )
    except EvidenceRejected as exc:
        sessions = await queries.programme_sessions(db, programme_id=gctx.ctx.programme.id)
        return _new_page(
            request,
            gctx,
            kind=kind,
            sessions=sessions,
            values=values,
            errors=exc.errors,
            status_code=exc.status,
        )
    board = board_url(gctx.ctx.programme.id, gctx.group.id)
    done = "note" if kind is EvidenceKind.NOTE else "link"
    return RedirectResponse(f"{board}?done={done}#item-{item.id}", status_code=303)


@router.post(BASE + "/notes")
async def create_note(
    request: Request, gctx: GroupOf, db: SessionDep, form: WrittenForm, markdown: NoteForm = ""
) -> Response:
    return await _create_written(
        request, gctx, db, kind=EvidenceKind.NOTE, content=markdown, form=form
    )


@router.post(BASE + "/links")
async def create_link(
    request: Request, gctx: GroupOf, db: SessionDep, form: WrittenForm, url: UrlForm = ""
) -> Response:
    return await _create_written(request, gctx, db, kind=EvidenceKind.LINK, content=url, form=form)


# The whole group's evidence as a ZIP (before the item routes: it is not an item)


@router.get(BASE + "/export.zip")
async def export(request: Request, gctx: GroupOf, db: SessionDep) -> Response:
    path = await export_zip.build_export(db, gctx=gctx, storage=storage_of(request), now=utcnow())
    return FileResponse(
        path,
        media_type="application/zip",
        headers={
            "Content-Disposition": content_disposition(export_zip.export_filename(gctx.group.name)),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": FILE_CSP,
            "Cache-Control": "private, no-store",
        },
        background=BackgroundTask(export_zip.remove_file, path),
    )
