"""Voice: each room's speakers routed to its listeners (docs/voice.md).

Every speaker uploads one Opus stream, which the microphone decodes once (for the captions
too) and hands here, packet by packet, with its PCM (`SpeakerLine.packet`). The router
looks at how loud each packet is: someone who is not talking sends nothing on to anyone
(silence is not forwarded), and a speaker counts as talking until `HANGOVER` seconds after
their last loud packet. Then, per room:

- **one person talking** (the usual case: a presenter, or a turn in a conversation): their
  packets are forwarded unchanged, at once, to everyone in the room but themselves. No
  decoding or encoding on the way, and each listener receives one speaker's bitrate.
- **several talking at once**: a mixer (one timer for all rooms, every 20 ms) adds their
  audio and encodes it once for the room's listeners, and once for each of the talkers
  without their own voice (mix-minus). Each listener still receives one stream.

So a listener's download never grows with the number of people talking. Rooms being
recorded (or heard through the server-encoded `<audio>` stream) are mixed every 20 ms
whatever happens, silence included, for their taps.

The router knows rooms (channel names), members (the strings a live connection is for) and
sources (a speaker's number in the packet header); who may speak where is the app's."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from realtime.media import KIND_AUDIO, MediaInbox, pack
from realtime.opus import FRAME_SAMPLES, SILENCE, OpusEncoder

log = logging.getLogger(__name__)

TICK = 0.020
# Listeners are sent what waits for them every SEND_EVERY ticks (40 ms): one write for two
# packets halves the work of sending, for 20 ms more delay on average.
SEND_EVERY = 2
# A packet this loud (RMS of 16-bit samples) is speech; quieter ones are not sent on.
SPEECH_RMS = 200.0
# A talker counts as talking for this long after their last loud packet (the ends of words).
HANGOVER = 0.6
# Frames of a talker's audio kept for the mixer; more means they have drifted ahead.
MIX_QUEUE = 3
# A speaker may send this many packets ahead of real time (a reconnecting microphone
# flushes what it kept); beyond that a flood is cut to real time.
BURST_PACKETS = 50
# A long-polling listener's inbox is kept this long between two polls.
MAILBOX_SECONDS = 10.0

# Told (room, sources talking now) when who is talking in a room changes.
ActiveHook = Callable[[str, tuple[int, ...]], None]


def loudness(pcm: bytes) -> float:
    if not pcm:
        return 0.0
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float32)
    return float(np.sqrt(np.dot(samples, samples) / len(samples)))


def clock_ms() -> int:
    return int(time.monotonic() * 1000)


class Tap:
    """A room's mix every 20 ms, silence included, for a recording or an audio stream."""

    def __init__(self, router: VoiceRouter, room: str, on_frame: Callable[[bytes], None]) -> None:
        self.router = router
        self.room = room
        self.on_frame = on_frame

    def close(self) -> None:
        self.router._untap(self)


class SpeakerLine:
    """One speaker's stream into the router, in one room at a time."""

    def __init__(self, router: VoiceRouter, room: str, source: int) -> None:
        self.router = router
        self.room = room
        self.source = source
        self.member = str(source)
        self.seq = 0
        self.last_loud = -1e9
        self.pending: deque[bytes] = deque(maxlen=MIX_QUEUE)
        self.encoder: OpusEncoder | None = None  # only for speakers who send raw PCM
        self.closed = False
        # Packets allowed now: one more every 20 ms, at most BURST_PACKETS.
        self.allowance = float(BURST_PACKETS)
        self.allowance_at = time.monotonic()
        self.flooded = 0

    def within_real_time(self, now: float) -> bool:
        self.allowance = min(
            float(BURST_PACKETS), self.allowance + (now - self.allowance_at) / TICK
        )
        self.allowance_at = now
        if self.allowance < 1.0:
            self.flooded += 1
            return False
        self.allowance -= 1.0
        return True

    def talking(self, now: float) -> bool:
        return now - self.last_loud <= HANGOVER

    def packet(self, opus: bytes | None, pcm: bytes | None) -> None:
        """One 20 ms packet (Opus, or None for raw PCM) and its audio, 960 samples at
        48 kHz (None when it could not be decoded: then it is forwarded as it is)."""
        if self.closed:
            return
        self.router._heard(self, opus, pcm)

    def move(self, room: str) -> None:
        """The speaker is in another room now: what follows is heard there only."""
        if room != self.room and not self.closed:
            self.router._move(self, room)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.router._remove(self)


