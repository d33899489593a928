"""The JSON API under /api/v1, described at /openapi.json: each feature's API routers,
in the order they are matched."""

from __future__ import annotations

from fastapi import APIRouter

from app.people import api as people_api
from app.programmes.api import groups, members, programmes, roster, sessions

router = APIRouter()
for module in (people_api, programmes, sessions, roster, groups, members):
    router.include_router(module.router)
