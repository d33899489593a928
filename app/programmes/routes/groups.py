"""Groups: the list of groups, a group's own page, and the host's group management forms
(which live on the roster page and come back to it)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from app.deps import GroupOf, HostGroupOf, HostOf, MemberOf, SessionDep, UserIdPath
from app.live.deps import LiveDep
from app.models import Role
from app.numbers import is_digits
from app.programmes.facilitation import add_facilitator, remove_facilitator
from app.programmes.grouping import GroupingError, create_group, update_group
from app.programmes.roster_page import render_roster, roster_url
from app.programmes.roster_views import group_page, list_groups
from app.templating import render

router = APIRouter(tags=["pages: groups"])

STAFF_ROLES = (Role.HOST, Role.FACILITATOR, Role.IT_SUPPORT)
GroupName = Annotated[str, Form(max_length=200)]
CapacityField = Annotated[str, Form(max_length=10)]


@router.get("/programmes/{programme_id}/groups")
async def groups_page(request: Request, ctx: MemberOf, db: SessionDep) -> Response:
    """Staff see every group; anyone else goes to their own group, if they have one."""
    programme = ctx.programme
    if ctx.role not in STAFF_ROLES:
        if ctx.membership is not None and ctx.membership.group_id is not None:
            return RedirectResponse(
                f"/programmes/{programme.id}/groups/{ctx.membership.group_id}", status_code=303
            )
        return render(
            request,
            "groups/list.html",
            {
                "title": f"Groups · {programme.title}",
                "programme": programme,
                "ctx": ctx,
                "groups": [],
            },
        )
    groups = await list_groups(db, programme=programme)
    return render(
        request,
        "groups/list.html",
        {
            "title": f"Groups · {programme.title}",
            "programme": programme,
            "ctx": ctx,
            "groups": groups,
        },
    )


@router.get("/programmes/{programme_id}/groups/{group_id}")
async def group_detail_page(request: Request, access: GroupOf, db: SessionDep) -> Response:
    """The group's members and facilitators; its facilitators and the hosts also see the
    access needs members share with them."""
    programme = access.ctx.programme
    page = await group_page(db, programme=programme, group_id=access.group.id)
    return render(
        request,
        "groups/detail.html",
        {
            "title": f"{page.group.name} · {programme.title}",
            "programme": programme,
            "ctx": access.ctx,
            "group": page.group,
            "members": page.members,
            "can_moderate": access.can_moderate,
            "is_facilitator": access.is_facilitator,
        },
    )


def _capacity(raw: str) -> int | None | Literal["invalid"]:
    raw = raw.strip()
    if not raw:
        return None
    if is_digits(raw) and len(raw) <= 3:
        return int(raw)
    return "invalid"


@router.post("/programmes/{programme_id}/groups")
async def create_group_form(
    request: Request,
    ctx: HostOf,
    db: SessionDep,
    name: GroupName = "",
    capacity: CapacityField = "",
) -> Response:
    values = {"new_group_name": name, "new_group_capacity": capacity}
    size = _capacity(capacity)
    if size == "invalid":
        errors = {"new_group_capacity": "Enter the capacity as a whole number, or leave it empty."}
        return await render_roster(request, ctx, db, status_code=400, errors=errors, values=values)
    try:
        group = await create_group(
            db, programme=ctx.programme, actor=ctx.user, name=name, capacity=size
        )
    except GroupingError as exc:
        errors = {f"new_group_{exc.field}": exc.message}
        return await render_roster(request, ctx, db, status_code=400, errors=errors, values=values)
    return RedirectResponse(
        roster_url(ctx.programme.id, "group_created", f"group-{group.id}"), status_code=303
    )


@router.post("/programmes/{programme_id}/groups/{group_id}/settings")
async def group_settings_form(
    request: Request,
    ctx: HostOf,
    group: HostGroupOf,
    db: SessionDep,
    name: GroupName = "",
    capacity: CapacityField = "",
) -> Response:
    values = {f"name-{group.id}": name, f"capacity-{group.id}": capacity}
    size = _capacity(capacity)
    if size == "invalid":
        errors = {
            f"capacity-{group.id}": "Enter the capacity as a whole number, or leave it empty."
        }
        return await render_roster(request, ctx, db, status_code=400, errors=errors, values=values)
    try:
        await update_group(
            db, programme=ctx.programme, actor=ctx.user, group=group, name=name, capacity=size
        )
    except GroupingError as exc:
        errors = {f"{exc.field}-{group.id}": exc.message}
        return await render_roster(request, ctx, db, status_code=400, errors=errors, values=values)
    return RedirectResponse(
        roster_url(ctx.programme.id, "group_saved", f"group-{group.id}"), status_code=303
    )


@router.post("/programmes/{programme_id}/groups/{group_id}/facilitators")
async def add_facilitator_form(
    request: Request,
    ctx: HostOf,
    group: HostGroupOf,
    db: SessionDep,
    live: LiveDep,
    user_id: Annotated[str, Form(max_length=12)] = "",
) -> Response:
    raw = user_id.strip()
    field = f"facilitator-{group.id}"
    if not (is_digits(raw) and len(raw) <= 10):
        errors = {field: "Choose a facilitator from the list."}
        return await render_roster(request, ctx, db, status_code=400, errors=errors)
    try:
        await add_facilitator(
            db, live=live, programme=ctx.programme, actor=ctx.user, group=group, user_id=int(raw)
        )
    except GroupingError as exc:
        return await render_roster(request, ctx, db, status_code=400, errors={field: exc.message})
    return RedirectResponse(
        roster_url(ctx.programme.id, "facilitator_added", f"group-{group.id}"), status_code=303
    )


@router.post("/programmes/{programme_id}/groups/{group_id}/facilitators/{user_id}/remove")
async def remove_facilitator_form(
    ctx: HostOf, group: HostGroupOf, user_id: UserIdPath, db: SessionDep, live: LiveDep
) -> Response:
    await remove_facilitator(
        db, live=live, programme=ctx.programme, actor=ctx.user, group=group, user_id=user_id
    )
    return RedirectResponse(
        roster_url(ctx.programme.id, "facilitator_removed", f"group-{group.id}"), status_code=303
    )
