"""Pages: one evidence item — its page, file and thumbnail, edits, its description,
hiding and deleting.

Item pages admit whoever may see the item (`ItemOf`); moderation admits the group's
facilitators and the programme's hosts (`OrganiserItemOf`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import RedirectResponse, Response

from app.deps import SessionDep
from app.evidence import actions, fields, queries
from app.evidence import board as board_view
from app.evidence.access import ItemContext, ItemOf, OrganiserItemOf
from app.evidence.errors import EvidenceRejected
from app.evidence.models import EvidenceKind
from app.evidence.notes import render_note
from app.evidence.pages import (
    ITEM,
    AltForm,
    DescriptionForm,
    NoteForm,
    ReasonForm,
    ShortForm,
    ShortQuery,
    TitleForm,
    UrlForm,
    board_url,
    checked,
    flash_for,
    group_page_context,
    item_url,
    storage_of,
)
from app.evidence.serving import file_response, thumbnail_content_type
from app.models import User
from app.refusals import NotAllowed, NotFound, Refused
from app.templating import render
from app.themes.coding import coding_panel_context

router = APIRouter(tags=["pages: evidence"])


# One item


def _edit_values(item_ctx: ItemContext) -> dict[str, Any]:
    item = item_ctx.item
    return {
        "title": item.title,
        "description": item.description,
        "markdown": item.note_markdown,
        "url": item.link_url,
        "session_id": str(item.session_id or ""),
        "from_trio": item.from_trio,
        "visibility": item.visibility,
    }


async def _item_page(
    request: Request,
    db: SessionDep,
    item_ctx: ItemContext,
    *,
    flash: list[str] | None = None,
    edit_values: dict[str, Any] | None = None,
    errors: dict[str, dict[str, str]] | None = None,
    typed: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    """`errors` by form ("edit", "alt", "hide"); `typed`: what was sent in the small forms
    (alt text, reason), shown again with their error."""
    item = item_ctx.item
    gctx = item_ctx.gctx
    await db.refresh(item, ["uploader", "session"])
    hidden_by = await db.get(User, item.hidden_by_id) if item.hidden_by_id else None
    sessions = await queries.programme_sessions(db, programme_id=gctx.ctx.programme.id)
    all_errors = errors or {}
    context: dict[str, Any] = {
        **group_page_context(gctx),
        "title": f"{item.title} · {gctx.group.name}",
        "item": item,
        "item_ctx": item_ctx,
        "item_url": item_url(item_ctx),
        "programme_id": item.programme_id,
        "group_id": item.group_id,
        "card": board_view.card_for(item),
        "note_html": render_note(item.note_markdown) if item.note_markdown else None,
        "hidden_by": hidden_by,
        "sessions": sessions,
        "values": edit_values or _edit_values(item_ctx),
        "edit_errors": all_errors.get("edit", {}),
        "alt_errors": all_errors.get("alt", {}),
        "hide_errors": all_errors.get("hide", {}),
        "typed": typed or {},
        "delete_problem": await actions.delete_problem(db, item_ctx=item_ctx),
        "flash_messages": flash or [],
        "coding_panel": False,
    }
    if item_ctx.is_organiser:
        context.update(
            await coding_panel_context(
                db,
                item=item,
                ctx=gctx.ctx,
                error_code=request.query_params.get("coding_error", "")[:40],
                done_code=request.query_params.get("coding_done", "")[:40],
            )
        )
        context["coding_panel"] = True
    return render(request, "evidence/item.html", context, status_code=status_code)


@router.get(ITEM)
async def item_page(
    request: Request, item_ctx: ItemOf, db: SessionDep, done: ShortQuery = ""
) -> Response:
    return await _item_page(request, db, item_ctx, flash=flash_for(done))


@router.get(ITEM + "/file")
async def item_file(
    request: Request, item_ctx: ItemOf, download: Annotated[bool, Query()] = False
) -> Response:
    """The item's file: pictures and sound inline (for `<img>` and `<audio>`), everything
    else, and anything asked for with ?download=1, as an attachment."""
    item = item_ctx.item
    path = _stored(request, item.storage_key)
    return file_response(
        path, filename=item.filename or "file", content_type=item.content_type, download=download
    )


THUMBNAIL_EXTENSIONS = {"image/webp": "webp", "image/jpeg": "jpg", "image/png": "png"}


@router.get(ITEM + "/thumbnail")
async def item_thumbnail(request: Request, item_ctx: ItemOf) -> Response:
    path = _stored(request, item_ctx.item.thumbnail_key)
    content_type = thumbnail_content_type(path)
    ext = THUMBNAIL_EXTENSIONS.get(content_type, "bin")
    return file_response(
        path, filename=f"thumbnail-{item_ctx.item.id}.{ext}", content_type=content_type
    )


def _stored(request: Request, key: str | None) -> Any:
    path = storage_of(request).path(key) if key else None
    if path is None or not path.is_file():
        raise NotFound("This item has no file to show.")
    return path


@router.post(ITEM + "/edit")
async def edit_item(
    request: Request,
    item_ctx: ItemOf,
    db: SessionDep,
    title: TitleForm = "",
    description: DescriptionForm = "",
    markdown: NoteForm = "",
    url: UrlForm = "",
    session_id: ShortForm = "",
    from_trio: ShortForm = "",
    visibility: ShortForm = "",
) -> Response:
    if not item_ctx.can_edit:
        raise NotAllowed(
            "Only whoever added this, the group's facilitators and the hosts can change it."
        )
    values = {
        "title": title,
        "description": description,
        "markdown": markdown,
        "url": url,
        "session_id": session_id,
        "from_trio": checked(from_trio),
        "visibility": visibility,
    }
    try:
        await actions.update_item(
            db,
            item_ctx=item_ctx,
            actor=item_ctx.gctx.ctx.user,
            title=title,
            description=description,
            session_id=fields.parse_session_id(session_id),
            from_trio=checked(from_trio),
            visibility=visibility,
            markdown=markdown if item_ctx.item.kind == EvidenceKind.NOTE else None,
            url=url if item_ctx.item.kind == EvidenceKind.LINK else None,
        )
    except EvidenceRejected as exc:
        return await _item_page(
            request,
            db,
            item_ctx,
            edit_values=values,
            errors={"edit": exc.errors},
            status_code=exc.status,
        )
    return RedirectResponse(f"{item_url(item_ctx)}?done=saved", status_code=303)


@router.post(ITEM + "/alt-text")
async def describe_image(
    request: Request,
    item_ctx: ItemOf,
    db: SessionDep,
    alt_text: AltForm = "",
    return_to: ShortForm = "item",
) -> Response:
    if not item_ctx.can_edit:
        raise NotAllowed(
            "Only whoever added this, the group's facilitators and the hosts can describe it."
        )
    if item_ctx.item.kind not in fields.IMAGE_KINDS:
        raise Refused("Only images and posters have an image description.")
    try:
        await actions.set_alt_text(
            db, item_ctx=item_ctx, actor=item_ctx.gctx.ctx.user, alt_text=alt_text
        )
    except EvidenceRejected as exc:
        return await _item_page(
            request,
            db,
            item_ctx,
            errors={"alt": {exc.field: exc.message}},
            typed={"alt_text": alt_text},
            status_code=exc.status,
        )
    item = item_ctx.item
    if return_to == "board":
        board = board_url(item.programme_id, item.group_id)
        return RedirectResponse(f"{board}?done=described#item-{item.id}", status_code=303)
    return RedirectResponse(f"{item_url(item_ctx)}?done=described", status_code=303)


@router.post(ITEM + "/hide")
async def hide_item(
    request: Request, item_ctx: OrganiserItemOf, db: SessionDep, reason: ReasonForm = ""
) -> Response:
    return await _set_hidden(request, item_ctx, db, reason, hidden=True)


@router.post(ITEM + "/unhide")
async def unhide_item(
    request: Request, item_ctx: OrganiserItemOf, db: SessionDep, reason: ReasonForm = ""
) -> Response:
    return await _set_hidden(request, item_ctx, db, reason, hidden=False)


async def _set_hidden(
    request: Request, item_ctx: ItemContext, db: SessionDep, reason: str, *, hidden: bool
) -> Response:
    """Hide an item from its group or show it again; a refusal redraws the item's page."""
    action = actions.hide_item if hidden else actions.unhide_item
    try:
        await action(db, item_ctx=item_ctx, actor=item_ctx.gctx.ctx.user, reason=reason)
    except EvidenceRejected as exc:
        return await _item_page(
            request,
            db,
            item_ctx,
            errors={"hide": {exc.field: exc.message}},
            typed={"reason": reason},
            status_code=exc.status,
        )
    done = "hidden" if hidden else "unhidden"
    return RedirectResponse(f"{item_url(item_ctx)}?done={done}", status_code=303)


@router.get(ITEM + "/delete")
async def confirm_delete(request: Request, item_ctx: ItemOf, db: SessionDep) -> Response:
    problem = await actions.delete_problem(db, item_ctx=item_ctx)
    if problem is not None:
        raise NotAllowed(problem)
    return render(
        request,
        "evidence/confirm_delete.html",
        {
            **group_page_context(item_ctx.gctx),
            "title": f"Delete {item_ctx.item.title}?",
            "item": item_ctx.item,
            "item_url": item_url(item_ctx),
            "codings": await queries.coding_count(db, item_id=item_ctx.item.id),
        },
    )


@router.post(ITEM + "/delete")
async def delete_item(request: Request, item_ctx: ItemOf, db: SessionDep) -> Response:
    item = item_ctx.item
    board = board_url(item.programme_id, item.group_id)
    await actions.delete_item(
        db, item_ctx=item_ctx, actor=item_ctx.gctx.ctx.user, storage=storage_of(request)
    )
    return RedirectResponse(f"{board}?done=deleted", status_code=303)
