"""Groups: list them, see one with its members, and (hosts) create, rename and size them and
choose their facilitators. Who is in which group, and auto-assign, are in api/members.py."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from app.deps import GroupOf, HostGroupOf, HostOf, MemberOf, SessionDep, UserIdPath
from app.live.deps import LiveDep
from app.models import Role
from app.programmes.facilitation import add_facilitator, remove_facilitator
from app.programmes.grouping import (
    MAX_CAPACITY,
    MAX_GROUP_NAME,
    MIN_CAPACITY,
    GroupingError,
    create_group,
    update_group,
)
from app.programmes.roster_json import REFUSED, AccessNeedsOut, PersonOut, problem
from app.programmes.roster_views import GroupView, group_page, list_groups

router = APIRouter(tags=["groups"])

STAFF_ROLES = (Role.HOST, Role.FACILITATOR, Role.IT_SUPPORT)


class GroupOut(BaseModel):
    id: int
    name: str
    position: int
    capacity: int | None = Field(description="The group's own capacity; null: the programme's")
    effective_capacity: int
    size: int
    facilitators: list[PersonOut]

    @classmethod
    def of(cls, group: GroupView) -> GroupOut:
        return cls(
            id=group.id,
            name=group.name,
            position=group.position,
            capacity=group.capacity,
            effective_capacity=group.effective_capacity,
            size=group.size,
            facilitators=[PersonOut.model_validate(p) for p in group.facilitators],
        )


class GroupMemberOut(PersonOut):
    access_needs: AccessNeedsOut | None = Field(
        description="Only for the group's facilitators and the programme's hosts"
    )


class GroupDetailOut(GroupOut):
    members: list[GroupMemberOut]


class GroupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=MAX_GROUP_NAME)
    capacity: int | None = Field(default=None, ge=MIN_CAPACITY, le=MAX_CAPACITY)


class GroupPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=MAX_GROUP_NAME)
    capacity: int | None = Field(
        default=None,
        ge=MIN_CAPACITY,
        le=MAX_CAPACITY,
        description="null returns the group to the programme's capacity",
    )


async def _group_out(db: Any, programme: Any, group_id: int) -> GroupOut:
    return GroupOut.of(
        next(g for g in await list_groups(db, programme=programme) if g.id == group_id)
    )


@router.get("/programmes/{programme_id}/groups", response_model=list[GroupOut])
async def api_list_groups(ctx: MemberOf, db: SessionDep) -> list[GroupOut]:
    """Staff see every group; anyone else sees only their own group (if they have one)."""
    groups = await list_groups(db, programme=ctx.programme)
    if ctx.role not in STAFF_ROLES:
        own = ctx.membership.group_id if ctx.membership else None
        groups = [g for g in groups if g.id == own]
    return [GroupOut.of(g) for g in groups]


@router.post(
    "/programmes/{programme_id}/groups",
    response_model=GroupOut,
    status_code=201,
    responses=REFUSED,
)
async def api_create_group(body: GroupIn, ctx: HostOf, db: SessionDep) -> Any:
    try:
        group = await create_group(
            db, programme=ctx.programme, actor=ctx.user, name=body.name, capacity=body.capacity
        )
    except GroupingError as exc:
        return problem(exc.message, exc.field)
    return await _group_out(db, ctx.programme, group.id)


@router.get("/programmes/{programme_id}/groups/{group_id}", response_model=GroupDetailOut)
async def api_group(access: GroupOf, db: SessionDep) -> GroupDetailOut:
    """A group's facilitators and members, for its members, facilitators and hosts. Access
    needs are included for the group's facilitators and the hosts."""
    page = await group_page(db, programme=access.ctx.programme, group_id=access.group.id)
    members = [
        GroupMemberOut(
            **PersonOut.model_validate(m.person).model_dump(),
            access_needs=AccessNeedsOut.of(m.access) if access.can_moderate else None,
        )
        for m in page.members
    ]
    return GroupDetailOut(**GroupOut.of(page.group).model_dump(), members=members)


@router.patch(
    "/programmes/{programme_id}/groups/{group_id}", response_model=GroupOut, responses=REFUSED
)
async def api_update_group(
    body: GroupPatch, ctx: HostOf, group: HostGroupOf, db: SessionDep
) -> Any:
    try:
        await update_group(
            db,
            programme=ctx.programme,
            actor=ctx.user,
            group=group,
            name=body.name,
            capacity=body.capacity if "capacity" in body.model_fields_set else "keep",
        )
    except GroupingError as exc:
        return problem(exc.message, exc.field)
    return await _group_out(db, ctx.programme, group.id)


@router.put(
    "/programmes/{programme_id}/groups/{group_id}/facilitators/{user_id}",
    response_model=GroupOut,
    responses=REFUSED,
)
async def api_add_facilitator(
    user_id: UserIdPath, ctx: HostOf, group: HostGroupOf, db: SessionDep, live: LiveDep
) -> Any:
    """Make a facilitator or host of the programme a facilitator of the group (idempotent)."""
    try:
        await add_facilitator(
            db, live=live, programme=ctx.programme, actor=ctx.user, group=group, user_id=user_id
        )
    except GroupingError as exc:
        return problem(exc.message, "user_id")
    return await _group_out(db, ctx.programme, group.id)


@router.delete(
    "/programmes/{programme_id}/groups/{group_id}/facilitators/{user_id}",
    response_model=GroupOut,
)
async def api_remove_facilitator(
    user_id: UserIdPath, ctx: HostOf, group: HostGroupOf, db: SessionDep, live: LiveDep
) -> GroupOut:
    """Stop someone facilitating the group (idempotent)."""
    await remove_facilitator(
        db, live=live, programme=ctx.programme, actor=ctx.user, group=group, user_id=user_id
    )
    return await _group_out(db, ctx.programme, group.id)
