"""Sending a camera's frames by POST, for a page whose WebSocket is blocked.

A body is packed media packets (realtime/media.py) of KIND_VIDEO; each post is answered
{"ok": true, "keyframe": bool} (keyframe: a viewer asked for one since the last post). The
sender (realtime/video.py: VideoRouter.sender) is kept per person per session between
posts, and ended when none has come for IDLE_SECONDS, or at once when the tile is stopped.
Whether the person may send (their tile in their current room) is checked on the first
post and again at least every RECHECK_SECONDS."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

IDLE_SECONDS = 10.0
RECHECK_SECONDS = 1.0
# A few frames at a time (a frame's payload is at most 48,000 bytes).
MAX_BODY_BYTES = 160_000
# Posts a second per person: 15 frames a second sent one or a few at a time.
MAX_POSTS_PER_SECOND = 30


class Sender(Protocol):
    def frame(self, payload: bytes) -> bool: ...

    def close(self) -> None: ...


class Router(Protocol):
    def sender(
        self, room: str, source: int, kind: str, request_keyframe: Callable[[], None]
    ) -> Sender: ...

    def stop(self, room: str, source: int) -> None: ...


@dataclass
class PostedSender:
    """One person's sender between their posts."""

    room: str
    kind: str
    sender: Sender | None = None
    checked_at: float = 0.0
    keyframe_wanted: bool = True
    timer: asyncio.TimerHandle | None = None
    window: tuple[float, int] = field(default=(0.0, 0))

    def fresh(self, seconds: float) -> bool:
        """Checked against the person's tile less than `seconds` ago."""
        return time.monotonic() - self.checked_at < seconds

    def ask_keyframe(self) -> None:
        self.keyframe_wanted = True

    def take_keyframe_request(self) -> bool:
        wanted, self.keyframe_wanted = self.keyframe_wanted, False
        return wanted

    def over_rate(self) -> bool:
        now = time.monotonic()
        start, count = self.window
        if now - start >= 1.0:
            start, count = now, 0
        self.window = (start, count + 1)
        return count + 1 > MAX_POSTS_PER_SECOND


class HttpVideoSenders:
    """Each person's sender by POST, per session: (session id, user id) -> PostedSender."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self._senders: dict[tuple[int, int], PostedSender] = {}

    def __len__(self) -> int:
        return len(self._senders)

    def get(self, session_id: int, user_id: int) -> PostedSender | None:
        return self._senders.get((session_id, user_id))

    def keep(self, session_id: int, user_id: int, room: str, kind: str) -> PostedSender:
        """The person's sender for `room` as `kind`: the kept one, or a new one (a kept one
        for another room or kind is ended first)."""
        key = (session_id, user_id)
        entry = self._senders.get(key)
        if entry is not None and (entry.room, entry.kind) != (room, kind):
            self.end(session_id, user_id)
            entry = None
        if entry is None:
            entry = PostedSender(room=room, kind=kind)
            entry.sender = self.router.sender(room, user_id, kind, entry.ask_keyframe)
            self._senders[key] = entry
        entry.checked_at = time.monotonic()
        self.touch(session_id, user_id)
        return entry

    def touch(self, session_id: int, user_id: int) -> None:
        entry = self._senders.get((session_id, user_id))
        if entry is None:
            return
        if entry.timer is not None:
            entry.timer.cancel()
        entry.timer = asyncio.get_running_loop().call_later(
            IDLE_SECONDS, self.end, session_id, user_id
        )

    def end(self, session_id: int, user_id: int) -> None:
        entry = self._senders.pop((session_id, user_id), None)
        if entry is None:
            return
        if entry.timer is not None:
            entry.timer.cancel()
        if entry.sender is not None:
            entry.sender.close()

    def stop(self, room: str, user_id: int) -> None:
        """The tile is gone (stopped, unpinned): end the person's sender there now, and the
        router's (their WebSocket's) too."""
        for (session_id, uid), entry in list(self._senders.items()):
            if uid == user_id and entry.room == room:
                self.end(session_id, uid)
        self.router.stop(room, user_id)

    def close(self) -> None:
        for session_id, user_id in list(self._senders):
            self.end(session_id, user_id)
