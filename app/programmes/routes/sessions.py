"""Pages: a programme's sessions, their lobby, papers and recordings, and calendar files."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from starlette.responses import FileResponse, RedirectResponse, Response

from app.access import ProgrammeContext
from app.config import Settings
from app.db import utcnow
from app.deps import (
    CurrentUser,
    HostOf,
    HostSessionOf,
    MemberOf,
    PaperIdPath,
    SessionDep,
    SessionOf,
    SettingsDep,
)
from app.live.channels import seat_for
from app.models import ProgrammeSession
from app.programmes import calendar, papers, schedule
from app.programmes.papers import PaperKind, PaperRejected
from app.programmes.programme_views import lobby_people
from app.programmes.schedule import ScheduleError
from app.refusals import NotFound
from app.state import get_app_state
from app.storage import LocalStorage
from app.templating import render
from app.voice.recording_captions import may_download, session_recordings

router = APIRouter(tags=["pages: sessions"])

# Generous hard limits; the services give friendlier messages at the real limits
# (browsers send each line break in a textarea as two characters).
TitleForm = Annotated[str, Form(max_length=1_000)]
TimeForm = Annotated[str, Form(max_length=40)]
AgendaForm = Annotated[str, Form(max_length=2 * schedule.AGENDA_MAX)]
UrlForm = Annotated[str, Form(max_length=2_000)]
DoneParam = Annotated[str, Query(max_length=20)]

DONE_MESSAGES = {
    "created": "The session has been created.",
    "saved": "The session has been saved.",
    "uploaded": "The file has been uploaded.",
    "paper_deleted": "The file has been deleted.",
}
CALENDAR_TYPE = "text/calendar; charset=utf-8"


def get_storage(request: Request) -> LocalStorage:
    storage: LocalStorage = get_app_state(request).storage
    return storage


def _base(programme_id: int) -> str:
    return f"/programmes/{programme_id}/sessions"


def _form_values(session: ProgrammeSession | None, ctx: ProgrammeContext) -> dict[str, str]:
    if session is None:
        return {"title": "", "starts_at": "", "ends_at": "", "agenda": "", "recording_url": ""}
    zone = schedule.programme_zone(ctx.programme)
    return {
        "title": session.title,
        "starts_at": schedule.local_input_value(session.starts_at, zone),
        "ends_at": schedule.local_input_value(session.ends_at, zone),
        "agenda": session.agenda,
        "recording_url": session.recording_url,
    }


def _flash(done: str) -> list[str]:
    message = DONE_MESSAGES.get(done)
    return [message] if message else []


@router.get("/programmes/{programme_id}/sessions")
async def sessions_page(request: Request, ctx: MemberOf, db: SessionDep) -> Response:
    sessions = await schedule.list_sessions(db, programme_id=ctx.programme.id)
    return render(
        request,
        "sessions/index.html",
        {
            "title": f"Sessions: {ctx.programme.title}",
            "programme": ctx.programme,
            "ctx": ctx,
            "sessions": sessions,
        },
    )


def _new_page(
    request: Request, ctx: ProgrammeContext, values: dict[str, str], errors: dict[str, str]
) -> Response:
    return render(
        request,
        "sessions/new.html",
        {
            "title": "New session",
            "programme": ctx.programme,
            "zone": schedule.zone_name(ctx.programme),
            "values": values,
            "errors": errors,
        },
        status_code=400 if errors else 200,
    )


@router.get("/programmes/{programme_id}/sessions/new")
async def new_session_page(request: Request, ctx: HostOf) -> Response:
    return _new_page(request, ctx, _form_values(None, ctx), {})


def session_form(
    title: TitleForm = "",
    starts_at: TimeForm = "",
    ends_at: TimeForm = "",
    agenda: AgendaForm = "",
    recording_url: UrlForm = "",
) -> dict[str, str]:
    """The session form's fields as typed (shown again with the errors, if any)."""
    return {
        "title": title,
        "starts_at": starts_at,
        "ends_at": ends_at,
        "agenda": agenda,
        "recording_url": recording_url,
    }


SessionForm = Annotated[dict[str, str], Depends(session_form)]


