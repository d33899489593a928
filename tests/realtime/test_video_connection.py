"""Video through the owner of a live connection (realtime/live_connection.py,
realtime/video_link.py), with an Access made up here (the realtime package's own
interface, as tests/realtime/test_live_connection.py does): a pinned sender's frames reach
the viewers of its room, with the server's source; keyframe requests reach the sender's
page; an unpinned sender is told, not closed; malformed frames close; media has a budget of
its own; the sender line follows the app's answer."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from app.state import AppState
from realtime.broker import InProcessBroker
from realtime.hub import RECHECK, Hub
from realtime.live_connection import (
    MAX_FRAMES_PER_10S,
    MAX_MEDIA_PACKETS_PER_10S,
    Close,
    Cursors,
    LiveConnection,
)
from realtime.media import KIND_AUDIO, KIND_VIDEO, pack, unpack
from realtime.video import INTERPRETER, PRESENTER, VideoRouter, frame_header, video_payload


@pytest.fixture
async def hub(app_and_state: tuple[Any, AppState]) -> AsyncIterator[Hub]:
    hub = Hub(InProcessBroker(), app_and_state[1].sessionmaker)
    await hub.start(heartbeat_seconds=60)
    yield hub
    await hub.stop()


class StageAccess:
    """Follows any room; hears and watches the rooms followed; sends `tile` (a recheck
    keeps the channels and asks for the tile again)."""

    signals: str | None
    stale_on: tuple[str, ...] = ()
    recheck_every: float | None = None

    def __init__(self, member: int, tile: tuple[str, str] | None = None) -> None:
        self.member = str(member)
        self.signals = f"u{member}"
        self.tile = tile

    async def authorize(self, cursors: Cursors, *, stale: bool) -> tuple[Cursors, list[str]]:
        return dict(cursors), []

    async def recheck(self, cursors: Mapping[str, int]) -> Cursors:
        return dict.fromkeys(cursors)

    def audible(self, channels: set[str]) -> set[str]:
        return set(channels)

    def video_tile(self, channels: set[str]) -> tuple[str, str] | None:
        return self.tile


def frame(*, keyframe: bool, size: int = 1200, claimed_source: int = 999) -> bytes:
    payload = video_payload(b"v" * size, 320, 240, keyframe=keyframe)
    return pack(KIND_VIDEO, claimed_source, 0, 0, payload)


async def connect(
    hub: Hub, router: VideoRouter, access: StageAccess, room: str, media: list[str]
) -> LiveConnection:
    live = LiveConnection(hub, access, transport="websocket", video=router)
    hello = {"type": "hello", "cursors": {room: None}, "media": media}
    replies = await live.receive_text(json.dumps(hello))
    assert json.loads(replies[0])["t"] == "hello"
    return live


@pytest.fixture
def video_router() -> VideoRouter:
    return VideoRouter()


async def media_of(live: LiveConnection) -> list[bytes]:
    return [m for m in await live.next_nowait() if isinstance(m, bytes)]


async def test_a_pinned_senders_frames_reach_the_viewers_of_its_room_only(
    hub: Hub, video_router: VideoRouter
) -> None:
    sender = await connect(hub, video_router, StageAccess(7, ("room-a", INTERPRETER)), "room-a", [])
    everything = await connect(hub, video_router, StageAccess(8), "room-a", ["video"])
    interpreter_only = await connect(
        hub, video_router, StageAccess(9), "room-a", ["audio", "interpreter"]
    )
    video_off = await connect(hub, video_router, StageAccess(10), "room-a", ["audio"])
    other_room = await connect(hub, video_router, StageAccess(11), "room-b", ["video"])

    assert await sender.receive_media(frame(keyframe=True) + frame(keyframe=False)) == []
    assert video_router.tiles("room-a") == {7: INTERPRETER}
    for viewer in (everything, interpreter_only):
        (chunk,) = await media_of(viewer)
        packets = unpack(chunk)
        # The source is the sender's, whatever its page put there; seq counts its frames.
        assert [(p.kind, p.source, p.seq) for p in packets] == [
            (KIND_VIDEO, 7, 0),
            (KIND_VIDEO, 7, 1),
        ]
        assert [frame_header(p.payload)[0] for p in packets] == [True, False]
    assert await media_of(video_off) == [] and await media_of(other_room) == []

    await sender.close()
    assert video_router.tiles("room-a") == {}
    for live in (everything, interpreter_only, video_off, other_room):
        await live.close()
    assert video_router.rooms == {}


async def test_a_new_viewer_has_a_keyframe_asked_of_the_senders_page(
    hub: Hub, video_router: VideoRouter
) -> None:
    sender = await connect(hub, video_router, StageAccess(7, ("room-a", PRESENTER)), "room-a", [])
    await sender.receive_media(frame(keyframe=True))
    assert await sender.next_nowait() == []
    viewer = await connect(hub, video_router, StageAccess(8), "room-a", ["video"])
    assert await sender.next_nowait() == ['{"t":"keyframe"}']
    await sender.receive_media(frame(keyframe=False))
    assert await media_of(viewer) == []  # no delta before its first keyframe
    await sender.receive_media(frame(keyframe=True))
    (chunk,) = await media_of(viewer)
    assert frame_header(unpack(chunk)[0].payload)[0]
    for live in (sender, viewer):
        await live.close()


async def test_an_unpinned_sender_is_told_at_most_once_a_second_and_not_closed(
    hub: Hub, video_router: VideoRouter
) -> None:
    viewer = await connect(hub, video_router, StageAccess(8), "room-a", ["video"])
    sender = await connect(hub, video_router, StageAccess(7), "room-a", [])
    first = await sender.receive_media(frame(keyframe=True))
    assert [json.loads(m)["code"] for m in first] == ["not_pinned"]
    for _ in range(5):
        assert await sender.receive_media(frame(keyframe=True)) == []
    assert await media_of(viewer) == [] and video_router.tiles("room-a") == {}
    # Still open: text frames are answered.
    assert await sender.receive_text('{"type":"ping","n":1}') == ['{"t":"pong","n":1}']
    for live in (sender, viewer):
        await live.close()


@pytest.mark.parametrize(
    "data",
    [
        b"\x02\x00\x00",  # a header cut short
        pack(KIND_AUDIO, 7, 0, 0, b"opus"),  # audio from a page
        pack(9, 7, 0, 0, b"what"),  # no such kind
        pack(KIND_VIDEO, 7, 0, 0, b"\x01\x01\x40"),  # no width, height or frame
        pack(KIND_VIDEO, 7, 0, 0, video_payload(b"v", 0, 0, keyframe=True)),
    ],
)
async def test_malformed_binary_frames_close_the_connection(
    hub: Hub, video_router: VideoRouter, data: bytes
) -> None:
    for tile in (("room-a", PRESENTER), None):
        sender = await connect(hub, video_router, StageAccess(7, tile), "room-a", [])
        with pytest.raises(Close) as closed:
            await sender.receive_media(data)
        assert closed.value.code == 1003
        await sender.close()


async def test_media_has_a_budget_of_its_own(hub: Hub, video_router: VideoRouter) -> None:
    sender = await connect(hub, video_router, StageAccess(7, ("room-a", PRESENTER)), "room-a", [])
    for _ in range(MAX_FRAMES_PER_10S + 10):  # more than the text budget: still fine
        await sender.receive_media(frame(keyframe=False, size=100))
    assert await sender.receive_text('{"type":"ping","n":2}') == ['{"t":"pong","n":2}']
    with pytest.raises(Close) as closed:
        for _ in range(MAX_MEDIA_PACKETS_PER_10S):
            await sender.receive_media(frame(keyframe=False, size=100))
    assert closed.value.code == 1008
    await sender.close()


async def test_the_sender_line_follows_the_apps_answer_after_a_recheck(
    hub: Hub, video_router: VideoRouter
) -> None:
    access = StageAccess(7, ("room-a", PRESENTER))
    sender = await connect(hub, video_router, access, "room-a", [])
    await sender.receive_media(frame(keyframe=True))
    assert video_router.tiles("room-a") == {7: PRESENTER}

    access.tile = ("room-b", PRESENTER)  # moved to a breakout room with their camera
    await hub.broker.publish("u7", RECHECK)
    await sender.next(timeout=1)
    assert video_router.tiles("room-a") == {} and video_router.tiles("room-b") == {7: PRESENTER}

    access.tile = None  # unpinned
    await hub.broker.publish("u7", RECHECK)
    await sender.next(timeout=1)
    assert video_router.rooms == {}
    refused = await sender.receive_media(frame(keyframe=True))
    assert [json.loads(m)["code"] for m in refused] == ["not_pinned"]

    # Stopped by a host: refused until the app's answer changes.
    access.tile = ("room-a", INTERPRETER)
    await hub.broker.publish("u7", RECHECK)
    await sender.next(timeout=1)
    await sender.receive_media(frame(keyframe=True))
    video_router.stop("room-a", 7)
    assert video_router.tiles("room-a") == {}
    await sender.receive_media(frame(keyframe=True))
    assert video_router.tiles("room-a") == {}
    await sender.close()
