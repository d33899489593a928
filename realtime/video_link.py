"""A live connection's video (realtime/video.py): the tiles its client watches, and the one
tile it sends when the app names one.

- **Watching**: a client that asks for `"video"` (every tile) or `"interpreter"` (the
  interpreter's tiles only) watches the rooms the app's `Access.audible` names among those
  it follows (its person's current room), through a VideoInbox that the router fills and
  the connection drains with its other media.
- **Sending**: binary frames of KIND_VIDEO packets from the client are taken when
  `Access.video_tile` names a tile (room, kind) for its person; the sender line is made on
  the first frame, moved or closed when the app's answer changes (after a recheck or a new
  hello) and closed with the connection. Otherwise, or once a host stopped the tile, the
  client is told `not_pinned` at most once a second; its frames go nowhere, and it is not
  closed (a camera left on while the host unpins it is not an error)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from realtime.events import control
from realtime.media import KIND_VIDEO, BadMedia, Packet
from realtime.video import (
    INTERPRETER,
    TILE_KINDS,
    VideoInbox,
    VideoRouter,
    VideoSender,
    frame_header,
)

NOT_PINNED = "Your video is not on the stage now, so nobody sees it."
STOPPED = "A host stopped your video."
# Seconds between two not_pinned answers to the same client.
REFUSAL_GAP = 1.0


class TileAccess(Protocol):
    """What VideoLink asks of the app's Access (realtime/live_connection.py)."""

    member: str

    def audible(self, channels: set[str]) -> set[str]: ...

    def video_tile(self, channels: set[str]) -> tuple[str, str] | None: ...


def tile_kinds(media: set[str]) -> set[str]:
    """The tile kinds a client's media names: "video" all, "interpreter" that one."""
    if "video" in media:
        return set(TILE_KINDS)
    return {INTERPRETER} if "interpreter" in media else set()


class VideoLink:
    def __init__(
        self,
        router: VideoRouter,
        access: TileAccess,
        reply: Callable[[str], None],
        *,
        inbox: VideoInbox | None = None,
    ) -> None:
        self.router = router
        self.access = access
        self.reply = reply
        self.inbox = inbox
        self.kinds: set[str] = set()
        self.sender: VideoSender | None = None
        # The app's answer for sending, and the channels it was given for it.
        self.tile: tuple[str, str] | None = None
        self._tile_for: set[str] | None = None
        self._watch_for: tuple[set[str] | None, frozenset[str]] = (None, frozenset())
        self._refused_at = -1e9

    # -- watching --

    def want(self, media: set[str], wake: Callable[[], None]) -> None:
        """Watch the tiles `media` names from the next `sync` on (none: stop)."""
        self.kinds = tile_kinds(media)
        self._watch_for = (None, frozenset())
        if self.kinds and self.inbox is None:
            self.inbox = VideoInbox(member=self.access.member)
        if self.inbox is not None:
            self.inbox.wake = wake

    def sync(self, channels: set[str]) -> None:
        """Watch, and send, what the app allows now that `channels` are followed (cheap
        when nothing changed: the connection makes a new set each time that changes)."""
        inbox = self.inbox
        if inbox is not None and not (
            self._watch_for[0] is channels and self._watch_for[1] == self.kinds
        ):
            self._watch_for = (channels, frozenset(self.kinds))
            rooms = self.access.audible(channels) if self.kinds else set()
            if rooms != inbox.rooms or self.kinds != inbox.kinds:
                self.router.watch(inbox, rooms, set(self.kinds) if rooms else set())
        if self.sender is not None:
            self._tile_now(channels)

    def drain(self) -> bytes:
        return self.inbox.drain() if self.inbox is not None and self.inbox else b""

    # -- sending --

    def send(self, packets: list[Packet], channels: set[str]) -> list[str]:
        """The client's packets: relayed as its tile's frames, or refused (not_pinned).
        Raises BadMedia when one is not a video frame."""
        for packet in packets:
            if packet.kind != KIND_VIDEO:
                raise BadMedia("a page sends video frames only (kind 2)")
        tile = self._tile_now(channels)
        if tile is None or (self.sender is not None and self.sender.stopped):
            for packet in packets:  # malformed is malformed, pinned or not
                frame_header(packet.payload)
            return self._refused(STOPPED if self.sender is not None else NOT_PINNED)
        if self.sender is None:
            room, kind = tile
            self.sender = self.router.sender(room, int(self.access.member), kind, self._keyframe)
        for packet in packets:
            self.sender.frame(packet.payload)
        return []

    def _tile_now(self, channels: set[str]) -> tuple[str, str] | None:
        if self._tile_for is not channels:
            self._tile_for = channels
            tile = self.access.video_tile(channels)
            if tile != self.tile:
                self.tile = tile
                self._follow_tile(tile)
        return self.tile

    def _follow_tile(self, tile: tuple[str, str] | None) -> None:
        sender = self.sender
        if sender is None:
            return
        if tile is None or tile[1] != sender.kind or sender.stopped:
            sender.close()
            self.sender = None  # a new line, with the next frame, if a tile is named
        elif tile[0] != sender.room:
            sender.move(tile[0])

    def _keyframe(self) -> None:
        self.reply(control("keyframe"))

    def _refused(self, message: str) -> list[str]:
        now = time.monotonic()
        if now - self._refused_at < REFUSAL_GAP:
            return []
        self._refused_at = now
        return [control("error", code="not_pinned", message=message)]

    def close(self, *, keep_watching: bool = False) -> None:
        if self.sender is not None:
            self.sender.close()
            self.sender = None
        if self.inbox is not None:
            self.inbox.wake = None
            if not keep_watching:
                self.router.watch(self.inbox, set(), set())
