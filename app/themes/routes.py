"""Pages: the programme's codebook, the theme overview, coding evidence, and the CSV files.

Hosts and facilitators code (CoderOf); only hosts merge and delete themes. Facilitators
see counts and passages of the groups they facilitate only."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from starlette.responses import RedirectResponse, Response

from app.access import ProgrammeContext
from app.deps import SessionDep, SettingsDep
from app.evidence.access import CoderOf, CodingIdPath, OrganiserItemOf, ThemeIdPath, host_only
from app.evidence.models import Theme
from app.numbers import is_digits
from app.templating import render
from app.themes import coding as coding_service
from app.themes import export as coding_export
from app.themes import overview
from app.themes import themes as theme_service
from app.themes.coding import CodingRejected
from app.themes.themes import ThemeRejected

router = APIRouter(tags=["pages: themes"])

HostOnly = Annotated[ProgrammeContext, Depends(host_only)]
# Generous hard limits; the services give friendlier messages at the real ones.
NameForm = Annotated[str, Form(max_length=1_000)]
DescriptionForm = Annotated[str, Form(max_length=10_000)]
ShortForm = Annotated[str, Form(max_length=20)]
MemoForm = Annotated[str, Form(max_length=20_000)]
ExcerptForm = Annotated[str, Form(max_length=200_000)]
FilterParam = Annotated[str, Query(max_length=20)]
DoneParam = Annotated[str, Query(max_length=20)]
CountParam = Annotated[int, Query(ge=0, le=10**9)]

DONE_MESSAGES = {
    "created": "The theme has been added to the codebook.",
    "saved": "The theme has been saved.",
    "deleted": "The theme has been deleted.",
}


def _codebook_url(programme_id: int) -> str:
    return f"/programmes/{programme_id}/themes"


def _item_url(programme_id: int, group_id: int, item_id: int) -> str:
    return f"/programmes/{programme_id}/groups/{group_id}/evidence/{item_id}"


async def theme_in_programme(ctx: CoderOf, theme_id: ThemeIdPath, db: SessionDep) -> Theme:
    theme = await theme_service.get_theme(db, programme_id=ctx.programme.id, theme_id=theme_id)
    if theme is None:
        raise HTTPException(status_code=404, detail="We could not find that theme.")
    return theme


ThemeOf = Annotated[Theme, Depends(theme_in_programme)]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


async def _codebook_page(
    request: Request,
    ctx: ProgrammeContext,
    db: SessionDep,
    *,
    form_id: str = "",
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    flash: list[str] | None = None,
) -> Response:
    """The codebook; `form_id` ("new" or a theme id) is the form `values`/`errors` belong to."""
    scope = await overview.scope_for(db, ctx)
    tree = await theme_service.codebook(db, programme_id=ctx.programme.id)
    errors = errors or {}
    return render(
        request,
        "themes/codebook.html",
        {
            "title": f"Codebook: {ctx.programme.title}",
            "programme": ctx.programme,
            "ctx": ctx,
            "tree": tree,
            "counts": await overview.codebook_counts(db, scope=scope),
            "palette": theme_service.PALETTE,
            "colour_of": theme_service.colour_of,
            "default_colour": theme_service.DEFAULT_COLOUR,
            "all_groups": scope.allowed_group_ids is None,
            "form_id": form_id,
            "values": values or {},
            "errors": errors,
            "flash_messages": flash or [],
            "name_max": theme_service.NAME_MAX,
            "description_max": theme_service.DESCRIPTION_MAX,
        },
        status_code=400 if errors else 200,
    )


@router.get("/programmes/{programme_id}/themes")
async def codebook_page(
    request: Request,
    ctx: CoderOf,
    db: SessionDep,
    done: DoneParam = "",
    moved: CountParam = 0,
    dropped: CountParam = 0,
    sub: CountParam = 0,
    codings: CountParam = 0,
) -> Response:
    flash = []
    if done == "merged":
        flash.append(
            f"The themes have been merged: {_plural(moved, 'coding')} moved, "
            f"{_plural(dropped, 'duplicate coding')} left out, {_plural(sub, 'sub-theme')} moved."
        )
    elif done == "deleted":
        flash.append(f"The theme has been deleted, with {_plural(codings, 'coding')}.")
    elif done in DONE_MESSAGES:
        flash.append(DONE_MESSAGES[done])
    return await _codebook_page(request, ctx, db, flash=flash)


def _theme_values(name: str, description: str, colour: str, parent_id: str) -> dict[str, str]:
    return {"name": name, "description": description, "colour": colour, "parent_id": parent_id}


@router.post("/programmes/{programme_id}/themes")
async def create_theme(
    request: Request,
    ctx: CoderOf,
    db: SessionDep,
    name: NameForm = "",
    description: DescriptionForm = "",
    colour: ShortForm = "",
    parent_id: ShortForm = "",
) -> Response:
    values = _theme_values(name, description, colour, parent_id)
    fields, errors = theme_service.parse_fields(**values)
    try:
        if errors:
            raise ThemeRejected(errors)
        theme = await theme_service.create_theme(
            db, programme_id=ctx.programme.id, actor=ctx.user, fields=fields
        )
    except ThemeRejected as exc:
        return await _codebook_page(
            request, ctx, db, form_id="new", values=values, errors=exc.errors
        )
    return RedirectResponse(
        f"{_codebook_url(ctx.programme.id)}?done=created#theme-{theme.id}", status_code=303
    )


@router.post("/programmes/{programme_id}/themes/{theme_id}/edit")
async def edit_theme(
    request: Request,
    ctx: CoderOf,
    theme: ThemeOf,
    db: SessionDep,
    name: NameForm = "",
    description: DescriptionForm = "",
    colour: ShortForm = "",
    parent_id: ShortForm = "",
) -> Response:
    values = _theme_values(name, description, colour, parent_id)
    fields, errors = theme_service.parse_fields(**values)
    try:
        if errors:
            raise ThemeRejected(errors)
        await theme_service.update_theme(db, theme=theme, actor=ctx.user, fields=fields)
    except ThemeRejected as exc:
        return await _codebook_page(
            request, ctx, db, form_id=str(theme.id), values=values, errors=exc.errors
        )
    return RedirectResponse(
        f"{_codebook_url(ctx.programme.id)}?done=saved#theme-{theme.id}", status_code=303
    )


@router.post("/programmes/{programme_id}/themes/{theme_id}/merge")
async def merge_theme(
    request: Request,
    ctx: HostOnly,
    theme: ThemeOf,
    db: SessionDep,
    target_id: ShortForm = "",
) -> Response:
    values = {"target_id": target_id}
    target = None
    if is_digits(target_id.strip()) and len(target_id.strip()) <= 10:
        target = await theme_service.get_theme(
            db, programme_id=ctx.programme.id, theme_id=int(target_id)
        )
    try:
        if target is None:
            raise ThemeRejected({"target_id": "Choose the theme to merge into from the list."})
        result = await theme_service.merge_themes(db, source=theme, target=target, actor=ctx.user)
    except ThemeRejected as exc:
        return await _codebook_page(
            request, ctx, db, form_id=f"merge-{theme.id}", values=values, errors=exc.errors
        )
    query = urlencode(
        {
            "done": "merged",
            "moved": result.moved,
            "dropped": result.dropped,
            "sub": result.children_moved + result.children_merged,
        }
    )
    return RedirectResponse(
        f"{_codebook_url(ctx.programme.id)}?{query}#theme-{target.id}", status_code=303
    )


@router.get("/programmes/{programme_id}/themes/{theme_id}/delete")
async def confirm_delete_theme(
    request: Request, ctx: HostOnly, theme: ThemeOf, db: SessionDep
) -> Response:
    children, codings = await theme_service.deletion_counts(db, theme=theme)
    parent = await db.get(Theme, theme.parent_id) if theme.parent_id else None
    return render(
        request,
        "themes/confirm_delete.html",
        {
            "title": f"Delete the theme {theme.name}?",
            "programme": ctx.programme,
            "theme": theme,
            "label": theme_service.theme_label(theme, parent),
            "children": children,
            "codings": codings,
        },
    )


@router.post("/programmes/{programme_id}/themes/{theme_id}/delete")
async def delete_theme(request: Request, ctx: HostOnly, theme: ThemeOf, db: SessionDep) -> Response:
    try:
        removed = await theme_service.delete_theme(db, theme=theme, actor=ctx.user)
    except ThemeRejected as exc:
        # The remedy is merging, so the message shows at the theme's merge form.
        message = " ".join(exc.errors.values())
        return await _codebook_page(
            request, ctx, db, form_id=f"merge-{theme.id}", errors={"target_id": message}
        )
    return RedirectResponse(
        f"{_codebook_url(ctx.programme.id)}?done=deleted&codings={removed}", status_code=303
    )


async def _scope_and_filters(
    db: SessionDep, ctx: ProgrammeContext, *, session_id: str, group_id: str, trio: str
) -> tuple[overview.Scope, overview.Filters, dict[str, str]]:
    scope = await overview.scope_for(db, ctx)
    filters, errors = overview.parse_filters(
        scope, session_id=session_id, group_id=group_id, trio=trio
    )
    return scope, filters, errors


@router.get("/programmes/{programme_id}/themes/overview")
async def overview_page(
    request: Request,
    ctx: CoderOf,
    db: SessionDep,
    session_id: FilterParam = "",
    group_id: FilterParam = "",
    trio: FilterParam = "any",
) -> Response:
    scope, filters, errors = await _scope_and_filters(
        db, ctx, session_id=session_id, group_id=group_id, trio=trio
    )
    data = await overview.build_overview(db, scope=scope, filters=filters)
    query = urlencode(
        {
            k: v
            for k, v in {
                "session_id": "" if filters.session is None else str(filters.session),
                "group_id": "" if filters.group_id is None else str(filters.group_id),
                "trio": filters.trio,
            }.items()
            if v and v != "any"
        }
    )
    return render(
        request,
        "themes/overview.html",
        {
            "title": f"Theme overview: {ctx.programme.title}",
            "programme": ctx.programme,
            "ctx": ctx,
            "scope": scope,
            "filters": filters,
            "errors": errors,
            "data": data,
            "trio_choices": overview.TRIO_CHOICES,
            "no_session": overview.NO_SESSION,
            "sources": coding_service.SOURCES,
            "export_query": f"?{query}" if query else "",
            "per_theme": overview.EXCERPTS_PER_THEME,
        },
        status_code=400 if errors else 200,
    )


def _csv_response(body: str, *, programme_title: str, what: str) -> Response:
    slug = re.sub(r"[^a-z0-9]+", "-", programme_title.lower()).strip("-")[:40] or "programme"
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    return Response(
        # A byte-order mark so that Excel reads the file as UTF-8.
        content="\ufeff" + body,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{slug}-{what}-{day}.csv"',
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get("/programmes/{programme_id}/themes/codings.csv")
async def codings_csv(
    ctx: CoderOf,
    db: SessionDep,
    settings: SettingsDep,
    session_id: FilterParam = "",
    group_id: FilterParam = "",
    trio: FilterParam = "any",
) -> Response:
    scope, filters, errors = await _scope_and_filters(
        db, ctx, session_id=session_id, group_id=group_id, trio=trio
    )
    if errors:
        raise HTTPException(status_code=400, detail=" ".join(errors.values()))
    body = await coding_export.codings_csv(
        db, scope=scope, filters=filters, base_url=settings.base_url
    )
    return _csv_response(body, programme_title=ctx.programme.title, what="codings")


@router.get("/programmes/{programme_id}/themes/codebook.csv")
async def codebook_csv(ctx: CoderOf, db: SessionDep) -> Response:
    scope = await overview.scope_for(db, ctx)
    body = await coding_export.codebook_csv(db, scope=scope)
    return _csv_response(body, programme_title=ctx.programme.title, what="codebook")


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
        raise HTTPException(status_code=404, detail="We could not find that coding on this item.")
    return _back_to_item(access.item, coding_done="removed")
