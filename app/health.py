"""Liveness and readiness: `/healthz` reports the database and captioning status."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import text
from starlette.responses import JSONResponse

from app.state import get_app_state

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    database = "ok"
    try:
        async with get_app_state(request).sessionmaker() as db:
            await db.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to reach the database is reported, not raised
        database = f"unavailable: {type(exc).__name__}"
    captions = get_app_state(request).captions.status
    body = {
        "status": "ok" if database == "ok" else "degraded",
        "database": database,
        "captions": captions,
    }
    return JSONResponse(body, status_code=200 if database == "ok" else 503)
