"""A caption-only process: the vosk-server protocol (captioning/vosk_protocol.py) and
nothing else, for app processes to send their speakers' audio to (CAPTION_ENGINES).

    CAPTION_ENGINE_TOKEN=... python -m captioning.server \\
        --host 0.0.0.0 --port 2700 --model var/models/model-en-us

Routes: the protocol at `/` (where alphacep's vosk-server serves it, so the two are
interchangeable) and at `/asr/vosk` (as the app serves it); `GET /healthz` answers 200
with the streams and recognizers in use, or 503 while the model is not loaded.

Access: with `CAPTION_ENGINE_TOKEN` set, a client must send it, as `Authorization: Bearer
<token>` or `?token=<token>`; it is compared in constant time, and a client without it is
told why and closed with 1008. Without a token the process only listens on a loopback
address, unless `--allow-without-token` says that the network around it is trusted.
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import logging
import os
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from captioning.engine import CaptionEngine
from captioning.vosk_protocol import CLOSE_POLICY, VoskLimits, close_with_reason, serve_vosk

log = logging.getLogger(__name__)

TOKEN_ENV = "CAPTION_ENGINE_TOKEN"
DEFAULT_PORT = 2700  # alphacep's vosk-server's
TOKEN_REFUSED = "this caption engine needs its token (CAPTION_ENGINE_TOKEN): missing or wrong"


@dataclass
class EngineServer:
    engine: CaptionEngine
    token: str | None
    limits: VoskLimits
    streams: int = 0

    def allows(self, websocket: WebSocket) -> bool:
        if self.token is None:
            return True
        given = websocket.query_params.get("token", "")
        scheme, _, credentials = websocket.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and credentials:
            given = credentials.strip()
        return hmac.compare_digest(given.encode(), self.token.encode())


def create_engine_app(
    engine: CaptionEngine, *, token: str | None, limits: VoskLimits | None = None
) -> Starlette:
    """The app around `engine`: loaded at startup if it is not yet, and then closed."""
    server = EngineServer(engine, token or None, limits or VoskLimits())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        owned = engine.model is None
        if owned:
            await engine.load()
            if not engine.available:
                log.error("%s", engine.status)
        try:
            yield
        finally:
            if owned:
                engine.close()

    async def vosk(websocket: WebSocket) -> None:
        # Accept first, then refuse: a close during the handshake carries no reason.
        await websocket.accept()
        if not server.allows(websocket):
            await close_with_reason(websocket, CLOSE_POLICY, TOKEN_REFUSED, tell=True)
            return
        server.streams += 1
        try:
            await serve_vosk(websocket, server.engine, limits=server.limits)
        finally:
            server.streams -= 1

    async def healthz(request: Request) -> JSONResponse:
        engine = server.engine
        body = {
            "status": "ok" if engine.available else "unavailable",
            "captions": engine.status,
            "streams": server.streams,
            "recognizers": engine.recognizers_alive,
        }
        return JSONResponse(body, status_code=200 if engine.available else 503)

    return Starlette(
        routes=[
            WebSocketRoute("/", vosk),
            WebSocketRoute("/asr/vosk", vosk),
            Route("/healthz", healthz),
        ],
        lifespan=lifespan,
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m captioning.server",
        description="Serve the vosk-server WebSocket protocol for Roundtable's app processes.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument(
        "--model", type=Path, default=Path("var/models/model-en-us"), help="an unpacked Vosk model"
    )
    parser.add_argument(
        "--allow-without-token",
        action="store_true",
        help=f"listen beyond this machine without {TOKEN_ENV} (only on a trusted network)",
    )
    parser.add_argument("--log-level", default="warning")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    import uvicorn

    args = parse_args(argv)
    token = os.environ.get(TOKEN_ENV, "").strip() or None
    if token is None and not is_loopback(args.host) and not args.allow_without_token:
        print(
            f"captioning.server: set {TOKEN_ENV} to listen on {args.host} (anyone who can "
            "reach the port could use it), or pass --allow-without-token on a trusted network",
            file=sys.stderr,
        )
        return 2
    if not (args.model / "am" / "final.mdl").is_file():
        print(f"captioning.server: no Vosk model at {args.model}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper())
    app = create_engine_app(CaptionEngine(model_path=args.model), token=token)
    uvicorn.run(
        app, host=args.host, port=args.port, ws="websockets-sansio", log_level=args.log_level
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
