"""Presence: who is in which room, kept in the broker so every process sees it, and sent
to the people in the room as a transient `presence` event.

The hub tells us when a connection starts or stops following a channel. We count this
process's connections per person and room; the broker holds one entry per person with a
time to live that we refresh while they stay, so a process that dies takes its people with
it within PRESENCE_TTL. Leaving is confirmed after a short grace, so that a page reload or
the gap between two long-polls does not make someone flicker out and back in. Events are
coalesced: at most one per room every COALESCE_SECONDS from this process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.live import channels
from app.live.events import PresencePayload
from app.models import User
from app.numbers import is_digits
from realtime.broker import Broker
from realtime.publish import Live

logger = logging.getLogger(__name__)

PRESENCE_TTL = 90.0
REFRESH_SECONDS = 30.0
COALESCE_SECONDS = 2.0
# A moment to gather joins that come together (a room opening) into one event.
FIRST_DELAY_SECONDS = 0.1
LEAVE_GRACE_SECONDS = 8.0


def tracked(channel: str) -> bool:
    """People are counted in the plenary and the breakout rooms, not on other channels."""
    return channels.is_room(channel)


def element_id(channel: str) -> str:
    return f"presence-{channel}"


class Presence:
    def __init__(
        self, *, broker: Broker, live: Live, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        self.broker = broker
        self.live = live
        self.sessionmaker = sessionmaker
        # channel -> person -> how many of this process's connections have them there
        self._here: dict[str, Counter[str]] = {}
        self._names: dict[str, str] = {}
        self._leaving: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._scheduled: dict[str, asyncio.Task[None]] = {}
        self._last_sent: dict[str, float] = {}
        self._refresher: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._refresher = asyncio.create_task(self._refresh_loop(), name="presence-refresh")

    async def stop(self) -> None:
        tasks = [*self._leaving.values(), *self._scheduled.values()]
        if self._refresher is not None:
            tasks.append(self._refresher)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        # A clean shutdown takes this process's people out at once.
        gone = [*((c, m) for c, counts in self._here.items() for m in counts), *self._leaving]
        self._here.clear()
        self._leaving.clear()
        self._scheduled.clear()
        for channel, member in gone:
            with contextlib.suppress(Exception):
                await self.broker.presence_remove(channel, member)

    # Hooks called by the hub.

    async def joined(self, member: str, joined: set[str]) -> None:
        rooms = [c for c in joined if tracked(c)]
        if not rooms:
            return
        info = await self._name(member)
        for channel in rooms:
            counts = self._here.setdefault(channel, Counter())
            counts[member] += 1
            pending = self._leaving.pop((channel, member), None)
            if pending is not None:
                # Back within the grace: they never left as far as anyone else knows.
                pending.cancel()
                continue
            if counts[member] == 1:
                await self.broker.presence_set(channel, member, info, PRESENCE_TTL)
                self._schedule(channel)

    async def left(self, member: str, left: set[str]) -> None:
        for channel in left:
            counts = self._here.get(channel)
            if not counts or counts[member] <= 0:
                continue
            counts[member] -= 1
            if counts[member] > 0:
                continue
            del counts[member]
            if not counts:
                del self._here[channel]
            key = (channel, member)
            if key not in self._leaving:
                self._leaving[key] = asyncio.create_task(self._leave_later(channel, member))

    async def _leave_later(self, channel: str, member: str) -> None:
        await asyncio.sleep(LEAVE_GRACE_SECONDS)
        self._leaving.pop((channel, member), None)
        if member in self._here.get(channel, ()):
            return
        try:
            await self.broker.presence_remove(channel, member)
        except Exception:
            logger.warning("could not record that someone left %s", channel, exc_info=True)
        self._forget_name(member)
        self._schedule(channel)

    # Reading presence.

    async def payload(self, channel: str, *, also: str = "") -> PresencePayload:
        """Who is in `channel` now (`also`: a name to include, for someone whose page is
        being drawn before their connection arrives)."""
        names = set((await self.broker.presence_list(channel)).values())
        if also:
            names.add(also)
        show_names = channels.room_group_id(channel) is not None
        ordered = sorted(names, key=str.casefold)
        return PresencePayload(
            channel=channel,
            names=ordered if show_names else [],
            count=len(ordered),
            show_names=show_names,
        )

    async def counts(self, rooms: list[str]) -> dict[str, PresencePayload]:
        return {channel: await self.payload(channel) for channel in rooms}

    # Internals.

    async def _name(self, member: str) -> str:
        name = self._names.get(member)
        if name is None:
            async with self.sessionmaker() as db:
                user = await db.get(User, int(member)) if is_digits(member) else None
            name = user.name_with_pronouns if user is not None else "Someone"
            self._names[member] = name
        return name

    def _forget_name(self, member: str) -> None:
        still_here = any(member in counts for counts in self._here.values())
        if not still_here and not any(m == member for _c, m in self._leaving):
            self._names.pop(member, None)

    def _schedule(self, channel: str) -> None:
        if channel in self._scheduled:
            return
        since_last = time.monotonic() - self._last_sent.get(channel, float("-inf"))
        delay = max(FIRST_DELAY_SECONDS, COALESCE_SECONDS - since_last)
        self._scheduled[channel] = asyncio.create_task(self._send_after(channel, delay))

    async def _send_after(self, channel: str, delay: float) -> None:
        await asyncio.sleep(delay)
        self._scheduled.pop(channel, None)
        self._last_sent[channel] = time.monotonic()
        try:
            payload = await self.payload(channel)
            await self.live.publish_transient(
                channel, "presence", payload, target=element_id(channel)
            )
        except Exception:
            logger.warning("could not send presence for %s", channel, exc_info=True)
        if channel not in self._here and channel not in self._scheduled:
            self._last_sent.pop(channel, None)

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            for channel, counts in list(self._here.items()):
                for member in list(counts):
                    try:
                        await self.broker.presence_set(
                            channel, member, self._names.get(member, "Someone"), PRESENCE_TTL
                        )
                    except Exception:
                        logger.warning("could not refresh presence", exc_info=True)
