"""The JSON API under /api/v1, described at /openapi.json."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
