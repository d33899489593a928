"""Sign in with a password or an invitation link; sign out here or everywhere."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from starlette.responses import RedirectResponse, Response

from app import audit
from app.deps import CurrentUser, OptionalUser, PasswordsDep, SessionDep, SettingsDep, SignerDep
from app.live.access import access_changed
from app.live.deps import LiveDep
from app.models import Programme, User
from app.people.invitations import (
    LinkCheck,
    LinkState,
    check_invitation,
    link_refusal,
    use_invitation,
)
from app.people.signin import SignInRefused, password_sign_in
from app.security import SESSION_COOKIE
from app.sessions import end_session, read_claims, safe_next, session_user, sign_in, sign_out
from app.state import get_app_state
from app.templating import render

router = APIRouter(tags=["pages: sign-in"])

NextParam = Annotated[str, Query(max_length=500)]


def client_address(request: Request) -> str:
    """The address the request came from, as the server saw it. X-Forwarded-For is honoured
    only when it comes from a proxy named in FORWARDED_ALLOW_IPS, and then by the server
    (uvicorn) itself, before this is called: scripts/run-server decides."""
    return request.client.host if request.client else "unknown"


@router.get("/signin")
async def signin_page(request: Request, user: OptionalUser, next: NextParam = "/") -> Response:
    if user is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "auth/signin.html", {"next": safe_next(next), "errors": {}, "email": ""})


def _signin_form(
    request: Request,
    *,
    next: str,
    email: str,
    errors: dict[str, str],
    status: int,
    retry_after: int | None = None,
) -> Response:
    """The sign-in form again, with what went wrong beside its field."""
    response = render(
        request,
        "auth/signin.html",
        {"next": safe_next(next), "errors": errors, "email": email},
        status_code=status,
    )
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


@router.post("/signin")
async def signin(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    signer: SignerDep,
    passwords: PasswordsDep,
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=500)] = "/",
) -> Response:
    email = email.strip().lower()
    errors: dict[str, str] = {}
    if not email:
        errors["email"] = "Enter your e-mail address."
    if not password:
        errors["password"] = "Enter your password."
    if errors:
        return _signin_form(request, next=next, email=email, errors=errors, status=400)
    try:
        user = await password_sign_in(
            db,
            passwords=passwords,
            limits=get_app_state(request).signin_limits,
            address=client_address(request),
            email=email,
            password=password,
        )
    except SignInRefused as refused:
        return _signin_form(
            request,
            next=next,
            email=email,
            errors={refused.field: refused.message},
            status=refused.status,
            retry_after=refused.retry_after,
        )
    response = RedirectResponse(safe_next(next), status_code=303)
    sign_in(response, user=user, signer=signer, settings=settings)
    return response


async def _current_link_session(
    request: Request, *, db: SessionDep, settings: SettingsDep, signer: SignerDep, link: LinkCheck
) -> bool:
    """Whether this browser is already signed in with this very link (opened again)."""
    claims = read_claims(request.cookies.get(SESSION_COOKIE), signer=signer, settings=settings)
    if claims is None or link.invitation is None:
        return False
    if claims.invitation_id != link.invitation.id:
        return False
    return await session_user(db, claims) is not None


def _invalid_link(request: Request) -> Response:
    return render(
        request,
        "auth/invite_invalid.html",
        {"title": "This invitation link does not work"},
        status_code=400,
    )


def _used_link(request: Request) -> Response:
    return render(
        request,
        "auth/invite_used.html",
        {"title": "This invitation link has already been used"},
        status_code=410,
    )


def _refused_link(request: Request, message: str) -> Response:
    return render(
        request,
        "auth/invite_refused.html",
        {"title": "This link cannot sign you in", "message": message},
        status_code=403,
    )


@router.get("/invite/{token}")
async def invite_page(
    request: Request, token: str, db: SessionDep, settings: SettingsDep, signer: SignerDep
) -> Response:
    """The link's landing page: who it is for and a button to continue. Opening the page
    uses nothing up, so e-mail scanners that fetch links do not spend them; the button does."""
    link = await check_invitation(
        db, signer=signer, token=token, max_age_days=settings.invite_max_age_days
    )
    if link.state is LinkState.INVALID or link.invitation is None:
        return _invalid_link(request)
    programme_id = link.invitation.programme_id
    if await _current_link_session(request, db=db, settings=settings, signer=signer, link=link):
        return RedirectResponse(f"/programmes/{programme_id}", status_code=303)
    if link.state is LinkState.USED:
        return _used_link(request)
    person = await db.get(User, link.invitation.user_id)
    programme = await db.get(Programme, programme_id)
    assert person is not None and programme is not None  # foreign keys cascade
    refusal = await link_refusal(db, user=person, programme_id=programme_id)
    if refusal is not None:
        return _refused_link(request, refusal.for_person())
    return render(
        request,
        "auth/invite_welcome.html",
        {
            "title": f"Welcome to {programme.title}",
            "person": person,
            "programme": programme,
            "token": token,
        },
    )


@router.post("/invite/{token}")
async def accept_invite(
    request: Request, token: str, db: SessionDep, settings: SettingsDep, signer: SignerDep
) -> Response:
    link = await check_invitation(
        db, signer=signer, token=token, max_age_days=settings.invite_max_age_days
    )
    if link.state is LinkState.INVALID or link.invitation is None:
        return _invalid_link(request)
    invitation = link.invitation
    if await _current_link_session(request, db=db, settings=settings, signer=signer, link=link):
        return RedirectResponse(f"/programmes/{invitation.programme_id}", status_code=303)
    if link.state is LinkState.USED:
        return _used_link(request)
    user = await db.get(User, invitation.user_id)
    assert user is not None  # the foreign key cascades
    # Checked again now: the account may have gained a password or another programme since
    # the link was made.
    refusal = await link_refusal(db, user=user, programme_id=invitation.programme_id)
    if refusal is not None:
        return _refused_link(request, refusal.for_person())
    if not await use_invitation(db, invitation=invitation):
        await db.rollback()
        return _used_link(request)
    audit.record(
        db,
        actor=user,
        action="auth.invite_sign_in",
        programme_id=invitation.programme_id,
        target=f"invitation:{invitation.id}",
    )
    await db.commit()
    # First visit goes to the profile so people can set name, pronouns and access needs.
    first_time = not user.pronouns and not user.name_pronunciation
    target = (
        f"/profile?welcome=1&next=/programmes/{invitation.programme_id}"
        if first_time
        else (f"/programmes/{invitation.programme_id}")
    )
    response = RedirectResponse(target, status_code=303)
    sign_in(response, user=user, signer=signer, settings=settings, invitation_id=invitation.id)
    return response


@router.post("/signout")
async def signout(
    request: Request, db: SessionDep, live: LiveDep, settings: SettingsDep, signer: SignerDep
) -> Response:
    """Ends this browser's session on the server too, so a copy of its cookie stops working."""
    claims = read_claims(request.cookies.get(SESSION_COOKIE), signer=signer, settings=settings)
    if claims is not None:
        await end_session(db, claims=claims, settings=settings)
        await db.commit()
        # Live connections opened with this session close; the person's others stay.
        await access_changed(live, user_ids=[claims.user_id], reason="signed out")
    response = RedirectResponse("/signin?signed_out=1", status_code=303)
    sign_out(response, settings=settings)
    return response


@router.post("/signout-everywhere")
async def signout_everywhere(
    user: CurrentUser, db: SessionDep, live: LiveDep, settings: SettingsDep
) -> Response:
    user.auth_epoch += 1
    audit.record(db, actor=user, action="auth.sign_out_everywhere", target=f"user:{user.id}")
    await db.commit()
    await access_changed(live, user_ids=[user.id], reason="signed out everywhere")
    response = RedirectResponse("/signin?signed_out=everywhere", status_code=303)
    sign_out(response, settings=settings)
    return response
