"""Compression and caching for weak connections (app/compression.py): pages and static
text arrive gzipped, versioned static files are cached for a year, and event streams,
pictures and cross-site navigations are left alone."""

from __future__ import annotations

import gzip
import zlib
from typing import Any

from starlette.types import Message

from app.compression import CompressionMiddleware
from app.templating import STATIC_DIR, asset_digest
from tests.factories import make_world

GZIP = {"Accept-Encoding": "gzip"}


def version_of(name: str) -> str:
    return asset_digest((STATIC_DIR / name).read_bytes())


async def test_pages_arrive_gzipped_with_their_security_headers(browser: Any) -> None:
    response = await browser.get("/signin", headers=GZIP)
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert "accept-encoding" in response.headers["vary"].lower()
    assert "Sign in" in response.text
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert "rt_csrf=" in response.headers["set-cookie"]


async def test_navigations_from_other_sites_are_not_compressed(browser: Any) -> None:
    """A page holding the CSRF token is never compressed for another site's request (BREACH)."""
    headers = {**GZIP, "Sec-Fetch-Site": "cross-site"}
    response = await browser.get("/signin", headers=headers)
    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert "Sign in" in response.text


async def test_versioned_static_files_are_gzipped_and_kept_for_a_year(browser: Any) -> None:
    name = "vendor/htmx.min.js"
    response = await browser.get(f"/static/{name}?v={version_of(name)}", headers=GZIP)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.headers["content-encoding"] == "gzip"
    assert int(response.headers["content-length"]) < (STATIC_DIR / name).stat().st_size / 2
    assert response.content == (STATIC_DIR / name).read_bytes()
    assert response.headers["x-content-type-options"] == "nosniff"

    # The same file asked for again with its validator: 304, nothing more to download.
    etag = response.headers["etag"]
    assert etag.startswith('W/"')
    again = await browser.get(f"/static/{name}", headers={**GZIP, "If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""


async def test_static_files_without_the_right_hash_are_revalidated(browser: Any) -> None:
    for url in ("/static/css/app.css", "/static/css/app.css?v=0123456789ab"):
        response = await browser.get(url, headers=GZIP)
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["content-encoding"] == "gzip"


async def test_the_live_page_links_static_files_by_their_hash(
    db: Any, browser_factory: Any
) -> None:
    w = await make_world(db)
    browser = browser_factory(w.participant_a)
    page = await browser.get(
        f"/programmes/{w.programme.id}/sessions/{w.session.id}/live", headers=GZIP
    )
    assert page.status_code == 200
    assert page.headers["content-encoding"] == "gzip"
    assert f"/static/js/live.js?v={version_of('js/live.js')}" in page.text
    # The microphone's script is only named, to load when someone chooses to speak.
    assert '<script src="/static/js/mic.js' not in page.text


async def test_a_browser_that_does_not_accept_gzip_gets_plain_text(browser: Any) -> None:
    response = await browser.get("/static/css/app.css", headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert response.content == (STATIC_DIR / "css" / "app.css").read_bytes()


# The middleware on its own, with small ASGI apps.


async def run(app: Any, headers: dict[str, str]) -> list[Message]:
    sent: list[Message] = []
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/x",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "query_string": b"",
    }

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await CompressionMiddleware(app)(scope, receive, send)
    return sent


def streaming_app(content_type: str, chunks: list[bytes], extra: list[tuple[bytes, bytes]]) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", content_type.encode()), *extra]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for i, chunk in enumerate(chunks):
            more = i < len(chunks) - 1
            await send({"type": "http.response.body", "body": chunk, "more_body": more})

    return app


def header(message: Message, name: bytes) -> bytes | None:
    return dict(message["headers"]).get(name)


async def test_event_streams_pass_through_untouched_and_at_once() -> None:
    events = [b"data: " + b"x" * 600 + b"\n\n", b'data: {"t":"hb"}\n\n', b""]
    sent = await run(streaming_app("text/event-stream", events, []), GZIP)
    assert header(sent[0], b"content-encoding") is None
    assert [m["body"] for m in sent[1:]] == events


async def test_no_transform_pictures_and_small_bodies_are_left_alone() -> None:
    big = [b"a" * 5000]
    cases = [
        ("text/plain", big, [(b"cache-control", b"no-cache, no-transform")]),
        ("image/png", big, []),
        ("application/zip", big, []),
        ("audio/webm", big, []),
        ("text/html; charset=utf-8", [b"<p>short</p>"], []),
    ]
    for content_type, chunks, extra in cases:
        sent = await run(streaming_app(content_type, chunks, extra), GZIP)
        assert header(sent[0], b"content-encoding") is None, content_type
        assert sent[1]["body"] == chunks[0], content_type


async def test_streamed_text_is_compressed_chunk_by_chunk() -> None:
    """Each chunk is flushed, so a reader can decode it as soon as it arrives."""
    chunks = [b"name,theme\n" + b"Priya,Being heard\n" * 100, b"Pat,Trust\n" * 100, b""]
    sent = await run(streaming_app("text/csv", chunks, [(b"content-length", b"2911")]), GZIP)
    assert header(sent[0], b"content-encoding") == b"gzip"
    assert header(sent[0], b"content-length") is None
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    assert decoder.decompress(sent[1]["body"]) == chunks[0]
    assert decoder.decompress(sent[2]["body"]) == chunks[1]
    whole = b"".join(m["body"] for m in sent[1:])
    assert gzip.decompress(whole) == b"".join(chunks)
