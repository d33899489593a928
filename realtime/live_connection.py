"""One owner per live connection, whatever carries it (WebSocket, Server-Sent Events,
long-polling): it authorizes what the client asks to follow, follows its channels (moves,
mutes and rechecks through the `Access` the app supplies), takes what the client sends and
hands out what is to be sent. The transports (realtime/transport.py) only adapt it.

`realtime/` knows channels and frames, never people or rules: everything about who may
follow what, and what happens when that changes, is the app's `Access`.

Traffic on a connection, by kind:

- **Control and events** (text): the client's `hello` (cursors to follow) and `ping`; the
  server's events, in order per channel, and control messages (hello, pong, error, resync,
  reload, hb). Actions a person takes are ordinary HTTP posts, so they work on every
  transport; `actions` is where the app takes an action frame as well (the page's chat
  sends on its WebSocket), whose answer may come later (`reply`).
- **Media** (binary, realtime/media.py): voice and video. A client that asks for it
  (`"media": ["audio", "video"]` in its hello, or the fallbacks' `media=audio,video`;
  `"interpreter"` instead of `"video"` for the interpreter's tiles only) hears and watches
  the rooms the app's `Access.audible` names among those it follows (its person's current
  room), through small inboxes that the voice router (realtime/voice.py) and the video
  router (realtime/video.py) fill; media is sent as binary frames on a WebSocket and as
  base64 text on the fallbacks, never stored. Speaking goes through the microphone's own
  connection. The only binary frames a page's client sends are video frames, taken when
  `Access.video_tile` names its tile (realtime/video_link.py), with a rate budget of their
  own; anything else binary is refused (1003)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from realtime.connection import MEDIA_READY, AccessEnded, Connection, SlowConsumer
from realtime.events import control
from realtime.frames import FrameError, parse_frame
from realtime.hub import Hub
from realtime.media import BadMedia, MediaInbox, unpack
from realtime.video import VideoInbox, VideoRouter
from realtime.video_link import VideoLink
from realtime.voice import VoiceRouter

__all__ = ["Access", "AccessEnded", "Close", "LiveConnection", "SlowConsumer"]

MAX_CHANNELS = 16
MAX_FRAMES_PER_10S = 40
MAX_BAD_FRAMES = 10
MEDIA_KINDS = ("audio", "video", "interpreter")
# Media packets a client may send (video frames: 30 a second at most are relayed), and the
# largest binary frame taken (a few frames that queued in the browser).
MAX_MEDIA_PACKETS_PER_10S = 600
MAX_MEDIA_FRAME = 200_000

Cursors = dict[str, int | None]
# An action frame (anything but hello and ping); returns control messages to send back,
# or raises FrameError.
ActionHandler = Callable[[dict[str, Any]], Awaitable[list[str]]]


class Access(Protocol):
    """What the app decides about one connection."""

    # Who the connection is for (presence), the channel on which it is asked to check
    # itself again whatever it follows (None: never asked), the event types after which
    # what the app knows about its place may be out of date, and how often it checks
    # itself without being asked (None: never).
    member: str
    signals: str | None
    stale_on: tuple[str, ...]
    recheck_every: float | None

    async def authorize(self, cursors: Cursors, *, stale: bool) -> tuple[Cursors, list[str]]:
        """The channels of `cursors` this client may follow (with their cursors), and an
        error message for each refused one. `stale`: look again before deciding."""
        ...

    async def recheck(self, cursors: Mapping[str, int]) -> Cursors:
        """What the connection follows now that what its person may see has changed (given
        what it follows now, with its cursors); raises AccessEnded when it may follow
        nothing any more."""
        ...

    def audible(self, channels: set[str]) -> set[str]:
        """The rooms, among the channels followed, whose voice the connection hears (and
        whose video tiles it may watch)."""
        ...

    def video_tile(self, channels: set[str]) -> tuple[str, str] | None:
        """The tile this connection's person sends, given the channels followed: (room,
        kind), kind "presenter", "interpreter" or "camera"; None when they have none (their
        frames are refused, `not_pinned`). The frames' source is `int(member)`. Asked again
        whenever what is followed changes (a hello, a recheck), so it answers from what the
        app worked out then, without waiting."""
        ...


def parse_media(raw: object) -> set[str]:
    """The kinds of media a client asks for: a short list of known names."""
    if not isinstance(raw, list) or len(raw) > len(MEDIA_KINDS):
        raise FrameError("bad_media", f"media must be a list of {', '.join(MEDIA_KINDS)}")
    kinds = set()
    for kind in raw:
        if kind not in MEDIA_KINDS:
            raise FrameError("bad_media", f"media must be a list of {', '.join(MEDIA_KINDS)}")
        kinds.add(kind)
    return kinds


class Close(Exception):
    """The client broke the rules of the connection: close it with this code and reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def parse_cursors(raw: object) -> Cursors:
    """Cursors as a client sends them: {"channel": last id or null}."""
    if not isinstance(raw, dict):
        raise FrameError("bad_cursors", "cursors must be an object of channel names to ids")
    if len(raw) > MAX_CHANNELS:
        raise FrameError("bad_cursors", f"at most {MAX_CHANNELS} channels at once")
    out: Cursors = {}
    for channel, value in raw.items():
        if not isinstance(channel, str) or not 0 < len(channel) <= 100:
            raise FrameError("bad_cursors", "channel names are short strings")
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**53
        ):
            raise FrameError("bad_cursors", f"the id for {channel[:100]} must be a whole number")
        out[channel] = value
    return out


