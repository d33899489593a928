"""Sign in with a password or an invitation link; sign out here or everywhere."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from sqlalchemy import func, select
from starlette.responses import RedirectResponse, Response

from app.deps import CurrentUser, OptionalUser, SessionDep, SettingsDep, SignerDep
from app.models import User
from app.security import verify_password
from app.services import audit
from app.services.invitations import redeem_invitation
from app.sessions import safe_next, sign_in, sign_out
from app.templating import render

router = APIRouter(tags=["pages: sign-in"])

NextParam = Annotated[str, Query(max_length=500)]


@router.get("/signin")
async def signin_page(request: Request, user: OptionalUser, next: NextParam = "/") -> Response:
    if user is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "auth/signin.html", {"next": safe_next(next), "errors": {}, "email": ""})


@router.post("/signin")
async def signin(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    signer: SignerDep,
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
    limiter = request.state.login_limiter
    client = request.client.host if request.client else "unknown"
    if not errors and not limiter.allow(f"{client}|{email}"):
        wait = limiter.retry_after(f"{client}|{email}")
        errors["email"] = f"Too many sign-in attempts. Please wait {wait} seconds and try again."
        return render(
            request,
            "auth/signin.html",
            {"next": safe_next(next), "errors": errors, "email": email},
            status_code=429,
        )
    user = None
    if not errors:
        user = await db.scalar(select(User).where(func.lower(User.email) == email))
        if user is None or not verify_password(password, user.password_hash):
            user = None
            errors["password"] = "That e-mail address and password do not match an account."
    if user is None:
        return render(
            request,
            "auth/signin.html",
            {"next": safe_next(next), "errors": errors, "email": email},
            status_code=400 if errors else 200,
        )
    audit.record(db, actor=user, action="auth.password_sign_in", target=f"user:{user.id}")
    await db.commit()
    response = RedirectResponse(safe_next(next), status_code=303)
    sign_in(response, user=user, signer=signer, settings=settings)
    return response


@router.get("/invite/{token}")
async def accept_invite(
    request: Request, token: str, db: SessionDep, settings: SettingsDep, signer: SignerDep
) -> Response:
    invitation = await redeem_invitation(
        db, signer=signer, token=token, max_age_days=settings.invite_max_age_days
    )
    if invitation is None:
        return render(
            request,
            "auth/invite_invalid.html",
            {"title": "This invitation link does not work"},
            status_code=400,
        )
    user = await db.get(User, invitation.user_id)
    assert user is not None  # the foreign key cascades
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
    sign_in(response, user=user, signer=signer, settings=settings)
    return response


@router.post("/signout")
async def signout(settings: SettingsDep) -> Response:
    response = RedirectResponse("/signin?signed_out=1", status_code=303)
    sign_out(response, settings=settings)
    return response


@router.post("/signout-everywhere")
async def signout_everywhere(user: CurrentUser, db: SessionDep, settings: SettingsDep) -> Response:
    user.auth_epoch += 1
    audit.record(db, actor=user, action="auth.sign_out_everywhere", target=f"user:{user.id}")
    await db.commit()
    response = RedirectResponse("/signin?signed_out=everywhere", status_code=303)
    sign_out(response, settings=settings)
    return response
