"""Pages: transcripts of sound evidence.

The transcript panel sits on the item page (templates/evidence/item.html includes
templates/evidence/transcript_panel.html) and fetches itself again every 2 s while the
transcription is queued or running. Whoever may see the item may read its transcript; the
group's facilitators and the programme's hosts may correct it and try a failed one again.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import RedirectResponse, Response

from app.deps import SessionDep
from app.evidence.access import ItemContext, ItemOf, OrganiserItemOf
from app.evidence.models import EvidenceKind
from app.evidence.transcripts import TranscriptRefused, retry_transcript, save_transcript
from app.models import User
from app.refusals import NotFound
from app.state import get_app_state
from app.templating import render

router = APIRouter(tags=["pages: evidence"])

BASE = "/programmes/{programme_id}/groups/{group_id}/evidence/{item_id}/transcript"
NOT_AUDIO = "This item is not a sound recording, so it has no transcript."
# A hard limit for the form field; up to TRANSCRIPT_MAX the person gets a clear message.
TranscriptField = Annotated[str, Form(max_length=1_000_000)]


def item_url(item_ctx: ItemContext) -> str:
    item = item_ctx.item
    return f"/programmes/{item.programme_id}/groups/{item.group_id}/evidence/{item.id}"


async def audio_item(item: ItemOf) -> ItemContext:
    if item.item.kind != EvidenceKind.AUDIO.value:
        raise NotFound(NOT_AUDIO)
    return item


async def organiser_audio_item(item: OrganiserItemOf) -> ItemContext:
    return await audio_item(item)


AudioItemOf = Annotated[ItemContext, Depends(audio_item)]
OrganiserAudioItemOf = Annotated[ItemContext, Depends(organiser_audio_item)]


async def transcript_panel_context(db: AsyncSession, item_ctx: ItemContext) -> dict[str, Any]:
    """Everything the panel shows. The item page needs only `item`, `item_ctx`,
    `programme_id` and `group_id` (and `csrf_token`, which `render` adds); this adds the
    name of whoever last corrected the transcript."""
    item = item_ctx.item
    editor = None
    if item.transcript_edited_by_id is not None:
        editor = await db.get(User, item.transcript_edited_by_id)
    return {
        "item": item,
        "item_ctx": item_ctx,
        "programme_id": item.programme_id,
        "group_id": item.group_id,
        "transcript_editor": editor.display_name if editor else "",
    }


@router.get(BASE + "/panel")
async def transcript_panel(request: Request, item: AudioItemOf, db: SessionDep) -> Response:
    """The panel alone, for the page's polling while the transcript is being made."""
    context = await transcript_panel_context(db, item)
    response = render(request, "evidence/transcript_panel.html", context)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post(BASE)
async def edit_transcript(
    request: Request, item: OrganiserAudioItemOf, db: SessionDep, transcript: TranscriptField = ""
) -> Response:
    try:
        changed = await save_transcript(
            db, item=item.item, actor=item.gctx.ctx.user, text=transcript
        )
    except TranscriptRefused as exc:
        context = await transcript_panel_context(db, item)
        context.update(
            title="Correct the transcript",
            transcript_errors={"transcript": exc.message},
            transcript_value=transcript,
        )
        return render(request, "evidence/transcript_edit.html", context, status_code=exc.status)
    notice = "saved" if changed else "unchanged"
    return RedirectResponse(
        f"{item_url(item)}?transcript={notice}#transcript-{item.item.id}", status_code=303
    )


@router.post(BASE + "/retry")
async def retry(request: Request, item: OrganiserAudioItemOf, db: SessionDep) -> Response:
    await retry_transcript(db, item=item.item, actor=item.gctx.ctx.user)
    get_app_state(request).transcriber.wake()
    return RedirectResponse(
        f"{item_url(item)}?transcript=requeued#transcript-{item.item.id}", status_code=303
    )