@router.post("/programmes/{programme_id}/sessions")
async def create_session(
    request: Request, ctx: HostOf, db: SessionDep, values: SessionForm
) -> Response:
    try:
        fields = schedule.fields_from_form(programme=ctx.programme, **values)
        session = await schedule.create_session(
            db, programme=ctx.programme, actor=ctx.user, fields=fields
        )
    except ScheduleError as exc:
        return _new_page(request, ctx, values, exc.errors)
    return RedirectResponse(f"{_base(ctx.programme.id)}/{session.id}?done=created", status_code=303)


async def _lobby(
    request: Request,
    *,
    ctx: ProgrammeContext,
    session: ProgrammeSession,
    db: SessionDep,
    settings: Settings,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    paper_values: dict[str, str] | None = None,
    paper_errors: dict[str, str] | None = None,
    status_code: int = 200,
    flash: list[str] | None = None,
) -> Response:
    all_papers = await papers.list_papers(db, session_id=session.id)
    people = await lobby_people(db, user=ctx.user, membership=ctx.membership)
    voice = await session_recordings(db, seat=await seat_for(db, ctx=ctx, session=session))
    context: dict[str, Any] = {
        "title": session.title,
        "programme": ctx.programme,
        "ctx": ctx,
        "session": session,
        "zone": schedule.zone_name(ctx.programme),
        "pre_reading": [p for p in all_papers if p.kind == PaperKind.PRE_READING.value],
        "recordings": [
            p
            for p in all_papers
            if p.kind == PaperKind.RECORDING.value and p.id not in voice.hidden_papers
        ],
        "voice_recordings": voice.views,
        "people": people,
        "now": utcnow(),
        "flash_messages": flash or [],
        "values": values or _form_values(session, ctx),
        "errors": errors or {},
        "paper_values": paper_values or {"kind": PaperKind.PRE_READING.value, "paper_title": ""},
        "paper_errors": paper_errors or {},
        "paper_accept": {kind.value: papers.accepted_extensions(kind) for kind in PaperKind},
        "paper_types": {kind.value: papers.type_names(kind) for kind in PaperKind},
        "paper_max_mb": papers.max_bytes_for(PaperKind.PRE_READING, settings.max_upload_mb)
        // papers.MB,
        "recording_max_mb": settings.max_upload_mb,
    }
    return render(request, "sessions/lobby.html", context, status_code=status_code)


@router.get("/programmes/{programme_id}/sessions/{session_id}")
async def lobby(
    request: Request,
    ctx: MemberOf,
    session: SessionOf,
    db: SessionDep,
    settings: SettingsDep,
    done: DoneParam = "",
) -> Response:
    return await _lobby(
        request, ctx=ctx, session=session, db=db, settings=settings, flash=_flash(done)
    )


@router.post("/programmes/{programme_id}/sessions/{session_id}/edit")
async def edit_session(
    request: Request,
    ctx: HostOf,
    session: HostSessionOf,
    db: SessionDep,
    settings: SettingsDep,
    values: SessionForm,
) -> Response:
    try:
        fields = schedule.fields_from_form(programme=ctx.programme, **values)
        await schedule.update_session(db, session=session, actor=ctx.user, fields=fields)
    except ScheduleError as exc:
        return await _lobby(
            request,
            ctx=ctx,
            session=session,
            db=db,
            settings=settings,
            values=values,
            errors=exc.errors,
            status_code=400,
        )
    return RedirectResponse(f"{_base(ctx.programme.id)}/{session.id}?done=saved", status_code=303)


@router.get("/programmes/{programme_id}/sessions/{session_id}/delete")
async def confirm_delete_session(
    request: Request, ctx: HostOf, session: HostSessionOf, db: SessionDep
) -> Response:
    count = len(await papers.list_papers(db, session_id=session.id))
    return render(
        request,
        "sessions/confirm_delete.html",
        {
            "title": f"Delete {session.title}?",
            "programme": ctx.programme,
            "session": session,
            "paper_count": count,
        },
    )


@router.post("/programmes/{programme_id}/sessions/{session_id}/delete")
async def delete_session(
    request: Request, ctx: HostOf, session: HostSessionOf, db: SessionDep
) -> Response:
    await schedule.delete_session(db, session=session, actor=ctx.user, storage=get_storage(request))
    return RedirectResponse(f"/programmes/{ctx.programme.id}", status_code=303)


