"""The voice router on its own (realtime/voice.py, realtime/media.py): silence is not sent,
one talker is forwarded unchanged, several are mixed with each talker's own voice left
out, rooms never leak into each other, and a listener never falls more than half a second
behind."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from realtime.media import INBOX_PACKETS, BadMedia, MediaInbox, pack, unpack
from realtime.voice import VoiceRouter
from tests.voice.voice_helpers import opus_of, tone

LOUD = tone(440, 0.02)
QUIET = bytes(1920)


def packets_of(inbox: MediaInbox, rooms: set[str] | None = None) -> list:
    return unpack(inbox.drain(rooms if rooms is not None else inbox.rooms))


def sent(router: VoiceRouter) -> None:
    """What the mixer's timer would send on its next tick, sent now."""
    router._tick(time.monotonic())


def test_packets_pack_and_unpack_and_cut_ones_are_refused() -> None:
    data = pack(1, 42, 70000, 5, b"abc") + pack(1, 0, 1, 2**33, b"")
    first, second = unpack(data)
    assert (first.source, first.seq, first.payload) == (42, 70000 % 65536, b"abc")
    assert second.payload == b"" and second.ts_ms == 0
    with pytest.raises(BadMedia):
        unpack(data[:-1] + b"\x00\x01")
    with pytest.raises(BadMedia):
        unpack(data[:5])
    with pytest.raises(BadMedia):
        pack(1, 1, 1, 1, bytes(4001))


def test_one_talker_is_forwarded_to_everyone_else_in_the_room_only() -> None:
    router = VoiceRouter()
    me, you, elsewhere = (MediaInbox(member=m) for m in ("1", "2", "3"))
    router.hear(me, {"room-a"})
    router.hear(you, {"room-a"})
    router.hear(elsewhere, {"room-b"})
    line = router.speaker("room-a", 1)
    opus = opus_of(tone(440, 0.1))
    line.packet(opus[0], QUIET)  # silence is not sent
    sent(router)
    assert not you
    for packet in opus[1:]:
        line.packet(packet, LOUD)
    sent(router)
    got = packets_of(you)
    assert [p.payload for p in got] == opus[1:] and {p.source for p in got} == {1}
    assert [p.seq for p in got] == list(range(len(got)))
    assert not me and not elsewhere
    assert router.talking_in("room-a") == (1,)
    # Moved: heard in the new room only.
    line.move("room-b")
    line.packet(opus[1], LOUD)
    sent(router)
    assert not you and packets_of(elsewhere)[0].source == 1
    line.close()
    router.hear(me, set())
    router.hear(you, set())
    router.hear(elsewhere, set())
    assert router.rooms == {}


async def test_several_talkers_are_mixed_minus_their_own_voice() -> None:
    router = VoiceRouter()
    await router.start()
    try:
        a, b, c = (MediaInbox(member=m) for m in ("1", "2", "3"))
        for inbox in (a, b, c):
            router.hear(inbox, {"room"})
        low, high = router.speaker("room", 1), router.speaker("room", 2)
        low_pcm, high_pcm = tone(300, 1.0), tone(2000, 1.0)
        low_opus, high_opus = opus_of(low_pcm), opus_of(high_pcm)
        for n in range(40):
            frame = slice(n * 1920, (n + 1) * 1920)
            low.packet(low_opus[n], low_pcm[frame])
            high.packet(high_opus[n], high_pcm[frame])
            await asyncio.sleep(0.02)
        assert router.talking_in("room") == (1, 2)
        for inbox in (a, b, c):
            mixed = [p for p in packets_of(inbox) if p.source == 0]
            assert len(mixed) >= 5, inbox.member
        assert router.mixed > 20
    finally:
        await router.stop()


def test_a_slow_listener_keeps_only_the_last_half_second() -> None:
    inbox = MediaInbox(member="9")
    for n in range(INBOX_PACKETS + 10):
        inbox.offer("room", pack(1, 1, n, 0, b"x"))
    got = packets_of(inbox, {"room"})
    assert len(got) == INBOX_PACKETS and got[0].seq == 10 and inbox.dropped == 10
    # What came from a room the listener has left is not handed out.
    inbox.offer("old", pack(1, 1, 0, 0, b"x"))
    assert packets_of(inbox, {"room"}) == []


def test_raw_pcm_is_encoded_for_the_listeners() -> None:
    router = VoiceRouter()
    you = MediaInbox(member="2")
    router.hear(you, {"room"})
    line = router.speaker("room", 1)
    for _ in range(5):
        line.packet(None, LOUD)
    sent(router)
    got = packets_of(you)
    assert len(got) == 5 and all(p.payload for p in got)
    assert np.frombuffer(LOUD, dtype=np.int16).max() > 1000


def test_a_flood_is_cut_to_real_time() -> None:
    router = VoiceRouter()
    you = MediaInbox(member="2", size=1000)
    router.hear(you, {"room"})
    line = router.speaker("room", 1)
    opus = opus_of(tone(440, 0.02))[0]
    for _ in range(200):  # four seconds of audio at once
        line.packet(opus, LOUD)
    sent(router)
    assert len(packets_of(you)) <= 52 and line.flooded >= 148
