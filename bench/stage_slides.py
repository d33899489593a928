"""Slides for bench/stage.py: viewers that show the slide the presenter moves to, as the
stage's page does (the `stage.slide` event arrives on the live connection, then the image it
names is fetched, with the HTTP cache a browser keeps), the presenter's form post, and the
deck's upload through the app's own route.
"""

from __future__ import annotations

import asyncio
import html
import math
import re
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from bench.realtime import percentile
from bench.voice import Heard, Recorder

SLIDE_EVENT = "stage.slide"
IMG_SRC = re.compile(r'<img\b[^>]*?\bsrc="([^"]+)"')
NUMBER = re.compile(r'\bdata-number="(\d+)"')
# A browser's request for an <img>: what it accepts and the compression it offers.
IMAGE_HEADERS = {
    "Accept": "image/avif,image/webp,image/apng,image/*,*/*;q=0.8",
    "Accept-Encoding": "gzip, deflate, br",
}


def slide_shown(message: dict[str, Any]) -> tuple[int, str]:
    """The slide a `stage.slide` event shows and the image the page fetches for it: the
    fragment's <img src> (the common width: what a desktop browser picks from the srcset
    at 60vw of a 1280-pixel window), or the payload's, when the event carries it as data."""
    data = message.get("d") or {}
    fragment = str(message.get("h") or "")
    number = data.get("number") or (m.group(1) if (m := NUMBER.search(fragment)) else 0)
    url = data.get("image_url") or (m.group(1) if (m := IMG_SRC.search(fragment)) else "")
    return int(number), html.unescape(str(url))


@dataclass
class Cached:
    etag: str
    last_modified: str
    fresh_until: int  # CLOCK_MONOTONIC ns; 0: revalidate every time


@dataclass
class Shown:
    """One slide one viewer showed."""

    number: int
    event_ns: int  # when the event's bytes were read
    done_ns: int = 0  # when the image was there (from the network or the cache); 0: never
    image_bytes: int = 0  # read from the network for the image: status, headers and body
    status: int = 0  # 0: from the cache, with no request
    error: str = ""


def header_bytes(response: Any) -> int:
    """A response's status line and headers, as they crossed the wire (HTTP/1.1)."""
    head = len(b"HTTP/1.1 200 OK\r\n") + 2
    return head + sum(len(k) + len(v) + 4 for k, v in response.headers.raw)


def cache_entry(response: Any, now: int) -> Cached | None:
    control = response.headers.get("cache-control", "").lower()
    if "no-store" in control:
        return None
    max_age = re.search(r"max-age=(\d+)", control)
    fresh = 0
    if max_age and "no-cache" not in control:
        fresh = now + int(max_age.group(1)) * 1_000_000_000
    return Cached(
        response.headers.get("etag", ""), response.headers.get("last-modified", ""), fresh
    )


class SlideRecorder(Recorder):
    """voice.py's listener process, following the stage: each viewer has its own HTTP
    client and cache (one browser each), and fetches the image each `stage.slide` names."""

    def __init__(self) -> None:
        super().__init__()
        self.browsers: dict[int, Any] = {}
        self.caches: dict[int, dict[str, Cached]] = {}
        self.shown: dict[int, list[Shown]] = {}
        self.fetches: set[asyncio.Task[None]] = set()

    def text(self, heard: Heard, at: int, message: dict[str, Any]) -> None:
        super().text(heard, at, message)
        if message.get("t") != SLIDE_EVENT or not self.recording:
            return
        number, url = slide_shown(message)
        shown = Shown(number, at)
        self.shown.setdefault(heard.spec.key, []).append(shown)
        if not url:
            shown.error = "the event names no image"
            return
        task = asyncio.create_task(
            self.fetch(heard, urllib.parse.urljoin(origin(heard), url), shown)
        )
        self.fetches.add(task)
        task.add_done_callback(self.fetches.discard)

    async def fetch(self, heard: Heard, url: str, shown: Shown) -> None:
        import httpx

        key = heard.spec.key
        if key not in self.browsers:
            self.browsers[key] = httpx.AsyncClient(timeout=httpx.Timeout(30.0), http2=False)
        cache = self.caches.setdefault(key, {})
        entry, now = cache.get(url), time.monotonic_ns()
        if entry is not None and entry.fresh_until > now:
            shown.done_ns = now
            return
        headers = {**IMAGE_HEADERS, "Cookie": f"rt_session={heard.spec.cookie}"}
        if entry is not None and entry.etag:
            headers["If-None-Match"] = entry.etag
        if entry is not None and entry.last_modified:
            headers["If-Modified-Since"] = entry.last_modified
        try:
            response = await self.browsers[key].get(url, headers=headers)
            await response.aread()
        except Exception as exc:  # noqa: BLE001 - reported with the figures
            shown.error = f"{type(exc).__name__}: {str(exc)[:80]}"
            return
        shown.done_ns = time.monotonic_ns()
        shown.status = response.status_code
        shown.image_bytes = header_bytes(response) + response.num_bytes_downloaded
        if response.status_code == 200 and (fresh := cache_entry(response, shown.done_ns)):
            cache[url] = fresh
        elif response.status_code != 304:
            shown.error = f"image answered {response.status_code}"

    def start(self, window: tuple[int, int]) -> None:
        super().start(window)
        self.shown = {}

    def stop(self) -> dict[int, dict[str, Any]]:
        records = super().stop()
        for key, record in records.items():
            record["shown"] = self.shown.get(key, [])
        return records

    async def close(self, kind: str | None) -> None:
        await super().close(kind)
        if kind is None:
            for browser in self.browsers.values():
                await browser.aclose()


