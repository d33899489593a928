"""Sessions of a programme and their papers (pre-reading and recordings)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.responses import JSONResponse, Response

from app.access import ProgrammeContext
from app.deps import (
    HostOf,
    HostSessionOf,
    MemberOf,
    PaperIdPath,
    SessionDep,
    SessionOf,
    SettingsDep,
)
from app.models import Paper, ProgrammeSession
from app.programmes import calendar, papers, schedule
from app.programmes.papers import PaperKind, PaperRejected
from app.programmes.schedule import ScheduleError, SessionFields
from app.refusals import NotFound
from app.state import get_app_state
from app.storage import LocalStorage

router = APIRouter(tags=["sessions"])

TIME_NOTE = (
    "ISO 8601 date and time with a UTC offset, e.g. 2025-10-28T10:00:00+00:00 or "
    "2025-06-03T14:30:00+01:00. Times without an offset are refused (never guessed), "
    "because the same wall-clock time can mean two instants when the clocks go back."
)
ERRORS_EXAMPLE = {
    "description": "Invalid input",
    "content": {
        "application/json": {
            "example": {
                "detail": "Please check the session.",
                "errors": [
                    {"field": "ends_at", "message": "The session must end after it starts."}
                ],
            }
        }
    },
}


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            "Give the time with a UTC offset, e.g. 2025-10-28T10:00:00+00:00; "
            "times without an offset are refused."
        )
    if not schedule.EARLIEST_YEAR <= value.year <= schedule.LATEST_YEAR:
        raise ValueError(f"Choose a year from {schedule.EARLIEST_YEAR} to {schedule.LATEST_YEAR}.")
    return value


class SessionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=schedule.TITLE_MAX)
    starts_at: datetime = Field(description=TIME_NOTE)
    ends_at: datetime = Field(
        description="When it ends: after the start, at most 12 hours later. " + TIME_NOTE
    )
    agenda: str = Field(default="", max_length=schedule.AGENDA_MAX, description="Plain text")
    recording_url: str = Field(
        default="",
        max_length=schedule.RECORDING_URL_MAX,
        description="An http:// or https:// link to the recording, or empty.",
    )

    _check_times = field_validator("starts_at", "ends_at")(_aware)


class SessionUpdate(BaseModel):
    """The fields to change; those left out (or null) stay as they are."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=schedule.TITLE_MAX)
    starts_at: datetime | None = Field(default=None, description=TIME_NOTE)
    ends_at: datetime | None = Field(default=None, description=TIME_NOTE)
    agenda: str | None = Field(default=None, max_length=schedule.AGENDA_MAX)
    recording_url: str | None = Field(default=None, max_length=schedule.RECORDING_URL_MAX)

    _check_times = field_validator("starts_at", "ends_at")(_aware)


class SessionOut(BaseModel):
    id: int
    programme_id: int
    title: str
    starts_at: datetime = Field(description="In UTC")
    ends_at: datetime = Field(description="In UTC")
    timezone: str = Field(description="The programme's IANA time zone")
    starts_at_local: datetime = Field(description="The start in the programme's time zone")
    ends_at_local: datetime = Field(description="The end in the programme's time zone")
    agenda: str
    recording_url: str
    lobby_url: str
    calendar_url: str


class PaperOut(BaseModel):
    id: int
    session_id: int
    kind: PaperKind
    title: str
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    created_at: datetime
    download_url: str


def _session_out(session: ProgrammeSession, ctx: ProgrammeContext, base_url: str) -> SessionOut:
    zone = schedule.programme_zone(ctx.programme)
    lobby = calendar.lobby_url(base_url, session)
    return SessionOut(
        id=session.id,
        programme_id=session.programme_id,
        title=session.title,
        starts_at=session.starts_at,
        ends_at=session.ends_at,
        timezone=zone.key,
        starts_at_local=session.starts_at.astimezone(zone),
        ends_at_local=session.ends_at.astimezone(zone),
        agenda=session.agenda,
        recording_url=session.recording_url,
        lobby_url=lobby,
        calendar_url=f"{lobby}/calendar.ics",
    )


def _paper_out(paper: Paper, session: ProgrammeSession, base_url: str) -> PaperOut:
    return PaperOut(
        id=paper.id,
        session_id=paper.session_id,
        kind=PaperKind(paper.kind),
        title=paper.title,
        filename=paper.filename,
        content_type=paper.content_type,
        size_bytes=paper.size_bytes,
        sha256=paper.sha256,
        created_at=paper.created_at,
        download_url=f"{calendar.lobby_url(base_url, session)}/papers/{paper.id}",
    )


def _invalid(detail: str, errors: dict[str, str], status_code: int = 422) -> JSONResponse:
    return JSONResponse(
        {"detail": detail, "errors": [{"field": k, "message": v} for k, v in errors.items()]},
        status_code=status_code,
    )


