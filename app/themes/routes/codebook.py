"""Pages: the programme's codebook, where themes are added, edited, merged and deleted.

Hosts and facilitators add and edit themes (CoderOf); only hosts merge and delete them."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from starlette.responses import RedirectResponse, Response

from app.access import ProgrammeContext
from app.deps import SessionDep
from app.evidence.access import CoderOf, ThemeIdPath, host_only
from app.evidence.models import Theme
from app.numbers import is_digits
from app.refusals import NotFound
from app.templating import render
from app.themes import overview, theme_actions
from app.themes import themes as theme_service
from app.themes.themes import ThemeRejected

router = APIRouter(tags=["pages: themes"])

HostOnly = Annotated[ProgrammeContext, Depends(host_only)]
# Generous hard limits; the services give friendlier messages at the real ones.
NameForm = Annotated[str, Form(max_length=1_000)]
DescriptionForm = Annotated[str, Form(max_length=10_000)]
ShortForm = Annotated[str, Form(max_length=20)]
DoneParam = Annotated[str, Query(max_length=20)]
CountParam = Annotated[int, Query(ge=0, le=10**9)]

DONE_MESSAGES = {
    "created": "The theme has been added to the codebook.",
    "saved": "The theme has been saved.",
    "deleted": "The theme has been deleted.",
}


def _codebook_url(programme_id: int) -> str:
    return f"/programmes/{programme_id}/themes"


async def theme_in_programme(ctx: CoderOf, theme_id: ThemeIdPath, db: SessionDep) -> Theme:
    theme = await theme_service.get_theme(db, programme_id=ctx.programme.id, theme_id=theme_id)
    if theme is None:
        raise NotFound("We could not find that theme.")
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


async def theme_form(
    name: NameForm = "",
    description: DescriptionForm = "",
    colour: ShortForm = "",
    parent_id: ShortForm = "",
) -> dict[str, str]:
    """The theme form as sent (shown again, with its errors, when it is refused)."""
    return {"name": name, "description": description, "colour": colour, "parent_id": parent_id}


ThemeForm = Annotated[dict[str, str], Depends(theme_form)]


def _checked(values: dict[str, str]) -> theme_service.ThemeFields:
    fields, errors = theme_service.parse_fields(**values)
    if errors:
        raise ThemeRejected(errors)
    return fields


@router.post("/programmes/{programme_id}/themes")
async def create_theme(
    request: Request,
    ctx: CoderOf,
    db: SessionDep,
    values: ThemeForm,
) -> Response:
    try:
        theme = await theme_actions.create_theme(
            db, programme_id=ctx.programme.id, actor=ctx.user, fields=_checked(values)
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
    values: ThemeForm,
) -> Response:
    try:
        await theme_actions.update_theme(db, theme=theme, actor=ctx.user, fields=_checked(values))
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
        result = await theme_actions.merge_themes(db, source=theme, target=target, actor=ctx.user)
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
        removed = await theme_actions.delete_theme(db, theme=theme, actor=ctx.user)
    except ThemeRejected as exc:
        # The remedy is merging, so the message shows at the theme's merge form.
        message = " ".join(exc.errors.values())
        return await _codebook_page(
            request, ctx, db, form_id=f"merge-{theme.id}", errors={"target_id": message}
        )
    return RedirectResponse(
        f"{_codebook_url(ctx.programme.id)}?done=deleted&codings={removed}", status_code=303
    )
