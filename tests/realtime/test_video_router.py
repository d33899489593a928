"""The video router on its own (realtime/video.py): a tile's frames reach the viewers of its
room who watch its kind, and nobody else; frames over a sender's limits are dropped; a
viewer's decoder never gets a delta frame after a gap (a full inbox drops to the next
keyframe and asks for one); keyframe requests are rate-limited; a new viewer asks for one;
a stopped tile's frames are refused."""

from __future__ import annotations

import pytest

from realtime.media import KIND_VIDEO, BadMedia, Packet, unpack
from realtime.video import (
    INTERPRETER,
    KEYFRAME_GAP,
    MAX_BYTES_2S,
    MAX_FPS,
    PRESENTER,
    TILE_KINDS,
    VideoInbox,
    VideoRouter,
    frame_header,
    video_payload,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def key(size: int = 2000, w: int = 320, h: int = 240) -> bytes:
    return video_payload(b"K" * size, w, h, keyframe=True)


def delta(size: int = 300, w: int = 320, h: int = 240) -> bytes:
    return video_payload(b"d" * size, w, h, keyframe=False)


class Asks:
    """A sender's keyframe requests, counted."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def got(inbox: VideoInbox) -> list[Packet]:
    return unpack(inbox.drain()) if inbox else []


def keyframes(packets: list[Packet]) -> list[bool]:
    return [frame_header(p.payload)[0] for p in packets]


def viewer(router: VideoRouter, member: str, rooms: set[str], kinds: set[str]) -> VideoInbox:
    inbox = VideoInbox(member=member)
    router.watch(inbox, rooms, kinds)
    return inbox


def test_a_tile_reaches_the_viewers_of_its_room_and_kind_only() -> None:
    router = VideoRouter(clock=Clock())
    everything = viewer(router, "2", {"room-a"}, set(TILE_KINDS))
    interpreter_only = viewer(router, "3", {"room-a"}, {INTERPRETER})
    other_room = viewer(router, "4", {"room-b"}, set(TILE_KINDS))
    video_off = viewer(router, "5", set(), set())
    own_page = viewer(router, "1", {"room-a"}, set(TILE_KINDS))
    presenter = router.sender("room-a", 1, PRESENTER, Asks())
    interpreter = router.sender("room-a", 9, INTERPRETER, Asks())
    assert router.tiles("room-a") == {1: PRESENTER, 9: INTERPRETER}

    assert presenter.frame(key()) and presenter.frame(delta())
    frames = everything.drain()
    both = unpack(frames)
    assert [p.kind for p in both] == [KIND_VIDEO, KIND_VIDEO]
    assert [(p.source, p.seq) for p in both] == [(1, 0), (1, 1)]
    assert keyframes(both) == [True, False] and both[0].payload == key()
    assert not interpreter_only and not other_room and not video_off and not own_page

    assert interpreter.frame(key())
    one = everything.drain()
    # One bytes object for every viewer: the packet is made once, not copied per viewer.
    assert interpreter_only.drain() is one
    assert unpack(one)[0].source == 9
    assert not other_room and not video_off


def test_malformed_payloads_raise_and_frames_over_the_limits_are_dropped() -> None:
    clock = Clock()
    router = VideoRouter(clock=clock)
    watcher = viewer(router, "2", {"room-a"}, {PRESENTER})
    asks = Asks()
    sender = router.sender("room-a", 1, PRESENTER, asks)
    for bad in (b"", b"\x01\x00\x10\x00\x10", video_payload(b"x", 0, 240, keyframe=True)):
        with pytest.raises(BadMedia):
            sender.frame(bad)
    assert not sender.frame(key(48_000))  # 48,005 bytes of payload
    assert not sender.frame(key(w=800, h=200))
    assert not sender.frame(key(w=640, h=640))
    assert sender.frame(key(w=480, h=640))  # portrait fits
    assert sender.dropped == 3 and router.dropped == 3
    assert [p.payload for p in got(watcher)] == [key(w=480, h=640)]

    # Frames per second: the 31st within a second is dropped, and deltas after it wait
    # for a keyframe (a viewer's decoder must not get a delta after a gap).
    clock.now += 1.0
    sent = [sender.frame(key() if n == 0 else delta()) for n in range(MAX_FPS + 1)]
    assert sent == [True] * MAX_FPS + [False]
    clock.now += 1.0
    assert not sender.frame(delta())
    assert sender.frame(key())
    assert keyframes(got(watcher)) == [True] + [False] * (MAX_FPS - 1) + [True]
    assert asks.count >= 1

    # Bytes: 1.5 Mbit/s over any two seconds.
    clock.now += 2.0
    big = MAX_BYTES_2S // 8
    accepted = 0
    for _ in range(12):
        clock.now += 0.05
        accepted += sender.frame(key(big - 5))
    assert accepted == 8 and sender.dropped == 3 + 1 + 4


def test_a_full_inbox_drops_to_the_next_keyframe_or_waits_for_one() -> None:
    inbox = VideoInbox(member="2", max_bytes=10_000, max_seconds=1.0)
    t = 0.0
    # Key, deltas, key, deltas: overflowing drops the first run only.
    for n, is_key in enumerate([True, False, False, True, False]):
        assert not inbox.offer("r", 1, b"%d" % n + bytes(1900 if is_key else 900), is_key, t)
    # Over the bytes: the run up to the queued keyframe goes; no keyframe needed.
    assert not inbox.offer("r", 1, b"5" + bytes(5000), False, t)
    assert [p[0:1] for p in (e[2] for e in inbox._queue)] == [b"3", b"4", b"5"]
    assert inbox.dropped == 3

    # Too old and no later keyframe queued: everything of that source goes, it asks for a
    # keyframe, and deltas are skipped until one comes.
    assert inbox.offer("r", 1, b"6" + bytes(10), False, t + 1.5)
    assert not inbox
    assert inbox.offer("r", 1, b"7" + bytes(10), False, t + 1.6)
    assert not inbox and inbox.skipped == 1
    assert not inbox.offer("r", 1, b"8" + bytes(10), True, t + 1.7)
    assert inbox.drain()[:1] == b"8"


def test_a_slow_viewer_gets_fewer_frames_never_a_delta_after_a_gap() -> None:
    clock = Clock()
    router = VideoRouter(clock=clock)
    asks = Asks()
    sender = router.sender("room-a", 1, PRESENTER, asks)
    slow = viewer(router, "2", {"room-a"}, {PRESENTER})
    fast = viewer(router, "3", {"room-a"}, {PRESENTER})
    asks.count = 0
    clock.now += 1.0
    delivered: list[Packet] = []
    for n in range(90):  # six seconds at 15 fps, a keyframe every two seconds
        clock.now += 1 / 15
        sender.frame(key(25_000) if n % 30 == 0 else delta(3_000))
        got(fast)
        if n % 20 == 19:  # the slow one drains every 1.33 s
            delivered += got(slow)
    assert slow.dropped > 0 and asks.count >= 1
    assert keyframes(delivered)[0]
    for before, after in zip(delivered, delivered[1:], strict=False):
        if after.seq != before.seq + 1:
            assert frame_header(after.payload)[0], (before.seq, after.seq)


def test_keyframe_requests_are_rate_limited_and_a_new_viewer_asks_for_one() -> None:
    clock = Clock()
    router = VideoRouter(clock=clock)
    asks = Asks()
    sender = router.sender("room-a", 1, PRESENTER, asks)
    first = viewer(router, "2", {"room-a"}, {PRESENTER})
    assert asks.count == 1  # a new viewer of a tile
    assert sender.frame(delta())  # relayed, but not to a viewer that has no keyframe yet
    assert not first
    assert sender.frame(key())
    assert keyframes(got(first)) == [True]

    clock.now += 0.1
    second = viewer(router, "3", {"room-a"}, {PRESENTER})
    viewer(router, "4", {"room-a"}, {PRESENTER})
    assert asks.count == 1  # within KEYFRAME_GAP of the last: pending, not sent
    sender.frame(delta())
    assert asks.count == 1 and not second
    clock.now += KEYFRAME_GAP
    sender.frame(delta())  # the next frame after the gap makes the pending request
    assert asks.count == 2
    sender.frame(key())
    assert keyframes(got(second)) == [True]
    clock.now += KEYFRAME_GAP
    sender.frame(delta())
    assert asks.count == 2  # the keyframe answered it


def test_watching_moving_and_stopping_tiles() -> None:
    clock = Clock()
    router = VideoRouter(clock=clock)
    asks = Asks()
    sender = router.sender("room-a", 1, PRESENTER, asks)
    in_a = viewer(router, "2", {"room-a"}, set(TILE_KINDS))
    in_b = viewer(router, "3", {"room-b"}, set(TILE_KINDS))
    sender.frame(key())
    sender.frame(delta())
    # Switching to "interpreter only" drops what was queued of the presenter.
    router.watch(in_a, {"room-a"}, {INTERPRETER})
    assert not in_a
    router.watch(in_a, {"room-a"}, set(TILE_KINDS))
    sender.frame(delta())
    assert not in_a  # back again: from a keyframe on

    clock.now += 1.0
    asked = asks.count
    sender.move("room-b")
    assert asks.count == asked + 1
    sender.frame(key())
    assert not in_a and keyframes(got(in_b)) == [True]
    assert router.tiles("room-a") == {} and router.tiles("room-b") == {1: PRESENTER}

    router.stop("room-b", 1)
    assert router.tiles("room-b") == {}
    assert not sender.frame(key()) and not in_b
    for inbox in (in_a, in_b):
        router.watch(inbox, set(), set())
    assert router.rooms == {}
