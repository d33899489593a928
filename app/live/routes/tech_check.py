"""The tech check: anyone signed in can check their microphone (with a sample caption of
what they say), their connection (WebSocket or the compatibility mode, and the round trip)
and their browser before a session, and ask IT support for help from there. IT support
can send the page's link to someone they are helping (`?session_id=` brings them back to
that session).

Routes: the page; `…/ws`, a tiny echo WebSocket to time round trips (outside the CSRF
dependency: it checks its Origin and the session cookie itself, like the live one);
`…/ping`, the same over plain HTTP for when WebSockets are blocked; `…/caption`, a few
seconds of speech in, the caption out; `…/voice` ("hear yourself"), Opus packets echoed
straight back, over a WebSocket or, when that is blocked, over POSTs framed as the
speaker's compatibility mode frames them (realtime/post_frames.py); `…/help`, a request
for help."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request, WebSocket
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.websockets import WebSocketDisconnect

from app.bodylimits import release_connection
from app.captions.actions import public_status
from app.deps import CurrentUser, SessionDep
from app.live import tech_check
from app.live.deps import LiveDep
from app.live.web import wants_fragment
from app.refusals import Refused
from app.security import SESSION_COOKIE, same_origin
from app.sessions import user_from_cookie
from app.state import get_app_state
from app.templating import render
from captioning.engine import CaptionsUnavailable
from realtime import post_frames

router = APIRouter(tags=["pages: tech check"])
ws_router = APIRouter(tags=["tech check: connection"])

PAGE = "/tech-check"
SessionQuery = Annotated[int | None, Query(ge=1, le=2**31 - 1, description="Session to return to")]
AUDIO_TYPES = frozenset({"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"})
# The echo WebSocket: a few pings a check, small frames, a short life.
ECHO_MAX_MESSAGES = 20
ECHO_MAX_FRAME = 64
ECHO_SECONDS = 30.0
# "Hear yourself": Opus packets of 20 ms (50 a second) from WebCodecs, echoed back. A
# browser on a busy machine sends late packets in a burst, so up to three seconds of
# catch-up is allowed on top of real time.
VOICE_MAX_PACKET = 4000
VOICE_MAX_PER_SECOND = 60
VOICE_CATCH_UP_PACKETS = 150
VOICE_SECONDS = 30.0


def page_url(session_id: int | None) -> str:
    return f"{PAGE}?session_id={session_id}" if session_id else PAGE


async def page(
    request: Request,
    db: SessionDep,
    user: CurrentUser,
    session_id: int | None,
    *,
    flash: str = "",
    error: str = "",
    status_code: int = 200,
) -> Response:
    target = await tech_check.help_target(db, user=user, session_id=session_id)
    live_url = None
    if target is not None:
        live_url = f"/programmes/{target.ctx.programme.id}/sessions/{target.session.id}/live"
    return render(
        request,
        "tech_check.html",
        {
            "title": "Tech check",
            "target": target,
            "session_id": session_id,
            "live_url": live_url if session_id else None,
            "captions_status": public_status(get_app_state(request).captions),
            "max_seconds": int(tech_check.MAX_SAMPLE_SECONDS),
            "flash_messages": [flash] if flash else [],
            "help_error": error,
        },
        status_code=status_code,
    )


@router.get(PAGE)
async def tech_check_page(
    request: Request,
    user: CurrentUser,
    db: SessionDep,
    session_id: SessionQuery = None,
    asked: Annotated[str | None, Query(max_length=5)] = None,
) -> Response:
    flash = "IT support has your request and what the check found." if asked else ""
    return await page(request, db, user, session_id, flash=flash)


@router.get(PAGE + "/ping")
async def ping(user: CurrentUser) -> Response:
    """Nothing, at once: the page times the round trip."""
    return Response(status_code=204, headers={"Cache-Control": "no-store"})


def refusal(message: str, status: int, **headers: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers=headers or None)


@router.post(PAGE + "/caption")
async def sample_caption(request: Request, user: CurrentUser, db: SessionDep) -> Response:
    """A WAV recording of at most ten seconds in; what the speech model heard out, as
    {"text": …, "seconds": …}. Refusals are {"detail": …} with a 4xx status."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in AUDIO_TYPES:
        return refusal("Send the sample as a WAV sound file (Content-Type: audio/wav).", 415)
    limiter = get_app_state(request).tech_check_limiter
    key = f"caption:{user.id}"
    if not limiter.allow(key):
        wait = limiter.retry_after(key)
        return refusal(
            f"You have tried several samples just now; try again in {wait} seconds.",
            429,
            **{"Retry-After": str(wait)},
        )
    # The sample takes seconds to arrive; the sign-in check's connection goes back first.
    await release_connection(db)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > tech_check.MAX_SAMPLE_BYTES:
            seconds = int(tech_check.MAX_SAMPLE_SECONDS)
            return refusal(f"The sample is too long: the tech check takes {seconds} seconds.", 413)
    try:
        audio = tech_check.read_sample(bytes(body))
        text = await tech_check.sample_caption(get_app_state(request).captions, audio)
    except tech_check.SampleRefused as exc:
        return refusal(exc.message, exc.status)
    except CaptionsUnavailable as exc:
        reason = str(exc).removeprefix("captions unavailable: ")
        return refusal(f"Captions are unavailable at the moment: {reason}.", 503)
    return JSONResponse(
        {"text": text, "seconds": round(audio.seconds, 2)}, headers={"Cache-Control": "no-store"}
    )


