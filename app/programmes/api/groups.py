"""Groups and members: list and manage groups, their facilitators, and who is in which group."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from app.deps import (
    GroupOf,
    HostGroupOf,
    HostMembershipOf,
    HostOf,
    MemberOf,
    SessionDep,
    StaffOf,
    UserIdPath,
)
from app.live.deps import LiveDep
from app.models import Role
from app.programmes.auto_assign import AssignSummary, auto_assign
from app.programmes.facilitation import add_facilitator, remove_facilitator
from app.programmes.grouping import (
    MAX_CAPACITY,
    MAX_GROUP_NAME,
    MIN_CAPACITY,
    GroupingError,
    create_group,
    get_group,
    group_size,
    update_group,
)
from app.programmes.placement import move_member, set_role
from app.programmes.roster_views import (
    AccessNeeds,
    GroupView,
    MemberView,
    facilitated_group_ids,
    group_page,
    list_groups,
    list_members,
)

router = APIRouter(tags=["groups"])

STAFF_ROLES = (Role.HOST, Role.FACILITATOR, Role.IT_SUPPORT)
DbId = Annotated[int, Field(ge=1, le=2**31 - 1)]


class Problem(BaseModel):
    detail: str
    errors: list[dict[str, str]] = []


def problem(message: str, field: str, status: int = 422) -> JSONResponse:
    return JSONResponse(
        {"detail": message, "errors": [{"field": field, "message": message}]}, status_code=status
    )


class PersonOut(BaseModel):
    """A person as the API shows them: read from the roster's Person view, field for field."""

    model_config = ConfigDict(from_attributes=True)

    user_id: int
    name: str
    pronouns: str
    name_pronunciation: str


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


class AccessNeedsOut(BaseModel):
    captions_on: bool
    large_text: bool
    high_contrast: bool
    reduced_motion: bool
    low_bandwidth: bool
    screen_reader: bool
    notes: str

    @classmethod
    def of(cls, needs: AccessNeeds) -> AccessNeedsOut:
        return cls(
            captions_on=needs.captions_on,
            large_text=needs.large_text,
            high_contrast=needs.high_contrast,
            reduced_motion=needs.reduced_motion,
            low_bandwidth=needs.low_bandwidth,
            screen_reader=needs.screen_reader,
            notes=needs.notes,
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


class MemberOut(BaseModel):
    membership_id: int
    user_id: int
    name: str
    pronouns: str
    email: str | None = Field(description="Only for hosts")
    role: Role
    group_id: int | None
    group_name: str | None
    facilitator_of: list[int]
    access_needs: AccessNeedsOut | None = Field(
        description="Hosts see everyone's; facilitators see those of the groups they facilitate"
    )


class MemberPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    group_id: DbId | None = Field(default=None, description="null takes the person out of groups")
    role: Role | None = None


class AutoAssignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["fill", "reshuffle"] = Field(
        description="fill: keep groups and place only the unassigned; reshuffle: place everyone"
    )
    assign_facilitators: bool = True


class GroupSizeOut(BaseModel):
    name: str
    size: int


class AutoAssignOut(BaseModel):
    mode: Literal["fill", "reshuffle"]
    participants: int
    placed: int
    groups_created: list[str]
    facilitators_assigned: int
    sizes: list[GroupSizeOut]

    @classmethod
    def of(cls, s: AssignSummary) -> AutoAssignOut:
        return cls(
            mode=s.mode,
            participants=s.participants,
            placed=s.placed,
            groups_created=s.groups_created,
            facilitators_assigned=s.facilitators_assigned,
            sizes=[GroupSizeOut(name=n, size=size) for n, size in s.sizes],
        )


async def _group_out(db: Any, programme: Any, group_id: int) -> GroupOut:
    return GroupOut.of(
        next(g for g in await list_groups(db, programme=programme) if g.id == group_id)
    )


REFUSED: dict[int | str, dict[str, Any]] = {
    422: {"model": Problem, "description": "The change cannot be made"}
}


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


def _member_out(m: MemberView, *, email: bool, access: bool) -> MemberOut:
    return MemberOut(
        membership_id=m.membership_id,
        user_id=m.person.user_id,
        name=m.person.name,
        pronouns=m.person.pronouns,
        email=m.email if email else None,
        role=m.role,
        group_id=m.group_id,
        group_name=m.group_name,
        facilitator_of=[gid for gid, _ in m.facilitator_of],
        access_needs=AccessNeedsOut.of(m.access) if access else None,
    )


@router.get("/programmes/{programme_id}/members", response_model=list[MemberOut])
async def api_list_members(ctx: StaffOf, db: SessionDep) -> list[MemberOut]:
    """Everyone in the programme, for its staff. Hosts see e-mail addresses and all access
    needs; facilitators see the access needs of the groups they facilitate; IT support sees
    neither."""
    members = await list_members(db, programme=ctx.programme)
    mine: set[int] = set()
    if ctx.role is Role.FACILITATOR:
        mine = await facilitated_group_ids(db, programme=ctx.programme, user_id=ctx.user.id)
    return [
        _member_out(
            m,
            email=ctx.is_host,
            access=ctx.is_host or (m.group_id is not None and m.group_id in mine),
        )
        for m in members
    ]


@router.patch(
    "/programmes/{programme_id}/members/{membership_id}",
    response_model=MemberOut,
    responses=REFUSED,
)
async def api_update_member(
    body: MemberPatch, ctx: HostOf, membership: HostMembershipOf, db: SessionDep, live: LiveDep
) -> Any:
    """Change someone's role and/or group. `group_id: null` takes them out of any group."""
    group = None
    moving = "group_id" in body.model_fields_set
    if moving and body.group_id is not None:
        group = await get_group(db, programme_id=ctx.programme.id, group_id=body.group_id)
        if group is None:
            return problem("There is no group with that id in this programme.", "group_id")
        # Checked before the role changes, so a refused move changes nothing.
        capacity = group.effective_capacity(ctx.programme)
        if membership.group_id != group.id and await group_size(db, group_id=group.id) >= capacity:
            return problem(f'"{group.name}" is full ({capacity} of {capacity} places).', "group_id")
        if (body.role or Role(membership.role)) is not Role.PARTICIPANT:
            return problem("Only participants are placed in groups.", "group_id")
    try:
        if body.role is not None:
            await set_role(
                db,
                live=live,
                programme=ctx.programme,
                actor=ctx.user,
                membership=membership,
                role=body.role,
            )
        if moving:
            await move_member(
                db,
                live=live,
                programme=ctx.programme,
                actor=ctx.user,
                membership=membership,
                group=group,
            )
    except GroupingError as exc:
        return problem(exc.message, "role" if exc.field == "role" else "group_id")
    member = next(
        m
        for m in await list_members(db, programme=ctx.programme)
        if m.membership_id == membership.id
    )
    return _member_out(member, email=True, access=True)


@router.post("/programmes/{programme_id}/auto-assign", response_model=AutoAssignOut)
async def api_auto_assign(
    body: AutoAssignIn, ctx: HostOf, db: SessionDep, live: LiveDep
) -> AutoAssignOut:
    """Place participants in balanced groups of at most the capacity (see the roster page)."""
    summary = await auto_assign(
        db,
        programme=ctx.programme,
        actor=ctx.user,
        mode=body.mode,
        assign_facilitators=body.assign_facilitators,
        live=live,
    )
    return AutoAssignOut.of(summary)
