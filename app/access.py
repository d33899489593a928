"""Who may do what in a programme: the asker's role there, and their access to a group's
private space. Plain domain checks that raise refusals (`app.refusals`); `app.deps` adapts
them to FastAPI dependencies, and live connections, consoles and services call them
directly."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Group, GroupFacilitator, Membership, Programme, ProgrammeSession, Role, User
from app.refusals import NotAllowed, NotFound

PROGRAMME_NOT_FOUND = "We could not find that programme, or you are not part of it."
SESSION_NOT_FOUND = "We could not find that session."
GROUP_NOT_FOUND = "We could not find that group."


@dataclass
class ProgrammeContext:
    """A programme together with who is asking and what role they hold in it."""

    programme: Programme
    user: User
    membership: Membership | None
    role: Role  # administrators who are not members act as hosts

    @property
    def is_host(self) -> bool:
        return self.role is Role.HOST

    @property
    def can_manage(self) -> bool:
        return self.role is Role.HOST

    @property
    def can_code_themes(self) -> bool:
        """Hosts and facilitators work on the codebook of themes."""
        return self.role in (Role.HOST, Role.FACILITATOR)

    @property
    def sees_all_groups(self) -> bool:
        """Hosts, facilitators and IT support see every group, not only their own."""
        return self.role in (Role.HOST, Role.FACILITATOR, Role.IT_SUPPORT)

    def require_role(self, *allowed: Role) -> None:
        """Refuses (403) a member whose role is not one of `allowed`."""
        if allowed and self.role not in allowed:
            names = " or ".join(r.label.lower() for r in allowed)
            raise NotAllowed(f"Only the programme's {names} can do this.")


async def load_programme_context(
    db: AsyncSession, user: User, programme_id: int
) -> ProgrammeContext:
    """The person's place in the programme; NotFound for a programme they are not part of
    (whether it exists is not revealed to people outside it)."""
    programme = await db.get(Programme, programme_id)
    if programme is None:
        raise NotFound(PROGRAMME_NOT_FOUND)
    membership = await db.scalar(
        select(Membership).where(
            Membership.user_id == user.id, Membership.programme_id == programme_id
        )
    )
    if membership is not None and not membership.is_active:
        # Invited but not accepted yet: no access until the person says yes.
        membership = None
    if membership is not None:
        role = Role(membership.role)
        if user.is_admin:
            role = Role.HOST
    elif user.is_admin:
        role = Role.HOST
    else:
        raise NotFound(PROGRAMME_NOT_FOUND)
    return ProgrammeContext(programme=programme, user=user, membership=membership, role=role)


async def session_in_programme(
    db: AsyncSession, ctx: ProgrammeContext, session_id: int
) -> ProgrammeSession:
    session = await db.get(ProgrammeSession, session_id)
    if session is None or session.programme_id != ctx.programme.id:
        raise NotFound(SESSION_NOT_FOUND)
    return session


async def group_in_programme(db: AsyncSession, ctx: ProgrammeContext, group_id: int) -> Group:
    group = await db.get(Group, group_id)
    if group is None or group.programme_id != ctx.programme.id:
        raise NotFound(GROUP_NOT_FOUND)
    return group


async def facilitates(db: AsyncSession, *, user_id: int, group_id: int) -> bool:
    row = await db.get(GroupFacilitator, (group_id, user_id))
    return row is not None


@dataclass
class GroupContext:
    ctx: ProgrammeContext
    group: Group
    is_facilitator: bool

    @property
    def can_moderate(self) -> bool:
        return self.is_facilitator or self.ctx.is_host


async def group_context(db: AsyncSession, ctx: ProgrammeContext, group_id: int) -> GroupContext:
    """A group's private space: its members, its facilitators and the programme's hosts."""
    group = await group_in_programme(db, ctx, group_id)
    is_facilitator = await facilitates(db, user_id=ctx.user.id, group_id=group.id)
    is_member = ctx.membership is not None and ctx.membership.group_id == group.id
    if not (ctx.is_host or is_facilitator or is_member):
        raise NotAllowed("This group's space is open to its members only.")
    return GroupContext(ctx=ctx, group=group, is_facilitator=is_facilitator)
