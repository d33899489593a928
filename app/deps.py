"""Dependencies routes receive through `Annotated`: database, settings, who is asking, and
what they may do. They adapt the domain's checks (`app.access`, `app.sessions`) to
FastAPI; a refusal they raise is answered by the one handler in `app.errors`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from app.access import (
    GroupContext,
    ProgrammeContext,
    group_context,
    group_in_programme,
    load_programme_context,
    session_in_programme,
)
from app.config import Settings
from app.errors import NotSignedIn
from app.models import Group, Membership, ProgrammeSession, Role, User
from app.refusals import NotAllowed, NotFound
from app.security import (
    CSRF_COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    PasswordWorker,
    Signer,
)
from app.sessions import user_from_cookie
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
        raise NotAllowed(
            "This form has expired or was sent from another site. "
            "Please reload the page and try again."
        )


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
        raise NotAllowed("Only administrators can do this.")
    return user


AdminUser = Annotated[User, Depends(admin_user)]


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
        ctx.require_role(*allowed)
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
    return await session_in_programme(db, ctx, session_id)


SessionOf = Annotated[ProgrammeSession, Depends(get_session_in_programme)]


async def get_session_for_host(
    ctx: HostOf, session_id: SessionIdPath, db: SessionDep
) -> ProgrammeSession:
    """The path's session, for its programme's hosts (non-members 404, other members 403)."""
    return await get_session_in_programme(ctx, session_id, db)


HostSessionOf = Annotated[ProgrammeSession, Depends(get_session_for_host)]


async def group_access(ctx: MemberOf, group_id: GroupIdPath, db: SessionDep) -> GroupContext:
    """A group's private space: its members, its facilitators and the programme's hosts."""
    return await group_context(db, ctx, group_id)


GroupOf = Annotated[GroupContext, Depends(group_access)]


MembershipIdPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="Membership id")]
UserIdPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="User id")]


async def get_membership_for_host(
    ctx: HostOf, membership_id: MembershipIdPath, db: SessionDep
) -> Membership:
    """The path's membership, for its programme's hosts (non-members 404, other members 403)."""
    membership = await db.get(Membership, membership_id)
    if membership is None or membership.programme_id != ctx.programme.id:
        raise NotFound("We could not find that person in this programme.")
    return membership


HostMembershipOf = Annotated[Membership, Depends(get_membership_for_host)]


async def get_group_for_host(ctx: HostOf, group_id: GroupIdPath, db: SessionDep) -> Group:
    """The path's group, for its programme's hosts (non-members 404, other members 403)."""
    return await group_in_programme(db, ctx, group_id)


HostGroupOf = Annotated[Group, Depends(get_group_for_host)]
