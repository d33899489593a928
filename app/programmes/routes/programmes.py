"""A programme's overview, its settings, and creating programmes (administrators)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from sqlalchemy import select
from starlette.responses import RedirectResponse, Response

from app.deps import AdminUser, HostOf, MemberOf, SessionDep
from app.models import Group, Programme, ProgrammeSession
from app.numbers import is_digits
from app.programmes.programme_views import facilitators_of, member_counts
from app.programmes.programmes import (
    ProgrammeError,
    create_programme,
    update_programme,
)
from app.templating import render

router = APIRouter(tags=["pages: programmes"])

Text = Annotated[str, Form(max_length=10_000)]
Capacity = Annotated[str, Form(max_length=10)]


def parse_capacity(raw: str) -> int | None:
    raw = raw.strip()
    return int(raw) if is_digits(raw) and len(raw) <= 3 else None


@router.get("/programmes/{programme_id}")
async def programme_page(request: Request, ctx: MemberOf, db: SessionDep) -> Response:
    programme = ctx.programme
    sessions = (
        await db.scalars(
            select(ProgrammeSession)
            .where(ProgrammeSession.programme_id == programme.id)
            .order_by(ProgrammeSession.starts_at)
        )
    ).all()
    group = None
    facilitators = []
    if ctx.membership is not None and ctx.membership.group_id is not None:
        group = await db.get(Group, ctx.membership.group_id)
        facilitators = (await facilitators_of(db, group_ids=[ctx.membership.group_id]))[
            ctx.membership.group_id
        ]
    counts = await member_counts(db, programme_id=programme.id) if ctx.is_host else {}
    return render(
        request,
        "programmes/overview.html",
        {
            "title": programme.title,
            "programme": programme,
            "ctx": ctx,
            "sessions": sessions,
            "group": group,
            "facilitators": facilitators,
            "counts": counts,
        },
    )


def _settings_page(request: Request, ctx, values, errors, saved=False) -> Response:  # type: ignore[no-untyped-def]
    return render(
        request,
        "programmes/settings.html",
        {
            "title": f"Settings: {ctx.programme.title}",
            "programme": ctx.programme,
            "values": values,
            "errors": errors,
            "flash_messages": ["The programme has been saved."] if saved else [],
        },
        status_code=400 if errors else 200,
    )


@router.get("/programmes/{programme_id}/settings")
async def programme_settings(request: Request, ctx: HostOf) -> Response:
    saved = request.query_params.get("saved") == "1"
    return _settings_page(request, ctx, ctx.programme, {}, saved)


@router.post("/programmes/{programme_id}/settings")
async def save_programme_settings(
    request: Request,
    ctx: HostOf,
    db: SessionDep,
    title: Text = "",
    description: Text = "",
    timezone: Annotated[str, Form(max_length=100)] = "Europe/London",
    group_capacity: Capacity = "8",
    allow_breakout_recording: Annotated[str | None, Form(max_length=5)] = None,
    allow_breakout_cameras: Annotated[str | None, Form(max_length=5)] = None,
) -> Response:
    values = {
        "title": title,
        "description": description,
        "timezone": timezone,
        "group_capacity": group_capacity,
        "allow_breakout_recording": allow_breakout_recording is not None,
        "allow_breakout_cameras": allow_breakout_cameras is not None,
    }
    try:
        await update_programme(
            db,
            actor=ctx.user,
            programme=ctx.programme,
            title=title,
            description=description,
            timezone=timezone,
            group_capacity=parse_capacity(group_capacity),
            allow_breakout_recording=allow_breakout_recording is not None,
            allow_breakout_cameras=allow_breakout_cameras is not None,
        )
    except ProgrammeError as exc:
        return _settings_page(request, ctx, values, exc.errors)
    return RedirectResponse(f"/programmes/{ctx.programme.id}/settings?saved=1", status_code=303)


@router.get("/admin")
async def admin_page(request: Request, admin: AdminUser, db: SessionDep) -> Response:
    programmes = (await db.scalars(select(Programme).order_by(Programme.id.desc()))).all()
    return render(
        request,
        "admin.html",
        {"title": "Administration", "programmes": programmes, "values": {}, "errors": {}},
    )


@router.post("/admin/programmes")
async def admin_create_programme(
    request: Request,
    admin: AdminUser,
    db: SessionDep,
    title: Text = "",
    description: Text = "",
    timezone: Annotated[str, Form(max_length=100)] = "Europe/London",
    group_capacity: Capacity = "8",
) -> Response:
    try:
        programme = await create_programme(
            db,
            actor=admin,
            title=title,
            description=description,
            timezone=timezone,
            group_capacity=parse_capacity(group_capacity) or 0,
        )
    except ProgrammeError as exc:
        programmes = (await db.scalars(select(Programme).order_by(Programme.id.desc()))).all()
        values = {
            "title": title,
            "description": description,
            "timezone": timezone,
            "group_capacity": group_capacity,
        }
        return render(
            request,
            "admin.html",
            {
                "title": "Administration",
                "programmes": programmes,
                "values": values,
                "errors": exc.errors,
            },
            status_code=400,
        )
    return RedirectResponse(f"/programmes/{programme.id}", status_code=303)
