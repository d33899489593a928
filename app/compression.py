"""Fewer bytes for weak connections: gzip for text responses, and static files that are
compressed once and cached by browsers for a year when their URL carries the content hash.

Compression leaves alone what must not or need not be compressed: Server-Sent Events and
anything else marked `no-transform` (gzip would hold events back in its buffer), ranges,
responses already encoded, and every type not on the list of text types (pictures, sound,
video, zip and PDF files are compressed already).

Compressing a page that holds a secret (the CSRF token) next to text an attacker chose can
leak the secret through the compressed size (BREACH). The attacker's page would have to make
the person's browser send many requests with their cookies and watch the sizes on the
network. Our cookies are SameSite=Lax, so only top-level navigations from another site carry
them; those come with `Sec-Fetch-Site: cross-site` (or `same-site`), and such requests get
dynamic responses uncompressed."""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import anyio.to_thread
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.templating import asset_digest

COMPRESSIBLE_TYPES = frozenset(
    {
        "text/html",
        "text/css",
        "text/plain",
        "text/csv",
        "text/calendar",
        "text/vtt",
        "text/javascript",
        "text/markdown",
        "application/javascript",
        "application/json",
        "application/xml",
        "application/x-subrip",
        "image/svg+xml",
    }
)
# Below this a response fits in one packet anyway; gzip's own framing is about 20 bytes.
MINIMUM_SIZE = 512
# Chunks at least this large are compressed in a worker thread, off the event loop.
THREAD_MINIMUM_SIZE = 64 * 1024
# Static files: assets whose URL carries the right hash never change under that URL.
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
# Static files larger than this are streamed as they are, not held compressed in memory.
STATIC_GZIP_MAX_BYTES = 1024 * 1024


def accepts_gzip(headers: Headers) -> bool:
    return any(
        part.split(";")[0].strip().lower() in ("gzip", "*")
        and not part.replace(" ", "").lower().endswith(";q=0")
        for part in headers.get("accept-encoding", "").split(",")
    )


def compressible(headers: Headers) -> bool:
    media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
    return media_type in COMPRESSIBLE_TYPES


def weak_etag(headers: MutableHeaders) -> None:
    """The compressed body is another representation: its validator may only be weak."""
    etag = headers.get("etag")
    if etag and not etag.startswith("W/"):
        headers["etag"] = "W/" + etag


class CompressionMiddleware:
    """Gzips text responses for browsers that accept it (see the module's docstring)."""

    def __init__(self, app: ASGIApp, *, minimum_size: int = MINIMUM_SIZE, level: int = 6) -> None:
        self.app = app
        self.minimum_size = minimum_size
        self.level = level

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        site = headers.get("sec-fetch-site", "same-origin")
        if (
            not accepts_gzip(headers)
            or "range" in headers
            or site in ("cross-site", "same-site")
            and not scope["path"].startswith("/static/")
        ):
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, _Gzipper(send, self.minimum_size, self.level).send)


class _Gzipper:
    """One response's compression: decides at the first body chunk, then streams."""

    def __init__(self, send: Send, minimum_size: int, level: int) -> None:
        self._send = send
        self.minimum_size = minimum_size
        self.level = level
        self.start: Message | None = None
        self.passthrough = False
        self.compressor: Any = None

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            headers = Headers(raw=message.get("headers", []))
            self.passthrough = (
                message["status"] in (204, 206, 304)
                or not compressible(headers)
                or "content-encoding" in headers
                or "no-transform" in headers.get("cache-control", "").lower()
            )
            if self.passthrough:
                await self._send(message)
            else:
                self.start = message
            return
        if self.passthrough or kind != "http.response.body":
            await self._flush_start()
            await self._send(message)
            return
        body: bytes = message.get("body", b"")
        more: bool = message.get("more_body", False)
        if self.compressor is None:
            assert self.start is not None
            out = MutableHeaders(raw=self.start.setdefault("headers", []))
            out.add_vary_header("Accept-Encoding")
            if not more and len(body) < self.minimum_size:
                self.passthrough = True
                await self._flush_start()
                await self._send(message)
                return
            self.compressor = zlib.compressobj(self.level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            out["Content-Encoding"] = "gzip"
            weak_etag(out)
            compressed = await self._compress(body, more)
            if more:
                del out["Content-Length"]
            else:
                out["Content-Length"] = str(len(compressed))
            await self._flush_start()
            await self._send({"type": "http.response.body", "body": compressed, "more_body": more})
            return
        compressed = await self._compress(body, more)
        await self._send({"type": "http.response.body", "body": compressed, "more_body": more})

    async def _flush_start(self) -> None:
        if self.start is not None:
            start, self.start = self.start, None
            await self._send(start)

    async def _compress(self, body: bytes, more: bool) -> bytes:
        if len(body) >= THREAD_MINIMUM_SIZE:
            return await anyio.to_thread.run_sync(self._compress_now, body, more)
        return self._compress_now(body, more)

    def _compress_now(self, body: bytes, more: bool) -> bytes:
        # A streamed response is flushed chunk by chunk, so nothing waits in gzip's buffer.
        flush = zlib.Z_SYNC_FLUSH if more else zlib.Z_FINISH
        return bytes(self.compressor.compress(body) + self.compressor.flush(flush))


@dataclass(frozen=True)
class _Asset:
    mtime_ns: int
    size: int
    digest: str
    gzipped: bytes | None


class StaticAssets(StaticFiles):
    """Static files with caching headers, and text files gzipped once and kept in memory.

    `static_url()` (app/templating.py) puts the file's content hash in `?v=`: with the right
    hash the browser may keep the file for a year without asking again; any other request
    is revalidated each time (a cheap 304 with the ETag)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._assets: dict[str, _Asset] = {}

    def file_response(
        self,
        full_path: Any,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        if status_code != 200:
            return response
        versions = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("v", [])
        asset = self._asset(str(full_path), stat_result) if versions else None
        fresh = asset is not None and versions == [asset.digest]
        response.headers["Cache-Control"] = IMMUTABLE if fresh else REVALIDATE
        request = Headers(scope=scope)
        if (
            response.status_code != 200
            or not isinstance(response, FileResponse)
            or scope["method"] != "GET"
            or "range" in request
            or not compressible(response.headers)
            or not accepts_gzip(request)
            or stat_result.st_size > STATIC_GZIP_MAX_BYTES
        ):
            return response
        asset = asset or self._asset(str(full_path), stat_result)
        if asset.gzipped is None:
            return response
        headers = MutableHeaders(raw=list(response.headers.raw))
        del headers["content-length"]
        headers["Content-Encoding"] = "gzip"
        headers.add_vary_header("Accept-Encoding")
        weak_etag(headers)
        return Response(asset.gzipped, status_code=200, headers=dict(headers.items()))

    def _asset(self, path: str, stat_result: os.stat_result) -> _Asset:
        known = self._assets.get(path)
        if known and (known.mtime_ns, known.size) == (stat_result.st_mtime_ns, stat_result.st_size):
            return known
        with open(path, "rb") as fh:
            data = fh.read()
        gzipped = None
        if len(data) <= STATIC_GZIP_MAX_BYTES:
            packed = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            smaller = packed.compress(data) + packed.flush()
            gzipped = smaller if len(smaller) < len(data) else None
        asset = _Asset(stat_result.st_mtime_ns, stat_result.st_size, asset_digest(data), gzipped)
        self._assets[path] = asset
        return asset
