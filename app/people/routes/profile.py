"""Profile and access needs, edited by the person themselves."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from starlette.responses import RedirectResponse, Response

from app.deps import CurrentUser, PasswordsDep, SessionDep, SettingsDep, SignerDep
from app.live.access import access_changed
from app.live.deps import LiveDep
from app.people.profile import (
    ACCESS_NEEDS,
    ProfileChanges,
    ProfileError,
    change_password,
    update_profile,
)
from app.sessions import safe_next, sign_in
from app.templating import render

router = APIRouter(tags=["pages: profile"])

# Generous transport limits; the service gives the precise, friendly ones.
Text = Annotated[str, Form(max_length=2000)]
Check = Annotated[str | None, Form(max_length=10)]


def _page(request: Request, user, **ctx) -> Response:  # type: ignore[no-untyped-def]
    status = 400 if ctx.get("errors") or ctx.get("password_errors") else 200
    context = {
        "title": "Profile and access needs",
        "access_needs": ACCESS_NEEDS,
        "errors": {},
        "password_errors": {},
        "values": user,
        "next": "",
        **ctx,
    }
    return render(request, "profile.html", context, status_code=status)


@router.get("/profile")
async def profile_page(
    request: Request,
    user: CurrentUser,
    welcome: Annotated[str | None, Query(max_length=5)] = None,
    next: Annotated[str, Query(max_length=500)] = "",
    saved: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    flash = {"1": ["Your profile has been saved."], "password": ["Your password has been changed."]}
    return _page(
        request,
        user,
        welcome=bool(welcome),
        next=safe_next(next) if next else "",
        flash_messages=flash.get(saved or "", []),
    )


@router.post("/profile")
async def save_profile(
    request: Request,
    user: CurrentUser,
    db: SessionDep,
    display_name: Text = "",
    pronouns: Text = "",
    name_pronunciation: Text = "",
    access_notes: Text = "",
    captions_on: Check = None,
    large_text: Check = None,
    high_contrast: Check = None,
    reduced_motion: Check = None,
    low_bandwidth: Check = None,
    screen_reader: Check = None,
    next: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    changes = ProfileChanges(
        display_name=display_name,
        pronouns=pronouns,
        name_pronunciation=name_pronunciation,
        access_notes=access_notes,
        captions_on=captions_on is not None,
        large_text=large_text is not None,
        high_contrast=high_contrast is not None,
        reduced_motion=reduced_motion is not None,
        low_bandwidth=low_bandwidth is not None,
        screen_reader=screen_reader is not None,
    )
    try:
        await update_profile(db, user=user, changes=changes)
    except ProfileError as exc:
        return _page(
            request, user, errors=exc.errors, values=changes, next=safe_next(next) if next else ""
        )
    target = safe_next(next) if next else "/profile?saved=1"
    return RedirectResponse(target, status_code=303)


@router.post("/profile/password")
async def save_password(
    request: Request,
    user: CurrentUser,
    db: SessionDep,
    settings: SettingsDep,
    signer: SignerDep,
    passwords: PasswordsDep,
    live: LiveDep,
    current_password: Annotated[str, Form(max_length=200)] = "",
    new_password: Annotated[str, Form(max_length=1000)] = "",
    confirm_password: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    try:
        await change_password(
            db,
            user=user,
            passwords=passwords,
            current=current_password,
            new=new_password,
            confirm=confirm_password,
        )
    except ProfileError as exc:
        return _page(request, user, password_errors=exc.errors)
    # Other browsers were signed out: their live connections close now.
    await access_changed(live, user_ids=[user.id], reason="password changed")
    response = RedirectResponse("/profile?saved=password", status_code=303)
    # This browser stays signed in under the new epoch; every other one is signed out.
    sign_in(response, user=user, signer=signer, settings=settings)
    return response
