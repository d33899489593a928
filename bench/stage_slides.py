"""Slides for bench/stage.py: viewers that show the slide the presenter moves to, as the
stage's page does (the `stage.slide` event arrives on the live connection, then the image it
names is fetched, with the HTTP cache a browser keeps), the presenter's form post, and the
deck's upload through the app's own route.
"""

from __future__ import annotations

import asyncio
import html
import math
import random
import re
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from bench.realtime import percentile
from bench.voice import Heard, ListenerSpec, Recorder

SLIDE_EVENT = "stage.slide"
IMG_SRC = re.compile(r'<img\b[^>]*?\bsrc="([^"]+)"')
NUMBER = re.compile(r'\bdata-number="(\d+)"')
NEXT_SRCSET = re.compile(r'\bdata-next-srcset="([^"]+)"')
# static/js/stage.js fetches the next slide's image this long after a slide is shown.
PREFETCH_AFTER_S = (0.3, 1.8)
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


def next_image(message: dict[str, Any]) -> str:
    """The next slide's image the page fetches ahead: the common width of the fragment's
    data-next-srcset (what the browser picks for the same sizes), or "" on the last slide."""
    found = NEXT_SRCSET.search(str(message.get("h") or ""))
    for candidate in html.unescape(found.group(1)).split(",") if found else []:
        url, _, width = candidate.strip().rpartition(" ")
        if width == "960w":
            return url
    return ""


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
        # Bytes each viewer read for the images it fetched ahead, while recording.
        self.prefetched: dict[int, int] = {}

    async def connect(self, specs: list[ListenerSpec]) -> dict[str, Any]:
        """Each viewer's browser exists before the first slide (it loaded the page)."""
        import httpx

        for spec in specs:
            self.browsers[spec.key] = httpx.AsyncClient(timeout=httpx.Timeout(30.0))
        return await super().connect(specs)

    def text(self, heard: Heard, at: int, message: dict[str, Any]) -> None:
        """A `stage.slide` event: its image is fetched, as the page shows it, and timed
        while recording (before, it only fills the cache and opens the connection)."""
        super().text(heard, at, message)
        if message.get("t") != SLIDE_EVENT:
            return
        number, url = slide_shown(message)
        shown = Shown(number, at)
        if self.recording:
            self.shown.setdefault(heard.spec.key, []).append(shown)
        if not url:
            shown.error = "the event names no image"
            return
        self.run(self.fetch(heard, urllib.parse.urljoin(origin(heard), url), shown))
        if ahead := next_image(message):
            self.run(self.prefetch(heard, urllib.parse.urljoin(origin(heard), ahead)))

    def run(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self.fetches.add(task)
        task.add_done_callback(self.fetches.discard)

    async def prefetch(self, heard: Heard, url: str) -> None:
        """The next slide's image, fetched ahead into the cache as stage.js does."""
        await asyncio.sleep(random.uniform(*PREFETCH_AFTER_S))
        ahead = Shown(0, time.monotonic_ns())
        await self.fetch(heard, url, ahead)
        if self.recording:
            key = heard.spec.key
            self.prefetched[key] = self.prefetched.get(key, 0) + ahead.image_bytes

    async def fetch(self, heard: Heard, url: str, shown: Shown) -> None:
        key = heard.spec.key
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
        self.prefetched = {}

    def stop(self) -> dict[int, dict[str, Any]]:
        records = super().stop()
        for key, record in records.items():
            record["shown"] = self.shown.get(key, [])
            record["prefetched"] = self.prefetched.get(key, 0)
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
    # Per transport: ms lists, each sorted; "shown" for every change, "new" for the slides
    # whose image came from the network (the viewer had not seen it), "cached" for the rest;
    # "fetch": from the event to the image there, for the new ones.
    ms: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    viewers: dict[str, int] = field(default_factory=dict)
    kb_per_slide: list[float] = field(default_factory=list)  # per viewer, every change
    # Per viewer: everything read for the slides (events, images shown and fetched ahead)
    # over the number of different slides shown: what one slide costs a viewer.
    kb_per_distinct_slide: list[float] = field(default_factory=list)
    kb_per_new_slide: list[float] = field(default_factory=list)  # per viewer, new slides
    image_kb: list[float] = field(default_factory=list)  # per image response (200)
    per_change_p95: list[float] = field(default_factory=list)  # shown, every viewer
    errors: dict[str, int] = field(default_factory=dict)

    def p(self, kind: str, name: str, q: float) -> float:
        return percentile(self.ms.get(kind, {}).get(name, []), q)


def matching(shown: list[Shown], change: Change) -> Shown | None:
    """The first slide a viewer showed for a change: that number, read after the post."""
    return next(
        (s for s in shown if s.number == change.number and s.event_ns >= change.posted_ns), None
    )


# Longer than 60 lines because it keeps each viewer's figures in one pass over its changes.
def analyse(
    records: dict[int, dict[str, Any]], kinds: dict[int, str], changes: list[Change]
) -> SlideFigures:
    """For each change and viewer: from the post to the event read, and to the image there;
    a slide a viewer never showed counts as infinitely late."""
    out = SlideFigures(changes=len(changes))
    for change in changes:
        out.answers[change.status] = out.answers.get(change.status, 0) + 1
    by_change: list[list[float]] = [[] for _ in changes]

    def note(problem: str) -> None:
        out.errors[problem] = out.errors.get(problem, 0) + 1

    for key, record in records.items():
        kind = kinds[key]
        out.viewers[kind] = out.viewers.get(kind, 0) + 1
        figures = out.ms.setdefault(kind, {})
        image_bytes = new_bytes = new = 0
        remaining = list(record["shown"])
        for index, change in enumerate(changes):
            match = matching(remaining, change)
            if match is None:
                for name in ("event", "shown", "new"):
                    figures.setdefault(name, []).append(math.inf)
                by_change[index].append(math.inf)
                note("slide never shown")
                continue
            remaining.remove(match)
            done = (match.done_ns - change.posted_ns) / 1e6 if match.done_ns else math.inf
            figures.setdefault("event", []).append((match.event_ns - change.posted_ns) / 1e6)
            figures.setdefault("shown", []).append(done)
            by_change[index].append(done)
            image_bytes += match.image_bytes
            if match.status == 0 and match.done_ns:
                figures.setdefault("cached", []).append(done)
            else:
                figures.setdefault("new", []).append(done)
                figures.setdefault("fetch", []).append(
                    (match.done_ns - match.event_ns) / 1e6 if match.done_ns else math.inf
                )
                new_bytes, new = new_bytes + match.image_bytes, new + 1
            if match.status == 200:
                out.image_kb.append(match.image_bytes / 1000)
            if match.error:
                note(match.error)
        live_per_change = record["bytes"] / max(1, len(changes))
        image_bytes += record.get("prefetched", 0)
        out.kb_per_slide.append((live_per_change + image_bytes / max(1, len(changes))) / 1000)
        distinct = len({change.number for change in changes})
        out.kb_per_distinct_slide.append((record["bytes"] + image_bytes) / max(1, distinct) / 1000)
        out.kb_per_new_slide.append((live_per_change + new_bytes / max(1, new)) / 1000)
        if record["error"]:
            note(record["error"])
    for figures in out.ms.values():
        for values in figures.values():
            values.sort()
    out.per_change_p95 = [percentile(sorted(v), 0.95) for v in by_change]
    for values in (out.kb_per_slide, out.kb_per_distinct_slide, out.kb_per_new_slide, out.image_kb):
        values.sort()
    return out
