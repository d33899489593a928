"""Dependencies routes receive through `Annotated`: database, settings, who is asking, and
what they may do."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Path, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from app.config import Settings
from app.errors import NotSignedIn
from app.models import Group, GroupFacilitator, Membership, Programme, ProgrammeSession, Role, User
from app.security import (
    CSRF_COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    PasswordWorker,
    Signer,
)
from app.sessions import read_claims, session_user
from app.state import get_app_state

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


# Dependencies shared by pages and WebSockets take an HTTPConnection.


def get_settings(request: HTTPConnection) -> Settings:
    settings: Settings = get_app_state(request).settings
    return settings


def get_signer(request: HTTPConnection) -> Signer:
    signer: Signer = get_app_state(request).signer
    return signer


async def get_db(request: HTTPConnection) -> AsyncIterator[AsyncSession]:
    async with get_app_state(request).sessionmaker() as session:
        yield session


def get_passwords(request: HTTPConnection) -> PasswordWorker:
    passwords: PasswordWorker = get_app_state(request).passwords
    return passwords


SettingsDep = Annotated[Settings, Depends(get_settings)]
PasswordsDep = Annotated[PasswordWorker, Depends(get_passwords)]
SignerDep = Annotated[Signer, Depends(get_signer)]
SessionDep = Annotated[AsyncSession, Depends(get_db)]


async def verify_csrf(request: Request) -> None:
    """Every state-changing request must carry the token from the page (form field or header)."""
    if request.method in SAFE_METHODS:
        return
    signer: Signer = get_app_state(request).signer
    cookie = request.cookies.get(CSRF_COOKIE)
    token = request.headers.get(CSRF_HEADER)
    if token is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            token = value if isinstance(value, str) else None
    if not signer.csrf_valid(cookie, token):
        raise HTTPException(
            status_code=403,
            detail="This form has expired or was sent from another site. "
            "Please reload the page and try again.",
        )


async def user_from_cookie(
    db: AsyncSession, *, signer: Signer, settings: Settings, cookie: str | None
) -> User | None:
    """The person a session cookie signs in, while that session lasts."""
    claims = read_claims(cookie, signer=signer, settings=settings)
    if claims is None:
        return None
    return await session_user(db, claims)


async def optional_user(
    request: HTTPConnection, db: SessionDep, settings: SettingsDep
) -> User | None:
    if hasattr(request.state, "user"):
        cached: User | None = request.state.user
        return cached
    user = await user_from_cookie(
        db,
        signer=get_app_state(request).signer,
        settings=settings,
        cookie=request.cookies.get(SESSION_COOKIE),
    )
    request.state.user = user
    return user


async def current_user(user: Annotated[User | None, Depends(optional_user)]) -> User:
    if user is None:
        raise NotSignedIn()
    return user


OptionalUser = Annotated[User | None, Depends(optional_user)]
CurrentUser = Annotated[User, Depends(current_user)]


async def admin_user(user: CurrentUser) -> User:
    if not user.is_admin:
        raise HTTPException(status_code=403, detail="Only administrators can do this.")
    return user


AdminUser = Annotated[User, Depends(admin_user)]


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


NOT_FOUND = "We could not find that programme, or you are not part of it."


async def load_programme_context(
    db: AsyncSession, user: User, programme_id: int
) -> ProgrammeContext:
    programme = await db.get(Programme, programme_id)
    if programme is None:
        raise HTTPException(status_code=404, detail=NOT_FOUND)
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
        # Not revealing whether a programme exists to people outside it.
        raise HTTPException(status_code=404, detail=NOT_FOUND)
    return ProgrammeContext(programme=programme, user=user, membership=membership, role=role)


ProgrammeIdPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="Programme id")]
SessionIdPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="Session id")]
GroupIdPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="Group id")]
PaperIdPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="Paper id")]

ContextDependency = Callable[..., Coroutine[Any, Any, ProgrammeContext]]


def programme_role(*allowed: Role) -> ContextDependency:
    """A dependency that admits members of the path's programme holding one of `allowed`
    (every member when none is given)."""

    async def dependency(
        programme_id: ProgrammeIdPath, user: CurrentUser, db: SessionDep
    ) -> ProgrammeContext:
        ctx = await load_programme_context(db, user, programme_id)
        if allowed and ctx.role not in allowed:
            names = " or ".join(r.label.lower() for r in allowed)
            raise HTTPException(
                status_code=403, detail=f"Only the programme's {names} can do this."
            )
        return ctx

    return dependency


MemberOf = Annotated[ProgrammeContext, Depends(programme_role())]
HostOf = Annotated[ProgrammeContext, Depends(programme_role(Role.HOST))]
StaffOf = Annotated[
    ProgrammeContext,
    Depends(programme_role(Role.HOST, Role.FACILITATOR, Role.IT_SUPPORT)),
]


async def get_session_in_programme(
    ctx: MemberOf, session_id: SessionIdPath, db: SessionDep
) -> ProgrammeSession:
    session = await db.get(ProgrammeSession, session_id)
    if session is None or session.programme_id != ctx.programme.id:
        raise HTTPException(status_code=404, detail="We could not find that session.")
    return session


SessionOf = Annotated[ProgrammeSession, Depends(get_session_in_programme)]


async def get_session_for_host(
    ctx: HostOf, session_id: SessionIdPath, db: SessionDep
) -> ProgrammeSession:
    """The path's session, for its programme's hosts (non-members 404, other members 403)."""
    return await get_session_in_programme(ctx, session_id, db)


HostSessionOf = Annotated[ProgrammeSession, Depends(get_session_for_host)]


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


async def group_access(ctx: MemberOf, group_id: GroupIdPath, db: SessionDep) -> GroupContext:
    """A group's private space: its members, its facilitators and the programme's hosts."""
    group = await db.get(Group, group_id)
    if group is None or group.programme_id != ctx.programme.id:
        raise HTTPException(status_code=404, detail="We could not find that group.")
    is_facilitator = await facilitates(db, user_id=ctx.user.id, group_id=group.id)
    is_member = ctx.membership is not None and ctx.membership.group_id == group.id
    if not (ctx.is_host or is_facilitator or is_member):
        raise HTTPException(
            status_code=403, detail="This group's space is open to its members only."
        )
    return GroupContext(ctx=ctx, group=group, is_facilitator=is_facilitator)


GroupOf = Annotated[GroupContext, Depends(group_access)]


MembershipIdPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="Membership id")]
UserIdPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="User id")]


async def get_membership_for_host(
    ctx: HostOf, membership_id: MembershipIdPath, db: SessionDep
) -> Membership:
    """The path's membership, for its programme's hosts (non-members 404, other members 403)."""
    membership = await db.get(Membership, membership_id)
    if membership is None or membership.programme_id != ctx.programme.id:
        raise HTTPException(
            status_code=404, detail="We could not find that person in this programme."
        )
    return membership


HostMembershipOf = Annotated[Membership, Depends(get_membership_for_host)]


async def get_group_for_host(ctx: HostOf, group_id: GroupIdPath, db: SessionDep) -> Group:
    """The path's group, for its programme's hosts (non-members 404, other members 403)."""
    group = await db.get(Group, group_id)
    if group is None or group.programme_id != ctx.programme.id:
        raise HTTPException(status_code=404, detail="We could not find that group.")
    return group


HostGroupOf = Annotated[Group, Depends(get_group_for_host)]
