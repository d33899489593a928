"""Video: each tile's frames relayed to the viewers of its room (docs/video.md).

A tile is one sender (a presenter, an interpreter, a breakout camera) in one room. Its page
encodes VP8 in the browser and sends each frame as a media packet of KIND_VIDEO
(realtime/media.py) whose payload is

    flags:u8 (bit 0: keyframe)  width:u16  height:u16  frame[...]     (big-endian)

The router checks each frame against the sender's limits (MAX_VIDEO_PAYLOAD bytes, at most
640 pixels on a side and 640x480 pixels in all, MAX_FPS frames in any second, MAX_BYTES_2S
bytes in any two seconds): a frame over them is dropped and counted, never relayed. The
packet is made once (source, seq and the server's clock set here) and the same bytes object
is offered to every viewer of the tile: those whose `watch` names its room and its kind,
but the sender itself. Frames go out at once, no timer.

A decoder must never get a delta frame after a gap. Each viewer's inbox (VideoInbox) takes
a source's frames only from a keyframe on; when the inbox is full (about a second, or
INBOX_BYTES) it drops that source's queued frames up to its next keyframe, and if none is
queued it waits for one and the sender is asked for a keyframe. A sender that had a frame
dropped over its limits skips its deltas until its next keyframe too. Keyframe requests
reach a sender at most once per KEYFRAME_GAP seconds; one asked for within that gap is
made with the sender's next frame after it. A new viewer of a tile asks for one, so a
picture comes within about half a second.

The router knows rooms (channel names), members (the strings a live connection is for),
sources (a sender's number in the packet header) and tile kinds; who may send or watch
what is the app's."""

from __future__ import annotations

import logging
import struct
import time
from collections import deque
from collections.abc import Callable

from realtime.media import HEADER, KIND_VIDEO, MAX_VIDEO_PAYLOAD, BadMedia

log = logging.getLogger(__name__)

PRESENTER, INTERPRETER, CAMERA = "presenter", "interpreter", "camera"
TILE_KINDS = frozenset((PRESENTER, INTERPRETER, CAMERA))

FRAME_HEADER = struct.Struct("!BHH")
KEYFRAME_FLAG = 0x01
MAX_SIDE = 640
MAX_PIXELS = 640 * 480
MAX_FPS = 30
MAX_BYTES_2S = 1_500_000 * 2 // 8  # 1.5 Mbit/s over two seconds
KEYFRAME_GAP = 0.5
# What may wait for one viewer before its oldest frames are dropped.
INBOX_BYTES = 256 * 1024
INBOX_SECONDS = 1.0
# A long-polling viewer's inbox is kept this long between two polls.
MAILBOX_SECONDS = 10.0


def clock_ms() -> int:
    return int(time.monotonic() * 1000) & 0xFFFFFFFF


def frame_header(payload: bytes) -> tuple[bool, int, int]:
    """(keyframe, width, height) of a video payload; BadMedia if it has no header or no
    frame after it, or a size of nothing."""
    if len(payload) <= FRAME_HEADER.size:
        raise BadMedia("a video payload is flags, width, height and a frame")
    flags, width, height = FRAME_HEADER.unpack_from(payload)
    if not width or not height:
        raise BadMedia("a video frame has a width and a height")
    return bool(flags & KEYFRAME_FLAG), width, height


def video_payload(frame: bytes, width: int, height: int, *, keyframe: bool) -> bytes:
    """A video payload as a page sends it (for tests and benchmarks)."""
    return FRAME_HEADER.pack(KEYFRAME_FLAG if keyframe else 0, width, height) + frame