@router.post("/programmes/{programme_id}/sessions/{session_id}/papers")
async def upload_paper(
    request: Request,
    ctx: HostOf,
    session: HostSessionOf,
    db: SessionDep,
    settings: SettingsDep,
    file: Annotated[UploadFile | None, File()] = None,
    kind: Annotated[str, Form(max_length=20)] = PaperKind.PRE_READING.value,
    paper_title: Annotated[str, Form(max_length=1_000)] = "",
) -> Response:
    paper_values = {"kind": kind, "paper_title": paper_title}
    try:
        try:
            paper_kind = PaperKind(kind)
        except ValueError:
            raise PaperRejected(
                "kind", "Choose whether this is pre-reading or a recording."
            ) from None
        if file is None:
            raise PaperRejected("file", "Choose a file to upload.")
        await papers.upload_paper(
            db,
            storage=get_storage(request),
            session=session,
            actor=ctx.user,
            upload=file,
            kind=paper_kind,
            title=paper_title,
            max_bytes=papers.max_bytes_for(paper_kind, settings.max_upload_mb),
        )
    except PaperRejected as exc:
        return await _lobby(
            request,
            ctx=ctx,
            session=session,
            db=db,
            settings=settings,
            paper_values=paper_values,
            paper_errors={exc.field: exc.message},
            status_code=exc.status,
        )
    return RedirectResponse(
        f"{_base(ctx.programme.id)}/{session.id}?done=uploaded#papers", status_code=303
    )


@router.get("/programmes/{programme_id}/sessions/{session_id}/papers/{paper_id}")
async def download_paper(
    request: Request, ctx: MemberOf, session: SessionOf, paper_id: PaperIdPath, db: SessionDep
) -> Response:
    paper = await papers.get_paper(db, session=session, paper_id=paper_id)
    path = papers.stored_path(get_storage(request), paper) if paper else None
    if paper is None or path is None:
        raise NotFound("We could not find that file.")
    # A breakout room's recording is its group's, as its captions are.
    seat = await seat_for(db, ctx=ctx, session=session)
    if not await may_download(db, seat=seat, paper_id=paper.id):
        raise NotFound("We could not find that file.")
    return FileResponse(
        path,
        media_type=papers.download_content_type(paper),
        headers={
            "Content-Disposition": papers.content_disposition(paper.filename),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
        },
    )


@router.post("/programmes/{programme_id}/sessions/{session_id}/papers/{paper_id}/delete")
async def delete_paper(
    request: Request, ctx: HostOf, session: HostSessionOf, paper_id: PaperIdPath, db: SessionDep
) -> Response:
    paper = await papers.get_paper(db, session=session, paper_id=paper_id)
    if paper is None:
        raise NotFound("We could not find that file.")
    await papers.delete_paper(db, storage=get_storage(request), paper=paper, actor=ctx.user)
    return RedirectResponse(
        f"{_base(ctx.programme.id)}/{session.id}?done=paper_deleted#papers", status_code=303
    )


def _calendar_response(body: bytes, filename: str) -> Response:
    return Response(
        body,
        media_type=CALENDAR_TYPE,
        headers={
            "Content-Disposition": papers.content_disposition(filename),
            "Cache-Control": "private, no-store",
        },
    )


@router.get("/programmes/{programme_id}/sessions/{session_id}/calendar.ics")
async def session_calendar(ctx: MemberOf, session: SessionOf, settings: SettingsDep) -> Response:
    body = calendar.build_calendar(
        [(session, ctx.programme)], base_url=settings.base_url, name=ctx.programme.title
    )
    return _calendar_response(body, calendar.calendar_filename(session.title))


@router.get("/me/calendar.ics")
async def my_calendar(user: CurrentUser, db: SessionDep, settings: SettingsDep) -> Response:
    items = await calendar.sessions_for_person(db, user=user)
    body = calendar.build_calendar(items, base_url=settings.base_url, name="My Roundtable sessions")
    return _calendar_response(body, "roundtable-sessions.ics")