@router.post(PAGE + "/help")
async def ask_it_support(
    request: Request,
    user: CurrentUser,
    db: SessionDep,
    live: LiveDep,
    session_id: Annotated[str, Form(max_length=12)] = "",
    note: Annotated[str, Form(max_length=5000)] = "",
    results: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    digits = session_id.strip()
    chosen = int(digits) if re.fullmatch(r"[0-9]{1,10}", digits) else None
    if chosen is not None and not 0 < chosen < 2**31:
        chosen = None
    target = await tech_check.help_target(db, user=user, session_id=chosen)
    try:
        await tech_check.ask_it_support(db, live, target=target, note=note, results=results)
    except Refused as exc:
        # Kept here, not left to the app's handler: without htmx the refusal is shown on
        # the tech-check page itself, with the person's check and choice kept.
        if wants_fragment(request):
            return Response(exc.message, status_code=exc.status, media_type="text/plain")
        return await page(request, db, user, chosen, error=exc.message, status_code=exc.status)
    assert target is not None  # without one, ask_it_support refuses
    message = (
        f"IT support for “{target.session.title}” has your request and what the check found. "
        "They will be in touch here or in the session."
    )
    if wants_fragment(request):
        return Response(message, media_type="text/plain")
    return RedirectResponse(page_url(chosen) + "&asked=1" if chosen else PAGE + "?asked=1", 303)


async def admit_echo(websocket: WebSocket) -> bool:
    """Accept an echo WebSocket of a signed-in person on this site; else close it, with
    the reason (accepted first: a close during the handshake carries none)."""
    await websocket.accept()
    if not same_origin(websocket):
        await websocket.close(code=1008, reason="cross-site connections are refused")
        return False
    state = get_app_state(websocket)
    async with state.sessionmaker() as db:
        user = await user_from_cookie(
            db,
            signer=state.signer,
            settings=state.settings,
            cookie=websocket.cookies.get(SESSION_COOKIE),
        )
    if user is None:
        await websocket.close(code=1008, reason="sign in first")
        return False
    return True


@ws_router.websocket(PAGE + "/ws")
async def echo(websocket: WebSocket) -> None:
    """Answers each small text frame with the same text, so the page can time round
    trips; a few a connection, for at most half a minute."""
    if not await admit_echo(websocket):
        return
    deadline = time.monotonic() + ECHO_SECONDS
    with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError):
        for _ in range(ECHO_MAX_MESSAGES):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                message = await asyncio.wait_for(websocket.receive(), left)
            except TimeoutError:
                break
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                await websocket.close(code=1003, reason="send text frames")
                return
            if len(text) > ECHO_MAX_FRAME:
                await websocket.close(code=1009, reason="frames are at most 64 characters")
                return
            await websocket.send_text(text)
        await websocket.close(code=1000, reason="done")


@ws_router.websocket(PAGE + "/voice")
async def voice_echo(websocket: WebSocket) -> None:
    """ "Hear yourself": each binary message (an Opus packet) straight back, at most
    VOICE_MAX_PER_SECOND a second on average (after VOICE_CATCH_UP_PACKETS), for at most
    VOICE_SECONDS."""
    if not await admit_echo(websocket):
        return
    started = time.monotonic()
    deadline = started + VOICE_SECONDS
    count = 0
    with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError):
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = await asyncio.wait_for(websocket.receive(), left)
            except TimeoutError:
                break
            if message["type"] == "websocket.disconnect":
                return
            packet = message.get("bytes")
            if packet is None:
                await websocket.close(code=1003, reason="send sound packets as binary messages")
                return
            if len(packet) > VOICE_MAX_PACKET:
                await websocket.close(code=1009, reason="packets are at most 4000 bytes")
                return
            count += 1
            allowed = VOICE_CATCH_UP_PACKETS + VOICE_MAX_PER_SECOND * (time.monotonic() - started)
            if count > allowed:
                reason = f"too fast: at most {VOICE_MAX_PER_SECOND} packets a second"
                await websocket.close(code=1008, reason=reason)
                return
            await websocket.send_bytes(packet)
        await websocket.close(code=1000, reason="done: the check takes at most 30 seconds")


def echoed_packets(body: bytes) -> None:
    """Checks a "hear yourself" body: frames of sound packets only (post_frames.FramingError
    says what is wrong)."""
    for number, frame in enumerate(post_frames.parse(body), 1):
        if frame.type != post_frames.BINARY:
            raise post_frames.FramingError(f"frame {number} is not a sound packet (type 0)")
        if len(frame.data) > VOICE_MAX_PACKET:
            raise post_frames.FramingError(
                f"frame {number} holds {len(frame.data):,} bytes; a packet is at most 4000"
            )


@router.post(PAGE + "/voice")
async def voice_echo_post(request: Request, user: CurrentUser, db: SessionDep) -> Response:
    """ "Hear yourself" without a WebSocket: a few hundred milliseconds of framed Opus
    packets in, the same bytes out."""
    await release_connection(db)
    limiter = get_app_state(request).voice_echo_limiter
    key = f"voice:{user.id}"
    if not limiter.allow(key):
        wait = limiter.retry_after(key)
        return refusal(
            f"You have checked your sound several times just now; try again in {wait} seconds.",
            429,
            **{"Retry-After": str(wait)},
        )
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/octet-stream":
        return refusal("Send the packets as application/octet-stream.", 415)
    try:
        body = await post_frames.read_body(request)
        echoed_packets(body)
    except post_frames.BodyTooLarge:
        return refusal("Too much at once: send at most 64 KB of packets a time.", 413)
    except post_frames.FramingError as exc:
        return refusal(f"The body is not a sequence of sound packets: {exc}.", 400)
    return Response(
        body, media_type="application/octet-stream", headers={"Cache-Control": "no-store"}
    )
