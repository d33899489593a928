"""Pages: the theme overview (counts and passages per theme) and the CSV files of codings
and of the codebook.

Hosts and facilitators see them (CoderOf); facilitators see counts and passages of the
groups they facilitate only."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from app.access import ProgrammeContext
from app.deps import SessionDep, SettingsDep
from app.evidence.access import CoderOf
from app.refusals import Refused
from app.templating import render
from app.themes import coding as coding_service
from app.themes import export as coding_export
from app.themes import overview

router = APIRouter(tags=["pages: themes"])

FilterParam = Annotated[str, Query(max_length=20)]


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
        raise Refused(" ".join(errors.values()))
    body = await coding_export.codings_csv(
        db, scope=scope, filters=filters, base_url=settings.base_url
    )
    return _csv_response(body, programme_title=ctx.programme.title, what="codings")


@router.get("/programmes/{programme_id}/themes/codebook.csv")
async def codebook_csv(ctx: CoderOf, db: SessionDep) -> Response:
    scope = await overview.scope_for(db, ctx)
    body = await coding_export.codebook_csv(db, scope=scope)
    return _csv_response(body, programme_title=ctx.programme.title, what="codebook")