class VideoInbox:
    """What waits for one viewer: whole runs of frames from a keyframe on, at most about
    INBOX_SECONDS or INBOX_BYTES; `wake` is called with each frame taken."""

    def __init__(
        self,
        *,
        member: str,
        wake: Callable[[], None] | None = None,
        max_bytes: int = INBOX_BYTES,
        max_seconds: float = INBOX_SECONDS,
    ) -> None:
        self.member = member
        self.wake = wake
        self.rooms: set[str] = set()
        self.kinds: set[str] = set()
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        # (room, source, packet, keyframe, taken at)
        self._queue: deque[tuple[str, int, bytes, bool, float]] = deque()
        self._bytes = 0
        # Sources whose next frame may be a delta: the last one taken followed on.
        self._synced: set[int] = set()
        self.touched = time.monotonic()
        self.dropped = 0
        self.skipped = 0
        self.sent_bytes = 0

    def offer(self, room: str, source: int, packet: bytes, keyframe: bool, now: float) -> bool:
        """Take one frame; True when this viewer needs a keyframe from `source`."""
        if keyframe:
            self._synced.add(source)
        elif source not in self._synced:
            self.skipped += 1
            return True
        queue = self._queue
        queue.append((room, source, packet, keyframe, now))
        self._bytes += len(packet)
        wants_keyframe = False
        if self._bytes > self.max_bytes or now - queue[0][4] > self.max_seconds:
            wants_keyframe = self._overflow(now)
        if self.wake is not None:
            self.wake()
        return wants_keyframe

    def _overflow(self, now: float) -> bool:
        """Drop the oldest frame's source's frames up to its next keyframe until the inbox
        holds what it may; True if a source is left waiting for a keyframe."""
        waiting = False
        queue = self._queue
        while queue and (self._bytes > self.max_bytes or now - queue[0][4] > self.max_seconds):
            source = queue[0][1]
            later_key = next(
                (n for n, e in enumerate(queue) if n and e[1] == source and e[3]), None
            )
            kept: deque[tuple[str, int, bytes, bool, float]] = deque()
            for n, entry in enumerate(queue):
                if entry[1] == source and (later_key is None or n < later_key):
                    self._bytes -= len(entry[2])
                    self.dropped += 1
                else:
                    kept.append(entry)
            self._queue = queue = kept
            if later_key is None:
                self._synced.discard(source)
                waiting = True
        return waiting

    def __bool__(self) -> bool:
        return bool(self._queue)

    def drain(self) -> bytes:
        """Everything waiting, as one frame (the very packet when only one waits)."""
        queue = self._queue
        # (Joining one bytes object gives that very object back: no copy.)
        out = b"".join([entry[2] for entry in queue])
        queue.clear()
        self._bytes = 0
        self.touched = time.monotonic()
        self.sent_bytes += len(out)
        return out

    def _forget(self, tiles: set[tuple[str, int]]) -> None:
        """Stop showing these (room, source) tiles: their queued frames go, and a later
        frame of theirs starts from a keyframe."""
        if not tiles:
            return
        for _, source in tiles:
            self._synced.discard(source)
        kept = [e for e in self._queue if (e[0], e[1]) not in tiles]
        if len(kept) != len(self._queue):
            self._queue = deque(kept)
            self._bytes = sum(len(e[2]) for e in kept)


class VideoSender:
    """One tile's frames into the router, in one room at a time."""

    def __init__(
        self,
        router: VideoRouter,
        room: str,
        source: int,
        kind: str,
        request_keyframe: Callable[[], None],
    ) -> None:
        self.router = router
        self.room = room
        self.source = source
        self.member = str(source)
        self.kind = kind
        self.request_keyframe = request_keyframe
        self.seq = 0
        self.closed = False
        # Stopped by a host (VideoRouter.stop): refused from then on.
        self.stopped = False
        # A frame was dropped: deltas are skipped until the next keyframe.
        self.broken = False
        self.asked_at = -1e9
        self.ask_pending = False
        self._frame_times: deque[float] = deque()
        self._byte_times: deque[tuple[float, int]] = deque()
        self._window_bytes = 0
        self.relayed = 0
        self.dropped = 0

    def frame(self, payload: bytes) -> bool:
        """Relay one video payload to the tile's viewers; False when it was not (over the
        limits, stopped or closed, or a delta while a keyframe is awaited). Raises BadMedia
        when the payload is not a video frame at all."""
        keyframe, width, height = frame_header(payload)
        if self.closed:
            return False
        now = self.router.clock()
        if not self._within_limits(len(payload), width, height, now):
            self.dropped += 1
            self.router.dropped += 1
            self.broken = True
            self.router._ask_keyframe(self, now)
            return False
        if keyframe:
            self.broken = self.ask_pending = False
        elif self.broken:
            self.router._ask_keyframe(self, now)
            return False
        elif self.ask_pending:
            self.router._ask_keyframe(self, now)
        self._count(len(payload), now)
        self.router._relay(self, payload, keyframe, now)
        return True

    def _within_limits(self, size: int, width: int, height: int, now: float) -> bool:
        if size > MAX_VIDEO_PAYLOAD or max(width, height) > MAX_SIDE:
            return False
        if width * height > MAX_PIXELS:
            return False
        times = self._frame_times
        while times and now - times[0] >= 1.0:
            times.popleft()
        spent = self._byte_times
        while spent and now - spent[0][0] >= 2.0:
            self._window_bytes -= spent.popleft()[1]
        return len(times) < MAX_FPS and self._window_bytes + size <= MAX_BYTES_2S

    def _count(self, size: int, now: float) -> None:
        self._frame_times.append(now)
        self._byte_times.append((now, size))
        self._window_bytes += size

    def move(self, room: str) -> None:
        """The sender's tile is in another room now: its frames go there only."""
        if room != self.room and not self.closed:
            self.router._move(self, room)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.router._remove(self)


class _Room:
    def __init__(self) -> None:
        self.senders: set[VideoSender] = set()
        self.viewers: set[VideoInbox] = set()


