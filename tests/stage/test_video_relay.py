"""A tile's frames through the real server: the pinned interpreter's frames reach the
plenary's viewers who asked for video, by WebSocket and by POST; nobody else sends as a
tile, a viewer in a breakout room or with video off gets none, and the POST's refusals."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets
from sqlalchemy.ext.asyncio import AsyncSession

from app.live import channels
from realtime.media import KIND_AUDIO, KIND_VIDEO, pack, unpack
from realtime.video import video_payload
from tests.conftest import LiveServer
from tests.factories import World, make_world
from tests.live_action_helpers import act, live_path, open_rooms

FRAME = video_payload(b"\x9d\x01\x2a" + bytes(800), 320, 240, keyframe=True)
DELTA = video_payload(bytes(300), 320, 240, keyframe=False)


class Page:
    """A live page's WebSocket: what it receives as text and as media."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.texts: list[dict[str, Any]] = []
        self.video: list[tuple[int, bytes]] = []
        self.task = asyncio.create_task(self._read())

    @classmethod
    async def open(
        cls, server: LiveServer, user: Any, w: World, channel: str, media: list[str]
    ) -> Page:
        ws = await websockets.connect(
            server.ws + live_path(w) + "/ws",
            additional_headers={"Cookie": server.cookie_header(user)},
            open_timeout=10,
        )
        page = cls(ws)
        await ws.send(json.dumps({"type": "hello", "cursors": {channel: None}, "media": media}))
        await page.until(lambda: any(t.get("t") == "hello" for t in page.texts))
        return page

    async def _read(self) -> None:
        async for message in self.ws:
            if isinstance(message, bytes):
                self.video += [
                    (p.source, p.payload) for p in unpack(message) if p.kind == KIND_VIDEO
                ]
            else:
                self.texts.append(json.loads(message))

    async def until(self, done: Any, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not done():
                await asyncio.sleep(0.02)

    async def send_frames(self, *payloads: bytes) -> None:
        await self.ws.send(b"".join(pack(KIND_VIDEO, 0, n, 0, p) for n, p in enumerate(payloads)))

    async def close(self) -> None:
        await self.ws.close()
        self.task.cancel()


async def pin_interpreter(server: LiveServer, w: World) -> None:
    named = await act(
        server,
        w.host,
        live_path(w) + "/stage/roles",
        {"user_id": w.observer.id, "role": "interpreter"},
    )
    assert named.status_code == 200, named.text
    pinned = await act(
        server,
        w.host,
        live_path(w) + "/stage/tiles/pin",
        {"user_id": w.observer.id, "kind": "interpreter"},
    )
    assert pinned.status_code == 200, pinned.text


async def test_the_pinned_interpreter_reaches_the_plenary_viewers_only(
    live_server: LiveServer, db: AsyncSession
) -> None:
    w = await make_world(db)
    plenary = channels.plenary(w.session.id)
    await open_rooms(live_server, w)
    await pin_interpreter(live_server, w)
    # The host stays in the plenary; participant A is in group A's room.
    viewer = await Page.open(live_server, w.host, w, plenary, ["video"])
    video_off = await Page.open(live_server, w.it_support, w, plenary, [])
    in_room = await Page.open(
        live_server, w.participant_a, w, channels.room(w.session.id, w.group_a.id), ["video"]
    )
    interpreter = await Page.open(live_server, w.observer, w, plenary, [])
    # Asked for a keyframe: a new viewer of its tile.
    await interpreter.send_frames(FRAME, DELTA, DELTA)
    await viewer.until(lambda: len(viewer.video) >= 3)
    assert {source for source, _ in viewer.video} == {w.observer.id}
    assert viewer.video[0][1] == FRAME
    # A participant who is not pinned: told so, and nobody gets their frames.
    sneaky = await Page.open(live_server, w.it_support, w, plenary, [])
    await sneaky.send_frames(FRAME)
    await sneaky.until(lambda: any(t.get("code") == "not_pinned" for t in sneaky.texts))
    await asyncio.sleep(0.3)
    assert {source for source, _ in viewer.video} == {w.observer.id}
    assert in_room.video == [] and video_off.video == []
    for page in (viewer, video_off, in_room, interpreter, sneaky):
        await page.close()


async def test_frames_by_post_when_websockets_are_blocked(
    live_server: LiveServer, db: AsyncSession
) -> None:
    w = await make_world(db)
    plenary = channels.plenary(w.session.id)
    url = live_path(w) + "/video"
    body = pack(KIND_VIDEO, 0, 1, 0, FRAME) + pack(KIND_VIDEO, 0, 2, 0, DELTA)
    octets = {"Content-Type": "application/octet-stream", "HX-Request": "true"}
    async with live_server.client(w.observer) as http:
        refused = await http.post(url, content=body, headers=octets)
        assert refused.status_code == 403
        assert refused.text.startswith("Your video is not on the stage here")
    await pin_interpreter(live_server, w)
    viewer = await Page.open(live_server, w.host, w, plenary, ["interpreter"])
    async with live_server.client(w.observer) as http:
        sent = await http.post(url, content=body, headers=octets)
        assert sent.status_code == 200, sent.text
        assert sent.json()["ok"] is True and sent.json()["keyframe"] is True
        await viewer.until(lambda: len(viewer.video) >= 2)
        assert viewer.video[0] == (w.observer.id, FRAME)
        # The refusals, each a plain message.
        wrong_type = await http.post(
            url, content=body, headers={**octets, "Content-Type": "text/plain"}
        )
        assert wrong_type.status_code == 415 and "octet-stream" in wrong_type.text
        audio = await http.post(url, content=pack(KIND_AUDIO, 0, 1, 0, b"x" * 10), headers=octets)
        assert audio.status_code == 400 and "Only video packets" in audio.text
        cut = await http.post(url, content=body[:-5], headers=octets)
        assert cut.status_code == 400 and "media packets" in cut.text
        huge = await http.post(url, content=bytes(200_000), headers=octets)
        assert huge.status_code == 413
        no_csrf = await http.post(url, content=body, headers={**octets, "X-CSRF-Token": "forged"})
        assert no_csrf.status_code == 403 and "expired" in no_csrf.text
    # Someone outside the programme.
    async with live_server.client(w.outsider) as http:
        outside = await http.post(url, content=body, headers=octets)
        assert outside.status_code == 404
    await viewer.close()


async def test_a_stopped_tile_ends_its_sender_at_once(
    live_server: LiveServer, db: AsyncSession
) -> None:
    w = await make_world(db)
    plenary = channels.plenary(w.session.id)
    await pin_interpreter(live_server, w)
    viewer = await Page.open(live_server, w.host, w, plenary, ["video"])
    interpreter = await Page.open(live_server, w.observer, w, plenary, [])
    await interpreter.send_frames(FRAME)
    await viewer.until(lambda: len(viewer.video) >= 1)
    state = live_server.app_state
    assert state.video.tiles(plenary) == {w.observer.id: "interpreter"}
    async with live_server.client(w.host) as http:
        page = await http.get(live_path(w))
    tile_id = page.text.split('data-tile-id="')[1].split('"')[0]
    stopped = await act(live_server, w.host, live_path(w) + f"/stage/tiles/{tile_id}/stop")
    assert stopped.status_code == 200
    assert state.video.tiles(plenary) == {}
    before = len(viewer.video)
    await interpreter.send_frames(FRAME)
    await interpreter.until(lambda: any(t.get("code") == "not_pinned" for t in interpreter.texts))
    await asyncio.sleep(0.2)
    assert len(viewer.video) == before
    await viewer.close()
    await interpreter.close()
