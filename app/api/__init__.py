"""The JSON API under /api/v1, described at /openapi.json."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()

from app.api import me, programmes  # noqa: E402 - routers register on import order

router.include_router(me.router)
router.include_router(programmes.router)

from app.api import sessions  # noqa: E402

router.include_router(sessions.router)

from app.api import groups, roster  # noqa: E402

router.include_router(roster.router)
router.include_router(groups.router)
