"""Writing chat messages in batches ("group commit"): the one write path for every
message, to a room or privately to the room's facilitators.

Every message that arrives while the previous batch is being written goes into the next
one: one transaction, one insert of messages, one reservation of event ids per channel
and one commit for all of them. A busy session therefore costs a few statements per
batch instead of several per message, and a quiet one still writes each message at once.
The rules of the room (mutes, locks, rate limit, slow mode) are still checked for each
message, and a message is acknowledged only after its batch commits.

Back-pressure: the writer has a database connection of its own (app/db.py), so it never
waits behind the requests that wait for it; a batch is written in one hop to it
(app/live/chat_batch.py). At most `queue_limit` messages wait; past that
a message is refused at once with 503 and Retry-After. A sender waits at most
`wait_seconds` for the commit; past that they are told it is still on its way (503), and
the page's retry, with the same client id, gets the message once it is stored. A batch the
database is too busy for is tried again a few times before its senders are told so."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from app.db import RETRY_AFTER_SECONDS, BatchRunner, is_overloaded
from app.live.channels import Seat
from app.live.chat import busy
from app.live.chat_batch import write_batch
from app.live.seats import HeldSeats
from app.models import Group, User
from app.refusals import Busy, Refused
from realtime.publish import Live

logger = logging.getLogger(__name__)

MAX_BATCH = 200
# A batch the database is too busy for is tried again after these pauses (seconds).
BUSY_RETRY_PAUSES = (0.05, 0.2, 0.5)
STILL_SENDING = "Your message is taking a while to send; it has not been lost."


def not_sent() -> Refused:
    return Busy("Not sent.", retry_after=RETRY_AFTER_SECONDS)


@dataclass
class _Pending:
    seat: Seat
    channel: str
    body: str
    client_id: str
    # A private message: stored on its author's own channel, sent to the facilitators of
    # their room (`group`, `to`, found when its rules are checked) and to the author.
    private: bool = False
    group: Group | None = None
    to: list[User] = field(default_factory=list)
    # Stored by this send (not found stored before, nor the same send twice in a batch).
    new: bool = False
    future: asyncio.Future[tuple[int, bool]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    @property
    def key(self) -> tuple[int, str]:
        return (self.seat.user_id, self.client_id)

    def row(self, now: Any) -> dict[str, Any]:
        return {
            "session_id": self.seat.session.id,
            "channel": self.channel,
            "author_id": self.seat.user_id,
            "private_to_group_id": self.group.id if self.group is not None else None,
            "body": self.body,
            "client_id": self.client_id,
            "created_at": now,
        }


def _retrieve(future: asyncio.Future[tuple[int, bool]]) -> None:
    """A sender who stopped waiting never reads the outcome; reading it here keeps asyncio
    from logging a refusal nobody retrieved."""
    if not future.cancelled():
        future.exception()


class ChatWriter:
    def __init__(
        self,
        runner: BatchRunner,
        live: Live,
        *,
        queue_limit: int = 2000,
        wait_seconds: float = 10.0,
    ) -> None:
        self._runner = runner
        self._live = live
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.queue_limit = queue_limit
        self.wait_seconds = wait_seconds
        # The seats this process's open live connections keep, for their people's posts.
        self.seats = HeldSeats()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="chat-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while not self._queue.empty():
            pending = self._queue.get_nowait()
            if not pending.future.done():
                pending.future.set_exception(
                    Busy("The server is restarting.", retry_after=RETRY_AFTER_SECONDS)
                )

    async def send(
        self, *, seat: Seat, channel: str, body: str, client_id: str, private: bool = False
    ) -> tuple[int, bool]:
        """Queue a checked, cleaned message; returns its id and whether it is new once it
        is committed and published. A private message's `channel` is its author's own."""
        if self._task is None or self._task.done():
            raise Busy("Chat is not available right now.", retry_after=RETRY_AFTER_SECONDS)
        if self._queue.qsize() >= self.queue_limit:
            raise busy()
        pending = _Pending(
            seat=seat, channel=channel, body=body, client_id=client_id, private=private
        )
        pending.future.add_done_callback(_retrieve)
        self._queue.put_nowait(pending)
        try:
            # Shielded: a sender who stops waiting (or leaves) does not take the message
            # out of its batch; a retry with the same client id finds it stored.
            return await asyncio.wait_for(asyncio.shield(pending.future), self.wait_seconds)
        except TimeoutError:
            raise busy(STILL_SENDING) from None

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < MAX_BATCH:
                batch.append(self._queue.get_nowait())
            batch = [p for p in batch if not p.future.done()]  # refused while it waited
            if not batch:
                continue
            try:
                await self._write_when_possible(batch)
            except Exception:
                logger.exception("writing a batch of %d chat messages failed", len(batch))
                if len(batch) > 1:
                    # Write them one by one, so one bad message fails only itself.
                    for pending in batch:
                        await self._write_alone(pending)
                else:
                    self._fail(batch[0], not_sent())

    async def _write_when_possible(self, batch: list[_Pending]) -> None:
        """Write the batch, trying again while the database is only too busy; then its
        senders are told to try again themselves."""
        for pause in (*BUSY_RETRY_PAUSES, None):
            try:
                await self._write(batch)
                return
            except Exception as exc:
                if not is_overloaded(exc):
                    raise
                if pause is None:
                    logger.warning(
                        "the database stayed too busy for %d chat messages: %s",
                        len(batch),
                        type(exc).__name__,
                    )
                    for pending in batch:
                        self._fail(pending, busy())
                    return
                await asyncio.sleep(pause)

    async def _write_alone(self, pending: _Pending) -> None:
        try:
            await self._write_when_possible([pending])
        except Exception:
            logger.exception("writing a chat message failed")
            self._fail(pending, not_sent())

    @staticmethod
    def _fail(pending: _Pending, exc: Exception) -> None:
        if not pending.future.done():
            pending.future.set_exception(exc)

    async def _write(self, batch: list[_Pending]) -> None:
        # One hop to the database's side for the whole batch (app/live/chat_batch.py).
        written = await self._runner.run(partial(write_batch, live=self._live, batch=batch))
        await self._live.publish_committed(written.events)
        for index, pending in enumerate(batch):
            if pending.future.done():
                continue
            if index in written.refused:
                pending.future.set_exception(written.refused[index])
            else:
                pending.future.set_result((written.ids[pending.key], pending.new))
