"""Who is speaking: the people whose caption microphone is live in a room now.

A speaker's microphone stream (app/captions/microphone.py) marks them as speaking in their
room when it starts or resumes, and unmarks them when it pauses, stops, moves room or
drops. Like presence, the marks are kept in the broker (so every process sees every
room) with a time to live refreshed while the stream lasts, so a process that dies takes
its speakers with it within SPEAKING_TTL; and each change is sent to the room as a
transient `speaking` event (not stored, not replayed) that replaces the room's
"Speaking now" line. Facilitators' and hosts' consoles read the same marks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable

from app.live.events import SpeakingPayload
from realtime.broker import Broker
from realtime.publish import Live

logger = logging.getLogger(__name__)

SPEAKING_TTL = 90.0
REFRESH_SECONDS = 30.0


def broker_key(channel: str) -> str:
    """Where a room's marks are kept: a presence set beside the room's own (never a
    channel anybody can follow: it does not match channels.CHANNEL_PATTERN)."""
    return f"{channel}:speaking"


def element_id(channel: str) -> str:
    return f"speaking-{channel}"


class Speaking:
    def __init__(self, *, broker: Broker, live: Live) -> None:
        self.broker = broker
        self.live = live
        # (channel, member) -> this process's live streams of that person in that room
        self._streams: Counter[tuple[str, str]] = Counter()
        self._names: dict[tuple[str, str], str] = {}
        self._refresher: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._refresher = asyncio.create_task(self._refresh_loop(), name="speaking-refresh")

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._refresher
        marks, self._streams = list(self._streams), Counter()
        self._names.clear()
        for channel, member in marks:
            with contextlib.suppress(Exception):
                await self.broker.presence_remove(broker_key(channel), member)

    async def on(self, channel: str, member: str, name: str) -> None:
        key = (channel, member)
        self._streams[key] += 1
        self._names[key] = name
        if self._streams[key] == 1:
            mark = self.broker.presence_set(broker_key(channel), member, name, SPEAKING_TTL)
            await self._change(channel, mark)

    async def off(self, channel: str, member: str) -> None:
        key = (channel, member)
        if self._streams[key] <= 0:
            return
        self._streams[key] -= 1
        if self._streams[key] > 0:
            return
        del self._streams[key]
        self._names.pop(key, None)
        await self._change(channel, self.broker.presence_remove(broker_key(channel), member))

    def name_of(self, channel: str, member: str) -> str:
        """The name (with pronouns) of someone whose microphone is live here in this process."""
        return self._names.get((channel, member), "Someone")

    async def members(self, channel: str) -> dict[str, str]:
        """User id (as text) -> name with pronouns, of everyone speaking in `channel`."""
        return await self.broker.presence_list(broker_key(channel))

    async def payload(self, channel: str) -> SpeakingPayload:
        names = sorted((await self.members(channel)).values(), key=str.casefold)
        return SpeakingPayload(channel=channel, names=names)

    async def _change(self, channel: str, change: Awaitable[None]) -> None:
        """Record a change (a broker call) and tell the room; a broker that fails costs
        the room its "Speaking now" line, never the speaker's captions."""
        try:
            await change
            await self.live.publish_transient(
                channel, "speaking", await self.payload(channel), target=element_id(channel)
            )
        except Exception:
            logger.warning("could not record who is speaking in %s", channel, exc_info=True)

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            for (channel, member), name in list(self._names.items()):
                try:
                    await self.broker.presence_set(broker_key(channel), member, name, SPEAKING_TTL)
                except Exception:
                    logger.warning("could not refresh who is speaking", exc_info=True)


class Microphone:
    """One speaking stream's mark: live in one room at a time, or silent."""

    def __init__(self, speaking: Speaking | None, *, member: str, name: str) -> None:
        self.speaking = speaking
        self.member = member
        self.name = name
        self.channel: str | None = None

    async def live_in(self, channel: str) -> None:
        if self.channel == channel or self.speaking is None:
            return
        await self.silent()
        self.channel = channel
        await self.speaking.on(channel, self.member, self.name)

    async def silent(self) -> None:
        channel, self.channel = self.channel, None
        if channel is not None and self.speaking is not None:
            await self.speaking.off(channel, self.member)
