"""What the evidence pages share: their paths, the form fields' hard limits, the messages
shown after an action, and the context every group page and the upload form need."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Form, Query, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.access import GroupContext
from app.evidence import fields, filetypes
from app.evidence.access import ItemContext
from app.evidence.models import EvidenceKind, Visibility
from app.evidence.notes import NOTE_MAX
from app.models import ProgrammeSession
from app.state import get_app_state
from app.storage import Storage

BASE = "/programmes/{programme_id}/groups/{group_id}/evidence"


# `:int` so that other evidence pages (`/upload`) are not taken for an item.
ITEM = BASE + "/{item_id:int}"


# Generous hard limits; the services give friendlier messages at the real limits
# (browsers send each line break in a textarea as two characters).
TitleForm = Annotated[str, Form(max_length=1_000)]


DescriptionForm = Annotated[str, Form(max_length=2 * fields.DESCRIPTION_MAX + 100)]


NoteForm = Annotated[str, Form(max_length=2 * NOTE_MAX + 100)]


UrlForm = Annotated[str, Form(max_length=fields.URL_MAX + 100)]


ShortForm = Annotated[str, Form(max_length=40)]


AltForm = Annotated[str, Form(max_length=2 * fields.ALT_TEXT_MAX + 100)]


ReasonForm = Annotated[str, Form(max_length=2 * fields.REASON_MAX + 100)]


ShortQuery = Annotated[str, Query(max_length=40)]


@dataclass(frozen=True)
class WrittenFields:
    """What the forms of a typed note and of a link share, as sent (the action checks it)."""

    title: str
    description: str
    session_id: str
    from_trio: str
    visibility: str


async def written_fields(
    title: TitleForm = "",
    description: DescriptionForm = "",
    session_id: ShortForm = "",
    from_trio: ShortForm = "",
    visibility: ShortForm = Visibility.GROUP.value,
) -> WrittenFields:
    return WrittenFields(title, description, session_id, from_trio, visibility)


WrittenForm = Annotated[WrittenFields, Depends(written_fields)]


DONE_MESSAGES = {
    "note": "Your note has been added.",
    "link": "Your link has been added.",
    "uploaded": "Uploaded.",
    "saved": "Your changes have been saved.",
    "described": "Thank you: the image's description has been saved.",
    "describe": "Uploaded. Now describe the image, so that everyone can use it.",
    "hidden": "The item is hidden from the group. It is kept, and organisers still see it.",
    "unhidden": "The item is on the group's board again.",
    "deleted": "The item has been deleted.",
}


TRIO_VALUES = {"yes": True, "no": False}


def board_url(programme_id: int, group_id: int) -> str:
    return f"/programmes/{programme_id}/groups/{group_id}/evidence"


def item_url(item_ctx: ItemContext) -> str:
    item = item_ctx.item
    return f"{board_url(item.programme_id, item.group_id)}/{item.id}"


def storage_of(request: Request) -> Storage:
    storage: Storage = get_app_state(request).storage
    return storage


def flash_for(done: str) -> list[str]:
    message = DONE_MESSAGES.get(done)
    return [message] if message else []


def checked(value: str) -> bool:
    return value.strip().lower() in ("on", "1", "true", "yes")


def group_page_context(gctx: GroupContext) -> dict[str, Any]:
    return {
        "gctx": gctx,
        "programme": gctx.ctx.programme,
        "group": gctx.group,
        "board_url": board_url(gctx.ctx.programme.id, gctx.group.id),
        "is_organiser": gctx.can_moderate,
        "visibilities": list(Visibility),
        "kinds": list(EvidenceKind),
    }


async def _sessions(db: AsyncSession, programme_id: int) -> list[ProgrammeSession]:
    rows = await db.scalars(
        select(ProgrammeSession)
        .where(ProgrammeSession.programme_id == programme_id)
        .order_by(ProgrammeSession.starts_at)
    )
    return list(rows.all())


async def upload_form_context(
    db: AsyncSession,
    gctx: GroupContext,
    *,
    max_upload_mb: int,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> dict[str, Any]:
    """What templates/evidence/upload_form.html needs (the board includes it too)."""
    return {
        "upload_action": f"{board_url(gctx.ctx.programme.id, gctx.group.id)}/upload",
        "sessions": await _sessions(db, gctx.ctx.programme.id),
        "upload_values": values or {},
        "upload_errors": errors or {},
        "max_upload_mb": max_upload_mb,
        "upload_accept": filetypes.ACCEPT_ATTRIBUTE,
        "upload_types": filetypes.accepted_names(),
    }