def origin(heard: Heard) -> str:
    parts = urllib.parse.urlsplit(heard.spec.url)
    return f"{'https' if parts.scheme in ('wss', 'https') else 'http'}://{parts.netloc}/"


# --------------------------------------------------------------------------- figures


@dataclass
class Change:
    """One move of the presenter's: the slide, when the post left and what it answered."""

    number: int
    posted_ns: int
    answered_ns: int = 0
    status: int = 0


@dataclass
class SlideFigures:
    changes: int = 0
    answers: dict[int, int] = field(default_factory=dict)
    by_transport: dict[str, dict[str, float]] = field(default_factory=dict)
    kb_per_slide: list[float] = field(default_factory=list)  # per viewer, sorted
    image_kb: list[float] = field(default_factory=list)  # per first fetch of an image
    errors: dict[str, int] = field(default_factory=dict)


def analyse(
    records: dict[int, dict[str, Any]], kinds: dict[int, str], changes: list[Change]
) -> SlideFigures:
    """For each change and viewer: from the post to the event read, and to the image there;
    a slide a viewer never showed counts as infinitely late."""
    out = SlideFigures(changes=len(changes))
    for change in changes:
        out.answers[change.status] = out.answers.get(change.status, 0) + 1
    events: dict[str, list[float]] = {}
    shown_at: dict[str, list[float]] = {}
    for key, record in records.items():
        kind = kinds[key]
        image_bytes, remaining = 0, list(record["shown"])
        for change in changes:
            match = next(
                (
                    s
                    for s in remaining
                    if s.number == change.number and s.event_ns >= change.posted_ns
                ),
                None,
            )
            if match is None:
                events.setdefault(kind, []).append(math.inf)
                shown_at.setdefault(kind, []).append(math.inf)
                out.errors["slide never shown"] = out.errors.get("slide never shown", 0) + 1
                continue
            remaining.remove(match)
            events.setdefault(kind, []).append((match.event_ns - change.posted_ns) / 1e6)
            done = (match.done_ns - change.posted_ns) / 1e6 if match.done_ns else math.inf
            shown_at.setdefault(kind, []).append(done)
            image_bytes += match.image_bytes
            if match.status == 200:
                out.image_kb.append(match.image_bytes / 1000)
            if match.error:
                out.errors[match.error] = out.errors.get(match.error, 0) + 1
        out.kb_per_slide.append((record["bytes"] + image_bytes) / 1000 / max(1, len(changes)))
        if record["error"]:
            out.errors[record["error"]] = out.errors.get(record["error"], 0) + 1
    for kind in events:
        e, s = sorted(events[kind]), sorted(shown_at[kind])
        out.by_transport[kind] = {
            "viewers": sum(1 for k in kinds.values() if k == kind),
            "event_p50": percentile(e, 0.5),
            "event_p95": percentile(e, 0.95),
            "shown_p50": percentile(s, 0.5),
            "shown_p95": percentile(s, 0.95),
            "shown_max": s[-1] if s else math.nan,
        }
    out.kb_per_slide.sort()
    out.image_kb.sort()
    return out