class Room:
    def __init__(self, name: str) -> None:
        self.name = name
        self.listeners: set[MediaInbox] = set()
        self.lines: set[SpeakerLine] = set()
        self.taps: set[Tap] = set()
        self.talking: tuple[int, ...] = ()
        self.mixing = False
        self.mix_seq = 0
        # The mix for the room's listeners (key 0), and each talker's mix-minus.
        self.encoders: dict[int, OpusEncoder] = {}
        # Packets waiting for the next send: (the members who must not get it, the one
        # member it is for or None for everyone else, the packet).
        self.outgoing: list[tuple[frozenset[str], str | None, bytes]] = []

    def empty(self) -> bool:
        return not (self.listeners or self.lines or self.taps)

    def talkers(self, now: float) -> list[SpeakerLine]:
        return [line for line in self.lines if line.talking(now)]


class VoiceRouter:
    def __init__(self, *, on_active: ActiveHook | None = None) -> None:
        self.rooms: dict[str, Room] = {}
        self.on_active = on_active
        self._mailboxes: dict[tuple[str, str], MediaInbox] = {}
        self._ticker: asyncio.Task[None] | None = None
        self.forwarded = 0
        self.mixed = 0

    # -- lifecycle --

    async def start(self) -> None:
        self._ticker = asyncio.create_task(self._tick_loop(), name="voice-mixer")

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None

    # -- listeners --

    def hear(self, inbox: MediaInbox, rooms: set[str]) -> None:
        """`inbox` hears exactly these rooms from now on (none: it stops)."""
        for name in inbox.rooms - rooms:
            room = self.rooms.get(name)
            if room is not None:
                room.listeners.discard(inbox)
                self._forget_if_empty(room)
        for name in rooms - inbox.rooms:
            self._room(name).listeners.add(inbox)
        inbox.rooms = set(rooms)

    def mailbox(self, member: str, key: str) -> MediaInbox:
        """A long-polling listener's inbox, kept between its polls (`MAILBOX_SECONDS`)."""
        inbox = self._mailboxes.get((member, key))
        if inbox is None:
            inbox = self._mailboxes[(member, key)] = MediaInbox(member=member)
        inbox.touched = time.monotonic()
        return inbox

    # -- speakers and taps --

    def speaker(self, room: str, source: int) -> SpeakerLine:
        line = SpeakerLine(self, room, source)
        self._room(room).lines.add(line)
        return line

    def tap(self, room: str, on_frame: Callable[[bytes], None]) -> Tap:
        tap = Tap(self, room, on_frame)
        self._room(room).taps.add(tap)
        return tap

    def talking_in(self, room: str) -> tuple[int, ...]:
        found = self.rooms.get(room)
        return found.talking if found is not None else ()

    def _untap(self, tap: Tap) -> None:
        room = self.rooms.get(tap.room)
        if room is not None:
            room.taps.discard(tap)
            self._forget_if_empty(room)

    def _room(self, name: str) -> Room:
        room = self.rooms.get(name)
        if room is None:
            room = self.rooms[name] = Room(name)
        return room

    def _forget_if_empty(self, room: Room) -> None:
        if room.empty() and self.rooms.get(room.name) is room:
            del self.rooms[room.name]

    def _move(self, line: SpeakerLine, to: str) -> None:
        self._remove(line)
        line.closed = False
        line.room, line.last_loud = to, -1e9
        line.pending.clear()
        self._room(to).lines.add(line)

    def _remove(self, line: SpeakerLine) -> None:
        room = self.rooms.get(line.room)
        if room is None:
            return
        room.lines.discard(line)
        room.encoders.pop(line.source, None)
        self._update_talking(room, time.monotonic())
        self._forget_if_empty(room)

    # -- routing --

    def _heard(self, line: SpeakerLine, opus: bytes | None, pcm: bytes | None) -> None:
        room = self.rooms.get(line.room)
        now = time.monotonic()
        if room is None or not line.within_real_time(now):
            return
        if pcm is not None:
            if not line.talking(now):
                line.pending.clear()  # what was queued before they spoke is silence
            line.pending.append(pcm)
            if loudness(pcm) >= SPEECH_RMS:
                line.last_loud = now
        elif opus is not None:
            line.last_loud = now  # not decodable here: the listeners' decoders judge
        self._update_talking(room, now)
        if room.mixing or not line.talking(now):
            return
        for payload in self._payloads(line, opus, pcm):
            self._forward(room, line, payload)

    def _payloads(self, line: SpeakerLine, opus: bytes | None, pcm: bytes | None) -> list[bytes]:
        if opus is not None:
            return [opus]
        if pcm is None:
            return []
        if line.encoder is None:
            line.encoder = OpusEncoder()
        return line.encoder.encode(np.frombuffer(pcm, dtype=np.int16))

    def _forward(self, room: Room, line: SpeakerLine, payload: bytes) -> None:
        packet = pack(KIND_AUDIO, line.source, line.seq, clock_ms(), payload)
        line.seq += 1
        self.forwarded += 1
        room.outgoing.append((frozenset((line.member,)), None, packet))

    def _send(self, room: Room) -> None:
        """What the room's listeners have waiting, one chunk each: everything but their own
        voice, and the mix-minus meant for them."""
        outgoing, room.outgoing = room.outgoing, []
        if not outgoing or not room.listeners:
            return
        chunks: dict[tuple[int, ...], tuple[bytes, int]] = {}
        for inbox in room.listeners:
            member = inbox.member
            mine = tuple(
                n
                for n, (exclude, only, _) in enumerate(outgoing)
                if (only == member if only is not None else member not in exclude)
            )
            if not mine:
                continue
            chunk = chunks.get(mine)
            if chunk is None:
                chunk = chunks[mine] = (b"".join(outgoing[n][2] for n in mine), len(mine))
            inbox.offer(room.name, *chunk)

    def _update_talking(self, room: Room, now: float) -> None:
        talkers = room.talkers(now)
        room.mixing = len(talkers) > 1
        talking = tuple(sorted(line.source for line in talkers))
        if talking != room.talking:
            room.talking = talking
            if not room.mixing:
                room.encoders.clear()
            if self.on_active is not None:
                try:
                    self.on_active(room.name, talking)
                except Exception:
                    log.warning("could not tell who is talking", exc_info=True)

    # -- the mixer --

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        sweep = 0
        while True:
            due += TICK
            await asyncio.sleep(max(0.0, due - loop.time()))
            if loop.time() - due > 0.2:
                due = loop.time()  # the loop was held up: carry on from now, no burst
            try:
                sweep += 1
                self._tick(time.monotonic(), send=sweep % SEND_EVERY == 0)
                if sweep % 50 == 0:
                    self._sweep_mailboxes()
            except Exception:
                log.exception("the voice mixer failed a tick")

    def _tick(self, now: float, *, send: bool = True) -> None:
        for room in list(self.rooms.values()):
            self._update_talking(room, now)
            if room.mixing or room.taps:
                self._mix(room, now)
            if send:
                self._send(room)

    def _mix(self, room: Room, now: float) -> None:
        frames: dict[SpeakerLine, np.ndarray] = {}
        for line in room.talkers(now):
            if line.pending:
                frames[line] = np.frombuffer(line.pending.popleft(), dtype=np.int16)
        total = np.zeros(FRAME_SAMPLES, dtype=np.int32)
        for samples in frames.values():
            total += samples
        mix = np.clip(total, -32768, 32767).astype(np.int16)
        for tap in tuple(room.taps):
            try:
                tap.on_frame(mix.tobytes() if frames else SILENCE)
            except Exception:
                log.warning("a voice tap failed", exc_info=True)
        if room.mixing and frames:
            self._send_mix(room, mix, total, frames)

    def _send_mix(
        self,
        room: Room,
        mix: np.ndarray,
        total: np.ndarray,
        frames: dict[SpeakerLine, np.ndarray],
    ) -> None:
        talking = {line.member: line for line in frames}
        seq, room.mix_seq = room.mix_seq, room.mix_seq + 1
        ts = clock_ms()
        packets: dict[int, bytes] = {}

        def packet_for(key: int, pcm: np.ndarray) -> bytes:
            if key not in packets:
                encoder = room.encoders.get(key)
                if encoder is None:
                    encoder = room.encoders[key] = OpusEncoder()
                out = encoder.encode(pcm)
                packets[key] = b"".join(pack(KIND_AUDIO, 0, seq, ts, p) for p in out)
            return packets[key]

        members = {inbox.member for inbox in room.listeners}
        for member, line in talking.items():
            if member in members:
                minus = np.clip(total - frames[line], -32768, 32767).astype(np.int16)
                room.outgoing.append((frozenset(), member, packet_for(line.source, minus)))
        if members - talking.keys():
            # Everyone else hears the whole mix; each talker has theirs above instead.
            room.outgoing.append((frozenset(talking), None, packet_for(0, mix)))
        self.mixed += 1

    def _sweep_mailboxes(self) -> None:
        now = time.monotonic()
        for key, inbox in list(self._mailboxes.items()):
            if now - inbox.touched > MAILBOX_SECONDS and inbox.wake is None:
                self.hear(inbox, set())
                del self._mailboxes[key]