class VideoRouter:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        # The clock of the limits, the inboxes' ages and keyframe requests.
        self.clock = clock
        self.rooms: dict[str, _Room] = {}
        self._mailboxes: dict[tuple[str, str], VideoInbox] = {}
        self._swept_at = time.monotonic()
        self.relayed = 0
        self.dropped = 0
        self.keyframe_requests = 0

    # -- senders --

    def sender(
        self, room: str, source: int, kind: str, request_keyframe: Callable[[], None]
    ) -> VideoSender:
        """A tile of `kind` sent by `source` in `room`; `request_keyframe` is called (at
        most once per KEYFRAME_GAP) when a viewer needs a keyframe."""
        if kind not in TILE_KINDS:
            raise ValueError(f"a tile is one of {', '.join(sorted(TILE_KINDS))}")
        sender = VideoSender(self, room, source, kind, request_keyframe)
        self._room(room).senders.add(sender)
        return sender

    def tiles(self, room: str) -> dict[int, str]:
        """The tiles sending in `room` now: source -> kind."""
        found = self.rooms.get(room)
        return {s.source: s.kind for s in found.senders} if found is not None else {}

    def stop(self, room: str, source: int) -> None:
        """End `source`'s tile in `room` (a host stopped it): its frames are refused."""
        found = self.rooms.get(room)
        for sender in list(found.senders) if found is not None else ():
            if sender.source == source:
                sender.stopped = True
                sender.close()

    # -- viewers --

    def watch(self, inbox: VideoInbox, rooms: set[str], kinds: set[str]) -> None:
        """`inbox` receives the tiles of `kinds` in `rooms` from now on (empty: none). A
        tile it did not show before starts at a keyframe, asked for now."""
        before = self._shown(inbox)
        for name in inbox.rooms - rooms:
            room = self.rooms.get(name)
            if room is not None:
                room.viewers.discard(inbox)
                self._forget_if_empty(name)
        for name in rooms - inbox.rooms:
            self._room(name).viewers.add(inbox)
        inbox.rooms, inbox.kinds = set(rooms), set(kinds)
        after = self._shown(inbox)
        inbox._forget({(s.room, s.source) for s in before - after})
        now = self.clock()
        for sender in after - before:
            inbox._synced.discard(sender.source)
            self._ask_keyframe(sender, now)

    def mailbox(self, member: str, key: str) -> VideoInbox:
        """A long-polling viewer's inbox, kept between its polls (MAILBOX_SECONDS)."""
        self._sweep_mailboxes()
        inbox = self._mailboxes.get((member, key))
        if inbox is None:
            inbox = self._mailboxes[(member, key)] = VideoInbox(member=member)
        inbox.touched = time.monotonic()
        return inbox

    def _shown(self, inbox: VideoInbox) -> set[VideoSender]:
        return {
            sender
            for name in inbox.rooms
            if (room := self.rooms.get(name)) is not None
            for sender in room.senders
            if sender.kind in inbox.kinds and sender.member != inbox.member
        }

    def _sweep_mailboxes(self) -> None:
        now = time.monotonic()
        if now - self._swept_at < MAILBOX_SECONDS:
            return
        self._swept_at = now
        for key, inbox in list(self._mailboxes.items()):
            if now - inbox.touched > MAILBOX_SECONDS and inbox.wake is None:
                self.watch(inbox, set(), set())
                del self._mailboxes[key]

    # -- relaying --

    def _relay(self, sender: VideoSender, payload: bytes, keyframe: bool, now: float) -> None:
        room = self.rooms.get(sender.room)
        seq, sender.seq = sender.seq, sender.seq + 1
        sender.relayed += 1
        self.relayed += 1
        if room is None or not room.viewers:
            return
        header = HEADER.pack(KIND_VIDEO, sender.source, seq & 0xFFFF, clock_ms(), len(payload))
        packet = header + payload
        name, kind, member, source = sender.room, sender.kind, sender.member, sender.source
        wants_keyframe = False
        for inbox in room.viewers:
            if (
                kind in inbox.kinds
                and inbox.member != member
                and inbox.offer(name, source, packet, keyframe, now)
            ):
                wants_keyframe = True
        if wants_keyframe:
            self._ask_keyframe(sender, now)

    def _ask_keyframe(self, sender: VideoSender, now: float) -> None:
        if sender.closed:
            return
        if now - sender.asked_at < KEYFRAME_GAP:
            sender.ask_pending = True
            return
        sender.asked_at, sender.ask_pending = now, False
        self.keyframe_requests += 1
        try:
            sender.request_keyframe()
        except Exception:
            log.warning("could not ask a sender for a keyframe", exc_info=True)

    # -- rooms --

    def _room(self, name: str) -> _Room:
        room = self.rooms.get(name)
        if room is None:
            room = self.rooms[name] = _Room()
        return room

    def _forget_if_empty(self, name: str) -> None:
        room = self.rooms.get(name)
        if room is not None and not room.senders and not room.viewers:
            del self.rooms[name]

    def _remove(self, sender: VideoSender) -> None:
        room = self.rooms.get(sender.room)
        if room is None:
            return
        room.senders.discard(sender)
        # Its frames already queued still go out; a new sender of the same source starts
        # at a keyframe.
        for inbox in room.viewers:
            inbox._synced.discard(sender.source)
        self._forget_if_empty(sender.room)

    def _move(self, sender: VideoSender, to: str) -> None:
        self._remove(sender)
        sender.room = to
        room = self._room(to)
        room.senders.add(sender)
        if any(sender.kind in v.kinds and v.member != sender.member for v in room.viewers):
            self._ask_keyframe(sender, self.clock())
