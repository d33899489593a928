"""The home page: my programmes, what's next, my group and facilitator."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.deps import CurrentUser, SessionDep
from app.people.membership_requests import pending_for
from app.programmes.programme_views import my_programmes
from app.templating import render

router = APIRouter(tags=["pages: home"])


@router.get("/")
async def home(request: Request, user: CurrentUser, db: SessionDep) -> Response:
    programmes = await my_programmes(db, user=user)
    pending = await pending_for(db, user=user)
    return render(
        request,
        "home.html",
        {"programmes": programmes, "pending": pending, "title": "My programmes"},
    )


@router.get("/accessibility")
async def accessibility(request: Request) -> Response:
    return render(request, "accessibility.html", {"title": "Accessibility"})
