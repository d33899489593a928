"""Video frames through the real server and the app's own Access (the page's live
connection, app/live/routes/stream.py): a page asks to watch tiles on every transport; a
page whose person has no tile on the stage that sends video is told `not_pinned` (once a
second) and stays connected, and nobody receives its frames; audio or a malformed frame
from a page closes its connection (1003); an unknown media name on the fallbacks is a
clear 4xx; a viewer who arrives while a tile is sending has a keyframe asked of the
sender's page, and its first frame is that keyframe (tests/stage/test_video_relay.py has
the tiles' relay, pins and stops)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import websockets

from app.live import channels
from realtime.media import KIND_AUDIO, KIND_VIDEO, pack, unpack
from realtime.video import frame_header, video_payload
from tests.conftest import LiveServer
from tests.factories import make_world
from tests.live_action_helpers import live_path
from tests.stage.test_video_relay import pin_interpreter


class Page:
    """A page's live WebSocket that asked to watch video, keeping what it receives."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.binary: list[bytes] = []
        self.ended = False
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, server: LiveServer, w: Any, user: Any, media: list[str]) -> Page:
        ws = await websockets.connect(
            server.ws + live_path(w) + "/ws",
            additional_headers={"Cookie": server.cookie_header(user)},
            open_timeout=10,
        )
        cursors = {channels.plenary(w.session.id): None, channels.personal(user.id): None}
        await ws.send(json.dumps({"type": "hello", "cursors": cursors, "media": media}))
        page = cls(ws)
        await page.wait_for(lambda m: m["t"] == "hello")
        return page

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                if isinstance(message, bytes):
                    self.binary.append(message)
                else:
                    self.messages.append(json.loads(message))
        except websockets.ConnectionClosed:
            pass
        finally:
            self.ended = True

    async def wait_for(self, predicate: Any, timeout: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                for message in self.messages:
                    if predicate(message):
                        return message
                await asyncio.sleep(0.02)

    async def wait_closed(self, timeout: float = 5.0) -> int | None:
        async with asyncio.timeout(timeout):
            await self._task
        return self.ws.close_code

    async def close(self) -> None:
        await self.ws.close()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def frame(*, keyframe: bool) -> bytes:
    return pack(KIND_VIDEO, 0, 0, 0, video_payload(b"v" * 3000, 320, 240, keyframe=keyframe))


async def test_a_late_viewer_gets_a_keyframe_first_asked_of_the_senders_page(
    live_server: LiveServer, db: Any
) -> None:
    w = await make_world(db)
    await pin_interpreter(live_server, w)  # the observer interprets
    early = await Page.open(live_server, w, w.host, ["video"])
    interpreter = await Page.open(live_server, w, w.observer, [])
    await interpreter.ws.send(frame(keyframe=True) + frame(keyframe=False))
    async with asyncio.timeout(5):
        while len(early.binary) < 1:
            await asyncio.sleep(0.02)
    assert not [m for m in interpreter.messages if m["t"] == "keyframe"]  # none needed
    late = await Page.open(live_server, w, w.participant_a, ["interpreter"])
    await interpreter.ws.send(frame(keyframe=False))  # a delta the late viewer must not get
    await interpreter.wait_for(lambda m: m["t"] == "keyframe")
    await interpreter.ws.send(frame(keyframe=True))
    async with asyncio.timeout(5):
        while not late.binary or len(unpack(b"".join(early.binary))) < 4:
            await asyncio.sleep(0.02)
    first = unpack(b"".join(late.binary))[0]
    assert first.source == w.observer.id and frame_header(first.payload)[0]
    assert [p.seq for p in unpack(b"".join(early.binary))] == [0, 1, 2, 3]
    for page in (early, interpreter, late):
        await page.close()


async def test_a_page_without_a_tile_is_told_not_pinned_and_stays_connected(
    live_server: LiveServer, db: Any
) -> None:
    w = await make_world(db)
    viewer = await Page.open(live_server, w, w.participant_b, ["audio", "video"])
    sender = await Page.open(live_server, w, w.participant_a, ["video"])
    for n in range(10):
        await sender.ws.send(frame(keyframe=n == 0))
    refusal = await sender.wait_for(lambda m: m["t"] == "error")
    assert refusal["code"] == "not_pinned" and "stage" in refusal["message"]
    await sender.ws.send(json.dumps({"type": "ping", "n": 5}))
    await sender.wait_for(lambda m: m["t"] == "pong")
    await asyncio.sleep(0.3)
    # Told once for the ten frames sent within a second; nobody received them.
    assert [m["t"] for m in sender.messages].count("error") == 1
    assert not sender.ended
    assert viewer.binary == [] and sender.binary == []
    await sender.close()
    await viewer.close()


async def test_audio_or_a_malformed_frame_from_a_page_closes_it(
    live_server: LiveServer, db: Any
) -> None:
    w = await make_world(db)
    for data in (
        pack(KIND_AUDIO, 0, 0, 0, b"opus"),
        b"\x02\x00\x00\x00",
        pack(KIND_VIDEO, 0, 0, 0, b"\x01\x00"),
    ):
        page = await Page.open(live_server, w, w.participant_a, ["video"])
        await page.ws.send(data)
        assert await page.wait_closed() == 1003


async def test_the_fallbacks_take_media_lists_and_refuse_unknown_names(
    live_server: LiveServer, db: Any
) -> None:
    w = await make_world(db)
    cursors = f"{channels.plenary(w.session.id)}="
    async with live_server.client(w.participant_a) as http:
        polled = await http.get(
            live_path(w) + "/poll",
            params={
                "cursors": cursors,
                "wait": 0,
                "media": "audio,video",
                "listener": "page-0123456789abcdef",
            },
        )
        assert polled.status_code == 200, polled.text
        interpreter = await http.get(
            live_path(w) + "/poll", params={"cursors": cursors, "wait": 0, "media": "interpreter"}
        )
        assert interpreter.status_code == 200, interpreter.text
        unknown = await http.get(
            live_path(w) + "/poll", params={"cursors": cursors, "wait": 0, "media": "smell"}
        )
        assert 400 <= unknown.status_code < 500
        assert "media" in unknown.text
