"""Members: everyone in a programme for its staff, a member's role and group (hosts), and
auto-assign into balanced groups."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from app.deps import HostMembershipOf, HostOf, SessionDep, StaffOf
from app.live.deps import LiveDep
from app.models import Role
from app.programmes.auto_assign import AssignSummary, auto_assign
from app.programmes.grouping import GroupingError, get_group, group_size
from app.programmes.placement import move_member, set_role
from app.programmes.roster_json import REFUSED, AccessNeedsOut, problem
from app.programmes.roster_views import MemberView, facilitated_group_ids, list_members

router = APIRouter(tags=["groups"])

DbId = Annotated[int, Field(ge=1, le=2**31 - 1)]


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
