"""Coding an evidence item into themes, from the coding panel of its page (the panel is
drawn with app/themes/coding.py's `coding_panel_context`).

The item's group's facilitators and the programme's hosts code (OrganiserItemOf)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form
from starlette.responses import RedirectResponse, Response

from app.deps import SessionDep
from app.evidence.access import CodingIdPath, OrganiserItemOf
from app.refusals import NotFound
from app.themes import coding as coding_service
from app.themes.coding import CodingRejected

router = APIRouter(tags=["pages: themes"])

# Generous hard limits; the services give friendlier messages at the real ones.
ShortForm = Annotated[str, Form(max_length=20)]
MemoForm = Annotated[str, Form(max_length=20_000)]
ExcerptForm = Annotated[str, Form(max_length=200_000)]


def _item_url(programme_id: int, group_id: int, item_id: int) -> str:
    return f"/programmes/{programme_id}/groups/{group_id}/evidence/{item_id}"


def _back_to_item(item: Any, **query: str) -> RedirectResponse:
    url = _item_url(item.programme_id, item.group_id, item.id)
    return RedirectResponse(f"{url}?{urlencode(query)}#coding", status_code=303)


@router.post("/programmes/{programme_id}/groups/{group_id}/evidence/{item_id}/codings")
async def add_coding(
    access: OrganiserItemOf,
    db: SessionDep,
    theme_ids: Annotated[list[str], Form(default_factory=list, max_length=200)],
    memo: MemoForm = "",
    source: ShortForm = "",
    start: ShortForm = "",
    end: ShortForm = "",
    excerpt: ExcerptForm = "",
) -> Response:
    item = access.item
    try:
        chosen_source = source.strip() or None
        if chosen_source == "whole":
            chosen_source = None
        await coding_service.code_item(
            db,
            item=item,
            actor=access.gctx.ctx.user,
            theme_ids=coding_service.parse_ids(theme_ids),
            memo=memo,
            source=chosen_source,
            start=coding_service.parse_offset(start),
            end=coding_service.parse_offset(end),
            excerpt=excerpt,
        )
    except CodingRejected as exc:
        return _back_to_item(item, coding_error=exc.code)
    return _back_to_item(item, coding_done="added")


@router.post(
    "/programmes/{programme_id}/groups/{group_id}/evidence/{item_id}/codings/{coding_id}/delete"
)
async def remove_coding(
    access: OrganiserItemOf, coding_id: CodingIdPath, db: SessionDep
) -> Response:
    removed = await coding_service.remove_coding(
        db, item=access.item, coding_id=coding_id, actor=access.gctx.ctx.user
    )
    if removed is None:
        raise NotFound("We could not find that coding on this item.")
    return _back_to_item(access.item, coding_done="removed")
