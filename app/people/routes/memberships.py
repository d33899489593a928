"""Answering an invitation to join another programme: accept or decline."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form
from starlette.responses import RedirectResponse, Response

from app.deps import CurrentUser, MembershipIdPath, PasswordsDep, SessionDep
from app.people import membership_requests

router = APIRouter(tags=["pages: invitations to programmes"])


@router.post("/memberships/{membership_id}/accept")
async def accept_membership(
    membership_id: MembershipIdPath,
    user: CurrentUser,
    db: SessionDep,
    passwords: PasswordsDep,
    new_password: Annotated[str, Form(max_length=1000)] = "",
    confirm_password: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    membership = await membership_requests.accept(
        db,
        user=user,
        membership_id=membership_id,
        passwords=passwords,
        new_password=new_password,
        confirm_password=confirm_password,
    )
    return RedirectResponse(f"/programmes/{membership.programme_id}", status_code=303)


@router.post("/memberships/{membership_id}/decline")
async def decline_membership(
    membership_id: MembershipIdPath, user: CurrentUser, db: SessionDep
) -> Response:
    await membership_requests.decline(db, user=user, membership_id=membership_id)
    return RedirectResponse("/?declined=1", status_code=303)