async def _no_actions(frame: dict[str, Any]) -> list[str]:
    raise FrameError("unknown_type", f"unknown frame type {str(frame['type'])[:40]!r}")


class LiveConnection:
    def __init__(
        self,
        hub: Hub,
        access: Access,
        *,
        transport: str,
        actions: ActionHandler = _no_actions,
        voice: VoiceRouter | None = None,
        inbox: MediaInbox | None = None,
        video: VideoRouter | None = None,
        video_inbox: VideoInbox | None = None,
    ) -> None:
        self.hub = hub
        self.access = access
        self.transport = transport
        self._actions = actions
        self.feed = self._new_feed()
        self._window_start, self._frames, self._bad = time.monotonic(), 0, 0
        # Voice: the router, this client's inbox (a long-poll's outlives the poll), and
        # whether the client asked to hear.
        self.voice = voice
        self.inbox = inbox
        self.hearing_wanted = False
        self._synced: tuple[set[str] | None, bool] = (None, False)
        # Video: the tiles it watches and the one it may send (realtime/video_link.py).
        self.video = (
            VideoLink(video, access, self.reply, inbox=video_inbox) if video is not None else None
        )
        self._media_window_start, self._media_packets = time.monotonic(), 0

    def _new_feed(self) -> Connection:
        return Connection(
            self.hub,
            member=self.access.member,
            stale_on=self.access.stale_on,
            signals=self.access.signals,
            recheck=self.access.recheck,
            recheck_every=self.access.recheck_every,
        )

    # -- following --

    @property
    def cursors(self) -> dict[str, int]:
        return self.feed.cursors

    @property
    def channels(self) -> set[str]:
        return self.feed.channels

    @property
    def stale(self) -> bool:
        """An event has passed that may have moved the person; `recheck` looks again."""
        return self.feed.stale

    async def follow(self, cursors: Cursors) -> list[str]:
        """Follow what the app allows of `cursors`; returns the refusals, then what was
        missed (or a resync) on the channels followed."""
        async with self.feed.following:
            stale, self.feed.stale = self.feed.stale, False
            allowed, refusals = await self.access.authorize(cursors, stale=stale)
            out = [control("error", code="not_allowed", message=m) for m in refusals]
            out.extend(await self.feed.follow_held(allowed))
        self._sync_media()
        return out

    async def open(self, cursors: Cursors) -> list[str]:
        """`follow`, for a connection that ends if it cannot start (a database too busy):
        it is released rather than left following channels for nobody."""
        try:
            return await self.follow(cursors)
        except BaseException:
            await self.close()
            raise

    async def recheck(self) -> list[str]:
        """Ask the app again what this connection follows, and follow that (AccessEnded
        when it may follow nothing): for an owner that noticed it is `stale`."""
        out = await self.feed.recheck()
        self._sync_media()
        return out

    async def follow_afresh(self) -> None:
        """Start over on the same channels from now on, after falling too far behind
        (SlowConsumer), for an owner that cares about what comes next rather than about
        every event (the microphone: mutes and moves)."""
        following = dict.fromkeys(self.feed.channels)
        await self.feed.close()
        self.feed = self._new_feed()
        if self.inbox is not None and self.inbox.wake is not None:
            self.inbox.wake = self.feed.wake_media
        video_inbox = self.video.inbox if self.video is not None else None
        if video_inbox is not None and video_inbox.wake is not None:
            video_inbox.wake = self.feed.wake_media
        await self.feed.follow(following)

    # -- receiving --

    async def receive_text(self, text: str) -> list[str]:
        """One text frame from the client; the replies to send it. Raises Close when the
        client breaks the connection's rules."""
        self._count_frame()
        try:
            frame = parse_frame(text)
            kind = frame["type"]
            if kind == "ping":
                n = frame.get("n")
                return [control("pong", n=n if isinstance(n, int) else 0)]
            if kind == "hello":
                # A page that changed room says hello again: answered as the first, so it
                # knows it is live (then the backlog of the channels it now follows).
                return await self.hello(frame)
            return await self._actions(frame)
        except FrameError as exc:
            if exc.code == "too_big":
                raise Close(1009, exc.message) from exc
            self._bad += 1
            if self._bad > MAX_BAD_FRAMES:
                raise Close(1003, "too many malformed frames") from exc
            return [control("error", code=exc.code, message=exc.message)]

    async def receive_media(self, data: bytes) -> list[str]:
        """One binary frame from the client: video frames of the tile it sends (see the
        module's doc); the replies to send it. Raises Close for anything else."""
        if self.video is None:
            self._count_frame()
            raise Close(1003, "binary frames are not accepted here")
        if len(data) > MAX_MEDIA_FRAME:
            raise Close(1009, "a binary frame may hold a few video frames at most")
        try:
            packets = unpack(data)
            if not packets:
                raise BadMedia("an empty binary frame")
            self._count_media(len(packets))
            if self.feed.stale and self.video.sender is not None:
                # An event may have changed the stage: look again before long.
                self.feed.recheck_soon()
            return self.video.send(packets, self.feed.channels)
        except BadMedia as exc:
            raise Close(1003, str(exc)) from exc

    async def hello(self, frame: dict[str, Any]) -> list[str]:
        """The answer to a hello: hello, then what `follow` returns."""
        cursors = parse_cursors(frame.get("cursors", {}))
        self.want_media(parse_media(frame.get("media", [])))
        return [control("hello", transport=self.transport), *await self.follow(cursors)]

    # -- media --

    def want_media(self, kinds: set[str]) -> None:
        """Hear the rooms the app allows (when "audio" is in `kinds`), or stop hearing;
        watch their tiles (when "video" or "interpreter" is), or stop watching."""
        if self.video is not None:
            self.video.want(kinds, self.feed.wake_media)
        if self.voice is None:
            return
        self.hearing_wanted = "audio" in kinds
        self._synced = (None, False)
        if self.hearing_wanted and self.inbox is None:
            self.inbox = MediaInbox(member=self.access.member)
        if self.inbox is not None:
            self.inbox.wake = self.feed.wake_media
        # What it hears is settled once it follows its channels (`follow` syncs): a
        # long-poll's inbox keeps hearing its room meanwhile, so nothing is missed.

    def _sync_media(self) -> None:
        if self.video is not None:
            self.video.sync(self.feed.channels)
        if self.voice is None or self.inbox is None:
            return
        # What is heard changes only when what is followed does (a hello, a recheck: each
        # makes a new set), or when the client asks to hear or stop.
        if self._synced[0] is self.feed.channels and self._synced[1] == self.hearing_wanted:
            return
        self._synced = (self.feed.channels, self.hearing_wanted)
        rooms = self.access.audible(self.feed.channels) if self.hearing_wanted else set()
        if rooms != self.inbox.rooms:
            self.voice.hear(self.inbox, rooms)

    def _with_media(self, batch: list[str]) -> list[str | bytes]:
        if MEDIA_READY not in batch:
            return list(batch)
        out: list[str | bytes] = []
        for message in batch:
            if message != MEDIA_READY:
                out.append(message)
            else:
                audio = self.inbox.drain(self.inbox.rooms) if self.inbox is not None else b""
                video = self.video.drain() if self.video is not None else b""
                # One frame for both (video alone: its very packets, not a copy).
                media = audio + video if audio and video else audio or video
                if media:
                    out.append(media)
        return out

    def _count_frame(self) -> None:
        now = time.monotonic()
        if now - self._window_start > 10:
            self._window_start, self._frames = now, 0
        self._frames += 1
        if self._frames > MAX_FRAMES_PER_10S:
            raise Close(1008, "too many messages; slow down")

    def _count_media(self, packets: int) -> None:
        now = time.monotonic()
        if now - self._media_window_start > 10:
            self._media_window_start, self._media_packets = now, 0
        self._media_packets += packets
        if self._media_packets > MAX_MEDIA_PACKETS_PER_10S:
            raise Close(1008, "too many video frames; slow down")

    # -- sending --

    def reply(self, message: str) -> None:
        """Send `message` after what is queued now: the answer to a frame that took time
        (an action handler's, given once it is known, while the client goes on sending)."""
        self.feed.offer_reply(message)

    async def next(self, timeout: float | None = None) -> list[str | bytes] | None:
        """The next messages to send, in order (bytes: media); None if `timeout` passes
        first. Raises SlowConsumer (the client must reconnect and resync) or AccessEnded."""
        batch = await self.feed.next(timeout)
        # A recheck inside `next` may have moved the person: hear their room from now on.
        self._sync_media()
        return None if batch is None else self._with_media(batch)

    async def next_nowait(self) -> list[str | bytes]:
        batch = await self.feed.next_nowait()
        self._sync_media()
        return self._with_media(batch)

    async def close(self, *, keep_hearing: bool = False) -> None:
        """Release the connection; a long-poll's inbox may go on hearing until the next
        poll (`keep_hearing`), and the router forgets it if none comes."""
        if self.inbox is not None:
            self.inbox.wake = None
            if self.voice is not None and not keep_hearing:
                self.voice.hear(self.inbox, set())
        if self.video is not None:
            self.video.close(keep_watching=keep_hearing)
        await self.feed.close()