def _storage(request: Request) -> LocalStorage:
    storage: LocalStorage = get_app_state(request).storage
    return storage


SESSIONS = "/programmes/{programme_id}/sessions"
ONE_SESSION = SESSIONS + "/{session_id}"


@router.get(SESSIONS, response_model=list[SessionOut], summary="List a programme's sessions")
async def list_sessions(ctx: MemberOf, db: SessionDep, settings: SettingsDep) -> list[SessionOut]:
    sessions = await schedule.list_sessions(db, programme_id=ctx.programme.id)
    return [_session_out(s, ctx, settings.base_url) for s in sessions]


@router.post(
    SESSIONS,
    response_model=SessionOut,
    status_code=201,
    summary="Create a session (hosts)",
    responses={422: ERRORS_EXAMPLE},
)
async def create_session(
    body: SessionIn, ctx: HostOf, db: SessionDep, settings: SettingsDep
) -> Any:
    fields = SessionFields(**body.model_dump())
    try:
        session = await schedule.create_session(
            db, programme=ctx.programme, actor=ctx.user, fields=fields
        )
    except ScheduleError as exc:
        return _invalid("Please check the session.", exc.errors)
    return _session_out(session, ctx, settings.base_url)


@router.get(ONE_SESSION, response_model=SessionOut, summary="One session")
async def get_session(ctx: MemberOf, session: SessionOf, settings: SettingsDep) -> SessionOut:
    return _session_out(session, ctx, settings.base_url)


@router.patch(
    ONE_SESSION,
    response_model=SessionOut,
    summary="Change a session (hosts)",
    responses={422: ERRORS_EXAMPLE},
)
async def update_session(
    body: SessionUpdate,
    ctx: HostOf,
    session: HostSessionOf,
    db: SessionDep,
    settings: SettingsDep,
) -> Any:
    fields = schedule.current_fields(session)
    for name, value in body.model_dump(exclude_unset=True).items():
        if value is not None:
            setattr(fields, name, value)
    try:
        await schedule.update_session(db, session=session, actor=ctx.user, fields=fields)
    except ScheduleError as exc:
        return _invalid("Please check the session.", exc.errors)
    return _session_out(session, ctx, settings.base_url)


@router.delete(ONE_SESSION, status_code=204, summary="Delete a session and its files (hosts)")
async def delete_session(
    request: Request, ctx: HostOf, session: HostSessionOf, db: SessionDep
) -> Response:
    await schedule.delete_session(db, session=session, actor=ctx.user, storage=_storage(request))
    return Response(status_code=204)


@router.get(ONE_SESSION + "/papers", response_model=list[PaperOut], summary="A session's files")
async def list_papers(session: SessionOf, db: SessionDep, settings: SettingsDep) -> list[PaperOut]:
    return [
        _paper_out(p, session, settings.base_url)
        for p in await papers.list_papers(db, session_id=session.id)
    ]


@router.post(
    ONE_SESSION + "/papers",
    response_model=PaperOut,
    status_code=201,
    summary="Upload a pre-reading paper or a recording (hosts)",
    description=(
        "Multipart upload. Pre-reading: PDF, DOCX, PPTX, XLSX, ODT, TXT (UTF-8), PNG, JPEG; "
        "up to 25 MB. Recordings: MP4, WEBM, MP3, M4A. The content must match the extension."
    ),
    responses={
        413: {"description": "The file is too large"},
        415: {"description": "The file type is not accepted or its content does not match"},
        422: ERRORS_EXAMPLE,
    },
)
async def upload_paper(
    request: Request,
    ctx: HostOf,
    session: HostSessionOf,
    db: SessionDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="The file")],
    kind: Annotated[PaperKind, Form()] = PaperKind.PRE_READING,
    title: Annotated[str, Form(max_length=papers.TITLE_MAX)] = "",
) -> Any:
    try:
        paper = await papers.upload_paper(
            db,
            storage=_storage(request),
            session=session,
            actor=ctx.user,
            upload=file,
            kind=kind,
            title=title,
            max_bytes=papers.max_bytes_for(kind, settings.max_upload_mb),
        )
    except PaperRejected as exc:
        field = "title" if exc.field == "paper_title" else exc.field
        return _invalid(exc.message, {field: exc.message}, exc.status)
    return _paper_out(paper, session, settings.base_url)


@router.delete(ONE_SESSION + "/papers/{paper_id}", status_code=204, summary="Delete a file (hosts)")
async def delete_paper(
    request: Request, ctx: HostOf, session: HostSessionOf, paper_id: PaperIdPath, db: SessionDep
) -> Response:
    paper = await papers.get_paper(db, session=session, paper_id=paper_id)
    if paper is None:
        raise NotFound("We could not find that file.")
    await papers.delete_paper(db, storage=_storage(request), paper=paper, actor=ctx.user)
    return Response(status_code=204)
