"""Speech recognition for other tools: the vosk-server-compatible WebSocket (/asr/vosk)
and the page where hosts issue its tokens (/asr/tokens)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Query, Request, WebSocket
from starlette.requests import HTTPConnection
from starlette.responses import RedirectResponse, Response

from app.captions import asr_tokens
from app.captions.asr_tokens import AsrTokenError, IssuedToken, TokenCheck
from app.deps import CurrentUser, SessionDep, SettingsDep
from app.models import User
from app.refusals import NotAllowed, NotFound
from app.state import get_app_state
from app.templating import render
from captioning.engine import CaptionEngine
from captioning.vosk_protocol import CLOSE_POLICY, VoskLimits, close_with_reason, serve_vosk

# The token page: its forms go through the CSRF-protected list in app/factory.py.
router = APIRouter(tags=["pages: speech recognition tokens"])
# The WebSocket: a bearer token, not a cookie, so neither CSRF nor Origin checks apply.
ws_router = APIRouter(tags=["speech recognition (vosk-server protocol)"])

TokenIdPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="Token id")]


# -- the WebSocket --


def get_captions(conn: HTTPConnection) -> CaptionEngine:
    captions: CaptionEngine = get_app_state(conn).captions
    return captions


def vosk_limits() -> VoskLimits:
    """The endpoint's limits (tests override this dependency to shorten them)."""
    return VoskLimits()


async def stream_access(conn: HTTPConnection) -> TokenCheck:
    """Checks `?token=` in a short database session of its own: a stream may last hours
    and must not hold a database connection all that time."""
    async with get_app_state(conn).sessionmaker() as db:
        return await asr_tokens.check_token(db, secret=conn.query_params.get("token"))


@ws_router.websocket("/asr/vosk")
async def vosk_websocket(
    websocket: WebSocket,
    access: Annotated[TokenCheck, Depends(stream_access)],
    captions: Annotated[CaptionEngine, Depends(get_captions)],
    limits: Annotated[VoskLimits, Depends(vosk_limits)],
) -> None:
    # Accept first, then refuse: a close during the handshake carries no reason.
    await websocket.accept()
    if not access.ok:
        await close_with_reason(websocket, CLOSE_POLICY, access.reason, tell=True)
        return
    await serve_vosk(websocket, captions, limits=limits)


# -- the token page --


async def token_issuer(user: CurrentUser, db: SessionDep) -> User:
    if not await asr_tokens.may_issue_tokens(db, user=user):
        raise NotAllowed(
            "Only administrators and programme hosts can issue speech recognition tokens."
        )
    return user


TokenIssuer = Annotated[User, Depends(token_issuer)]


def endpoint_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    for scheme, ws_scheme in (("https://", "wss://"), ("http://", "ws://")):
        if base.startswith(scheme):
            base = ws_scheme + base.removeprefix(scheme)
    return base + "/asr/vosk"


async def _page(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    user: User,
    *,
    issued: IssuedToken | None = None,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    flash: list[str] | None = None,
) -> Response:
    response: Response = render(
        request,
        "asr/tokens.html",
        {
            "title": "Speech recognition tokens",
            "rows": await asr_tokens.list_tokens(db, user=user),
            "all_tokens": user.is_admin,
            "issued": issued,
            "errors": errors or {},
            "values": values or {"label": "", "days": str(asr_tokens.DEFAULT_DAYS)},
            "endpoint": endpoint_url(settings.base_url),
            "max_days": asr_tokens.MAX_DAYS,
            "flash_messages": flash or [],
        },
        status_code=400 if errors else 200,
    )
    # The page may show a new token: keep it out of caches and history snapshots.
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/asr/tokens")
async def tokens_page(
    request: Request,
    user: TokenIssuer,
    db: SessionDep,
    settings: SettingsDep,
    revoked: Annotated[str | None, Query(max_length=5)] = None,
) -> Response:
    flash = ["The token has been revoked; tools using it can no longer connect."] if revoked else []
    return await _page(request, db, settings, user, flash=flash)


@router.post("/asr/tokens")
async def create_token(
    request: Request,
    user: TokenIssuer,
    db: SessionDep,
    settings: SettingsDep,
    label: Annotated[str, Form(max_length=500)] = "",
    days: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    try:
        issued = await asr_tokens.issue_token(db, label=label, days=days, created_by=user)
    except AsrTokenError as exc:
        values = {"label": label, "days": days}
        return await _page(request, db, settings, user, errors=exc.errors, values=values)
    return await _page(request, db, settings, user, issued=issued)


@router.post("/asr/tokens/{token_id}/revoke")
async def revoke_token(user: TokenIssuer, db: SessionDep, token_id: TokenIdPath) -> Response:
    if await asr_tokens.revoke_token(db, user=user, token_id=token_id) is None:
        raise NotFound("We could not find that token.")
    return RedirectResponse("/asr/tokens?revoked=1", status_code=303)
