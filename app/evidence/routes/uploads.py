"""Uploading files to a group's evidence.

The form is read as it streams in (app/evidence/multipart.py), so this router checks the
CSRF token itself: from the X-CSRF-Token header (the page's script sends it), or from the
form's `csrf_token` field, which must come before the files (it is the form's first
field), so nothing is written for a forged request."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.requests import ClientDisconnect

from app.access import GroupContext
from app.bodylimits import BodyRefused, release_connection
from app.deps import GroupOf, SessionDep, SettingsDep
from app.evidence.errors import EvidenceRejected
from app.evidence.incoming import MB, Batch, IncomingFile
from app.evidence.models import EvidenceItem
from app.evidence.multipart import FilePart, MalformedForm, receive_form
from app.evidence.pages import board_url, upload_form_context
from app.evidence.uploads import read_options, record_batch
from app.refusals import NotAllowed
from app.security import CSRF_COOKIE, CSRF_FIELD, CSRF_HEADER, Signer
from app.state import get_app_state
from app.templating import render

router = APIRouter()

CSRF_REFUSED = (
    "This form has expired or was sent from another site. Please reload the page and try again."
)
# After refusing a file we read (and drop) the rest of the request, so that the browser
# gets our answer instead of a broken connection; the body size limit bounds this.
DRAIN_LIMIT = 200 * MB


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


@router.get("/programmes/{programme_id}/groups/{group_id}/evidence/upload")
async def upload_page(
    request: Request, gctx: GroupOf, db: SessionDep, settings: SettingsDep
) -> Response:
    context = await upload_form_context(db, gctx, max_upload_mb=settings.max_upload_mb)
    return render(request, "evidence/upload.html", {"gctx": gctx, **context})


def _form_token(fields: dict[str, list[str]]) -> str | None:
    values = fields.get(CSRF_FIELD)
    return values[-1] if values else None


def _csrf_ok(request: Request, token: str | None) -> bool:
    signer: Signer = get_app_state(request).signer
    return signer.csrf_valid(request.cookies.get(CSRF_COOKIE), token)


async def _drain(request: Request) -> None:
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > DRAIN_LIMIT:
                return
    except (ClientDisconnect, RuntimeError, HTTPException):
        return


@router.post("/programmes/{programme_id}/groups/{group_id}/evidence/upload")
async def upload(
    request: Request, gctx: GroupOf, db: SessionDep, settings: SettingsDep
) -> Response:
    header_token = request.headers.get(CSRF_HEADER)
    if header_token is not None and not _csrf_ok(request, header_token):
        raise NotAllowed(CSRF_REFUSED)
    # Who is asking has been checked; no connection is held while the files arrive (a
    # slow upload would otherwise keep it for as long as it trickles).
    await release_connection(db)
    storage = get_app_state(request).storage
    batch = Batch(storage=storage, max_bytes=settings.max_upload_mb * MB)

    async def open_file(part: FilePart, fields: dict[str, list[str]]) -> IncomingFile:
        if header_token is None and not _csrf_ok(request, _form_token(fields)):
            raise NotAllowed(CSRF_REFUSED)
        return await batch.open_file(part, fields)

    fields: dict[str, list[str]] = {}
    try:
        fields = await receive_form(
            request.stream(),
            content_type=request.headers.get("content-type", ""),
            open_file=open_file,
        )
        if header_token is None and not _csrf_ok(request, _form_token(fields)):
            raise NotAllowed(CSRF_REFUSED)
        options = await read_options(db, gctx, fields)
        items = await record_batch(
            db,
            storage=storage,
            gctx=gctx,
            actor=gctx.ctx.user,
            batch=batch,
            options=options,
        )
    except (EvidenceRejected, MalformedForm) as exc:
        await batch.discard()
        await _drain(request)
        if isinstance(exc, MalformedForm):
            exc = EvidenceRejected("files", str(exc), 400)
        return await _refused(request, db, gctx, settings.max_upload_mb, fields, exc)
    except BodyRefused as refusal:
        # Stalled, too slow, or too many at once: nothing more is read.
        await batch.discard()
        rejected = EvidenceRejected("files", str(refusal.detail), refusal.status_code)
        return await _refused(
            request, db, gctx, settings.max_upload_mb, fields, rejected, headers=refusal.headers
        )
    except ClientDisconnect:
        await batch.discard()  # a cancelled upload leaves nothing behind
        return Response(status_code=400)
    except BaseException:
        await batch.discard()
        raise
    return _uploaded(request, gctx, items)


def _uploaded(request: Request, gctx: GroupContext, items: list[EvidenceItem]) -> Response:
    """Recorded: sound is transcribed next; the person is told, or sent to describe the
    first picture that needs it."""
    if any(item.kind == "audio" for item in items):
        get_app_state(request).transcriber.wake()
    base = board_url(gctx.ctx.programme.id, gctx.group.id)
    if wants_json(request):
        return JSONResponse(
            {
                "items": [
                    {
                        "id": item.id,
                        "title": item.title,
                        "kind": item.kind,
                        "url": f"{base}/{item.id}",
                        "needs_alt_text": item.needs_alt_text,
                    }
                    for item in items
                ],
                "message": _done_message(len(items)),
            },
            status_code=201,
        )
    waiting = [item for item in items if item.needs_alt_text]
    if waiting:
        return RedirectResponse(f"{base}/{waiting[0].id}?done=describe#alt-text", status_code=303)
    return RedirectResponse(f"{base}?done=uploaded", status_code=303)


def _done_message(count: int) -> str:
    return "Uploaded." if count == 1 else f"{count} files uploaded."


async def _refused(
    request: Request,
    db: SessionDep,
    gctx: GroupContext,
    max_upload_mb: int,
    fields: dict[str, list[str]],
    exc: EvidenceRejected,
    headers: Mapping[str, str] | None = None,
) -> Response:
    if wants_json(request):
        return JSONResponse(
            {"detail": exc.message, "field": exc.field}, status_code=exc.status, headers=headers
        )
    values = {
        name: values[-1]
        for name, values in fields.items()
        if name in ("title", "description", "session_id", "visibility", "alt_text", "kind")
    }
    if fields.get("from_trio"):
        values["from_trio"] = "1"
    context = await upload_form_context(
        db, gctx, max_upload_mb=max_upload_mb, values=values, errors={exc.field: exc.message}
    )
    response = render(
        request, "evidence/upload.html", {"gctx": gctx, **context}, status_code=exc.status
    )
    response.headers.update(headers or {})
    return response
