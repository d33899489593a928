"""Who is talking in a room right now, as the voice router hears it (realtime/voice.py):
a transient `voice.active` event to the room whenever that changes, whose fragment
replaces the room's "Talking now" line (`voice-active-{channel}`). Names come from the
microphones' marks (app/live/speaking.py), so they carry pronouns."""

from __future__ import annotations

import asyncio
import logging

from app.live.events import TalkingPayload
from app.live.speaking import Speaking
from realtime.publish import Live

log = logging.getLogger(__name__)


def element_id(channel: str) -> str:
    return f"voice-active-{channel}"


class Talking:
    def __init__(self, *, live: Live, speaking: Speaking) -> None:
        self.live = live
        self.speaking = speaking
        self._tasks: set[asyncio.Task[None]] = set()

    def changed(self, channel: str, sources: tuple[int, ...]) -> None:
        """The router's hook (called on the event loop, must not wait)."""
        names = sorted(
            (self.speaking.name_of(channel, str(source)) for source in sources), key=str.casefold
        )
        task = asyncio.create_task(self._publish(channel, names))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, channel: str, names: list[str]) -> None:
        try:
            await self.live.publish_transient(
                channel,
                "voice.active",
                TalkingPayload(channel=channel, names=names),
                target=element_id(channel),
            )
        except Exception:
            log.warning("could not say who is talking in %s", channel, exc_info=True)
